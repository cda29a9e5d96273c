"""Which implementation of the compiled modules is in use: C or pure Python.

Every compiled module of wsframe (``_codec_c``, ``_assembler_c``,
``_connection_c``, ``_driver_c``) has a pure-Python twin with the same names
and behaviour (``_codec_py``, ...). They are chosen together, once: the
compiled ones when all of them are installed, unless
``WSFRAME_NO_EXTENSIONS=1`` asks for pure Python; otherwise the twins.
Mixing the two is never done: a partial build counts as no build.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

__all__ = ["COMPILED_MODULES", "load", "use_c"]

#: The modules that exist in both forms, by their base name.
COMPILED_MODULES = ("_codec", "_assembler", "_connection", "_driver")


def _compiled_available() -> bool:
    for name in COMPILED_MODULES:
        try:
            spec = importlib.util.find_spec(f"{__package__}.{name}_c")
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
    return True


def _choose() -> bool:
    if os.environ.get("WSFRAME_NO_EXTENSIONS", "") not in ("", "0"):
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
