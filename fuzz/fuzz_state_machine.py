#!/usr/bin/env python3
"""Differential fuzzing of the connection state machine: wsframe vs websockets (issue 13).

A sequence is: an opening handshake (permessage-deflate offered or not, with
random parameters, negotiated by the side under test), then random frames
from the peer — valid and invalid ones, whole and fragmented messages,
control frames between fragments, bad close codes, invalid UTF-8 split
across fragments, compressed messages with and without context takeover,
messages around ``max_message_size``, pings, close frames, a close started
by the side under test, data after the close — and perhaps a last frame cut
short. Each sequence is fed to

* wsframe's sans-I/O ``ServerConnection`` or ``ClientConnection``, through
  its public boundary only (``receive_data``, ``events``, ``data_to_send``,
  ``on_message`` off or on, ``fragments`` off or on, ``close``), in random
  chunks;
* websockets' sans-I/O ``ServerProtocol`` or ``ClientProtocol`` with the same
  limit (``max_size``) and compression settings, one whole frame at a time;
  websockets reports frames, so the adapter below joins fragments and checks
  UTF-8 as an application reading each frame at once would (websockets'
  connection classes fail with 1007 when decoding fails);
* a small model (:class:`Receiver`) of what RFC 6455 and RFC 7692 require,
  which the generator also consults to choose the next frame.

What is compared (:class:`Outcome`): the messages delivered (text or binary,
content, order, fragments joined), the control frames sent back (pongs with
their payload, close frames with their code), the close code received, and
whether the connection failed, with which close code. The permessage-deflate
agreement of both libraries is compared too.

wsframe must match the model exactly. websockets must match it too, except
in the known differences listed in ``KNOWN_DIFFERENCES`` (and in
``fuzz/README.md``): readings of the RFC where websockets does something else.
At the frame where one applies, websockets must do what the table says, and
is not compared beyond it.

Run it (both implementations of wsframe, one process each)::

    python fuzz/fuzz_state_machine.py --sequences 10000 --seed 1
    python fuzz/fuzz_state_machine.py --sequences 1000000 --seed 7 --time-limit 3600
    python fuzz/fuzz_state_machine.py --impl c --seed 7 --replay 1234 -v   # one sequence

or coverage-guided with atheris (libFuzzer flags start with one dash; the
implementation is the one ``WSFRAME_NO_EXTENSIONS`` selects)::

    python fuzz/fuzz_state_machine.py -max_total_time=60
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, Optional, Union

import websockets.exceptions as ws_exc
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.extensions.permessage_deflate import PerMessageDeflate as WsPerMessageDeflate
from websockets.frames import Opcode as WsOpcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

import wsframe
from wsframe.connection import ClientConnection, ServerConnection, State
from wsframe.errors import ProtocolError
from wsframe.events import (
    Accepted,
    BinaryFragment,
    BinaryMessage,
    Rejected,
    Request,
    TextFragment,
    TextMessage,
)
from wsframe.handshake import accept_key
from wsframe.headers import format_extensions

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RESERVED_OPCODES = (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: removed by the sender, appended by the receiver
URI = "ws://example.com/chat"
REQUEST_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example key

Message = tuple[str, Union[str, bytes]]  # ("text", str) or ("binary", bytes)
Sent = tuple[str, Any]  # ("pong", payload) or ("close", code; 1005 for a close frame without one)

# RFC 7692 allows window bits 8-15. CPython's zlib compresses with 9 when
# asked for 8; PyPy's refuses 8 ("Invalid initialization option"), so
# websockets cannot take 8 there: its handshake fails or it crashes, not for
# a protocol reason. On PyPy the fuzzer offers and answers 9-15 only.
ON_PYPY = sys.implementation.name == "pypy"
SMALLEST_WINDOW_BITS = 9 if ON_PYPY else 8
# On PyPy, websockets' permessage-deflate also strays from the model (and
# from what the same websockets does on CPython) in a few compressed
# sequences -- e.g. a fragmented message with a small window delivered
# instead of failed with 1002 -- because PyPy's zlib module differs from
# CPython's. There, such a sequence is counted (Stats.websockets_zlib_on_pypy)
# instead of reported, as long as wsframe matches the model: wsframe is
# still checked against the model on every sequence.


# --------------------------------------------------------------------------
# Where the choices come from


class Choices:
    """The generator's decisions: a seeded PRNG (:class:`RandomChoices`) or
    atheris' input bytes (:class:`FuzzedChoices`), behind the same methods."""

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def chance(self, p: float) -> bool:
        raise NotImplementedError

    def bytes(self, n: int) -> bytes:
        raise NotImplementedError

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.integer(0, len(items) - 1)]


class RandomChoices(Choices):
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return lo + int(self._rng.random() * (hi - lo + 1))

    def chance(self, p: float) -> bool:
        return self._rng.random() < p

    def bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)


class FuzzedChoices(Choices):
    def __init__(self, fdp: Any) -> None:
        self._fdp = fdp

    def integer(self, lo: int, hi: int) -> int:
        return int(self._fdp.ConsumeIntInRange(lo, hi))

    def chance(self, p: float) -> bool:
        return bool(self._fdp.ConsumeProbability() < p)

    def bytes(self, n: int) -> bytes:
        data = bytes(self._fdp.ConsumeBytes(n))
        return data + bytes(n - len(data))


# --------------------------------------------------------------------------
# Frames on the wire


@dataclasses.dataclass
class Frame:
    """A frame from the peer, as the generator means it (RFC 6455 §5.2)."""

    opcode: int
    payload: bytes  # as on the wire, unmasked (compressed for a compressed message)
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    # The generator turns "True: as the peer's role requires, False: the
    # other way" into the mask bit on the wire (see Generator.emit).
    masked: bool = True
    length: str = "minimal"  # "minimal", "wide" (one size up), "msb" (64-bit, top bit set)


def xor(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def encode(frame: Frame, key: bytes) -> tuple[bytes, int]:
    """The frame's bytes, and the length of its header (mask key included)."""
    b0 = frame.opcode | (0x80 if frame.fin else 0)
    b0 |= (0x40 if frame.rsv1 else 0) | (0x20 if frame.rsv2 else 0) | (0x10 if frame.rsv3 else 0)
    m = 0x80 if frame.masked else 0
    n = len(frame.payload)
    if frame.length == "msb":
        head = bytes([b0, m | 127]) + (n | 1 << 63).to_bytes(8, "big")
    elif frame.length == "wide":
        if n < 126:
            head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    elif n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if frame.masked:
        return head + key + xor(frame.payload, key), len(head) + 4
    return head + frame.payload, len(head)


def parse_sent(data: bytes, masked: bool) -> list[Sent]:
    """The control frames in what a side sent (it sends no data frame here)."""
    out: list[Sent] = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80 and not b0 & 0x70, f"sent a bad frame header {data[pos : pos + 2]!r}"
        assert bool(b1 & 0x80) is masked, "sent a frame with the wrong masking"
        n = b1 & 0x7F
        assert n <= 125, "sent a control frame over 125 bytes"
        pos += 2
        payload = data[pos + 4 : pos + 4 + n] if masked else data[pos : pos + n]
        if masked:
            payload = xor(payload, data[pos : pos + 4])
            pos += 4
        pos += n
        opcode = b0 & 0x0F
        if opcode == PONG:
            out.append(("pong", payload))
        elif opcode == CLOSE:
            out.append(("close", int.from_bytes(payload[:2], "big") if payload else 1005))
        else:
            raise AssertionError(f"sent an unexpected frame, opcode {opcode:#x}")
    return out


# --------------------------------------------------------------------------
# UTF-8, checked as it arrives


def _valid_prefix(pending: bytes) -> bool:
    """Whether ``pending`` (an incomplete sequence) can still become a character (RFC 3629 §4)."""
    lead = pending[0]
    if 0xC2 <= lead <= 0xDF:
        size, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= lead <= 0xEF:
        size = 3
        lo, hi = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F)}.get(lead, (0x80, 0xBF))
    elif 0xF0 <= lead <= 0xF4:
        size = 4
        lo, hi = {0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(lead, (0x80, 0xBF))
    else:
        return False
    if len(pending) >= 2 and not lo <= pending[1] <= hi:
        return False
    return len(pending) < size and all(0x80 <= b <= 0xBF for b in pending[2:])


class Utf8:
    """Incremental UTF-8 check that fails at the first byte no valid text can
    have there (RFC 6455 §8.1: fail as soon as the stream is not UTF-8).

    Python's incremental decoder raises on invalid bytes but holds back an
    incomplete sequence at the end even when it is already impossible (a
    surrogate's ``ED A0``): that tail is checked here."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, data: bytes, final: bool) -> bool:
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError:
            return False
        pending = self._decoder.getstate()[0]
        return not pending or _valid_prefix(pending)


# --------------------------------------------------------------------------
# Outcomes and the model


@dataclasses.dataclass
class Outcome:
    """What the side under test did, as far as the peer and the application can tell."""

    messages: list[Message] = dataclasses.field(default_factory=list)
    sent: list[Sent] = dataclasses.field(default_factory=list)
    close_received: Optional[int] = None  # 1005: a close frame without a code
    failure: Optional[int] = None  # the close code of the failure

    def copy(self) -> Outcome:
        return Outcome(list(self.messages), list(self.sent), self.close_received, self.failure)

    def short(self) -> str:
        def cut(m: Message) -> str:
            text = repr(m[1])
            return f"{m[0]}:{text[:40]}{'…' if len(text) > 40 else ''}(len {len(m[1])})"

        return (
            f"messages=[{', '.join(cut(m) for m in self.messages)}] sent={self.sent!r} "
            f"close_received={self.close_received} failure={self.failure}"
        )


class Fail(Exception):
    """The model fails the connection (RFC 6455 §7.1.7) with ``code``."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


def valid_close_code(code: int) -> bool:
    # RFC 6455 §7.4.1/§7.4.2: 1004-1006 and 1015 are reserved or must not be
    # sent; 0-999 unused; 1016-2999 reserved for the protocol; 3000-4999 for
    # applications. 1012-1014 are registered in the IANA registry (§11.7).
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclasses.dataclass
class InMessage:
    """A message whose frames are arriving (RFC 6455 §5.4)."""

    opcode: int
    compressed: bool
    size: int = 0
    parts: list[bytes] = dataclasses.field(default_factory=list)
    utf8: Utf8 = dataclasses.field(default_factory=Utf8)


class Receiver:
    """The receiving side of RFC 6455 and RFC 7692, one frame at a time.

    This is the fuzzer's statement of the expected behaviour. Where the RFC
    leaves a choice, it follows wsframe's documented reading: which of two
    violations in one frame is reported (the first in the order of §5.2's
    header fields; the size of a frame before its UTF-8), and that the limit
    ``max_size`` bounds the payload of any frame and the inflated size of a
    message. ``receive`` also says whether websockets is known to differ at
    that frame (see ``KNOWN_DIFFERENCES``).
    """

    def __init__(
        self,
        is_server: bool,
        max_size: Optional[int],
        deflate: bool,
        peer_no_context_takeover: bool,
        peer_window_bits: int,
    ) -> None:
        self.is_server = is_server
        self.max_size = max_size
        self.deflate = deflate
        self.peer_no_context_takeover = peer_no_context_takeover
        self.peer_window_bits = peer_window_bits
        self.outcome = Outcome()
        #: False once a close frame was received or the connection failed:
        #: everything after is discarded (RFC 6455 §1.4, §7.1.7).
        self.processing = True
        self.close_sent = False
        self.message: Optional[InMessage] = None
        self._inflater: Optional[Any] = None
        #: Whether websockets' decompressor saw its DEFLATE stream end
        #: (BFINAL) and was not replaced since (see "data-after-bfinal").
        self.websockets_stream_ended = False
        #: Whether this frame inflated something (or failed) after such an end.
        self.after_end = False
        #: How inflating this frame ended: 0, 1002 or 1009 (None: not compressed).
        self.inflated: Optional[int] = None

    # -- the side under test's own actions

    def local_close(self, code: Optional[int]) -> None:
        """The application starts the closing handshake (RFC 6455 §7.1.2)."""
        if self.processing and not self.close_sent:
            self.outcome.sent.append(("close", 1005 if code is None else code))
            self.close_sent = True

    # -- frames from the peer

    def receive(self, frame: Frame) -> Optional[str]:
        """Process a whole frame; return the known difference of websockets here, if any."""
        if not self.processing:
            return None  # RFC 6455 §1.4: after a close (or a failure), data is discarded
        # The size of the message in progress before this frame (None: none).
        size = None if self.message is None else self.message.size
        # The decompressor before a compressed frame, for websockets' view of
        # it under a limit (see "inflate-stops-at-budget").
        inflater = None
        if self._inflater is not None and self.max_size is not None:
            if frame.opcode in (TEXT, BINARY):
                compressed = frame.rsv1 and self.message is None
            else:
                compressed = frame.opcode == CONT and self.message is not None
                compressed = compressed and self.message is not None and self.message.compressed
            if compressed:
                inflater = self._inflater.copy()
        self.inflated = None
        self.after_end = False
        verdict: Optional[int] = None
        header_ok = False
        try:
            self._check_header(frame, len(frame.payload))
            header_ok = True
            self._frame(frame)
        except Fail as exc:
            verdict = exc.code
            self._fail(exc.code)
        difference = self._websockets_difference(frame, size, verdict)
        if difference is None and header_ok and self.after_end:
            difference = "data-after-bfinal"
        if (
            difference is None
            and self.inflated is not None
            and self.max_size is not None  # without a limit, both inflate everything
            and self._websockets_inflates(frame, size, inflater) != self.inflated
        ):
            difference = "inflate-stops-at-budget"
        return difference

    def receive_partial(self, frame: Frame, received: int) -> None:
        """A frame whose header and first ``received`` payload bytes arrived, and no more."""
        if not self.processing:
            return
        try:
            self._check_header(frame, len(frame.payload))
            m = self.message
            # A continuation that takes an uncompressed message past the
            # limit is refused from its header (wsframe's reading of §10.4).
            if (
                frame.opcode == CONT
                and m is not None
                and not m.compressed
                and self.max_size is not None
                and m.size + len(frame.payload) > self.max_size
            ):
                raise Fail(1009, "message over max_size")
            # Invalid UTF-8 fails the connection as soon as it arrives, before
            # the frame is complete (RFC 6455 §8.1), for uncompressed text:
            # the first frame of a text message, or a continuation of one.
            data = frame.payload[:received]
            if received and not frame.rsv1:
                utf8: Optional[Utf8] = None
                if frame.opcode == TEXT and m is None:
                    utf8 = Utf8()
                elif frame.opcode == CONT and m is not None and m.opcode == TEXT:
                    utf8 = None if m.compressed else m.utf8
                if utf8 is not None and not utf8.feed(data, False):
                    raise Fail(1007, "invalid UTF-8 (partial frame)")
        except Fail as exc:
            self._fail(exc.code)

    def _check_header(self, f: Frame, n: int) -> None:
        # RFC 6455 §5.2: an unknown opcode fails the connection.
        if f.opcode in RESERVED_OPCODES:
            raise Fail(1002, "reserved opcode")
        # §5.2: RSV bits must be 0 unless an extension defines them; RFC 7692
        # §6 defines RSV1 only on the first frame of a data message (§6.1).
        if f.rsv2 or f.rsv3:
            raise Fail(1002, "RSV2/RSV3")
        if f.rsv1 and (not self.deflate or f.opcode >= 8 or f.opcode == CONT):
            raise Fail(1002, "RSV1 not allowed")
        # §5.5: control frames are not fragmented and carry at most 125 bytes.
        if f.opcode >= 8 and (not f.fin or n > 125 or (f.length != "minimal" and n >= 126)):
            raise Fail(1002, "bad control frame")
        # §5.1: a client masks every frame, a server none.
        if f.masked is not self.is_server:
            raise Fail(1002, "masking")
        # §5.2: "the minimal number of bytes MUST be used to encode the
        # length"; the 64-bit length's most significant bit MUST be 0.
        if f.length != "minimal":
            raise Fail(1002, "length encoding")
        # §10.4: a frame over the limit is refused (1009, §7.4.1) from its header.
        if self.max_size is not None and n > self.max_size:
            raise Fail(1009, "frame over max_size")

    def _frame(self, f: Frame) -> None:
        if f.opcode in (TEXT, BINARY):
            # §5.4: a message's fragments are not interleaved with another's.
            if self.message is not None:
                raise Fail(1002, "new message inside a fragmented one")
            self.message = InMessage(f.opcode, f.rsv1)
            self._data(f)
        elif f.opcode == CONT:
            if self.message is None:
                raise Fail(1002, "continuation without a message")
            self._data(f)
        elif f.opcode == PING:
            # §5.5.2: answer with a pong carrying the same payload, unless a
            # close frame was received — also after sending our own close
            # (§5.5.1 forbids only data frames after it).
            self.outcome.sent.append(("pong", f.payload))
        elif f.opcode == CLOSE:
            self._close(f.payload)
        # PONG: §5.5.3, nothing to do.

    def _data(self, f: Frame) -> None:
        m = self.message
        assert m is not None
        remaining = None if self.max_size is None else self.max_size - m.size
        data = self._inflate(f.payload, f.fin, remaining) if m.compressed else f.payload
        # §10.4 / RFC 7692 §8.1: the limit is on the (inflated) message.
        m.size += len(data)
        if self.max_size is not None and m.size > self.max_size:
            raise Fail(1009, "message over max_size")
        # §5.6 / §8.1: a text message is UTF-8, checked as it arrives.
        if m.opcode == TEXT and not m.utf8.feed(data, f.fin):
            raise Fail(1007, "invalid UTF-8")
        m.parts.append(data)
        if f.fin:
            joined = b"".join(m.parts)
            self.outcome.messages.append(
                ("text", joined.decode()) if m.opcode == TEXT else ("binary", joined)
            )
            self.message = None

    def _inflate(self, payload: bytes, fin: bool, remaining: Optional[int]) -> bytes:
        # RFC 7692 §7.2.2: append 00 00 ff ff to the message's last frame and inflate.
        data = payload + TAIL if fin else payload
        out = b""
        while True:
            inflater = self._inflater
            if inflater is None:
                inflater = self._inflater = zlib.decompressobj(-max(self.peer_window_bits, 9))
            try:
                if remaining is None:
                    more = inflater.decompress(data)
                else:
                    more = inflater.decompress(data, remaining + 1 - len(out))
            except zlib.error:
                self.inflated = 1002
                self.after_end = self.websockets_stream_ended
                raise Fail(1002, "corrupt deflate data") from None
            out += more
            if more and self.websockets_stream_ended:
                self.after_end = True
            if remaining is not None and len(out) > remaining:
                self.inflated = 1009
                raise Fail(1009, "message inflates over max_size")
            if not inflater.eof:
                break
            # RFC 7692 §7.2.3.3: a DEFLATE block with BFINAL set ends the
            # stream; what follows (at least the appended empty block) and
            # the next message are inflated afresh.
            self._inflater = None
            self.websockets_stream_ended = True
            data = inflater.unused_data
            if not data:
                break
        if fin and self.peer_no_context_takeover:
            # RFC 7692 §7.1.1: the peer starts each message with an empty window.
            self._inflater = None
            self.websockets_stream_ended = False  # websockets makes a new one too
        self.inflated = 0
        return out

    def _close(self, payload: bytes) -> None:
        # §5.5.1: no body, or a 2-byte code then UTF-8; §7.4: only some codes.
        if len(payload) == 1:
            raise Fail(1002, "1-byte close payload")
        code = 1005
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not valid_close_code(code):
                raise Fail(1002, "invalid close code")
            if not Utf8().feed(payload[2:], True):
                raise Fail(1007, "invalid UTF-8 in the close reason")
        self.outcome.close_received = code
        # §5.5.1: answer a close frame with one (echoing the code), unless
        # one was sent already; a message left unfinished is dropped.
        if not self.close_sent:
            self.outcome.sent.append(("close", code))
            self.close_sent = True
        self.processing = False
        self.message = None

    def _fail(self, code: int) -> None:
        # §7.1.7: send a close frame (if none was sent yet), then stop.
        self.outcome.failure = code
        if not self.close_sent:
            self.outcome.sent.append(("close", code))
            self.close_sent = True
        self.processing = False

    # -- websockets

    def _websockets_inflates(self, f: Frame, size: Optional[int], inflater: Any) -> int:
        """How websockets' inflation of this frame ends: 0 (accepted), 1002 or 1009.

        It asks zlib for at most the message's remaining budget (0 meaning no
        limit to zlib) and refuses the frame only if zlib left input
        unconsumed; zlib may have consumed all of it and still hold output (the
        rest of a long match, or bits not decoded yet, errors included)."""
        budget = None if self.max_size is None else self.max_size - (size or 0)
        if inflater is None:
            inflater = zlib.decompressobj(-self.peer_window_bits)
        data = f.payload + TAIL if f.fin and len(f.payload) < 2044 else f.payload
        try:
            inflater.decompress(data, budget or 0)
            if inflater.unconsumed_tail:
                return 1009
            if f.fin and len(f.payload) >= 2044 and inflater.decompress(TAIL, 1):
                return 1009
        except zlib.error:
            return 1002
        return 0

    def _websockets_difference(
        self, f: Frame, size: Optional[int], verdict: Optional[int]
    ) -> Optional[str]:
        """The known difference websockets shows at this frame, if any (see KNOWN_DIFFERENCES).

        ``size`` is that of the message in progress before the frame (None:
        none), ``verdict`` the model's failure code at this frame (None: none)."""
        n = len(f.payload)
        # websockets checks the opcode, then the masking, from the first two
        # bytes, as the model does: no difference there.
        if f.opcode in RESERVED_OPCODES or f.masked is not self.is_server:
            return None
        if f.length == "msb":
            return "msb-length"
        # Then it reads the length and compares it with its limit: the
        # message's remaining budget inside a fragmented message.
        budget = self.max_size
        if budget is not None and size is not None:
            budget -= size
        if budget is not None and n > budget and verdict != 1009:
            bits_or_control = (
                f.rsv2
                or f.rsv3
                or (f.rsv1 and (not self.deflate or f.opcode >= 8 or f.opcode == CONT))
                or (f.opcode >= 8 and (not f.fin or n > 125))
                or f.length != "minimal"
            )
            return "length-checked-first" if bits_or_control else "wire-budget"
        if f.length == "wide" and verdict == 1002:
            return "nonminimal-length"
        if f.opcode == CLOSE and len(f.payload) >= 2 and f.fin and not f.rsv1:
            code = int.from_bytes(f.payload[:2], "big")
            bad_reason = not Utf8().feed(f.payload[2:], True)
            if bad_reason and not valid_close_code(code) and verdict == 1002:
                return "close-reason-checked-first"
        if f.opcode == CLOSE and size is not None and verdict is None:
            return "close-inside-fragmented-message"
        return None


# --------------------------------------------------------------------------
# Known differences: where websockets reads the RFC otherwise


@dataclasses.dataclass(frozen=True)
class KnownDifference:
    key: str
    rfc: str
    wsframe: str
    websockets: str
    #: What websockets does at that frame: fail with this close code, or
    #: None (it goes on; it is not compared beyond that frame).
    websockets_fails: Optional[int]
    #: Whether the adapter feeds websockets that frame (and checks what it
    #: does with it) or stops right before it.
    fed: bool = True


KNOWN_DIFFERENCES = {
    kd.key: kd
    for kd in [
        KnownDifference(
            "close-inside-fragmented-message",
            "RFC 6455 §5.4 (control frames may be injected in a fragmented message), §5.5.1",
            "answers the close frame (echoing its code) and drops the unfinished message",
            "fails the connection with 1002 (incomplete fragmented message)",
            1002,
        ),
        KnownDifference(
            "wire-budget",
            "RFC 6455 §5.4, §5.5, §10.4; RFC 7692 §8.1 (limits are implementation-defined)",
            "limits each frame's payload to max_message_size and the message's inflated size "
            "to max_message_size; control frames are not part of the message",
            "limits every frame read inside a fragmented message (control frames and "
            "compressed bytes included) to what is left of the message's budget: 1009",
            1009,
        ),
        KnownDifference(
            "length-checked-first",
            "RFC 6455 §5.2, §5.5 (no order between violations of one frame)",
            "a frame with bad RSV bits or a bad control frame is refused with 1002 from its "
            "first two bytes, before its length is compared with the limit",
            "compares the length with its limit first: 1009",
            1009,
        ),
        KnownDifference(
            "close-reason-checked-first",
            "RFC 6455 §5.5.1, §7.4 (no order between the two violations)",
            "a close frame with an invalid code and a reason that is not UTF-8: 1002 "
            "(the code is checked first)",
            "decodes the reason first: 1007",
            1007,
        ),
        KnownDifference(
            "nonminimal-length",
            "RFC 6455 §5.2 (the minimal number of bytes MUST be used to encode the length)",
            "fails the connection with 1002",
            "accepts the frame",
            None,
        ),
        KnownDifference(
            "msb-length",
            "RFC 6455 §5.2 (the most significant bit of a 64-bit length MUST be 0)",
            "fails the connection with 1002",
            "treats it as a length: over max_size, 1009 (without a limit it waits for the payload)",
            1009,
        ),
        KnownDifference(
            "data-after-bfinal",
            "RFC 7692 §7.2.3.3 (a message may end with a DEFLATE block with BFINAL set), §7.2.2",
            "inflates what follows the end of a DEFLATE stream afresh: the rest of the message, "
            "and the next messages under context takeover",
            "keeps the ended decompressor, which ignores everything until it is replaced (a new "
            "message under no_context_takeover): messages are delivered empty or cut short and "
            "corrupt data goes unnoticed (a websockets defect: data is lost silently)",
            None,
            fed=False,
        ),
        KnownDifference(
            "inflate-stops-at-budget",
            "RFC 7692 §8.1 (limits on the inflated size); RFC 6455 §10.4",
            "inflates up to one byte past the message's remaining budget: more is 1009, corrupt "
            "data found before that is 1002",
            "asks zlib for the remaining budget exactly and only checks for unconsumed input: "
            "output still held in zlib (or an error in bits read but not decoded) goes unnoticed, "
            "the frame is accepted (a websockets defect), or 1009 where the data is corrupt",
            None,
            fed=False,
        ),
        KnownDifference(
            "truncated-frame",
            "RFC 6455 §8.1 (fail as soon as the text is not UTF-8); harness rule",
            "checks the UTF-8 of a text frame as it arrives and fails before it is complete",
            "reports whole frames only: the adapter never sees a frame cut short",
            None,
            fed=False,
        ),
    ]
}


# --------------------------------------------------------------------------
# One sequence: the setup, then the steps


@dataclasses.dataclass
class Setup:
    role: str  # the side of wsframe under test: "server" or "client"
    max_size: Optional[int]
    fragments: bool  # wsframe: messages as TextFragment/BinaryFragment events
    on_message: bool  # wsframe: whole messages to the on_message callback
    chunking: str  # how wsframe gets the bytes: "frame", "all", "random", "bytes"
    early: bool  # wsframe: frames in the same read as the request / the 101
    offer: Optional[dict[str, Any]]  # the client's permessage-deflate offer (None: no offer)
    server_deflate: Optional[dict[str, Any]]  # server role: the server's settings (None: off)
    response: Optional[list[tuple[str, Optional[str]]]]  # client role: what the server answers

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items())


@dataclasses.dataclass
class Step:
    label: str
    frame: Optional[Frame] = None  # None: the side under test calls close(code)
    wire: bytes = b""
    close_code: Optional[int] = None
    truncated: bool = False
    difference: Optional[str] = None  # a known difference of websockets at this step
    before: Optional[Outcome] = None  # the model's outcome before this step (if difference)


@dataclasses.dataclass
class Agreement:
    """The permessage-deflate agreement, as (no context takeover, window bits) per side."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int
    client_max_window_bits: int


def agreement_from_params(params: list[tuple[str, Optional[str]]]) -> Agreement:
    d = dict(params)
    smwb, cmwb = d.get("server_max_window_bits"), d.get("client_max_window_bits")
    return Agreement(
        "server_no_context_takeover" in d,
        "client_no_context_takeover" in d,
        int(smwb) if smwb else 15,
        int(cmwb) if cmwb else 15,
    )


def offer_params(offer: dict[str, Any]) -> list[tuple[str, Optional[str]]]:
    params: list[tuple[str, Optional[str]]] = []
    if offer["server_no_context_takeover"]:
        params.append(("server_no_context_takeover", None))
    if offer["client_no_context_takeover"]:
        params.append(("client_no_context_takeover", None))
    if offer["server_max_window_bits"] is not None:
        params.append(("server_max_window_bits", str(offer["server_max_window_bits"])))
    cmwb = offer["client_max_window_bits"]
    if cmwb is True:
        params.append(("client_max_window_bits", None))
    elif cmwb is not None:
        params.append(("client_max_window_bits", str(cmwb)))
    return params


def request_bytes(setup: Setup) -> bytes:
    lines = [
        "GET /chat HTTP/1.1",
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {REQUEST_KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if setup.offer is not None:
        ext = format_extensions([("permessage-deflate", offer_params(setup.offer))])
        lines.append(f"Sec-WebSocket-Extensions: {ext}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response_bytes(setup: Setup, key: str) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if setup.response is not None:
        ext = format_extensions([("permessage-deflate", setup.response)])
        lines.append(f"Sec-WebSocket-Extensions: {ext}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


MAX_SIZES = [None, 0, 1, 10, 125, 126, 200, 1000, 1 << 16, 70000]


def generate_setup(c: Choices) -> Setup:
    role = c.pick(["server", "client"])
    max_size = c.pick(MAX_SIZES)
    offer: Optional[dict[str, Any]] = None
    server_deflate: Optional[dict[str, Any]] = None
    response: Optional[list[tuple[str, Optional[str]]]] = None
    if c.chance(0.7):
        offer = {
            "server_no_context_takeover": c.chance(0.3),
            "client_no_context_takeover": c.chance(0.3),
            "server_max_window_bits": c.pick([None, None, SMALLEST_WINDOW_BITS, 9, 10, 12, 15]),
            # websockets' client cannot offer 8 (zlib cannot compress with it).
            "client_max_window_bits": c.pick(
                [None, True, True, 9, 11, 15] + ([SMALLEST_WINDOW_BITS] if role == "server" else [])
            ),
        }
    if role == "server":
        if c.chance(0.85):
            server_deflate = {
                "server_no_context_takeover": c.chance(0.3),
                "client_no_context_takeover": c.chance(0.3),
                "server_max_window_bits": c.pick([None, None, 9, 12, 15]),
                # wsframe's server settings take 9-15 (websockets' also 8).
                "client_max_window_bits": c.pick([None, None, 9, 12, 15]),
            }
    elif offer is not None and c.chance(0.9):
        response = server_response(c, offer)
    return Setup(
        role=role,
        max_size=max_size,
        fragments=c.chance(0.25),
        on_message=c.chance(0.5),
        chunking=c.pick(["frame", "all", "random", "random", "bytes"]),
        early=c.chance(0.2),
        offer=offer,
        server_deflate=server_deflate,
        response=response,
    )


def server_response(c: Choices, offer: dict[str, Any]) -> list[tuple[str, Optional[str]]]:
    """What a server may answer to ``offer`` (RFC 7692 §7.1), now and then what it may not."""
    params: list[tuple[str, Optional[str]]] = []
    # §7.1.1.1: the server must accept server_no_context_takeover if offered,
    # and may add it anyway; §7.1.1.2: it may always add client_no_context_takeover.
    if offer["server_no_context_takeover"] or c.chance(0.2):
        params.append(("server_no_context_takeover", None))
    if c.chance(0.3):
        params.append(("client_no_context_takeover", None))
    # §7.1.2.1: server_max_window_bits at most what was offered; may be added.
    smwb = offer["server_max_window_bits"]
    if smwb is not None:
        params.append(("server_max_window_bits", str(c.integer(SMALLEST_WINDOW_BITS, smwb))))
    elif c.chance(0.3):
        params.append(("server_max_window_bits", str(c.integer(SMALLEST_WINDOW_BITS, 15))))
    # §7.1.2.2: client_max_window_bits only if offered, at most the value offered.
    cmwb = offer["client_max_window_bits"]
    if cmwb is not None and c.chance(0.5):
        # 8: both clients refuse (zlib cannot compress with a 256-byte window).
        hi = 15 if cmwb is True else cmwb
        params.append(("client_max_window_bits", str(c.integer(SMALLEST_WINDOW_BITS, hi))))
    if c.chance(0.05):
        # Invalid answers, refused by both clients (§7.1.2.2, §7.1.1.1, §7).
        bad = c.integer(0, 3)
        if bad == 0 and cmwb is None:
            params.append(("client_max_window_bits", "10"))
        elif bad == 1 and smwb is not None and smwb < 15:
            params = [p for p in params if p[0] != "server_max_window_bits"]
            params.append(("server_max_window_bits", str(smwb + 1)))
        elif bad == 2 and offer["server_no_context_takeover"]:
            params = [p for p in params if p[0] != "server_no_context_takeover"]
        else:
            params.append(("x_unknown", None))
    return params


# --------------------------------------------------------------------------
# The generator: the peer's frames, chosen with the model's help

TEXT_POOLS = ["hello world 0123 ", "é ü ß ñ ", "€ 中文 ह ", "😀 🚀 𝄞 "]
# Bytes that make text invalid (RFC 3629): stray and impossible bytes,
# overlong forms, surrogates, code points over U+10FFFF, cut sequences.
INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xbf",
    b"\xc0\xaf",
    b"\xc1\xbf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf0\x80\x80\xaf",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xc2",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
]
CLOSE_CODES_OK = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 4999]
CLOSE_CODES_BAD = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]


class PeerDeflate:
    """The peer's compressor (RFC 7692 §7.2.1) within what was agreed."""

    def __init__(self, c: Choices, bits: int, no_context_takeover: bool) -> None:
        self.c = c
        self.bits = bits
        self.no_context_takeover = no_context_takeover
        self._compressor: Optional[Any] = None

    def _make(self) -> Any:
        if self.bits == 8 or self.c.chance(0.1):
            # No back-references at all: valid for any window, 8 bits included
            # (zlib cannot compress with a 256-byte window).
            return zlib.compressobj(self.c.pick([0, 6]), zlib.DEFLATED, -9, 8, zlib.Z_HUFFMAN_ONLY)
        # A sender may use a smaller window than agreed (RFC 7692 §7.1.2).
        bits = self.c.integer(9, self.bits) if self.c.chance(0.2) else self.bits
        return zlib.compressobj(self.c.pick([1, 6, 9]), zlib.DEFLATED, -bits)

    def message(self, data: bytes, pieces: int) -> list[bytes]:
        """The payloads of ``pieces`` frames carrying ``data`` compressed."""
        c = self.c
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = self._make()
        style = c.pick(["stream", "stream", "per-fragment", "bfinal"])
        if style == "per-fragment":
            # Each fragment flushed on its own (as wsframe's compress_fragment does).
            payloads = []
            for index, part in enumerate(split(c, data, pieces)):
                out = compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH)
                payloads.append(out[:-4] if index == pieces - 1 else out)
        else:
            if style == "bfinal":
                # §7.2.3.3: end with a DEFLATE block with BFINAL set, then an
                # empty stored block whose last 4 bytes are removed: "00".
                out = compressor.compress(data) + compressor.flush(zlib.Z_FINISH) + b"\x00"
                self._compressor = None  # the stream is over
            else:
                out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
                assert out.endswith(TAIL)
                out = out[:-4]
            payloads = split(c, out, pieces)
        # §7.1.1: with no_context_takeover the next message starts afresh (a
        # sender may also do that when it was not asked to).
        if self.no_context_takeover or c.chance(0.1):
            self._compressor = None
        return payloads


def split(c: Choices, data: bytes, pieces: int) -> list[bytes]:
    """``data`` cut in ``pieces`` parts at random points (empty parts included)."""
    cuts = sorted(c.integer(0, len(data)) for _ in range(pieces - 1))
    bounds = [0, *cuts, len(data)]
    return [data[bounds[i] : bounds[i + 1]] for i in range(pieces)]


class Generator:
    """Builds the peer's frames step by step, each fed to the model at once.

    The model's state (a message in progress, its size, whether frames are
    still processed) steers the choices, so that boundaries are hit: sizes
    around ``max_size``, continuations with and without a message, frames
    after a close. Every branch names the rule it exercises.
    """

    def __init__(self, c: Choices, setup: Setup, agreement: Optional[Agreement]) -> None:
        self.c = c
        self.setup = setup
        self.is_server = setup.role == "server"  # the side under test
        peer_bits, peer_nct = 15, False
        if agreement is not None:
            if self.is_server:  # the peer is the client
                peer_bits = agreement.client_max_window_bits
                peer_nct = agreement.client_no_context_takeover
            else:
                peer_bits = agreement.server_max_window_bits
                peer_nct = agreement.server_no_context_takeover
        self.deflate = PeerDeflate(c, peer_bits, peer_nct) if agreement is not None else None
        self.model = Receiver(
            self.is_server, setup.max_size, agreement is not None, peer_nct, peer_bits
        )
        self.key = c.bytes(4)
        self.steps: list[Step] = []
        self.done = False
        #: How often the peer breaks a rule: some sequences are long and valid.
        self.hostility = c.pick([0.0, 0.02, 0.08, 0.25])

    # -- emitting

    def emit(self, label: str, frame: Frame) -> None:
        if self.done:
            return
        frame.masked = frame.masked is self.is_server  # flipped for "wrong masking"
        wire, _ = encode(frame, self.key)
        if not self.model.processing:
            label = f"after close: {label}"
        before = self.model.outcome.copy()
        difference = self.model.receive(frame)
        self.steps.append(
            Step(label, frame, wire, difference=difference, before=before if difference else None)
        )
        if frame.length == "msb":
            self.done = True  # what follows would be read as its payload

    def local_close(self) -> None:
        if self.done:
            return
        # RFC 6455 §7.1.2: the side under test starts the closing handshake.
        code = self.c.pick([1000, 1001, 3000, 4999, None])
        self.model.local_close(code)
        self.steps.append(Step("local close", close_code=code))

    def truncated(self, label: str, frame: Frame) -> None:
        """The last frame, cut short: the stream ends inside its payload."""
        if self.done or not frame.payload:
            return
        frame.masked = frame.masked is self.is_server
        wire, header = encode(frame, self.key)
        received = self.c.integer(0, len(frame.payload) - 1)
        before = self.model.outcome.copy()
        self.model.receive_partial(frame, received)
        self.steps.append(
            Step(
                f"truncated {label}",
                frame,
                wire[: header + received],
                truncated=True,
                difference="truncated-frame",
                before=before,
            )
        )
        self.done = True

    # -- content

    def size(self) -> int:
        """A payload size, often right around the limit (RFC 6455 §10.4)."""
        c, limit = self.c, self.setup.max_size
        if limit is not None and c.chance(0.25):
            budget = limit
            if self.model.message is not None and c.chance(0.6):
                budget -= self.model.message.size
            return max(0, budget + c.integer(-2, 2))
        if c.chance(0.02):
            return c.integer(65530, 70010)  # the 64-bit length form
        return int(c.pick([0, 1, c.integer(2, 40), c.integer(2, 300), c.integer(120, 130)]))

    def text(self, size: int) -> bytes:
        """About ``size`` bytes of valid UTF-8 (1- to 4-byte characters)."""
        if size <= 0:
            return b""
        pool = self.c.pick(TEXT_POOLS)
        data = "".join(pool[b % len(pool)] for b in self.c.bytes(min(size, 64))).encode()
        data = (data * (size // len(data) + 1))[:size]  # long texts repeat a random start
        # The cut may leave a partial character at the end: trim it.
        while data and not Utf8().feed(data, True):
            data = data[:-1]
        return data

    def binary(self, size: int) -> bytes:
        c = self.c
        if c.chance(0.5):
            return bytes([c.integer(0, 255)]) * size  # compresses well
        return c.bytes(size)

    # -- branches

    def generate(self, length: int) -> list[Step]:
        c = self.c
        while not self.done and len(self.steps) < length:
            if not self.model.processing:
                # RFC 6455 §1.4 / §7.1.7: after a close frame or a failure,
                # whatever arrives is discarded.
                for _ in range(c.integer(0, 2)):
                    self.anything()
                break
            if c.chance(self.hostility):
                if c.chance(0.9):
                    self.violation()
                else:
                    self.truncated_frame()
                continue
            branch = c.integer(0, 99)
            if branch < 60:
                self.message()
            elif branch < 78:
                self.ping()
            elif branch < 84:
                self.emit("pong", Frame(PONG, self.binary(c.integer(0, 125))))
            elif branch < 92:
                self.close()
            else:
                self.local_close()
        return self.steps

    def anything(self) -> None:
        c = self.c
        pick = c.integer(0, 4)
        if pick == 0:
            self.message()
        elif pick == 1:
            self.ping()
        elif pick == 2:
            self.close()
        elif pick == 3:
            self.violation()
        else:
            self.local_close()

    def ping(self) -> None:
        # RFC 6455 §5.5.2: a ping is answered by a pong with its payload;
        # §5.5: at most 125 bytes (126 and more: 1002).
        c = self.c
        n = c.integer(0, 125) if c.chance(0.95) else c.integer(126, 130)
        self.emit("ping" if n <= 125 else "ping over 125 bytes", Frame(PING, self.binary(n)))

    def close(self) -> None:
        # RFC 6455 §5.5.1 / §7.4: a close frame's body is empty, or a valid
        # code and UTF-8 reason (at most 123 bytes).
        c = self.c
        kind = c.integer(0, 9)
        if kind == 0:
            self.emit("close without code", Frame(CLOSE, b""))
        elif kind == 1:
            self.emit("close with 1-byte body", Frame(CLOSE, c.bytes(1)))
        elif kind == 2:
            code = c.pick(CLOSE_CODES_BAD)
            self.emit("close with invalid code", Frame(CLOSE, code.to_bytes(2, "big")))
        elif kind == 3:
            reason = self.text(c.integer(0, 20))
            bad = c.pick(INVALID_UTF8)
            at = c.integer(0, len(reason))
            payload = c.pick(CLOSE_CODES_OK + CLOSE_CODES_BAD).to_bytes(2, "big")
            payload += (reason[:at] + bad + reason[at:])[:123]
            self.emit("close with invalid UTF-8 reason", Frame(CLOSE, payload))
        else:
            code = c.pick(CLOSE_CODES_OK)
            reason = self.text(c.pick([0, 5, 123]))
            self.emit("close", Frame(CLOSE, code.to_bytes(2, "big") + reason))

    def message(self) -> None:
        """A data message (RFC 6455 §5.6), maybe fragmented (§5.4), maybe compressed (RFC 7692)."""
        c = self.c
        opcode = c.pick([TEXT, BINARY])
        size = self.size()
        data = self.text(size) if opcode == TEXT else self.binary(size)
        label = "text" if opcode == TEXT else "binary"
        if opcode == TEXT and c.chance(self.hostility):
            # §8.1: invalid UTF-8 somewhere, maybe split across fragments.
            bad = c.pick(INVALID_UTF8)
            at = c.integer(0, len(data))
            data = data[:at] + bad + data[at:]
            label = "text with invalid UTF-8"
        pieces = 1 if c.chance(0.5) else c.integer(2, 5)
        # A message started inside another one is a violation (§5.4); it is
        # sent uncompressed so that only the sequence is wrong.
        compressed = self.deflate is not None and self.model.message is None and c.chance(0.7)
        if compressed:
            assert self.deflate is not None
            payloads = self.deflate.message(data, pieces)
            label = f"compressed {label}"
        else:
            payloads = split(c, data, pieces)
        if pieces > 1:
            label = f"fragmented {label}"
        for index, payload in enumerate(payloads):
            last = index == pieces - 1
            rsv1 = compressed and index == 0
            name = label if index == 0 else f"continuation of {label}"
            if index and c.chance(self.hostility / 10):
                # RFC 7692 §6.1: RSV1 only on a message's first frame.
                self.emit(f"{name} with RSV1", Frame(CONT, payload, last, rsv1=True))
            elif index and c.chance(self.hostility / 10) and not self.done:
                self.truncated(name, Frame(CONT, payload, last))
            else:
                self.emit(name, Frame(opcode if index == 0 else CONT, payload, last, rsv1))
            if last or self.done:
                break
            # §5.4: control frames may come between the fragments.
            while c.chance(0.25):
                self.between_fragments()
            if c.chance(0.04):
                return  # the message is abandoned: what follows decides

    def between_fragments(self) -> None:
        c = self.c
        pick = c.integer(0, 9)
        if pick < 4:
            self.ping()
        elif pick < 5:
            self.emit("pong", Frame(PONG, self.binary(c.integer(0, 20))))
        elif pick < 7:
            self.close()
        elif pick < 8:
            self.local_close()
        elif pick < 9 and c.chance(self.hostility * 4):
            # §5.4: a new message may not start before this one ends.
            self.emit("new message inside a fragmented one", Frame(c.pick([TEXT, BINARY]), b"x"))
        elif c.chance(self.hostility * 4):
            self.violation()

    def violation(self) -> None:
        """A frame that breaks one rule of RFC 6455 §5 (or RFC 7692 §6)."""
        c = self.c
        kind = c.integer(0, 11)
        n = c.integer(0, 10)
        if kind == 0:
            # §5.4: a continuation frame needs a message to continue (inside
            # one, random bytes: corrupt if the message is compressed).
            label = "continuation without message"
            if self.model.message is not None:
                label = "continuation with random bytes"
            self.emit(label, Frame(CONT, self.binary(n), c.chance(0.5)))
        elif kind == 1:
            # §5.2: unknown opcodes fail the connection.
            self.emit("reserved opcode", Frame(c.pick(RESERVED_OPCODES), self.binary(n)))
        elif kind == 2:
            # §5.2: RSV2/RSV3 are not defined by any extension here.
            frame = Frame(c.pick([TEXT, BINARY, PING]), self.text(n))
            if c.chance(0.5):
                frame.rsv2 = True
            else:
                frame.rsv3 = True
            self.emit("RSV2/RSV3 set", frame)
        elif kind == 3:
            # §5.2 / RFC 7692 §6.1: RSV1 without deflate, or on a control frame.
            self.emit("RSV1 set", Frame(c.pick([TEXT, BINARY, PING, PONG]), b"", rsv1=True))
        elif kind == 4:
            # §5.5: control frames are never fragmented.
            self.emit("fragmented control frame", Frame(c.pick([PING, PONG]), b"", fin=False))
        elif kind == 5:
            # §5.5: a control frame carries at most 125 bytes.
            self.emit("control frame over 125 bytes", Frame(PONG, self.binary(c.integer(126, 200))))
        elif kind == 6:
            # §5.1: frames from a client are masked, frames from a server are not.
            self.emit("wrong masking", Frame(c.pick([TEXT, BINARY, PING]), b"hi", masked=False))
        elif kind == 7:
            # §5.2: the length in the minimal number of bytes.
            if self.model.message is None:
                frame = Frame(c.pick([BINARY, PING]), self.binary(c.integer(0, 125)), length="wide")
                self.emit("non-minimal length", frame)
        elif kind == 8:
            # §5.2: the most significant bit of a 64-bit length is 0.
            self.emit("64-bit length with MSB set", Frame(BINARY, b"abc", length="msb"))
        elif kind == 9 and self.deflate is not None and self.model.message is None:
            # RFC 7692 §7.2.2 (and §8): data that does not inflate fails the
            # connection. A message starts at a block boundary, so a first
            # byte with BTYPE=11 (reserved) is refused at once.
            first = c.pick([0x06, 0x07, 0xFE, 0xFF])
            frame = Frame(c.pick([TEXT, BINARY]), bytes([first]) + c.bytes(n), rsv1=True)
            self.emit("corrupt deflate data", frame)
        elif kind == 10:
            # §5.2: an uncompressed frame with RSV1 on a continuation.
            self.emit("RSV1 on a continuation", Frame(CONT, b"", rsv1=True))
        else:
            # §5.6: a text message must be UTF-8.
            data = self.text(n) + c.pick(INVALID_UTF8)
            self.emit("text with invalid UTF-8", Frame(TEXT, data))

    def truncated_frame(self) -> None:
        # The stream ends inside a frame: nothing of it is delivered, but
        # its header and text already count (RFC 6455 §5.2, §8.1).
        c = self.c
        if c.chance(0.6):
            n = max(self.size(), 1)
            data = self.text(n) + (c.pick(INVALID_UTF8) if c.chance(0.5) else b"")
            self.truncated("text", Frame(TEXT, data + self.text(c.integer(1, 5))))
        else:
            self.truncated("ping", Frame(PING, self.binary(c.integer(1, 125))))


# --------------------------------------------------------------------------
# wsframe


class WsframeSide:
    """wsframe's connection, driven through its public boundary only."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.messages: list[Message] = []
        self.out = bytearray()
        self._fragment: Optional[tuple[str, list[Any]]] = None

    def _options(self) -> dict[str, Any]:
        setup = self.setup
        options: dict[str, Any] = {
            "max_message_size": setup.max_size,
            "max_ping_rate": None,  # websockets has no such limit
            "fragments": setup.fragments,
        }
        # Server: the keyword arguments of negotiate_deflate; client: those of
        # deflate_offer. The same names as websockets' extension factories.
        deflate = setup.server_deflate if setup.role == "server" else setup.offer
        options["compression"] = "deflate" if deflate is not None else None
        if deflate is not None:
            options["deflate_options"] = dict(deflate)
        return options

    def open(self, early: bytes) -> tuple[Any, Optional[Agreement], bool]:
        """Open the connection; return it, the deflate agreement and whether it opened."""
        setup = self.setup
        conn: Any
        if setup.role == "server":
            conn = ServerConnection(**self._options())
            self._hook(conn)
            conn.receive_data(request_bytes(setup) + early)
            events = conn.events()
            assert len(events) == 1 and isinstance(events[0], Request), events
            conn.accept()
            head, _, rest = conn.data_to_send().partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            self.out += rest
            opened = True
            events = conn.events()
        else:
            conn = ClientConnection(URI, **self._options())
            self._hook(conn)
            request = conn.data_to_send()
            match = re.search(rb"Sec-WebSocket-Key: ([^\r]+)\r\n", request)
            assert match is not None
            conn.receive_data(response_bytes(setup, match.group(1).decode()) + early)
            events = conn.events()
            assert events and isinstance(events[0], (Accepted, Rejected)), events
            opened = isinstance(events[0], Accepted)
            events = events[1:]
        self._take(events)
        if not opened:
            return conn, None, False
        deflate = conn.deflate
        if deflate is None:
            return conn, None, True
        local = (deflate.local_no_context_takeover, deflate.local_max_window_bits)
        remote = (deflate.remote_no_context_takeover, deflate.remote_max_window_bits)
        server, client = (local, remote) if setup.role == "server" else (remote, local)
        return conn, Agreement(server[0], client[0], server[1], client[1]), True

    def _hook(self, conn: Any) -> None:
        if self.setup.on_message:

            def on_message(message: Union[str, bytes]) -> None:
                kind = "text" if isinstance(message, str) else "binary"
                self.messages.append((kind, message))

            conn.on_message = on_message

    def _take(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, TextMessage):
                self.messages.append(("text", event.data))
            elif isinstance(event, BinaryMessage):
                self.messages.append(("binary", event.data))
            elif isinstance(event, (TextFragment, BinaryFragment)):
                kind = "text" if isinstance(event, TextFragment) else "binary"
                if self._fragment is None:
                    self._fragment = (kind, [])
                assert self._fragment[0] == kind, "fragments of two kinds"
                self._fragment[1].append(event.data)
                if event.final:
                    parts = self._fragment[1]
                    joined: Union[str, bytes] = (
                        "".join(parts) if kind == "text" else b"".join(parts)
                    )
                    self.messages.append((kind, joined))
                    self._fragment = None

    def collect(self, conn: Any) -> None:
        self._take(conn.events())
        self.out += conn.data_to_send()

    def run(self, c: Choices, steps: list[Step]) -> tuple[Outcome, Optional[Agreement], bool]:
        setup = self.setup
        # The frames' bytes, in reads; the local closes happen between them.
        segments: list[Union[list[bytes], Step]] = [[]]
        for step in steps:
            if step.frame is None:
                segments += [step, []]
            else:
                last = segments[-1]
                assert isinstance(last, list)
                last.append(step.wire)
        early = b""
        first = segments[0]
        assert isinstance(first, list)
        if setup.early and first:
            # Frames sent right behind the request (kept until accept()) or
            # in the same read as the 101 response.
            data = b"".join(first)
            cut = c.integer(0, min(len(data), 4096))
            early = data[:cut]
            segments[0] = [data[cut:]]
        conn, agreement, opened = self.open(early)
        if not opened:
            return Outcome(), None, False
        self.collect(conn)
        for segment in segments:
            if isinstance(segment, Step):
                conn.close(segment.close_code)
                self.collect(conn)
                continue
            for chunk in self._chunks(c, segment):
                if c.chance(0.1):
                    # A driver reading into a reused buffer passes it with the count.
                    buffer = bytearray(chunk) + bytearray(c.integer(1, 8))
                    conn.receive_data(buffer, len(chunk))
                else:
                    conn.receive_data(chunk)
                self.collect(conn)
        failure = None
        if conn.error is not None:
            assert isinstance(conn.error, ProtocolError), repr(conn.error)
            failure = conn.error.close_code
            assert conn.close_transport, "failed but the transport stays open"
        received = None
        if conn.close_received is not None:
            code = conn.close_received[0]
            received = 1005 if code is None else code
        sent = parse_sent(bytes(self.out), masked=setup.role == "client")
        self._check_state(conn, received, failure, sent)
        return Outcome(self.messages, sent, received, failure), agreement, True

    def _check_state(
        self, conn: Any, received: Optional[int], failure: Optional[int], sent: list[Sent]
    ) -> None:
        """What the connection reports agrees with what it did."""
        closes = [code for kind, code in sent if kind == "close"]
        assert len(closes) <= 1, f"sent {len(closes)} close frames"
        assert (conn.close_sent is not None) == bool(closes), "close_sent"
        assert conn.was_clean == (bool(closes) and received is not None), "was_clean"
        if received is not None:
            assert conn.state is State.CLOSED and conn.close_code == received, "closed"
            # RFC 6455 §7.1.1: the server closes the TCP connection first.
            assert conn.close_transport == (self.setup.role == "server" or failure is not None)
        elif failure is not None:
            assert conn.state is State.CLOSING and conn.close_code == 1006, "failed"
        else:
            assert conn.state is (State.CLOSING if closes else State.OPEN), "open"
            assert not conn.close_transport and conn.close_code is None, "open"

    def _chunks(self, c: Choices, wires: list[bytes]) -> list[bytes]:
        """The reads that bring ``wires`` (the frames between two local closes)."""
        mode = self.setup.chunking
        if mode == "frame":
            return [w for w in wires if w]
        data = b"".join(wires)
        if mode == "all" or not data:
            return [data] if data else []
        if mode == "bytes" and len(data) <= 512:
            return [data[i : i + 1] for i in range(len(data))]
        chunks, pos = [], 0
        top = max(c.pick([3, 16, 200]), len(data) // 64)  # at most about 128 reads
        while pos < len(data):
            n = c.integer(1, top)
            chunks.append(data[pos : pos + n])
            pos += n
        return chunks


# --------------------------------------------------------------------------
# websockets

_QUIET = logging.getLogger("fuzz_state_machine.websockets")
_QUIET.propagate = False
_QUIET.disabled = True


class WebsocketsSide:
    """websockets' sans-I/O protocol, plus what its connection classes do:
    join fragments, decode text (failing with 1007 at the first invalid
    byte), one whole frame at a time."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.messages: list[Message] = []
        self.out = bytearray()
        self.failure: Optional[int] = None  # a failure decided here (UTF-8)
        self._kind: Optional[str] = None
        self._parts: list[bytes] = []
        self._utf8 = Utf8()
        self.proto: Any = None

    def open(self) -> tuple[Optional[Agreement], bool]:
        setup = self.setup
        if setup.role == "server":
            server_extensions = None
            if setup.server_deflate is not None:
                server_extensions = [ServerPerMessageDeflateFactory(**setup.server_deflate)]
            server = ServerProtocol(
                extensions=server_extensions, max_size=setup.max_size, logger=_QUIET
            )
            server.receive_data(request_bytes(setup))
            [request] = server.events_received()
            assert isinstance(request, WsRequest)
            response = server.accept(request)
            server.send_response(response)
            server.data_to_send()
            opened = response.status_code == 101
            self.proto = server
        else:
            client_extensions = None
            if setup.offer is not None:
                client_extensions = [ClientPerMessageDeflateFactory(**setup.offer)]
            client = ClientProtocol(
                parse_uri(URI), extensions=client_extensions, max_size=setup.max_size, logger=_QUIET
            )
            client.send_request(client.connect())
            client.data_to_send()
            client.receive_data(response_bytes(setup, client.key))
            client.events_received()
            client.data_to_send()
            opened = client.state is WsState.OPEN
            self.proto = client
        if not opened:
            return None, False
        if not self.proto.extensions:
            return None, True
        [ext] = self.proto.extensions
        assert isinstance(ext, WsPerMessageDeflate)
        local = (ext.local_no_context_takeover, ext.local_max_window_bits)
        remote = (ext.remote_no_context_takeover, ext.remote_max_window_bits)
        srv, cli = (local, remote) if setup.role == "server" else (remote, local)
        return Agreement(srv[0], cli[0], srv[1], cli[1]), True

    def _take(self) -> None:
        proto = self.proto
        for frame in proto.events_received():
            opcode = frame.opcode
            if opcode is WsOpcode.TEXT or opcode is WsOpcode.BINARY:
                assert self._kind is None
                self._kind = "text" if opcode is WsOpcode.TEXT else "binary"
                self._parts, self._utf8 = [], Utf8()
            elif opcode is not WsOpcode.CONT:
                continue  # control frames: websockets answered them itself
            assert self._kind is not None
            data = bytes(frame.data)
            if self._kind == "text" and not self._utf8.feed(data, frame.fin):
                # What websockets' connections do when decoding fails.
                if self.failure is None and proto.parser_exc is None:
                    self.failure = 1007
                    proto.fail(1007, "invalid UTF-8")
                self._kind = None
                return
            self._parts.append(data)
            if frame.fin:
                joined = b"".join(self._parts)
                self.messages.append(
                    ("text", joined.decode()) if self._kind == "text" else ("binary", joined)
                )
                self._kind = None

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            self.out += chunk  # SEND_EOF is b"": nothing to add

    def run(self, steps: list[Step]) -> tuple[Outcome, Optional[Step]]:
        """Feed the steps; return the outcome, and the step of a known difference
        that stopped it, if any."""
        proto = self.proto
        stop: Optional[Step] = None
        for step in steps:
            difference = KNOWN_DIFFERENCES.get(step.difference or "")
            if difference is not None and not difference.fed:
                stop = step  # not compared from this frame on
                break
            if step.frame is None:
                if proto.state is WsState.OPEN:
                    proto.send_close(step.close_code)
                self._flush()
                continue
            proto.receive_data(step.wire)
            self._take()
            self._flush()
            if step.difference is not None:
                stop = step
                break
        return self.outcome(), stop

    def outcome(self) -> Outcome:
        proto = self.proto
        failure = self.failure
        exc = proto.parser_exc
        if failure is None and exc is not None:
            if isinstance(exc, ws_exc.PayloadTooBig):
                failure = 1009
            elif isinstance(exc, UnicodeDecodeError):
                failure = 1007
            elif isinstance(exc, ws_exc.ProtocolError):
                failure = 1002
            else:
                failure = 1011  # websockets' "internal error": never expected
        received = None
        if proto.close_rcvd is not None:
            received = int(proto.close_rcvd.code)
        sent = parse_sent(bytes(self.out), masked=self.setup.role == "client")
        return Outcome(list(self.messages), sent, received, failure)


def websockets_expected(step: Step, model: Outcome, max_size: Optional[int]) -> Outcome:
    """What websockets must have done, up to a step where it is known to differ."""
    if step.before is None:
        return model
    expected = step.before.copy()
    assert step.difference is not None
    difference = KNOWN_DIFFERENCES[step.difference]
    code = difference.websockets_fails
    if step.difference == "msb-length" and max_size is None:
        code = None  # no limit: it waits for 2**63 bytes
    if code is not None:
        frame = step.frame
        if step.difference == "close-inside-fragmented-message" and frame is not None:
            # websockets records the close frame, then fails.
            expected.close_received = int.from_bytes(frame.payload[:2], "big") or 1005
        expected.failure = code
        if not any(kind == "close" for kind, _ in expected.sent):
            expected.sent.append(("close", code))
    elif step.difference == "nonminimal-length" and step.frame is not None:
        frame = step.frame
        if frame.opcode == PING:
            expected.sent.append(("pong", frame.payload))
        elif frame.opcode == BINARY:
            expected.messages.append(("binary", frame.payload))
    return expected


# --------------------------------------------------------------------------
# Running sequences


@dataclasses.dataclass
class Report:
    sequence: int
    what: str
    setup: Optional[Setup]
    steps: list[Step]
    expected: Optional[Outcome] = None
    wsframe: Optional[Outcome] = None
    websockets: Optional[Outcome] = None
    websockets_expected: Optional[Outcome] = None

    def render(self) -> str:
        lines = [f"sequence {self.sequence}: {self.what}"]
        if self.setup is not None:
            lines.append(f"  setup: {self.setup.describe()}")
        for i, step in enumerate(self.steps):
            extra = f" [websockets: {step.difference}]" if step.difference else ""
            wire = step.wire[:48].hex() + ("…" if len(step.wire) > 48 else "")
            what = (
                f"close({step.close_code})" if step.frame is None else f"{len(step.wire)} B {wire}"
            )
            lines.append(f"  {i:3} {step.label}: {what}{extra}")
        for name in ("expected", "wsframe", "websockets_expected", "websockets"):
            outcome = getattr(self, name)
            if outcome is not None:
                lines.append(f"  {name}: {outcome.short()}")
        return "\n".join(lines)


@dataclasses.dataclass
class Stats:
    sequences: int = 0
    steps: int = 0
    labels: Counter[str] = dataclasses.field(default_factory=Counter)
    differences: Counter[str] = dataclasses.field(default_factory=Counter)
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    reports: list[Report] = dataclasses.field(default_factory=list)
    disagreements: int = 0
    #: PyPy only: compressed sequences where websockets, not wsframe, left
    #: the model (see ON_PYPY).
    websockets_zlib_on_pypy: int = 0


def run_sequence(c: Choices, index: int, stats: Stats) -> Optional[Report]:
    """Generate one sequence, run it on both libraries, compare with the model."""
    setup = generate_setup(c)
    theirs = WebsocketsSide(setup)
    agreement, opened = theirs.open()
    generator = Generator(c, setup, agreement)
    steps = generator.generate(c.pick([1, 3, 6, 12, 25]))
    ours = WsframeSide(setup)
    got, our_agreement, our_opened = ours.run(c, steps)
    stats.sequences += 1
    stats.steps += len(steps)
    for step in steps:
        stats.labels[step.label] += 1
        if step.difference:
            stats.differences[step.difference] += 1
    if (our_opened, our_agreement) != (opened, agreement):
        return Report(
            index,
            f"handshake: wsframe opened={our_opened} {our_agreement}, "
            f"websockets opened={opened} {agreement}",
            setup,
            [],
        )
    if not opened:
        stats.outcomes["handshake refused"] += 1
        return None
    expected = generator.model.outcome
    theirs_got, stop = theirs.run(steps)
    theirs_expected = (
        websockets_expected(stop, expected, setup.max_size) if stop is not None else expected
    )
    stats.outcomes[
        f"failed {expected.failure}"
        if expected.failure
        else "closed"
        if expected.close_received
        else "open"
    ] += 1
    problems = []
    if got != expected:
        problems.append("wsframe differs from the model")
    if theirs_got != theirs_expected:
        if ON_PYPY and agreement is not None and not problems:
            stats.websockets_zlib_on_pypy += 1
        else:
            problems.append("websockets differs from the model")
    if problems:
        return Report(
            index, "; ".join(problems), setup, steps, expected, got, theirs_got, theirs_expected
        )
    return None


def run(
    seed: int,
    sequences: int,
    time_limit: Optional[float],
    replay: Optional[int] = None,
    verbose: bool = False,
    max_reports: int = 20,
) -> Stats:
    stats = Stats()
    start = time.monotonic()
    indices = [replay] if replay is not None else range(sequences)
    for index in indices:
        c = RandomChoices(seed * 1_000_003 + index)
        try:
            report = run_sequence(c, index, stats)
        except Exception as exc:
            report = Report(index, f"crash: {exc!r}", None, [])
            if verbose or replay is not None:
                raise
        if report is not None:
            stats.disagreements += 1
            if len(stats.reports) < max_reports:
                stats.reports.append(report)
                where = f"[{wsframe.implementation}: --seed {seed} --replay {index}]"
                print(where, file=sys.stderr)
                print(report.render(), file=sys.stderr, flush=True)
        if time_limit is not None and time.monotonic() - start > time_limit:
            break
    return stats


def summary(stats: Stats, seconds: float) -> dict[str, Any]:
    return {
        "implementation": wsframe.implementation,
        "sequences": stats.sequences,
        "steps": stats.steps,
        "seconds": round(seconds, 1),
        "disagreements": stats.disagreements,
        "websockets_zlib_on_pypy": stats.websockets_zlib_on_pypy,
        "known_differences": dict(stats.differences.most_common()),
        "outcomes": dict(stats.outcomes.most_common()),
        "labels": dict(stats.labels.most_common()),
    }


def main(argv: Optional[list[str]] = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if any(a.startswith("-") and not a.startswith("--") and a != "-v" for a in args_in):
        return atheris_main()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=None, help="stop after S seconds")
    parser.add_argument(
        "--impl",
        choices=["c", "python", "both"],
        default="both",
        help="wsframe's implementation; both: one process each (default)",
    )
    parser.add_argument("--replay", type=int, default=None, help="run only this sequence")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(args_in)
    if args.impl == "both":
        return run_both(args)
    if wsframe.implementation != args.impl:
        print(
            f"wsframe.implementation is {wsframe.implementation!r}, not {args.impl!r} "
            "(set or unset WSFRAME_NO_EXTENSIONS, build the extension)",
            file=sys.stderr,
        )
        return 2
    start = time.monotonic()
    stats = run(args.seed, args.sequences, args.time_limit, args.replay, args.verbose)
    result = summary(stats, time.monotonic() - start)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['implementation']} (seed {args.seed}): {result['sequences']} sequences "
            f"({result['steps']} steps) in {result['seconds']} s, "
            f"{result['disagreements']} disagreement(s)"
            + (
                f" ({stats.websockets_zlib_on_pypy} where only websockets strays, PyPy's zlib)"
                if ON_PYPY
                else ""
            )
            + "; websockets' known differences met: "
            f"{result['known_differences']}; outcomes: {result['outcomes']}"
        )
        if args.verbose:
            for label, count in stats.labels.most_common():
                print(f"  {count:8} {label}")
    return 1 if stats.disagreements else 0


def run_both(args: argparse.Namespace) -> int:
    """Run the compiled and the pure-Python implementations in two processes at once."""
    rest = ["--sequences", str(args.sequences), "--seed", str(args.seed)]
    if args.time_limit is not None:
        rest += ["--time-limit", str(args.time_limit)]
    if args.replay is not None:
        rest += ["--replay", str(args.replay)]
    rest += ["--json"] * args.json + ["-v"] * args.verbose
    procs = []
    for impl in ("c", "python"):
        env = dict(os.environ)
        env.pop("WSFRAME_NO_EXTENSIONS", None)
        if impl == "python":
            env["WSFRAME_NO_EXTENSIONS"] = "1"
        cmd = [sys.executable, os.path.abspath(__file__), "--impl", impl, *rest]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [proc.wait() for proc in procs]
    return max(codes)


def atheris_main() -> int:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    def test_one_input(data: bytes) -> None:
        c = FuzzedChoices(atheris.FuzzedDataProvider(data))
        report = run_sequence(c, 0, Stats())
        if report is not None:
            raise AssertionError(report.render())

    # Coverage of every Python function already loaded: wsframe's pure
    # parts (and the twins, with WSFRAME_NO_EXTENSIONS=1), websockets, the model.
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
