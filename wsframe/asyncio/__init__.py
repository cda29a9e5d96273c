"""WebSocket server and client on asyncio (uvloop works too).

* :func:`serve` runs ``async def handler(ws)`` per connection, or a
  :class:`Listener` (callback style: ``on_message`` runs synchronously as
  data arrives — the fastest way).
* :func:`connect` opens a client connection; ``async for ws in connect(uri)``
  reconnects with exponential backoff.
* :func:`broadcast` and :class:`Rooms` send one message to many connections,
  encoding it once.
* :func:`run_until_signal` runs a server until SIGINT or SIGTERM, on uvloop
  when it is installed.
"""

from __future__ import annotations

from ..errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidProxy,
    InvalidState,
)
from .broadcast import BroadcastResult, Rooms, broadcast
from .client import connect
from .connection import Listener, WebSocket
from .runner import run_until_signal
from .server import Server, serve

# The exceptions live in wsframe.errors; they are re-exported here, where the
# calls that raise them are, as they always were.
__all__ = [
    "BroadcastResult",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "InvalidHandshake",
    "InvalidProxy",
    "InvalidState",
    "Listener",
    "Rooms",
    "Server",
    "WebSocket",
    "broadcast",
    "connect",
    "run_until_signal",
    "serve",
]
