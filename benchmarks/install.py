"""Installation on a fresh machine: what `make book` and `make test` spend before anything runs.

Creates an empty virtual environment in a temporary folder and times the Makefile's two install
commands there — ``pip install --upgrade pip`` and ``pip install -e '.[book,test]'`` — with pip's
cache off (``--no-cache-dir``), so that every package is fetched from the configured indexes as on
a fresh machine (wheels already on the machine, e.g. pip's ``find-links``, are used as they would
be there). Stores the seconds, the number of packages installed and the command as the
``install`` entry of ``benchmarks/results/book-times-cpu.json``, next to the recorded cold and warm
builds; the Performance page adds it to the cold build for the 15-minute goal. The temporary
environment is deleted afterwards. Needs the package registries (network), ~7 GB of free disk.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xaifool.performance import record_install

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ("python -m venv VENV; VENV/bin/python -m pip install -q --upgrade pip; "
           "VENV/bin/python -m pip install -q -e '.[book,test]'  (PIP_NO_CACHE_DIR=1)")


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="xaifool-install-"))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PIP_NO_CACHE_DIR"] = "1"
    try:
        venv = tmp / "venv"
        py = venv / "bin" / "python"
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"],
                 [str(py), "-m", "pip", "install", "-q", "-e", ".[book,test]"]]
        t0 = time.perf_counter()
        for cmd in steps:
            subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        seconds = time.perf_counter() - t0
        listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], cwd=ROOT, env=env,
                                capture_output=True, text=True, check=True).stdout
        packages = len(json.loads(listed))
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record_install(seconds, command=COMMAND, packages=packages, commit=_commit(),
                   note=f"{os.cpu_count()} cores; environment {size / 2**30:.1f} GiB")
    print(f"fresh installation: {seconds:.0f} s, {packages} packages, {size / 2**30:.1f} GiB "
          "-> benchmarks/results/book-times-cpu.json")


if __name__ == "__main__":
    main()
