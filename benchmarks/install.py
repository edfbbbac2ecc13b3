"""Installation on a fresh machine: what `make book` and `make test` spend before anything runs.

Runs the Makefile's own ``install`` target into an empty virtual environment in a temporary
folder (``make install VENV=<tmp>``: a venv, ``pip install --upgrade pip``, then the packages with
the installer the Makefile uses — uv by default, ``INSTALLER=pip`` for pip alone) with the
installers' caches off (``PIP_NO_CACHE_DIR=1``, ``UV_NO_CACHE=1``), so that every package is
fetched from the indexes as on a fresh machine. Stores the seconds, the number of packages
installed and the command as the ``install`` entry of ``benchmarks/results/book-times-cpu.json``,
next to the recorded cold and warm builds; the Performance page adds it to the cold build for the
15-minute goal. The temporary environment is deleted afterwards. Needs the package registries
(network) and ~7 GB of free disk. ``INSTALLER=pip python -m xaifool bench install`` times pip.
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

from xaifool.book.performance import load_book_times, record_install

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = os.environ.get("INSTALLER", "uv")
COMMAND = f"make install VENV=VENV INSTALLER={INSTALLER}  (PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1)"


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="xaifool-install-"))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PIP_NO_CACHE_DIR="1", UV_NO_CACHE="1")
    try:
        venv = tmp / "venv"
        py = venv / "bin" / "python"
        t0 = time.perf_counter()
        subprocess.run(["make", "--no-print-directory", "install", f"VENV={venv}", f"INSTALLER={INSTALLER}",
                        f"PYTHON={sys.executable}"], cwd=ROOT, env=env, check=True)
        seconds = time.perf_counter() - t0
        listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], cwd=ROOT, env=env,
                                capture_output=True, text=True, check=True).stdout
        packages = len(json.loads(listed))
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    note = f"{os.cpu_count()} cores; environment {size / 2**30:.1f} GiB"
    before = (load_book_times() or {}).get("install")
    if before and before["command"] != COMMAND:   # keep the comparison with the installation it replaces
        note += f"; before: {before['seconds']:.0f} s with {before['command']} at {before['commit']}"
    record_install(seconds, command=COMMAND, packages=packages, commit=_commit(), note=note)
    print(f"fresh installation: {seconds:.0f} s, {packages} packages, {size / 2**30:.1f} GiB "
          "-> benchmarks/results/book-times-cpu.json")


if __name__ == "__main__":
    main()
