"""Broadcast one message to many connections, and socket.io-like rooms.

:func:`broadcast` encodes the frame once and writes the same ``bytes`` to
every connection, at the end of the current loop iteration together with any
other broadcast frame for that connection (one syscall for a burst). With
permessage-deflate, connections whose compression has no context takeover
share one compressed frame per identical setting. It
never waits: a connection whose send buffer is over ``max_buffer`` is skipped
(or closed, with ``on_slow="close"``) and reported in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from ..connection import State
from .connection import WebSocket

if TYPE_CHECKING:
    from .._connection_py import BroadcastCache

__all__ = ["DEFAULT_MAX_BUFFER", "BroadcastResult", "Rooms", "broadcast"]

logger = logging.getLogger("wsframe.broadcast")

#: Default limit of a connection's send buffer beyond which broadcast skips it.
DEFAULT_MAX_BUFFER = 1 << 20


class BroadcastResult(NamedTuple):
    """What :func:`broadcast` did: how many got the message, who was too slow."""

    sent: int
    slow: list[WebSocket]


def broadcast(
    websockets: Iterable[WebSocket],
    message: Any,
    *,
    max_buffer: Optional[int] = DEFAULT_MAX_BUFFER,
    on_slow: str = "skip",
) -> BroadcastResult:
    """Send ``message`` (``str`` as text, bytes-like as binary) to every open connection.

    Never waits. Connections that are not open are ignored; a connection
    whose send buffer holds more than ``max_buffer`` bytes is skipped
    (``on_slow="skip"``) or closed with 1008 (``on_slow="close"``), and listed
    in the result's ``slow``; so is one in the middle of sending a fragmented
    message, which a frame must not interrupt.
    """
    if on_slow not in ("skip", "close"):
        raise ValueError(f"on_slow must be 'skip' or 'close', not {on_slow!r}")
    shared: BroadcastCache = {}
    sent = 0
    slow: list[WebSocket] = []
    for ws in websockets:
        conn = ws.conn
        if ws.transport is None or conn.state is not State.OPEN:
            continue
        if conn.sending_fragmented or (max_buffer is not None and ws.buffered_amount > max_buffer):
            slow.append(ws)
            if on_slow == "close":
                ws.fail(1008, "too slow to keep up")
            continue
        # Encoded (and compressed) once for every connection that can share it.
        ws.write_corked(conn.frame_for_broadcast(message, shared))
        sent += 1
    if slow:
        logger.warning("broadcast: %d slow connection(s) %s", len(slow), on_slow)
    return BroadcastResult(sent, slow)


class Rooms:
    """Named groups of connections, like socket.io's rooms.

    A connection leaves every room when it closes. :meth:`send` broadcasts to
    a room, optionally except one member (typically the sender).
    """

    def __init__(self) -> None:
        self._members: dict[str, set[WebSocket]] = {}
        self._rooms_of: dict[WebSocket, set[str]] = {}

    def join(self, room: str, ws: WebSocket) -> None:
        """Add ``ws`` to ``room`` (created on first join)."""
        rooms = self._rooms_of.get(ws)
        if rooms is None:
            if ws.state is State.CLOSED:
                return
            rooms = self._rooms_of[ws] = set()
            ws.add_close_callback(self.leave_all)
        rooms.add(room)
        self._members.setdefault(room, set()).add(ws)

    def leave(self, room: str, ws: WebSocket) -> None:
        """Remove ``ws`` from ``room`` (a room without members disappears)."""
        members = self._members.get(room)
        if members is not None:
            members.discard(ws)
            if not members:
                del self._members[room]
        rooms = self._rooms_of.get(ws)
        if rooms is not None:
            rooms.discard(room)

    def leave_all(self, ws: WebSocket) -> None:
        """Remove ``ws`` from every room."""
        for room in list(self._rooms_of.pop(ws, ())):
            members = self._members.get(room)
            if members is not None:
                members.discard(ws)
                if not members:
                    del self._members[room]

    def members(self, room: str) -> frozenset[WebSocket]:
        """The connections in ``room``."""
        return frozenset(self._members.get(room, ()))

    def rooms(self, ws: Optional[WebSocket] = None) -> list[str]:
        """Every room with members, or the rooms ``ws`` is in, sorted."""
        if ws is None:
            return sorted(self._members)
        return sorted(self._rooms_of.get(ws, ()))

    def send(
        self,
        room: str,
        message: Any,
        *,
        exclude: Optional[WebSocket] = None,
        max_buffer: Optional[int] = DEFAULT_MAX_BUFFER,
        on_slow: str = "skip",
    ) -> BroadcastResult:
        """Broadcast ``message`` to the members of ``room`` except ``exclude``."""
        members = self._members.get(room, ())
        targets = [ws for ws in members if ws is not exclude] if exclude is not None else members
        return broadcast(targets, message, max_buffer=max_buffer, on_slow=on_slow)
