"""Autobahn TestSuite conformance on a representative subset, with ``kosoku``.

Runs ``tests/autobahn/run.py`` for wsframe's server (``python -m wsframe
echo``) and client (``tests/autobahn/client.py``), with the C and the pure
Python codec, on a few cases of every section: framing (1-4), fragmentation
(5), UTF-8 (6), closing (7), limits/performance at small sizes (9), misc (10)
and permessage-deflate (12, 13). The whole suite (517 cases) runs in CI
(``.github/workflows/autobahn.yml``) or by hand::

    python tests/autobahn/run.py server --codec both
    python tests/autobahn/run.py client --codec both

Every case must be strictly OK (or INFORMATIONAL): a FAILED, NON-STRICT or
UNIMPLEMENTED case, a wrong close or a missing case fails the test (``--strict``).
Skipped only when kosoku is not installed. kosoku needs Python 3.10+: to test
on PyPy 3.9, put a CPython's kosoku on ``PATH`` (e.g. activate its venv, then
run ``/path/to/pypy-venv/bin/python -m pytest``); kosoku runs on its CPython
and wsframe on the interpreter running pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_c

RUN = Path(__file__).resolve().parents[1] / "autobahn" / "run.py"

CASES = [
    # 1 framing: text and binary, 0 to 64 KiB
    "1.1.1", "1.1.2", "1.1.6", "1.2.1", "1.2.6",
    # 2 pings and pongs
    "2.1", "2.3", "2.5", "2.6", "2.10",
    # 3 reserved bits, 4 reserved opcodes
    "3.1", "3.4", "3.7", "4.1.1", "4.1.3", "4.2.1", "4.2.5",
    # 5 fragmentation
    "5.1", "5.3", "5.6", "5.9", "5.15", "5.19",
    # 6 UTF-8 handling (6.4.x are omitted: they pause a second per case)
    "6.1.1", "6.2.3", "6.3.1", "6.5.1", "6.6.1", "6.8.1", "6.12.1", "6.21.1", "6.23.1",
    # 7 close handling
    "7.1.1", "7.1.6", "7.3.1", "7.3.6", "7.5.1", "7.7.1", "7.9.1", "7.13.1",
    # 9 limits and performance, the small sizes
    "9.1.1", "9.1.2", "9.2.1", "9.2.2", "9.7.1", "9.8.1",
    # 10 auto-fragmentation
    "10.1.1",
    # 12 permessage-deflate, 13 its parameters
    "12.1.1", "12.1.2", "12.1.3", "12.1.4", "12.1.5",
    "13.1.1", "13.1.2", "13.2.1", "13.2.2", "13.2.3", "13.2.4", "13.2.5",
    "13.3.1", "13.5.1", "13.7.1",
]  # fmt: skip

#: Seconds one run (one mode, one codec) may take before run.py gives up.
RUN_TIMEOUT = 300


def _have_kosoku() -> bool:
    """kosoku next to this interpreter (its venv) or on PATH, as run.py looks for it."""
    return (Path(sys.executable).parent / "kosoku").is_file() or bool(shutil.which("kosoku"))


def _extensions_disabled() -> bool:
    return os.environ.get("WSFRAME_NO_EXTENSIONS", "") not in ("", "0")


@pytest.mark.skipif(not _have_kosoku(), reason="kosoku is not installed")
@pytest.mark.parametrize("codec", ["c", "python"])
@pytest.mark.parametrize("mode", ["server", "client"])
def test_autobahn_subset(mode: str, codec: str, tmp_path: Path) -> None:
    if codec == "c":
        if _extensions_disabled():
            pytest.skip("WSFRAME_NO_EXTENSIONS is set: no C codec")
        require_c()  # on PyPy: skipped unless the extension was built
    argv = [sys.executable, str(RUN), mode, "--codec", codec, "--strict"]
    argv += ["--outdir", str(tmp_path), "--timeout", str(RUN_TIMEOUT), "--cases", *CASES]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT + 60)
    except subprocess.TimeoutExpired as exc:  # run.py stops its children itself
        pytest.fail(f"run.py did not finish within {exc.timeout} s:\n{exc.stdout}\n{exc.stderr}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{mode} mode, {codec} codec:\n{output}"
    assert f"{len(CASES)} cases reported" in result.stdout, output
