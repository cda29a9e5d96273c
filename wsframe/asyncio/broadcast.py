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
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable, Literal, NamedTuple, Optional

from ..connection import State
from ..typing import DataLike
from .connection import WebSocket

if TYPE_CHECKING:
    from .._connection_py import BroadcastCache

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "BroadcastResult",
    "Message",
    "PresenceAction",
    "PresenceCallback",
    "Rooms",
    "SlowPolicy",
    "broadcast",
    "report_presence",
]

logger = logging.getLogger("wsframe.broadcast")

#: Default limit of a connection's send buffer beyond which broadcast skips it.
DEFAULT_MAX_BUFFER = 1 << 20

#: A message: ``str`` is sent as text, a bytes-like object as binary.
Message = DataLike
#: What :func:`broadcast` does with a connection too slow to keep up.
SlowPolicy = Literal["skip", "close"]
#: A change of a room's presence.
PresenceAction = Literal["join", "leave"]


class BroadcastResult(NamedTuple):
    """What :func:`broadcast` did: how many got the message, who was too slow."""

    sent: int
    slow: list[WebSocket]


def broadcast(
    websockets: Iterable[WebSocket],
    message: Message,
    *,
    max_buffer: Optional[int] = DEFAULT_MAX_BUFFER,
    on_slow: SlowPolicy = "skip",
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
                ws.fail(1008, "too slow to keep up", cause="slow_consumer")
            else:
                ws.counters.broadcast_skipped += 1
            continue
        # Encoded (and compressed) once for every connection that can share it.
        ws.write_corked(conn.frame_for_broadcast(message, shared))
        sent += 1
    if slow:
        logger.warning("broadcast: %d slow connection(s) %s", len(slow), on_slow)
    return BroadcastResult(sent, slow)


#: ``on_presence(room, member, action)``: ``member`` appeared in (``"join"``)
#: or disappeared from (``"leave"``) ``room``'s :meth:`Rooms.presence`.
PresenceCallback = Callable[[str, str, PresenceAction], None]


class Rooms:
    """Named groups of connections, like socket.io's rooms, in this process.

    A connection joins a room under a member name (say, a nickname; default:
    one of its own), and leaves every room when it closes. :meth:`send`
    broadcasts to a room, optionally except one member (typically the
    sender); :meth:`presence` lists the member names in a room, and
    ``on_presence(room, member, action)`` is called (synchronously, from
    :meth:`join`, :meth:`leave` or :meth:`leave_all`) when a name appears in
    a room or disappears from it; a name with several connections in the
    room stays until the last one leaves.

    :class:`~wsframe.asyncio.redis_rooms.RedisRooms` has the same methods,
    shared by several processes; an application written against this
    interface runs on either. :meth:`start` and :meth:`close` (or ``async
    with``) do nothing here and are there for that.
    """

    def __init__(self, on_presence: Optional[PresenceCallback] = None) -> None:
        #: Called with ``(room, member, action)`` for every change of :meth:`presence`.
        self.on_presence = on_presence
        self._members: dict[str, set[WebSocket]] = {}
        #: ws -> {room: its member name there}
        self._names_of: dict[WebSocket, dict[str, str]] = {}
        #: room -> {member name: connections with that name}
        self._names: dict[str, Counter[str]] = {}

    async def start(self) -> None:
        """Nothing to start (see :meth:`RedisRooms.start`)."""

    async def close(self) -> None:
        """Nothing to close (see :meth:`RedisRooms.close`)."""

    async def __aenter__(self) -> Rooms:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def join(self, room: str, ws: WebSocket, member: Optional[str] = None) -> None:
        """Add ``ws`` to ``room`` (created on first join) as ``member`` (default: an id)."""
        names = self._names_of.get(ws)
        if names is None:
            if ws.state is State.CLOSED:
                return
            names = self._names_of[ws] = {}
            ws.add_close_callback(self.leave_all)
        if room in names:
            return
        name = names[room] = member if member is not None else f"{id(ws):x}"
        self._members.setdefault(room, set()).add(ws)
        counter = self._names.setdefault(room, Counter())
        counter[name] += 1
        if counter[name] == 1:
            self._notify(room, name, "join")

    def leave(self, room: str, ws: WebSocket) -> None:
        """Remove ``ws`` from ``room`` (a room without members disappears)."""
        names = self._names_of.get(ws)
        if names is None or room not in names:
            return
        name = names.pop(room)
        members = self._members[room]
        members.discard(ws)
        if not members:
            del self._members[room]
        counter = self._names[room]
        counter[name] -= 1
        if counter[name] <= 0:
            del counter[name]
            if not counter:
                del self._names[room]
            self._notify(room, name, "leave")

    def leave_all(self, ws: WebSocket) -> None:
        """Remove ``ws`` from every room (called when it closes)."""
        for room in list(self._names_of.get(ws, ())):
            self.leave(room, ws)
        self._names_of.pop(ws, None)

    def members(self, room: str) -> frozenset[WebSocket]:
        """The connections in ``room``."""
        return frozenset(self._members.get(room, ()))

    def rooms(self, ws: Optional[WebSocket] = None) -> list[str]:
        """Every room with members, or the rooms ``ws`` is in, sorted."""
        if ws is None:
            return sorted(self._members)
        return sorted(self._names_of.get(ws, ()))

    def all_rooms(self) -> list[str]:
        """Every room with members, sorted (with Redis: in any process)."""
        return self.rooms()

    def presence(self, room: str) -> set[str]:
        """The member names in ``room``."""
        return set(self._names.get(room, ()))

    def send(
        self,
        room: str,
        message: Message,
        *,
        exclude: Optional[WebSocket] = None,
        max_buffer: Optional[int] = DEFAULT_MAX_BUFFER,
        on_slow: SlowPolicy = "skip",
    ) -> BroadcastResult:
        """Broadcast ``message`` to the members of ``room`` except ``exclude``."""
        members = self._members.get(room, ())
        targets = [ws for ws in members if ws is not exclude] if exclude is not None else members
        return broadcast(targets, message, max_buffer=max_buffer, on_slow=on_slow)

    def _notify(self, room: str, name: str, action: PresenceAction) -> None:
        report_presence(self.on_presence, room, name, action)


def report_presence(
    callback: Optional[PresenceCallback], room: str, name: str, action: PresenceAction
) -> None:
    """Call ``callback(room, name, action)`` if set; its exception is logged, never raised."""
    if callback is not None:
        try:
            callback(room, name, action)
        except Exception:  # pragma: no cover - the app's bug
            logger.exception("on_presence callback failed")
