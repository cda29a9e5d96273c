"""The driver core: everything an I/O driver does with a connection, once.

This file is the pure-Python implementation and also the source of the
compiled one: the build compiles it with Cython, typed by ``_driver_c.pxd``,
as ``wsframe._driver_c``. Both behave identically; :mod:`wsframe.driver`
picks one as the codec is picked and documents the interface.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .codec import encode_frame_header
from .counters import LIMIT_CAUSES, Counters
from .errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidState,
    ProtocolError,
)
from .events import (
    BinaryFragment,
    BinaryMessage,
    Event,
    Ping,
    Pong,
    TextFragment,
    TextMessage,
)
from .framelog import FrameLogger, log_frame
from .state import State

if TYPE_CHECKING:
    from .connection import Connection
    from .driver import Heartbeat, Transport

__all__ = ["DriverCore", "default_counters"]

Message = Union[str, bytes]

_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSED = State.CLOSED

# Unmasked payloads at least this large are written without a copy:
# header and payload handed to the transport separately.
_ZERO_COPY_SIZE = 16 * 1024
_READ_BUFFER_SIZE = 256 * 1024
_thread_state = threading.local()
_INFO = logging.INFO
_DEBUG = logging.DEBUG
_server_logger = logging.getLogger("wsframe.server")
_client_logger = logging.getLogger("wsframe.client")
_connection_ids = itertools.count(1)
_default_counters = {"server": Counters("server"), "client": Counters("client")}


def default_counters(is_server: bool) -> Counters:
    """The process's counters of the connections given none of their own.

    Every client connection counts there, and server connections that no
    :class:`~wsframe.asyncio.Server` owns (the uvicorn driver's, a
    connection on a socket accepted elsewhere).
    """
    return _default_counters["server" if is_server else "client"]


def _read_buffer() -> memoryview:
    """This thread's read buffer, shared by all of the thread's connections.

    The transport reads into it and the driver parses it at once (the
    decoder copies what it keeps), so no connection holds it between reads:
    an idle connection owns no read buffer, and no ``bytes`` is allocated per
    read.
    """
    try:
        view: memoryview = _thread_state.read_buffer
    except AttributeError:
        view = _thread_state.read_buffer = memoryview(bytearray(_READ_BUFFER_SIZE))
    return view


def _corked() -> list[DriverCore]:
    """This thread's connections with frames corked until the end of the iteration."""
    try:
        corked: list[DriverCore] = _thread_state.corked
    except AttributeError:
        corked = _thread_state.corked = []
    return corked


def _uncork_all(corked: list[DriverCore]) -> None:
    pending = corked[:]
    del corked[:]
    for driver in pending:
        driver.uncork()


class DriverCore:
    """What every I/O driver of a connection shares, whatever its I/O model.

    A driver owns one sans-I/O :class:`~wsframe.connection.Connection` and a
    transport (anything with the methods of :class:`wsframe.driver.Transport`:
    an asyncio transport, or an adapter over a socket or a stream). The core
    is the receive pump (bytes in → connection → messages and events out),
    the inbox with its watermarks (reading pauses while the application is
    behind), the send path and write flow control, corking for broadcasts,
    heartbeat membership, deferred failure and the graceful end of a failed
    connection. It calls a :class:`Listener`-style ``listener`` directly when
    there is one (the callback style), else keeps messages in the inbox.

    A concrete driver subclasses it and provides the I/O model's parts:
    :meth:`call_soon` and :meth:`call_later`, how readers and writers wait
    (futures in :attr:`reader_waiter`/:attr:`writer_waiter`, which the core
    resolves, or overrides of :meth:`wake_reader`/:meth:`wake_writer`), and
    :meth:`handle_event` for the events it reacts to (the request, the
    handshake's outcome, pongs, close frames). ``docs/drivers.md`` shows how
    the asyncio, uvicorn and threaded drivers do it.
    """

    __slots__ = (
        "_abort_timer",
        "_cause",
        "_cork",
        "_draining",
        "_fail_timer",
        "_id",
        "_inbox",
        "_listener_message",
        "_ping_deadline",
        "_ping_payload",
        "_ping_sent_at",
        "_read_view",
        "_resume_at",
        "_started_at",
        "conn",
        "counters",
        "discard_messages",
        "heartbeat",
        "listener",
        "max_queue",
        "opened",
        "reader_waiter",
        "reading_paused",
        "remote_address",
        "transport",
        "writer_waiter",
        "writing_paused",
    )

    def __init__(
        self, conn: Connection, listener: Any = None, counters: Optional[Counters] = None
    ) -> None:
        #: The sans-I/O connection this driver runs.
        self.conn = conn
        #: Where this connection counts what it does: its server's, or the
        #: process's (:func:`default_counters`). See :mod:`wsframe.stats`.
        self.counters = counters if counters is not None else default_counters(conn.is_server)
        conn.counters = self.counters
        #: The peer's address (the transport's ``peername``), once connected.
        self.remote_address: Any = None
        self._started_at = 0.0
        self._cause: Optional[str] = None
        self._id = 0
        #: The transport, from ``connection_made`` until ``connection_lost``.
        self.transport: Optional[Transport] = None
        #: The callback-style listener (``on_message(driver, message)``...), if any.
        self.listener = listener
        #: The heartbeat this connection belongs to once open, if any.
        self.heartbeat: Optional[Heartbeat] = None
        #: Messages buffered before reading pauses (the inbox's high-water mark).
        self.max_queue = conn.options.max_queue
        self._resume_at = self.max_queue // 2
        #: Whether reading is paused because the application is behind.
        self.reading_paused = False
        #: Whether the transport's write buffer is over its high-water mark.
        self.writing_paused = False
        #: What a reader waiting for a message waits on: an object with
        #: ``done()`` and ``set_result(None)`` (an asyncio or concurrent.futures
        #: future) that :meth:`wake_reader` resolves, or None.
        self.reader_waiter: Any = None
        #: The same for a writer waiting for the write buffer to drain.
        self.writer_waiter: Any = None
        #: Whether the opening handshake completed (``on_open`` was called).
        self.opened = False
        #: Drop messages instead of queueing them: the application said it
        #: will read no more (it closed), but the peer's close frame must
        #: still be read.
        self.discard_messages = False
        self._inbox: Optional[collections.deque[Message]] = None
        self._cork: Optional[list[bytes]] = None
        self._draining = False
        # Drop the transport, fail a deferred violation after close_timeout;
        # cancelled once the transport is lost (they hold self).
        self._abort_timer: Any = None
        self._fail_timer: Any = None
        self._read_view: Optional[memoryview] = None
        self._ping_payload: Optional[bytes] = None
        self._ping_sent_at = 0.0
        self._ping_deadline = 0.0
        self._listener_message: Optional[Callable[[Any, Message], None]] = None
        if listener is not None:
            self._listener_message = listener.on_message
        # Whole messages come straight from the frame loop, without events.
        conn.on_message = self.deliver
        # A violation after valid messages waits until the application had a
        # chance to answer them (see schedule_failure).
        conn.defer_failure = True

    # ------------------------------------------------- what a driver provides

    def call_soon(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` soon, after the current callback (driver-specific)."""
        raise NotImplementedError

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        """Run ``callback()`` after ``delay`` seconds; return a handle with
        ``cancel()`` (driver-specific)."""
        raise NotImplementedError

    def wake_reader(self) -> None:
        """A message (or the end of the connection) is ready for a waiting reader.

        Resolves :attr:`reader_waiter` if there is one; a driver that waits
        otherwise (a condition variable) overrides it.
        """
        waiter = self.reader_waiter
        if waiter is not None:
            self.reader_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def wake_writer(self) -> None:
        """Writers waiting for the write buffer to drain may go on (or the end came).

        Resolves :attr:`writer_waiter` if there is one, as :meth:`wake_reader`.
        """
        waiter = self.writer_waiter
        if waiter is not None:
            self.writer_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def handle_event(self, event: Event) -> None:
        """An event other than a message: a request, the handshake's outcome,
        a ping, a pong or the peer's close frame. The core has already done
        its part (heartbeat, listener); drivers react to the ones they need."""

    # ------------------------------------------------------------- properties

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED (0-3, as the browser's readyState)."""
        if self.transport is None and self.conn.state is not _CONNECTING:
            return State.CLOSED
        return State(self.conn.state)

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not yet sent to the network (like the browser's)."""
        transport = self.transport
        if transport is None:
            return 0
        corked = sum(map(len, self._cork)) if self._cork is not None else 0
        return transport.get_write_buffer_size() + corked

    @property
    def draining(self) -> bool:
        """Whether the connection failed and only waits for the peer to close.

        The application has nothing more to receive: what the peer still
        sends is read and dropped.
        """
        return self._draining

    @property
    def connection_id(self) -> int:
        """A number that tells this connection apart in logs (unique in the process)."""
        if self._id == 0:
            self._id = next(_connection_ids)
        return self._id

    @property
    def queued(self) -> int:
        """Messages in the inbox, received and not yet read by the application."""
        return len(self._inbox) if self._inbox is not None else 0

    # ------------------------------------------------- protocol: receiving

    def connection_made(self, transport: Any) -> None:
        """The transport is up: keep it and set its write buffer's high-water mark."""
        self.transport = transport
        self._started_at = time.monotonic()
        if self.remote_address is None:
            self.remote_address = transport.get_extra_info("peername")
        logger = _logger(self.conn.is_server)
        if logger.isEnabledFor(_DEBUG):
            # Frames logged for this connection's life (see wsframe.framelog).
            self.conn.frame_logger = FrameLogger(logger, {"connection": self.connection_id})
        transport.set_write_buffer_limits(self.conn.options.write_limit)
        self.flush()  # a client's request

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the transport should read to: this thread's shared read buffer.

        The connection keeps a reference to it (a pointer, not a buffer of
        its own), so that a read does not look the thread's buffer up again.
        """
        view = self._read_view
        if view is None:
            view = self._read_view = _read_buffer()
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were read into the buffer :meth:`get_buffer` returned."""
        size = nbytes  # a C integer when compiled: counted without an int object
        self.counters.bytes_received += size
        if self.conn.receive_data(self._read_view, nbytes):
            self.process()

    def data_received(self, data: Any) -> None:
        """Bytes arrived (transports that do not read into a buffer)."""
        self.counters.bytes_received += len(data)
        if self.conn.receive_data(data):
            self.process()

    def receive(self, data: Any) -> None:
        """The receive pump: feed ``data`` to the connection and act on the outcome."""
        self.counters.bytes_received += len(data)
        if self.conn.receive_data(data):
            self.process()

    def process(self) -> None:
        """Act on what the connection holds: events, bytes to send, closing, failure."""
        conn = self.conn
        events = conn.events()
        if events:
            self.dispatch(events)
        self.flush()
        if conn.close_transport:
            if self.transport is not None:
                self.end_transport()
        elif conn.failure_pending:
            self.schedule_failure()

    def dispatch(self, events: list[Event]) -> None:
        """Deliver messages and hand other events to the heartbeat, listener and driver."""
        listener = self.listener
        for event in events:
            kind = type(event)
            if (
                kind is TextMessage
                or kind is BinaryMessage
                or kind is TextFragment
                or kind is BinaryFragment
            ):
                self.deliver(event.data)  # type: ignore[attr-defined]
                continue
            if kind is Pong:
                if event.payload == self._ping_payload:  # type: ignore[attr-defined]
                    self._ping_payload = None  # the heartbeat's ping was answered
                    self.counters.observe_rtt(time.monotonic() - self._ping_sent_at)
                if listener is not None:
                    self.listener_call(listener.on_pong, event.payload)  # type: ignore[attr-defined]
            elif kind is Ping and listener is not None:
                self.listener_call(listener.on_ping, event.payload)  # type: ignore[attr-defined]
            self.handle_event(event)

    def deliver(self, message: Message) -> None:
        """A message: to the listener's ``on_message``, or into the inbox."""
        on_message = self._listener_message
        if on_message is not None:
            try:
                on_message(self, message)
            except Exception as exc:
                self.listener_failed(exc)
            return
        if self.discard_messages:
            return
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = collections.deque()
        inbox.append(message)
        self.wake_reader()
        if len(inbox) >= self.max_queue and not self.reading_paused:
            # The application is behind: stop delivering (the rest of this
            # read stays in the connection, undecoded) and stop reading.
            self.reading_paused = True
            self.counters.reading_pauses += 1
            self.conn.pause()
            if self.transport is not None:
                self.transport.pause_reading()

    def take_message(self) -> Optional[Message]:
        """The next message of the inbox, or None when it is empty.

        Reading resumes once the inbox is down to half of ``max_queue``; a
        violation held back behind the messages fails the connection once
        the last of them is taken.
        """
        inbox = self._inbox
        if not inbox:
            return None
        message = inbox.popleft()
        if self.reading_paused and len(inbox) <= self._resume_at:
            self.resume_reading()
        elif not inbox and self.conn.failure_pending:
            # The last message before a violation: the application answers
            # it, then the connection fails.
            self.call_soon(self.fail_pending)
        return message

    def resume_reading(self) -> None:
        """The application caught up: deliver what waited, read again."""
        self.reading_paused = False
        self.conn.resume()
        self.process()
        transport = self.transport
        if transport is not None and not self.reading_paused:
            transport.resume_reading()

    # ---------------------------------------------------- deferred failure

    def schedule_failure(self) -> None:
        """A violation came after valid messages: fail once the application has
        taken them from the inbox, or after ``close_timeout``."""
        if not self._inbox:
            self.call_soon(self.fail_pending)
        elif self._fail_timer is None:
            self._fail_timer = self.call_later(self.conn.options.close_timeout, self.fail_pending)

    def fail_pending(self) -> None:
        """Fail the connection for the violation held back, if still pending."""
        conn = self.conn
        if not conn.failure_pending:
            return
        conn.fail_pending()
        self.flush()
        if conn.close_transport:
            self.end_transport()

    # ------------------------------------------------------------- listener

    def listener_call(self, method: Callable[..., Any], *args: Any) -> None:
        """Call a listener method with this driver first; a failure ends with 1011."""
        try:
            method(self, *args)
        except Exception as exc:
            self.listener_failed(exc)

    def listener_failed(self, exc: Exception) -> None:
        """A listener method raised ``exc``: tell its ``on_error``, close with 1011."""
        try:
            self.listener.on_error(self, exc)
        finally:
            self.fail(1011, "internal error", cause="handler_error")

    def open_completed(self) -> None:
        """The opening handshake completed: join the heartbeat, call ``on_open``."""
        self.opened = True
        counters = self.counters
        counters.connections_open += 1
        counters.connections_accepted += 1
        counters.observe_handshake(time.monotonic() - self._started_at)
        logger = _logger(self.conn.is_server)
        if logger.isEnabledFor(_INFO):
            logger.info(
                "connection %d open: %s",
                self.connection_id,
                _address(self.remote_address),
            )
        if self.heartbeat is not None:
            self.heartbeat.add(self)
        if self.listener is not None:
            self.listener_call(self.listener.on_open)

    # -------------------------------------------------------------- sending

    def check_sendable(self) -> None:
        """Raise unless a message can be sent now: InvalidState while the opening
        handshake runs, ConnectionClosed once closing or closed."""
        state = self.conn.state
        if state is not _OPEN or self.transport is None:
            if state is _CONNECTING:
                raise InvalidState("the opening handshake is not complete")
            raise self.closed_error()

    def send_message(self, message: Any) -> None:
        """Send a whole message now: ``str`` as text, any bytes-like object as binary.

        Never waits: the frame goes to the transport's buffer at once (check
        :attr:`buffered_amount`, or wait for :meth:`wake_writer`, to bound it).
        """
        conn = self.conn
        transport = self.transport
        if transport is None or conn.state is not _OPEN:
            self.check_sendable()
        assert transport is not None
        if (
            type(message) is bytes  # immutable: safe to leave in the transport's buffer
            and len(message) >= _ZERO_COPY_SIZE
            and conn.is_server
            and conn.deflate is None
            and not conn.sending_fragmented
        ):
            self.flush()
            header = encode_frame_header(2, len(message))
            transport.writelines([header, message])
            if conn.frame_logger is not None:
                log_frame(conn.frame_logger, ">", 2, True, False, message)
            counters = self.counters
            counters.messages_sent_binary += 1
            counters.message_bytes_sent += len(message)
            counters.frames_sent += 1
            counters.bytes_sent += len(header) + len(message)
            return
        frame = conn.encode_message(message)
        if self._cork is not None:
            self.uncork()
        pending = conn.data_to_send()  # a pong queued by this read goes first
        if pending:
            self.counters.bytes_sent += len(pending)
            transport.write(pending)
        self.counters.bytes_sent += len(frame)
        transport.write(frame)

    def flush(self) -> None:
        """Write what is corked and what the connection has to send, in order."""
        if self._cork is not None:
            self.uncork()
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.counters.bytes_sent += len(data)
            self.transport.write(data)

    def write_corked(self, data: bytes) -> None:
        """Write ``data`` at the end of this loop iteration, with whatever else is
        corked for this connection by then: one write for a burst of broadcast
        frames instead of one each. A direct write uncorks first, so frames
        keep their order."""
        cork = self._cork
        if cork is None:
            self._cork = [data]
            corked = _corked()
            if not corked:
                self.call_soon(lambda: _uncork_all(corked))
            corked.append(self)
        else:
            cork.append(data)

    def uncork(self) -> None:
        """Write the corked frames now."""
        cork = self._cork
        self._cork = None
        if cork and self.transport is not None:
            data = cork[0] if len(cork) == 1 else b"".join(cork)
            self.counters.bytes_sent += len(data)
            self.transport.write(data)

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: the peer is behind.

        Until it drains, the pongs the peer's pings call for are held back
        (only the latest is kept), so a peer that pings without reading
        cannot grow the buffer.
        """
        self.writing_paused = True
        self.counters.writing_pauses += 1
        self.conn.hold_pongs = True

    def resume_writing(self) -> None:
        """The transport's buffer drained: send the held pong, wake writers."""
        self.writing_paused = False
        conn = self.conn
        conn.hold_pongs = False
        conn.release_pong()
        self.flush()
        self.wake_writer()

    # ------------------------------------------------------------ heartbeat

    def keepalive_start(self, now: float) -> None:
        """Joined a heartbeat at ``now``: the first ping is due one interval later."""
        self._ping_sent_at = now
        self._ping_payload = None

    def keepalive(self, now: float, interval: float, timeout: float) -> bool:
        """A heartbeat's tick: ping when one is due, fail when its pong is late.

        Returns False once the heartbeat should forget this connection.
        """
        if self.reading_paused:
            # The application is behind and reading is paused: a pong could
            # not be read, so the peer is not to blame.
            if self._ping_payload is not None:
                self._ping_deadline = now + timeout
            return True
        if self._ping_payload is not None:
            if now >= self._ping_deadline:
                self.fail(1011, "keepalive ping timeout", cause="heartbeat_timeout")
                return False
        elif now - self._ping_sent_at >= interval:
            if self.conn.state is not _OPEN or self.transport is None:
                return self.transport is not None
            payload = os.urandom(4)
            self._ping_payload = payload
            self._ping_sent_at = now
            self._ping_deadline = now + timeout
            self.conn.send_ping(payload)
            self.flush()
        return True

    # -------------------------------------------------------------- closing

    def closed_error(self) -> ConnectionClosed:
        """The :class:`~wsframe.errors.ConnectionClosed` that describes how it closed."""
        conn = self.conn
        code = conn.close_code or 1006
        clean = conn.was_clean
        cls = ConnectionClosedOK if clean and code in (1000, 1001) else ConnectionClosedError
        return cls(code, conn.close_reason, clean, conn.close_sent, conn.close_received)

    def start_close(self, code: Optional[int], reason: str) -> None:
        """Start the closing handshake (nothing if it started or the transport is gone)."""
        if self.conn.state is _OPEN and self.transport is not None:
            self.conn.close(code, reason)
            self.flush()

    def fail(self, code: int, reason: str = "", cause: Optional[str] = None) -> None:
        """Fail the connection: send a close frame with ``code``, then end gracefully.

        As after a protocol violation: our FIN follows the close frame, what
        the peer still sends is read and ignored until it closes (no message
        reaches the application any more, listener included), and the
        connection is dropped after ``close_timeout`` if it never does.
        ``cause`` says why, for the logs and the counters (see
        :attr:`close_cause`): e.g. ``"slow_consumer"``; a limit's name is
        also counted as a limit violation.
        """
        if cause is not None:
            self.set_close_cause(cause)
        self.start_close(code, reason)
        self.end_transport(graceful=True)

    def end_transport(self, graceful: bool = False) -> None:
        """The connection is over: close the transport, gracefully after a failure.

        After failing the connection the peer may still be sending: closing a
        socket with unread data makes the kernel send a reset, and the peer
        may then lose our last frames (the close frame saying why). So send
        our FIN instead, keep reading (and ignoring) until the peer closes,
        and drop the connection after ``close_timeout``.
        """
        transport = self.transport
        if transport is None:
            return
        error = self.conn.error
        if not graceful and (error is None or isinstance(error, InvalidHandshake)):
            self.flush()
            transport.close()
            return
        if self._draining:
            return
        self._draining = True
        # Failed: nothing more reaches the application, in the callback
        # style either (RFC 6455 §7.1.7), not even later in this very read.
        self.discard_messages = True
        self._listener_message = None
        self.wake_reader()
        self.flush()
        if transport.can_write_eof():
            transport.write_eof()
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        if self._abort_timer is None:
            self._abort_timer = self.call_later(self.conn.options.close_timeout, self.abort)

    def abort(self) -> None:
        """Drop the transport at once (no closing handshake), if it is still there."""
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        """The transport is gone: what arrived is delivered, the connection closes."""
        conn = self.conn
        if conn.paused:
            # What arrived while the application was behind is not lost: it
            # is queued for the reader (at most one read beyond max_queue).
            conn.resume()
        conn.receive_eof()
        events = conn.events()
        if events:
            self.dispatch(events)
        self.transport = None
        conn.on_message = None  # no cycle between the connection and its driver
        for timer in (self._abort_timer, self._fail_timer):
            if timer is not None:
                timer.cancel()  # it holds self: let go at once
        self._abort_timer = self._fail_timer = None
        heartbeat = self.heartbeat
        if heartbeat is not None:
            heartbeat.discard(self)
        self.count_end()
        self.wake_reader()
        self.wake_writer()

    # ------------------------------------------------------- observability

    @property
    def close_cause(self) -> str:
        """Why the connection closed (or is closing), in one word.

        ``"peer"`` (the peer started the closing handshake), ``"local"``
        (this side did: the application, or a server shutting down),
        ``"protocol_error"`` (the peer broke RFC 6455/7692),
        ``"message_too_big"`` and ``"ping_flood"`` (the peer went over
        ``max_message_size`` or ``max_ping_rate``), ``"heartbeat_timeout"``,
        ``"slow_consumer"`` (a broadcast's recipient too slow to keep up),
        ``"handler_error"`` (a listener method raised), or ``"abnormal"``
        (the transport was lost without a closing handshake). A driver may
        give others to :meth:`fail`.
        """
        if self._cause is not None:
            return self._cause
        conn = self.conn
        error = conn.error
        if isinstance(error, ProtocolError):
            code = error.close_code
            if code == 1009:
                return "message_too_big"
            if code == 1008:
                return "ping_flood"  # the only violation failed with 1008
            return "protocol_error"
        if conn.close_sent is None and conn.close_received is None:
            return "abnormal"
        return "peer" if conn.closed_by == "remote" else "local"

    def set_close_cause(self, cause: str) -> None:
        """Say why this connection is about to close (see :attr:`close_cause`).

        For a driver or an application closing for a reason of its own
        (e.g. ``"handler_error"`` before closing with 1011). Only the first
        cause given while the connection is open counts; a limit's name is
        counted as a limit violation too (when the connection ends).
        """
        if self._cause is None and self.conn.state is _OPEN:
            self._cause = cause

    def count_end(self) -> None:
        """The transport is gone: count how the connection ended and log it."""
        conn = self.conn
        counters = self.counters
        if not self.opened:
            response = getattr(conn, "response", None)
            if response is not None:
                counters.count_response(response.status)
            elif conn.error is None:
                counters.handshakes_abandoned += 1
            return
        cause = self.close_cause
        if cause in LIMIT_CAUSES:
            counters.count_violation(cause)
        clean = conn.was_clean
        counters.count_close(cause, clean, conn.close_sent, conn.close_received)
        logger = _logger(conn.is_server)
        if logger.isEnabledFor(_INFO):
            error = conn.error
            sent, received = conn.close_sent, conn.close_received
            closed_by: str
            if conn.closed_by is not None:
                closed_by = conn.closed_by
            else:
                closed_by = "local" if sent is not None else "remote" if received else "nobody"
            logger.info(
                "connection %d closed: %s, %.3f s, sent %s, received %s%s, by %s, %s%s",
                self.connection_id,
                _address(self.remote_address),
                time.monotonic() - self._started_at,
                _code(sent),
                _code(received),
                "" if clean else " (not clean)",
                closed_by,
                cause,
                f": {error}" if error is not None else "",
            )

    def eof_received(self) -> Optional[bool]:
        """The peer shut its side down: let the transport close."""
        return None

    def __repr__(self) -> str:
        side = "server" if self.conn.is_server else "client"
        return f"<{type(self).__name__} {side} {self.state.name}>"


def _logger(is_server: bool) -> logging.Logger:
    """``wsframe.server`` or ``wsframe.client``: where a connection logs."""
    return _server_logger if is_server else _client_logger


def _code(frame: Optional[tuple[Optional[int], str]]) -> str:
    """A close frame's code for the logs: ``-`` without a frame, ``none`` without a code."""
    if frame is None:
        return "-"
    return "none" if frame[0] is None else str(frame[0])


def _address(address: Any) -> str:
    """``host:port`` of a peername (IPv6 in brackets), or ``-``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address) if address else "-"
