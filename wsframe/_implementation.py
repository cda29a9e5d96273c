"""Which implementation of the compiled modules is in use: C or pure Python.

Every compiled module of wsframe (``_codec_c``, ``_counters_c``,
``_assembler_c``, ``_connection_c``, ``_driver_c``) has a pure-Python twin with the same names
and behaviour (``_codec_py``, ...). They are chosen together, once: the
compiled ones when all of them are installed, unless
``WSFRAME_NO_EXTENSIONS=1`` asks for pure Python; otherwise the twins.
Mixing the two is never done: a partial build counts as no build.

On PyPy the twins are the default: its JIT runs them faster than compiled
modules called through its C-API emulation (cpyext), which is also why the
install compiles nothing there unless asked (``setup.py``).
``WSFRAME_USE_CEXT=1`` selects the compiled modules on PyPy when they are
built; ``WSFRAME_NO_EXTENSIONS=1`` wins over it. On CPython
``WSFRAME_USE_CEXT`` changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
from types import ModuleType

__all__ = ["COMPILED_MODULES", "IS_PYPY", "load", "use_c"]

#: True on PyPy, where the pure-Python twins are the default.
IS_PYPY: bool = platform.python_implementation() == "PyPy"

#: The modules that exist in both forms, by their base name.
COMPILED_MODULES = ("_codec", "_counters", "_assembler", "_connection", "_driver")


def _compiled_available() -> bool:
    for name in COMPILED_MODULES:
        try:
            spec = importlib.util.find_spec(f"{__package__}.{name}_c")
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
    return True


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _choose() -> bool:
    if _flag("WSFRAME_NO_EXTENSIONS"):
        return False
    if IS_PYPY and not _flag("WSFRAME_USE_CEXT"):
        return False
    return _compiled_available()


#: True when the compiled modules are in use.
use_c: bool = _choose()


def load(name: str) -> ModuleType:
    """The implementation of ``name`` (e.g. ``"_connection"``) in use."""
    if name not in COMPILED_MODULES:
        raise ValueError(f"{name!r} is not one of {COMPILED_MODULES}")
    suffix = "_c" if use_c else "_py"
    return importlib.import_module(f"{__package__}.{name}{suffix}")
