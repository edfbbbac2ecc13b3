"""Saving and comparing the glued values of a build (xaifool.book.glue)."""

import pytest

from xaifool.__main__ import main
from xaifool.book import glue


def _page(folder, name, values):
    """One executed page with glued ``values`` in the build's jupyter-cache, as the book build leaves it."""
    import nbformat
    from jupyter_cache import get_cache

    outs = [nbformat.v4.new_output("display_data", data={glue._PREFIX + "text/plain": v},
                                   metadata={"scrapbook": {"name": k, "mime_prefix": glue._PREFIX}})
            for k, v in values.items()]
    outs.append(nbformat.v4.new_output("display_data", data={"text/plain": "not glued"}))
    cell = nbformat.v4.new_code_cell("glue(...)", outputs=outs, execution_count=1)
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "py"}})
    src = folder / "notebooks" / f"{name}.ipynb"
    src.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, src)
    get_cache(str(folder / "_build" / ".jupyter_cache_book")).cache_notebook_file(str(src), check_validity=False)


def test_values_are_read_per_page_and_every_difference_is_listed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _page(a, "01", {"fsr": "0.25", "seconds": "12.0", "gone": "1"})
    _page(b, "01", {"fsr": "0.26", "seconds": "13.5", "new": "2"})
    va, vb = glue.glue_values(a), glue.glue_values(b)
    assert va == {"01": {"fsr": "0.25", "seconds": "12.0", "gone": "1"}}
    rows = glue.diff(va, vb)
    assert rows == [("01", "fsr", "0.25", "0.26"), ("01", "gone", "1", None), ("01", "new", None, "2"),
                    ("01", "seconds", "12.0", "13.5")]
    assert [r[1] for r in glue.diff(va, vb, ignore="seconds|gone|new")] == ["fsr"]
    assert glue.diff(va, va) == []


def test_the_command_saves_and_diffs(tmp_path, capsys):
    _page(tmp_path / "a", "02", {"x": "1"})
    assert main(["glue", "save", str(tmp_path / "a"), str(tmp_path / "a.json")]) == 0
    assert main(["glue", "diff", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    assert "0 glued value(s) differ" in capsys.readouterr().out


def test_a_folder_without_a_build_is_refused(tmp_path):
    with pytest.raises(ValueError, match="build"):
        glue.glue_values(tmp_path)
