"""The driver core: one implementation of everything I/O drivers share.

A driver connects a sans-I/O :class:`~wsframe.connection.Connection` to an
I/O model. :class:`DriverCore` does everything that does not depend on the
I/O model — the receive pump, the inbox with its watermarks, the send path
with write flow control and corking, heartbeat membership, deferred failure,
the graceful end of a failed connection, the callback-style listener — and a
driver adds only how to wait and how to schedule. ``wsframe.asyncio``'s
:class:`~wsframe.asyncio.WebSocket` and ``wsframe.uvicorn``'s
``WSFrameProtocol`` are such drivers; ``docs/drivers.md`` shows how to write
another (threads and blocking sockets, an HTTP/2 stream).

The per-message path runs in compiled code (``wsframe._driver_c``, from the
same source as its pure-Python twin ``wsframe._driver_py``), selected like
the codec: ``WSFRAME_NO_EXTENSIONS=1`` chooses the twin.

The types here describe what the core needs from the outside:
:class:`Transport` (an asyncio transport has it all), :class:`Heartbeat`
(what a connection joins when it opens) and :class:`KeepaliveMember` (what a
heartbeat needs from each connection).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional, Protocol

from . import _implementation
from .typing import BytesLike

if TYPE_CHECKING:
    from ._driver_py import DriverCore, default_counters
    from .connection import Connection
    from .handshake import Request, Response
    from .state import State
else:
    _impl = _implementation.load("_driver")
    DriverCore = _impl.DriverCore
    default_counters = _impl.default_counters

__all__ = [
    "ConnectionInfo",
    "DriverCore",
    "Heartbeat",
    "KeepaliveMember",
    "Transport",
    "default_counters",
]


class ConnectionInfo:
    """What an application's connection object tells of its connection.

    A mixin (no state of its own) for the drivers' ``WebSocket`` classes —
    ``wsframe.asyncio.WebSocket`` and ``wsframe.sync.WebSocket`` — after
    :class:`DriverCore` among their bases: it reads ``self.conn``.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        conn: Connection

        @property
        def state(self) -> State:
            """The connection's state (:class:`DriverCore`'s)."""

    @property
    def request(self) -> Optional[Request]:
        """The opening handshake's HTTP request (path, headers...)."""
        request: Optional[Request] = getattr(self.conn, "request", None)
        return request

    @property
    def response(self) -> Optional[Response]:
        """Client side: the server's HTTP response to the opening handshake."""
        response: Optional[Response] = getattr(self.conn, "response", None)
        return response

    @property
    def subprotocol(self) -> Optional[str]:
        """The negotiated subprotocol, or None."""
        return self.conn.subprotocol

    @property
    def close_reason(self) -> str:
        """The close reason the peer sent ("" if none)."""
        return self.conn.close_reason

    @property
    def ready_state(self) -> int:
        """The state as an int, like the browser's ``WebSocket.readyState``."""
        return int(self.state)

    @property
    def connection(self) -> Connection:
        """The underlying sans-I/O :class:`wsframe.connection.Connection`."""
        return self.conn


class Transport(Protocol):
    """What the driver core needs of a transport (asyncio's transports have it)."""

    def write(self, data: BytesLike) -> None:
        """Queue ``data`` for sending; never blocks."""

    def writelines(self, chunks: Iterable[BytesLike]) -> None:
        """Queue several buffers for sending, in order."""

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet sent."""

    def set_write_buffer_limits(
        self, high: Optional[int] = None, low: Optional[int] = None
    ) -> None:
        """Set the high-water mark above which the driver's ``pause_writing`` is called."""

    def pause_reading(self) -> None:
        """Stop calling the driver with received data."""

    def resume_reading(self) -> None:
        """Call the driver with received data again."""

    def can_write_eof(self) -> bool:
        """Whether :meth:`write_eof` can half-close the connection."""

    def write_eof(self) -> None:
        """Send our FIN after the queued data; keep reading."""

    def close(self) -> None:
        """Close after the queued data is sent."""

    def abort(self) -> None:
        """Close at once, dropping what is queued."""

    def is_closing(self) -> bool:
        """Whether the transport is closing or closed."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport details: ``"peername"``, ``"sockname"``, ``"ssl_object"``..."""


class KeepaliveMember(Protocol):
    """What a heartbeat needs of each connection (:class:`DriverCore` has it)."""

    def keepalive_start(self, now: float) -> None:
        """The connection joined at ``now``; its first ping is due an interval later."""

    def keepalive(self, now: float, interval: float, timeout: float) -> bool:
        """A tick at ``now``: ping if due, fail if the pong is late; False to be forgotten."""


class Heartbeat(Protocol):
    """What the core calls on the heartbeat a connection belongs to."""

    def add(self, member: KeepaliveMember) -> None:
        """Start pinging ``member``."""

    def discard(self, member: KeepaliveMember) -> None:
        """Stop pinging ``member``."""
