"""WebSocket server and client on threads and blocking sockets.

The same vocabulary as :mod:`wsframe.asyncio`, without ``await``:

* :func:`serve` runs ``handler(ws)`` in a thread per connection;
  ``server.serve_forever()`` accepts until ``server.shutdown()`` or Ctrl-C,
  and both close every connection with 1001;
* :func:`connect` opens a client connection, directly or through an HTTP,
  HTTPS or SOCKS proxy (by default the environment's);
* a :class:`WebSocket` has ``recv(timeout=None)``, iteration, ``send``
  (``str``, bytes-like, or an iterable of them as a fragmented message),
  ``ping()`` (the round-trip time), ``close()``, ``state``/``ready_state``,
  ``close_code``/``close_reason`` and is a context manager.

It is a thin driver on the same driver core as the asyncio package
(:class:`wsframe.driver.DriverCore`): threads only decide how to wait and
where to read (see ``docs/drivers.md``).
"""

from __future__ import annotations

from ..errors import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidProxy,
    InvalidState,
)
from .client import connect
from .connection import WebSocket
from .server import Server, serve

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "InvalidHandshake",
    "InvalidProxy",
    "InvalidState",
    "Server",
    "WebSocket",
    "connect",
    "serve",
]
