"""One WebSocket connection on asyncio: the protocol and the application's handle.

:class:`WebSocket` is at once the :class:`asyncio.BufferedProtocol` the event loop
drives and the object an application uses (``await ws.recv()``,
``await ws.send()``, ``async for message in ws``...). Keeping both in one
object with ``__slots__`` keeps an idle connection small.

Received frames are parsed synchronously in :meth:`WebSocket.data_received`
by the sans-I/O :mod:`wsframe.connection` (the codec in C). Messages go either
to a bounded queue read by :meth:`~WebSocket.recv` (reading pauses while it is
full) or, in the callback style, straight to a :class:`Listener`'s
:meth:`~Listener.on_message` — no future, task or queue per message.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, Callable, Optional, Union

from ..connection import Connection, State
from ..errors import InvalidHandshake, InvalidState, WebSocketError
from ..events import (
    Accepted,
    BinaryFragment,
    BinaryMessage,
    CloseReceived,
    Ping,
    Pong,
    Rejected,
    Request,
    TextFragment,
    TextMessage,
)
from ..handshake import Request as HttpRequest

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Listener",
    "WebSocket",
]

Message = Union[str, bytes]

#: Default number of received messages buffered before reading pauses.
DEFAULT_MAX_QUEUE = 16
#: Default high-water mark of the transport's write buffer, in bytes.
DEFAULT_WRITE_LIMIT = 64 * 1024
#: Default seconds to wait for the closing handshake before dropping the TCP connection.
DEFAULT_CLOSE_TIMEOUT = 10.0

# Unmasked payloads at least this large are written without a copy:
# header and payload handed to the transport separately.
_ZERO_COPY_SIZE = 16 * 1024


class ConnectionClosed(WebSocketError):
    """The connection is closed: raised by ``recv``, ``send``, ``ping``...

    ``code``/``reason``: the close code and reason the peer sent (1005 if it
    sent none, 1006 if the connection ended without a close frame from it);
    ``was_clean``: whether the closing handshake completed; ``sent`` and
    ``rcvd``: the ``(code, reason)`` of the close frames sent and received,
    or None.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        was_clean: bool,
        sent: Optional[tuple[Optional[int], str]] = None,
        rcvd: Optional[tuple[Optional[int], str]] = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.was_clean = was_clean
        self.sent = sent
        self.rcvd = rcvd
        clean = "cleanly" if was_clean else "abnormally"
        detail = f" ({reason})" if reason else ""
        super().__init__(f"connection closed {clean} with code {code}{detail}")


class ConnectionClosedOK(ConnectionClosed):
    """Closed cleanly with 1000 (normal) or 1001 (going away)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or without a complete closing handshake."""


class Listener:
    """The callback style: subclass it and pass the class to ``serve``/``connect``.

    Every method runs synchronously in the event loop, from the connection's
    ``data_received``: keep them short, and use :meth:`WebSocket.send_nowait`
    to answer. This is the fastest way to handle many small messages.
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


_READ_BUFFER_SIZE = 256 * 1024
_thread_state = threading.local()


def _read_buffer() -> memoryview:
    """The read buffer of this thread's connections: one for all of them.

    The transport reads into it and ``buffer_updated`` parses it at once (the
    decoder copies what it keeps), so no connection holds it between reads:
    an idle connection owns no read buffer, and no ``bytes`` is allocated per
    read.
    """
    try:
        return _thread_state.read_buffer  # type: ignore[no-any-return]
    except AttributeError:
        view = _thread_state.read_buffer = memoryview(bytearray(_READ_BUFFER_SIZE))
        return view


class WebSocket(asyncio.BufferedProtocol):
    """One WebSocket connection, server or client side.

    Handlers get one from ``serve``; clients from ``connect``. Messages are
    ``str`` (text) or ``bytes`` (binary).
    """

    __slots__ = (
        "_app_closed",
        "_close_callbacks",
        "_cork",
        "_draining",
        "_close_timeout",
        "_closed",
        "_conn",
        "_drain_waiter",
        "_handler",
        "_heartbeat",
        "_listener",
        "_loop",
        "_max_queue",
        "_messages",
        "_open_waiter",
        "_paused_reading",
        "_ping_deadline",
        "_ping_payload",
        "_ping_sent_at",
        "_pings",
        "_recv_waiter",
        "_transport",
        "_write_limit",
        "_write_paused",
        "remote_address",
    )

    def __init__(
        self,
        conn: Connection,
        *,
        listener: Optional[Listener] = None,
        handler: Optional[Callable[[WebSocket], Any]] = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._conn = conn
        self._listener = listener
        self._handler = handler
        self._max_queue = max_queue
        self._write_limit = write_limit
        self._close_timeout = close_timeout
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._transport: Optional[asyncio.Transport] = None
        # Created on the first queued message (never, in the callback style).
        self._messages: Optional[collections.deque[Message]] = None
        self._recv_waiter: Optional[asyncio.Future[None]] = None
        self._drain_waiter: Optional[asyncio.Future[None]] = None
        self._open_waiter: Optional[asyncio.Future[None]] = None
        self._closed: Optional[asyncio.Future[None]] = None
        self._close_callbacks: Optional[list[Callable[[WebSocket], None]]] = None
        self._pings: Optional[dict[bytes, tuple[asyncio.Future[float], float]]] = None
        self._paused_reading = False
        self._write_paused = False
        self._app_closed = False
        # Broadcast frames waiting for the end of this loop iteration.
        self._cork: Optional[list[bytes]] = None
        # Failed: waiting for the peer to close after our FIN (see _end_transport).
        self._draining = False
        self._heartbeat: Any = None
        self._ping_payload: Optional[bytes] = None
        self._ping_sent_at = 0.0
        self._ping_deadline = 0.0
        #: The peer's address, as the transport's ``peername``.
        self.remote_address: Any = None
        # Whole messages come straight from the frame loop, without events.
        conn.on_message = self._on_listener_message if listener is not None else self._queue
        # A violation after valid messages waits one loop iteration, so the
        # application can answer those messages first (see _fail_pending).
        conn.defer_failure = True

    # ------------------------------------------------------------ properties

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED (0-3, as the browser's readyState)."""
        if self._transport is None and self._conn.state is not State.CONNECTING:
            return State.CLOSED
        return self._conn.state

    @property
    def ready_state(self) -> int:
        """The state as an int, like the browser's ``WebSocket.readyState``."""
        return int(self.state)

    @property
    def request(self) -> Optional[HttpRequest]:
        """The opening handshake's HTTP request (path, headers...)."""
        return self._conn.request  # type: ignore[attr-defined, no-any-return]

    @property
    def subprotocol(self) -> Optional[str]:
        """The negotiated subprotocol, or None."""
        return self._conn.subprotocol

    @property
    def close_code(self) -> Optional[int]:
        """The close code (see :attr:`ConnectionClosed.code`), None while open."""
        if self._closed is None or not self._closed.done():
            return self._conn.close_code if self._conn.close_received else None
        return self._conn.close_code

    @property
    def close_reason(self) -> str:
        """The close reason the peer sent ("" if none)."""
        return self._conn.close_reason

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not yet sent to the network (like the browser's)."""
        transport = self._transport
        if transport is None:
            return 0
        corked = sum(map(len, self._cork)) if self._cork is not None else 0
        return transport.get_write_buffer_size() + corked

    @property
    def connection(self) -> Connection:
        """The underlying sans-I/O :class:`wsframe.connection.Connection`."""
        return self._conn

    # ----------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not asserted to be an asyncio.Transport: uvloop's transports are not.
        self._transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        self.remote_address = transport.get_extra_info("peername")
        # A WriteTransport (or uvloop's), though Protocol types it as BaseTransport.
        transport.set_write_buffer_limits(self._write_limit)  # type: ignore[attr-defined]
        self._flush()  # the client's request

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_read_buffer()[:nbytes])

    def data_received(self, data: Any) -> None:
        conn = self._conn
        if conn._decoder is not None:
            conn._receive_frames(data)  # open: straight to the frames
        else:
            conn.receive_data(data)
        if conn._events:
            self._dispatch(conn.events())
        if conn._out:
            self._flush()
        if conn.close_transport and self._transport is not None:
            self._end_transport()
        elif conn._deferred_error is not None:
            self._schedule_failure()

    def _schedule_failure(self) -> None:
        """A violation came after valid messages: fail once the application
        has read them (recv() empties the queue) or after close_timeout."""
        assert self._loop is not None
        if not self._messages:
            self._loop.call_soon(self._fail_pending)
        else:
            self._loop.call_later(self._close_timeout, self._fail_pending)

    def _fail_pending(self) -> None:
        conn = self._conn
        if not conn.failure_pending:
            return
        conn.fail_pending()
        self._flush()
        if conn.close_transport:
            self._end_transport()

    def eof_received(self) -> Optional[bool]:
        return None  # close the transport

    def connection_lost(self, exc: Optional[Exception]) -> None:
        conn = self._conn
        was_connecting = conn.state is State.CONNECTING
        if conn.paused:
            # What arrived while the application was behind is not lost: it
            # is queued for recv() (at most one read beyond max_queue).
            conn.resume()
        conn.receive_eof()
        events = conn.events()
        if events:
            self._dispatch(events)
        self._transport = None
        if self._heartbeat is not None:
            self._heartbeat.discard(self)
        closed = self._closed_future()
        if not closed.done():
            closed.set_result(None)
        error = self._closed_error()
        if self._open_waiter is not None and not self._open_waiter.done():
            failure = conn.error if isinstance(conn.error, InvalidHandshake) else error
            self._open_waiter.set_exception(failure)
        _wake(self._recv_waiter)
        _wake(self._drain_waiter)
        if self._pings:
            for future, _ in self._pings.values():
                if not future.done():
                    future.set_exception(error)
            self._pings = None
        if not was_connecting:
            if self._listener is not None:
                self._listener_call(
                    self._listener.on_close, error.code, error.reason, error.was_clean
                )
            if self._close_callbacks:
                for callback in self._close_callbacks:
                    callback(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        _wake(waiter)

    # --------------------------------------------------------------- events

    def _dispatch(self, events: list[Any]) -> None:
        listener = self._listener
        for event in events:
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                if listener is not None:
                    self._listener_call(listener.on_message, event.data)
                else:
                    self._queue(event.data)
            elif kind is Ping:
                if listener is not None:
                    self._listener_call(listener.on_ping, event.payload)
            elif kind is Pong:
                self._pong(event.payload)
                if listener is not None:
                    self._listener_call(listener.on_pong, event.payload)
            elif kind is TextFragment or kind is BinaryFragment:
                # Only with fragments=True: deliver pieces as they come.
                if listener is not None:
                    self._listener_call(listener.on_message, event.data)
                else:
                    self._queue(event.data)
            elif kind is CloseReceived:
                pass  # the sans-I/O connection answers; connection_lost reports
            elif kind is Request:
                self._on_request(event.request)
            elif kind is Accepted:
                self._on_open()
            elif kind is Rejected:
                waiter = self._open_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_exception(event.error)

    def _queue(self, message: Message) -> None:
        if self._messages is None:
            self._messages = collections.deque()
        self._messages.append(message)
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            _wake(waiter)
        if len(self._messages) >= self._max_queue and not self._paused_reading:
            # The application is behind: stop delivering (the rest of this
            # read stays in the connection, undecoded) and stop reading.
            self._paused_reading = True
            self._conn.pause()
            if self._transport is not None:
                self._transport.pause_reading()

    def _resume(self) -> None:
        """The application caught up: deliver what waited, read again."""
        self._paused_reading = False
        conn = self._conn
        conn.resume()
        if conn._events:
            self._dispatch(conn.events())
        if conn._out:
            self._flush()
        transport = self._transport
        if transport is not None:
            if conn.close_transport:
                self._end_transport()
            else:
                if conn._deferred_error is not None:
                    self._schedule_failure()
                if not self._paused_reading:
                    transport.resume_reading()

    def _on_listener_message(self, message: Message) -> None:
        try:
            self._listener.on_message(self, message)  # type: ignore[union-attr]
        except Exception as exc:
            self._listener_failed(exc)

    def _listener_failed(self, exc: Exception) -> None:
        listener = self._listener
        assert listener is not None
        try:
            listener.on_error(self, exc)
        finally:
            self._internal_error()

    def _listener_call(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(self, *args)
        except Exception as exc:
            self._listener_failed(exc)

    def _internal_error(self) -> None:
        conn = self._conn
        if conn.state is State.OPEN:
            conn.close(1011, "internal error")
            self._flush()
        self._close_transport_later()

    def _on_request(self, request: HttpRequest) -> None:
        """Server: the request arrived; the server module decides (see _accept)."""
        raise NotImplementedError  # replaced by the server's subclass

    def _on_open(self) -> None:
        """The handshake completed: start the handler or the listener."""
        if self._heartbeat is not None:
            self._heartbeat.add(self)
        if self._open_waiter is not None and not self._open_waiter.done():
            self._open_waiter.set_result(None)
        if self._listener is not None:
            self._listener_call(self._listener.on_open)

    # -------------------------------------------------------------- writing

    def _flush(self) -> None:
        if self._cork is not None:
            self._uncork()
        data = self._conn.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def _write_corked(self, data: bytes) -> None:
        """Write ``data`` at the end of this loop iteration, with whatever else
        is corked for this connection by then: one syscall for a burst of
        broadcasts instead of one each. Any direct write uncorks first, so
        the order of frames is kept."""
        cork = self._cork
        if cork is None:
            self._cork = [data]
            _cork_later(self)
        else:
            cork.append(data)

    def _uncork(self) -> None:
        cork = self._cork
        self._cork = None
        if cork and self._transport is not None:
            self._transport.write(cork[0] if len(cork) == 1 else b"".join(cork))

    def _closed_future(self) -> asyncio.Future[None]:
        if self._closed is None:
            loop = self._loop or asyncio.get_running_loop()
            self._closed = loop.create_future()
        return self._closed

    def _closed_error(self) -> ConnectionClosed:
        conn = self._conn
        code = conn.close_code or 1006
        clean = conn.was_clean
        cls = ConnectionClosedOK if clean and code in (1000, 1001) else ConnectionClosedError
        return cls(code, conn.close_reason, clean, conn.close_sent, conn.close_received)

    def _check_sendable(self) -> None:
        if self._conn.state is not State.OPEN or self._transport is None:
            if self._conn.state is State.CONNECTING:
                raise InvalidState("the opening handshake is not complete")
            raise self._closed_error()

    def send_nowait(self, message: Any) -> None:
        """Send a message now, without waiting for the write buffer to drain.

        ``str`` is sent as text, any bytes-like object as binary. For the
        callback style and for broadcasting; check :attr:`buffered_amount` to
        avoid growing the buffer without bound.
        """
        conn = self._conn
        transport = self._transport
        if transport is None or conn.state is not State.OPEN:
            self._check_sendable()
        assert transport is not None
        if (
            type(message) is bytes  # immutable: safe to leave in the transport's buffer
            and len(message) >= _ZERO_COPY_SIZE
            and conn.is_server
            and conn.deflate is None
            and not conn._tx_opcode
        ):
            self._send_zero_copy(message)
            return
        frame = conn.encode_message(message)
        if conn._out or self._cork is not None:
            self._flush()
        transport.write(frame)

    def _send_zero_copy(self, payload: Any) -> None:
        from ..codec import encode_frame_header

        self._flush()
        assert self._transport is not None
        self._transport.writelines([encode_frame_header(2, len(payload)), payload])

    async def send(self, message: Any) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of ``str`` (or of bytes-like) is sent as
        one fragmented message, a fragment per item. Waits while the write
        buffer is above its high-water mark (backpressure).
        """
        if type(message) is str or type(message) is bytes or _is_buffer(message):
            self.send_nowait(message)  # bytes-like: array.array, numpy... too
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(message.__aiter__())
        elif isinstance(message, Iterable) and not isinstance(message, str):
            await self._send_fragments(_aiter(message))
        else:
            raise TypeError(
                f"cannot send {type(message).__name__}: send str, a bytes-like object, "
                "or an (async) iterable of them for a fragmented message"
            )
        if self._write_paused:
            await self.drain()

    async def _send_fragments(self, fragments: AsyncIterator[Any]) -> None:
        conn = self._conn
        try:
            first = await fragments.__anext__()
        except StopAsyncIteration:
            return
        self._check_sendable()
        text = isinstance(first, str)
        previous = first
        started = False
        async for fragment in fragments:
            if isinstance(fragment, str) is not text:
                raise TypeError("all fragments of a message must be str, or all bytes-like")
            self._check_sendable()
            if started:
                conn.send_continuation(previous, fin=False)
            elif text:
                conn.send_text(previous, fin=False)
            else:
                conn.send_binary(previous, fin=False)
            started = True
            previous = fragment
            self._flush()
            if self._write_paused:
                await self.drain()
        self._check_sendable()
        if started:
            conn.send_continuation(previous, fin=True)
        elif text:
            conn.send_text(previous)
        else:
            conn.send_binary(previous)
        self._flush()

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""
        while self._write_paused and self._transport is not None:
            if self._drain_waiter is None or self._drain_waiter.done():
                assert self._loop is not None
                self._drain_waiter = self._loop.create_future()
            await asyncio.shield(self._drain_waiter)
        if self._transport is None and self._conn.state is not State.CONNECTING:
            raise self._closed_error()

    async def ping(self, data: Optional[bytes] = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds."""
        self._check_sendable()
        payload = os.urandom(4) if data is None else bytes(data)
        assert self._loop is not None
        if self._pings is None:
            self._pings = {}
        if payload in self._pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        future: asyncio.Future[float] = self._loop.create_future()
        # perf_counter, not loop.time(): uvloop's clock ticks in milliseconds.
        self._pings[payload] = (future, time.perf_counter())
        self._conn.send_ping(payload)
        self._flush()
        return await future

    def _send_heartbeat(self, payload: bytes, now: float, deadline: float) -> None:
        """A heartbeat ping (see :mod:`wsframe.asyncio.keepalive`)."""
        if self._conn.state is not State.OPEN or self._transport is None:
            return
        self._ping_payload = payload
        self._ping_sent_at = now
        self._ping_deadline = deadline
        self._conn.send_ping(payload)
        self._flush()

    def _pong(self, payload: bytes) -> None:
        if payload == self._ping_payload:
            self._ping_payload = None  # the heartbeat's ping was answered
        pings = self._pings
        if pings:
            entry = pings.pop(payload, None)
            if entry is not None and not entry[0].done():
                assert self._loop is not None
                entry[0].set_result(time.perf_counter() - entry[1])

    # -------------------------------------------------------------- reading

    async def recv(self) -> Message:
        """Wait for the next message: ``str`` for text, ``bytes`` for binary.

        Raises :class:`ConnectionClosed` once the connection is closed and
        every message received before was read.
        """
        while True:
            messages = self._messages
            if messages:
                message = messages.popleft()
                if self._paused_reading and len(messages) <= self._max_queue // 2:
                    self._resume()
                elif not messages and self._conn._deferred_error is not None:
                    # The last message before a violation: the application
                    # answers it, then the connection fails.
                    assert self._loop is not None
                    self._loop.call_soon(self._fail_pending)
                return message
            if self._transport is None and self._conn.state is not State.CONNECTING:
                raise self._closed_error()
            assert self._loop is not None
            waiter = self._recv_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                if self._recv_waiter is waiter:
                    self._recv_waiter = None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    # -------------------------------------------------------------- closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: start the closing handshake and wait for its end.

        After ``close_timeout`` seconds without the peer's answer, the TCP
        connection is dropped.
        """
        conn = self._conn
        self._app_closed = True
        if conn.state is State.OPEN and self._transport is not None:
            conn.close(code, reason)
            self._flush()
        elif conn.state is State.CONNECTING and self._transport is not None:
            self._transport.abort()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (the TCP connection too)."""
        closed = self._closed_future()
        if closed.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(closed), self._close_timeout)
        except asyncio.TimeoutError:
            if self._transport is not None:
                self._transport.abort()
            await asyncio.shield(closed)

    def _end_transport(self) -> None:
        """The connection is over: close the TCP connection, gracefully.

        After failing the connection the peer may still be sending: closing a
        socket with unread data makes the kernel send a reset, and the peer may
        then lose our last frames (the close frame saying why). So send our
        FIN instead, keep reading (and ignoring) until the peer closes, and
        drop the connection after ``close_timeout``.
        """
        transport = self._transport
        if transport is None:
            return
        error = self._conn.error
        if error is None or isinstance(error, InvalidHandshake):
            transport.close()
            return
        if self._draining:
            return
        self._draining = True
        if transport.can_write_eof():
            transport.write_eof()
        if self._paused_reading:
            self._paused_reading = False
            transport.resume_reading()
        assert self._loop is not None
        self._loop.call_later(self._close_timeout, _abort_if_open, self)

    def _close_transport_later(self) -> None:
        """Close the transport now (flushing) and abort it if that takes too long."""
        transport = self._transport
        if transport is None:
            return
        self._flush()  # e.g. the close frame of a failure, before closing
        transport.close()
        assert self._loop is not None
        self._loop.call_later(self._close_timeout, _abort_if_open, self)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: send a close frame with ``code`` and drop it."""
        conn = self._conn
        if conn.state is State.OPEN:
            conn.close(code, reason)
            self._flush()
        self._close_transport_later()

    def add_close_callback(self, callback: Callable[[WebSocket], None]) -> None:
        """Call ``callback(ws)`` once the connection is closed."""
        if self._closed is not None and self._closed.done():
            callback(self)
            return
        if self._close_callbacks is None:
            self._close_callbacks = []
        self._close_callbacks.append(callback)

    def __repr__(self) -> str:
        side = "server" if self._conn.is_server else "client"
        return f"<WebSocket {side} {self.state.name} {self.remote_address}>"


def _cork_later(ws: WebSocket) -> None:
    """Register ``ws`` for this thread's end-of-iteration uncorking."""
    corked: Optional[list[WebSocket]] = getattr(_thread_state, "corked", None)
    if corked is None:
        corked = _thread_state.corked = []
    if not corked:
        asyncio.get_running_loop().call_soon(_uncork_all, corked)
    corked.append(ws)


def _uncork_all(corked: list[WebSocket]) -> None:
    pending = corked[:]
    corked.clear()
    for ws in pending:
        if ws._cork is not None:
            ws._uncork()


def _abort_if_open(ws: WebSocket) -> None:
    if ws._transport is not None:
        ws._transport.abort()


def _is_buffer(obj: Any) -> bool:
    try:
        memoryview(obj).release()
    except TypeError:
        return False
    return True


def _wake(waiter: Optional[asyncio.Future[None]]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
