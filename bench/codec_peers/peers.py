"""Loading the optional peer libraries.

Every import here is optional: a module that cannot be imported becomes a
:class:`Loaded` with ``module=None`` and the reason, and the columns that need
it show "n/a" with that reason. This module only finds things; how each one is
driven for a given job lives in :mod:`codec_peers.cases`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Optional

from wsframe.benchmarks.cases import NotAvailable

__all__ = ["PEERS", "Loaded", "NotAvailable", "load", "submodule"]


@dataclass(frozen=True)
class Loaded:
    """An optional module: the module itself, or why it is not available."""

    name: str
    module: Optional[ModuleType]
    version: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the module was imported."""
        return self.module is not None


#: Column key -> (module to import, distribution whose version is shown).
_SOURCES: dict[str, tuple[str, str]] = {
    "picows": ("picows", "picows"),
    "aiohttp": ("aiohttp", "aiohttp"),
    "websockets": ("websockets", "websockets"),
    "wsproto": ("wsproto", "wsproto"),
    "wsaccel": ("wsaccel", "wsaccel"),
}

#: The peer libraries, in the order their columns are shown.
PEERS = ("picows", "aiohttp", "websockets", "wsproto", "wsaccel")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@cache
def load(key: str) -> Loaded:
    """Import the module behind column ``key`` (cached), or say why not."""
    module_name, dist = _SOURCES[key]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return Loaded(key, None, "", f"not installed ({exc.__class__.__name__}: {exc})")
    except Exception as exc:  # a broken install must not stop the run
        return Loaded(key, None, "", f"import failed ({exc.__class__.__name__}: {exc})")
    return Loaded(key, module, _version(dist))


def submodule(key: str, name: str) -> ModuleType:
    """Import ``name`` (a submodule of a peer); raise :class:`NotAvailable` if impossible."""
    loaded = load(key)
    if not loaded.ok:
        raise NotAvailable(loaded.reason)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise NotAvailable(f"{name} not importable ({exc})") from None
