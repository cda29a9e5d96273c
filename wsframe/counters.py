"""The counters connections bump as they work (compiled, with a pure twin).

:class:`Counters` holds what a group of connections (a server's, or a
process's clients) counted: messages, bytes, frames, closes, round trips...
It is compiled like the codec, with a pure-Python twin
(``wsframe._counters_py``) selected by ``WSFRAME_NO_EXTENSIONS=1``;
:mod:`wsframe.stats` turns it into a typed snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _implementation

if TYPE_CHECKING:
    from ._counters_py import (
        HANDSHAKE_BUCKETS,
        LIMIT_CAUSES,
        RTT_BUCKETS,
        Counters,
        payload_size,
        utf8_length,
    )
else:
    _impl = _implementation.load("_counters")
    Counters = _impl.Counters
    utf8_length = _impl.utf8_length
    payload_size = _impl.payload_size
    RTT_BUCKETS = _impl.RTT_BUCKETS
    HANDSHAKE_BUCKETS = _impl.HANDSHAKE_BUCKETS
    LIMIT_CAUSES = _impl.LIMIT_CAUSES

__all__ = [
    "HANDSHAKE_BUCKETS",
    "LIMIT_CAUSES",
    "RTT_BUCKETS",
    "Counters",
    "payload_size",
    "utf8_length",
]
