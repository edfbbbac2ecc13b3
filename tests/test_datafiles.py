"""The data page's table: short origin links, every registered file listed."""
import pytest

from xaifool import data
from xaifool.book.datafiles import data_files, origin_link


def test_origin_link_names_the_repository_and_keeps_the_address():
    url = "https://raw.githubusercontent.com/propublica/compas-analysis/bafff5/compas-scores-two-years.csv"
    assert origin_link(url) == f'<a href="{url}">github.com/propublica/compas-analysis</a>'
    assert origin_link(None, "derived from <x> by f") == "derived from &lt;x&gt; by f"
    assert origin_link(None) == "–"
    with pytest.raises(ValueError, match="url"):
        origin_link("ftp://example.org/x")


def test_the_table_lists_every_registered_file_with_a_link_or_how_it_is_made():
    frame = data_files().data
    assert list(frame["file"][:-1]) == list(data.REGISTRY)
    for (name, entry), origin in zip(data.REGISTRY.items(), frame["origin"]):
        assert (entry.url in origin) if entry.url else origin.startswith(entry.hint[:20])
    assert frame["origin"].str.len().max() < 400


def test_a_hint_is_cut_to_its_first_clause_with_a_short_commit_and_a_link():
    hint = ("a repack of github.com/o/r at commit " + "a" * 40 + " (entries sorted); place it at <mirror>")
    assert origin_link(None, hint) == ('a repack of <a href="https://github.com/o/r">github.com/o/r</a> '
                                       "at commit aaaaaaa")
