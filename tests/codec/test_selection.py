"""Codec selection: ``wsframe.implementation``, ``WSFRAME_NO_EXTENSIONS``, PyPy and
``WSFRAME_USE_CEXT``.

The PyPy rules are checked on CPython too, in a subprocess that pretends to be
PyPy (``platform.python_implementation()`` patched before ``import wsframe``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IS_PYPY, require_c

import wsframe
from wsframe import _codec_py

ROOT = Path(__file__).resolve().parents[2]


_PRINT = "import wsframe; print(wsframe.implementation, wsframe.SIMD_PATH)"
_AS_PYPY = "import platform; platform.python_implementation = lambda: 'PyPy'; " + _PRINT


def _implementation(
    env_value: str | None, *, use_cext: str | None = None, as_pypy: bool = False
) -> str:
    env = dict(os.environ)
    env.pop("WSFRAME_NO_EXTENSIONS", None)
    env.pop("WSFRAME_USE_CEXT", None)
    if env_value is not None:
        env["WSFRAME_NO_EXTENSIONS"] = env_value
    if use_cext is not None:
        env["WSFRAME_USE_CEXT"] = use_cext
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", _AS_PYPY if as_pypy else _PRINT],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_no_extensions_selects_python(value: str) -> None:
    assert _implementation(value) == "python python"


@pytest.mark.parametrize("value", [None, "", "0"])
def test_default_selection(value: str | None) -> None:
    """The C codec on CPython; the pure one on PyPy (unless WSFRAME_USE_CEXT=1)."""
    if IS_PYPY:
        assert _implementation(value) == "python python"
        return
    require_c()
    impl, simd = _implementation(value).split()
    assert impl == "c"
    assert simd in {"avx2", "sse2", "neon", "scalar64"}


@pytest.mark.parametrize("use_cext", [None, "", "0"])
def test_pypy_default_selects_python(use_cext: str | None) -> None:
    """On PyPy the JIT-compiled pure codec is the default, built extension or not."""
    assert _implementation(None, use_cext=use_cext, as_pypy=True) == "python python"


@pytest.mark.parametrize("as_pypy", [True, False])
@pytest.mark.parametrize("value", ["1", "yes"])
def test_use_cext_selects_c(value: str, as_pypy: bool) -> None:
    """The extension when asked for on PyPy; on CPython it is the default anyway."""
    require_c()
    impl, simd = _implementation(None, use_cext=value, as_pypy=as_pypy).split()
    assert impl == "c"
    assert simd in {"avx2", "sse2", "neon", "scalar64"}


def test_no_extensions_wins_over_use_cext() -> None:
    assert _implementation("1", use_cext="1", as_pypy=True) == "python python"
    assert _implementation("1", use_cext="1") == "python python"


def test_in_process_selection() -> None:
    if os.environ.get("WSFRAME_NO_EXTENSIONS", "") not in ("", "0") or (
        IS_PYPY and os.environ.get("WSFRAME_USE_CEXT", "") in ("", "0")
    ):
        assert wsframe.implementation == "python"
        assert wsframe.apply_mask is _codec_py.apply_mask
    else:
        c = require_c()
        assert wsframe.implementation == "c"
        assert wsframe.FrameDecoder is c.FrameDecoder
    assert wsframe.SIMD_PATH in {"avx2", "sse2", "neon", "scalar64", "python"}


def test_same_names_exported() -> None:
    names = [
        "apply_mask",
        "mask_inplace",
        "encode_frame",
        "FrameDecoder",
        "Frame",
        "Utf8Validator",
        "validate_utf8",
        "SIMD_PATH",
    ]
    for name in names:
        assert hasattr(_codec_py, name)
    c = require_c()
    for name in names:
        assert hasattr(c, name), name
