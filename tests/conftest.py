"""Shared fixtures: every test runs against both the compiled modules and their twins.

The suite runs twice: ``python -m pytest`` on the compiled modules (codec,
assembler, connection, driver core), then ``WSFRAME_NO_EXTENSIONS=1 python -m
pytest`` on their pure-Python twins (the README's test command does both).
Without ``WSFRAME_NO_EXTENSIONS`` the session refuses to start if the
compiled modules cannot be imported, so that CI never silently tests pure
Python only. ``active_codec`` is the codec module of the run.

The codec tests also compare both codecs directly in the same process:
``codec`` is parametrized over ``"c"`` (``wsframe._codec_c``) and ``"python"``
(``wsframe._codec_py``); in the twins' run the ``"c"`` cases, which the first
run covered, are deselected.

On PyPy the twins are the default (``wsframe._implementation``) and the
compiled modules are only built when asked for (``WSFRAME_USE_CEXT=1 pip
install -e .``): one run tests the twins, and the ``"c"`` cases are skipped
unless the extension was built.

Tests marked ``stress`` (long repetitions) are deselected unless pytest runs
with ``--stress`` or ``WSFRAME_STRESS=1`` is set.
"""

from __future__ import annotations

import os
import platform
import types
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, settings

from wsframe import _codec_py, _implementation

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
#: The codec the connection and the drivers use in this run.
ACTIVE_CODEC = CODEC_C if _implementation.use_c else CODEC_PY

#: PyPy: no reference counts, no tracemalloc; the C extension is not built by default.
IS_PYPY = platform.python_implementation() == "PyPy"


def _twins_by_default() -> bool:
    """PyPy without ``WSFRAME_USE_CEXT=1``: the twins are what wsframe uses."""
    return IS_PYPY and os.environ.get("WSFRAME_USE_CEXT", "") in ("", "0")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _extensions_disabled() and not _twins_by_default() and not _implementation.use_c:
        pytest.exit(
            "the compiled modules of wsframe did not build or cannot be imported "
            f"({CODEC_C_ERROR!r}); build them with `python setup.py build_ext --inplace`, "
            "or set WSFRAME_NO_EXTENSIONS=1 to test the pure-Python twins only",
            returncode=3,
        )


def stress_enabled(config: pytest.Config) -> bool:
    """Whether the ``stress`` tests run: ``--stress`` or ``WSFRAME_STRESS=1``."""
    if config.getoption("--stress"):
        return True
    return os.environ.get("WSFRAME_STRESS", "") not in ("", "0")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress",
        action="store_true",
        default=False,
        help="also run the tests marked stress (long repetitions; or WSFRAME_STRESS=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the stress tests unless asked for; in the twins' run, the
    direct tests of the C codec (run before)."""
    if not stress_enabled(config):
        stress = [item for item in items if item.get_closest_marker("stress") is not None]
        if stress:
            config.hook.pytest_deselected(items=stress)
            items[:] = [item for item in items if item.get_closest_marker("stress") is None]
    if not _extensions_disabled() or CODEC_C is None:
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        fixtures = getattr(item, "fixturenames", ())
        on_c = callspec is not None and callspec.params.get("codec") == "c"
        if on_c or "codecs_pair" in fixtures:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def active_codec() -> types.ModuleType:
    """The codec module of this run: ``wsframe._codec_c``, or the twin with
    ``WSFRAME_NO_EXTENSIONS=1``."""
    return ACTIVE_CODEC


def require_c() -> types.ModuleType:
    """Return ``wsframe._codec_c``, or skip (extensions disabled) or fail (not built)."""
    if CODEC_C is None:
        if _extensions_disabled():
            pytest.skip(
                "wsframe._codec_c is not importable and WSFRAME_NO_EXTENSIONS is set: "
                "testing the pure-Python codec only"
            )
        if IS_PYPY:
            pytest.skip(
                "wsframe._codec_c is not built on PyPy, where the pure-Python codec is the "
                "default (WSFRAME_USE_CEXT=1 pip install -e . builds it)"
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


@pytest.fixture(scope="module")
def tls() -> tuple[Any, Any]:
    """``(server_context, client_context)``: a test CA's certificate for 127.0.0.1
    and localhost, and a client context trusting that CA (trustme)."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    return server_context, client_context
