"""Parallel page execution of ``python -m xaifool book``: the schedule respects the chapters' needs,
never runs more pages than workers, and the toc's notebook pages are the ones executed."""
import pytest

from xaifool.book import build as bookrun

DOCS = ["a", "b", "c", "d", "e"]
COSTS = {"a": 100.0, "b": 60.0, "c": 10.0, "d": 30.0, "e": 5.0}
NEEDS = {"c": ("b",), "d": ("a", "b")}


def _overlap_max(sched):
    events = sorted([(s, 1) for s, _ in sched.values()] + [(e, -1) for _, e in sched.values()])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_schedule_respects_needs_and_workers(workers):
    sched = bookrun.simulate(DOCS, COSTS, workers, NEEDS)
    assert set(sched) == set(DOCS)
    for d, (s, e) in sched.items():
        assert e - s == pytest.approx(COSTS[d])
        for n in NEEDS.get(d, ()):
            assert s >= sched[n][1], (d, n)          # starts only after what it reuses has finished
    assert _overlap_max(sched) <= workers
    makespan = max(e for _, e in sched.values())
    assert makespan == pytest.approx(sum(COSTS.values())) if workers == 1 else makespan < sum(COSTS.values())
    # never shorter than the longest chain of needs (a → d)
    assert makespan >= COSTS["a"] + COSTS["d"]


def test_longest_chain_starts_first():
    prio = bookrun.priorities(DOCS, COSTS, NEEDS)
    assert prio["b"] == 60 + 30 and prio["a"] == 130 and prio["e"] == 5
    assert bookrun.next_ready(set(DOCS), set(), DOCS, COSTS, NEEDS) == "a"
    # c and d wait for b (and a); with a and b taken, e is the only ready page
    assert bookrun.next_ready({"c", "d", "e"}, set(), DOCS, COSTS, NEEDS) == "e"
    assert bookrun.next_ready({"c", "d"}, {"a"}, DOCS, COSTS, NEEDS) is None
    assert bookrun.next_ready({"c", "d"}, {"a", "b"}, DOCS, COSTS, NEEDS) == "d"


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        bookrun.simulate(["a", "b"], {}, 2, {"a": ("b",), "b": ("a",)})
    with pytest.raises(ValueError, match="workers"):
        bookrun.simulate(DOCS, COSTS, 0, NEEDS)
    with pytest.raises(ValueError, match="costs"):
        bookrun.priorities(["a"], {"a": -1.0}, {})
    with pytest.raises(ValueError, match="workers"):
        bookrun.execute(".", "/nonexistent", workers=0, threads=1)


def test_pages_are_the_toc_notebooks_and_needs_name_real_chapters():
    docs = bookrun.pages()
    assert docs[0] == "notebooks/01_interpreters"
    assert {"notebooks/02a_input_manipulation", "book/performance"} <= set(docs)
    assert "book/intro" not in docs and "book/bibliography" not in docs    # plain Markdown pages
    for d, needs in bookrun.NEEDS.items():
        assert d in docs and set(needs) <= set(docs)
    with pytest.raises(ValueError, match="root"):
        bookrun.pages("/nonexistent")
