import os

import pytest

# Tests always run in the quick profile on the CPU, whatever the caller's environment says.
os.environ["XAIFOOL_PROFILE"] = "quick"
os.environ.setdefault("XAIFOOL_DEVICE", "cpu")


@pytest.fixture(scope="session")
def mirror_available():
    from xaifool.config import get_config

    if not get_config().data_dirs:
        pytest.skip("no data mirror (set XAIFOOL_DATA); these tests need the offline data")
    return True


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty artefact cache that is read and written (XAIFOOL_NO_CACHE unset) for one test."""
    from xaifool import config

    monkeypatch.setenv("XAIFOOL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("XAIFOOL_NO_CACHE", raising=False)
    config.get_config.cache_clear()
    yield tmp_path / "cache"
    config.get_config.cache_clear()


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, mirror_available):
    """The whole book built once per test session with ``python -m xaifool book`` (quick profile,
    every chapter executed): (the process's result, the output folder holding ``_build``)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "XAIFOOL_PROFILE": "quick", "XAIFOOL_DEVICE": "cpu"}
    res = subprocess.run([sys.executable, "-m", "xaifool", "book", str(root), "--path-output", str(out)],
                         capture_output=True, text=True, env=env, timeout=2400)
    return res, out
