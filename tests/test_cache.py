import functools
import pytest
import torch

from xaifool import cache as C
from xaifool.cache import cache_key, cached


def test_cached_computes_once_and_reloads(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(4.0), "acc": 0.5}

    a = cached("thing", {"lr": 0.1}, compute, cache_dir=tmp_path)
    b = cached("thing", {"lr": 0.1}, compute, cache_dir=tmp_path)
    assert len(calls) == 1 and torch.equal(a["w"], b["w"]) and b["acc"] == 0.5
    cached("thing", {"lr": 0.2}, compute, cache_dir=tmp_path)
    assert len(calls) == 2


def test_failed_compute_leaves_nothing(tmp_path):
    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cached("thing", {}, boom, cache_dir=tmp_path)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_unpicklable_value_leaves_no_partial_file(tmp_path):
    with pytest.raises(Exception):
        cached("thing", {}, lambda: {"f": lambda: 1}, cache_dir=tmp_path)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_key_depends_on_settings_and_tensor_content():
    assert cache_key("a", {"x": 1}) != cache_key("a", {"x": 2})
    assert cache_key("a", {"t": torch.ones(3)}) == cache_key("a", {"t": torch.ones(3)})
    assert cache_key("a", {"t": torch.ones(3)}) != cache_key("a", {"t": torch.zeros(3)})
    with pytest.raises(ValueError, match="settings"):
        cache_key("a", {"f": object()})


# ---------------------------------------------------------------------------------------
# Keys follow the source of the modules an artefact depends on, and nothing else
# ---------------------------------------------------------------------------------------

_REAL_READ = C._read_source


@pytest.fixture
def edit(monkeypatch):
    """``edit("plot.py", ...)``: the cache sees those package files changed (the real files are untouched)."""
    monkeypatch.delenv("XAIFOOL_NO_CACHE", raising=False)
    edits: dict[str, bytes] = {}

    def read(relpath):
        return _REAL_READ(relpath) + edits.get(relpath, b"")

    def apply(*relpaths, text=b"\n# an edit\n"):
        for rel in relpaths:
            assert rel in C.package_modules().values(), rel
            edits[rel] = edits.get(rel, b"") + text
        C.clear_fingerprints()  # sources are otherwise read once per process

    monkeypatch.setattr(C, "_read_source", read)
    C.clear_fingerprints()
    yield apply
    C.clear_fingerprints()


def test_key_depends_on_package_code(edit):
    before = cache_key("a", {"x": 1})
    edit("models.py")
    assert cache_key("a", {"x": 1}) != before


def test_key_depends_on_the_installed_library_versions(monkeypatch):
    """An upgraded shap (or torch, …) must not be answered with an artefact the old one computed."""
    from importlib.metadata import version

    assert dict(C.library_versions())["shap"] == version("shap")
    assert dict(C.library_versions())["torch"] == torch.__version__
    C.clear_fingerprints()
    before = cache_key("a", {"x": 1})
    upgraded = tuple((n, v + ".post1" if n == "shap" else v) for n, v in C.library_versions())
    monkeypatch.setattr(C, "library_versions", functools.lru_cache()(lambda: upgraded))
    C.clear_fingerprints()
    try:
        assert cache_key("a", {"x": 1}) != before
    finally:
        monkeypatch.undo()
        C.clear_fingerprints()
    assert cache_key("a", {"x": 1}) == before


@pytest.mark.parametrize("depends, attack_file", [
    (("xaifool.attacks.input",), "attacks/input.py"),       # e.g. Heo et al.'s fine-tuning next to the input attacks
    (("xaifool.attacks.scaffold.data", "xaifool.training"), "attacks/scaffold/data.py"),  # Dimanov's concealment
    (None, "attacks/input.py"),                            # the default: every module but plot / __main__
])
def test_plot_edit_keeps_a_finetuned_model_but_an_attack_edit_recomputes_it(tmp_path, edit, depends, attack_file):
    calls = []

    def finetune():  # stands in for an hour of fine-tuning on the GPU
        calls.append(1)
        return {"state_dict": {"w": torch.randn(3, generator=torch.Generator().manual_seed(len(calls)))}}

    settings = {"lr": 1e-3, "epochs": 40}
    first = cached("mock-finetune", settings, finetune, depends=depends, cache_dir=tmp_path)
    key = cache_key("mock-finetune", settings, depends)

    edit("plot.py", "__main__.py")  # a figure's style, the command line
    assert cache_key("mock-finetune", settings, depends) == key
    again = cached("mock-finetune", settings, finetune, depends=depends, cache_dir=tmp_path)
    assert len(calls) == 1 and torch.equal(again["state_dict"]["w"], first["state_dict"]["w"])

    edit(attack_file)  # the code that computes the model
    assert cache_key("mock-finetune", settings, depends) != key
    cached("mock-finetune", settings, finetune, depends=depends, cache_dir=tmp_path)
    assert len(calls) == 2


def test_dependencies_are_followed_through_imports(edit):
    """``models`` imports ``data`` (and ``training`` inside a function) but not ``explain``."""
    deps = ("xaifool.models",)
    key = cache_key("m", {}, deps)
    edit("explain/api.py")
    assert cache_key("m", {}, deps) == key
    edit("data.py")
    assert cache_key("m", {}, deps) != key
    key = cache_key("m", {}, deps)
    edit("training.py")
    assert cache_key("m", {}, deps) != key


def test_a_new_import_inside_a_function_joins_the_closure(edit):
    deps = ("xaifool.models",)
    assert "xaifool.metrics" not in C.dependency_closure(deps)
    edit("models.py", text=b"\n\ndef _later():\n    from .metrics import spearman\n    return spearman\n")
    assert "xaifool.metrics" in C.dependency_closure(deps)
    key = cache_key("m", {}, deps)
    edit("metrics.py")
    assert cache_key("m", {}, deps) != key


def test_a_file_that_does_not_parse_counts_as_importing_everything(edit):
    edit("models.py", text=b"\n\ndef half_written(:\n")
    closure = set(C.dependency_closure(("xaifool.models",)))
    assert set(C.default_depends()) <= closure and not any(C.is_presentation(m) for m in closure)


def test_real_closures_of_the_book_artefacts():
    C.clear_fingerprints()
    closure = set(C.dependency_closure(("xaifool.attacks.input",)))
    assert {"xaifool.config", "xaifool.explain", "xaifool.metrics", "xaifool.models", "xaifool.data",
            "xaifool.attacks.input"} <= closure
    # the scaffolding experiment: its figures are in plot, which is never walked into
    tabular = set(C.dependency_closure(("xaifool.attacks.scaffold.experiment",)))
    assert {"xaifool.training", "xaifool.models", "xaifool.explain", "xaifool.data"} <= tabular
    assert not any(C.is_presentation(m) for m in closure | tabular | set(C.default_depends()))
    assert "xaifool.explain" not in C.dependency_closure(("xaifool.models",))
    # named explicitly, a presentation module does count
    assert "xaifool.plot" in C.dependency_closure(("xaifool.plot",))


def test_depends_accepts_names_short_names_and_modules():
    from xaifool import models

    keys = {cache_key("a", {}, d) for d in [("xaifool.models",), ("models",), (models,), "xaifool.models",
                                             ("xaifool.models", "xaifool.models")]}
    assert len(keys) == 1
    assert cache_key("a", {}, ("xaifool.models",)) != cache_key("a", {}, ("xaifool.models", "xaifool.explain"))
    assert cache_key("a", {}) == cache_key("a", {}, C.default_depends())


def test_unknown_dependency_raises_and_lists_the_modules(tmp_path):
    with pytest.raises(ValueError, match=r"depends.*'xaifool\.attack\.input'.*xaifool\.attacks\.input"):
        cached("a", {}, lambda: 1, depends=("xaifool.attack.input",), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="^depends"):
        cache_key("a", {}, ("numpy",))
    with pytest.raises(ValueError, match="^depends"):
        cache_key("a", {}, ())
    with pytest.raises(ValueError, match="^depends"):
        cache_key("a", {}, 3)
    assert not any(tmp_path.rglob("*"))


def test_module_digest_follows_what_the_network_computes_with():
    import copy

    import torch.nn as nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU()).eval()
    d = C.module_digest(net)
    assert C.module_digest(copy.deepcopy(net)) == d           # content, not identity
    changed = {}
    for what, edit in {
        "one weight": lambda m: m[0].weight.data[0, 0].add_(1e-6),
        "a buffer": lambda m: m[1].running_var.data.mul_(2),
        "a counter": lambda m: m[1].num_batches_tracked.add_(1),
        "train mode": lambda m: m[2].train(),
        "a module class": lambda m: m.__setitem__(2, nn.GELU()),
        "a dtype": lambda m: m.double(),
        "a setting (BatchNorm eps)": lambda m: setattr(m[1], "eps", 1e-3),
        "a named layer attribute": lambda m: setattr(m, "cam_layer", "1"),
        "a non-persistent buffer": lambda m: m[0].register_buffer("scale", torch.ones(1), persistent=False),
        "a forward hook": lambda m: m[0].register_forward_hook(lambda *a: None),
    }.items():
        other = copy.deepcopy(net)
        edit(other)
        changed[what] = C.module_digest(other) != d
    assert all(changed.values()), changed
    assert C.module_digest(net) == d                          # reading it changes nothing
    beta = nn.Sequential(nn.Linear(4, 3), nn.Softplus(beta=1.0))
    before = C.module_digest(beta)
    beta[1].beta = 5.0                                        # as models.set_beta does, in place
    assert C.module_digest(beta) != before
    with pytest.raises(ValueError, match="^module must be"):
        C.module_digest({"weight": torch.zeros(1)})


def test_cached_call_is_keyed_by_what_the_call_depends_on(tmp_cache):
    import copy

    import torch.nn as nn

    calls = []

    def f(net, x, *, scale=1.0):
        calls.append(scale)
        with torch.no_grad():
            return {"y": net(x) * scale}

    def call(net, x, **kw):
        return C.cached_call("test-call", f, net, x, depends=("xaifool.cache",), **kw)

    torch.manual_seed(0)
    net, x = nn.Linear(3, 2), torch.randn(4, 3)
    first = call(net, x, scale=2.0)
    assert torch.equal(first["y"], net(x).detach() * 2.0)
    again = call(copy.deepcopy(net), x.clone(), scale=2.0)          # equal content: loaded, not run
    assert len(calls) == 1 and torch.equal(again["y"], first["y"])
    other = copy.deepcopy(net)
    with torch.no_grad():
        other.bias[0] += 1.0
    call(other, x, scale=2.0)
    call(net, x + 1, scale=2.0)
    call(net, x, scale=3.0)
    assert len(calls) == 4                                          # weight, image, option: recomputed
    assert len(list((tmp_cache / "test-call").glob("*.pt"))) == 4
    # encode/decode: stored as weights_only-readable values, returned decoded both times
    for _ in range(2):
        got = C.cached_call("test-call", f, net, x, depends=("xaifool.cache",), encode=lambda d: d["y"].tolist(),
                            decode=lambda v: torch.tensor(v))
        assert torch.allclose(got, first["y"] / 2.0)
    assert len(calls) == 5
    with pytest.raises(ValueError, match="^fn must be callable"):
        C.cached_call("test-call", "f", net, x)


def test_no_cache_recomputes_and_leaves_the_cache_alone(tmp_path, monkeypatch):
    calls = []

    def compute():
        calls.append(1)
        return torch.full((2,), float(len(calls)))

    assert torch.equal(cached("t", {"a": 1}, compute, cache_dir=tmp_path, depends=("xaifool.cache",)), torch.ones(2))
    path = C.cache_path("t", {"a": 1}, tmp_path, depends=("xaifool.cache",))
    stored = path.read_bytes()
    monkeypatch.setenv("XAIFOOL_NO_CACHE", "1")
    got = cached("t", {"a": 1}, compute, cache_dir=tmp_path, depends=("xaifool.cache",))
    assert torch.equal(got, torch.full((2,), 2.0)) and path.read_bytes() == stored      # not read, not replaced
    cached("t", {"a": 2}, compute, cache_dir=tmp_path, depends=("xaifool.cache",))
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [path.name]            # nothing new written
    monkeypatch.delenv("XAIFOOL_NO_CACHE")
    assert torch.equal(cached("t", {"a": 1}, compute, cache_dir=tmp_path, depends=("xaifool.cache",)), torch.ones(2))
    assert len(calls) == 3
