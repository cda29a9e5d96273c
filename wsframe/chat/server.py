"""The chat server: nicknames, rooms, presence, history, direct messages, rate limits.

One :class:`ChatSession` (a :class:`wsframe.asyncio.Listener`) per
connection handles its messages synchronously as they arrive; the
:class:`ChatServer` holds the shared state and serves the page. Everything
runs on the event loop thread, so no lock is needed.

With ``redis=URL`` the rooms are a :class:`wsframe.asyncio.redis_rooms.RedisRooms`:
several processes (``python -m wsframe chat --workers N``) share rooms,
presence, nicknames and direct messages. Every identified session is also in
an internal room, ``"@u:" + nickname`` (its direct messages; the name cannot
clash with a user's room, which starts with a letter, digit or ``_``).
Presence messages come from the shared presence itself
(``RedisRooms.on_presence``): each process tells its own sessions about every
join and leave in any process, including the leaves of a process that stopped
(at once) or died (when its presence expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from typing import Any, Callable, Optional, Union

from ..asyncio import Listener, Rooms, Server, WebSocket, broadcast, serve
from ..asyncio.redis_rooms import RedisRooms
from ..handshake import OriginPolicy
from ..ratelimit import TokenBucket
from . import protocol
from .protocol import Command, ProtocolViolation
from .store import DEFAULT_HISTORY, HistoryStore

__all__ = ["ChatServer", "ChatSession", "RateLimiter"]

#: The frame limit: twice the protocol's message limit, so that a message a
#: little too big gets a readable error, and a huge one a 1009 close.
MAX_FRAME_SIZE = 2 * protocol.MAX_MESSAGE_BYTES
#: Rooms one connection may be in at once.
MAX_ROOMS_PER_USER = 20
#: The room every page opens first, always listed.
DEFAULT_ROOM = "general"
#: With Redis: the prefix of a session's internal direct-message room.
DM_ROOM = "@u:"
#: Random bytes in a nickname's re-claim token (144 bits, 24 characters).
TOKEN_BYTES = 18

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/chat.css": ("chat.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Everything comes from this server: no CDN, no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


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

    ``serve`` instantiates a Listener subclass without arguments, so each
    :class:`ChatServer` makes a subclass bound to it (:attr:`ChatServer.session`).
    """

    #: The chat this session belongs to (set on the bound subclass).
    server: ChatServer

    def __init__(self) -> None:
        server = self.server
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
        if ws is not None and ws.ready_state == 1:
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
    ) -> None:
        if isinstance(origins, str):
            raise TypeError("origins must be a collection of origins, not a single string")
        #: Which pages may open the chat's WebSocket (given to ``serve``).
        self.origin_policy = OriginPolicy([*origins, None], same_host=True)
        self.store = HistoryStore(db, history, shared=redis is not None)
        self.rate = rate
        self.burst = burst
        self.abuse_limit = abuse_limit
        self.presence_delay = presence_delay
        self.commit_delay = commit_delay
        #: The shared rooms when ``redis`` is given, else None.
        self.shared: Optional[RedisRooms] = None
        self.rooms: Union[Rooms, RedisRooms]
        if redis is not None:
            options = {"prefix": "wsframe-chat", **(redis_options or {})}
            options["on_presence"] = self._shared_presence
            self.rooms = self.shared = RedisRooms(redis, **options)
        else:
            self.rooms = Rooms()
        #: Identified sessions, by case-folded nickname.
        self.by_nick: dict[str, ChatSession] = {}
        #: Identified sessions, by connection: everyone gets presence updates.
        self.online: dict[WebSocket, ChatSession] = {}
        self.known_rooms: set[str] = {DEFAULT_ROOM, *self.store.rooms()}
        self._pending_presence: list[dict[str, str]] = []
        self._presence_timer: Optional[asyncio.TimerHandle] = None
        self._commit_timer: Optional[asyncio.TimerHandle] = None
        self._closed = False
        #: The Listener class given to ``serve``: one session per connection.
        self.session: type[ChatSession] = type("ChatSession", (ChatSession,), {"server": self})
        self._pages = {path: (_read_page(name), ctype) for path, (name, ctype) in _STATIC.items()}
        self._handlers: dict[str, Callable[[ChatSession, dict[str, Any]], None]] = {
            "hello": self._hello,
            "join": self._join,
            "leave": self._leave,
            "rooms": self._rooms,
            "message": self._message,
            "dm": self._dm,
            "typing": self._typing,
            "ping": self._ping,
        }

    # ------------------------------------------------------------- HTTP side

    def process_request(self, ws: WebSocket, request: Any) -> Any:
        """Serve the page and its assets; let ``/ws`` through; 404 for the rest."""
        if request.path == "/ws":
            return None
        page = self._pages.get(request.path)
        if page is None:
            return (404, {"Content-Type": "text/plain; charset=utf-8"}, "Not Found\n")
        if request.method != "GET":
            return (405, {"Allow": "GET"}, "Method Not Allowed\n")
        body, content_type = page
        return (200, {"Content-Type": content_type, **_SECURITY_HEADERS}, body)

    @contextlib.asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 8765, **options: Any
    ) -> AsyncIterator[Server]:
        """Serve the chat on ``host``:``port`` (``port=0``: any free port) until the block ends."""
        options.setdefault("max_message_size", MAX_FRAME_SIZE)
        # Chat messages are small: compression would cost CPU on every
        # broadcast and ~300 KiB of zlib state per connection for little gain.
        options.setdefault("compression", None)
        options.setdefault("ping_interval", 20.0)
        options.setdefault("origins", self.origin_policy)
        if self.shared is not None:
            await self.shared.start()
        try:
            async with serve(
                self.session, host, port, process_request=self.process_request, **options
            ) as server:
                yield server
        finally:
            self.close()
            if self.shared is not None:
                await self.shared.close()

    def close(self) -> None:
        """Cancel the timers and commit the history."""
        self._closed = True
        for timer in (self._presence_timer, self._commit_timer):
            if timer is not None:
                timer.cancel()
        self._presence_timer = self._commit_timer = None
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
            self.rooms.leave(room, ws)
            if self.shared is None:  # else: reported by on_presence
                self._presence(room, nick, "leave")
        session.rooms.clear()
        self.rooms.leave_all(ws)
        del self.online[ws]
        if self.by_nick.get(nick.casefold()) is session:
            del self.by_nick[nick.casefold()]

    def users(self, room: str) -> list[str]:
        """The nicknames in ``room``, sorted (with Redis: in every process)."""
        if self.shared is not None:
            return sorted(self.shared.presence(room))
        online = self.online
        return sorted(online[ws].nick or "" for ws in self.rooms.members(room) if ws in online)

    def room_list(self) -> list[dict[str, Any]]:
        """Every room with members or history, with who is in it."""
        if self.shared is not None:
            active = [room for room in self.shared.all_rooms() if not room.startswith("@")]
        else:
            active = self.rooms.rooms()
        names = self.known_rooms.union(active)
        return [{"room": room, "users": self.users(room)} for room in sorted(names)]

    def _hello(self, session: ChatSession, fields: dict[str, Any]) -> None:
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
        elif self._remote_nick(key) is not None:
            raise ProtocolViolation(
                "nick_taken", f"the nickname {nick!r} is already in use", "hello"
            )
        session.nick = nick
        session.token = new_token()
        assert session.ws is not None
        self.by_nick[key] = session
        self.online[session.ws] = session
        if self.shared is not None:
            self.shared.join(DM_ROOM + key, session.ws, nick)
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

    def _join(self, session: ChatSession, fields: dict[str, Any]) -> None:
        room: str = fields["room"]
        assert session.ws is not None and session.nick is not None
        if room not in session.rooms:
            if len(session.rooms) >= MAX_ROOMS_PER_USER:
                raise ProtocolViolation(
                    "too_many_rooms", f"you can be in {MAX_ROOMS_PER_USER} rooms at most", "join"
                )
            session.rooms.add(room)
            if self.shared is not None:
                self.shared.join(room, session.ws, session.nick)  # on_presence reports it
            else:
                self.rooms.join(room, session.ws)
                self._presence(room, session.nick, "join")
        history = [message.as_dict() for message in self.store.recent(room)]
        session.send(protocol.encode("joined", room=room, users=self.users(room), history=history))

    def _leave(self, session: ChatSession, fields: dict[str, Any]) -> None:
        room: str = fields["room"]
        assert session.ws is not None and session.nick is not None
        if room not in session.rooms:
            raise ProtocolViolation("not_in_room", f"you are not in {room!r}", "leave")
        session.rooms.discard(room)
        self.rooms.leave(room, session.ws)
        if self.shared is None:  # else: reported by on_presence
            self._presence(room, session.nick, "leave")
        session.send(protocol.encode("left", room=room))
        if not self.rooms.members(room):
            self.store.forget(room)

    def _rooms(self, session: ChatSession, fields: dict[str, Any]) -> None:
        session.send(protocol.encode("rooms", rooms=self.room_list()))

    def _message(self, session: ChatSession, fields: dict[str, Any]) -> None:
        room: str = fields["room"]
        assert session.nick is not None
        if room not in session.rooms:
            raise ProtocolViolation("not_in_room", f"join {room!r} before writing to it", "message")
        stored = self.store.add(room, session.nick, fields["text"])
        self.known_rooms.add(room)
        self._schedule_commit()
        self.rooms.send(room, protocol.encode("message", **stored.as_dict()), on_slow="close")

    def _dm(self, session: ChatSession, fields: dict[str, Any]) -> None:
        key = fields["to"].casefold()
        target = self.by_nick.get(key)
        remote = self._remote_nick(key) if target is None else None
        if remote is None and (target is None or target.nick is None):
            raise ProtocolViolation("no_such_user", f"{fields['to']!r} is not online", "dm")
        assert session.nick is not None
        to = target.nick if target is not None else remote
        message = protocol.encode(
            "dm", **{"from": session.nick, "to": to}, text=fields["text"], ts=_now_ms()
        )
        if target is not None:
            target.send(message)
        elif self.shared is not None:
            self.shared.send(DM_ROOM + key, message)
        if target is not session:
            session.send(message)

    def _remote_nick(self, key: str) -> Optional[str]:
        """With Redis: the nickname (as written) whose case-folded form is ``key``, if online."""
        if self.shared is None:
            return None
        for nick in self.shared.presence(DM_ROOM + key):
            if nick.casefold() == key:
                return nick
        return None

    def _typing(self, session: ChatSession, fields: dict[str, Any]) -> None:
        room: str = fields["room"]
        if room not in session.rooms:
            raise ProtocolViolation("not_in_room", f"you are not in {room!r}", "typing")
        message = protocol.encode("typing", room=room, nick=session.nick)
        self.rooms.send(room, message, exclude=session.ws)

    def _ping(self, session: ChatSession, fields: dict[str, Any]) -> None:
        if fields["id"] is None:
            session.send(protocol.encode("pong", ts=_now_ms()))
        else:
            session.send(protocol.encode("pong", id=fields["id"], ts=_now_ms()))

    # --------------------------------------------------------------- timers

    def _shared_presence(self, room: str, member: str, action: str) -> None:
        """``RedisRooms.on_presence``: a change in any process, for this process's sessions."""
        if not room.startswith("@"):  # internal rooms are not shown
            self._presence(room, member, action)

    def _presence(self, room: str, nick: str, action: str) -> None:
        if self._closed:
            return
        self._pending_presence.append({"room": room, "nick": nick, "action": action})
        if self._presence_timer is None:
            loop = asyncio.get_running_loop()
            self._presence_timer = loop.call_later(self.presence_delay, self._flush_presence)

    def _flush_presence(self) -> None:
        self._presence_timer = None
        changes, self._pending_presence = self._pending_presence, []
        if not changes:
            return
        broadcast(self.online, protocol.encode("presence", changes=changes))

    def _schedule_commit(self) -> None:
        if self._commit_timer is None:
            loop = asyncio.get_running_loop()
            self._commit_timer = loop.call_later(self.commit_delay, self._commit)

    def _commit(self) -> None:
        self._commit_timer = None
        self.store.commit()


def _read_page(name: str) -> bytes:
    """A file of the page, shipped in ``wsframe/demo``."""
    return resources.files("wsframe.demo").joinpath(name).read_bytes()
