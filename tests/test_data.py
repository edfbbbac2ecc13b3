"""The resolver finds, verifies or refuses files; the loaders return what the MANIFEST documents."""
import hashlib
import shutil

import numpy as np
import pytest
import torch

from xaifool import data
from xaifool.data import REGISTRY, DataFileError, fetch


def test_fetch_finds_mirror_file(mirror_available):
    p = fetch("german_processed.csv")
    assert p.is_file()
    assert hashlib.sha256(p.read_bytes()).hexdigest() in REGISTRY["german_processed.csv"].sha256


def test_wrong_checksum_is_rejected_and_nothing_cached(tmp_path, mirror_available):
    mirror = tmp_path / "mirror"
    target = mirror / REGISTRY["german_processed.csv"].path
    target.parent.mkdir(parents=True)
    shutil.copy(fetch("german_processed.csv"), target)
    with open(target, "ab") as fh:
        fh.write(b"tampered\n")
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="checksum mismatch") as info:
        fetch("german_processed.csv", mirrors=(mirror,), cache_dir=cache)
    msg = str(info.value)
    assert "german_processed.csv" in msg and str(target) in msg and "Fix" in msg
    assert not cache.exists() or not any(cache.rglob("*"))


def test_missing_file_offline_gives_clear_error(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="not found") as info:
        fetch("adult.data", mirrors=(tmp_path / "empty",), cache_dir=cache, download=False)
    msg = str(info.value)
    assert "adult.data" in msg and str(tmp_path / "empty") in msg and "XAIFOOL_DATA" in msg
    assert not cache.exists() or not any(cache.rglob("*"))


@pytest.fixture
def empty_xaifool_data(tmp_path, monkeypatch):
    """XAIFOOL_DATA set to an empty folder, the cache elsewhere, and the downloader not installed."""
    import sys

    from xaifool import config

    folder = tmp_path / "xdata"
    folder.mkdir()
    monkeypatch.setenv("XAIFOOL_DATA", str(folder))
    monkeypatch.setenv("XAIFOOL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "pooch", None)    # `import pooch` now raises ImportError
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path / "clone")   # no ../shared/data beside it, as on a GPU
    config.get_config.cache_clear()
    yield folder
    config.get_config.cache_clear()


def test_a_file_missing_from_xaifool_data_is_named_at_once(empty_xaifool_data):
    """The GPU visit of 2026-12-04: an empty XAIFOOL_DATA stopped with ModuleNotFoundError: pooch.
    Now the file, the folder it should be in and how to fetch it are named, before any download."""
    with pytest.raises(DataFileError) as info:
        fetch("resnet20-12fca82f.th")
    msg = str(info.value)
    assert msg.startswith("resnet20-12fca82f.th: not in XAIFOOL_DATA")
    assert str(empty_xaifool_data / REGISTRY["resnet20-12fca82f.th"].path) in msg
    assert "python -m xaifool fetch" in msg and "pooch" not in msg


def test_a_download_without_the_downloader_says_so(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pooch", None)
    with pytest.raises(DataFileError, match="pooch") as info:
        fetch("adult.data", mirrors=(tmp_path / "empty",), cache_dir=tmp_path / "cache")
    assert "adult.data" in str(info.value) and "XAIFOOL_DATA" in str(info.value)


def test_failed_download_leaves_no_file(tmp_path, monkeypatch):
    # A URL on a closed local port: the download fails at once, as it would offline.
    entry = REGISTRY["adult.data"]
    monkeypatch.setitem(REGISTRY, "adult.data", data.RemoteFile(entry.path, entry.sha256, "http://127.0.0.1:9/adult.data"))
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="download") as info:
        fetch("adult.data", mirrors=(), cache_dir=cache)
    assert "127.0.0.1" in str(info.value)
    assert not any(p.is_file() for p in cache.rglob("*")) if cache.exists() else True


def test_derived_file_without_url_explains_how_to_get_it(tmp_path):
    with pytest.raises(DataFileError, match="cannot be downloaded"):
        fetch("cifar10-test-jpeg-q75.zip", mirrors=(), cache_dir=tmp_path)


def test_unknown_name():
    with pytest.raises(ValueError, match="name"):
        fetch("no-such-file.csv")


def test_imagenet_samples(mirror_available):
    b = data.load_imagenet_samples(6)
    assert b.x.shape == (6, 3, 224, 224) and b.x.dtype == torch.float32
    assert 0.0 <= float(b.x.min()) and float(b.x.max()) <= 1.0
    assert b.y.tolist() == np.linspace(0, 999, 6).round().astype(int).tolist()
    assert len(b.classes) == 1000 and b.classes[0] == "tench"
    assert all(name.startswith(data.imagenet_index().wnid[int(c)]) for name, c in zip(b.names, b.y))
    # both the mirror's resized copy and the original image are accepted
    idx = data.imagenet_index()
    assert (idx.sha256 != idx.orig_sha256).sum() == 903
    with pytest.raises(ValueError, match="n must be"):
        data.load_imagenet_samples(0)


def test_cifar10_splits(mirror_available):
    t = data.load_cifar10("test", 50)
    assert t.x.shape == (50, 3, 32, 32) and t.y.min() >= 0 and t.y.max() <= 9
    assert torch.equal(t.x, data.load_cifar10("test", 50).x)  # seeded subset
    tr = data.load_cifar10("train4000")
    assert tr.x.shape == (4000, 3, 32, 32)
    assert tr.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # known start of data_batch_1
    with pytest.raises(ValueError, match="split"):
        data.load_cifar10("val")


@pytest.mark.parametrize("name, rows, sensitive", [("compas", 6172, "african_american"),
                                                   ("german", 1000, "Male"), ("adult", 30162, "male")])
def test_tabular_row_counts(name, rows, sensitive, mirror_available):
    ds = data.load_tabular(name)
    assert len(ds.frame) == rows
    assert len(ds.X_train) + len(ds.X_test) == rows
    assert ds.sensitive == sensitive and ds.sensitive_index in ds.categorical
    assert set(np.unique(ds.X_train[:, ds.sensitive_index])) == {0.0, 1.0}
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert abs(ds.y_train.mean() - ds.y_test.mean()) < 0.02  # stratified split


def test_adult_raw_rows(mirror_available):
    import pandas as pd

    raw = pd.read_csv(fetch("adult.data"), header=None)
    assert len(raw) == 32561


def test_tabular_bad_name():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_tabular("titanic")
