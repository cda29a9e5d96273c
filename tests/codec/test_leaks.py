"""Leak checks of the C extension (wsframe._codec_c), and of failed connections.

A release build has no ``sys.gettotalrefcount``, so: the reference counts of
the inputs do not move over many calls, the outputs hold the same references
as the pure-Python codec's, and the memory Python allocates (tracemalloc) and
the process's RSS stay flat over ~2 million calls in all, error paths
included. ``bash tests/valgrind.sh`` runs the same loops under valgrind.

A sans-I/O connection failed by its peer (a compression bomb, a message too
big, corrupt data, a protocol violation, a bad handshake; compiled or twin):
it holds little memory once failed (a driver may keep it a while), and
dropping it frees everything at once, with no reference cycle left for the
garbage collector. Repeated attacks on a real server: tests/hostile/test_hostile.py.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import gc
import sys
import time
import zlib
from typing import Any, Callable, Optional

import pytest
from conftest import CODEC_PY, IS_PYPY, require_c

from wsframe.asyncio import WebSocket, serve
from wsframe.connection import ClientConnection, ServerConnection, State
from wsframe.echo import EchoListener
from wsframe.errors import InvalidHandshake, MessageTooBig, ProtocolError, drop_traceback

KEY = b"\x11\x22\x33\x44"
PAYLOAD = bytes(range(256)) * 8  # 2 KiB
TEXT = ("héllo wörld, ünïcode ✓ " * 40).encode()

pytestmark = pytest.mark.skipif(
    IS_PYPY,
    reason="reference counts and tracemalloc do not exist on PyPy (no sys.getrefcount "
    "semantics, a moving GC); these checks are for the C extension on CPython",
)


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _frames(codec: Any) -> bytes:
    enc = codec.encode_frame
    return (
        enc(1, TEXT, mask=KEY)
        + enc(2, PAYLOAD, mask=KEY)
        + enc(2, PAYLOAD * 40, mask=KEY)  # 64-bit length
        + enc(9, b"ping", mask=KEY)
        + enc(0, b"", fin=False, mask=KEY)
    )


def cases(codec: Any) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (one call, how many calls)."""
    frames = _frames(codec)
    head, tail = frames[:1000], frames[1000:]
    bad = codec.encode_frame(2, PAYLOAD, mask=KEY) + b"\x83\x80" + KEY  # reserved opcode
    buffer = bytearray(PAYLOAD)
    arr = array.array("I", PAYLOAD)
    validator = codec.Utf8Validator()

    def decode_whole() -> Any:
        return codec.FrameDecoder("server").feed(frames)

    def decode_split() -> Any:
        decoder = codec.FrameDecoder("server")
        decoder.feed(head)
        return decoder.feed(tail)

    def decode_error() -> Any:
        decoder = codec.FrameDecoder("server")
        try:
            decoder.feed(bad)
        except ProtocolError as exc:
            assert len(exc.frames) == 1
        with contextlib.suppress(ProtocolError):
            decoder.feed(b"x")  # failed for good

    def decode_too_big() -> Any:
        with contextlib.suppress(ProtocolError):
            codec.FrameDecoder("server", max_frame_size=100).feed(frames)

    def encode() -> Any:
        codec.encode_frame(2, PAYLOAD, mask=KEY)
        codec.encode_frame(1, "text ✓", fin=False, rsv1=True)
        return codec.encode_frame_header(2, 1 << 40, mask=KEY)

    def encode_error() -> Any:
        for args, kwargs in (
            ((3, b"x"), {}),
            ((9, PAYLOAD), {}),
            ((2, b"x"), {"mask": b"abc"}),
            ((2, 1.5), {}),
            ((1, "\ud800"), {}),
        ):
            with contextlib.suppress(ValueError, TypeError, UnicodeEncodeError):
                codec.encode_frame(*args, **kwargs)

    def mask() -> Any:
        codec.apply_mask(PAYLOAD, KEY, 1)
        codec.mask_inplace(buffer, KEY)
        return codec.mask_inplace(arr, KEY, 3)

    def mask_error() -> Any:
        for args in ((PAYLOAD, b"k"), (b"ro", KEY), (PAYLOAD, KEY, 7), ("str", KEY)):
            with contextlib.suppress(ValueError, TypeError):
                codec.mask_inplace(*args) if args[0] == b"ro" else codec.apply_mask(*args)

    def utf8() -> Any:
        codec.validate_utf8(TEXT)
        codec.validate_utf8(TEXT + b"\xff")
        validator.feed(TEXT[:101])
        return validator.feed(TEXT[101:], True)

    return {
        "decode_whole": (decode_whole, 200_000),
        "decode_split": (decode_split, 100_000),
        "decode_error": (decode_error, 50_000),
        "decode_too_big": (decode_too_big, 100_000),
        "encode": (encode, 200_000),
        "encode_error": (encode_error, 30_000),
        "mask": (mask, 200_000),
        "mask_error": (mask_error, 30_000),
        "utf8": (utf8, 200_000),
    }


CASES = list(cases(CODEC_PY))


@pytest.mark.parametrize("name", CASES)
def test_no_leak(name: str) -> None:
    import tracemalloc  # not on PyPy

    codec = require_c()
    func, count = cases(codec)[name]
    inputs = [PAYLOAD, TEXT, KEY]
    refs = [sys.getrefcount(obj) for obj in inputs]
    for _ in range(2000):  # warm up caches and free lists
        func()
    gc.collect()
    rss_before = rss()
    tracemalloc.start()
    try:
        for _ in range(2000):
            func()
        gc.collect()
        traced_before = tracemalloc.get_traced_memory()[0]
        for _ in range(count // 10):
            func()
        gc.collect()
        traced_grown = tracemalloc.get_traced_memory()[0] - traced_before
    finally:
        tracemalloc.stop()
    for _ in range(count):  # untraced: fast, for RSS
        func()
    gc.collect()
    rss_grown = rss() - rss_before
    assert [sys.getrefcount(obj) for obj in inputs] == refs
    # A leak of even one small object per call would show as >= 16 bytes/call.
    assert traced_grown < 16 * 1024, f"{name}: {traced_grown} bytes traced after {count // 10}"
    assert rss_grown < 4 << 20, f"{name}: RSS grew by {rss_grown} bytes after {count} calls"


def test_output_references() -> None:
    """The outputs hold exactly the references the pure-Python codec's hold."""
    codec_c = require_c()

    def counts(codec: Any) -> list[int]:
        frames = codec.FrameDecoder("server").feed(_frames(codec))
        out = [sys.getrefcount(frames)]
        out += [sys.getrefcount(frame) for frame in frames]
        out += [sys.getrefcount(frame.payload) for frame in frames if len(frame.payload) > 1]
        out.append(sys.getrefcount(codec.encode_frame(2, PAYLOAD, mask=KEY)))
        out.append(sys.getrefcount(codec.apply_mask(PAYLOAD, KEY)))
        try:
            codec.FrameDecoder("server").feed(b"\x83\x80")
        except ProtocolError as exc:
            out.append(sys.getrefcount(exc))
        return out

    assert counts(codec_c) == counts(CODEC_PY)


# ------------------------------------------ a failed connection keeps nothing

LIMIT = 1 << 20  # the default max_message_size


def _deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def _frame(opcode: int, payload: bytes, **flags: Any) -> bytes:
    return CODEC_PY.encode_frame(opcode, payload, mask=KEY, **flags)


def _fragments(first_opcode: int, pieces: list[bytes], rsv1: bool = False) -> list[bytes]:
    frames = [_frame(first_opcode, pieces[0], fin=False, rsv1=rsv1)]
    frames += [_frame(0, piece, fin=False) for piece in pieces[1:]]
    return frames


_BOMB = _deflated(bytes(8 * LIMIT))  # 8 MiB of zeros in ~8 KB
_BOMB_PIECES = [_BOMB[i : i + 512] for i in range(0, len(_BOMB), 512)]

#: name -> (permessage-deflate, what the peer sends in turn, close code or status).
#: Sent after the handshake, except for "oversized_header" (the request itself).
FAILURES: dict[str, tuple[bool, list[bytes], int]] = {
    "bomb": (True, [_frame(2, _BOMB, rsv1=True)], 1009),
    "bomb_fragmented": (True, _fragments(2, _BOMB_PIECES, rsv1=True), 1009),
    "too_big_fragmented": (False, _fragments(2, [bytes(400_000)] * 4), 1009),
    "corrupt_deflate": (True, [_frame(2, b"\x07\xff", rsv1=True)], 1002),
    "corrupt_deflate_fragmented": (
        True,
        [*_fragments(2, [_deflated(bytes(300_000))], rsv1=True), _frame(0, b"\x07\xff")],
        1002,
    ),
    "violation_after_message": (False, [_frame(2, b"ok" * 500) + b"\x83\x80" + KEY], 1002),
    "invalid_utf8_fragmented": (False, _fragments(1, [b"a" * 300_000, b"\xff"]), 1007),
    "oversized_header": (
        False,
        [b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n"],
        431,
    ),
}


@pytest.fixture
def conn_codec(active_codec: Any) -> Any:
    """The codec of this run (the connection's)."""
    return active_codec


def _server(deflate: bool, defer: bool) -> ServerConnection:
    """An open server connection (deferring failures like the asyncio driver)."""
    client = ClientConnection("ws://x/", compression="deflate" if deflate else None)
    server = ServerConnection()
    server.defer_failure = defer
    server.receive_data(client.data_to_send())
    server.events()
    server.accept()
    assert server.state is State.OPEN and (server.deflate is not None) == deflate
    server.data_to_send()
    return server


def _attack(name: str, defer: bool) -> ServerConnection:
    deflate, chunks, expected = FAILURES[name]
    server = ServerConnection() if name == "oversized_header" else _server(deflate, defer)
    for chunk in chunks:
        server.receive_data(chunk)
    server.fail_pending()
    error: Optional[Exception] = server.error
    if isinstance(error, InvalidHandshake):
        assert error.status == expected
    else:
        assert isinstance(error, ProtocolError) and error.close_code == expected, error
    assert server.close_transport
    server.events()
    server.data_to_send()
    return server


@pytest.mark.parametrize("defer", [False, True], ids=["fail", "defer"])
@pytest.mark.parametrize("name", list(FAILURES))
def test_failed_connection_holds_little(conn_codec: Any, name: str, defer: bool) -> None:
    """Once failed, the connection keeps neither the message nor the data read.

    A driver keeps a failed connection a while (until the peer closes, or
    close_timeout): the inflated bytes of a bomb, the pieces of a message that
    grew too big or the frames read with the violation must not stay with it.
    """
    import tracemalloc  # not on PyPy (the module is skipped there)

    tracemalloc.start()
    try:
        _attack(name, defer)  # warm up: zlib, the codec's tables
        before = tracemalloc.get_traced_memory()[0]
        server = _attack(name, defer)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert server.error is not None
    assert held < 64 << 10, f"{name}: the failed connection holds {held} bytes"


@pytest.mark.parametrize("defer", [False, True], ids=["fail", "defer"])
@pytest.mark.parametrize("name", ["normal", *FAILURES])
def test_failed_connection_leaves_no_cycle(conn_codec: Any, name: str, defer: bool) -> None:
    """Dropping a failed connection frees it at once: no reference cycle.

    Garbage in a cycle waits for the collector's oldest generation, which a
    server allocating few objects per connection runs rarely: a cycle through
    a kept exception's traceback held each bombed connection's inflated
    megabytes for hundreds of connections.
    """
    gc.collect()
    gc.disable()
    try:
        if name == "normal":
            server = _server(True, defer)
            server.receive_data(_frame(2, _deflated(b"hello"), rsv1=True))
            server.receive_data(_frame(8, b"\x03\xe8"))
            assert server.state is State.CLOSED and server.error is None
        else:
            server = _attack(name, defer)
        del server
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0, f"{name}: {unreachable} objects were left in reference cycles"


def test_drop_traceback() -> None:
    """The tracebacks of the error, its cause and its context go; the rest stays."""

    def fail() -> None:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            try:
                raise KeyError("context")
            except KeyError:
                raise MessageTooBig("outer") from inner

    try:
        fail()
    except MessageTooBig as exc:
        error = exc
    cause, context = error.__cause__, error.__context__
    assert cause is not None and context is not None and cause.__traceback__ is not None
    assert context.__context__ is cause  # chains may share members
    assert drop_traceback(error) is error
    assert error.__traceback__ is None
    assert cause.__traceback__ is None and context.__traceback__ is None
    assert (error.__cause__, error.__context__) == (cause, context)
    assert (str(error), error.close_code) == ("outer", 1009)


class _Driver:
    """Holds its connection and takes its messages through a bound method, as drivers do."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.messages: list[Any] = []
        conn.on_message = self.deliver

    def deliver(self, message: Any) -> None:
        self.messages.append(message)


@pytest.mark.parametrize("end", ["close_frame", "eof", "failure_then_eof"])
def test_driver_callback_leaves_no_cycle(conn_codec: Any, end: str) -> None:
    """A driver whose bound method is ``on_message`` is freed with its connection.

    The connection drops the callback once it is closed, so the pair is not
    left in a cycle for the garbage collector (with whatever the connection
    holds: its request, its zlib streams).
    """
    gc.collect()
    gc.disable()
    try:
        driver = _Driver(_server(True, True))
        driver.conn.receive_data(_frame(2, _deflated(b"hello"), rsv1=True))
        assert driver.messages == [b"hello"]
        if end == "close_frame":
            driver.conn.receive_data(_frame(8, b"\x03\xe8"))
        elif end == "failure_then_eof":
            driver.conn.receive_data(_frame(2, _BOMB, rsv1=True))
            driver.conn.fail_pending()
            driver.conn.receive_eof()
        else:
            driver.conn.receive_eof()
        assert driver.conn.state is State.CLOSED
        del driver
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0, f"{end}: {unreachable} objects were left in reference cycles"


_UPGRADE = (
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n"
    "{extra}\r\n"
)
_DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate\r\n"

#: name -> (the request, what follows it): what a client of a real server does.
_SESSIONS: dict[str, tuple[str, bytes]] = {
    "echo_and_close": (
        _UPGRADE.format(version=13, extra=_DEFLATE),
        _frame(1, _deflated(b"hi"), rsv1=True) + _frame(2, b"x" * 100) + _frame(8, b"\x03\xe8"),
    ),
    "dropped": (_UPGRADE.format(version=13, extra=""), b""),
    "bomb": (_UPGRADE.format(version=13, extra=_DEFLATE), _frame(2, _BOMB, rsv1=True)),
    "violation_after_message": (
        _UPGRADE.format(version=13, extra=""),
        _frame(1, b"hi") + b"\x83\x80" + KEY,
    ),
    "rejected": (_UPGRADE.format(version=8, extra=""), b""),
}


async def _session(port: int, name: str) -> None:
    request, then = _SESSIONS[name]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 426" if name == "rejected" else b"HTTP/1.1 101"), head
        if then:
            writer.write(then)
            await asyncio.wait_for(reader.read(), 5)  # until the server closes
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _until(predicate: Callable[[], bool], timeout: float) -> None:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def _echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.mark.parametrize("style", ["handler", "listener"])
def test_server_connections_leave_no_cycle(style: str) -> None:
    """Connections of a real asyncio server are freed as soon as they are over.

    Whether they ended cleanly, were dropped, failed (a compression bomb, a
    violation after a message) or never opened: nothing of wsframe is left
    in a reference cycle, to wait for the collector's oldest generation with
    the memory it holds. (asyncio's own transports keep a cycle of theirs.)
    """

    async def main() -> list[str]:
        async with serve(
            EchoListener if style == "listener" else _echo,
            "127.0.0.1",
            0,
            ping_interval=None,
            close_timeout=0.2,  # a failed connection waits that long for the peer
        ) as server:
            await _session(server.port, "echo_and_close")  # warm up
            await asyncio.sleep(0.3)
            gc.collect()
            gc.disable()
            try:
                for name in _SESSIONS:
                    for _ in range(3):
                        await _session(server.port, name)
                await asyncio.sleep(0.5)  # the failed connections' close_timeout
                await _until(lambda: not server.websockets, 5.0)
                assert not server.websockets
                gc.set_debug(gc.DEBUG_SAVEALL)
                try:
                    gc.collect()
                    garbage = [
                        f"{type(o).__module__}.{type(o).__qualname__}"
                        for o in gc.garbage
                        if type(o).__module__.startswith("wsframe")
                    ]
                finally:
                    gc.set_debug(0)
                    gc.garbage.clear()
            finally:
                gc.enable()
            return garbage

    garbage = asyncio.run(main())
    assert not garbage, f"left in reference cycles: {sorted(set(garbage))}"


@pytest.mark.parametrize("style", ["handler", "listener"])
def test_failed_connections_freed_once_lost(style: str) -> None:
    """A failed connection is freed when its transport is lost, not close_timeout later.

    The timer that would drop a transport whose peer never closes held the
    connection for close_timeout (10 s) even after the peer had closed: a
    peer failing connections fast made the server hold all of them.
    """

    async def main() -> int:
        async with serve(
            EchoListener if style == "listener" else _echo, "127.0.0.1", 0, ping_interval=None
        ) as server:
            for _ in range(5):
                await _session(server.port, "bomb")
                await _session(server.port, "violation_after_message")

            def alive() -> int:
                return sum(isinstance(o, WebSocket) for o in gc.get_objects())

            # The peers close at once: the transports are lost and the handler
            # tasks end within moments (close_timeout is 10 s).
            await _until(lambda: not server.websockets and not alive(), 3.0)
            return alive()

    alive = asyncio.run(main())
    assert alive == 0, f"{alive} connections still alive after their transport was lost"
