"""Benchmark records: schema, the tables of the Performance page, and the page itself on fixtures."""
import math
import json
import os
from pathlib import Path

import pytest

from xaifool.book import full_results
from xaifool.book import performance as perf
from xaifool.config import REPO_ROOT


def _run(model, size, batched, loop, sweep, gflop=None, variants=()):
    run = {"model": model, "batch": 4, "size": size, "batched": {"img_iter_per_s": batched},
           "loop": {"img_iter_per_s": loop}, "ratio": batched / loop,
           "batch_scaling": [{"batch": b, "img_iter_per_s": t, "peak_memory_bytes": m} for b, t, m in sweep]}
    if gflop is not None:
        run["step_gflop_per_image"] = gflop
    if variants:
        run["variants"] = [{"variant": n, "img_iter_per_s": t, "max_abs_diff_x_adv": d, "n_steps": 10,
                            "alpha": 1 / 255} for n, t, d in variants]
    return run


def _fixtures(folder):
    cpu = {"benchmark": "attacks", "device": "cpu", "device_name": "Test CPU", "threads": 2, "torch": "x",
           "time": "2026-01-01T00:00:00Z", "matmul_peak_flops": {"fp32": 1e11},
           "runs": [_run("resnet20", 32, 100.0, 25.0, [(1, 20.0, None), (8, 90.0, None), (64, 100.0, None)], 0.5),
                    _run("mobilenet_v2", 224, 4.0, 2.0, [(1, 2.0, None), (4, 4.0, None)], 5.0)],
           "growth": [{"depth": 20, "size": 32, "batch": 4, "img_iter_per_s": 100.0, "step_gflop_per_image": 0.5,
                       "achieved_tflops": 0.05, "memory_per_image_bytes": None}]}
    gpu = {"benchmark": "attacks", "device": "cuda", "device_name": "Test GPU 80GB", "threads": 16, "torch": "x",
           "time": "2026-01-01T00:00:00Z", "complete": False,
           "matmul_peak_flops": {"fp32": 5e13, "tf32": 4e14, "bf16": 8e14},
           "runs": [_run("resnet20", 32, 3000.0, 30.0, [(1, 30.0, 2**26), (64, 2000.0, 2**28), (1024, 5000.0, 2**32)],
                         0.65, [("plain fp32", 1600.0, 0.0), ("channels-last", 1400.0, 0.06),
                                ("TF32", 3000.0, 0.06), ("bf16 autocast + autotune", 2800.0, 0.06)]),
                    _run("mobilenet_v2", 224, 30.0, 5.0, [(1, 5.0, 2**28), (16, 25.0, 2**31)], 4.8)]}
    for name, rec in (("attacks-cpu.json", cpu), ("attacks-cuda.json", gpu)):
        (folder / name).write_text(json.dumps(rec))
    (folder / "sanity-cpu.json").write_text(json.dumps(SANITY))
    (folder / "book-times-cpu.json").write_text(json.dumps({
        "benchmark": "book-times", "device": "cpu", "device_name": "x86_64", "threads": 2, "cpu_count": 2,
        "torch": "x", "builds": {b: {"profile": "quick", "time": "2026-01-01T00:00:00Z", "commit": "abc", "note": "",
                                     "pages": [{"page": "notebooks/a", "seconds": s}], "total_s": s}
                                 for b, s in (("cold", 900.0), ("warm", 60.0))}}))
    (folder / "full").mkdir(exist_ok=True)
    for rec in FULL_RECORDS:
        (folder / "full" / f"{rec['chapter']}.json").write_text(json.dumps(rec))
    return cpu, gpu


def _full(chapter, complete, seconds, numbers, settings=None):
    return {"schema": "xaifool.full-results/1", "chapter": chapter, "profile": "full", "device": "cuda",
            "device_name": "Test GPU", "date": "2026-01-01T00:00:00Z", "commit": "abcdef0123", "command": "x",
            "torch": "x", "seconds": seconds, "complete": complete, "settings": settings or {}, "numbers": numbers}


#: Full-results records: 02a unfinished with 4 timed attacks (3 grid cells of two interpreters),
#: 06 complete with its networks timed; no 02b or 08 record.
FULL_RECORDS = [
    _full("02a_input_manipulation", False, 100.0, {
        "parts": ["grid/gradient/random/1", "grid/gradient/topk/1", "grid/lrp/topk/8", "target_lrp"],
        "part_seconds": {"grid/gradient/random/1": 2.0, "grid/gradient/topk/1": 3.0, "grid/lrp/topk/8": 5.0,
                         "target_lrp": 80.0}}),
    _full("06_sanity_checks", True, 140.0, {"mobilenet_v2": {"seconds": 100.0}, "cifar_resnet20": {"seconds": 38.0}}),
]


def test_full_profile_tables_read_the_records(tmp_path):
    _fixtures(tmp_path)
    frame = perf.full_profile(tmp_path)
    assert list(frame.chapter) == [c.title for c in full_results.CHAPTERS.values()]
    names = list(full_results.CHAPTERS)
    i06 = names.index("06_sanity_checks")
    assert list(frame.recorded) == ["4 of 77 attacks" if n == "02a_input_manipulation" else "complete" if n == names[i06]
                                    else "no run yet" for n in names]
    assert frame.seconds.iloc[0] == 100.0 and frame.seconds.isna().tolist() == [i not in (0, i06) for i in range(len(names))]
    assert frame["parts per minute"].iloc[0] == 60 * 4 / 100.0 and frame["parts per minute"].iloc[i06] == 60 * 2 / 140.0
    assert frame["GPU busy (%)"].isna().all()                     # these records predate the sampling
    text = perf.full_profile_sentence(frame)
    assert f"1 of {len(names)} chapters" in text and "Sanity checks (06), 140 s on the Test GPU" in text
    assert "4 of 77 attacks in 100 s" in text and "no run recorded: Model manipulation (02b); Model manipulation at matched accuracy (02b); Explaining and uncovering (05); Robustness leaderboard (07); Experiments" in text
    parts = perf.full_profile_parts(tmp_path)
    got = {(r.chapter.split("(")[-1].rstrip(")"), r.part, r.parts if r.parts == r.parts else None): r.seconds for r in parts.itertuples()}
    rest = "not in a timed part (set-up, earlier visits)"
    assert got == {("02a", "grid cells, gradient", 2): 5.0, ("02a", "grid cells, lrp", 1): 5.0,
                   ("02a", "target_lrp", 1): 80.0, ("02a", rest, None): 10.0,   # 100 s in all
                   ("06", "mobilenet_v2", 1): 100.0, ("06", "cifar_resnet20", 1): 38.0, ("06", rest, None): 2.0}
    assert len(perf.full_profile_parts(tmp_path / "empty")) == 0 and perf.full_profile(tmp_path / "empty").recorded.eq(
        "no run yet").all()


SANITY = {"benchmark": "sanity", "device": "cpu", "device_name": "Test CPU", "threads": 2, "torch": "x",
          "time": "2026-01-01T00:00:00Z", "n_images": 8, "n_layers_model": 105,
          "runs": [{"method": "gradient", "n_layers": 105, "bound_s": 10.0, "book_s": 11.0, "quantus_s": 33.0,
                    "max_similarity_difference": 1e-7},
                   {"method": "integrated_gradients", "n_layers": 16, "bound_s": 20.0, "book_s": 21.0}]}


def test_sanity_table_from_fixture_record(tmp_path):
    _fixtures(tmp_path)
    recs = perf.load_sanity(tmp_path)
    t = perf.sanity(recs).set_index("interpreter")
    assert t.loc["gradient", "Quantus / book"] == pytest.approx(3.0)
    assert t.loc["gradient", "book / bound"] == pytest.approx(1.1)
    assert t.loc["integrated_gradients", "Quantus / book"] != t.loc["integrated_gradients", "Quantus / book"]  # NaN
    with pytest.raises(ValueError, match="n_images"):
        perf.check_sanity({**SANITY, "n_images": "8"})
    with pytest.raises(ValueError, match="book_s"):
        perf.check_sanity({**SANITY, "runs": [{"method": "gradient", "n_layers": 1, "bound_s": 1.0}]})


def test_tables_from_fixture_records(tmp_path):
    _fixtures(tmp_path)
    recs = perf.load(tmp_path)
    assert [r["device"] for r in recs] == ["cpu", "cuda"]
    hw = perf.hardware(recs).set_index(["device", "model"])
    # best throughput over the sweep × counted FLOPs, against the matrix-product peak
    assert hw.loc[("cuda", "resnet20"), "best img·it/s"] == 5000.0
    assert hw.loc[("cuda", "resnet20"), "achieved TFLOP/s"] == pytest.approx(0.65e9 * 5000 / 1e12)
    assert hw.loc[("cuda", "resnet20"), "% of fp32 peak"] == pytest.approx(100 * 0.65e9 * 5000 / 5e13)
    assert hw.loc[("cpu", "resnet20"), "% of fp32 peak"] == pytest.approx(100 * 0.5e9 * 100 / 1e11)
    var = perf.variants(recs).set_index("variant")
    assert var.loc["TF32", "× plain fp32"] == pytest.approx(3000 / 1600)
    sc = perf.scaling(recs)
    r = sc.query("device == 'cuda' and model == 'resnet20' and batch == 1024").iloc[0]
    assert r.relative == pytest.approx(5000 / 30) and r.memory_mib == 4096
    assert len(perf.growth(recs)) == 1
    assert perf.machines(recs).complete.tolist() == ["yes", "no (stopped at its time limit)"]


def test_check_names_what_is_wrong(tmp_path):
    cpu, _ = _fixtures(tmp_path)
    with pytest.raises(ValueError, match="lacks 'threads'"):
        perf.check({k: v for k, v in cpu.items() if k != "threads"})
    bad = json.loads(json.dumps(cpu))
    bad["runs"][0]["batched"]["img_iter_per_s"] = 0
    with pytest.raises(ValueError, match=r"runs\[0\].batched.img_iter_per_s"):
        perf.check(bad)
    with pytest.raises(ValueError, match="benchmark must be"):
        perf.check({**cpu, "benchmark": "other"})


def test_committed_records_are_valid():
    recs = perf.load()
    assert any(r["device"] == "cpu" for r in recs), "benchmarks/results/attacks-cpu.json is missing"


def test_performance_page_builds_from_fixture_files(tmp_path):
    """The page's cells run on small fixture records (no glue key left undefined is checked by the
    book build; here: no cell raises, with and without a GPU record)."""
    import jupytext
    from nbclient import NotebookClient

    _fixtures(tmp_path)
    for with_gpu in (True, False):
        if not with_gpu:
            (tmp_path / "attacks-cuda.json").unlink()
        nb = jupytext.read(REPO_ROOT / "book" / "performance.md")
        os.environ["XAIFOOL_BENCH_RESULTS"] = str(tmp_path)
        try:
            NotebookClient(nb, timeout=120, kernel_name="python3",
                           resources={"metadata": {"path": str(REPO_ROOT / "book")}}).execute()
        finally:
            del os.environ["XAIFOOL_BENCH_RESULTS"]
        glued = {o["metadata"]["scrapbook"]["name"] for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
        assert {"gpu_ratio_sentence", "gpu_hw_sentence", "var_sentence", "fig_scaling", "refused_sentence",
                "hw_cpu_resnet20_pct", "sanity_sentence", "book_sentence", "full_sentence"} <= glued


def test_book_times_reads_the_build_in_execution_order(tmp_path, capsys):
    """`make book` prints the per-page execution times myst-nb stored in Sphinx's environment."""
    import pickle
    from types import SimpleNamespace

    from xaifool.__main__ import main

    meta = {"notebooks/b": {"exec_data": {"runtime": 12.5, "succeeded": True, "mtime": 20.0}},
            "notebooks/a": {"exec_data": {"runtime": 3.0, "succeeded": False, "mtime": 10.0}},
            "book/bibliography": {}}                       # a page that is not executed
    (tmp_path / ".doctrees").mkdir()
    with open(tmp_path / ".doctrees" / "environment.pickle", "wb") as fh:
        pickle.dump(SimpleNamespace(nb_metadata=meta), fh)
    rows = perf.book_times(tmp_path)
    assert rows == [{"page": "notebooks/a", "seconds": 3.0, "succeeded": False},
                    {"page": "notebooks/b", "seconds": 12.5, "succeeded": True}]
    assert main(["exec-times", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["notebooks/a", "3.0", "FAILED"] and out[-1].split()[:2] == ["total", "15.5"]
    with pytest.raises(ValueError, match="^build_dir .* holds no book build"):
        perf.book_times(tmp_path / "empty")


def test_book_times_record_keeps_cold_and_warm(tmp_path):
    import json
    import pickle
    from types import SimpleNamespace

    def build(folder, secs, ok=True):
        (folder / ".doctrees").mkdir(parents=True)
        meta = {f"notebooks/{i}": {"exec_data": {"runtime": s, "succeeded": ok, "mtime": float(i)}}
                for i, s in enumerate(secs)}
        with open(folder / ".doctrees" / "environment.pickle", "wb") as fh:
            pickle.dump(SimpleNamespace(nb_metadata=meta), fh)
        return folder

    out = tmp_path / "res" / "book-times-cpu.json"
    perf.record_book_times(build(tmp_path / "c", [100.0, 300.0]), "cold", profile="quick", path=out)
    perf.record_book_times(build(tmp_path / "w", [10.0, 20.0]), "warm", profile="quick", path=out)
    rec = perf.load_book_times(out.parent)
    assert rec["builds"]["cold"]["total_s"] == 400.0 and rec["builds"]["warm"]["total_s"] == 30.0
    t = perf.book_times_table(rec)
    assert list(t.columns) == ["cold (s)", "warm (s)"] and t.loc["total", "cold (s)"] == 400.0
    assert t.loc["1", "warm (s)"] == 20.0      # pages as a reader names them (page_label)
    with pytest.raises(ValueError, match="^build must be one of"):
        perf.record_book_times(tmp_path / "c", "hot", profile="quick", path=out)
    with pytest.raises(ValueError, match="failed"):
        perf.record_book_times(build(tmp_path / "f", [1.0], ok=False), "cold", profile="quick", path=out)
    assert json.loads(out.read_text())["builds"]["cold"]["total_s"] == 400.0   # the failed build wrote nothing
    assert perf.load_book_times(tmp_path) is None
    # a build of `python -m xaifool book` ran pages side by side: its wall clock is recorded and tabulated
    par = build(tmp_path / "p", [100.0, 300.0])
    (par / ".exec-plan.json").write_text(json.dumps({"workers": 2, "threads": 1, "wall_s": 310.0, "pages": []}))
    assert perf.book_plan(par)["wall_s"] == 310.0 and perf.book_plan(tmp_path / "c") is None
    perf.record_book_times(par, "cold", profile="quick", path=out)
    rec = perf.load_book_times(out.parent)
    assert rec["builds"]["cold"]["wall_s"] == 310.0 and rec["builds"]["cold"]["workers"] == 2
    t = perf.book_times_table(rec)
    wall = t.loc["wall clock, 2 pages at a time"]
    assert wall["cold (s)"] == 310.0 and math.isnan(wall["warm (s)"]) and t.loc["total", "cold (s)"] == 400.0
    (par / ".exec-plan.json").write_text(json.dumps({"workers": "2", "threads": 1, "wall_s": 310.0, "pages": []}))
    with pytest.raises(ValueError, match="workers must be int"):
        perf.book_plan(par)


def test_slowest_cells_reads_the_cell_times_of_the_execution_summary(tmp_path, capsys):
    import json
    import pickle
    from types import SimpleNamespace

    from xaifool.__main__ import main

    cells_a = [{"cell": 1, "seconds": 90.5, "source": "slow()"}, {"cell": 2, "seconds": 2.0, "source": "fast()"}]
    plan = {"workers": 2, "threads": 1, "wall_s": 95.0,
            "pages": [{"page": "notebooks/a", "start": 0, "end": 93, "seconds": 93.0, "cells": cells_a},
                      {"page": "notebooks/b", "start": 0, "end": 9, "seconds": 9.0,
                       "cells": [{"cell": 0, "seconds": 8.0, "source": "medium()"}]}]}
    (tmp_path / ".exec-plan.json").write_text(json.dumps(plan))
    rows = perf.slowest_cells(tmp_path, 5)
    assert [(r["page"], r["cell"], r["seconds"]) for r in rows] == [("notebooks/a", 1, 90.5), ("notebooks/b", 0, 8.0),
                                                                    ("notebooks/a", 2, 2.0)]
    assert len(perf.slowest_cells(tmp_path, 1)) == 1
    with pytest.raises(ValueError, match="^n must be"):
        perf.slowest_cells(tmp_path, 0)
    with pytest.raises(ValueError, match="exec-plan"):
        perf.slowest_cells(tmp_path / "nothing")
    # the command prints them after the page table
    (tmp_path / ".doctrees").mkdir()
    with open(tmp_path / ".doctrees" / "environment.pickle", "wb") as fh:
        pickle.dump(SimpleNamespace(nb_metadata={"notebooks/a": {"exec_data": {"runtime": 93.0, "succeeded": True}}}),
                    fh)
    assert main(["exec-times", str(tmp_path), "--cells", "1"]) == 0
    out = capsys.readouterr().out
    assert "slowest cells" in out and "notebooks/a, cell 1: slow()" in out and "fast()" not in out


def _book_record(**cold):
    pages = [{"page": "notebooks/02a", "seconds": 600.0}, {"page": "notebooks/02b", "seconds": 400.0},
             {"page": "notebooks/06", "seconds": 300.0}, {"page": "book/data", "seconds": 5.0}]
    return {"benchmark": "book-times", "threads": 2, "cpu_count": 2, "builds": {"cold": {
        "profile": "quick", "time": "2026-11-28T10:00:00Z", "commit": "abc1234", "pages": pages,
        "total_s": 1305.0, "wall_s": 700.0, "workers": 2, "threads_per_page": 1, **cold}}}


def test_book_sentence_adds_rendering_and_installation_to_the_cold_build(tmp_path):
    import json

    rec = _book_record(render_s=60.0)
    out = tmp_path / "book-times-cpu.json"
    out.write_text(json.dumps(rec))
    perf.record_install(150.0, command="pip install -e .", packages=180, path=out, commit="abc1234")
    got = perf.load_book_times(tmp_path)
    assert got["builds"] == rec["builds"] and got["install"]["seconds"] == 150.0   # the builds are kept
    text = perf.book_sentence(got)
    # 700 + 60 + 150 s = 15.2 min: 0.2 over the goal; the three heaviest pages named, in order
    assert "adds up to 15.2 minutes" in text and "0.2 minutes over the book's goal of 15 minutes" in text
    assert "executing the pages 11.7 min; rendering the HTML 1.0 min; installing" in text and "2.5 min" in text
    assert text.index("02a 10.0 min") < text.index("02b 6.7 min") < text.index("06 5.0 min") and "data" not in text
    assert "2 pages at a time with 1 thread each" in text and "add up to 21.8 minutes" in text
    rec["builds"]["cold"]["wall_s"] = 500.0
    out.write_text(json.dumps(rec))                                    # no installation recorded
    text = perf.book_sentence(perf.load_book_times(tmp_path))
    assert "(executing the pages 8.3 min; rendering the HTML 1.0 min) leaves 5.7 minutes" in text
    assert text.endswith("for what is not timed here: the installation.") and "adds up" not in text
    del rec["builds"]["cold"]["render_s"]
    text = perf.book_sentence(rec)
    assert text.endswith("leaves 6.7 minutes of the book's goal of 15 minutes for what is not timed here: the "
                         "rendering and the installation.")
    rec["builds"]["cold"]["wall_s"] = 1000.0
    text = perf.book_sentence(rec)
    assert text.endswith("is already 1.7 minutes over the book's goal of 15 minutes, without the rendering and the "
                         "installation.")
    assert perf.book_sentence(None) == "No build has been recorded yet."
    assert perf.book_sentence({**rec, "builds": {}}) == "No cold build has been recorded yet."
    assert perf.book_times_table(_book_record(render_s=60.0)).loc["rendering the HTML", "cold (s)"] == 60.0
    with pytest.raises(ValueError, match="^seconds must be"):
        perf.record_install(0, command="x", packages=1, path=out)
    with pytest.raises(ValueError, match="^packages must be"):
        perf.record_install(1.0, command="x", packages=0, path=out)
    bad = {**rec, "install": {"seconds": "150", "time": "t", "commit": "", "command": "", "packages": 1}}
    out.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="seconds"):
        perf.load_book_times(tmp_path)


def test_bench_without_names_leaves_the_installation_out(monkeypatch):
    """`make bench` runs every benchmark but the fresh installation (network, ~7 GB of disk), which
    runs only when named."""
    import runpy

    from xaifool.__main__ import main

    ran = []
    monkeypatch.setattr(runpy, "run_path", lambda path, run_name: ran.append(Path(path).stem))
    assert main(["bench"]) == 0
    assert "install" not in ran and {"attacks", "sanity", "tabular"} <= set(ran)
    ran.clear()
    assert main(["bench", "install"]) == 0 and ran == ["install"]


def test_levels_off_phrase_finds_the_knee_or_says_still_rising():
    import pandas as pd

    flat = pd.DataFrame({"batch": [1, 4, 16, 64], "img_iter_per_s": [10.0, 80.0, 95.0, 100.0]})
    assert "levels off from a batch of about 16 images" in perf.levels_off_phrase(flat, "X")
    rising = pd.DataFrame({"batch": [64, 1, 16], "img_iter_per_s": [300.0, 8.0, 120.0]})   # unsorted on purpose
    assert "still rising at the largest batch measured (64 images, 300" in perf.levels_off_phrase(rising, "X")
    assert perf.levels_off_phrase(flat.iloc[:0], "X") == ""


def test_variants_table_skips_a_variant_the_backend_refused(tmp_path):
    """A benchmark row that records an ``error`` (a CUDA-graph capture that failed) is left out of the
    table, and the speed-ups stay relative to the plain step."""
    cpu, gpu = _fixtures(tmp_path)
    gpu["runs"][0]["variants"].append({"variant": "TF32 + CUDA graph", "error": "RuntimeError: capture failed"})
    (tmp_path / "attacks-cuda.json").write_text(json.dumps(gpu))
    var = perf.variants(perf.load(tmp_path)).query("device == 'cuda' and model == 'resnet20'").set_index("variant")
    assert "TF32 + CUDA graph" not in var.index
    assert var.loc["TF32", "× plain fp32"] == pytest.approx(3000.0 / 1600.0)


def test_refused_variants_name_each_error_once_with_its_models(tmp_path):
    """A variant refused for both models with the same error is one row naming both models, the device
    and the PyTorch version; another error is a row of its own; the sentence quotes each error."""
    cpu, gpu = _fixtures(tmp_path)
    err = "RuntimeError: The differentiated Tensor at index 0 appears to not have been used in the graph."
    for run in cpu["runs"]:
        run["variants"] = [{"variant": "plain fp32", "img_iter_per_s": 10.0, "max_abs_diff_x_adv": 0.0,
                            "n_steps": 10, "alpha": 1 / 255}, {"variant": "torch.compile (Inductor)", "error": err}]
    gpu["runs"][0]["variants"].append({"variant": "TF32 + CUDA graph", "error": "RuntimeError: capture `g` failed\n\n  at"})
    (tmp_path / "attacks-cpu.json").write_text(json.dumps(cpu))
    (tmp_path / "attacks-cuda.json").write_text(json.dumps(gpu))
    recs = perf.load(tmp_path)
    ref = perf.refused_variants(recs).set_index("variant")
    assert list(ref.loc["torch.compile (Inductor)", ["device", "torch", "models"]]) == ["cpu", "x", ["resnet20", "mobilenet_v2"]]
    assert list(ref.loc["TF32 + CUDA graph", ["device", "device_name", "models"]]) == ["cuda", "Test GPU 80GB", ["resnet20"]]
    text = perf.refused_sentence(recs, {"resnet20": "ResNet-20", "mobilenet_v2": "MobileNetV2"})
    assert text.count("`") == 4 and f"`{err}`" in text and "*torch.compile (Inductor)* on the Test CPU (ResNet-20, MobileNetV2" in text
    assert "plain fp32" not in text and "torch.compile (Inductor)" not in set(perf.variants(recs).variant)
    assert text.endswith("(ResNet-20; PyTorch x): `RuntimeError: capture 'g' failed at`")   # one line, one code span
    _fixtures(tmp_path)
    assert perf.refused_sentence(perf.load(tmp_path)) == "" and perf.refused_variants(perf.load(tmp_path)).empty


@pytest.mark.parametrize("share, text", [(0.0, "0 %"), (0.003, "0.3 %"), (0.0004, "< 0.1 %"), (0.71, "71.0 %"),
                                         (1.0, "100.0 %"), (float("nan"), "–")])
def test_share_text_never_rounds_a_non_zero_share_to_zero(share, text):
    assert perf.share_text(share) == text


def test_share_text_rejects_a_share_outside_zero_one():
    with pytest.raises(ValueError, match="share"):
        perf.share_text(3.0)


def test_reader_labels_replace_the_keys_of_the_benchmark_tables():
    import pandas as pd

    frame = pd.DataFrame({"device": ["cpu", "cuda"], "model": ["resnet20", "mobilenet_v2"],
                          "part": ["grid cells, grad_x_input", "cifar_resnet20: topk/gradcam"]})
    shown = perf.for_reader(frame)
    assert shown.device.tolist() == ["CPU", "GPU"] and shown.model.tolist() == ["ResNet-20", "MobileNetV2"]
    assert shown.part.tolist() == ["grid cells, Grad × Input", "ResNet-20 (CIFAR-10): top-k × Grad-CAM"]
    assert frame.device.tolist() == ["cpu", "cuda"]                  # the keyed frame is left alone
    assert perf.part_label("target_lrp") == "target-map attack, LRP"


@pytest.mark.parametrize("x, text", [(7.4e-08, "7 × 10⁻⁸"), (1.2e-3, "1 × 10⁻³"), (0.0, "0"), (0.25, "0.25"),
                                     (float("nan"), "–")])
def test_sci_text_writes_small_numbers_as_a_reader_would(x, text):
    assert perf.sci_text(x) == text


@pytest.mark.parametrize("page, label", [("notebooks/02a_input_manipulation", "02a Input manipulation"),
                                         ("notebooks/05_explaining_manipulations", "05 Explaining manipulations"),
                                         ("book/data", "Data"), ("book/performance", "Performance"),
                                         ("notebooks/1", "1"), ("02a", "02a")])
def test_page_label_names_pages_as_a_reader_does(page, label):
    assert perf.page_label(page) == label
