"""The benchmark rows, and how each column (wsframe or peer) runs each row.

A :class:`Group` is one table (say, "mask in place"); its :class:`Case` objects
are the rows (one payload size each) and its columns name an implementation.
:func:`make_runner` turns a (group, case, column) triple into a runner
``run(n)`` that does the job ``n`` times, after checking once that the result
is right. Input data (payloads, pre-encoded frame streams, key pools) is built
here, before timing, so that it is not part of what is measured.

The same definitions serve ``python -m wsframe bench``, ``bench/bench_codec.py``
(pyperf) and ``bench/test_bench_codec.py`` (pytest-benchmark).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
from collections import deque
from dataclasses import dataclass
from functools import cache, partial
from itertools import cycle, islice, repeat
from typing import Any, Callable, Optional

from .peers import NotAvailable, load, submodule

__all__ = [
    "CHUNK_SIZE",
    "KEY_POOL_SIZE",
    "Case",
    "CheckFailed",
    "Group",
    "NotAvailable",
    "groups",
    "make_runner",
    "size_label",
    "unavailable",
]

Runner = Callable[[int], object]

#: Decode streams are fed to the decoders in chunks of this many bytes.
CHUNK_SIZE = 64 * 1024
#: Number of pre-generated masking keys that wsframe's encoder cycles through.
KEY_POOL_SIZE = 1024

_KEY = b"\x37\xfa\x21\x3d"
_BINARY = 2
_SEED = 6455


class CheckFailed(Exception):
    """An implementation gave a wrong result in the check before timing."""


@dataclass(frozen=True)
class Case:
    """One row of a table: a job at one payload size."""

    group: str
    label: str
    size: int
    #: encode: masked (client side) or not (server side).
    masked: bool = False
    #: utf8: "ascii" or "mixed".
    text: str = ""
    #: decode: the number of frames in the stream one operation decodes.
    frames: int = 1
    #: encode: wsframe sends the header and the payload apart (writelines),
    #: without copying the payload, as picows and aiohttp do for large frames.
    zero_copy: bool = False

    @property
    def key(self) -> str:
        """A stable identifier, e.g. ``mask_inplace/64KiB``."""
        return f"{self.group}/{self.label.replace(' ', '')}"

    @property
    def bytes_per_op(self) -> int:
        """Payload bytes handled by one operation."""
        return self.size * self.frames


@dataclass(frozen=True)
class Group:
    """One table: a job, its rows and its columns."""

    name: str
    title: str
    #: How the table shows a cell: "bytes" (ns/op or GB/s), "frames"
    #: (frames/s), "ns_frame" (ns per frame).
    unit: str
    columns: tuple[str, ...]
    cases: tuple[Case, ...]
    #: Column key -> how that column does the job (shown under the table).
    notes: dict[str, str]


#: Columns that are references (not WebSocket libraries): never "best peer".
REFERENCES = {"copy": "bytes copy", "decode": "bytes.decode"}
WSFRAME = ("wsframe-c", "wsframe-py")

_MASK_SIZES = (2, 16, 125, 1024, 64 * 1024, 1 << 20, 16 << 20)
_MASK_SIZES_QUICK = (16, 1024, 64 * 1024, 1 << 20)
_FRAME_SIZES = (16, 125, 1024, 64 * 1024)
_UTF8_SIZE = 1 << 20


def size_label(n: int) -> str:
    """``2 B``, ``125 B``, ``1 KiB``, ``64 KiB``, ``16 MiB``."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def _stream_frames(size: int, quick: bool) -> int:
    target = (256 if quick else 1024) * 1024
    return max(8 if quick else 16, target // (size + 14))


def groups(quick: bool = False) -> list[Group]:
    """Every table, with quick or full row sets."""
    mask_sizes = _MASK_SIZES_QUICK if quick else _MASK_SIZES
    result = [
        Group(
            "mask_inplace",
            "mask in place",
            "bytes",
            ("wsframe-c", "wsframe-py", "aiohttp", "wsaccel", "copy"),
            tuple(Case("mask_inplace", size_label(n), n) for n in mask_sizes),
            {
                "wsframe-c": "mask_inplace(bytearray, key)",
                "aiohttp": "aiohttp._websocket.mask._websocket_mask_cython(key, bytearray)",
                "copy": "reference: bytes(bytearray) of the same size",
            },
        ),
        Group(
            "apply_mask",
            "apply_mask (new bytes)",
            "bytes",
            ("wsframe-c", "wsframe-py", "websockets", "wsaccel", "copy"),
            tuple(Case("apply_mask", size_label(n), n) for n in mask_sizes),
            {
                "wsframe-c": "apply_mask(bytes, key)",
                "websockets": "websockets.speedups.apply_mask(bytes, key) (C)",
                "wsaccel": "wsaccel.xormask.XorMaskerSimple(key).process(bytes), masker reused",
                "copy": "reference: bytes(bytearray) of the same size",
            },
        ),
    ]
    decode_notes = {
        "wsframe-c": "FrameDecoder(role).feed(chunk) -> list of Frame (payload bytes)",
        "picows": "WSProtocol get_buffer/buffer_updated after a fake handshake; "
        "listener counts frames, payload not copied (a view)",
        "aiohttp": "aiohttp._websocket.reader_c.WebSocketReader.feed_data into a "
        "WebSocketDataQueue (new reader per stream, queue cleared per chunk)",
        "websockets": "Frame.parse generator over websockets.streams.StreamReader",
        "wsproto": "FrameProtocol.receive_bytes + received_frames()",
    }
    decode_columns = ("wsframe-c", "wsframe-py", "picows", "aiohttp", "websockets", "wsproto")
    for role, masked_word in (("server", "masked"), ("client", "unmasked")):
        name = f"decode_{role}"
        result.append(
            Group(
                name,
                f"decode {masked_word} frames ({role} side), "
                f"stream fed in {size_label(CHUNK_SIZE)} chunks",
                "frames",
                decode_columns,
                tuple(
                    Case(
                        name,
                        size_label(n),
                        n,
                        masked=role == "server",
                        frames=_stream_frames(n, quick),
                    )
                    for n in _FRAME_SIZES
                ),
                decode_notes,
            )
        )
    result.append(
        Group(
            "encode",
            "encode one binary frame",
            "ns_frame",
            ("wsframe-c", "wsframe-py", "picows", "aiohttp", "websockets", "wsproto"),
            (
                *(
                    Case("encode", f"{size_label(n)} {'masked' if m else 'unmasked'}", n, masked=m)
                    for m in (True, False)
                    for n in _FRAME_SIZES
                ),
                Case("encode", "64 KiB unmasked zero-copy", 64 * 1024, zero_copy=True),
            ),
            {
                "wsframe-c": f"encode_frame(2, payload, mask=key), keys cycled from a pool "
                f"of {KEY_POOL_SIZE} pre-generated keys (key generation not measured); "
                "zero-copy row: encode_frame_header(2, len(payload)) and the "
                "[header, payload] list given to writelines (no payload copy)",
                "picows": "WSTransport.send(BINARY, payload) to a transport whose write() "
                "keeps nothing; masked = client side, key from C rand(); unmasked "
                "> 8 KiB uses writelines([header, payload]) (no payload copy)",
                "aiohttp": "WebSocketWriter._write_websocket_frame (the sync part of the "
                "async send_frame); masked: key from random.getrandbits",
                "websockets": "Frame(BINARY, payload).serialize(mask=..., extensions=[]); "
                "masked: key from secrets.token_bytes",
                "wsproto": "FrameProtocol(client=masked).send_data(payload); masked: key "
                "from os.urandom",
            },
        )
    )
    result.append(
        Group(
            "utf8",
            "UTF-8 validation",
            "bytes",
            ("wsframe-c", "wsframe-py", "wsaccel", "decode"),
            (
                Case("utf8", "1 MiB ASCII", _UTF8_SIZE, text="ascii"),
                Case("utf8", "1 MiB mixed", _UTF8_SIZE, text="mixed"),
            ),
            {
                "wsframe-c": "validate_utf8(bytes)",
                "wsaccel": "wsaccel.utf8validator.Utf8Validator: reset() + validate(bytes)",
                "decode": "reference: bytes.decode('utf-8') (also builds the str)",
            },
        )
    )
    return result


# ---------------------------------------------------------------- input data


@cache
def payload(size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    return random.Random(_SEED + size).randbytes(size)


@cache
def key_pool() -> tuple[bytes, ...]:
    """``KEY_POOL_SIZE`` masking keys, generated once."""
    pool = random.Random(_SEED).randbytes(4 * KEY_POOL_SIZE)
    return tuple(pool[i : i + 4] for i in range(0, len(pool), 4))


def reference_mask(data: bytes, key: bytes) -> bytes:
    """``data`` XOR ``key`` computed with big integers (fast, obviously right)."""
    n = len(data)
    keys = (key * (n // 4 + 1))[:n]
    value = int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")
    return value.to_bytes(n, "little")


def reference_frame(size: int, key: Optional[bytes]) -> bytes:
    """A FIN binary frame built by hand (RFC 6455 §5.2), for checks."""
    data = payload(size)
    head = bytearray([0x80 | _BINARY])
    bit = 0x80 if key is not None else 0
    if size < 126:
        head.append(bit | size)
    elif size < 65536:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + size.to_bytes(8, "big")
    if key is None:
        return bytes(head) + data
    return bytes(head) + key + reference_mask(data, key)


@cache
def utf8_text(kind: str, size: int = _UTF8_SIZE) -> bytes:
    """``size`` bytes (cut at a character boundary) of valid UTF-8."""
    rng = random.Random(_SEED)
    if kind == "ascii":
        alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?\n"
    else:  # 1-, 2-, 3- and 4-byte sequences mixed, as in chat text with emoji
        alphabet = "abc def ghi é ü ß ñ ж д я λ π € ☃ ✓ 中 文 字 日本 😀 🎉 🚀 𝄞 "
    text = "".join(rng.choice(alphabet) for _ in range(size // 2 + 16))
    data = text.encode("utf-8")
    while len(data) < size:
        data += data
    data = data[:size]
    while True:  # drop a sequence cut in two at the end
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            data = data[:-1]


@cache
def frame_stream(size: int, frames: int, masked: bool) -> tuple[bytes, ...]:
    """``frames`` binary frames of ``size`` bytes, encoded with wsframe, in chunks."""
    from wsframe import encode_frame

    data = payload(size)
    keys = cycle(key_pool()) if masked else repeat(None)
    stream = b"".join(encode_frame(_BINARY, data, mask=k) for k in islice(keys, frames))
    return tuple(stream[i : i + CHUNK_SIZE] for i in range(0, len(stream), CHUNK_SIZE))


# ------------------------------------------------------------------- helpers


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def _codec(column: str) -> Any:
    loaded = load(column)
    if not loaded.ok:
        raise NotAvailable(loaded.reason)
    return loaded.module


class _FakeSocket:
    """What picows asks of a socket before it starts: options and a file number."""

    def setsockopt(self, *args: object) -> None:
        """Accept and ignore a socket option."""

    def getsockopt(self, *args: object) -> int:
        """Every option reads as 0."""
        return 0

    def fileno(self) -> int:
        """No real descriptor."""
        return -1


class _SinkTransport:
    """A stand-in asyncio transport that keeps only the last few writes.

    ``write``/``writelines`` are bound C methods of a bounded deque, so the cost
    of "sending" is as small as it can be and memory stays constant.
    ``get_write_buffer_size`` reports 1 so that picows never calls send(2).
    """

    def __init__(self) -> None:
        self.sink: deque[Any] = deque(maxlen=4)
        self.write = self.sink.append
        self.writelines = self.sink.append
        self.get_write_buffer_size = partial(int, 1)
        self.is_closing = bool  # bool() is False
        self._socket = _FakeSocket()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Only the socket is known."""
        return self._socket if name == "socket" else default

    def taken(self) -> bytes:
        """Everything still in the sink, as one bytes object; empties it."""
        parts: list[bytes] = []
        for item in self.sink:
            if isinstance(item, (list, tuple)):
                parts.extend(bytes(x) for x in item)
            else:
                parts.append(bytes(item))
        self.sink.clear()
        return b"".join(parts)

    def close(self) -> None:
        """Nothing to close."""

    def abort(self) -> None:
        """Nothing to abort."""


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _picows_connected(client: bool) -> tuple[Any, Any, _SinkTransport]:
    """A picows WSProtocol past its opening handshake, with no socket.

    Returns (protocol, listener, transport stub). The listener counts frames.
    """
    import asyncio

    pp = submodule("picows", "picows.picows")

    class CountingListener(pp.WSListener):  # type: ignore[misc,name-defined]
        count = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            self.count += 1

    listener = CountingListener()
    logger = logging.getLogger("wsframe.benchmarks.picows")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())

    async def create() -> Any:
        return pp.WSProtocol(
            "localhost:9" if client else None,  # host:port
            "/" if client else None,  # path
            client,
            lambda *args: listener,  # listener factory
            logger,
            True,  # disconnect_on_exception
            None,  # handshake timeout
            False,
            10.0,
            10.0,
            pp.WSAutoPingStrategy.PING_WHEN_IDLE,  # no auto-ping
            False,  # no auto-pong
            1 << 30,  # max_frame_size
            None,  # extra headers
            256 * 1024,  # initial read buffer
        )

    loop = asyncio.new_event_loop()
    try:
        protocol = loop.run_until_complete(create())
        transport = _SinkTransport()
        protocol.connection_made(transport)
        if client:
            request = transport.taken()
            key = request.split(b"Sec-WebSocket-Key:", 1)[1].split(b"\r\n", 1)[0].strip()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            _picows_feed(
                protocol,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n",
            )
        else:
            _picows_feed(
                protocol,
                b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: "
                + base64.b64encode(os.urandom(16))
                + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
        reply = transport.taken()
        if not client:
            _check(reply.startswith(b"HTTP/1.1 101"), f"picows handshake failed: {reply[:60]!r}")
    finally:
        loop.close()
    _check(protocol.listener is listener, "picows handshake did not complete")
    return protocol, listener, transport


def _picows_feed(protocol: Any, data: bytes) -> None:
    """Copy ``data`` into picows's read buffer the way asyncio would."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(-1)
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


# ------------------------------------------------------------------- masking


def _mask_inplace(case: Case, column: str) -> Runner:
    if column == "copy":
        return _copy(case)
    key = _KEY
    buf = bytearray(payload(case.size))
    expected = reference_mask(payload(case.size), key)
    if column in WSFRAME:
        mask = _codec(column).mask_inplace
        _check(mask(buf, key) == case.size % 4, "mask_inplace returned a wrong phase")
        _check(buf == expected, "wrong masked bytes")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                mask(buf, key)

        return run
    if column == "aiohttp":
        aiohttp_mask = submodule("aiohttp", "aiohttp._websocket.mask")._websocket_mask_cython
        aiohttp_mask(key, buf)
        _check(buf == expected, "wrong masked bytes")

        def run_aiohttp(n: int) -> None:
            for _ in repeat(None, n):
                aiohttp_mask(key, buf)

        return run_aiohttp
    raise NotAvailable("cannot do this job")


def _copy(case: Case) -> Runner:
    buf = bytearray(payload(case.size))

    def run(n: int) -> None:
        for _ in repeat(None, n):
            bytes(buf)

    return run


def _apply_mask(case: Case, column: str) -> Runner:
    if column == "copy":
        return _copy(case)
    key = _KEY
    data = payload(case.size)
    expected = reference_mask(data, key)
    if column in WSFRAME or column == "websockets":
        if column == "websockets":
            apply = submodule("websockets", "websockets.speedups").apply_mask
        else:
            apply = _codec(column).apply_mask
        _check(apply(data, key) == expected, "wrong masked bytes")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                apply(data, key)

        return run
    if column == "wsaccel":
        masker_class = submodule("wsaccel", "wsaccel.xormask").XorMaskerSimple
        _check(bytes(masker_class(key).process(data)) == expected, "wrong masked bytes")
        # The masker carries the key phase from call to call: reuse one, as a
        # connection would; the work per call is the same whatever the phase.
        process = masker_class(key).process

        def run_wsaccel(n: int) -> None:
            for _ in repeat(None, n):
                process(data)

        return run_wsaccel
    raise NotAvailable("cannot do this job")


# ------------------------------------------------------------------- decoding


def _decode(case: Case, column: str) -> Runner:
    role = "server" if case.masked else "client"
    chunks = frame_stream(case.size, case.frames, case.masked)
    expected_frames = case.frames
    if column in WSFRAME:
        decoder = _codec(column).FrameDecoder(role, max_frame_size=None)
        frames = [f for chunk in chunks for f in decoder.feed(chunk)]
        _check(len(frames) == expected_frames, f"{len(frames)} frames, not {expected_frames}")
        _check(bytes(frames[-1].payload) == payload(case.size), "wrong payload")
        feed = decoder.feed

        def run(n: int) -> None:
            for _ in repeat(None, n):
                for chunk in chunks:
                    feed(chunk)

        return run
    if column == "picows":
        protocol, listener, _ = _picows_connected(client=role == "client")

        for chunk in chunks:
            _picows_feed(protocol, chunk)
        _check(listener.count == expected_frames, f"{listener.count} frames")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                for chunk in chunks:
                    _picows_feed(protocol, chunk)

        return run
    if column == "aiohttp":
        reader_c = submodule("aiohttp", "aiohttp._websocket.reader_c")

        class _Protocol:
            _reading_paused = False

            def pause_reading(self) -> None:
                self._reading_paused = True

            def resume_reading(self) -> None:
                self._reading_paused = False

        proto = _Protocol()
        queue_class, reader_class = reader_c.WebSocketDataQueue, reader_c.WebSocketReader

        def one_stream() -> int:
            queue = queue_class(proto, 1 << 30, loop=None)
            reader = reader_class(queue, 1 << 24, False, False)
            feed, messages = reader.feed_data, queue._buffer
            count = 0
            for chunk in chunks:
                feed(chunk)
                count += len(messages)
                messages.clear()
            return count

        got = one_stream()
        _check(got == expected_frames, f"{got} messages, not {expected_frames}")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                one_stream()

        return run
    if column == "websockets":
        frames_mod = submodule("websockets", "websockets.frames")
        streams = submodule("websockets", "websockets.streams")
        stream = streams.StreamReader()
        parse = frames_mod.Frame.parse
        read_exact = stream.read_exact
        mask = case.masked
        parsed = [0]

        def parser() -> Any:
            while True:
                yield from parse(read_exact, mask=mask, max_size=None)
                parsed[0] += 1

        gen = parser()
        next(gen)
        feed_data = stream.feed_data
        for chunk in chunks:
            feed_data(chunk)
            next(gen)
        _check(parsed[0] == expected_frames, f"{parsed[0]} frames, not {expected_frames}")
        _check(not stream.buffer, "websockets left bytes unparsed")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                for chunk in chunks:
                    feed_data(chunk)
                    next(gen)

        return run
    if column == "wsproto":
        fp_mod = submodule("wsproto", "wsproto.frame_protocol")
        protocol = fp_mod.FrameProtocol(client=role == "client", extensions=[])
        receive, received = protocol.receive_bytes, protocol.received_frames

        def wsproto_pass() -> int:
            count = 0
            for chunk in chunks:
                receive(chunk)
                for frame in received():
                    if frame.frame_finished:
                        count += 1
            return count

        got_frames = wsproto_pass()
        _check(got_frames == expected_frames, f"{got_frames} frames, not {expected_frames}")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                wsproto_pass()

        return run
    raise NotAvailable("cannot do this job")


# ------------------------------------------------------------------- encoding


def _encode(case: Case, column: str) -> Runner:
    data = payload(case.size)
    masked = case.masked
    header = reference_frame(case.size, _KEY if masked else None)[:2]
    length = len(data) + len(reference_frame(0, None)) + (4 if masked else 0)
    length += 0 if case.size < 126 else (2 if case.size < 65536 else 8)

    def check(frame: bytes) -> None:
        _check(len(frame) == length and frame[:2] == header, "wrong frame header or length")
        if not masked:
            _check(frame == reference_frame(case.size, None), "wrong frame bytes")

    if column in WSFRAME and case.zero_copy:
        encode_header = _codec(column).encode_frame_header
        check(b"".join([encode_header(_BINARY, len(data)), data]))

        def run(n: int) -> None:
            for _ in repeat(None, n):
                [encode_header(_BINARY, len(data)), data]  # what writelines gets

        return run
    if column in WSFRAME:
        encode = _codec(column).encode_frame
        keys = key_pool()
        check(encode(_BINARY, data, mask=keys[0] if masked else None))
        if masked:

            def run(n: int) -> None:
                for k in islice(cycle(keys), n):
                    encode(_BINARY, data, mask=k)

        else:

            def run(n: int) -> None:
                for _ in repeat(None, n):
                    encode(_BINARY, data)

        return run
    if column == "picows":
        pp = submodule("picows", "picows.picows")
        protocol, _, transport = _picows_connected(client=masked)
        send, binary = protocol.transport.send, pp.WSMsgType.BINARY
        transport.taken()
        send(binary, data)
        check(transport.taken())

        def run(n: int) -> None:
            for _ in repeat(None, n):
                send(binary, data)

        return run
    if column == "aiohttp":
        writer_mod = submodule("aiohttp", "aiohttp._websocket.writer")
        transport = _SinkTransport()
        writer = writer_mod.WebSocketWriter(object(), transport, use_mask=masked)
        write = writer._write_websocket_frame
        write(data, _BINARY, 0)
        check(transport.taken())

        def run(n: int) -> None:
            for _ in repeat(None, n):
                write(data, _BINARY, 0)

        return run
    if column == "websockets":
        frames_mod = submodule("websockets", "websockets.frames")
        frame_class, binary = frames_mod.Frame, frames_mod.Opcode.BINARY
        no_extensions: list[Any] = []
        check(frame_class(binary, data).serialize(mask=masked, extensions=no_extensions))

        def run(n: int) -> None:
            for _ in repeat(None, n):
                frame_class(binary, data).serialize(mask=masked, extensions=no_extensions)

        return run
    if column == "wsproto":
        fp_mod = submodule("wsproto", "wsproto.frame_protocol")
        send_data = fp_mod.FrameProtocol(client=masked, extensions=[]).send_data
        check(bytes(send_data(data)))

        def run(n: int) -> None:
            for _ in repeat(None, n):
                send_data(data)

        return run
    raise NotAvailable("cannot do this job")


# ----------------------------------------------------------------------- UTF-8


def _utf8(case: Case, column: str) -> Runner:
    data = utf8_text(case.text, case.size)
    if column in WSFRAME:
        validate = _codec(column).validate_utf8
        _check(validate(data) is True, "valid UTF-8 rejected")
        _check(validate(data + b"\xff") is False, "invalid UTF-8 accepted")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                validate(data)

        return run
    if column == "wsaccel":
        validator = submodule("wsaccel", "wsaccel.utf8validator").Utf8Validator()
        reset, check = validator.reset, validator.validate
        result = check(data)
        _check(bool(result[0] and result[1]), "valid UTF-8 rejected")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                reset()
                check(data)

        return run
    if column == "decode":
        decode = data.decode

        def run(n: int) -> None:
            for _ in repeat(None, n):
                decode("utf-8")

        return run
    raise NotAvailable("cannot do this job")


_FACTORIES: dict[str, Callable[[Case, str], Runner]] = {
    "mask_inplace": _mask_inplace,
    "apply_mask": _apply_mask,
    "decode_server": _decode,
    "decode_client": _decode,
    "encode": _encode,
    "utf8": _utf8,
}


#: (group, peer column) -> the submodule the job needs, or why the peer cannot
#: do that job at all. A peer missing here cannot do the group's job.
_NEEDS: dict[tuple[str, str], str] = {
    ("mask_inplace", "aiohttp"): "aiohttp._websocket.mask",
    ("mask_inplace", "wsaccel"): "!no in-place API: XorMaskerSimple.process returns new bytes",
    ("apply_mask", "websockets"): "websockets.speedups",
    ("apply_mask", "wsaccel"): "wsaccel.xormask",
    ("decode_server", "picows"): "picows.picows",
    ("decode_server", "aiohttp"): "aiohttp._websocket.reader_c",
    ("decode_server", "websockets"): "websockets.frames",
    ("decode_server", "wsproto"): "wsproto.frame_protocol",
    ("decode_client", "picows"): "picows.picows",
    ("decode_client", "aiohttp"): "aiohttp._websocket.reader_c",
    ("decode_client", "websockets"): "websockets.frames",
    ("decode_client", "wsproto"): "wsproto.frame_protocol",
    ("encode", "picows"): "picows.picows",
    ("encode", "aiohttp"): "aiohttp._websocket.writer",
    ("encode", "websockets"): "websockets.frames",
    ("encode", "wsproto"): "wsproto.frame_protocol",
    ("utf8", "wsaccel"): "wsaccel.utf8validator",
}


def unavailable(case: Case, column: str) -> Optional[str]:
    """Why ``column`` cannot run ``case`` here, or None if it can.

    Cheap (imports only, no input data built) and deterministic, so that the
    pyperf script decides the same in every worker process.
    """
    if column in REFERENCES:
        return None
    loaded = load(column)
    if not loaded.ok:
        return loaded.reason
    if column in WSFRAME:
        return None
    need = _NEEDS.get((case.group, column))
    if need is None:
        return "cannot do this job"
    if need.startswith("!"):
        return need[1:]
    try:
        submodule(column, need)
    except NotAvailable as exc:
        return str(exc)
    return None


def make_runner(case: Case, column: str) -> Runner:
    """A checked runner ``run(n)`` for ``column`` doing ``case``'s job.

    Raises :class:`NotAvailable` (the column cannot do it here: not installed,
    not built, no such API) or :class:`CheckFailed` (it gave a wrong result).
    """
    reason = unavailable(case, column)
    if reason is not None:
        raise NotAvailable(reason)
    return _FACTORIES[case.group](case, column)
