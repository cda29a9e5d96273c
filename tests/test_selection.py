"""Codec selection: ``wsframe.implementation`` and ``WSFRAME_NO_EXTENSIONS``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_c

import wsframe
from wsframe import _codec_py

ROOT = Path(__file__).resolve().parent.parent


def _implementation(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("WSFRAME_NO_EXTENSIONS", None)
    if env_value is not None:
        env["WSFRAME_NO_EXTENSIONS"] = env_value
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", "import wsframe; print(wsframe.implementation, wsframe.SIMD_PATH)"],
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
def test_default_selects_c(value: str | None) -> None:
    require_c()
    impl, simd = _implementation(value).split()
    assert impl == "c"
    assert simd in {"avx2", "sse2", "neon", "scalar64"}


def test_in_process_selection() -> None:
    if os.environ.get("WSFRAME_NO_EXTENSIONS", "") not in ("", "0"):
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
