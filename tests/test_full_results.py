"""The full profile's code paths, run at tiny sizes (the ``smoke`` profile), and the record schema."""
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from xaifool import config
from xaifool import explain as E
from xaifool.book import experiments as BX
from xaifool.book import full_results
from xaifool.config import REPO_ROOT


def _record(**changes):
    rec = {"schema": full_results.SCHEMA, "chapter": "02a_input_manipulation", "profile": "full", "device": "cuda",
           "device_name": "GPU", "date": "2026-11-27T00:00:00Z", "commit": "abc", "command": "python -m xaifool",
           "torch": "2.11", "seconds": 1.0, "complete": True, "settings": {"attack_iters": 50},
           "numbers": {"curves": {"gradient": {"topk": {"8": {"topk": 0.1}}}}}}
    rec.update(changes)
    return rec


def test_smoke_profile_has_full_settings_and_tiny_sizes():
    s, f = config.SMOKE, config.FULL
    assert s.name == "smoke" and s.seed == f.seed
    # settings that are not sizes stay those of the full profile
    assert s.attack_batch_size == f.attack_batch_size and s.batch_size == f.batch_size
    for name in ("attack_n_cifar", "attack_iters", "attack_iters_imagenet", "dombrowski_iters", "n_tabular_explain"):
        assert getattr(s, name) < getattr(f, name), name
    assert config._profile_from_env("smoke") is config.SMOKE


def test_check_record_accepts_a_valid_record_and_names_what_is_wrong():
    assert full_results.check_record(_record()) is not None
    with pytest.raises(ValueError, match="lacks the field"):
        full_results.check_record({k: v for k, v in _record().items() if k != "commit"})
    with pytest.raises(ValueError, match="chapter must be one of"):
        full_results.check_record(_record(chapter="99_nothing"))
    with pytest.raises(ValueError, match="schema"):
        full_results.check_record(_record(schema="other/1"))
    with pytest.raises(ValueError, match="complete must be"):
        full_results.check_record(_record(complete=1))
    with pytest.raises(ValueError, match="not a finite number"):
        full_results.check_record(_record(numbers={"a": {"b": float("nan")}}))
    with pytest.raises(ValueError, match="holds a"):
        full_results.check_record(_record(numbers={"a": object()}))


def test_write_and_load_round_trip(tmp_path):
    path = full_results.write(_record(), tmp_path)
    assert path.name == "02a_input_manipulation.json"
    assert full_results.load("02a_input_manipulation", tmp_path)["numbers"] == _record()["numbers"]
    assert full_results.load("02a_input_manipulation", tmp_path, profile="quick") is None
    assert full_results.load("08_experiments", tmp_path) is None
    with pytest.raises(ValueError, match="chapter must be one of"):
        full_results.load("nope", tmp_path)
    with pytest.raises(ValueError, match="only must name chapters"):
        full_results.run(["nope"], out_dir=tmp_path)


def test_recorded_results_in_the_repository_follow_the_schema():
    """Every committed record (the GPU runs the book shows) is valid."""
    for p in sorted(full_results.RESULTS_DIR.glob("*.json")):
        rec = full_results.check_record(json.loads(p.read_text()))
        assert p.stem == rec["chapter"]


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_run_rejects_a_bad_number_of_jobs(jobs, tmp_path):
    with pytest.raises(ValueError, match="jobs must be a positive number"):
        full_results.run(["08_experiments"], out_dir=tmp_path, jobs=jobs)
    assert not list(tmp_path.iterdir())   # nothing computed, nothing written


@pytest.fixture(scope="module")
def smoke_run(mirror_available, tmp_path_factory):
    """``python -m xaifool full-results`` once in the smoke profile, for the tests of this module that read
    its records (``out``) or its artefact cache (``cache``) — the script's rehearsal starts from them."""
    root = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "XAIFOOL_PROFILE": "smoke", "XAIFOOL_DEVICE": "cpu", "XAIFOOL_CACHE": str(root / "cache"),
           "OMP_NUM_THREADS": "1"}   # one thread a process, as in the part workers of --jobs 2 on 2 cores
    proc = subprocess.run([sys.executable, "-m", "xaifool", "full-results", "--out", str(root / "full"), "--jobs", "2"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return SimpleNamespace(out=root / "full", cache=root / "cache", env=env)


TIMINGS = ("seconds", "part_seconds", "finetune_seconds", "seconds_per_image")


def _without_timings(obj):
    """A record's numbers without what a clock measured (and with 02a's part list in a fixed order)."""
    if isinstance(obj, dict):
        return {k: sorted(v) if k == "parts" else _without_timings(v) for k, v in obj.items() if k not in TIMINGS}
    return obj


@pytest.mark.slow
def test_part_parallel_records_equal_sequential_ones(smoke_run, tmp_path):
    """The smoke run computed chapter 02b with ``--jobs 2`` (its models in two processes); run one after the
    other here, with an empty artefact cache, every number is the same. (Chapter 02a's attacks go through
    the same ``run_parts``; the resume test below recomputes some of them in one process and compares the
    whole record with the two-process one.)"""
    env = {**smoke_run.env, "XAIFOOL_CACHE": str(tmp_path / "cache")}
    chapters = ("02b_model_manipulation",)
    proc = subprocess.run([sys.executable, "-m", "xaifool", "full-results", "--out", str(tmp_path), "--jobs", "1",
                           "--only", *chapters], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for chapter in chapters:
        parallel = json.loads((smoke_run.out / f"{chapter}.json").read_text())
        sequential = json.loads((tmp_path / f"{chapter}.json").read_text())
        assert parallel["complete"] and sequential["complete"]
        assert _without_timings(parallel["numbers"]) == _without_timings(sequential["numbers"]), chapter
        assert parallel["settings"] == sequential["settings"]


def test_gpu_busy_samples_until_stopped_and_records_carry_it(tmp_path):
    values = iter([50.0, None, 70.0] + [90.0] * 1000)
    sampler = full_results.GpuBusy(period=0.01, read=lambda: next(values))
    import time as _time

    while len(sampler.samples) < 3:
        _time.sleep(0.01)
    sampler.stop()
    n = len(sampler.samples)
    _time.sleep(0.05)
    assert len(sampler.samples) == n and sampler.samples[:2] == [50.0, 70.0]     # None (no reading) is skipped
    summary = sampler.summary()
    assert summary["samples"] == n and summary["mean"] == sum(sampler.samples) / n
    rec = full_results.record("06_sanity_checks", {}, seconds=60.0, run={"jobs": 4, "gpu_busy": summary})
    full_results.write(rec, tmp_path)
    row = {r["chapter"]: r for r in full_results.status(tmp_path, profile=None)}["06_sanity_checks"]
    assert row["jobs"] == 4 and row["gpu_busy"] == summary["mean"] and row["per_minute"] == 0.0
    with pytest.raises(ValueError, match="run"):
        full_results.check_record({**rec, "run": {"gpu_busy": {"mean": float("nan")}}})


def test_parts_merge_as_one_run_would():
    """merge_numbers adds the attack families' seconds and merges nested numbers key by key."""
    out = {"seconds": {"grid": 1.0}, "curves": {"gradient": {"topk": {"1": 0.1}}}}
    full_results.merge_numbers(out, {"seconds": {"grid": 2.0, "dombrowski_lrp": 3.0},
                                     "curves": {"gradient": {"topk": {"2": 0.2}}, "lrp": {}}, "k": 20})
    assert out == {"seconds": {"grid": 3.0, "dombrowski_lrp": 3.0}, "k": 20,
                   "curves": {"gradient": {"topk": {"1": 0.1, "2": 0.2}}, "lrp": {}}}
    seen = []
    full_results.run_parts(["a", "b"], str.upper, 1, lambda k, v, s: seen.append((k, v, s >= 0)))
    assert seen == [("a", "A", True), ("b", "B", True)]
    with pytest.raises(ValueError, match="jobs"):
        full_results.run_parts(["a"], str.upper, 0, print)


def test_a_failing_part_stops_a_parallel_run_after_recording_the_others():
    """Parts in two spawned processes: the numbers arrive as each finishes; a part that fails raises its own
    error, after the parts already done are recorded (and no queued one is started)."""
    seen = {}
    full_results.run_parts(["1", "2", "3"], int, 2, lambda k, v, s: seen.update({k: v}))
    assert seen == {"1": 1, "2": 2, "3": 3}
    seen.clear()
    with pytest.raises(ValueError, match="invalid literal"):
        full_results.run_parts(["1", "x", "2"], int, 2, lambda k, v, s: seen.update({k: v}))
    assert "x" not in seen and set(seen) <= {"1", "2"}


@pytest.mark.slow
def test_full_profile_code_paths_run_at_smoke_sizes(smoke_run, tmp_path):
    """``python -m xaifool full-results`` in the smoke profile: every chapter's paper-scale path runs
    end to end (a reader with a GPU must not discover a crash after an hour) and writes valid records."""
    from xaifool.book import experiments as X

    env = dict(smoke_run.env)
    out = tmp_path / "full"
    shutil.copytree(smoke_run.out, out)   # its records are cut below
    for chapter in full_results.CHAPTERS:
        rec = full_results.check_record(json.loads((out / f"{chapter}.json").read_text()))
        assert rec["profile"] == "smoke" and rec["complete"] and rec["device"] == "cpu"
        key = {"02a": "attack_iters", "02b": "heo_epochs", "05": "defence_n", "06": "sanity_samples",
               "07": "noise_samples", "08": "n_tabular_explain"}[chapter[:3].rstrip("_")]
        assert rec["settings"][key] == {"heo_epochs": 1}.get(key, 2)
    heo = json.loads((out / "02b_model_manipulation.json").read_text())["numbers"]
    assert set(heo["cifar_resnet20"]) == {f"{a}/{m}" for a, m in config.SMOKE.heo_grid}
    assert set(heo["mobilenet_v2"]) == {f"{a}/{m}" for a, m in config.SMOKE.heo_imagenet_grid}
    for row in (*heo["cifar_resnet20"].values(), *heo["mobilenet_v2"].values()):
        assert 0 <= row["fsr"] <= 1 and 0 <= row["accuracy_adv"] <= 1 and row["fsr_unmodified"] == 0.0
    for pair, row in heo["cifar_resnet20"].items():   # SmoothGrad and IG on the passively fooled models
        assert (set(row.get("transfer", {})) == {"smoothgrad", "integrated_gradients"}) == (pair.split("/")[0] != "swap")
        assert all(0 <= v <= 1 for v in row.get("transfer", {}).values())
    num = json.loads((out / "02a_input_manipulation.json").read_text())["numbers"]
    assert set(num["curves"]) == {"gradient", "grad_x_input", "integrated_gradients", "smoothgrad", "gradcam", "lrp"}
    assert set(num["curves"]["gradient"]) == {"random", "topk", "center"}
    for m in ("gradient", "lrp"):
        assert 0 <= num["imagenet"][m]["topk"]["topk"] <= 1 and num["dombrowski"][m]["label_kept"] == 1.0
    expl = json.loads((out / "05_explaining_manipulations.json").read_text())["numbers"]
    assert set(expl) >= {"curvature", "defences", "input_detectors", "model_detectors"}
    assert all(0 <= v["auc_attack"] <= 1 for v in expl["input_detectors"].values() if isinstance(v, dict))
    board = json.loads((out / "07_benchmarking.json").read_text())["numbers"]
    assert set(board["cells"]) == set(E.names(modality="image"))
    for by_column in board["cells"].values():
        for cell in by_column.values():   # an estimate with its n, or an empty cell that says why
            assert (cell["n"] >= 1 and cell["estimate"] is not None) or (cell["n"] == 0 and cell["why"])
    san = json.loads((out / "06_sanity_checks.json").read_text())["numbers"]
    for key in ("mobilenet_v2", "cifar_resnet20"):
        assert set(san[key]["methods"]) == set(BX.SANITY_METHODS) and san[key]["n_images"] >= 1
        assert all(-1 <= v["after_all"] <= 1 and isinstance(v["passes"], bool)
                   for v in san[key]["methods"].values())
    # each part is timed: 02a's attacks, 02b's models, 06's networks
    assert set(num["part_seconds"]) == set(num["parts"]) == set(X.input_part_names())
    assert all(v > 0 for v in num["part_seconds"].values())
    assert all(row["seconds"] >= row["finetune_seconds"] > 0 for row in (*heo["cifar_resnet20"].values(),
                                                                       *heo["mobilenet_v2"].values()))
    assert all(san[key]["seconds"] > 0 for key in ("mobilenet_v2", "cifar_resnet20"))
    tab = json.loads((out / "08_experiments.json").read_text())["numbers"]
    assert set(tab["slack"]) == set(tab["slack_settings"]) == {"compas", "german", "adult"}
    assert set(tab["dimanov"]) >= {"compas", "german"}
    # --resume: a record cut back to an unfinished run is completed with a fresh artefact cache (as on
    # the next, bare GPU machine) and gives the same numbers: every part is seeded by its own settings
    cut = {"02a_input_manipulation": ("grid/gradient/topk/2", "target_gradient", "imagenet_lrp"),
           "02b_model_manipulation": ("topk/gradcam",)}
    whole = {c: json.loads((out / f"{c}.json").read_text()) for c in cut}
    for chapter, parts in cut.items():
        rec = copy.deepcopy(whole[chapter])
        n = rec["numbers"]
        if chapter.startswith("02a"):
            n["parts"] = [p for p in n["parts"] if p not in parts]
            del n["curves"]["gradient"]["topk"]["2"], n["dombrowski"]["gradient"], n["imagenet"]["lrp"]
        else:
            del n["cifar_resnet20"]["topk/gradcam"]
        rec["complete"] = False
        full_results.write(rec, out)
    env["XAIFOOL_CACHE"] = str(tmp_path / "cache2")
    proc = subprocess.run([sys.executable, "-m", "xaifool", "full-results", "--out", str(out), "--resume",
                           "--only", *cut], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("resuming") == 2
    for chapter in cut:
        again = json.loads((out / f"{chapter}.json").read_text())
        assert again["complete"] and again["seconds"] > whole[chapter]["seconds"]   # this run's seconds added
        a, b = again["numbers"], whole[chapter]["numbers"]
        if chapter.startswith("02a"):
            assert sorted(a.pop("parts")) == sorted(b.pop("parts"))
            a.pop("seconds"), b.pop("seconds"), a.pop("part_seconds"), b.pop("part_seconds")
            for m in ("gradient", "lrp"):
                a["imagenet"][m]["random"].pop("seconds_per_image"), a["imagenet"][m]["topk"].pop("seconds_per_image")
                b["imagenet"][m]["random"].pop("seconds_per_image"), b["imagenet"][m]["topk"].pop("seconds_per_image")
        else:
            for rows in (a, b):
                for row in (*rows["cifar_resnet20"].values(), *rows["mobilenet_v2"].values()):
                    row.pop("finetune_seconds"), row.pop("seconds")
        assert a == b, chapter


def test_input_part_names_are_the_parts_in_their_order():
    """``input_part_names`` (how the 02a chapter counts an unfinished record's parts) lists exactly
    the parts ``input_parts`` builds, and the full-results order runs each of them once."""
    from xaifool.book import experiments as X

    s = X.InputSetup(model=None, x=None, y=None, classes=(), n_pool=0, k=1, options={})  # parts are built, not run
    for imagenet in (True, False):
        names = list(X.input_parts(config.SMOKE, s, imagenet=imagenet))
        assert names == X.input_part_names(imagenet=imagenet)
        assert len(names) == len(set(names)) == 6 * 4 * 3 + 3 + 2 * imagenet
    order = full_results._input_order(X.input_part_names())
    assert sorted(order) == sorted(X.input_part_names()) and order[-1] == "target_lrp"
    assert not any(n.startswith(("grid/smoothgrad", "grid/integrated")) for n in order[:40])


def _partial_records():
    """An unfinished record per GPU chapter (02a: 3 attacks timed; 02b: 2 of 17 models; 06: 1 network)."""
    from xaifool.book import experiments as X

    names = X.input_part_names()
    a = _record(complete=False, seconds=30.0, numbers={
        "parts": [names[0], names[1], "target_lrp"],
        "part_seconds": {names[0]: 1.5, names[1]: 2.5, "target_lrp": 20.0}})
    grid = tuple((at, m) for at in ("location", "topk", "center", "swap") for m in ("gradcam", "lrp", "gradient"))
    b = _record(chapter="02b_model_manipulation", complete=False, seconds=40.0,
                settings={"heo_grid": [list(p) for p in grid], "heo_imagenet_grid": [["topk", "gradcam"]] * 5},
                numbers={"cifar_resnet20": {"location/gradcam": {"fsr": 0.9, "seconds": 12.0},
                                            "topk/gradcam": {"fsr": 0.8}}})
    c = _record(chapter="06_sanity_checks", complete=False, seconds=50.0,
                numbers={"mobilenet_v2": {"n_images": 16, "seconds": 45.0}})
    return a, b, c


def test_progress_counts_the_parts_a_record_holds():
    a, b, c = _partial_records()
    assert full_results.progress(a) == (3, 77, "attacks")
    assert full_results.progress(b) == (2, 17, "models")
    assert full_results.progress(c) == (1, 2, "networks")
    assert full_results.progress({**c, "complete": True}) == (1, 2, "networks")   # counted, not assumed
    assert full_results.progress({**a, "complete": True, "numbers": {}}) == (77, 77, "attacks")  # before parts were listed
    assert full_results.progress({**a, "numbers": {"parts": ["grid/gradient/topk/3", "region"]}})[0] == 1  # stale names
    tab = _record(chapter="08_experiments", complete=False,
                  numbers={"slack": {"compas": {"lime": {}, "kernel_shap": {}}}, "slack_settings": {}, "dimanov": {}})
    assert full_results.progress(tab) == (2, 15, "experiments")
    with pytest.raises(ValueError, match="schema"):
        full_results.progress({**a, "schema": "x"})
    # every committed record: a complete one has done all its parts, an unfinished one fewer
    for p in sorted(full_results.RESULTS_DIR.glob("*.json")):
        rec = json.loads(p.read_text())
        done, total, _ = full_results.progress(rec)
        assert (done == total) == rec["complete"] and 0 <= done <= total, p.name


def test_status_lists_every_chapter_and_the_command_prints_it(tmp_path, capsys):
    from xaifool.__main__ import main

    for rec in _partial_records():
        full_results.write(rec, tmp_path)
    rows = {r["chapter"]: r for r in full_results.status(tmp_path)}
    assert list(rows) == list(full_results.CHAPTERS)
    assert rows["08_experiments"] == {"chapter": "08_experiments", "recorded": False}
    assert rows["02b_model_manipulation"]["done"] == 2 and rows["02b_model_manipulation"]["seconds"] == 40.0
    assert full_results.status(tmp_path, profile="quick")[0]["recorded"] is False
    assert main(["full-results", "--status", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(full_results.CHAPTERS) and "3 of 77 attacks" in out[0] and "no run recorded" in out[-1]


@pytest.mark.slow
def test_gpu_visit_script_rehearsed_on_the_cpu(smoke_run, tmp_path):
    """``benchmarks/gpu_run.sh`` as a GPU visit runs it (results under RESULTS_TO, chapters side by side,
    --resume of the committed records, the status table), at smoke sizes on the CPU: a visit of minutes
    must not find a broken script. The tree is a copy (RESULTS_TO moves the committed results aside)
    whose committed records are the smoke run's: chapter 06 complete, 02b without one model, which the
    visit computes (from the smoke run's artefact cache: this tests the script, not the numbers)."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "benchmarks", repo / "benchmarks", ignore=shutil.ignore_patterns("logs"))
    records = repo / "benchmarks/results/full"
    smoke = {c: json.loads((smoke_run.out / f"{c}.json").read_text()) for c in ("06_sanity_checks", "02b_model_manipulation")}
    cut = copy.deepcopy(smoke["02b_model_manipulation"])
    del cut["numbers"]["cifar_resnet20"]["topk/gradcam"]
    cut["complete"] = False
    full_results.write(cut, records), full_results.write(smoke["06_sanity_checks"], records)
    committed = {p.name: p.read_text() for p in records.glob("*.json")}
    chapters = ["06_sanity_checks", "02b_model_manipulation"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "RUN_PROFILE": "smoke", "RUN_DEVICE": "cpu", "BENCH": "0", "TAB": "0", "PARALLEL": "1",
           "CHAPTERS": " ".join(chapters), "RESULTS_TO": str(tmp_path / "out/r"), "LOGS": str(tmp_path / "logs"),
           "XAIFOOL_CACHE": str(smoke_run.cache), "XAIFOOL_COMMIT": "rehearsal", "TMPDIR": str(tmp_path)}
    args = ["bash", str(repo / "benchmarks/gpu_run.sh"), str(tmp_path / "no-wheels"), str(config.get_config().data_dirs[0]), "400"]
    # a profile other than full without RESULTS_TO would write over the committed records: refused
    bare = {k: v for k, v in env.items() if k != "RESULTS_TO"}
    proc = subprocess.run(args, env=bare, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "RUN_PROFILE=smoke needs RESULTS_TO" in proc.stderr
    assert {p.name: p.read_text() for p in records.glob("*.json")} == committed
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out, results = proc.stdout, tmp_path / "out/r/full"
    aside = next(tmp_path.glob("tmp.*/results-committed"))   # where the script says it moved them
    assert f"committed results moved aside to {aside}" in out and (aside / "full/08_experiments.json").exists()
    for chapter in chapters:
        assert f"{chapter}: rc 0" in out and (tmp_path / "logs" / f"{chapter}.log").stat().st_size > 0, out[-3000:]
    assert "[06_sanity_checks]    06_sanity_checks: its record is complete; nothing to resume" in out
    assert (results / "06_sanity_checks.json").read_text() == committed["06_sanity_checks.json"]
    assert "[02b_model_manipulation]    resuming 02b_model_manipulation from its record" in out
    rec = full_results.check_record(json.loads((results / "02b_model_manipulation.json").read_text()))
    assert rec["complete"] and rec["profile"] == "smoke" and rec["commit"] == "rehearsal"
    assert rec["command"].startswith("XAIFOOL_PROFILE=smoke XAIFOOL_DEVICE=cpu python -m xaifool full-results "
                                     "--only 02b_model_manipulation --jobs 1 (benchmarks/gpu_run.sh, PARALLEL=1")
    assert rec["run"]["jobs"] == 1   # GPU_JOBS defaults to 1 on a CPU (4 on a GPU)
    assert set(rec["numbers"]["cifar_resnet20"]) == set(smoke["02b_model_manipulation"]["numbers"]["cifar_resnet20"])
    # the committed records of chapters not run travel untouched; the status table at the end reads
    # the results folder: one line per chapter, saying what each record holds
    for name, text in committed.items():
        if name[:-5] not in chapters:
            assert (results / name).read_text() == text
    for chapter in full_results.CHAPTERS:
        line = next(x for x in out.splitlines() if x.startswith(chapter))
        rec = full_results.load(chapter, results, profile=None)
        want = "no run recorded" if rec is None else f"{rec['profile']} "
        assert want in line and (rec is None or (" complete " in line) == rec["complete"]), line
    assert (repo / "benchmarks/results").is_symlink() and (repo / "benchmarks/results").resolve() == results.parent
