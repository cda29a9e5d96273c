"""Shared fixtures: every codec test runs against both the C and the Python codec.

``codec`` is parametrized over ``"c"`` (``wsframe._codec_c``) and ``"python"``
(``wsframe._codec_py``). When the C extension cannot be imported, the ``"c"``
cases are skipped if ``WSFRAME_NO_EXTENSIONS`` is set, and FAIL otherwise, so
that CI never silently tests pure Python only.
"""

from __future__ import annotations

import os
import types
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, settings

from wsframe import _codec_py

settings.register_profile(
    "wsframe",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci-long", parent=settings.get_profile("wsframe"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "wsframe"))


def _extensions_disabled() -> bool:
    return os.environ.get("WSFRAME_NO_EXTENSIONS", "") not in ("", "0")


def _import_c() -> tuple[Optional[types.ModuleType], Optional[BaseException]]:
    try:
        from wsframe import _codec_c
    except ImportError as exc:
        return None, exc
    return _codec_c, None


CODEC_C, CODEC_C_ERROR = _import_c()
CODEC_PY = _codec_py


def require_c() -> types.ModuleType:
    """Return ``wsframe._codec_c``, or skip (extensions disabled) or fail (not built)."""
    if CODEC_C is None:
        if _extensions_disabled():
            pytest.skip(
                "wsframe._codec_c is not importable and WSFRAME_NO_EXTENSIONS is set: "
                "testing the pure-Python codec only"
            )
        pytest.fail(
            "the C extension wsframe._codec_c did not build or cannot be imported "
            f"({CODEC_C_ERROR!r}); build it with `python setup.py build_ext --inplace`, "
            "or set WSFRAME_NO_EXTENSIONS=1 to test the pure-Python codec only",
            pytrace=False,
        )
    return CODEC_C


@pytest.fixture(scope="session", params=["c", "python"])
def codec(request: pytest.FixtureRequest) -> types.ModuleType:
    """The codec module under test: ``wsframe._codec_c`` or ``wsframe._codec_py``."""
    if request.param == "c":
        return require_c()
    return CODEC_PY


@pytest.fixture(scope="session")
def codecs_pair() -> tuple[types.ModuleType, types.ModuleType]:
    """``(wsframe._codec_c, wsframe._codec_py)`` for differential tests."""
    return require_c(), CODEC_PY


def outcome(func: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """Call ``func`` and describe its result or exception in a comparable way."""
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        return ("raise", type(exc), str(exc))
    return ("return", type(result), result)
