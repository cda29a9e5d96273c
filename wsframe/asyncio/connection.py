"""One WebSocket connection on asyncio: the protocol and the application's handle.

:class:`WebSocket` is at once the :class:`asyncio.BufferedProtocol` the event
loop drives and the object an application uses (``await ws.recv()``,
``await ws.send()``, ``async for message in ws``...). Keeping both in one
object with ``__slots__`` keeps an idle connection small.

Everything that does not depend on asyncio — the receive pump, the inbox,
the send path, heartbeats, failing — is the compiled driver core
(:mod:`wsframe.driver`); :class:`~wsframe.asyncio.driver.AsyncioDriver` adds
the event loop, and this module the application's API. Messages go either to
a bounded inbox read by :meth:`~WebSocket.recv` (reading pauses while it is
full) or, in the callback style, straight to a :class:`Listener`'s
:meth:`~Listener.on_message` — no future, task or queue per message.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ..driver import ConnectionInfo
from ..errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
)
from ..events import Accepted, Event, Pong, Rejected, Request
from ..handshake import Request as HttpRequest
from ..options import DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_QUEUE, DEFAULT_WRITE_LIMIT
from ..state import State
from ..typing import DataLike, Fragments
from .driver import AsyncioDriver, Message

if TYPE_CHECKING:
    from ..connection import Connection
    from ..counters import Counters

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_WRITE_LIMIT",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Listener",
    "Message",
    "WebSocket",
]


class Listener:
    """The callback style: subclass it and pass the class to ``serve``/``connect``.

    Every method runs synchronously in the event loop, as data arrives: keep
    them short, and use :meth:`WebSocket.send_nowait` to answer. This is the
    fastest way to handle many small messages.
    """

    def on_open(self, ws: WebSocket) -> None:
        """The opening handshake completed."""

    def on_message(self, ws: WebSocket, message: Message) -> None:
        """A message arrived: ``str`` for text, ``bytes`` for binary."""

    def on_ping(self, ws: WebSocket, payload: bytes) -> None:
        """A ping arrived (the pong is sent automatically)."""

    def on_pong(self, ws: WebSocket, payload: bytes) -> None:
        """A pong arrived."""

    def on_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        """The connection is closed (after ``on_open``, exactly once)."""

    def on_error(self, ws: WebSocket, error: BaseException) -> None:
        """A listener method raised ``error``; the connection is closed with 1011."""


class WebSocket(AsyncioDriver, ConnectionInfo):
    """One WebSocket connection, server or client side.

    Handlers get one from ``serve``; clients from ``connect``. Messages are
    ``str`` (text) or ``bytes`` (binary).
    """

    __slots__ = (
        "_app_closed",
        "_close_callbacks",
        "_closed",
        "_handler",
        "_open_waiter",
        "_pings",
    )

    def __init__(
        self,
        conn: Connection,
        *,
        listener: Optional[Listener] = None,
        handler: Optional[Callable[[WebSocket], Awaitable[object]]] = None,
        counters: Optional[Counters] = None,
    ) -> None:
        super().__init__(conn, listener, counters)
        self._handler = handler
        self._open_waiter: Optional[asyncio.Future[None]] = None
        self._closed: Optional[asyncio.Future[None]] = None
        self._close_callbacks: Optional[list[Callable[[WebSocket], None]]] = None
        self._pings: Optional[dict[bytes, tuple[asyncio.Future[float], float]]] = None
        self._app_closed = False

    # ------------------------------------------------------------ properties

    @property
    def close_code(self) -> Optional[int]:
        """The close code (see :attr:`ConnectionClosed.code`), None while open."""
        if self._closed is None or not self._closed.done():
            return self.conn.close_code if self.conn.close_received else None
        return self.conn.close_code

    @property
    def closed_by_application(self) -> bool:
        """Whether the application called :meth:`close`."""
        return self._app_closed

    # ----------------------------------------------------- asyncio.Protocol

    def connection_lost(self, exc: Optional[Exception]) -> None:
        """The transport is gone: resolve every waiter, call ``on_close`` and callbacks."""
        super().connection_lost(exc)
        closed = self._closed_future()
        if not closed.done():
            closed.set_result(None)
        error = self.closed_error()
        waiter = self._open_waiter
        if waiter is not None and not waiter.done():
            failure = self.conn.error if isinstance(self.conn.error, InvalidHandshake) else error
            waiter.set_exception(failure)
        if self._pings:
            for future, _ in self._pings.values():
                if not future.done():
                    future.set_exception(error)
            self._pings = None
        if self.opened:
            if self.listener is not None:
                self.listener_call(
                    self.listener.on_close, error.code, error.reason, error.was_clean
                )
            if self._close_callbacks:
                for callback in self._close_callbacks:
                    callback(self)

    def handle_event(self, event: Event) -> None:
        """The handshake's events and pongs (the core handles the rest)."""
        kind = type(event)
        if kind is Pong:
            self._pong(event.payload)  # type: ignore[attr-defined]
        elif kind is Request:
            self.handle_request(event.request)  # type: ignore[attr-defined]
        elif kind is Accepted:
            self.open_completed()
            waiter = self._open_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind is Rejected:
            waiter = self._open_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(event.error)  # type: ignore[attr-defined]

    def handle_request(self, request: HttpRequest) -> None:
        """Server side: the request arrived (the server's subclass decides)."""
        raise NotImplementedError

    def expect_open(self) -> asyncio.Future[None]:
        """Client side: a future resolved when the handshake succeeds (or failed)."""
        self._open_waiter = self.event_loop().create_future()
        return self._open_waiter

    # -------------------------------------------------------------- sending

    #: Send a message now, without waiting for the write buffer to drain:
    #: ``str`` as text, any bytes-like object as binary. For the callback
    #: style and for broadcasting; check :attr:`buffered_amount` to avoid
    #: growing the buffer without bound.
    send_nowait = AsyncioDriver.send_message

    async def send(self, message: Union[DataLike, Fragments]) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of ``str`` (or of bytes-like) is sent as
        one fragmented message, a fragment per item. Waits while the write
        buffer is above its high-water mark (backpressure).
        """
        if type(message) is str or type(message) is bytes or _is_buffer(message):
            self.send_message(message)  # bytes-like: array.array, numpy... too
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(message.__aiter__())
        elif isinstance(message, Iterable) and not isinstance(message, str):
            await self._send_fragments(_aiter(message))
        else:
            raise TypeError(
                f"cannot send {type(message).__name__}: send str, a bytes-like object, "
                "or an (async) iterable of them for a fragmented message"
            )
        if self.writing_paused:
            await self.drain()

    async def _send_fragments(self, fragments: AsyncIterator[Any]) -> None:
        conn = self.conn
        try:
            first = await fragments.__anext__()
        except StopAsyncIteration:
            return
        self.check_sendable()
        text = isinstance(first, str)
        previous = first
        started = False
        async for fragment in fragments:
            if isinstance(fragment, str) is not text:
                raise TypeError("all fragments of a message must be str, or all bytes-like")
            self.check_sendable()
            if started:
                conn.send_continuation(previous, fin=False)
            elif text:
                conn.send_text(previous, fin=False)
            else:
                conn.send_binary(previous, fin=False)
            started = True
            previous = fragment
            self.flush()
            if self.writing_paused:
                await self.drain()
        self.check_sendable()
        if started:
            conn.send_continuation(previous, fin=True)
        elif text:
            conn.send_text(previous)
        else:
            conn.send_binary(previous)
        self.flush()

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""
        await self.wait_drained()
        if self.transport is None and self.conn.state is not State.CONNECTING:
            raise self.closed_error()

    async def ping(self, data: Optional[bytes] = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds."""
        self.check_sendable()
        payload = os.urandom(4) if data is None else bytes(data)
        if self._pings is None:
            self._pings = {}
        if payload in self._pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        future: asyncio.Future[float] = self.event_loop().create_future()
        # perf_counter, not loop.time(): uvloop's clock ticks in milliseconds.
        self._pings[payload] = (future, time.perf_counter())
        self.conn.send_ping(payload)
        self.flush()
        return await future

    def _pong(self, payload: bytes) -> None:
        pings = self._pings
        if pings:
            entry = pings.pop(payload, None)
            if entry is not None and not entry[0].done():
                entry[0].set_result(time.perf_counter() - entry[1])

    # -------------------------------------------------------------- reading

    #: Wait for the next message: ``str`` for text, ``bytes`` for binary.
    #: Raises :class:`ConnectionClosed` once the connection is closed and every
    #: message received before was read.
    recv = AsyncioDriver.next_message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        try:
            while True:
                yield await self.next_message()
        except ConnectionClosedOK:
            return

    # -------------------------------------------------------------- closing

    def _closed_future(self) -> asyncio.Future[None]:
        if self._closed is None:
            self._closed = self.event_loop().create_future()
        return self._closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: start the closing handshake and wait for its end.

        After ``close_timeout`` seconds without the peer's answer, the TCP
        connection is dropped.
        """
        self._app_closed = True
        if self.conn.state is State.CONNECTING and self.transport is not None:
            self.transport.abort()
        else:
            self.start_close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (the TCP connection too)."""
        closed = self._closed_future()
        if closed.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(closed), self.conn.options.close_timeout)
        except asyncio.TimeoutError:
            self.abort()
            await asyncio.shield(closed)

    def add_close_callback(self, callback: Callable[[WebSocket], None]) -> None:
        """Call ``callback(ws)`` once the connection is closed."""
        if self._closed is not None and self._closed.done():
            callback(self)
            return
        if self._close_callbacks is None:
            self._close_callbacks = []
        self._close_callbacks.append(callback)

    def __repr__(self) -> str:
        side = "server" if self.conn.is_server else "client"
        return f"<WebSocket {side} {self.state.name} {self.remote_address}>"


def _is_buffer(obj: Any) -> bool:
    try:
        memoryview(obj).release()
    except TypeError:
        return False
    return True


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
