"""Rooms shared by several processes and machines, over Redis pub/sub.

:class:`RedisRooms` has the methods of :class:`~wsframe.asyncio.Rooms`
(``join``, ``leave``, ``leave_all``, ``members``, ``rooms``, ``send``) plus
``async start()`` / ``async close()`` (or ``async with``), and a global view
of who is in each room (:meth:`RedisRooms.presence`). It needs the optional
``redis`` package (``pip install wsframe[redis]``); plain :class:`Rooms`
needs nothing and stays the default.

Delivery
    :meth:`RedisRooms.send` delivers to this process's members at once, with
    the encode-once :func:`~wsframe.asyncio.broadcast`, then queues one
    ``PUBLISH`` to the room's channel. It never waits and never raises for a
    Redis problem: a background task publishes the queue in order, in
    pipelined batches. Every process with members in the room is subscribed
    to its channel and delivers the message locally with the same broadcast;
    each envelope carries the publishing process's id, so a process skips its
    own echo and nobody gets a message twice. Messages from one sender arrive
    in the order it sent them (one publishing connection per process, and
    Redis keeps the order of one connection's publishes).

Failures
    Pub/sub is at-most-once. When Redis is unreachable, local delivery goes
    on; queued and new publishes are dropped and counted (:attr:`stats`),
    logged once per outage on ``wsframe.redis``, and passed to ``on_error``.
    The queue is bounded (``max_queue``): a publish that does not fit is
    dropped the same way. The subscriber reconnects with exponential backoff
    and resubscribes; :attr:`connected` is true again once it has, and
    messages published from then on are delivered. Nothing here blocks the
    event loop.

Presence
    Each process keeps ``{prefix}:proc:{process_id}``, a JSON snapshot of its
    rooms' member names, with a TTL of ``presence_ttl`` seconds refreshed
    every ``heartbeat_interval``, and lists itself in ``{prefix}:procs``.
    Joins and leaves are also published on ``{prefix}:events`` so that other
    processes see them at once. Every heartbeat each process re-reads the
    snapshots: a process that died without saying goodbye (SIGKILL, machine
    lost) disappears from :meth:`presence` within ``presence_ttl`` plus one
    heartbeat. :meth:`close` says goodbye: the others drop its members at
    once. The view is eventually consistent.

    ``on_presence(room, member, action)`` reports every change of that view,
    whichever process caused it: ``"join"`` when ``member`` appears in
    :meth:`presence` of ``room``, ``"leave"`` when it disappears (a leave, a
    closed connection, a process that closed or died). After a Redis outage
    the others' members are kept for ``presence_ttl`` (the time their
    processes have to write their presence again), so a restarted Redis does
    not make everyone leave and come back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import secrets
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union, cast

from .broadcast import (
    DEFAULT_MAX_BUFFER,
    BroadcastResult,
    Message,
    PresenceAction,
    PresenceCallback,
    Rooms,
    SlowPolicy,
    report_presence,
)
from .connection import WebSocket

if TYPE_CHECKING:  # pragma: no cover
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["RedisRooms"]

logger = logging.getLogger("wsframe.redis")

#: Most publishes sent in one pipelined round trip.
_BATCH = 512
#: How long the subscriber waits for a message before it looks at
#: subscription changes (joins of new rooms, last leaves).
_POLL = 0.02

ErrorCallback = Callable[[BaseException, int], None]
#: How long :meth:`RedisRooms.close` keeps cancelling tasks that have not stopped.
_STOP_TIMEOUT = 2.0


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


class RedisRooms:
    """Rooms whose messages and presence are shared through Redis pub/sub.

    ``url`` is a Redis URL (``redis://HOST:PORT/DB``); ``client`` may be given
    instead (a ``redis.asyncio.Redis``; it is not closed by :meth:`close`).
    ``prefix`` namespaces the keys and channels (several apps can share one
    Redis). ``process_id`` identifies this process (default: a random,
    unique one). ``on_error(exc, dropped)`` is called for every Redis failure
    with the number of messages it dropped; it must not block.
    ``max_buffer``/``on_slow`` are the defaults of :meth:`send` and of the
    local delivery of messages from other processes (see
    :func:`~wsframe.asyncio.broadcast`). ``on_presence(room, member, action)``
    is called on the event loop for every change of :meth:`presence`, local
    or remote (see the module's documentation); it must not block, and it may
    be called from inside :meth:`join`, :meth:`leave` and :meth:`leave_all`.

    Only ``str`` and bytes-like messages can cross processes. Call
    :meth:`start` (or enter ``async with``) before using it from the event
    loop, and :meth:`close` at the end; it says goodbye (removes this
    process's presence at once).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Optional[Redis] = None,
        prefix: str = "wsframe",
        process_id: Optional[str] = None,
        heartbeat_interval: float = 1.0,
        presence_ttl: float = 5.0,
        max_queue: int = 10_000,
        max_backoff: float = 5.0,
        on_error: Optional[ErrorCallback] = None,
        max_buffer: Optional[int] = DEFAULT_MAX_BUFFER,
        on_slow: SlowPolicy = "skip",
        on_presence: Optional[PresenceCallback] = None,
    ) -> None:
        if presence_ttl <= heartbeat_interval:
            raise ValueError("presence_ttl must be longer than heartbeat_interval")
        self.url = url
        self.prefix = prefix
        self.process_id = process_id or f"{os.getpid()}-{secrets.token_hex(6)}"
        if "\x00" in self.process_id:
            raise ValueError("process_id must not contain NUL")
        self.heartbeat_interval = heartbeat_interval
        self.presence_ttl = presence_ttl
        self.max_queue = max_queue
        self.max_backoff = max_backoff
        self.on_error = on_error
        self.max_buffer = max_buffer
        self.on_slow = on_slow
        #: Called with ``(room, member, action)`` for every change of :meth:`presence`.
        self.on_presence = on_presence
        #: Counters: ``published``, ``received`` (from other processes),
        #: ``dropped`` (publishes lost to a failure or a full queue),
        #: ``errors`` (failed Redis operations), ``reconnects``.
        self.stats: dict[str, int] = dict.fromkeys(
            ("published", "received", "dropped", "errors", "reconnects"), 0
        )
        self._client: Optional[Redis] = client
        self._own_client = client is None
        #: This process's rooms; their presence changes are published.
        self._local = Rooms(on_presence=self._local_presence)
        self._version = 0
        self._snapshot_dirty = True
        #: process id -> (version, {room: {member names}})
        self._remote: dict[str, tuple[int, dict[str, set[str]]]] = {}
        #: room -> {member name: processes (this one included) where it is present}
        self._global: dict[str, collections.Counter[str]] = {}
        #: process id -> (version of its goodbye, when it came): its older news is stale
        self._gone: dict[str, tuple[int, float]] = {}
        #: Since when Redis has answered without interruption (None: not now). A
        #: process missing from Redis is dropped only after presence_ttl of this.
        self._healthy_since: Optional[float] = None
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake: Optional[asyncio.Event] = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = False
        self._channels: frozenset[str] = frozenset()
        self._publish_failing = False
        self._retry_at = 0.0
        self._backoff = 0.0
        self._closing = False
        self._stopping = False
        self._own = self.process_id.encode() + b"\x00"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect to Redis and start the background tasks (returns at once if Redis is down)."""
        if self._tasks:
            return
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(
                self.url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
        self._wake = asyncio.Event()
        self._closing = self._stopping = False
        self._healthy_since = None
        for coro in (self._publisher(), self._subscriber(), self._heartbeat()):
            self._tasks.append(asyncio.ensure_future(coro))

    async def close(self) -> None:
        """Publish what is queued (briefly), stop the tasks, say goodbye and disconnect.

        The goodbye deletes this process's presence and tells the others, which
        drop its members at once (``on_presence`` reports each as a leave there).
        Returns within a few milliseconds when Redis is up or refuses
        connections; a Redis that accepts but does not answer costs at most
        about 4 s (the goodbye and the disconnect are bounded at 2 s each).
        """
        if self._closing:
            return
        self._closing = True
        if self._queue and self._wake is not None and not self._publish_failing:
            self._wake.set()
            deadline = time.monotonic() + 1.0
            while self._queue and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        await self._stop_tasks()
        client = self._client
        if client is not None:
            with contextlib.suppress(*_redis_errors()):
                await asyncio.wait_for(self._goodbye(client), 2.0)
            if self._own_client:
                with contextlib.suppress(asyncio.TimeoutError, *_redis_errors()):
                    await asyncio.wait_for(client.aclose(), 2.0)
                self._client = None
        self._subscribed = False

    async def _stop_tasks(self) -> None:
        """Cancel the background tasks until they have all stopped (bounded).

        One cancellation is not always enough: on Python < 3.12,
        ``asyncio.wait_for`` swallows a cancellation that arrives as the
        operation it wraps completes (CPython gh-86296), and redis-py wraps
        every command it sends in it (``send_packed_command`` with a
        ``socket_timeout``). A task that lost its cancellation that way goes
        on; it is cancelled again, and its loop also ends on ``_stopping``.
        """
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        pending = {task for task in self._tasks if not task.done()}
        deadline = time.monotonic() + _STOP_TIMEOUT
        while pending:
            for task in pending:
                task.cancel()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.warning(
                    "redis rooms: %d task(s) did not stop within %.0f s",
                    len(pending),
                    _STOP_TIMEOUT,
                )
                break
            _, pending = await asyncio.wait(pending, timeout=min(0.05, remaining))
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.error("redis rooms: task failed", exc_info=task.exception())
        self._tasks = []

    async def __aenter__(self) -> RedisRooms:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether the subscriber is subscribed and publishing works (as far as known)."""
        return self._subscribed and not self._publish_failing

    def is_subscribed(self, room: str) -> bool:
        """Whether messages published to ``room`` by other processes reach this one now."""
        return self._subscribed and self._channel(room) in self._channels

    async def wait_connected(self, timeout: Optional[float] = None) -> None:
        """Wait until :attr:`connected` (e.g. in tests, or before serving)."""

        async def poll() -> None:
            while not self.connected:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)

    # ------------------------------------------------------ the Rooms API

    def join(self, room: str, ws: WebSocket, member: Optional[str] = None) -> None:
        """Add ``ws`` to ``room`` under the presence name ``member`` (default: a unique id)."""
        self._local.join(
            room, ws, member if member is not None else f"{self.process_id}/{id(ws):x}"
        )

    def leave(self, room: str, ws: WebSocket) -> None:
        """Remove ``ws`` from ``room``."""
        self._local.leave(room, ws)

    def leave_all(self, ws: WebSocket) -> None:
        """Remove ``ws`` from every room (called when it closes)."""
        self._local.leave_all(ws)

    def members(self, room: str) -> frozenset[WebSocket]:
        """This process's connections in ``room``."""
        return self._local.members(room)

    def rooms(self, ws: Optional[WebSocket] = None) -> list[str]:
        """The rooms with members in this process, or the rooms ``ws`` is in, sorted."""
        return self._local.rooms(ws)

    def presence(self, room: str) -> set[str]:
        """The member names in ``room`` across all processes (eventually consistent)."""
        return set(self._global.get(room, ()))

    def all_rooms(self) -> list[str]:
        """Every room with members in any process, sorted."""
        return sorted(self._global)

    def send(
        self,
        room: str,
        message: Message,
        *,
        exclude: Optional[WebSocket] = None,
        max_buffer: Optional[int] = DEFAULT_MAX_BUFFER,
        on_slow: Optional[SlowPolicy] = None,
    ) -> BroadcastResult:
        """Deliver to local members now (except ``exclude``), publish to others in the background.

        Returns what the local delivery did. Never waits, never raises for a
        Redis failure (see the module's documentation).
        """
        result = self._local.send(
            room,
            message,
            exclude=exclude,
            max_buffer=max_buffer,
            on_slow=on_slow if on_slow is not None else self.on_slow,
        )
        if isinstance(message, str):
            data = self._own + b"t" + message.encode()
        else:
            data = self._own + b"b" + bytes(message)
        self._enqueue(self._channel(room), data)
        return result

    # ----------------------------------------------------------- internals

    def _channel(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    def _enqueue(self, channel: str, data: bytes) -> None:
        if self._closing or self._wake is None:
            self._drop(RuntimeError("RedisRooms is not started"), 1)
            return
        if len(self._queue) >= self.max_queue:
            self._drop(OverflowError(f"publish queue full ({self.max_queue})"), 1)
            return
        self._queue.append((channel, data))
        self._wake.set()

    def _drop(self, exc: BaseException, count: int) -> None:
        self.stats["dropped"] += count
        self._report(exc, count)

    def _report(self, exc: BaseException, dropped: int) -> None:
        if self.on_error is not None:
            try:
                self.on_error(exc, dropped)
            except Exception:  # pragma: no cover - the app's bug
                logger.exception("on_error callback failed")

    def _failed(self, what: str, exc: BaseException, dropped: int = 0) -> None:
        self.stats["errors"] += 1
        self.stats["dropped"] += dropped
        if not self._publish_failing and what == "publish":
            logger.warning("redis: %s failed (%s); dropping publishes until it is back", what, exc)
        else:
            logger.debug("redis: %s failed: %s", what, exc)
        self._report(exc, dropped)

    def _local_presence(self, room: str, name: str, action: PresenceAction) -> None:
        """A name appeared in or left one of this process's rooms: publish it, count it."""
        self._changed(action, room, name)
        self._count(room, name, 1 if action == "join" else -1)

    def _changed(self, op: PresenceAction, room: str, name: str) -> None:
        self._version += 1
        self._snapshot_dirty = True
        event = {"p": self.process_id, "v": self._version, "op": op, "r": room, "m": name}
        if self._wake is not None and not self._closing:
            self._queue.append((f"{self.prefix}:events", json.dumps(event).encode()))
            self._wake.set()

    def _count(self, room: str, name: str, delta: int) -> None:
        """Count ``name`` in ``room`` once more (``delta`` 1) or less (-1) in the global view."""
        counter = self._global.get(room)
        if counter is None:
            if delta < 0:
                return
            counter = self._global[room] = collections.Counter()
        before = counter[name]
        after = before + delta
        if after > 0:
            counter[name] = after
        else:
            del counter[name]
            if not counter:
                del self._global[room]
        if before <= 0 < after:
            self._notify(room, name, "join")
        elif after <= 0 < before:
            self._notify(room, name, "leave")

    def _notify(self, room: str, name: str, action: PresenceAction) -> None:
        report_presence(self.on_presence, room, name, action)

    def _set_remote(self, pid: str, version: int, rooms: Optional[dict[str, set[str]]]) -> None:
        """Replace what is known of process ``pid`` (None: it is gone), reporting the changes."""
        old = self._remote.pop(pid, None)
        old_rooms = old[1] if old is not None else {}
        new_rooms = rooms if rooms is not None else {}
        if rooms is not None:
            self._remote[pid] = (version, rooms)
        for room in sorted(old_rooms):
            for name in sorted(old_rooms[room] - new_rooms.get(room, set())):
                self._count(room, name, -1)
        for room in sorted(new_rooms):
            for name in sorted(new_rooms[room] - old_rooms.get(room, set())):
                self._count(room, name, 1)

    def _stale(self, pid: str, version: int) -> bool:
        """Whether news of ``pid`` at ``version`` predates its goodbye."""
        gone = self._gone.get(pid)
        return gone is not None and version <= gone[0]

    def _snapshot(self) -> bytes:
        rooms = {room: sorted(self._local.presence(room)) for room in self._local.rooms()}
        return json.dumps({"v": self._version, "rooms": rooms}).encode()

    async def _publisher(self) -> None:
        assert self._wake is not None and self._client is not None
        wake, client, queue = self._wake, self._client, self._queue
        errors = _redis_errors()
        while not self._stopping:
            await wake.wait()
            wake.clear()
            while queue and not self._stopping:
                if self._publish_failing and time.monotonic() < self._retry_at:
                    dropped = len(queue)
                    queue.clear()
                    self.stats["dropped"] += dropped
                    self._report(ConnectionError("redis is down"), dropped)
                    break
                batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                except errors as exc:
                    self._failed("publish", exc, len(batch))
                    await self._forget_idle_connections()
                    self._publish_failing = True
                    self._backoff = min(self.max_backoff, max(0.05, self._backoff * 2))
                    self._retry_at = time.monotonic() + self._backoff
                    continue
                self.stats["published"] += len(batch)
                if self._publish_failing:
                    logger.warning("redis: publishing works again")
                    self._publish_failing = False
                    self._backoff = 0.0

    async def _forget_idle_connections(self) -> None:
        """Close the client's idle pooled connections after a failure.

        A connection left idle in the pool across a Redis restart leads to
        the old server: its next command would fail, and a publish sent on it
        would be lost after Redis is back. Closed, it reconnects when used.
        """
        pool = getattr(self._client, "connection_pool", None)
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.disconnect(inuse_connections=False)

    def _wanted_channels(self) -> set[str]:
        wanted = {self._channel(room) for room in self._local.rooms()}
        wanted.add(f"{self.prefix}:events")
        return wanted

    async def _subscriber(self) -> None:
        assert self._client is not None
        errors = _redis_errors()
        backoff = 0.05
        first = True
        while not self._stopping:
            pubsub: PubSub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                current = self._wanted_channels()
                await pubsub.subscribe(*current)
                # The reply proves the connection works.
                await pubsub.get_message(ignore_subscribe_messages=False, timeout=2.0)
                if not first:
                    self.stats["reconnects"] += 1
                    logger.warning("redis: reconnected and resubscribed")
                    # Redis may have restarted empty: give the others the
                    # presence TTL to write their presence again.
                    self._healthy_since = None
                    await self._forget_idle_connections()
                first = False
                backoff = 0.05
                self._snapshot_dirty = True
                self._channels = frozenset(current)
                await self._beat()
                self._subscribed = True
                if self._publish_failing:  # Redis answers again: publish at once
                    logger.warning("redis: publishing resumes")
                    self._publish_failing = False
                    self._backoff = 0.0
                while not self._stopping:
                    wanted = self._wanted_channels()
                    if wanted != current:
                        if wanted - current:
                            await pubsub.subscribe(*(wanted - current))
                        if current - wanted:
                            await pubsub.unsubscribe(*(current - wanted))
                        current = wanted
                        self._channels = frozenset(current)
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_POLL
                    )
                    while message is not None:
                        self._on_pubsub(message)
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=0.0
                        )
            except errors as exc:
                if self._subscribed or first:
                    logger.warning("redis: subscriber disconnected (%r); reconnecting", exc)
                self._subscribed = False
                self._healthy_since = None
                self._failed("subscribe", exc)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(self.max_backoff, backoff * 2)
            finally:
                self._subscribed = False
                with contextlib.suppress(Exception):
                    await cast(Any, pubsub).aclose()

    def _on_pubsub(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        data: bytes = message["data"]
        if channel == f"{self.prefix}:events":
            self._on_event(data)
            return
        if data.startswith(self._own):
            return  # our own message: delivered locally when sent
        sep = data.find(b"\x00")
        if sep < 0 or sep + 1 >= len(data):
            return
        room = channel[len(self.prefix) + 6 :]
        kind = data[sep + 1 : sep + 2]
        body = data[sep + 2 :]
        self.stats["received"] += 1
        payload: Union[str, bytes] = body.decode() if kind == b"t" else body
        self._local.send(room, payload, max_buffer=self.max_buffer, on_slow=self.on_slow)

    def _on_event(self, data: bytes) -> None:
        try:
            event = json.loads(data)
            pid, version, op = event["p"], int(event["v"]), event["op"]
        except (ValueError, KeyError, TypeError):
            return
        if pid == self.process_id or self._stale(pid, version):
            return
        if op == "bye":
            self._gone[pid] = (version, time.monotonic())
            self._set_remote(pid, version, None)
            return
        known = self._remote.get(pid)
        if known is not None and version <= known[0]:
            return
        try:
            room, name = str(event["r"]), str(event["m"])
        except KeyError:
            return
        rooms = known[1] if known is not None else {}
        self._remote[pid] = (version, rooms)
        names = rooms.setdefault(room, set())
        if op == "join":
            if name not in names:
                names.add(name)
                self._count(room, name, 1)
        elif name in names:
            names.discard(name)
            self._count(room, name, -1)
        if not names:
            del rooms[room]

    async def _heartbeat(self) -> None:
        errors = _redis_errors()
        while not self._stopping:
            await asyncio.sleep(self.heartbeat_interval)
            if self._stopping:
                break
            try:
                await self._beat()
            except errors as exc:
                self._healthy_since = None
                self._failed("heartbeat", exc)

    async def _beat(self) -> None:
        """Refresh this process's presence and re-read everyone else's."""
        client = self._client
        assert client is not None
        key = f"{self.prefix}:proc:{self.process_id}"
        procs = f"{self.prefix}:procs"
        ttl = int(self.presence_ttl * 1000)
        dirty = self._snapshot_dirty
        self._snapshot_dirty = False
        try:
            async with client.pipeline(transaction=False) as pipe:
                if dirty:
                    pipe.set(key, self._snapshot(), px=ttl)
                else:
                    pipe.pexpire(key, ttl)
                pipe.sadd(procs, self.process_id)
                pipe.smembers(procs)
                refreshed, _, members = await pipe.execute()
        except BaseException:
            self._snapshot_dirty = True
            raise
        now = time.monotonic()
        if not refreshed:  # the key was lost (Redis restarted): write it again
            await client.set(key, self._snapshot(), px=ttl)
            self._healthy_since = None
        if self._healthy_since is None:
            self._healthy_since = now
        others = sorted(pid for pid in (m.decode() for m in members) if pid != self.process_id)
        values = (
            await client.mget([f"{self.prefix}:proc:{pid}" for pid in others]) if others else []
        )
        dead = []
        seen = set()
        for pid, value in zip(others, values):
            if value is None:
                dead.append(pid)
                continue
            seen.add(pid)
            try:
                snapshot = json.loads(value)
                version = int(snapshot["v"])
                rooms = {str(room): set(names) for room, names in snapshot["rooms"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if self._stale(pid, version):
                continue
            known = self._remote.get(pid)
            if known is None or version >= known[0]:
                self._set_remote(pid, version, rooms)
        # A process missing from Redis died (its presence expired) or said
        # goodbye; right after an outage it may only not have written its
        # presence again yet. The reads above awaited: if an outage began
        # meanwhile, the subscriber reset _healthy_since (None, or a later
        # time once reconnected), and nobody is declared gone from them.
        healthy_since = self._healthy_since
        if healthy_since is not None and now - healthy_since >= self.presence_ttl:
            for pid in sorted(self._remote):
                if pid not in seen:
                    self._set_remote(pid, 0, None)
        for pid, (_, at) in list(self._gone.items()):
            if now - at > 2 * self.presence_ttl:
                del self._gone[pid]
        if dead:
            await client.srem(procs, *dead)

    async def _goodbye(self, client: Redis) -> None:
        self._version += 1  # joins after a restart (start() again) are newer than the goodbye
        event = json.dumps({"p": self.process_id, "v": self._version, "op": "bye"})
        async with client.pipeline(transaction=False) as pipe:
            pipe.delete(f"{self.prefix}:proc:{self.process_id}")
            pipe.srem(f"{self.prefix}:procs", self.process_id)
            pipe.publish(f"{self.prefix}:events", event)
            await pipe.execute()
