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
