"""The asyncio connection object, the Listener style, broadcast and rooms.

Real loopback sockets; every test runs with both codecs (``codec`` fixture).
"""

from __future__ import annotations

import array
import asyncio
import functools
import importlib
import socket
from typing import Any, ClassVar

import numpy as np
import pytest
from asyncio_helpers import (
    Capture,
    RawPeer,
    RawServer,
    async_test,
    echo,
    eventually,
    raw_client,
    start,
    uri,
    within,
)

from wsframe.asyncio import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Listener,
    Rooms,
    WebSocket,
    broadcast,
    connect,
    serve,
)
from wsframe.codec import FrameDecoder, encode_frame
from wsframe.connection import ServerConnection, State
from wsframe.errors import InvalidState
from wsframe.events import BinaryMessage, CloseReceived, TextMessage
from wsframe.frames import Opcode

# The package exports a function of the same name as this module.
broadcast_module = importlib.import_module("wsframe.asyncio.broadcast")


# ------------------------------------------------------------- connection API


@async_test
async def test_recv_returns_str_for_text_and_bytes_for_binary() -> None:
    async with await start(echo) as server, connect(uri(server)) as ws:
        await ws.send("héllo")
        assert await within(ws.recv()) == "héllo"
        await ws.send(b"\x00\xff")
        message = await within(ws.recv())
        assert message == b"\x00\xff" and type(message) is bytes


@async_test
async def test_send_accepts_every_bytes_like() -> None:
    async with await start(echo) as server, connect(uri(server)) as ws:
        payloads: list[Any] = [
            b"bytes",
            bytearray(b"bytearray"),
            memoryview(b"xxmemoryviewxx")[2:-2],
            np.arange(10, dtype=np.uint8),
            np.arange(6, dtype=np.float64).reshape(2, 3),
        ]
        for payload in payloads:
            await ws.send(payload)
            assert await within(ws.recv()) == bytes(memoryview(payload).cast("B"))


@async_test
async def test_send_array_array_as_one_binary_message() -> None:
    async with await start(echo) as server, connect(uri(server)) as ws:
        await ws.send(array.array("H", [1, 2, 3]))
        assert await within(ws.recv()) == array.array("H", [1, 2, 3]).tobytes()


@async_test
async def test_send_numpy_array_is_one_frame() -> None:
    capture = Capture()
    async with await start(capture) as server:
        peer = await raw_client(server.port)
        try:
            ws = await capture.next()
            await ws.send(np.arange(8, dtype=np.uint8))
            frames = []
            decoder = FrameDecoder("client")
            while not frames:
                data = await within(peer.loop.sock_recv(peer.sock, 65536))
                frames.extend(decoder.feed(data))
            assert len(frames) == 1 and frames[0].fin
            assert bytes(frames[0].payload) == bytes(range(8))
        finally:
            peer.close()


@async_test
async def test_send_empty_numpy_array_sends_an_empty_message() -> None:
    async with await start(echo) as server, connect(uri(server)) as ws:
        await ws.send(np.zeros(0, dtype=np.uint8))
        await ws.send("after")
        assert await within(ws.recv()) == b""


@async_test
async def test_large_zero_copy_send_arrives_intact() -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB, over the zero-copy threshold
    capture = Capture()
    async with (
        await start(capture, compression=None) as server,
        connect(uri(server), compression=None, max_message_size=None) as ws,
    ):
        server_ws = await capture.next()
        await server_ws.send(payload)
        await server_ws.send(memoryview(bytearray(payload))[1:])
        assert await within(ws.recv()) == payload
        assert await within(ws.recv()) == payload[1:]


@async_test
async def test_send_iterable_is_one_fragmented_message() -> None:
    async with await start(echo) as server:
        for compression in (None, "deflate"):
            async with connect(uri(server), compression=compression) as ws:
                await ws.send(["ab", "cd", "é"])
                assert await within(ws.recv()) == "abcdé"
                await ws.send([b"1", bytearray(b"2"), memoryview(b"3")])
                assert await within(ws.recv()) == b"123"
                await ws.send(["single"])
                assert await within(ws.recv()) == "single"


@async_test
async def test_send_async_iterable_is_one_fragmented_message() -> None:
    async def pieces() -> Any:
        for piece in (b"one-", b"two-", b"three"):
            await asyncio.sleep(0.01)
            yield piece

    async with await start(echo) as server, connect(uri(server)) as ws:
        await ws.send(pieces())
        assert await within(ws.recv()) == b"one-two-three"


@async_test
async def test_send_fragments_on_the_wire() -> None:
    capture = Capture()
    async with await start(capture, compression=None) as server:
        peer = await raw_client(server.port, fragments=True)
        try:
            ws = await capture.next()
            await ws.send(["a", "b", "c"])
            events = [await peer.next_event() for _ in range(3)]
            assert [(e.data, e.final) for e in events] == [("a", False), ("b", False), ("c", True)]
        finally:
            peer.close()


@async_test
async def test_send_mixed_fragment_types_raises_type_error() -> None:
    async with await start(echo) as server, connect(uri(server)) as ws:
        with pytest.raises(TypeError):
            await ws.send(["text", b"bytes"])


@async_test
async def test_ping_returns_round_trip_time() -> None:
    async with await start(echo) as server, connect(uri(server)) as ws:
        rtt = await within(ws.ping())
        assert isinstance(rtt, float) and 0 <= rtt < 1
        rtt = await within(ws.ping(b"payload"))
        assert 0 <= rtt < 1


@async_test
async def test_async_for_ends_on_normal_close() -> None:
    async def handler(ws: WebSocket) -> None:
        for i in range(3):
            await ws.send(str(i))

    async with await start(handler) as server, connect(uri(server)) as ws:
        received = [message async for message in ws]
        assert received == ["0", "1", "2"]
        assert ws.close_code == 1000


@async_test
async def test_async_for_raises_on_abnormal_close() -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.send("before")
        raise RuntimeError("boom")

    async with await start(handler) as server, connect(uri(server)) as ws:
        received = []
        with pytest.raises(ConnectionClosedError) as info:
            async for message in ws:
                received.append(message)
        assert received == ["before"]
        assert info.value.code == 1011


@async_test
async def test_client_close_with_code_and_reason_and_states() -> None:
    states: list[int] = []

    def process_request(ws: WebSocket, request: Any) -> None:
        states.append(ws.ready_state)

    capture = Capture()
    async with await start(capture, process_request=process_request) as server:
        ws = await within(connect(uri(server)))
        server_ws = await capture.next()
        assert states == [0]
        assert ws.ready_state == 1 and ws.state is State.OPEN
        assert server_ws.ready_state == 1
        assert ws.close_code is None and server_ws.close_code is None
        closing = asyncio.ensure_future(ws.close(4000, "bye"))
        await asyncio.sleep(0)
        assert ws.ready_state == 2
        await within(closing)
        assert ws.ready_state == 3
        with pytest.raises(ConnectionClosedError) as info:
            await within(server_ws.recv())
        assert info.value.code == 4000 and info.value.reason == "bye"
        assert info.value.was_clean
        assert server_ws.close_code == 4000 and server_ws.close_reason == "bye"
        await within(server_ws.wait_closed())
        assert server_ws.ready_state == 3
        assert ws.close_code == 4000  # echoed by the server
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.was_clean and info.value.sent == (4000, "bye")
        with pytest.raises(ConnectionClosed):
            await ws.send("late")


@async_test
async def test_server_close_with_code_and_reason() -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.close(4321, "done here")

    async with await start(handler) as server, connect(uri(server)) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            await within(ws.recv())
        assert (info.value.code, info.value.reason, info.value.was_clean) == (
            4321,
            "done here",
            True,
        )
        assert ws.close_code == 4321 and ws.close_reason == "done here"
        assert ws.ready_state == 3


@async_test
async def test_normal_close_raises_connection_closed_ok() -> None:
    capture = Capture()
    async with await start(capture) as server, connect(uri(server)) as ws:
        server_ws = await capture.next()
        await within(ws.close())
        with pytest.raises(ConnectionClosedOK) as info:
            await within(server_ws.recv())
        assert info.value.code == 1000 and info.value.was_clean


@async_test
async def test_abnormal_end_is_not_clean() -> None:
    capture = Capture()
    async with await start(capture) as server:
        peer = await raw_client(server.port)
        server_ws = await capture.next()
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        peer.close()  # RST, no close frame
        with pytest.raises(ConnectionClosedError) as info:
            await within(server_ws.recv())
        assert info.value.code == 1006 and not info.value.was_clean
        assert server_ws.close_code == 1006


@async_test
async def test_request_path_headers_and_addresses() -> None:
    capture = Capture()
    async with (
        await start(capture) as server,
        connect(uri(server, "/chat/room?user=7"), extra_headers={"X-Token": "abc"}) as ws,
    ):
        server_ws = await capture.next()
        request = server_ws.request
        assert request is not None
        assert request.path == "/chat/room" and request.query == "user=7"
        assert request.headers["X-Token"] == "abc"
        local = ws.transport.get_extra_info("sockname")  # type: ignore[union-attr]
        assert tuple(server_ws.remote_address[:2]) == tuple(local[:2])
        assert ws.remote_address[1] == server.port
        assert ws.buffered_amount == 0 and server_ws.buffered_amount == 0


@async_test
async def test_add_close_callback() -> None:
    capture = Capture()
    called: list[Any] = []
    async with await start(capture) as server:
        async with connect(uri(server)) as ws:
            server_ws = await capture.next()
            server_ws.add_close_callback(lambda w: called.append(("server", w)))
            ws.add_close_callback(lambda w: called.append(("client", w)))
            assert called == []
        await within(server_ws.wait_closed())
        assert sorted(called, key=lambda c: c[0]) == [("client", ws), ("server", server_ws)]
        ws.add_close_callback(lambda w: called.append(("late", w)))
        assert called[-1] == ("late", ws)


@async_test
async def test_send_while_connecting_or_after_close() -> None:
    seen: list[Any] = []

    def process_request(ws: WebSocket, request: Any) -> None:
        try:
            ws.send_nowait("too early")
        except InvalidState as exc:
            seen.append(exc)

    async with await start(echo, process_request=process_request) as server:
        ws = await within(connect(uri(server)))
        await ws.close()
        assert len(seen) == 1
        with pytest.raises(ConnectionClosedOK):
            ws.send_nowait("too late")
        with pytest.raises(ConnectionClosedOK):
            await ws.ping()


@async_test
async def test_close_timeout_drops_a_peer_that_never_answers() -> None:
    capture = Capture()
    async with await start(capture, close_timeout=0.2) as server:
        peer = await raw_client(server.port)
        try:
            server_ws = await capture.next()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await within(server_ws.close())  # the raw peer never reads nor answers
            assert loop.time() - started < 1.5
            assert server_ws.ready_state == 3
        finally:
            peer.close()


# ---------------------------------------------------------------- Listener


class Recorder(Listener):
    def __init__(self, log: list[Any], fail_on: str = "", echo: bool = True) -> None:
        self.log = log
        self.fail_on = fail_on
        self.echo = echo

    def on_open(self, ws: WebSocket) -> None:
        self.log.append(("open", ws.ready_state))

    def on_message(self, ws: WebSocket, message: Any) -> None:
        self.log.append(("message", message))
        if message == self.fail_on:
            raise ValueError("bad message")
        if self.echo:
            ws.send_nowait(message)

    def on_ping(self, ws: WebSocket, payload: bytes) -> None:
        self.log.append(("ping", bytes(payload)))

    def on_pong(self, ws: WebSocket, payload: bytes) -> None:
        self.log.append(("pong", bytes(payload)))

    def on_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.log.append(("close", code, reason, was_clean))

    def on_error(self, ws: WebSocket, error: BaseException) -> None:
        self.log.append(("error", type(error).__name__, str(error)))


@async_test
async def test_listener_callbacks_in_order() -> None:
    log: list[Any] = []
    async with await start(functools.partial(Recorder, log)) as server:
        ws = await within(connect(uri(server)))
        await ws.send("hi")
        assert await within(ws.recv()) == "hi"
        await ws.send(b"\x01")
        assert await within(ws.recv()) == b"\x01"
        await within(ws.ping(b"abc"))
        await within(ws.close(4001, "bye"))
        await eventually(lambda: len(log) == 5)
        assert log == [
            ("open", 1),
            ("message", "hi"),
            ("message", b"\x01"),
            ("ping", b"abc"),
            ("close", 4001, "bye", True),
        ]


def recorder_class(log: list[Any], **options: Any) -> type[Listener]:
    """A Listener subclass (what serve() needs) whose instances record into ``log``."""

    class Bound(Recorder):
        def __init__(self) -> None:
            super().__init__(log, **options)

    return Bound


class ClassRecorder(Recorder):
    log: ClassVar[list[Any]] = []

    def __init__(self) -> None:
        super().__init__(ClassRecorder.log, fail_on="explode")


@async_test
async def test_listener_class_and_error_closes_with_1011() -> None:
    ClassRecorder.log = []
    async with await start(ClassRecorder) as server:
        async with connect(uri(server)) as ws:
            await ws.send("fine")
            assert await within(ws.recv()) == "fine"
            await ws.send("explode")
            with pytest.raises(ConnectionClosedError) as info:
                await within(ws.recv())
            assert info.value.code == 1011
        await eventually(lambda: ClassRecorder.log[-1][0] == "close")
        log = ClassRecorder.log
        assert log[:4] == [
            ("open", 1),
            ("message", "fine"),
            ("message", "explode"),
            ("error", "ValueError", "bad message"),
        ]
        assert [entry[0] for entry in log].count("close") == 1


class _FailOnFirst(Listener):
    seen: ClassVar[list[Any]] = []

    def on_message(self, ws: WebSocket, message: Any) -> None:
        self.seen.append(message)
        if message == "first":
            ws.fail(1008, "no more")


@async_test
async def test_listener_gets_nothing_after_fail() -> None:
    # RFC 6455 §7.1.7: once the server fails the connection, what the peer
    # still sends -- later in the same read, or in later reads while the
    # server drains -- is read and dropped, never handed to on_message.
    _FailOnFirst.seen = []
    async with await start(_FailOnFirst, compression=None) as server:
        peer = await raw_client(server.port)
        try:
            for text in ("first", "second", "third"):
                peer.conn.send_text(text)
            await peer.flush()  # one write: the three frames arrive together
            close = await peer.next_event(answer=False)
            assert isinstance(close, CloseReceived) and close.code == 1008
            await peer.send_raw(encode_frame(Opcode.TEXT, b"later", mask=b"abcd"))
            await asyncio.sleep(0.1)
            await peer.flush()  # the close reply
            await peer.events_until_eof()
        finally:
            peer.close()
    assert _FailOnFirst.seen == ["first"]


@async_test
async def test_sync_handler_returning_no_awaitable_closes_with_1011() -> None:
    def not_async(ws: WebSocket) -> None:
        return None

    async with await start(not_async) as server, connect(uri(server)) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            await within(ws.recv())
        assert info.value.code == 1011


@async_test
async def test_listener_on_client_side() -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.send("welcome")
        async for message in ws:
            await ws.send(f"echo {message}")

    log: list[Any] = []
    async with await start(handler) as server:
        ws = await within(connect(uri(server), listener=Recorder(log, echo=False)))
        await eventually(lambda: ("message", "welcome") in log)
        await ws.send("hi")
        await eventually(lambda: ("message", "echo hi") in log)
        await within(ws.close())
        await eventually(lambda: log[-1][0] == "close")
        assert sorted(log[:2]) == [("message", "welcome"), ("open", 1)]
        assert log[2:] == [("message", "echo hi"), ("close", 1000, "", True)]


@async_test
async def test_client_listener_on_open_before_first_message() -> None:
    raw = RawServer()
    try:
        log: list[Any] = []
        connecting = asyncio.ensure_future(
            connect(f"ws://127.0.0.1:{raw.port}/", listener=Recorder(log), compression=None)
        )
        loop = asyncio.get_running_loop()
        sock, _ = await within(loop.sock_accept(raw.sock))
        sock.setblocking(False)
        peer = RawPeer(sock, ServerConnection(compression=None))
        raw.peers.append(peer)
        await peer.next_event()
        peer.conn.accept()
        peer.conn.send_text("welcome")
        await peer.flush()  # the 101 and the message in one segment
        ws = await within(connecting)
        await eventually(lambda: len(log) >= 2)
        assert log[:2] == [("open", 1), ("message", "welcome")]
        ws.abort()
    finally:
        raw.close()


@async_test
async def test_listener_ping_and_message_in_one_read_keep_their_order() -> None:
    log: list[Any] = []
    async with await start(recorder_class(log)) as server:
        peer = await raw_client(server.port)
        try:
            await eventually(lambda: len(log) == 1)
            peer.conn.send_ping(b"first")
            peer.conn.send_text("second")
            await peer.flush()  # one write, one read on the server
            await eventually(lambda: len(log) == 3)
            assert log == [("open", 1), ("ping", b"first"), ("message", "second")]
        finally:
            peer.close()


@async_test
async def test_listener_class_on_client_side_gets_pongs() -> None:
    ClassRecorder.log = []
    async with await start(echo) as server:
        ws = await within(connect(uri(server), listener=ClassRecorder))
        await within(ws.ping(b"xyz"))
        assert ("pong", b"xyz") in ClassRecorder.log
        await within(ws.close())


# ---------------------------------------------------------------- broadcast


class Frames:
    """Records the frames broadcast writes, by identity: one object per encoding."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.written: list[bytes] = []
        original = WebSocket.write_corked

        def write_corked(ws: Any, data: bytes) -> None:
            self.written.append(data)
            original(ws, data)

        monkeypatch.setattr(WebSocket, "write_corked", write_corked)

    @property
    def encodings(self) -> int:
        """How many distinct frame objects were written."""
        return len({id(frame) for frame in self.written})


async def open_clients(
    server: Any, capture: Capture, count: int, **options: Any
) -> tuple[list[WebSocket], list[WebSocket]]:
    clients = await within(asyncio.gather(*(connect(uri(server), **options) for _ in range(count))))
    servers = [await capture.next() for _ in range(count)]
    return clients, servers


async def close_all(clients: list[WebSocket]) -> None:
    await within(asyncio.gather(*(ws.close() for ws in clients)))


@async_test
async def test_broadcast_encodes_once_for_100_connections(monkeypatch) -> None:
    capture = Capture()
    async with await start(capture) as server:
        clients, servers = await open_clients(server, capture, 100, compression=None)
        try:
            frames = Frames(monkeypatch)
            result = broadcast(server.websockets, "news")
            assert result.sent == 100 and result.slow == []
            assert frames.encodings == 1 and len(frames.written) == 100
            received = await within(asyncio.gather(*(ws.recv() for ws in clients)))
            assert received == ["news"] * 100
            result = broadcast(servers, b"\x00bin")
            assert frames.encodings == 2 and result.sent == 100
            received = await within(asyncio.gather(*(ws.recv() for ws in clients)))
            assert received == [b"\x00bin"] * 100
        finally:
            await close_all(clients)


@async_test
async def test_broadcast_deflate_no_context_takeover_shares_one_frame(monkeypatch) -> None:
    capture = Capture()
    options = {"server_no_context_takeover": True}
    async with await start(capture, deflate_options=options) as server:
        clients, servers = await open_clients(server, capture, 10)
        plain, plain_servers = await open_clients(server, capture, 3, compression=None)
        try:
            assert all(ws.connection.deflate is not None for ws in servers)
            frames = Frames(monkeypatch)
            message = "compress me " * 50
            for _ in range(2):
                result = broadcast(servers + plain_servers, message)
                assert result.sent == 13
                received = await within(asyncio.gather(*(ws.recv() for ws in clients + plain)))
                assert received == [message] * 13
            assert frames.encodings == 4  # one deflated and one plain frame, twice
            # Ordinary sends still work after broadcasts.
            await servers[0].send("after")
            assert await within(clients[0].recv()) == "after"
        finally:
            await close_all(clients + plain)


@async_test
async def test_broadcast_deflate_context_takeover_compresses_per_connection(monkeypatch) -> None:
    capture = Capture()
    async with await start(capture) as server:
        clients, servers = await open_clients(server, capture, 5)
        try:
            frames = Frames(monkeypatch)
            for text in ("first " * 20, "second " * 20, "first " * 20):
                assert broadcast(servers, text).sent == 5
                received = await within(asyncio.gather(*(ws.recv() for ws in clients)))
                assert received == [text] * 5
            assert frames.encodings == 15
            for server_ws, ws in zip(servers, clients):
                await server_ws.send("first " * 20)
                assert await within(ws.recv()) == "first " * 20
        finally:
            await close_all(clients)


@async_test
async def test_broadcast_ignores_closed_connections() -> None:
    capture = Capture()
    async with await start(capture) as server:
        clients, servers = await open_clients(server, capture, 3)
        await within(clients[0].close())
        await within(servers[0].wait_closed())
        result = broadcast(servers, "still here")
        assert result == (2, [])
        assert await within(clients[1].recv()) == "still here"
        await close_all(clients)


@async_test
async def test_broadcast_from_clients() -> None:
    received: list[Any] = []

    async def handler(ws: WebSocket) -> None:
        async for message in ws:
            received.append(message)

    async with await start(handler) as server:
        clients = [await within(connect(uri(server))) for _ in range(3)]
        result = broadcast(clients, "from client")
        assert result.sent == 3
        await eventually(lambda: len(received) == 3)
        assert received == ["from client"] * 3
        await close_all(clients)


async def make_slow(server_ws: WebSocket, limit: int) -> None:
    """Fill ``server_ws``'s send buffer (its raw peer does not read) over ``limit``."""
    chunk = b"x" * (1 << 20)
    for _ in range(64):
        server_ws.send_nowait(chunk)
        if server_ws.buffered_amount > limit:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the send buffer never filled")


@async_test
async def test_broadcast_skips_slow_connection() -> None:
    capture = Capture()
    async with await start(capture, compression=None, max_message_size=None) as server:
        peer = await raw_client(server.port, rcvbuf=4096, max_message_size=None)
        try:
            slow_ws = await capture.next()
            fast = await within(connect(uri(server)))
            fast_ws = await capture.next()
            await make_slow(slow_ws, 1 << 20)
            result = broadcast([slow_ws, fast_ws], "tick")
            assert result.sent == 1 and result.slow == [slow_ws]
            assert await within(fast.recv()) == "tick"
            assert slow_ws.ready_state == 1  # skipped, not closed
            result = broadcast([slow_ws, fast_ws], "tock", max_buffer=None)
            assert result.sent == 2 and result.slow == []
            await fast.close()
        finally:
            peer.close()


@async_test
async def test_broadcast_closes_slow_connection_with_1008() -> None:
    capture = Capture()
    async with await start(capture, compression=None, max_message_size=None) as server:
        peer = await raw_client(server.port, rcvbuf=4096, max_message_size=None)
        try:
            slow_ws = await capture.next()
            await make_slow(slow_ws, 64 * 1024)
            result = broadcast([slow_ws], "tick", max_buffer=64 * 1024, on_slow="close")
            assert result == (0, [slow_ws])
            assert slow_ws.connection.close_sent is not None
            assert slow_ws.connection.close_sent[0] == 1008
            # Once the peer reads, it finds the data, then the close frame.
            events = await peer.events_until_eof(timeout=5)
            closes = [e for e in events if isinstance(e, CloseReceived)]
            assert [c.code for c in closes] == [1008]
            assert not any(isinstance(e, TextMessage) for e in events)
            assert all(isinstance(e, (BinaryMessage, CloseReceived)) for e in events)
        finally:
            peer.close()


@async_test
async def test_broadcast_rejects_bad_on_slow() -> None:
    with pytest.raises(ValueError):
        broadcast([], "x", on_slow="wait")


@async_test
async def test_broadcast_skips_connection_sending_fragments() -> None:
    capture = Capture()
    async with await start(capture) as server, connect(uri(server)) as ws:
        server_ws = await capture.next()
        gate = asyncio.Event()

        async def pieces() -> Any:
            yield "part1-"
            yield "part2-"  # part1 goes out once part2 is known
            await gate.wait()
            yield "part3"

        sending = asyncio.ensure_future(server_ws.send(pieces()))
        await asyncio.sleep(0.05)
        result = broadcast([server_ws], "interrupt?")
        assert result == (0, [server_ws])
        gate.set()
        await within(sending)
        assert await within(ws.recv()) == "part1-part2-part3"
        assert broadcast([server_ws], "now").sent == 1
        assert await within(ws.recv()) == "now"


# -------------------------------------------------------------------- rooms


@async_test
async def test_rooms_membership_and_send_with_exclude() -> None:
    capture = Capture()
    async with await start(capture) as server:
        clients, servers = await open_clients(server, capture, 3)
        a, b, c = servers
        rooms = Rooms()
        rooms.join("red", a)
        rooms.join("red", b)
        rooms.join("blue", b)
        rooms.join("blue", c)
        assert rooms.rooms() == ["blue", "red"]
        assert rooms.rooms(b) == ["blue", "red"]
        assert rooms.members("red") == frozenset({a, b})
        assert rooms.members("nowhere") == frozenset()

        result = rooms.send("red", "to red", exclude=a)
        assert result.sent == 1
        assert await within(clients[1].recv()) == "to red"
        result = rooms.send("blue", b"to blue")
        assert result.sent == 2
        assert await within(clients[1].recv()) == b"to blue"
        assert await within(clients[2].recv()) == b"to blue"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(clients[0].recv(), 0.1)

        rooms.leave("red", a)
        assert rooms.members("red") == frozenset({b})
        rooms.leave("red", b)
        assert rooms.rooms() == ["blue"]
        rooms.join("red", a)
        rooms.leave_all(b)
        assert rooms.rooms(b) == [] and rooms.members("blue") == frozenset({c})
        assert rooms.send("empty", "nobody").sent == 0
        await close_all(clients)


@async_test
async def test_rooms_presence_by_member_name() -> None:
    """Rooms' presence: names, counted once however many connections share one."""
    capture = Capture()
    async with await start(capture) as server:
        clients, servers = await open_clients(server, capture, 3)
        a, b, c = servers
        changes: list[tuple[str, str, str]] = []
        async with Rooms(on_presence=lambda *change: changes.append(change)) as rooms:
            rooms.join("red", a, "ann")
            rooms.join("red", b, "ann")  # a second tab of the same user
            rooms.join("red", c)
            assert rooms.presence("red") == {"ann", f"{id(c):x}"}
            rooms.leave("red", a)
            assert rooms.presence("red") == {"ann", f"{id(c):x}"}
            rooms.leave_all(b)
            assert rooms.presence("red") == {f"{id(c):x}"}
            assert rooms.all_rooms() == ["red"]
        assert changes == [
            ("red", "ann", "join"),
            ("red", f"{id(c):x}", "join"),
            ("red", "ann", "leave"),
        ]
        await close_all(clients)


@async_test
async def test_rooms_closed_connection_leaves_automatically() -> None:
    capture = Capture()
    async with await start(capture) as server:
        clients, servers = await open_clients(server, capture, 2)
        rooms = Rooms()
        for room in ("lobby", "game"):
            rooms.join(room, servers[0])
            rooms.join(room, servers[1])
        await within(clients[0].close())
        await within(servers[0].wait_closed())
        assert rooms.rooms(servers[0]) == []
        assert rooms.members("lobby") == frozenset({servers[1]})
        rooms.join("lobby", servers[0])  # closed: ignored
        assert rooms.members("lobby") == frozenset({servers[1]})
        await within(clients[1].close())
        await within(servers[1].wait_closed())
        assert rooms.rooms() == []


@async_test
async def test_rooms_chat_from_a_handler() -> None:
    rooms = Rooms()

    async def handler(ws: WebSocket) -> None:
        assert ws.request is not None
        room = ws.request.path.strip("/")
        rooms.join(room, ws)
        async for message in ws:
            rooms.send(room, message, exclude=ws)

    async with await start(handler) as server:
        alice = await within(connect(uri(server, "/r1")))
        bob = await within(connect(uri(server, "/r1")))
        carol = await within(connect(uri(server, "/r2")))
        await eventually(lambda: len(rooms.members("r1")) == 2 and rooms.members("r2"))
        await alice.send("hello r1")
        assert await within(bob.recv()) == "hello r1"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(carol.recv(), 0.1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(alice.recv(), 0.05)
        await close_all([alice, bob, carol])
        await eventually(lambda: rooms.rooms() == [])


# ------------------------------------------------------------ write coalescing


class _BroadcastThenDirect(Listener):
    def on_message(self, ws: WebSocket, message: Any) -> None:
        broadcast([ws], "broadcast 1")
        ws.send_nowait("direct")
        broadcast([ws], "broadcast 2")


@async_test
async def test_broadcast_and_direct_sends_keep_their_order() -> None:
    async with serve(_BroadcastThenDirect, "127.0.0.1", 0) as server:  # noqa: SIM117
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("go")
            received = [await ws.recv() for _ in range(3)]
    assert received == ["broadcast 1", "direct", "broadcast 2"]


class _Burst(Listener):
    writes: ClassVar[list[int]] = []

    def on_message(self, ws: WebSocket, message: Any) -> None:
        transport = ws.transport
        original = transport.write

        def counting_write(data: Any) -> None:
            _Burst.writes.append(len(data))
            original(data)

        transport.write = counting_write  # type: ignore[method-assign]
        for index in range(10):
            broadcast([ws], f"frame {index}")


@async_test
async def test_a_burst_of_broadcasts_is_one_write_per_connection() -> None:
    _Burst.writes.clear()
    async with serve(_Burst, "127.0.0.1", 0) as server:  # noqa: SIM117
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("go")
            received = [await ws.recv() for _ in range(10)]
            writes = len(_Burst.writes)  # before the closing handshake writes
    assert received == [f"frame {index}" for index in range(10)]
    assert writes == 1  # ten frames, one transport.write


@async_test
async def test_create_server_and_create_connection_hooks() -> None:
    """serve(create_server=...) and connect(create_connection=...) make the transports
    (e.g. aiofastnet's); the same signature as aiofastnet.create_server/_connection."""
    calls: list[str] = []

    async def create_server(loop: Any, factory: Any, host: Any, port: Any, **kwargs: Any) -> Any:
        calls.append(f"server {host} {kwargs['backlog']}")
        return await loop.create_server(factory, host, port, **kwargs)

    async def create_connection(loop: Any, factory: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"connection {args}")
        return await loop.create_connection(factory, *args, **kwargs)

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, create_server=create_server, backlog=7) as server:
        port = server.port
        async with connect(uri(server), create_connection=create_connection) as ws:
            await ws.send("through the hooks")
            assert await within(ws.recv()) == "through the hooks"
    assert calls == ["server 127.0.0.1 7", f"connection ('127.0.0.1', {port})"]


@async_test
async def test_pongs_to_a_peer_that_never_reads_do_not_accumulate() -> None:
    """Pings from a peer that reads nothing: once the send buffer is over its mark,
    only the latest pong is kept (it goes out when the peer reads again)."""
    capture = Capture()
    async with await start(capture, compression=None, max_ping_rate=None) as server:
        peer = await raw_client(server.port, rcvbuf=4096)
        try:
            server_ws = await capture.next()
            await make_slow(server_ws, 64 * 1024)  # writing is now paused
            assert server_ws.writing_paused
            before = server_ws.buffered_amount
            for index in range(2000):
                peer.conn.send_ping(b"%04d" % index + b"." * 100)
            await peer.flush()
            await eventually(lambda: server_ws.connection.hold_pongs)
            await asyncio.sleep(0.2)  # every ping read and answered (or not)
            # 2000 pongs of 106 bytes would be 212 KB more; at most one is kept.
            assert server_ws.buffered_amount <= before + 200
        finally:
            peer.close()
