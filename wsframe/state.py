"""The states of a WebSocket connection."""

from __future__ import annotations

import enum

__all__ = ["State"]


class State(enum.IntEnum):
    """Connection states, numbered like the browser's ``WebSocket.readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3
