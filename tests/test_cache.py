import pytest
import torch

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


def test_key_depends_on_package_code(monkeypatch):
    from xaifool import cache

    before = cache_key("a", {"x": 1})
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "different code")
    assert cache_key("a", {"x": 1}) != before
