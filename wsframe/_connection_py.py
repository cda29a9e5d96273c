"""The frame layer of the sans-I/O connection: what both sides share once open.

This file is the pure-Python implementation and also the source of the
compiled one: the build compiles it with Cython, typed by
``_connection_c.pxd``, as ``wsframe._connection_c``. Both behave
identically; :mod:`wsframe.connection` picks one as the codec is picked and
documents the public boundary (:class:`Connection`'s public members are all
a driver may use).
"""

from __future__ import annotations

import collections
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

from .assembler import MessageAssembler, invalid_utf8
from .closing import close_payload, failure_reason, parse_close
from .codec import FrameDecoder, encode_frame
from .counters import payload_size
from .errors import InvalidState, ProtocolError, drop_traceback
from .events import BinaryMessage, CloseReceived, Event, Ping, Pong, TextMessage
from .framelog import log_frame
from .ratelimit import TokenBucket
from .state import State

if TYPE_CHECKING:
    from .counters import Counters
    from .deflate import PerMessageDeflate
    from .options import Options

__all__ = ["Connection"]

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

Message = Union[str, bytes]
BroadcastCache = dict[Any, bytes]


class _MaskKeys:
    """Masking keys cut from a pooled ``os.urandom`` buffer, not a syscall each.

    One pool per process, shared by every client connection of every thread,
    so it is locked: without the GIL two threads could otherwise be handed
    the same key, or (compiled) read the pool while another replaces it.
    Only clients mask, so a server's path never takes the lock.
    """

    __slots__ = ("_lock", "_pool", "_pos")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._pos = 0

    def next(self) -> bytes:
        with self._lock:
            pos = self._pos
            if pos >= len(self._pool):
                self._pool = os.urandom(4096)
                pos = 0
            self._pos = pos + 4
            return self._pool[pos : pos + 4]

    def reset(self) -> None:
        # After a fork (one thread left): a new lock, as another thread of
        # the parent may have held the old one.
        self._lock = threading.Lock()
        self._pool = b""
        self._pos = 0


_mask_keys = _MaskKeys()
if hasattr(os, "register_at_fork"):
    # A forked child must not reuse its parent's keys.
    os.register_at_fork(after_in_child=_mask_keys.reset)


class Connection:
    """What server and client connections share: framing, messages, closing.

    Not instantiated directly: use :class:`~wsframe.connection.ServerConnection`
    or :class:`~wsframe.connection.ClientConnection`. The public members
    below are the whole boundary between a connection and the driver that
    does its I/O (``docs/protocol.md`` lists them).
    """

    __slots__ = (
        "_assembler",
        "_clock",
        "_decoder",
        "_deferred_error",
        "_events",
        "_held_pong",
        "_out",
        "_paused",
        "_pings",
        "_stashed",
        "_stashed_error",
        "_tx_compressed",
        "_tx_opcode",
        "auto_pong",
        "close_received",
        "close_sent",
        "close_transport",
        "closed_by",
        "counters",
        "defer_failure",
        "deflate",
        "frame_logger",
        "error",
        "fragments",
        "hold_pongs",
        "is_server",
        "max_message_size",
        "max_ping_burst",
        "max_ping_rate",
        "on_message",
        "options",
        "state",
        "subprotocol",
    )

    def __init__(self, is_server: bool, options: Options, clock: Callable[[], float]) -> None:
        #: True on the server side (frames we receive are masked).
        self.is_server = is_server
        #: The connection's settings.
        self.options = options
        #: The largest message accepted (reassembled and inflated), or None.
        self.max_message_size = options.max_message_size
        #: Whether a received ping is answered with a pong automatically.
        self.auto_pong = options.auto_pong
        #: Whether messages are delivered fragment by fragment.
        self.fragments = options.fragments
        #: Pings per second the peer may send on average (None: no limit),
        #: and how many at once; a peer over them is failed with 1008.
        self.max_ping_rate = options.max_ping_rate
        self.max_ping_burst = options.max_ping_burst
        # The peer's pings are counted in a token bucket made at its first
        # ping (an idle connection holds none).
        self._clock = clock
        self._pings: Optional[TokenBucket] = None
        #: Optional callback for complete messages (``str`` or ``bytes``),
        #: called instead of queueing TextMessage/BinaryMessage events (not
        #: fragments): the fast path of drivers that dispatch at once.
        #: Dropped once the connection is CLOSED by the peer's close frame or
        #: by :meth:`receive_eof`.
        self.on_message: Optional[Callable[[Message], None]] = None
        #: Hold back a violation found after valid messages of the same read
        #: until :meth:`fail_pending`, so the application can still answer
        #: them (drivers that deliver asynchronously set it).
        self.defer_failure = False
        #: Where messages, frames, pings and pongs are counted (the driver's
        #: :class:`~wsframe.stats.Counters`), or None: not counted.
        self.counters: Optional[Counters] = None
        #: Where every frame received and sent is logged at DEBUG (a logger or
        #: adapter, see :mod:`wsframe.framelog`), or None: not logged.
        self.frame_logger: Any = None
        #: While true, automatic pongs are not queued: only the most recent
        #: ping's is kept, for :meth:`release_pong` (RFC 6455 §5.5.3). A driver
        #: sets it while the peer does not read what is sent to it, so that a
        #: peer pinging without reading cannot grow the send buffer.
        self.hold_pongs = False
        self._held_pong: Optional[bytes] = None
        self._deferred_error: Optional[ProtocolError] = None
        #: The connection's state, as the browser's ``readyState``.
        self.state = _CONNECTING
        #: The negotiated subprotocol, if any.
        self.subprotocol: Optional[str] = None
        #: The negotiated permessage-deflate engine, if any.
        self.deflate: Optional[PerMessageDeflate] = None
        #: ``(code, reason)`` of the close frame we sent (code None: no code).
        self.close_sent: Optional[tuple[Optional[int], str]] = None
        #: ``(code, reason)`` of the close frame the peer sent.
        self.close_received: Optional[tuple[Optional[int], str]] = None
        #: ``"local"`` or ``"remote"``: who started the closing handshake.
        self.closed_by: Optional[Literal["local", "remote"]] = None
        #: The error that failed the connection (a protocol violation by the
        #: peer, or a failed handshake), if any.
        self.error: Optional[Exception] = None
        #: True once the driver should close the transport (after writing
        #: :meth:`data_to_send`). A client should also close it by itself if
        #: the server has not done so a short while after the closing handshake.
        self.close_transport = False
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._decoder: Any = None
        # Made for the first message that needs it (fragmented, compressed,
        # or a text frame validated while it arrives); whole uncompressed
        # messages never do.
        self._assembler: Optional[MessageAssembler] = None
        # Delivery paused by the application, and what arrived meanwhile.
        self._paused = False
        self._stashed: Optional[collections.deque[Any]] = None
        self._stashed_error: Optional[ProtocolError] = None
        # The fragmented message being sent: opcode (0: none), compressed.
        self._tx_opcode = 0
        self._tx_compressed = False

    # ----------------------------------------------------------------- output

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer, in order."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def events(self) -> list[Event]:
        """Return (and forget) the events that occurred, in order."""
        events = self._events
        self._events = []
        return events

    @property
    def close_code(self) -> Optional[int]:
        """The close code of the connection, as a browser's ``CloseEvent.code``.

        The code the peer sent (1005 if its close frame had none), 1006 if the
        connection ended without a close frame from the peer, None while open.
        """
        if self.close_received is not None:
            code = self.close_received[0]
            return 1005 if code is None else code
        if self.state is _CLOSED or self.error is not None:
            return 1006
        return None

    @property
    def close_reason(self) -> str:
        """The reason the peer gave in its close frame ("" if none)."""
        return self.close_received[1] if self.close_received is not None else ""

    @property
    def was_clean(self) -> bool:
        """Whether the closing handshake completed: close frames both ways."""
        return self.close_sent is not None and self.close_received is not None

    # ----------------------------------------------------------------- sending

    def _mask(self) -> Optional[bytes]:
        return None if self.is_server else _mask_keys.next()

    def _check_open(self) -> None:
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send: the connection is {State(self.state).name}")

    def _check_no_fragments(self) -> None:
        if self._tx_opcode:
            raise InvalidState(
                "a fragmented message is being sent: finish it with send_continuation()"
            )

    @property
    def sending_fragmented(self) -> bool:
        """Whether a fragmented message is being sent (no other message may start)."""
        return self._tx_opcode != 0

    def send_text(self, data: Union[str, bytes], fin: bool = True) -> None:
        """Send a text message, or its first fragment if ``fin`` is false.

        ``data`` is a ``str``, or bytes already encoded as UTF-8 (not checked).
        Continue a fragmented message with :meth:`send_continuation`.
        """
        self._send_message(_OP_TEXT, data, fin)

    def send_binary(self, data: Any, fin: bool = True) -> None:
        """Send a binary message (any bytes-like object), or its first fragment."""
        self._send_message(_OP_BINARY, data, fin)

    def _send_message(self, opcode: int, data: Any, fin: bool) -> None:
        self._check_open()
        self._check_no_fragments()
        counters = self.counters
        if counters is not None:
            _count_sent(counters, opcode, data, fin)
        if fin:
            self._out.append(self._encode(opcode, data))
            return
        deflate = self.deflate
        self._sent_frame(opcode, False, deflate is not None, data)
        if deflate is None:
            frame = encode_frame(opcode, data, fin=False, mask=self._mask())
        else:
            if isinstance(data, str):
                data = data.encode()
            payload = deflate.compress_fragment(data, False)
            frame = encode_frame(opcode, payload, fin=False, rsv1=True, mask=self._mask())
            self._tx_compressed = True
        self._tx_opcode = opcode
        self._out.append(frame)

    def _encode(self, opcode: int, data: Any) -> bytes:
        """The frame of one whole message (compressed if deflate was agreed)."""
        deflate = self.deflate
        self._sent_frame(opcode, True, deflate is not None, data)
        if deflate is None:
            return encode_frame(opcode, data, mask=self._mask())
        if isinstance(data, str):
            data = data.encode()
        return encode_frame(opcode, deflate.compress(data), rsv1=True, mask=self._mask())

    def encode_message(self, data: Any) -> bytes:
        """Return the frame of a whole message for the caller to write now.

        The same as :meth:`send_text` (for ``str``) or :meth:`send_binary` (any
        bytes-like object) without queueing: the driver writes the result
        itself, after anything :meth:`data_to_send` still holds.
        """
        if self.state is not _OPEN:
            self._check_open()
        if self._tx_opcode:
            self._check_no_fragments()
        counters = self.counters
        if counters is not None:
            if type(data) is bytes:  # message_sent() inlined: the echo's path
                counters.messages_sent_binary += 1
                counters.message_bytes_sent += len(data)
            else:
                counters.message_sent(data)
        return self._encode(_OP_TEXT if type(data) is str else _OP_BINARY, data)

    def frame_for_broadcast(self, message: Any, shared: BroadcastCache) -> bytes:
        """The frame that sends ``message`` on this connection, shared where possible.

        For broadcasting one message to many connections: ``shared`` is a
        dict that lives as long as the broadcast (start with ``{}``). A frame
        that other connections can send unchanged (server side, uncompressed,
        or compressed without context takeover under the same settings) is
        encoded once and taken from ``shared`` afterwards; a masked frame
        (client side) or one compressed with this connection's own history is
        encoded for it alone. Raises :class:`~wsframe.errors.InvalidState` as
        :meth:`encode_message` does.
        """
        if self.state is not _OPEN:
            self._check_open()
        self._check_no_fragments()
        if not self.is_server:
            return self.encode_message(message)
        deflate = self.deflate
        key: Any
        if deflate is None:
            key = None
        elif deflate.local_no_context_takeover:
            key = (deflate.local_max_window_bits, deflate.compress_level, deflate.memory_level)
        else:
            return self.encode_message(message)  # this connection's compression history
        frame = shared.get(key)
        if frame is None:
            frame = shared[key] = self.encode_message(message)
        else:
            if self.counters is not None:
                self.counters.message_sent(message)
            opcode = _OP_TEXT if type(message) is str else _OP_BINARY
            self._sent_frame(opcode, True, key is not None, message)
        return frame

    def send_continuation(self, data: Any, fin: bool) -> None:
        """Send the next fragment of the message started with ``fin=False``."""
        self._check_open()
        if not self._tx_opcode:
            raise InvalidState("no fragmented message is being sent")
        if isinstance(data, str):
            if self._tx_opcode != _OP_TEXT:
                raise TypeError("a binary message cannot continue with str data")
            data = data.encode()
        counters = self.counters
        if counters is not None:
            _count_sent(counters, self._tx_opcode, data, fin)
        self._sent_frame(_OP_CONT, fin, False, data)
        if self._tx_compressed and self.deflate is not None:
            data = self.deflate.compress_fragment(data, fin)
        self._out.append(encode_frame(_OP_CONT, data, fin=fin, mask=self._mask()))
        if fin:
            self._tx_opcode = 0
            self._tx_compressed = False

    def send_ping(self, payload: Any = b"") -> None:
        """Send a ping (at most 125 bytes of payload)."""
        self._check_open()
        self._out.append(encode_frame(_OP_PING, payload, mask=self._mask()))
        self._sent_frame(_OP_PING, True, False, payload)
        if self.counters is not None:
            self.counters.pings_sent += 1

    def send_pong(self, payload: Any = b"") -> None:
        """Send an unsolicited pong or answer a ping (with ``auto_pong=False``)."""
        self._check_open()
        self._queue_pong(payload)

    def release_pong(self) -> None:
        """Queue the pong held back while :attr:`hold_pongs` was set, if any."""
        payload = self._held_pong
        self._held_pong = None
        if payload is not None and self._answers_pings():
            self._queue_pong(payload)

    def _queue_pong(self, payload: Any) -> None:
        self._out.append(encode_frame(_OP_PONG, payload, mask=self._mask()))
        self._sent_frame(_OP_PONG, True, False, payload)
        if self.counters is not None:
            self.counters.pongs_sent += 1

    def _sent_frame(self, opcode: int, fin: bool, rsv1: bool, payload: Any) -> None:
        """A frame goes out: count it, and log it when frames are logged."""
        if self.counters is not None:
            self.counters.frames_sent += 1
        if self.frame_logger is not None:
            log_frame(self.frame_logger, ">", opcode, fin, rsv1, payload)

    def _answers_pings(self) -> bool:
        """Whether a ping is still answered: RFC 6455 §5.5.2 requires a pong
        "unless it already received a Close frame", so also after our own
        close frame (§5.5.1 forbids only data frames after it), but not once
        the connection failed."""
        state = self.state
        return state is _OPEN or (state is _CLOSING and self.error is None)

    def close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        """Start the closing handshake (or do nothing if it already started).

        ``code`` must be one a close frame may carry (1000-1003, 1007-1014,
        3000-4999), or None to send a close frame without a code; ``reason``
        at most 123 bytes of UTF-8.
        """
        payload = close_payload(code, reason)  # ValueError before any state change
        if self.state is _CONNECTING:
            raise InvalidState("the opening handshake is not complete")
        if self.state is not _OPEN or self.close_sent is not None:
            return
        self.closed_by = "local"
        self._send_close(payload, code, reason)
        self.state = _CLOSING

    def _send_close(self, payload: bytes, code: Optional[int], reason: str) -> None:
        self._out.append(encode_frame(_OP_CLOSE, payload, mask=self._mask()))
        self._sent_frame(_OP_CLOSE, True, False, payload)
        self.close_sent = (code, reason)

    # --------------------------------------------------------------- receiving

    def receive_data(self, data: Any, size: Optional[int] = None) -> bool:
        """Process bytes received from the peer (the first ``size`` of ``data`` if given).

        A driver reading into a reusable buffer passes it whole, with the
        count, rather than a slice of it. Returns whether the driver has
        anything to do beyond the messages already given to
        :attr:`on_message`: :meth:`events` to take,
        :meth:`data_to_send` to write, :attr:`close_transport` set, or
        :attr:`failure_pending`. A driver may skip those checks when it is
        false, which is the common case of a read that brought only messages.
        """
        if self._decoder is not None:
            self._receive_frames(data, size)
        elif self.state is _CONNECTING:
            self._receive_handshake(data if size is None else memoryview(data)[:size])
        return (
            len(self._events) != 0
            or len(self._out) != 0
            or self.close_transport
            or self._deferred_error is not None
        )

    def receive_eof(self) -> None:
        """The peer closed its side of the transport (or the transport was lost).

        Nothing more arrives: ``on_message`` is dropped, so that a callback
        bound to the driver (which holds this connection) leaves no reference
        cycle for the garbage collector.
        """
        if self.state is _CONNECTING:
            self._handshake_eof()
        if self._deferred_error is not None:
            self.error, self._deferred_error = self._deferred_error, None
        self._decoder = None
        self.on_message = None
        self.state = _CLOSED
        self.close_transport = True

    def _receive_handshake(self, data: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _handshake_eof(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _emit(self, event: Event) -> None:
        """Queue an event for :meth:`events` (the handshakes' events too)."""
        self._events.append(event)

    def _write(self, data: bytes) -> None:
        """Queue bytes for :meth:`data_to_send` (the handshakes' too)."""
        self._out.append(data)

    def _open(self, deflate: Optional[PerMessageDeflate]) -> None:
        """The handshake succeeded: start exchanging frames."""
        self.deflate = deflate
        if deflate is not None:
            deflate.counters = self.counters
        # No frame may exceed the message limit (compressed frames included),
        # so an oversize frame is refused from its header.
        self._decoder = FrameDecoder(
            "server" if self.is_server else "client",
            max_frame_size=self.max_message_size,
            allow_rsv1=deflate is not None,
        )
        self.state = _OPEN

    def _receive_frames(self, data: Any, size: Optional[int] = None) -> None:
        decoder = self._decoder
        error: Optional[ProtocolError] = None
        try:
            frames = decoder.feed(data, size)
        except ProtocolError as exc:
            frames = exc.frames
            error = drop_traceback(exc)
        counters = self.counters
        if counters is not None:
            counters.frames_received += len(frames)
        if self.frame_logger is not None:
            for frame in frames:
                log_frame(
                    self.frame_logger, "<", frame.opcode, frame.fin, frame.rsv1, frame.payload
                )
        if self._paused:
            # Keep the frames as they are (compressed payloads stay
            # compressed) until resume(): at most what one read brought.
            self._stash(frames, error)
            return
        self._process_frames(frames, error)
        if self._decoder is not None and not self._paused:
            partial = decoder.partial
            if partial is not None:
                try:
                    self._message_assembler().check_arriving(
                        partial[0],
                        partial[1],
                        partial[2],
                        decoder.partial_length,
                        decoder.partial_payload,
                    )
                except ProtocolError as exc:
                    self._fail_or_defer(exc)

    def _message_assembler(self) -> MessageAssembler:
        assembler = self._assembler
        if assembler is None:
            options = self.options
            assembler = self._assembler = MessageAssembler(
                options.max_message_size, options.fragments
            )
            assembler.deflate = self.deflate
        return assembler

    def _stash(self, frames: Any, error: Optional[ProtocolError]) -> None:
        if self._stashed is None:
            self._stashed = collections.deque()
        self._stashed.extend(frames)
        if error is not None:
            self._stashed_error = error
            self._decoder = None  # nothing after the violation counts

    def _process_frames(self, frames: Any, error: Optional[ProtocolError]) -> None:
        on_message = self.on_message
        counters = self.counters
        events = self._events
        count = len(frames)
        index = 0
        try:
            while index < count:
                frame = frames[index]
                index += 1
                if self._paused:
                    self._stash(list(frames)[index - 1 :], error)
                    return
                assembler = self._assembler  # made by a frame before this one, maybe
                if (
                    on_message is not None
                    and len(events) == 0  # never overtake an event waiting to be read
                    and frame.fin
                    and not frame.rsv1
                    and (assembler is None or (assembler.opcode == 0 and assembler.validated == 0))
                    and not self.fragments
                ):
                    # Fast path: a whole uncompressed message, no event object.
                    opcode = frame.opcode
                    if opcode == _OP_BINARY:
                        payload = frame.payload
                        if counters is not None:
                            counters.messages_received_binary += 1
                            counters.message_bytes_received += len(payload)
                        on_message(payload)
                        continue
                    if opcode == _OP_TEXT:
                        payload = frame.payload
                        try:
                            text = payload.decode()
                        except UnicodeDecodeError:
                            raise invalid_utf8() from None
                        if counters is not None:
                            counters.messages_received_text += 1
                            counters.message_bytes_received += len(payload)
                        on_message(text)
                        continue
                self._receive_frame(frame)
                if self.state is _CLOSED or self.error is not None:
                    return  # closed or failed: ignore what follows
            if error is not None:
                raise error
        except ProtocolError as exc:
            self._fail_or_defer(exc)

    def _fail_or_defer(self, error: ProtocolError) -> None:
        drop_traceback(error)  # kept: see wsframe.errors.drop_traceback
        self._assembler = None  # the message being received is lost
        if self.defer_failure:
            # The driver calls fail_pending() once the application had a
            # chance to answer what came before the violation.
            self._deferred_error = error
            self._decoder = None
        else:
            self._fail(error)

    def fail_pending(self) -> None:
        """Fail the connection for a violation held back by ``defer_failure``."""
        error = self._deferred_error
        if error is not None:
            self._deferred_error = None
            self._fail(error)

    @property
    def failure_pending(self) -> bool:
        """Whether a violation waits for :meth:`fail_pending` (``defer_failure``)."""
        return self._deferred_error is not None

    def pause(self) -> None:
        """Stop delivering messages (the application's queue is full).

        Frames that arrive meanwhile are kept undecoded beyond framing
        (compressed payloads are not inflated) until :meth:`resume`; the driver
        should also stop reading from the transport, so that at most one
        read's worth is kept.
        """
        self._paused = True

    def resume(self) -> None:
        """Deliver what arrived while paused, then go on as usual."""
        self._paused = False
        stashed = self._stashed
        if not stashed:
            return
        self._stashed = None
        error = self._stashed_error
        self._stashed_error = None
        if self.state is not _CLOSED:
            self._process_frames(list(stashed), error)

    @property
    def paused(self) -> bool:
        """Whether message delivery is paused (see :meth:`pause`)."""
        return self._paused

    def _receive_frame(self, frame: Any) -> None:
        opcode = frame.opcode
        assembler = self._assembler
        if opcode in (_OP_TEXT, _OP_BINARY):
            if assembler is not None and assembler.opcode != 0:
                raise ProtocolError("expected a continuation frame, got a new message")
            if (
                frame.fin
                and not frame.rsv1
                and not self.fragments
                and (assembler is None or assembler.validated == 0)
            ):
                # One whole uncompressed message: the common case.
                if opcode == _OP_TEXT:
                    try:
                        text = frame.payload.decode()
                    except UnicodeDecodeError:
                        raise invalid_utf8() from None
                    self._deliver(text)
                else:
                    self._deliver(frame.payload)
                return
            self._message_assembler().begin(opcode, frame.rsv1)
            self._assemble(frame)
        elif opcode == _OP_CONT:
            if assembler is None or assembler.opcode == 0:
                raise ProtocolError("continuation frame without a message to continue")
            self._assemble(frame)
        elif opcode == _OP_PING:
            if self.max_ping_rate is not None:
                pings = self._pings
                if pings is None:
                    pings = self._pings = TokenBucket(
                        self.max_ping_rate, self.max_ping_burst, self._clock
                    )
                if not pings.take():
                    raise ProtocolError(f"more than {self.max_ping_rate:g} pings per second", 1008)
            payload = frame.payload
            if self.counters is not None:
                self.counters.pings_received += 1
            self._events.append(Ping(payload))
            if self.auto_pong and self._answers_pings():
                if self.hold_pongs:
                    self._held_pong = payload  # answer only the latest (RFC 6455 §5.5.3)
                else:
                    self._queue_pong(payload)
        elif opcode == _OP_PONG:
            if self.counters is not None:
                self.counters.pongs_received += 1
            self._events.append(Pong(frame.payload))
        else:
            self._receive_close(frame.payload)

    def _assemble(self, frame: Any) -> None:
        result = self._message_assembler().add(frame.payload, frame.fin)
        if result is None:
            return
        if isinstance(result, (str, bytes)):
            self._deliver(result)
        else:
            counters = self.counters
            if counters is not None:
                data = result.data
                counters.message_bytes_received += payload_size(data)
                if result.final:
                    if type(data) is str:
                        counters.messages_received_text += 1
                    else:
                        counters.messages_received_binary += 1
            self._events.append(result)  # a fragment (fragments=True)

    def _deliver(self, message: Message) -> None:
        """A complete message: to ``on_message`` if set, else as an event.

        While events wait to be read, messages become events too, so the
        driver sees everything in the order it arrived.
        """
        if self.counters is not None:
            self.counters.message_received(message)
        on_message = self.on_message
        if on_message is not None and len(self._events) == 0:
            on_message(message)
        elif isinstance(message, str):
            self._events.append(TextMessage(message))
        else:
            self._events.append(BinaryMessage(message))

    def _receive_close(self, payload: bytes) -> None:
        code, reason = parse_close(payload)
        self.close_received = (code, reason)
        self._events.append(CloseReceived(code, reason))
        if self.close_sent is None:
            self.closed_by = "remote"
            self._send_close(close_payload(code, "") if code is not None else b"", code, "")
        self.state = _CLOSED
        self._decoder = None
        self.on_message = None  # no more messages: see receive_eof
        # The server closes the TCP connection first (RFC 6455 §7.1.1).
        self.close_transport = self.is_server

    def _fail(self, error: ProtocolError) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7) because of ``error``."""
        self.error = error
        if self.close_sent is None and self.state is _OPEN:
            reason = failure_reason(error)
            self._send_close(close_payload(error.close_code, reason), error.close_code, reason)
        if self.state is not _CLOSED:
            self.state = _CLOSING
        self._decoder = None
        self.close_transport = True


def _count_sent(counters: Counters, opcode: int, data: Any, fin: bool) -> None:
    """Count one frame's data of a message sent with the queueing API."""
    counters.message_bytes_sent += payload_size(data)
    if fin:
        if opcode == _OP_TEXT:
            counters.messages_sent_text += 1
        else:
            counters.messages_sent_binary += 1
