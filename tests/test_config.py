import dataclasses
import subprocess
import sys

import pytest
import torch

from xaifool import config


def test_profiles_differ_only_in_sizes():
    q, f = config.QUICK, config.FULL
    assert q.name == "quick" and f.name == "full" and q.seed == f.seed
    for field in dataclasses.fields(config.Profile):
        if field.name in ("name", "seed"):
            continue
        vq, vf = getattr(q, field.name), getattr(f, field.name)
        if isinstance(vq, (int, float)) and not isinstance(vq, bool):
            if vf is None:  # a cap set to None: no cap, larger than any number (scaffold_detector_max_rows)
                assert field.name.endswith("_max_rows"), f"{field.name}: None in full, a number in quick"
                continue
            assert vf >= vq, f"full profile should not be smaller than quick for {field.name}"


def test_profile_from_env():
    assert config._profile_from_env(None) is config.QUICK
    assert config._profile_from_env(" FULL ") is config.FULL
    with pytest.raises(ValueError, match="XAIFOOL_PROFILE"):
        config._profile_from_env("fast")


def test_device_from_env():
    assert config._device_from_env("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="XAIFOOL_DEVICE"):
            config._device_from_env("cuda")
    with pytest.raises(ValueError, match="XAIFOOL_DEVICE"):
        config._device_from_env("tpu:7x")


def test_override_rejects_unknown_fields():
    assert config.override(n_images=3).n_images == 3
    with pytest.raises(ValueError, match="unknown profile field"):
        config.override(n_imgs=3)


def test_full_profile_on_cpu_warns(tmp_path):
    code = ("import warnings, xaifool.config as c\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always'); cfg = c.get_config()\n"
            "print(cfg.profile.name, any('slow' in str(x.message) or 'long time' in str(x.message) for x in w))")
    env = {"XAIFOOL_PROFILE": "full", "XAIFOOL_DEVICE": "cpu", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["full", "True"]


def test_seed_everything_is_deterministic():
    config.seed_everything(3)
    a = torch.rand(4)
    config.seed_everything(3)
    assert torch.equal(a, torch.rand(4))
