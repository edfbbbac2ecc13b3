"""The seminar plan's sessions and times (xaifool.book.seminar): every chapter in exactly one session,
times read from the records (and "not recorded yet" where none holds them)."""
import json
import math
import shutil
from pathlib import Path

import pytest

from xaifool.book import seminar
from xaifool.book.build import pages

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def test_six_sessions_cover_every_chapter_once_in_book_order():
    assert len(seminar.SESSIONS) == 6
    read = [p for s in seminar.SESSIONS for p in s.pages]
    chapters = [p for p in pages() if p.startswith("notebooks/")] + ["book/discussion"]
    assert read == chapters           # each once, in the book's order


@pytest.mark.parametrize("seconds, text", [(24, "0.4 min"), (600, "10 min"), (65.0, "1.1 min"),
                                           (None, "not recorded yet"), (math.nan, "not recorded yet")])
def test_minutes(seconds, text):
    assert seminar.minutes(seconds) == text


def test_minutes_rejects_negative_seconds():
    with pytest.raises(ValueError, match="seconds"):
        seminar.minutes(-1)


def _results(tmp_path, cold, warm=None, full=()):
    """A results folder with a book-times record (page → seconds) and the named full-profile records."""
    build = {"profile": "quick", "time": "2026-12-05T00:00:00Z", "commit": "abcdef1", "total_s": 1.0}
    rec = {"benchmark": "book-times", "threads": 1, "cpu_count": 2, "builds": {
        "cold": {**build, "pages": [{"page": p, "seconds": s} for p, s in cold.items()]}}}
    if warm:
        rec["builds"]["warm"] = {**build, "pages": [{"page": p, "seconds": s} for p, s in warm.items()]}
    (tmp_path / "book-times-cpu.json").write_text(json.dumps(rec))
    (tmp_path / "full").mkdir()
    for name in full:
        shutil.copy(RESULTS / "full" / f"{name}.json", tmp_path / "full" / f"{name}.json")
    return tmp_path


def test_times_come_from_the_records_and_missing_ones_say_so(tmp_path):
    res = _results(tmp_path, {"notebooks/01_interpreters": 120.0, "notebooks/06_sanity_checks": 30.0},
                   warm={"notebooks/01_interpreters": 12.0}, full=("06_sanity_checks",))
    t = seminar.chapter_times(res)
    assert t["notebooks/01_interpreters"]["cpu_cold"] == 120.0 and t["notebooks/01_interpreters"]["cpu_warm"] == 12.0
    assert t["notebooks/03_targets"]["cpu_cold"] is None
    rec = json.loads((RESULTS / "full" / "06_sanity_checks.json").read_text())
    assert t["notebooks/06_sanity_checks"]["gpu_full"] == f"{seminar.minutes(rec['seconds'])} on {rec['device_name']}"
    assert t["notebooks/07_benchmarking"]["gpu_full"] == "not recorded yet"        # a chapter of full-results
    assert t["notebooks/01_interpreters"]["gpu_full"] == "not among the paper-scale runs"
    table = seminar.session_times(res)
    row = table[table.chapter == "notebooks/01_interpreters"].iloc[0]
    assert row["laptop CPU, empty cache"] == "2.0 min" and row["laptop CPU, filled cache"] == "0.2 min"
    assert table[table.chapter == "notebooks/03_targets"].iloc[0]["laptop CPU, empty cache"] == "not recorded yet"


def test_a_partial_gpu_record_says_how_much_it_holds_and_extrapolates(tmp_path):
    from xaifool.book.full_results import status

    res = _results(tmp_path, {}, full=("02b_model_manipulation",))
    row = next(r for r in status(res / "full") if r["chapter"] == "02b_model_manipulation")
    assert not row["complete"]
    text = seminar.chapter_times(res)["notebooks/02b_model_manipulation"]["gpu_full"]
    assert row["summary"] in text and "partial" in text
    assert seminar.minutes(row["seconds"] * row["total"] / row["done"]) in text
