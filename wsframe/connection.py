"""The sans-I/O WebSocket connection: a state machine with no I/O in it.

A driver (an asyncio protocol, a trio stream, a test) feeds received bytes to
:meth:`Connection.receive_data` and the end of the stream to
:meth:`~Connection.receive_eof`, takes the resulting :mod:`events
<wsframe.events>` from :meth:`~Connection.events`, writes
:meth:`~Connection.data_to_send` to the peer, and closes the transport once
:attr:`~Connection.close_transport` is true::

    conn = ServerConnection(subprotocols=["chat"])
    conn.receive_data(sock.recv(65536))
    for event in conn.events():
        if isinstance(event, Request):
            conn.accept()
        elif isinstance(event, TextMessage):
            conn.send_text(event.data)
    sock.sendall(conn.data_to_send())

:class:`ServerConnection` and :class:`ClientConnection` include the opening
handshake; the state then follows the browser's ``readyState``:
CONNECTING (0), OPEN (1), CLOSING (2), CLOSED (3).
"""

from __future__ import annotations

import codecs
import collections
import enum
import os
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from .codec import FrameDecoder, Utf8Validator, encode_frame
from .deflate import (
    DeflateParameters,
    PerMessageDeflate,
    accept_deflate_response,
    deflate_offer,
    negotiate_deflate,
)
from .errors import InvalidHandshake, InvalidState, MessageTooBig, ProtocolError
from .events import (
    Accepted,
    BinaryFragment,
    BinaryMessage,
    CloseReceived,
    Event,
    Ping,
    Pong,
    Rejected,
    Request,
    TextFragment,
    TextMessage,
)
from .handshake import (
    Request as HttpRequest,
)
from .handshake import (
    RequestParser,
    Response,
    ResponseParser,
    accept_response,
    build_request,
    generate_key,
    reject_response,
    select_subprotocol,
    validate_request,
    validate_response,
)
from .headers import format_extensions, parse_extensions

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_PING_BURST",
    "DEFAULT_MAX_PING_RATE",
    "ClientConnection",
    "Connection",
    "ServerConnection",
    "State",
    "is_valid_close_code",
]

#: Default ``max_message_size``: 1 MiB, for a reassembled (and inflated) message.
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
#: Default ``max_ping_rate``: pings per second a peer may send on average.
DEFAULT_MAX_PING_RATE = 10.0
#: Default ``max_ping_burst``: pings a peer may send at once above that rate.
DEFAULT_MAX_PING_BURST = 20

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_MAX_CLOSE_REASON = 123  # 125 bytes of control payload minus the 2-byte code
# Bytes a client may send after its request and before our 101 (see
# ServerConnection._receive_handshake).
_MAX_EARLY_DATA = 64 * 1024
# Pieces of a fragmented message kept apart before they are folded together.
_MAX_CHUNKS = 32


class State(enum.IntEnum):
    """Connection states, numbered like the browser's ``WebSocket.readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire (RFC 6455 §7.4)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class _MaskKeys:
    """Masking keys cut from a pooled ``os.urandom`` buffer, not a syscall each."""

    __slots__ = ("_pool", "_pos")

    _SIZE = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def next(self) -> bytes:
        pos = self._pos
        if pos >= len(self._pool):
            self._pool = os.urandom(self._SIZE)
            pos = 0
        self._pos = pos + 4
        return self._pool[pos : pos + 4]

    def reset(self) -> None:
        self._pool = b""
        self._pos = 0


_mask_keys = _MaskKeys()
if hasattr(os, "register_at_fork"):
    # A forked child must not reuse its parent's keys.
    os.register_at_fork(after_in_child=_mask_keys.reset)


class _Fail(Exception):
    """Internal: the peer broke the protocol; fail the connection with ``error``."""

    def __init__(self, error: ProtocolError) -> None:
        super().__init__(str(error))
        self.error = error


def _invalid_utf8() -> ProtocolError:
    return ProtocolError("invalid UTF-8 in a text message", 1007)


class Connection:
    """What server and client connections share: framing, messages, closing.

    Not instantiated directly: use :class:`ServerConnection` or
    :class:`ClientConnection`.
    """

    # Slots, not a __dict__: a server holds many of these.
    __slots__ = (
        "_decoder",
        "_deferred_error",
        "_events",
        "_out",
        "_rx_checked",
        "_rx_chunks",
        "_rx_compressed",
        "_rx_opcode",
        "_rx_size",
        "_rx_text",
        "_rx_utf8",
        "_paused",
        "_ping_clock",
        "_ping_stamp",
        "_ping_tokens",
        "_stashed",
        "_stashed_error",
        "_tx_compressed",
        "_tx_opcode",
        "auto_pong",
        "close_received",
        "close_sent",
        "close_transport",
        "closed_by",
        "defer_failure",
        "deflate",
        "error",
        "fragments",
        "is_server",
        "max_message_size",
        "max_ping_burst",
        "max_ping_rate",
        "on_message",
        "state",
        "subprotocol",
    )

    def __init__(
        self,
        is_server: bool,
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        auto_pong: bool = True,
        fragments: bool = False,
        max_ping_rate: Optional[float] = DEFAULT_MAX_PING_RATE,
        max_ping_burst: int = DEFAULT_MAX_PING_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0 or None, not {max_message_size}")
        if max_ping_rate is not None and not max_ping_rate > 0:
            raise ValueError(f"max_ping_rate must be > 0 or None, not {max_ping_rate}")
        if max_ping_burst < 1:
            raise ValueError(f"max_ping_burst must be >= 1, not {max_ping_burst}")
        self.is_server = is_server
        #: The largest message accepted (reassembled and inflated), or None.
        self.max_message_size = max_message_size
        #: Whether a received ping is answered with a pong automatically.
        self.auto_pong = auto_pong
        #: Whether messages are delivered fragment by fragment.
        self.fragments = fragments
        #: Pings per second the peer may send on average (None: no limit), and
        #: how many it may send at once (a token bucket refilled at that rate,
        #: holding ``max_ping_burst`` tokens). A peer over it is failed with
        #: 1008 (policy violation).
        self.max_ping_rate = max_ping_rate
        self.max_ping_burst = max_ping_burst
        self._ping_clock = clock
        self._ping_tokens = float(max_ping_burst)
        self._ping_stamp: Optional[float] = None
        #: Optional callback for complete messages (``str`` or ``bytes``),
        #: called instead of queueing TextMessage/BinaryMessage events (not
        #: fragments): the fast path of drivers that dispatch at once.
        self.on_message: Optional[Callable[[Any], None]] = None
        #: Hold back a violation found after valid messages of the same read
        #: until :meth:`fail_pending`, so the application can still answer
        #: them (drivers that dispatch asynchronously set it).
        self.defer_failure = False
        self._deferred_error: Optional[ProtocolError] = None
        #: The connection's state, as the browser's ``readyState``.
        self.state = State.CONNECTING
        #: The negotiated subprotocol, if any.
        self.subprotocol: Optional[str] = None
        #: The negotiated permessage-deflate engine, if any.
        self.deflate: Optional[PerMessageDeflate] = None
        #: ``(code, reason)`` of the close frame we sent (code None: no code).
        self.close_sent: Optional[tuple[Optional[int], str]] = None
        #: ``(code, reason)`` of the close frame the peer sent.
        self.close_received: Optional[tuple[Optional[int], str]] = None
        #: ``"local"`` or ``"remote"``: who started the closing handshake.
        self.closed_by: Optional[str] = None
        #: The error that failed the connection (a protocol violation by the
        #: peer, or a failed handshake), if any.
        self.error: Optional[Exception] = None
        #: True once the driver should close the transport (after writing
        #: :meth:`data_to_send`). A client should also close it by itself if
        #: the server has not done so a short while after the closing handshake.
        self.close_transport = False
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._decoder: Optional[Any] = None
        # The message being received: opcode (0: none), compressed, pieces.
        self._rx_opcode = 0
        self._rx_compressed = False
        self._rx_chunks: list[Any] = []
        self._rx_size = 0
        self._rx_utf8 = Utf8Validator()
        # Bytes of the text frame in progress already validated (fail-fast).
        self._rx_checked = 0
        self._rx_text: Optional[codecs.IncrementalDecoder] = None
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
        if self.state is State.CLOSED or self.error is not None:
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
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot send: the connection is {self.state.name}")

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
        if self._tx_opcode:
            raise InvalidState(
                "a fragmented message is being sent: finish it with send_continuation()"
            )
        deflate = self.deflate
        if deflate is None:
            frame = encode_frame(opcode, data, fin=fin, mask=self._mask())
        else:
            if isinstance(data, str):
                data = data.encode()
            payload = deflate.compress(data) if fin else deflate.compress_fragment(data, False)
            frame = encode_frame(opcode, payload, fin=fin, rsv1=True, mask=self._mask())
            self._tx_compressed = True
        if not fin:
            self._tx_opcode = opcode
        self._out.append(frame)

    def encode_message(self, data: Any) -> bytes:
        """Return the frame of a whole message for the caller to write now.

        The same as :meth:`send_text` (for ``str``) or :meth:`send_binary` (any
        bytes-like object) without queueing: the driver writes the result
        itself, after anything :meth:`data_to_send` still holds.
        """
        if self.state is not State.OPEN:
            self._check_open()
        if self._tx_opcode:
            raise InvalidState(
                "a fragmented message is being sent: finish it with send_continuation()"
            )
        opcode = _OP_TEXT if isinstance(data, str) else _OP_BINARY
        deflate = self.deflate
        if deflate is None:
            return encode_frame(opcode, data, mask=None if self.is_server else _mask_keys.next())
        if opcode == _OP_TEXT:
            data = data.encode()
        return encode_frame(opcode, deflate.compress(data), rsv1=True, mask=self._mask())

    def send_continuation(self, data: Any, fin: bool) -> None:
        """Send the next fragment of the message started with ``fin=False``."""
        self._check_open()
        if not self._tx_opcode:
            raise InvalidState("no fragmented message is being sent")
        if isinstance(data, str):
            if self._tx_opcode != _OP_TEXT:
                raise TypeError("a binary message cannot continue with str data")
            data = data.encode()
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

    def send_pong(self, payload: Any = b"") -> None:
        """Send an unsolicited pong or answer a ping (with ``auto_pong=False``)."""
        self._check_open()
        self._out.append(encode_frame(_OP_PONG, payload, mask=self._mask()))

    def close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        """Start the closing handshake (or do nothing if it already started).

        ``code`` must be one a close frame may carry (1000-1003, 1007-1014,
        3000-4999), or None to send a close frame without a code; ``reason``
        at most 123 bytes of UTF-8.
        """
        if code is None:
            if reason:
                raise ValueError("a close frame without a code cannot carry a reason")
        elif not is_valid_close_code(code):
            raise ValueError(f"close code {code} cannot be sent in a close frame")
        if len(reason.encode()) > _MAX_CLOSE_REASON:
            raise ValueError(f"close reason must be at most {_MAX_CLOSE_REASON} bytes of UTF-8")
        if self.state is State.CONNECTING:
            raise InvalidState("the opening handshake is not complete")
        if self.state is not State.OPEN or self.close_sent is not None:
            return
        self.closed_by = "local"
        self._send_close(code, reason)
        self.state = State.CLOSING

    def _send_close(self, code: Optional[int], reason: str) -> None:
        payload = b"" if code is None else code.to_bytes(2, "big") + reason.encode()
        self._out.append(encode_frame(_OP_CLOSE, payload, mask=self._mask()))
        self.close_sent = (code, reason)

    # --------------------------------------------------------------- receiving

    def receive_data(self, data: Any) -> None:
        """Process bytes received from the peer; then read :meth:`events`."""
        if self._decoder is not None:
            self._receive_frames(data)
        elif self.state is State.CONNECTING:
            self._receive_handshake(data)

    def receive_eof(self) -> None:
        """The peer closed its side of the transport (or the transport was lost)."""
        if self.state is State.CONNECTING:
            self._handshake_eof()
        if self._deferred_error is not None:
            self.error, self._deferred_error = self._deferred_error, None
        self._decoder = None
        self.state = State.CLOSED
        self.close_transport = True

    def _receive_handshake(self, data: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _handshake_eof(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _open(self, deflate: Optional[PerMessageDeflate]) -> None:
        """The handshake succeeded: start exchanging frames."""
        self.deflate = deflate
        # No frame may exceed the message limit (compressed frames included),
        # so an oversize frame is refused from its header.
        self._decoder = FrameDecoder(
            "server" if self.is_server else "client",
            max_frame_size=self.max_message_size,
            allow_rsv1=deflate is not None,
        )
        self.state = State.OPEN

    def _receive_frames(self, data: Any) -> None:
        decoder = self._decoder
        assert decoder is not None
        error: Optional[ProtocolError] = None
        try:
            frames = decoder.feed(data)
        except ProtocolError as exc:
            frames, error = exc.frames, exc
        if self._paused:
            # Keep the frames as they are (compressed payloads stay
            # compressed) until resume(): at most what one read brought.
            self._stash(frames, error)
            return
        self._process_frames(frames, error)
        if self._decoder is not None and not self._paused:
            partial = self._decoder.partial
            if partial is not None:
                self._check_partial_text(partial)

    def _check_partial_text(self, partial: tuple[int, bool, int]) -> None:
        """Validate the UTF-8 of a text frame still arriving: fail fast."""
        opcode, rsv1, received = partial
        if rsv1 or received <= self._rx_checked:
            return
        if opcode == _OP_TEXT:
            if self._rx_opcode:
                return  # a protocol error, reported when the frame completes
        elif opcode != _OP_CONT or self._rx_opcode != _OP_TEXT or self._rx_compressed:
            return
        assert self._decoder is not None
        if not self._rx_utf8.feed(self._decoder.partial_payload(self._rx_checked)):
            self._violation(_invalid_utf8())
            return
        self._rx_checked = received

    def _stash(self, frames: list[Any], error: Optional[ProtocolError]) -> None:
        if self._stashed is None:
            self._stashed = collections.deque()
        self._stashed.extend(frames)
        if error is not None:
            self._stashed_error = error
            self._decoder = None  # nothing after the violation counts

    def _process_frames(self, frames: Any, error: Optional[ProtocolError]) -> None:
        on_message = self.on_message
        events = self._events
        try:
            for index, frame in enumerate(frames):
                if self._paused:
                    self._stash(list(frames)[index:], error)
                    return
                if (
                    on_message is not None
                    and not events  # never overtake an event waiting to be read
                    and frame.fin
                    and not frame.rsv1
                    and not self._rx_opcode
                    and not self.fragments
                ):
                    # Fast path: a whole uncompressed message, no event object.
                    opcode = frame.opcode
                    if opcode == _OP_BINARY:
                        on_message(frame.payload)
                        continue
                    if opcode == _OP_TEXT and not self._rx_checked:
                        try:
                            text = frame.payload.decode()
                        except UnicodeDecodeError:
                            raise _Fail(_invalid_utf8()) from None
                        on_message(text)
                        continue
                self._receive_frame(frame)
                if self.state is State.CLOSED or self.error is not None:
                    return  # closed or failed: ignore what follows
            if error is not None:
                raise _Fail(error)
        except _Fail as failure:
            self._violation(failure.error)

    def _violation(self, error: ProtocolError) -> None:
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
        error, self._stashed_error = self._stashed_error, None
        if self.state is not State.CLOSED:
            self._process_frames(stashed, error)

    @property
    def paused(self) -> bool:
        """Whether message delivery is paused (see :meth:`pause`)."""
        return self._paused

    def _receive_frame(self, frame: Any) -> None:
        opcode = frame.opcode
        if opcode in (_OP_TEXT, _OP_BINARY):
            if self._rx_opcode:
                raise _Fail(ProtocolError("expected a continuation frame, got a new message"))
            if frame.fin and not frame.rsv1 and not self.fragments and not self._rx_checked:
                # One whole uncompressed message: the common case.
                if opcode == _OP_TEXT:
                    try:
                        text = frame.payload.decode()
                    except UnicodeDecodeError:
                        raise _Fail(_invalid_utf8()) from None
                    self._deliver(text)
                else:
                    self._deliver(frame.payload)
                return
            self._rx_opcode = opcode
            self._rx_compressed = frame.rsv1
            self._rx_size = 0
            self._receive_message_data(frame)
        elif opcode == _OP_CONT:
            if not self._rx_opcode:
                raise _Fail(ProtocolError("continuation frame without a message to continue"))
            self._receive_message_data(frame)
        elif opcode == _OP_PING:
            if self.max_ping_rate is not None:
                self._take_ping_token()
            self._events.append(Ping(frame.payload))
            if self.auto_pong and self.state is State.OPEN:
                self._out.append(encode_frame(_OP_PONG, frame.payload, mask=self._mask()))
        elif opcode == _OP_PONG:
            self._events.append(Pong(frame.payload))
        else:
            self._receive_close(frame.payload)

    def _take_ping_token(self) -> None:
        """Count a received ping against ``max_ping_rate`` (a token bucket)."""
        now = self._ping_clock()
        stamp = self._ping_stamp
        tokens = self._ping_tokens
        if stamp is not None:
            tokens = min(
                float(self.max_ping_burst), tokens + (now - stamp) * (self.max_ping_rate or 0.0)
            )
        self._ping_stamp = now
        if tokens < 1.0:
            self._ping_tokens = tokens
            raise _Fail(ProtocolError(f"more than {self.max_ping_rate:g} pings per second", 1008))
        self._ping_tokens = tokens - 1.0

    def _deliver(self, message: Any) -> None:
        """A complete message: to ``on_message`` if set, else as an event.

        While events wait to be read, messages become events too, so the
        driver sees everything in the order it arrived.
        """
        if self.on_message is not None and not self._events:
            self.on_message(message)
        elif isinstance(message, str):
            self._events.append(TextMessage(message))
        else:
            self._events.append(BinaryMessage(message))

    def _receive_message_data(self, frame: Any) -> None:
        data = frame.payload
        fin = frame.fin
        if self._rx_compressed:
            assert self.deflate is not None
            try:
                data = self.deflate.decompress(data, fin)
            except ProtocolError as exc:
                raise _Fail(exc) from None
        self._rx_size += len(data)
        limit = self.max_message_size
        if limit is not None and self._rx_size > limit:
            raise _Fail(MessageTooBig(f"message of more than {limit} bytes"))
        text = self._rx_opcode == _OP_TEXT
        if text:
            checked = self._rx_checked  # validated while the frame arrived
            if checked:
                self._rx_checked = 0
                valid = self._rx_utf8.feed(memoryview(data)[checked:], fin)
            else:
                valid = self._rx_utf8.feed(data, fin)
            if not valid:
                raise _Fail(_invalid_utf8())
        if self.fragments:
            if text:
                if self._rx_text is None:
                    self._rx_text = codecs.getincrementaldecoder("utf-8")()
                self._events.append(TextFragment(self._rx_text.decode(data, fin), fin))
            else:
                self._events.append(BinaryFragment(bytes(data), fin))
        else:
            chunks = self._rx_chunks
            if data:
                chunks.append(data)
                if len(chunks) > _MAX_CHUNKS:
                    # A message in many small frames: fold them into one buffer
                    # so that memory stays near the message size, not a bytes
                    # object (and a list slot) per frame.
                    head = chunks[0]
                    if not isinstance(head, bytearray):
                        head = bytearray(head)
                    for chunk in chunks[1:]:
                        head += chunk
                    self._rx_chunks = chunks = [head]
            if fin:
                message = b"".join(chunks)
                self._deliver(message.decode() if text else message)
        if fin:
            self._rx_opcode = 0
            self._rx_chunks = []
            self._rx_text = None

    def _receive_close(self, payload: bytes) -> None:
        code: Optional[int] = None
        reason = ""
        if len(payload) == 1:
            raise _Fail(ProtocolError("close frame with a 1-byte payload"))
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_close_code(code):
                raise _Fail(ProtocolError(f"invalid close code {code}"))
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                raise _Fail(ProtocolError("invalid UTF-8 in a close reason", 1007)) from None
        self.close_received = (code, reason)
        self._events.append(CloseReceived(code, reason))
        if self.close_sent is None:
            self.closed_by = "remote"
            self._send_close(code, "")
        self.state = State.CLOSED
        self._decoder = None
        # The server closes the TCP connection first (RFC 6455 §7.1.1).
        self.close_transport = self.is_server

    def _fail(self, error: ProtocolError) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7) because of ``error``."""
        self.error = error
        if self.close_sent is None and self.state is State.OPEN:
            reason = str(error).encode()[:_MAX_CLOSE_REASON].decode(errors="ignore")
            self._send_close(error.close_code, reason)
        if self.state is not State.CLOSED:
            self.state = State.CLOSING
        self._decoder = None
        self.close_transport = True


_AUTO: Any = object()


class ServerConnection(Connection):
    """The server side of one connection, opening handshake included.

    A :class:`~wsframe.events.Request` event hands the request to the
    application, which answers with :meth:`accept`, :meth:`reject` or
    :meth:`respond`.

    Options: ``subprotocols`` (supported, in preference order) or a
    ``select_subprotocol(request, offered) -> str | None`` callback;
    ``compression="deflate"`` (accept permessage-deflate offers) or None;
    ``deflate_options`` (keyword arguments of
    :func:`wsframe.deflate.negotiate_deflate`, e.g.
    ``{"server_no_context_takeover": True}``); ``max_message_size``;
    ``auto_pong``; ``fragments``; ``max_ping_rate`` and ``max_ping_burst``
    (pings the peer may send per second on average, and at once, else it is
    failed with 1008; ``clock`` measures time for them, :func:`time.monotonic`
    by default); and the request-head limits of
    :class:`wsframe.handshake.RequestParser` (``max_request_line``,
    ``max_header_line``, ``max_headers``, ``max_header_bytes``).
    """

    __slots__ = (
        "_early",
        "_parser",
        "compression",
        "deflate_options",
        "request",
        "response",
        "select_subprotocol",
        "subprotocols",
    )

    def __init__(
        self,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        select_subprotocol: Optional[Callable[[HttpRequest, list[str]], Optional[str]]] = None,
        compression: Optional[str] = "deflate",
        deflate_options: Optional[dict[str, Any]] = None,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        auto_pong: bool = True,
        fragments: bool = False,
        max_ping_rate: Optional[float] = DEFAULT_MAX_PING_RATE,
        max_ping_burst: int = DEFAULT_MAX_PING_BURST,
        clock: Callable[[], float] = time.monotonic,
        **limits: int,
    ) -> None:
        super().__init__(
            True,
            max_message_size=max_message_size,
            auto_pong=auto_pong,
            fragments=fragments,
            max_ping_rate=max_ping_rate,
            max_ping_burst=max_ping_burst,
            clock=clock,
        )
        if compression not in (None, "deflate"):
            raise ValueError(f"compression must be 'deflate' or None, not {compression!r}")
        self.subprotocols = list(subprotocols or ())
        self.select_subprotocol = select_subprotocol
        self.compression = compression
        self.deflate_options = dict(deflate_options or {})
        self._parser: Optional[RequestParser] = RequestParser(**limits)
        #: The request, once received.
        self.request: Optional[HttpRequest] = None
        #: The response sent, when it refused the upgrade or answered plain
        #: HTTP (a 101 is not kept).
        self.response: Optional[Response] = None
        self._early = bytearray()

    def _receive_handshake(self, data: Any) -> None:
        if self.request is not None:
            # Bytes sent before our answer (RFC 6455 §4.1 says a client waits
            # for it): kept as frames for after the 101, up to a limit.
            if len(self._early) + len(data) > _MAX_EARLY_DATA:
                self._handshake_failed(
                    InvalidHandshake("too much data sent before the handshake completed", 400)
                )
                return
            self._early += data
            return
        assert self._parser is not None
        try:
            request = self._parser.feed(bytes(data))
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        if request is None:
            return
        self.request = request
        self._early += self._parser.leftover
        self._parser = None
        self._events.append(Request(request))

    def _handshake_eof(self) -> None:
        self._parser = None

    def _handshake_failed(self, error: InvalidHandshake) -> None:
        status = error.status or 400
        body = error.body or str(error).encode()
        self._answer(reject_response(status, body, error.headers or None))
        self.error = error
        self._events.append(Rejected(error))

    def _answer(self, response: Response) -> None:
        self.response = response
        self._out.append(response.serialize())
        self._parser = None
        self.state = State.CLOSED
        self.close_transport = True

    def _pending_request(self) -> HttpRequest:
        if self.state is not State.CONNECTING or self.request is None:
            raise InvalidState("there is no request waiting for an answer")
        return self.request

    def accept(
        self,
        subprotocol: Optional[str] = _AUTO,
        extra_headers: Any = None,
    ) -> None:
        """Accept the WebSocket upgrade: send 101 and open the connection.

        The request is validated first; an invalid one is answered with the
        right error status (and a :class:`~wsframe.events.Rejected` event)
        instead. ``subprotocol`` overrides the automatic choice (it must be one
        the client offered, or None).
        """
        request = self._pending_request()
        try:
            validate_request(request)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        offered = request.subprotocols
        if subprotocol is _AUTO:
            if self.select_subprotocol is not None:
                subprotocol = self.select_subprotocol(request, offered)
            else:
                subprotocol = select_subprotocol(offered, self.subprotocols)
        if subprotocol is not None and subprotocol not in offered:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
        deflate: Optional[PerMessageDeflate] = None
        extensions: Optional[str] = None
        if self.compression == "deflate":
            offers = [params for name, params in request.extensions if name == "permessage-deflate"]
            if offers:
                options = dict(self.deflate_options)
                options.setdefault("max_message_size", self.max_message_size)
                result = negotiate_deflate(offers, **options)
                if result is not None:
                    params, deflate = result
                    extensions = format_extensions([("permessage-deflate", params)])
        response = accept_response(
            request, subprotocol=subprotocol, extensions=extensions, extra_headers=extra_headers
        )
        # The 101 response is not kept: a server holds many connections.
        self.subprotocol = subprotocol
        self._out.append(response.serialize())
        self._open(deflate)
        early = bytes(self._early)
        self._early = bytearray()
        if early:
            self._receive_frames(early)

    def reject(self, status: int = 403, body: Union[str, bytes] = "", headers: Any = None) -> None:
        """Refuse the request with an HTTP error ``status`` and close."""
        self._pending_request()
        self._answer(reject_response(status, body or _status_text(status), headers))

    def respond(self, status: int, body: Union[str, bytes] = b"", headers: Any = None) -> None:
        """Answer a plain HTTP request (e.g. serve a page), then close."""
        self._pending_request()
        self._answer(reject_response(status, body, headers))


def _status_text(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}\n"
    except ValueError:
        return f"{status}\n"


class ClientConnection(Connection):
    """The client side of one connection, opening handshake included.

    The request is ready in :meth:`data_to_send` from the start; an
    :class:`~wsframe.events.Accepted` or :class:`~wsframe.events.Rejected`
    event tells how the server answered.

    Options: ``origin``, ``subprotocols`` (offered), ``compression="deflate"``
    (offer permessage-deflate) or None, ``deflate_options`` (keyword arguments
    of :func:`wsframe.deflate.deflate_offer`), ``extra_headers``,
    ``max_message_size``, ``auto_pong``, ``fragments``, ``max_ping_rate``,
    ``max_ping_burst`` and ``clock`` (as for :class:`ServerConnection`), and the response-head
    limits of :class:`wsframe.handshake.ResponseParser`.
    """

    __slots__ = ("_offer", "_parser", "request", "response", "subprotocols")

    def __init__(
        self,
        uri: str,
        *,
        origin: Optional[str] = None,
        subprotocols: Optional[Sequence[str]] = None,
        compression: Optional[str] = "deflate",
        deflate_options: Optional[dict[str, Any]] = None,
        extra_headers: Any = None,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        auto_pong: bool = True,
        fragments: bool = False,
        max_ping_rate: Optional[float] = DEFAULT_MAX_PING_RATE,
        max_ping_burst: int = DEFAULT_MAX_PING_BURST,
        clock: Callable[[], float] = time.monotonic,
        **limits: int,
    ) -> None:
        super().__init__(
            False,
            max_message_size=max_message_size,
            auto_pong=auto_pong,
            fragments=fragments,
            max_ping_rate=max_ping_rate,
            max_ping_burst=max_ping_burst,
            clock=clock,
        )
        if compression not in (None, "deflate"):
            raise ValueError(f"compression must be 'deflate' or None, not {compression!r}")
        self.subprotocols = list(subprotocols or ())
        self._offer: Optional[DeflateParameters] = None
        extensions: Optional[str] = None
        if compression == "deflate":
            name, params = deflate_offer(**(deflate_options or {}))
            self._offer = DeflateParameters.from_params(params, is_offer=True)
            extensions = format_extensions([(name, params)])
        #: The request sent.
        self.request = build_request(
            uri,
            key=generate_key(),
            origin=origin,
            subprotocols=self.subprotocols or None,
            extensions=extensions,
            extra_headers=extra_headers,
        )
        #: The server's response, once received.
        self.response: Optional[Response] = None
        self._parser: Optional[ResponseParser] = ResponseParser(**limits)
        self._out.append(self.request.serialize())

    def _receive_handshake(self, data: Any) -> None:
        assert self._parser is not None
        try:
            response = self._parser.feed(bytes(data))
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        if response is not None:
            self._handshake_complete(response)

    def _handshake_eof(self) -> None:
        parser = self._parser
        if parser is None:
            return
        try:
            response = parser.feed_eof()
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self._handshake_complete(response)

    def _handshake_complete(self, response: Response) -> None:
        parser = self._parser
        assert parser is not None
        self._parser = None
        self.response = response
        offered = ["permessage-deflate"] if self._offer is not None else []
        try:
            subprotocol = validate_response(
                self.request,
                response,
                subprotocols=self.subprotocols,
                offered_extensions=offered,
            )
            deflate: Optional[PerMessageDeflate] = None
            try:
                agreed = parse_extensions(response.headers.get_all("Sec-WebSocket-Extensions"))
            except ValueError as exc:
                raise InvalidHandshake(
                    f"invalid Sec-WebSocket-Extensions: {exc}",
                    response.status,
                    response.headers,
                    response.body,
                ) from None
            for name, params in agreed:
                if name != "permessage-deflate" or self._offer is None or deflate is not None:
                    raise InvalidHandshake(
                        f"the server agreed to an extension not offered: {name}",
                        response.status,
                        response.headers,
                        response.body,
                    )
                try:
                    deflate = accept_deflate_response(
                        self._offer, params, max_message_size=self.max_message_size
                    )
                except InvalidHandshake as exc:
                    raise InvalidHandshake(
                        str(exc), response.status, response.headers, response.body
                    ) from None
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self.subprotocol = subprotocol
        self._open(deflate)
        self._events.append(Accepted(response, subprotocol, deflate))
        leftover = parser.leftover
        if leftover:
            self._receive_frames(leftover)

    def _handshake_failed(self, error: InvalidHandshake) -> None:
        self._parser = None
        self.error = error
        self.state = State.CLOSED
        self.close_transport = True
        self._events.append(Rejected(error))
