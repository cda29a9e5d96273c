"""The asyncio server: heartbeats, backpressure, shutdown, handshake policy, listening.

Real loopback sockets; every test runs with both codecs (``codec`` fixture).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from typing import Any

import pytest
from asyncio_helpers import (
    Capture,
    async_test,
    echo,
    eventually,
    http_exchange,
    raw_client,
    start,
    uri,
    within,
    ws_request,
)

from wsframe.asyncio import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Listener,
    WebSocket,
    connect,
    serve,
)
from wsframe.errors import InvalidHandshake
from wsframe.events import BinaryMessage, CloseReceived, Ping, TextMessage
from wsframe.handshake import Response

# ----------------------------------------------------------------- heartbeats


@async_test
async def test_heartbeat_fails_a_peer_that_never_pongs_with_1011() -> None:
    outcome: list[Any] = []

    async def handler(ws: WebSocket) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            outcome.append(exc)

    async with await start(handler, ping_interval=0.2, ping_timeout=0.2) as server:
        peer = await raw_client(server.port, auto_pong=False)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            events = await peer.events_until_eof(timeout=3)
            elapsed = loop.time() - started
            assert 0.3 <= elapsed < 0.9, elapsed
            assert any(isinstance(e, Ping) for e in events)
            closes = [e for e in events if isinstance(e, CloseReceived)]
            assert [(c.code, c.reason) for c in closes] == [(1011, "keepalive ping timeout")]
            await eventually(lambda: len(outcome) == 1)
            assert outcome[0].sent == (1011, "keepalive ping timeout")
            assert not outcome[0].was_clean  # the handler is told at once
        finally:
            peer.close()


@async_test
async def test_heartbeat_keeps_a_healthy_connection_and_counts_pongs() -> None:
    pongs: list[bytes] = []

    class Pongs(Listener):
        def on_pong(self, ws: WebSocket, payload: bytes) -> None:
            pongs.append(payload)

        def on_message(self, ws: WebSocket, message: Any) -> None:
            ws.send_nowait(message)

    async with (
        await start(Pongs, ping_interval=0.05, ping_timeout=0.05) as server,
        connect(uri(server), ping_interval=0.05, ping_timeout=0.05) as ws,
    ):
        await asyncio.sleep(0.6)  # a dozen intervals
        assert len(pongs) >= 4
        assert len(set(pongs)) == len(pongs)  # a fresh payload each time
        await ws.send("still alive")
        assert await within(ws.recv()) == "still alive"
        assert ws.ready_state == 1


@async_test
async def test_heartbeat_disabled() -> None:
    async with await start(echo, ping_interval=None) as server:
        peer = await raw_client(server.port, auto_pong=False)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await peer.next_event(timeout=0.3)
        finally:
            peer.close()


@async_test
async def test_heartbeat_spares_a_connection_whose_reading_is_paused() -> None:
    capture = Capture()
    options = {"ping_interval": 0.1, "ping_timeout": 0.1, "max_queue": 2}
    async with (
        await start(capture, **options) as server,
        connect(uri(server), ping_interval=None) as ws,
    ):
        server_ws = await capture.next()
        for i in range(10):
            await ws.send(f"message {i}")
        await asyncio.sleep(0.6)  # the application is busy; the peer answers pings
        received = [await within(server_ws.recv()) for _ in range(10)]
        assert received == [f"message {i}" for i in range(10)]
        assert server_ws.ready_state == 1
        await ws.send("more")
        assert await within(server_ws.recv()) == "more"


# --------------------------------------------------------------- backpressure


@async_test
async def test_send_waits_while_the_peer_does_not_read() -> None:
    chunk = b"z" * 65536
    total = 400  # 25 MiB: far more than the socket buffers hold
    limit = 64 * 1024
    progress = {"sent": 0, "max_after_send": 0, "done": False}

    async def handler(ws: WebSocket) -> None:
        for _ in range(total):
            await ws.send(chunk)
            progress["sent"] += 1
            progress["max_after_send"] = max(progress["max_after_send"], ws.buffered_amount)
        progress["done"] = True
        await ws.send("end")
        await ws.wait_closed()

    capture_ws: list[WebSocket] = []

    def process_request(ws: WebSocket, request: Any) -> None:
        capture_ws.append(ws)

    async with await start(
        handler,
        compression=None,
        write_limit=limit,
        process_request=process_request,
        max_message_size=None,
    ) as server:
        peer = await raw_client(server.port, rcvbuf=8192, max_message_size=None)
        try:
            [ws] = capture_ws
            # Wait until the handler is stuck in send().
            last = -1
            while progress["sent"] != last:
                last = progress["sent"]
                await asyncio.sleep(0.15)
            assert not progress["done"] and progress["sent"] < total // 2
            assert limit <= ws.buffered_amount <= limit + len(chunk) + 16
            assert progress["max_after_send"] <= limit
            # The peer reads: the handler resumes and everything arrives in order.
            count = 0
            while True:
                event = await peer.next_event(timeout=5)
                if isinstance(event, TextMessage):
                    assert event.data == "end"
                    break
                assert isinstance(event, BinaryMessage) and bytes(event.data) == chunk
                count += 1
            assert count == total and progress["done"]
        finally:
            peer.close()


@async_test
async def test_reading_pauses_when_the_queue_is_full() -> None:
    capture = Capture()
    size = 64 * 1024
    count = 200
    async with (
        await start(capture, max_queue=4, compression=None) as server,
        connect(uri(server), compression=None, ping_interval=None, write_limit=size) as ws,
    ):
        server_ws = await capture.next()

        async def flood() -> None:
            for i in range(count):
                await ws.send(i.to_bytes(4, "big") * (size // 4))

        flooding = asyncio.ensure_future(flood())
        try:
            await asyncio.sleep(0.3)
            assert not flooding.done()  # the client is blocked too
            transport = server_ws.transport
            assert transport is not None and not transport.is_reading()
            queued = server_ws.queued
            # One read of the transport (256 KiB at most) may overshoot by a few.
            assert 4 <= queued <= 4 + (256 * 1024) // size + 1
            for i in range(count):
                message = await within(server_ws.recv())
                assert message == i.to_bytes(4, "big") * (size // 4)
                assert server_ws.queued <= 4 + (256 * 1024) // size + 1
            await within(flooding)
        finally:
            flooding.cancel()


@async_test
async def test_queue_never_exceeds_max_queue() -> None:
    capture = Capture()
    async with await start(capture, max_queue=4, compression=None) as server:
        peer = await raw_client(server.port)
        try:
            server_ws = await capture.next()
            for i in range(100):
                peer.conn.send_text(str(i))
            await peer.flush()  # 100 small messages in one write
            await eventually(lambda: server_ws.queued >= 4)
            await asyncio.sleep(0.1)
            assert server_ws.queued <= 4
        finally:
            peer.close()


# ---------------------------------------------------------- graceful shutdown


async def connected_clients(server: Any, capture: Capture, count: int) -> list[WebSocket]:
    clients = [await within(connect(uri(server))) for _ in range(count)]
    for _ in range(count):
        await capture.next()
    return clients


@async_test
async def test_async_with_exit_closes_connections_with_1001() -> None:
    capture = Capture()
    async with await start(capture) as server:
        port = server.port
        clients = await connected_clients(server, capture, 3)
    assert capture.finished == 3
    assert not server.is_serving() and not server.websockets
    for ws in clients:
        with pytest.raises(ConnectionClosedOK) as info:
            await within(ws.recv())
        assert info.value.code == 1001
    with pytest.raises(OSError):
        await within(asyncio.open_connection("127.0.0.1", port))


@async_test
async def test_server_close_and_handlers_end() -> None:
    ended: list[Any] = []

    async def handler(ws: WebSocket) -> None:
        try:
            async for _ in ws:
                pass
        except ConnectionClosed as exc:
            ended.append(exc)
        else:
            ended.append(None)

    server = await start(handler)
    try:
        clients = [await within(connect(uri(server))) for _ in range(2)]
        await eventually(lambda: len(server.websockets) == 2)
        await within(server.close())
        assert len(ended) == 2
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                await within(ws.recv())
            assert info.value.code == 1001
        await within(server.wait_closed())
    finally:
        await server.close()


@async_test
async def test_server_close_is_a_clean_closing_handshake() -> None:
    capture = Capture()
    server = await start(capture)
    try:
        async with connect(uri(server)):
            server_ws = await capture.next()
            await within(server.close())
            with pytest.raises(ConnectionClosedOK) as info:
                await within(server_ws.recv())
            assert info.value.was_clean and info.value.code == 1001
    finally:
        await server.close()


@async_test
async def test_serve_forever_cancelled_closes_connections() -> None:
    capture = Capture()
    server = await start(capture)
    try:
        task = asyncio.ensure_future(server.serve_forever())
        async with connect(uri(server)) as ws:
            await capture.next()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await within(task)
            with pytest.raises(ConnectionClosedOK) as info:
                await within(ws.recv())
            assert info.value.code == 1001
        assert not server.is_serving()
    finally:
        await server.close()


@async_test
async def test_server_close_aborts_connections_in_handshake() -> None:
    server = await start(echo)
    try:
        reader, writer = await within(asyncio.open_connection("127.0.0.1", server.port))
        writer.write(b"GET / HTTP/1.1\r\n")
        await eventually(lambda: len(server.websockets) == 1)
        await within(server.close())
        assert await within(reader.read()) == b""
        writer.close()
    finally:
        await server.close()


# ----------------------------------------------------------- handshake policy


@async_test
async def test_process_request_sync_rejects_with_403() -> None:
    seen: list[str] = []

    def process_request(ws: WebSocket, request: Any) -> Any:
        seen.append(request.path)
        if request.headers.get("Authorization") != "Bearer ok":
            return (403, "forbidden\n")
        return None

    async with await start(echo, process_request=process_request) as server:
        with pytest.raises(InvalidHandshake) as info:
            await within(connect(uri(server, "/private")))
        assert info.value.status == 403 and info.value.body == b"forbidden\n"
        async with connect(uri(server), extra_headers={"Authorization": "Bearer ok"}) as ws:
            await ws.send("in")
            assert await within(ws.recv()) == "in"
        assert seen == ["/private", "/"]


@async_test
async def test_process_request_async_rejects_with_headers() -> None:
    async def process_request(ws: WebSocket, request: Any) -> Any:
        await asyncio.sleep(0.01)
        if request.path == "/no":
            return (403, {"X-Why": "because"}, b"nope")
        if request.path == "/response":
            return Response(401, headers={"WWW-Authenticate": "Bearer"}, body=b"login")
        return None

    async with await start(echo, process_request=process_request) as server:
        with pytest.raises(InvalidHandshake) as info:
            await within(connect(uri(server, "/no")))
        assert info.value.status == 403
        assert info.value.headers["X-Why"] == "because" and info.value.body == b"nope"
        with pytest.raises(InvalidHandshake) as info:
            await within(connect(uri(server, "/response")))
        assert info.value.status == 401 and info.value.body == b"login"
        assert info.value.headers["WWW-Authenticate"] == "Bearer"
        async with connect(uri(server, "/yes")) as ws:
            await ws.send("ok")
            assert await within(ws.recv()) == "ok"


@async_test
async def test_process_request_serves_a_plain_http_page() -> None:
    def process_request(ws: WebSocket, request: Any) -> Any:
        if not request.is_websocket:
            return (200, {"Content-Type": "text/html"}, "<h1>hello</h1>")
        return None

    async with await start(echo, process_request=process_request) as server:
        answer = await http_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"content-type: text/html" in head.lower()
        assert body == b"<h1>hello</h1>"
        async with connect(uri(server)) as ws:
            await ws.send("still a websocket server")
            assert await within(ws.recv()) == "still a websocket server"


@async_test
async def test_process_request_error_answers_500() -> None:
    def process_request(ws: WebSocket, request: Any) -> Any:
        raise RuntimeError("oops")

    async with await start(echo, process_request=process_request) as server:
        with pytest.raises(InvalidHandshake) as info:
            await within(connect(uri(server)))
        assert info.value.status == 500


@async_test
async def test_process_request_async_invalid_answer_gives_500() -> None:
    async def process_request(ws: WebSocket, request: Any) -> Any:
        return (200, {"Content-Length": "3"}, "abc")  # Content-Length is not allowed

    async with await start(echo, process_request=process_request) as server:
        with pytest.raises(InvalidHandshake) as info:
            await connect(uri(server), open_timeout=1)
        assert info.value.status == 500


@async_test
async def test_process_request_sync_invalid_answer_gives_500() -> None:
    def process_request(ws: WebSocket, request: Any) -> Any:
        return (200, {"Content-Length": "3"}, "abc")  # Content-Length is not allowed

    async with await start(echo, process_request=process_request) as server:
        with pytest.raises((InvalidHandshake, OSError)):
            await connect(uri(server), open_timeout=1)


@async_test
async def test_open_timeout_drops_half_a_request() -> None:
    async with await start(echo, open_timeout=0.2) as server:
        reader, writer = await within(asyncio.open_connection("127.0.0.1", server.port))
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                data = await within(reader.read())
            except ConnectionResetError:
                data = b""
            assert data == b""
            assert 0.15 <= loop.time() - started < 1.5
            await eventually(lambda: not server.websockets)
        finally:
            writer.close()


@async_test
async def test_open_timeout_does_not_close_open_connections() -> None:
    async with await start(echo, open_timeout=0.1) as server, connect(uri(server)) as ws:
        await asyncio.sleep(0.3)
        await ws.send("fine")
        assert await within(ws.recv()) == "fine"


@async_test
async def test_max_connections_answers_503() -> None:
    capture = Capture()
    async with await start(capture, max_connections=2) as server:
        first = await within(connect(uri(server)))
        second = await within(connect(uri(server)))
        with pytest.raises(InvalidHandshake) as info:
            await within(connect(uri(server)))
        assert info.value.status == 503
        assert info.value.headers.get("Retry-After") == "1"
        await within(first.close())
        await eventually(lambda: len(server.websockets) == 1)
        third = await within(connect(uri(server)))
        await within(asyncio.gather(second.close(), third.close()))


@async_test
async def test_max_connections_per_ip_answers_503() -> None:
    # One address cannot take every slot: 127.0.0.1 is held to 2, while
    # another address (127.0.0.2, also loopback on Linux) still gets in.
    capture = Capture()
    async with await start(capture, max_connections=10, max_connections_per_ip=2) as server:
        first = await within(connect(uri(server)))
        second = await within(connect(uri(server)))
        with pytest.raises(InvalidHandshake) as info:
            await within(connect(uri(server)))
        assert info.value.status == 503
        assert info.value.headers.get("Retry-After") == "1"
        assert server.per_client.counts == {"127.0.0.1": 2}
        try:
            reader, writer = await within(
                asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
            )
        except OSError:  # pragma: no cover - not Linux
            pass
        else:
            writer.write(ws_request())
            assert (await within(reader.readuntil(b"\r\n\r\n"))).startswith(b"HTTP/1.1 101 ")
            assert server.per_client.counts == {"127.0.0.1": 2, "127.0.0.2": 1}
            writer.close()
        await within(first.close())
        await eventually(lambda: server.per_client.counts.get("127.0.0.1") == 1)
        third = await within(connect(uri(server)))
        await within(asyncio.gather(second.close(), third.close()))
        await eventually(lambda: not server.per_client.counts)


def test_max_connections_per_ip_must_be_positive() -> None:
    with pytest.raises(ValueError):
        serve(echo, "127.0.0.1", 0, max_connections_per_ip=0)


@async_test
async def test_request_limits_answer_431() -> None:
    async with await start(echo, max_header_bytes=1000) as server:
        with pytest.raises(InvalidHandshake) as info:
            await within(connect(uri(server), extra_headers={"X-Big": "a" * 2000}))
        assert info.value.status == 431
        async with connect(uri(server)) as ws:
            await ws.send("small headers")
            assert await within(ws.recv()) == "small headers"


@async_test
async def test_not_a_websocket_request_is_refused() -> None:
    async with await start(echo) as server:
        answer = await http_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 4")
        answer = await http_exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 405")


# ------------------------------------------------------------------ listening


@async_test
async def test_unix_socket_server() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ws.sock")
        async with await start(echo, path=path):
            peer = await raw_client(path, "/unix")
            try:
                peer.conn.send_text("over a unix socket")
                await peer.flush()
                event = await peer.next_event()
                assert isinstance(event, TextMessage) and event.data == "over a unix socket"
            finally:
                peer.close()


@async_test
async def test_prebound_socket() -> None:
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with await serve(echo, sock=sock) as server:
            assert server.port == port
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("pre-bound")
                assert await within(ws.recv()) == "pre-bound"
    finally:
        sock.close()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
@async_test
async def test_reuse_port_two_servers_one_port() -> None:
    def tagged(tag: str) -> Any:
        async def handler(ws: WebSocket) -> None:
            await ws.send(tag)

        return handler

    first = await start(tagged("first"), reuse_port=True)
    try:
        second = await start(tagged("second"), port=first.port, reuse_port=True)
        try:
            assert second.port == first.port
            seen = set()
            for _ in range(40):
                async with connect(uri(first)) as ws:
                    seen.add(await within(ws.recv()))
                if len(seen) == 2:
                    break
            assert seen <= {"first", "second"} and seen
        finally:
            await second.close()
    finally:
        await first.close()


@async_test
async def test_listening_on_a_taken_port_fails() -> None:
    async with await start(echo) as server:
        with pytest.raises(OSError):
            await start(echo, port=server.port)


# --------------------------------------------------------------- handler end


@async_test
async def test_handler_exception_closes_with_1011() -> None:
    async def handler(ws: WebSocket) -> None:
        raise RuntimeError("handler bug")

    async with await start(handler) as server, connect(uri(server)) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            await within(ws.recv())
        assert info.value.code == 1011 and info.value.reason == "internal error"


@async_test
async def test_handler_return_closes_with_1000() -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.send("bye")

    async with await start(handler) as server, connect(uri(server)) as ws:
        assert await within(ws.recv()) == "bye"
        with pytest.raises(ConnectionClosedOK) as info:
            await within(ws.recv())
        assert info.value.code == 1000 and info.value.was_clean


@async_test
async def test_handler_object_with_async_call() -> None:
    class Handler:
        async def __call__(self, ws: WebSocket) -> None:
            await ws.send("from an object")

    async with await start(Handler()) as server, connect(uri(server)) as ws:
        assert await within(ws.recv()) == "from an object"


def test_handler_must_be_async_or_listener() -> None:
    with pytest.raises(TypeError):
        serve(42, "127.0.0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        serve(echo, "127.0.0.1", 0, max_queue=0)


# ------------------------------------------------------- negotiation & limits


@async_test
async def test_subprotocols_server_preference() -> None:
    capture = Capture()
    async with await start(capture, subprotocols=["v2", "v1"]) as server:
        async with connect(uri(server), subprotocols=["v1", "v2"]) as ws:
            server_ws = await capture.next()
            assert ws.subprotocol == "v2" and server_ws.subprotocol == "v2"
        async with connect(uri(server), subprotocols=["v1"]) as ws:
            assert ws.subprotocol == "v1"
        async with connect(uri(server), subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
        async with connect(uri(server)) as ws:
            assert ws.subprotocol is None


@async_test
async def test_select_subprotocol_callback() -> None:
    def select(request: Any, offered: list[str]) -> Any:
        return offered[-1] if offered else None

    async with (
        await start(echo, select_subprotocol=select) as server,
        connect(uri(server), subprotocols=["a", "b", "c"]) as ws,
    ):
        assert ws.subprotocol == "c"


@async_test
async def test_max_message_size_closes_with_1009() -> None:
    capture = Capture()
    async with await start(capture, max_message_size=1000) as server:
        async with connect(uri(server), compression=None) as ws:
            server_ws = await capture.next()
            await ws.send(b"x" * 1000)
            assert await within(server_ws.recv()) == b"x" * 1000
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await within(ws.recv())
            assert info.value.code == 1009
        async with connect(uri(server)) as ws:  # compressed: the inflated size counts
            await ws.send("y" * 5000)
            with pytest.raises(ConnectionClosedError) as info:
                await within(ws.recv())
            assert info.value.code == 1009


@async_test
async def test_client_max_message_size() -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.send(b"x" * 2000)
        await ws.wait_closed()

    async with await start(handler) as server, connect(uri(server), max_message_size=1000) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            await within(ws.recv())
        assert info.value.sent is not None and info.value.sent[0] == 1009


@async_test
async def test_compression_negotiated_and_disabled() -> None:
    capture = Capture()
    async with await start(capture) as server:
        async with connect(uri(server)) as ws:
            server_ws = await capture.next()
            assert ws.connection.deflate is not None
            assert server_ws.connection.deflate is not None
        async with connect(uri(server), compression=None) as ws:
            server_ws = await capture.next()
            assert server_ws.connection.deflate is None
    async with await start(capture, compression=None) as server, connect(uri(server)) as ws:
        assert ws.connection.deflate is None
        await ws.send("uncompressed")


@async_test
async def test_early_frames_sent_with_the_request() -> None:
    from wsframe.connection import ClientConnection

    async with await start(echo, compression=None) as server:
        conn = ClientConnection("ws://localhost/", compression=None)
        request = conn.data_to_send()
        # Frames pipelined right after the request (before the 101 arrives).
        conn.state = conn.state.OPEN
        conn.send_text("early")
        frames = conn.data_to_send()
        answer = await http_exchange_keepopen(server.port, request + frames)
        assert answer.startswith(b"HTTP/1.1 101")
        assert b"\x81\x05early" in answer


async def http_exchange_keepopen(port: int, data: bytes) -> bytes:
    reader, writer = await within(asyncio.open_connection("127.0.0.1", port))
    try:
        writer.write(data)
        received = b""
        while b"early" not in received:
            chunk = await within(reader.read(65536))
            if not chunk:
                break
            received += chunk
        return received
    finally:
        writer.close()


@async_test
async def test_ws_request_helper_is_valid() -> None:
    async with await start(echo) as server:
        reader, writer = await within(asyncio.open_connection("127.0.0.1", server.port))
        try:
            writer.write(ws_request())
            head = await within(reader.readuntil(b"\r\n\r\n"))
            assert head.startswith(b"HTTP/1.1 101")
        finally:
            writer.close()
