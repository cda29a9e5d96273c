"""One WebSocket connection on threads and a blocking socket.

:class:`WebSocket` is a driver on the shared driver core
(:class:`wsframe.driver.DriverCore`): the core does the protocol work — the
receive pump, the inbox with its watermarks, the send path, heartbeats,
deferred and graceful failure — and this module adds what threads decide:

* a lock (a :class:`threading.Condition`) that every call into the core
  holds, so that any number of threads may ``send`` while one ``recv``\\ s;
* who reads the socket: a thread that waits for something from the peer
  (``recv`` for a message, ``ping`` for its pong, ``close`` for the end)
  reads it itself, into the core, so a message costs no hand-over between
  threads; when no thread has read for a while (``IDLE_READ``), the
  connection's background reader thread reads instead, so pings are
  answered and the close frame is seen whatever the application does, and
  gives the socket back as soon as a thread waits again;
* the waits, on that condition, which the core's wake-ups notify;
* :class:`~wsframe.sync.transport.SocketTransport`, the core's transport,
  whose queue the thread that wrote sends once it released the lock.

``recv`` is for one thread at a time (another raises
:class:`~wsframe.errors.ConcurrencyError`); ``send``, ``ping`` and ``close``
are safe from any thread.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ..driver import ConnectionInfo, DriverCore
from ..errors import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)
from ..events import Accepted, Event, Pong
from ..state import State
from ..typing import Data, DataLike
from . import timer
from .transport import SocketLike, SocketTransport

if TYPE_CHECKING:
    from ..connection import Connection
    from ..counters import Counters

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Message",
    "WebSocket",
]

Message = Data

_END: Any = object()

#: Seconds without a read by the application after which the background
#: reader reads the socket (pongs, close frames, messages for the inbox).
IDLE_READ = 0.1
#: Bytes of each reading thread's buffer.
READ_BUFFER_SIZE = 256 * 1024

_thread_state = threading.local()


def _read_buffer() -> memoryview:
    """This thread's read buffer: the socket is read into it and the core
    parses it at once (it copies what it keeps), so one buffer serves every
    connection the thread reads."""
    try:
        view: memoryview = _thread_state.buffer
    except AttributeError:
        view = _thread_state.buffer = memoryview(bytearray(READ_BUFFER_SIZE))
    return view


_CONNECTING = State.CONNECTING
_OPEN = State.OPEN


class WebSocket(DriverCore, ConnectionInfo):
    """One WebSocket connection, server or client side, used from threads.

    Clients get one from :func:`wsframe.sync.connect`, handlers from
    :func:`wsframe.sync.serve`. Messages are ``str`` (text) or ``bytes``
    (binary).
    """

    __slots__ = (
        "_app_closed",
        "_background_due",
        "_closed",
        "_fragment_lock",
        "_fragmenter",
        "_idle_timer",
        "_last_read",
        "_pings",
        "_reader",
        "_reading",
        "_receiver",
        "_soon",
        "_sock_transport",
        "_mutex",
        "_waiting",
        "lock",
        "local_address",
    )

    def __init__(
        self, conn: Connection, sock: SocketLike, counters: Optional[Counters] = None
    ) -> None:
        super().__init__(conn, None, counters)
        # Reentrant: the transport notifies the waiting threads when the socket
        # is shut down, from whichever thread does it, holding the lock or not.
        self._mutex = threading.RLock()
        #: The connection's lock (a condition): every call into the driver core holds it.
        self.lock = threading.Condition(self._mutex)
        self._sock_transport = SocketTransport(sock, self, self.lock)
        self._waiting = 0  # threads of the application waiting on the condition
        self._receiver: Optional[int] = None  # the thread in recv()
        self._reader: Optional[threading.Thread] = None  # the background reader
        self._reading = False  # a thread is reading the socket
        self._background_due = False  # nobody read for IDLE_READ: the background reads
        self._last_read = 0.0  # when the application last read
        self._idle_timer: Optional[timer.TimerHandle] = None
        self._soon: Optional[list[Callable[[], object]]] = None
        self._pings: Optional[dict[bytes, list[Any]]] = None
        self._fragment_lock = threading.Lock()
        self._fragmenter: Optional[int] = None
        self._closed = False  # the reader finished: the socket is closed
        self._app_closed = False
        #: The peer's address.
        self.remote_address: Any = self._sock_transport.get_extra_info("peername")
        #: Our address.
        self.local_address: Any = self._sock_transport.get_extra_info("sockname")

    # ------------------------------------------------------------ properties

    @property
    def socket(self) -> SocketLike:
        """The socket (an :class:`ssl.SSLSocket` for ``wss://``)."""
        return self._sock_transport.sock

    @property
    def socket_transport(self) -> SocketTransport:
        """The core's transport over the socket (its queue, its send lock)."""
        return self._sock_transport

    @property
    def close_code(self) -> Optional[int]:
        """The close code (as :attr:`ConnectionClosed.code`), None until it is known."""
        if not self._closed:
            return self.conn.close_code if self.conn.close_received else None
        return self.conn.close_code or 1006

    @property
    def closed_by_application(self) -> bool:
        """Whether the application called :meth:`close`."""
        return self._app_closed

    # ------------------------------------------------- the core's I/O model

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once the current step is over (the core's hook).

        The reader thread runs it after the read that asked for it; a
        callback asked for by ``recv`` (the last message before a violation
        was taken) runs once the application answered: after its next
        ``send``, or when it next waits.
        """
        if self._soon is None:
            self._soon = []
        self._soon.append(callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> timer.TimerHandle:
        """Run ``callback`` under the lock after ``delay`` seconds (the timer thread)."""

        def run() -> None:
            with self.lock:
                callback()
                self.run_soon()
            self._sock_transport.drain(block=False)

        return timer.call_later(delay, run)

    def run_soon(self) -> None:
        """Run the callbacks :meth:`call_soon` queued (holding the lock)."""
        while self._soon:
            callbacks, self._soon = self._soon, None
            for callback in callbacks:
                callback()

    def wake_reader(self) -> None:
        """A message or the end arrived: wake the threads waiting on the lock."""
        if self._waiting:
            self.lock.notify_all()

    def wake_writer(self) -> None:
        """Writers never wait on the core (they send what they queued)."""

    def handle_event(self, event: Event) -> None:
        """Pongs for :meth:`ping`; the client's handshake completed."""
        kind = type(event)
        if kind is Pong:
            pings = self._pings
            if pings:
                entry = pings.get(event.payload)  # type: ignore[attr-defined]
                if entry is not None:
                    entry[1] = time.perf_counter() - entry[0]
                    self.lock.notify_all()
        elif kind is Accepted:
            self.open_completed()

    def keepalive(self, now: float, interval: float, timeout: float) -> bool:
        """A heartbeat's tick (from its thread): the core's, under the lock."""
        with self.lock:
            alive = DriverCore.keepalive(self, now, interval, timeout)
            self.run_soon()
            failed = not alive and self.draining
        transport = self._sock_transport
        transport.drain(block=False)
        if failed:
            # The peer does not answer: once our close frame and FIN are out,
            # wake the thread blocked reading it (it would wait for
            # close_timeout) — the application learns at once, as with asyncio.
            transport.shutdown_reading()
        return alive

    def connection_lost(self, exc: Optional[Exception]) -> None:
        """The socket ended (the lock is held): wake everyone, fail the pings."""
        if self._closed:
            return
        DriverCore.connection_lost(self, exc)
        self._closed = True
        self._pings = None
        self.lock.notify_all()

    # ------------------------------------------------------------- reading

    def read_handshake(self, deadline: Optional[float], done: Callable[[], bool]) -> None:
        """Read in the calling thread until ``done()`` (the handshake's part is over).

        Bounded by ``deadline`` (a :func:`time.monotonic` time): past it the
        socket is dropped and :class:`TimeoutError` raised; any other error
        drops it too.
        """
        transport = self._sock_transport
        sock = transport.sock
        try:
            while not done() and not self._closed:
                if transport.has_pending:
                    transport.drain()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise socket.timeout("timed out")
                    sock.settimeout(remaining)
                data = sock.recv(65536)
                with self.lock:
                    if data:
                        self.receive(data)
                    else:
                        self.connection_lost(None)
                    self.run_soon()
            if transport.has_pending:
                transport.drain()
        except BaseException as exc:
            self.end_handshake(exc if isinstance(exc, Exception) else None)
            if isinstance(exc, socket.timeout):
                raise TimeoutError("timed out during the opening handshake") from None
            raise

    def end_handshake(self, error: Optional[Exception] = None) -> None:
        """The opening handshake failed or was refused: drop and close the socket."""
        transport = self._sock_transport
        if transport.has_pending and error is None:
            transport.drain()  # the refusal (an HTTP error response)
        with self.lock:
            if not self._closed:
                transport.abort()
                self.connection_lost(error)
        transport.sock.close()

    def opened_in_thread(self) -> None:
        """The handshake is over and the connection open: start the background reader."""
        self._sock_transport.sock.settimeout(None)
        with self.lock:
            self._read_done()
        self._reader = threading.Thread(
            target=self._read_in_background, name=f"wsframe-reader-{id(self):x}", daemon=True
        )
        self._reader.start()

    def _read_once(self, deadline: Optional[float] = None) -> bool:
        """Read the socket once into the core (holding the lock; released while
        reading). False if ``deadline`` passed with nothing to read."""
        transport = self._sock_transport
        sock = transport.sock
        self._reading = True
        lock = self.lock
        lock.release()
        error: Optional[Exception] = None
        try:
            if deadline is not None and not _readable(sock, deadline):
                nbytes = -1
            else:
                view = _read_buffer()
                nbytes = sock.recv_into(view)
        except Exception as exc:  # OSError, SSLError: the connection is gone
            error = exc
            nbytes = 0
        finally:
            lock.acquire()
            self._reading = False
        if nbytes > 0:
            self.receive(view[:nbytes])
            if self._soon:
                self.run_soon()
            if transport.has_pending:
                lock.release()
                try:
                    transport.drain()
                finally:
                    lock.acquire()
        elif nbytes == 0:
            self.connection_lost(error)
        return nbytes >= 0

    def _read_done(self) -> None:
        """The application read (lock held): the background reader may take over
        once nobody has read for IDLE_READ."""
        self._last_read = time.monotonic()
        if self._waiting or self._background_due:
            self.lock.notify_all()  # another thread may read now
        if self._idle_timer is None and not self._background_due and not self._closed:
            self._idle_timer = timer.call_later(IDLE_READ, self._idle_check)

    def _idle_check(self) -> None:
        with self.lock:
            self._idle_timer = None
            if self._closed or self._background_due or self._reading:
                return  # a thread reading will call _read_done when it stops
            idle = time.monotonic() - self._last_read
            if idle >= IDLE_READ * 0.9:
                self._background_due = True
                self.lock.notify_all()
            else:
                self._idle_timer = timer.call_later(IDLE_READ - idle, self._idle_check)

    def _read_or_wait(self, deadline: Optional[float]) -> None:
        """Holding the lock, waiting for the peer: read the socket if nobody else
        does, else wait for the thread that does. TimeoutError past ``deadline``."""
        remaining = None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
        if not self._reading and not self._sock_transport.reading_paused:
            self._read_once(deadline)
            self._read_done()
            return
        self._waiting += 1
        try:
            self.lock.wait(remaining)
        finally:
            self._waiting -= 1

    def _read_in_background(self) -> None:
        transport = self._sock_transport
        lock = self.lock
        try:
            with lock:
                while True:
                    while not self._closed and (
                        self._reading
                        or not (
                            # Nobody read for a while, or the socket was shut
                            # down (the read sees its end).
                            (self._background_due and not transport.reading_paused)
                            or transport.is_closing()
                        )
                    ):
                        lock.wait()
                    if self._closed:
                        break
                    self._read_once()
                    if self._waiting:
                        # An application thread waits for the peer: it reads from now on.
                        self._background_due = False
                        lock.notify_all()
        finally:
            with contextlib.suppress(OSError):
                transport.sock.close()

    def _ended(self) -> bool:
        """Whether nothing more will come from the peer (holding the lock)."""
        return self.draining or (
            (self._closed or self.transport is None) and self.conn.state is not _CONNECTING
        )

    def recv(self, timeout: Optional[float] = None) -> Message:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Waits at most ``timeout`` seconds (None: without limit) and raises
        :class:`TimeoutError` then. Raises :class:`ConnectionClosedOK` (or
        :class:`ConnectionClosedError`) once the connection is closed and
        every message received before was read; :class:`ConcurrencyError` if
        another thread is already in ``recv``.
        """
        with self._mutex:
            if self._receiver is not None:
                raise ConcurrencyError(
                    "recv() is already running in another thread: read a connection "
                    "from one thread at a time"
                )
            if self._soon:
                self.run_soon()
            message = self.take_message()
            if message is None:
                deadline = None if timeout is None else time.monotonic() + timeout
                self._receiver = threading.get_ident()
                try:
                    while message is None:
                        if self._ended():
                            raise self.closed_error()
                        try:
                            self._read_or_wait(deadline)
                        except TimeoutError:
                            raise TimeoutError(f"no message within {timeout} s") from None
                        message = self.take_message()
                finally:
                    self._receiver = None
        if self._sock_transport.has_pending:
            self._drain()
        return message

    def __iter__(self) -> Iterator[Message]:
        """Every message until the connection closes normally (ConnectionClosedOK)."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # -------------------------------------------------------------- sending

    def send(self, message: Union[DataLike, Iterable[DataLike]]) -> None:
        """Send a message: ``str`` as text, any bytes-like object as binary.

        An iterable of ``str`` (or of bytes-like objects) is sent as one
        fragmented message, a frame per item; other threads' messages wait
        until it is complete. Returns once the frames are handed to the
        kernel (so the send buffer is the bound: no queue grows). Raises
        :class:`ConnectionClosed` once the connection is closing or closed.
        """
        if type(message) is str or type(message) is bytes or _is_buffer(message):
            with self._mutex:
                fragmenter = self._fragmenter
                if fragmenter is not None and fragmenter != threading.get_ident():
                    self._wait_fragments()  # another thread sends a fragmented message
                self.send_message(message)
                if self._soon:
                    self.run_soon()
            self._drain()
        elif isinstance(message, Iterable):
            self._send_fragments(iter(message))  # bytes-like went above
        else:
            raise TypeError(
                f"cannot send {type(message).__name__}: send str, a bytes-like object, "
                "or an iterable of them for a fragmented message"
            )

    def _drain(self) -> None:
        if not self._sock_transport.drain():
            with self._mutex:
                raise self.closed_error()

    def _wait_fragments(self) -> None:
        # Holding the lock: another thread sends a fragmented message.
        self.lock.release()
        try:
            with self._fragment_lock:
                pass
        finally:
            self.lock.acquire()

    def _send_fragments(self, fragments: Iterator[Any]) -> None:
        item = next(fragments, _END)
        if item is _END:
            return
        text = isinstance(item, str)
        with self._fragment_lock:
            self._fragmenter = threading.get_ident()
            try:
                while True:
                    following = next(fragments, _END)
                    if isinstance(item, str) is not text:
                        raise TypeError("all fragments of a message must be str, or all bytes-like")
                    with self.lock:
                        self.check_sendable()
                        self.send_fragment(item, following is _END, text)
                    self._drain()
                    if following is _END:
                        return
                    item = following
            finally:
                self._fragmenter = None

    def send_fragment(self, data: Any, final: bool, text: bool) -> None:
        """Queue one frame of a fragmented message (holding the lock) and flush."""
        conn = self.conn
        if conn.sending_fragmented:
            conn.send_continuation(data, fin=final)
        elif text:
            conn.send_text(data, fin=final)
        else:
            conn.send_binary(data, fin=final)
        self.flush()

    def ping(self, data: Optional[bytes] = None, timeout: Optional[float] = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds.

        Raises :class:`TimeoutError` after ``timeout`` seconds (None: no
        limit) and :class:`ConnectionClosed` if the connection closes first.
        """
        payload = os.urandom(4) if data is None else bytes(data)
        lock = self.lock
        with lock:
            self.check_sendable()
            if self._pings is None:
                self._pings = {}
            if payload in self._pings:
                raise ValueError("a ping with this payload is already waiting for its pong")
            entry = self._pings[payload] = [time.perf_counter(), None]
            self.conn.send_ping(payload)
            self.flush()
        self._drain()
        deadline = None if timeout is None else time.monotonic() + timeout
        with lock:
            try:
                while entry[1] is None:
                    if self._closed or self.transport is None:
                        raise self.closed_error()
                    try:
                        self._read_or_wait(deadline)
                    except TimeoutError:
                        raise TimeoutError(f"no pong within {timeout} s") from None
            finally:
                if self._pings is not None:
                    self._pings.pop(payload, None)
        rtt: float = entry[1]
        return rtt

    # -------------------------------------------------------------- closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: start the closing handshake and wait (``close_timeout`` at most)
        until the connection is closed; then the TCP connection is dropped."""
        self._app_closed = True
        with self.lock:
            if self._soon:
                self.run_soon()
            if self.conn.state is _CONNECTING:
                if self.transport is not None:
                    self.transport.abort()
            else:
                self.start_close(code, reason)
            # Nothing more will be read: drop what arrives until the close frame.
            self.discard_messages = True
            if self.reading_paused:
                self.resume_reading()
        self._sock_transport.drain()
        self.wait_closed(self.conn.options.close_timeout)
        if not self._closed:
            self.abort()
            self.wait_closed(self.conn.options.close_timeout)

    def abort(self) -> None:
        """Drop the TCP connection now (no closing handshake)."""
        self._sock_transport.abort()

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Wait until the connection is closed (its socket too); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while not self._closed:
                if self._reader is None:
                    break  # never opened: nothing to wait for
                try:
                    self._read_or_wait(deadline)
                except TimeoutError:
                    return False
        return True

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        side = "server" if self.conn.is_server else "client"
        return f"<WebSocket {side} {self.state.name} {self.remote_address}>"


def _is_buffer(obj: Any) -> bool:
    """Whether ``obj`` is bytes-like (bytearray, memoryview, array, numpy...)."""
    try:
        with memoryview(obj):
            return True
    except TypeError:
        return False


def _readable(sock: SocketLike, deadline: float) -> bool:
    """Wait until ``sock`` has something to read, or ``deadline``; whether it has.

    The socket stays in blocking mode (a timeout would apply to the threads
    sending on it too). A TLS socket may hold decrypted bytes already.
    """
    pending = getattr(sock, "pending", None)  # TLS: bytes decrypted already
    if pending is not None and pending():
        return True
    remaining = max(0.0, deadline - time.monotonic())
    fileno = sock.fileno()
    if fileno < 0:
        return True  # closed: the read says so
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fileno, select.POLLIN)
        return bool(poller.poll(remaining * 1000))
    return bool(select.select([fileno], [], [], remaining)[0])
