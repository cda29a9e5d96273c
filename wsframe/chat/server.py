"""The chat server: nicknames, rooms, presence, history, direct messages, rate limits.

One :class:`ChatSession` (a :class:`wsframe.asyncio.Listener`) per
connection handles its messages synchronously as they arrive; the
:class:`ChatServer` holds the shared state and serves the page. Everything
runs on the event loop thread, so no lock is needed.

The server is written against one rooms interface (``join(room, ws,
member)``, ``leave``, ``members``, ``presence``, ``send``, ``on_presence``):
a :class:`wsframe.asyncio.Rooms` in one process, or with ``redis=URL`` a
:class:`wsframe.asyncio.redis_rooms.RedisRooms`, with which several processes
(``python -m wsframe chat --workers N``) share rooms, presence, nicknames and
direct messages. Nothing else depends on which one it is. Every identified
session is also in an internal room, ``"@u:" + nickname`` (its direct
messages; the name cannot clash with a user's room, which starts with a
letter, digit or ``_``). Presence messages come from the rooms' presence
itself (``on_presence``): each process tells its own sessions about every
join and leave in any process, including the leaves of a process that stopped
(at once) or died (when its presence expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import Any, Callable, Optional, Union

from ..asyncio import Listener, Rooms, Server, WebSocket, broadcast, serve
from ..asyncio.broadcast import PresenceAction
from ..asyncio.redis_rooms import RedisRooms
from ..handshake import OriginPolicy
from ..ratelimit import TokenBucket
from ..state import State
from ..stats import Stats, StatsDirectory
from . import protocol
from .pages import Pages
from .protocol import Command, Fields, ProtocolViolation
from .store import DEFAULT_HISTORY, HistoryStore

__all__ = ["STATS_INTERVAL", "ChatServer", "ChatSession", "RateLimiter"]

#: Seconds between two publications of a worker's numbers (with several workers).
STATS_INTERVAL = 1.0

#: The frame limit: twice the protocol's message limit, so that a message a
#: little too big gets a readable error, and a huge one a 1009 close.
MAX_FRAME_SIZE = 2 * protocol.MAX_MESSAGE_BYTES
#: Rooms one connection may be in at once.
MAX_ROOMS_PER_USER = 20
#: The room every page opens first, always listed.
DEFAULT_ROOM = "general"
#: The prefix of a session's internal direct-message room.
DM_ROOM = "@u:"
#: Random bytes in a nickname's re-claim token (144 bits, 24 characters).
TOKEN_BYTES = 18


def _now_ms() -> int:
    return int(time.time() * 1000)


def new_token() -> str:
    """A nickname's re-claim token: :data:`TOKEN_BYTES` from :mod:`secrets`, URL-safe base64."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_token(given: Optional[str], expected: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time.

    On UTF-8 bytes: :func:`secrets.compare_digest` refuses ``str`` with
    non-ASCII characters (TypeError), which a client may send.
    """
    if not given or not expected:
        return False
    return secrets.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class Coalesced:
    """Runs ``action`` once, ``delay`` seconds after the first of any number of requests.

    What the chat does with presence changes (one ``presence`` message for
    all of them) and history writes (one commit for a burst of messages).
    """

    __slots__ = ("_timer", "action", "closed", "delay")

    def __init__(self, delay: float, action: Callable[[], None]) -> None:
        self.delay = delay
        self.action = action
        self.closed = False
        self._timer: Optional[asyncio.TimerHandle] = None

    def request(self) -> None:
        """Run the action ``delay`` seconds from now, unless it is already due."""
        if self._timer is None and not self.closed:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._run)

    def close(self) -> None:
        """Never run it again (a pending run is cancelled)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run(self) -> None:
        self._timer = None
        self.action()


class RateLimiter:
    """A token bucket (``rate`` messages per second, bursts of ``burst``) plus abuse tracking.

    :meth:`allow` spends a token of a :class:`wsframe.ratelimit.TokenBucket`.
    Each refused message adds a strike; strikes fade at one per second, and
    more than ``abuse_limit`` of them means sustained flooding (the server
    then closes the connection with 1008).
    """

    __slots__ = ("abuse_limit", "bucket", "strikes", "updated")

    def __init__(self, rate: float, burst: float, abuse_limit: float) -> None:
        self.bucket = TokenBucket(rate, burst)
        self.abuse_limit = abuse_limit
        self.strikes = 0.0
        self.updated = time.monotonic()

    def allow(self) -> bool:
        """Spend a token if there is one."""
        now = time.monotonic()
        self.strikes = max(0.0, self.strikes - (now - self.updated))
        self.updated = now
        if self.bucket.take():
            return True
        self.strikes += 1.0
        return False

    @property
    def abusive(self) -> bool:
        """Whether the refused messages add up to sustained flooding."""
        return self.strikes > self.abuse_limit


class ChatSession(Listener):
    """One connection's state: its nickname, rooms and rate limiter.

    ``serve`` makes one per connection through :attr:`ChatServer.session`,
    ``functools.partial(ChatSession, server)``.
    """

    def __init__(self, server: ChatServer) -> None:
        #: The chat this session belongs to.
        self.server = server
        self.ws: Optional[WebSocket] = None
        self.nick: Optional[str] = None
        self.token = ""
        self.rooms: set[str] = set()
        self.limiter = RateLimiter(server.rate, server.burst, server.abuse_limit)

    def on_open(self, ws: WebSocket) -> None:
        self.ws = ws

    def on_message(self, ws: WebSocket, message: Union[str, bytes]) -> None:
        self.server.handle(self, message)

    def on_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.server.disconnect(self)

    def send(self, message: str) -> None:
        """Send ``message`` unless the connection is already closing."""
        ws = self.ws
        if ws is not None and ws.state is State.OPEN:
            ws.send_nowait(message)

    def error(self, code: str, message: str, ref: Optional[str] = None) -> None:
        """Answer with a ``{"type": "error"}`` message."""
        self.send(protocol.error(code, message, ref))


class ChatServer:
    """The chat's shared state and its HTTP/WebSocket front.

    ``db`` is the SQLite file of the history (``":memory:"`` keeps it in
    memory); ``history`` messages are replayed on join. Each connection may
    send ``rate`` messages per second on average, in bursts of ``burst``;
    beyond ``abuse_limit`` refused messages (fading at one per second) it is
    closed with 1008. Presence changes are grouped for ``presence_delay``
    seconds into one ``presence`` message to everyone; history writes are
    committed at most ``commit_delay`` seconds after they happen.

    ``redis`` (a URL) shares rooms, presence, nicknames and direct messages
    with the other processes using the same Redis; ``redis_options`` go to
    :class:`~wsframe.asyncio.redis_rooms.RedisRooms` (the chat sets its
    ``on_presence``). Every process then sends its sessions the presence
    changes of all processes. The history file is shared too (committed per
    message, see :class:`HistoryStore`).
    A nickname held in another process cannot be re-claimed with its token
    until that connection closes.

    Origins: the WebSocket accepts the chat's own page (an ``Origin`` whose
    host and port are the request's ``Host``, see
    :class:`~wsframe.handshake.OriginPolicy`'s ``same_host``), the
    ``origins`` given (e.g. the public URL behind a proxy that rewrites
    ``Host``) and requests without ``Origin`` (tools, load tests); a page of
    any other origin is refused with 403 (:attr:`origin_policy`).
    """

    def __init__(
        self,
        db: str = ":memory:",
        *,
        history: int = DEFAULT_HISTORY,
        rate: float = 5.0,
        burst: float = 10.0,
        abuse_limit: float = 10.0,
        presence_delay: float = 0.05,
        commit_delay: float = 0.2,
        redis: Optional[str] = None,
        redis_options: Optional[dict[str, Any]] = None,
        origins: Iterable[str] = (),
        ping_interval: Optional[float] = 20.0,
        stats_dir: Optional[str] = None,
    ) -> None:
        if isinstance(origins, str):
            raise TypeError("origins must be a collection of origins, not a single string")
        #: Which pages may open the chat's WebSocket (given to ``serve``).
        self.origin_policy = OriginPolicy([*origins, None], same_host=True)
        self.store = HistoryStore(db, history, shared=redis is not None)
        self.rate = rate
        self.burst = burst
        #: Seconds between the server's heartbeat pings (None: none).
        self.ping_interval = ping_interval
        self.abuse_limit = abuse_limit
        #: The rooms: in this process, or shared through Redis (the same interface).
        self.rooms: Union[Rooms, RedisRooms] = _new_rooms(redis, redis_options, self._on_presence)
        #: Identified sessions of this process, by case-folded nickname.
        self.by_nick: dict[str, ChatSession] = {}
        #: Identified sessions, by connection: everyone gets presence updates.
        self.online: dict[WebSocket, ChatSession] = {}
        self.known_rooms: set[str] = {DEFAULT_ROOM, *self.store.rooms()}
        self._pending_presence: list[dict[str, str]] = []
        self._presence = Coalesced(presence_delay, self._flush_presence)
        self._commit = Coalesced(commit_delay, self.store.commit)
        #: The Listener factory given to ``serve``: one session per connection.
        self.session: Callable[[], ChatSession] = partial(ChatSession, self)
        #: The server, while :meth:`serve` runs.
        self.server: Optional[Server] = None
        #: With several workers: where each publishes its numbers, so that
        #: ``/stats.json`` and ``/metrics`` on any of them show them all.
        self.stats_directory: Optional[StatsDirectory] = None
        if stats_dir is not None:
            self.stats_directory = StatsDirectory(stats_dir, source=self._own_stats)
        #: The ``process_request`` given to ``serve``: the page, its assets,
        #: the dashboard, ``/stats.json`` and ``/metrics``; 404.
        self.process_request = Pages("/ws", stats=self.stats, metrics=self.stats_directory)
        self._handlers: dict[str, Callable[[ChatSession, Fields], None]] = {
            "hello": self._hello,
            "join": self._join,
            "leave": self._leave,
            "rooms": self._rooms,
            "message": self._message,
            "dm": self._dm,
            "typing": self._typing,
            "ping": self._ping,
        }

    # ------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 8765, **options: Any
    ) -> AsyncIterator[Server]:
        """Serve the chat on ``host``:``port`` (``port=0``: any free port) until the block ends."""
        options.setdefault("max_message_size", MAX_FRAME_SIZE)
        # Chat messages are small: compression would cost CPU on every
        # broadcast and ~300 KiB of zlib state per connection for little gain.
        options.setdefault("compression", None)
        options.setdefault("ping_interval", self.ping_interval)
        options.setdefault("origins", self.origin_policy)
        await self.rooms.start()
        try:
            async with serve(
                self.session, host, port, process_request=self.process_request, **options
            ) as server:
                self.server = server
                publishing = None
                if self.stats_directory is not None:
                    publishing = asyncio.get_running_loop().create_task(
                        self.stats_directory.run(STATS_INTERVAL)
                    )
                try:
                    yield server
                finally:
                    if publishing is not None:
                        publishing.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await publishing
                        self.stats_directory.remove()  # type: ignore[union-attr]
        finally:
            self.server = None
            self.close()
            await self.rooms.close()

    def stats(self) -> Optional[Stats]:
        """The server's :class:`~wsframe.stats.Stats` (every worker's, with a
        :attr:`stats_directory`), or None while not serving."""
        if self.server is None:
            return None
        if self.stats_directory is not None:
            return self.stats_directory.total("server")
        return self.server.stats()

    def _own_stats(self) -> dict[str, Stats]:
        return {"server": self.server.stats()} if self.server is not None else {}

    def close(self) -> None:
        """Cancel the timers and commit the history."""
        self._presence.close()
        self._commit.close()
        self.store.close()

    # --------------------------------------------------------- message side

    def handle(self, session: ChatSession, raw: Union[str, bytes]) -> None:
        """Validate and execute one client message; answer errors on the socket."""
        limiter = session.limiter
        if not limiter.allow():
            if limiter.abusive:
                assert session.ws is not None
                session.ws.fail(1008, "flooding")
                return
            session.error("rate_limited", "too many messages: slow down")
            return
        try:
            command: Command = protocol.parse(raw)
            if session.nick is None and command.type not in ("hello", "ping"):
                raise ProtocolViolation(
                    "not_identified", "say hello with a nickname first", command.type
                )
            self._handlers[command.type](session, command.fields)
        except ProtocolViolation as exc:
            session.error(exc.code, exc.message, exc.ref)

    def disconnect(self, session: ChatSession) -> None:
        """Forget a closed session: it leaves its rooms and goes offline."""
        ws = session.ws
        nick = session.nick
        if ws is None or nick is None or self.online.get(ws) is not session:
            return
        for room in sorted(session.rooms):
            self.rooms.leave(room, ws)  # on_presence reports it
        session.rooms.clear()
        self.rooms.leave_all(ws)
        del self.online[ws]
        if self.by_nick.get(nick.casefold()) is session:
            del self.by_nick[nick.casefold()]

    def users(self, room: str) -> list[str]:
        """The nicknames in ``room``, sorted (with Redis: in every process)."""
        return sorted(self.rooms.presence(room))

    def room_list(self) -> list[dict[str, Any]]:
        """Every room with members or history, with who is in it."""
        active = [room for room in self.rooms.all_rooms() if not room.startswith("@")]
        names = self.known_rooms.union(active)
        return [{"room": room, "users": self.users(room)} for room in sorted(names)]

    def _hello(self, session: ChatSession, fields: Fields) -> None:
        nick: str = fields["nick"]
        if session.nick is not None:
            raise ProtocolViolation(
                "already_identified", f"you are already {session.nick}", "hello"
            )
        key = nick.casefold()
        holder = self.by_nick.get(key)
        if holder is not None:
            token = fields["token"]
            if not same_token(token, holder.token):
                raise ProtocolViolation(
                    "nick_taken", f"the nickname {nick!r} is already in use", "hello"
                )
            # The same user reconnecting before its old connection timed out.
            self.disconnect(holder)
            if holder.ws is not None:
                holder.ws.fail(4001, "replaced by a new connection")
        elif self._online_nick(key) is not None:
            raise ProtocolViolation(
                "nick_taken", f"the nickname {nick!r} is already in use", "hello"
            )
        session.nick = nick
        session.token = new_token()
        assert session.ws is not None
        self.by_nick[key] = session
        self.online[session.ws] = session
        self.rooms.join(DM_ROOM + key, session.ws, nick)
        session.send(
            protocol.encode(
                "welcome",
                nick=nick,
                token=session.token,
                rooms=self.room_list(),
                limits={
                    "text": protocol.MAX_TEXT_LENGTH,
                    "message_bytes": protocol.MAX_MESSAGE_BYTES,
                    "rate": self.rate,
                    "burst": self.burst,
                    "history": self.store.history,
                },
            )
        )

    def _join(self, session: ChatSession, fields: Fields) -> None:
        room: str = fields["room"]
        assert session.ws is not None and session.nick is not None
        if room not in session.rooms:
            if len(session.rooms) >= MAX_ROOMS_PER_USER:
                raise ProtocolViolation(
                    "too_many_rooms", f"you can be in {MAX_ROOMS_PER_USER} rooms at most", "join"
                )
            session.rooms.add(room)
            self.rooms.join(room, session.ws, session.nick)  # on_presence reports it
        history = [message.as_dict() for message in self.store.recent(room)]
        session.send(protocol.encode("joined", room=room, users=self.users(room), history=history))

    def _leave(self, session: ChatSession, fields: Fields) -> None:
        room: str = fields["room"]
        assert session.ws is not None and session.nick is not None
        if room not in session.rooms:
            raise ProtocolViolation("not_in_room", f"you are not in {room!r}", "leave")
        session.rooms.discard(room)
        self.rooms.leave(room, session.ws)  # on_presence reports it
        session.send(protocol.encode("left", room=room))
        if not self.rooms.members(room):
            self.store.forget(room)

    def _rooms(self, session: ChatSession, fields: Fields) -> None:
        session.send(protocol.encode("rooms", rooms=self.room_list()))

    def _message(self, session: ChatSession, fields: Fields) -> None:
        room: str = fields["room"]
        assert session.nick is not None
        if room not in session.rooms:
            raise ProtocolViolation("not_in_room", f"join {room!r} before writing to it", "message")
        stored = self.store.add(room, session.nick, fields["text"])
        self.known_rooms.add(room)
        self._commit.request()
        self.rooms.send(room, protocol.encode("message", **stored.as_dict()), on_slow="close")

    def _dm(self, session: ChatSession, fields: Fields) -> None:
        key = fields["to"].casefold()
        to = self._online_nick(key)
        if to is None:
            raise ProtocolViolation("no_such_user", f"{fields['to']!r} is not online", "dm")
        assert session.nick is not None
        message = protocol.encode(
            "dm", **{"from": session.nick, "to": to}, text=fields["text"], ts=_now_ms()
        )
        self.rooms.send(DM_ROOM + key, message)  # to the target, in whichever process
        if key != session.nick.casefold():
            session.send(message)

    def _online_nick(self, key: str) -> Optional[str]:
        """The nickname (as written) whose case-folded form is ``key``, if online anywhere."""
        for nick in self.rooms.presence(DM_ROOM + key):
            if nick.casefold() == key:
                return nick
        return None

    def _typing(self, session: ChatSession, fields: Fields) -> None:
        room: str = fields["room"]
        if room not in session.rooms:
            raise ProtocolViolation("not_in_room", f"you are not in {room!r}", "typing")
        message = protocol.encode("typing", room=room, nick=session.nick)
        self.rooms.send(room, message, exclude=session.ws)

    def _ping(self, session: ChatSession, fields: Fields) -> None:
        if fields["id"] is None:
            session.send(protocol.encode("pong", ts=_now_ms()))
        else:
            session.send(protocol.encode("pong", id=fields["id"], ts=_now_ms()))

    # ------------------------------------------------------------- presence

    def _on_presence(self, room: str, nick: str, action: PresenceAction) -> None:
        """The rooms' ``on_presence``: a change in any process, for this process's sessions."""
        if room.startswith("@"):  # internal rooms are not shown
            return
        self._pending_presence.append({"room": room, "nick": nick, "action": action})
        self._presence.request()

    def _flush_presence(self) -> None:
        changes, self._pending_presence = self._pending_presence, []
        if changes:
            broadcast(self.online, protocol.encode("presence", changes=changes))


def _new_rooms(
    redis: Optional[str],
    redis_options: Optional[dict[str, Any]],
    on_presence: Callable[[str, str, PresenceAction], None],
) -> Union[Rooms, RedisRooms]:
    """Rooms in this process, or shared through Redis when ``redis`` (a URL) is given."""
    if redis is None:
        return Rooms(on_presence=on_presence)
    options = {"prefix": "wsframe-chat", **(redis_options or {}), "on_presence": on_presence}
    return RedisRooms(redis, **options)
