"""wsframe.uvicorn.WSFrameProtocol under a real uvicorn server, with real clients.

Each test starts ``uvicorn.Server`` (httptools when installed, else h11) as a
task of the test's event loop on a free loopback port, serves a small raw ASGI
application (and a Starlette one when Starlette is installed) with
``ws=WSFrameProtocol``, and talks to it with wsframe's client, websockets'
client, or a hand-driven sans-I/O client for what well-behaved clients do not
do (never answering a ping).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn")

import websockets  # noqa: E402
from asyncio_helpers import async_test  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from wsframe.asyncio import ConnectionClosed, connect  # noqa: E402
from wsframe.connection import ClientConnection  # noqa: E402
from wsframe.errors import InvalidHandshake  # noqa: E402
from wsframe.events import Accepted, CloseReceived, Ping  # noqa: E402
from wsframe.handshake import OriginPolicy  # noqa: E402
from wsframe.uvicorn import WSFrameProtocol  # noqa: E402

try:
    import httptools  # noqa: F401

    HTTP_IMPL = "httptools"
except ImportError:  # pragma: no cover
    HTTP_IMPL = "h11"

STEP = 5.0


# --------------------------------------------------------------------- app


class Recorder:
    """What the application saw: disconnect events, scopes."""

    def __init__(self) -> None:
        self.disconnects: list[dict[str, Any]] = []
        self.scopes: list[dict[str, Any]] = []
        self.disconnected = asyncio.Event()


def make_app(rec: Recorder) -> Any:
    """A raw ASGI application whose behaviour depends on the path."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "websocket"
        rec.scopes.append(scope)
        assert await receive() == {"type": "websocket.connect"}
        path = scope["path"]
        if path == "/reject":
            await send({"type": "websocket.close"})
            return
        if path == "/deny":
            assert "websocket.http.response" in scope["extensions"]
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-deny", b"yes")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"away"})
            return
        if path == "/error":
            raise RuntimeError("boom (expected by the test)")
        offered = scope["subprotocols"]
        # Prefer "superchat" to "chat", whatever the client's order.
        chosen = next((p for p in ("superchat", "chat") if p in offered), None)
        await send(
            {"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"x-app", b"wsframe")]}
        )
        if path == "/return":
            return  # the server closes with 1000
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                rec.disconnects.append(message)
                rec.disconnected.set()
                return
            text = message.get("text")
            if text is not None and text.startswith("close:"):
                _, code, reason = text.split(":", 2)
                await send({"type": "websocket.close", "code": int(code), "reason": reason})
                continue
            if text == "scope":
                await send(
                    {
                        "type": "websocket.send",
                        "text": repr((scope["path"], scope["raw_path"], scope["query_string"])),
                    }
                )
                continue
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})

    return app


def make_starlette_app(rec: Recorder) -> Any:
    starlette = pytest.importorskip("starlette")
    del starlette
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(ws: WebSocket) -> None:
        await ws.accept(subprotocol="chat" if "chat" in ws.scope["subprotocols"] else None)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    rec.disconnects.append(message)
                    rec.disconnected.set()
                    return
                if message.get("text") is not None:
                    await ws.send_text(message["text"])
                else:
                    await ws.send_bytes(message["bytes"])
        except WebSocketDisconnect:  # pragma: no cover
            rec.disconnected.set()

    return Starlette(routes=[WebSocketRoute("/echo", echo)])


# ------------------------------------------------------------------ server


@contextlib.asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[tuple[int, Any]]:
    """Run uvicorn with WSFrameProtocol on a free loopback port; yield (port, server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options.setdefault("lifespan", "off")
    options.setdefault("log_level", "warning")
    options.setdefault("ws", WSFrameProtocol)
    config = uvicorn.Config(app, http=HTTP_IMPL, **options)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # older uvicorn
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert server.started
        yield port, server
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 10)
        finally:
            sock.close()


# ------------------------------------------------------------------- tests


@async_test(timeout=30)
async def test_echo_text_and_bytes() -> None:
    rec = Recorder()
    async with (
        serve(make_app(rec)) as (port, _),
        connect(f"ws://127.0.0.1:{port}/echo", compression=None) as ws,
    ):
        for message in ("hello", "", "é" * 1000, b"\x00\xff" * 10, b"", b"x" * 200_000):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), STEP) == message
        await ws.send("scope")
        assert await ws.recv() == repr(("/echo", b"/echo", b""))


@async_test(timeout=30)
async def test_scope_path_query_headers() -> None:
    rec = Recorder()
    async with (
        serve(make_app(rec), root_path="/root") as (port, _),
        connect(
            f"ws://127.0.0.1:{port}/a%20b?x=1&y=%20", extra_headers={"X-Custom": "Value"}
        ) as ws,
    ):
        await ws.send("scope")
        assert await ws.recv() == repr(("/root/a b", b"/root/a%20b", b"x=1&y=%20"))
    scope = rec.scopes[0]
    headers = dict(scope["headers"])
    assert headers[b"x-custom"] == b"Value"
    assert headers[b"upgrade"].lower() == b"websocket"
    assert scope["scheme"] == "ws"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", port)
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["subprotocols"] == []


@async_test(timeout=30)
async def test_websockets_client_echo_and_subprotocol() -> None:
    rec = Recorder()
    async with (
        serve(make_app(rec)) as (port, _),
        ws_connect(f"ws://127.0.0.1:{port}/echo", subprotocols=["chat", "superchat"]) as ws,
    ):
        assert ws.subprotocol == "superchat"
        assert ws.response.headers["x-app"] == "wsframe"
        assert ws.response.headers["server"] == "uvicorn"
        await ws.send("text")
        assert await ws.recv() == "text"
        await ws.send(b"bytes")
        assert await ws.recv() == b"bytes"
    await asyncio.wait_for(rec.disconnected.wait(), STEP)
    assert rec.disconnects == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


@async_test(timeout=30)
async def test_subprotocol_selection() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _):
        async with connect(f"ws://127.0.0.1:{port}/echo", subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
        async with connect(f"ws://127.0.0.1:{port}/echo", subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
        async with connect(f"ws://127.0.0.1:{port}/echo") as ws:
            assert ws.subprotocol is None
    assert rec.scopes[0]["subprotocols"] == ["chat"]


@async_test(timeout=30)
async def test_reject_with_close_before_accept_is_403() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _):
        with pytest.raises(InvalidHandshake) as info:
            await connect(f"ws://127.0.0.1:{port}/reject")
        assert info.value.status == 403
        with pytest.raises(websockets.InvalidStatus) as info2:
            async with ws_connect(f"ws://127.0.0.1:{port}/reject"):
                pass  # pragma: no cover
        assert info2.value.response.status_code == 403


@async_test(timeout=30)
async def test_configure_origins_refuses_before_the_application() -> None:
    rec = Recorder()
    protocol = WSFrameProtocol.configure(origins=["https://app.example", None])
    assert issubclass(protocol, WSFrameProtocol) and protocol.origin_policy is not None
    assert WSFrameProtocol.origin_policy is None  # the base class is unchanged
    # __slots__ all the way up: a connection has no __dict__ (as on any interpreter).
    assert all("__slots__" in vars(klass) for klass in protocol.__mro__[:-1])
    async with serve(make_app(rec), ws=protocol) as (port, _):
        url = f"ws://127.0.0.1:{port}/echo"
        for origin in ("https://evil.example", "http://app.example", "null"):
            with pytest.raises(InvalidHandshake) as info:
                await connect(url, origin=origin)
            assert info.value.status == 403 and info.value.body == b"origin not allowed\n"
        assert rec.scopes == []  # the application was never called
        for origin in ("https://APP.example:443", None):
            async with connect(url, origin=origin) as ws:
                await ws.send("hi")
                assert await asyncio.wait_for(ws.recv(), STEP) == "hi"
        assert len(rec.scopes) == 2


@async_test(timeout=30)
async def test_asgi_application_checks_origins_with_allows_scope() -> None:
    # Under any ASGI server: the application refuses with websocket.close (403).
    policy = OriginPolicy(["https://app.example"])
    inner = make_app(Recorder())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and not policy.allows_scope(scope):
            assert await receive() == {"type": "websocket.connect"}
            await send({"type": "websocket.close"})
            return
        await inner(scope, receive, send)

    async with serve(app) as (port, _):
        url = f"ws://127.0.0.1:{port}/echo"
        with pytest.raises(InvalidHandshake) as info:
            await connect(url, origin="https://evil.example")
        assert info.value.status == 403
        async with connect(url, origin="https://app.example") as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), STEP) == "hi"


@async_test(timeout=30)
async def test_reject_with_http_response_extension() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _):
        with pytest.raises(websockets.InvalidStatus) as info:
            async with ws_connect(f"ws://127.0.0.1:{port}/deny"):
                pass  # pragma: no cover
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["x-deny"] == "yes"
        assert response.headers["content-type"] == "text/plain"
        assert response.headers["content-length"] == "7"
        assert response.body == b"go away"


@async_test(timeout=30)
async def test_application_error_before_accept_is_500() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _):
        with pytest.raises(InvalidHandshake) as info:
            await connect(f"ws://127.0.0.1:{port}/error")
        assert info.value.status == 500


@async_test(timeout=30)
async def test_application_returning_closes_with_1000() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _), connect(f"ws://127.0.0.1:{port}/return") as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), STEP)
        assert info.value.code == 1000
        assert info.value.was_clean


@async_test(timeout=30)
async def test_close_code_and_reason_from_client() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _):
        ws = await connect(f"ws://127.0.0.1:{port}/echo")
        await ws.close(4001, "client says bye")
        await asyncio.wait_for(rec.disconnected.wait(), STEP)
        assert ws.close_code == 4001
    assert rec.disconnects == [
        {"type": "websocket.disconnect", "code": 4001, "reason": "client says bye"}
    ]


@async_test(timeout=30)
async def test_close_code_and_reason_from_server() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _), connect(f"ws://127.0.0.1:{port}/echo") as ws:
        await ws.send("close:4002:server says bye")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), STEP)
        assert (info.value.code, info.value.reason) == (4002, "server says bye")
        assert info.value.was_clean
        # The application's own close is reported back to it.
        await asyncio.wait_for(rec.disconnected.wait(), STEP)
    assert rec.disconnects == [
        {"type": "websocket.disconnect", "code": 4002, "reason": "server says bye"}
    ]


@async_test(timeout=30)
async def test_abrupt_disconnect_is_1006() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _):
        ws = await connect(f"ws://127.0.0.1:{port}/echo")
        ws.abort()
        await asyncio.wait_for(rec.disconnected.wait(), STEP)
    assert rec.disconnects[0]["code"] == 1006


async def _raw_client(port: int, path: str, **options: Any) -> tuple[Any, Any, ClientConnection]:
    """A hand-driven client: it answers nothing by itself (auto_pong=False)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = ClientConnection(f"ws://127.0.0.1:{port}{path}", auto_pong=False, **options)
    writer.write(conn.data_to_send())
    while True:
        data = await asyncio.wait_for(reader.read(65536), STEP)
        assert data, "the server closed during the handshake"
        conn.receive_data(data)
        events = conn.events()
        if any(isinstance(event, Accepted) for event in events):
            return reader, writer, conn


async def _read_until_close(reader: Any, conn: ClientConnection) -> list[Any]:
    seen: list[Any] = []
    while True:
        data = await asyncio.wait_for(reader.read(65536), STEP)
        if not data:
            conn.receive_eof()
            return seen
        conn.receive_data(data)
        seen += conn.events()
        if any(isinstance(event, CloseReceived) for event in seen):
            return seen


@async_test(timeout=30)
async def test_ping_timeout_closes_with_1011() -> None:
    rec = Recorder()
    async with serve(make_app(rec), ws_ping_interval=0.2, ws_ping_timeout=0.3) as (port, _):
        reader, writer, conn = await _raw_client(port, "/echo")
        events = await _read_until_close(reader, conn)
        assert any(isinstance(event, Ping) for event in events)
        close = [event for event in events if isinstance(event, CloseReceived)]
        assert close and close[0].code == 1011
        await asyncio.wait_for(rec.disconnected.wait(), STEP)
        writer.close()
    assert rec.disconnects[0]["code"] == 1011


@async_test(timeout=30)
async def test_pings_answered_keep_the_connection() -> None:
    rec = Recorder()
    options = {"ws_ping_interval": 0.1, "ws_ping_timeout": 0.2}
    async with (
        serve(make_app(rec), **options) as (port, _),
        connect(f"ws://127.0.0.1:{port}/echo") as ws,
    ):
        await asyncio.sleep(0.8)  # several pings, each answered by the client
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), STEP) == "still here"


@async_test(timeout=30)
async def test_max_size_closes_with_1009() -> None:
    rec = Recorder()
    async with serve(make_app(rec), ws_max_size=1000) as (port, _):
        async with connect(f"ws://127.0.0.1:{port}/echo") as ws:
            await ws.send(b"x" * 1000)
            assert await ws.recv() == b"x" * 1000
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), STEP)
            assert info.value.code == 1009
        await asyncio.wait_for(rec.disconnected.wait(), STEP)
    assert rec.disconnects[0]["code"] == 1009


@pytest.mark.parametrize("deflate", [True, False])
def test_per_message_deflate(deflate: bool) -> None:
    @async_test(timeout=30)
    async def run() -> None:
        rec = Recorder()
        async with serve(make_app(rec), ws_per_message_deflate=deflate) as (port, _):
            async with connect(f"ws://127.0.0.1:{port}/echo") as ws:
                assert (ws.connection.deflate is not None) is deflate
                for message in ("abc" * 10_000, b"\x01\x02" * 50_000, "short"):
                    await ws.send(message)
                    assert await asyncio.wait_for(ws.recv(), STEP) == message
            async with ws_connect(f"ws://127.0.0.1:{port}/echo") as ws2:
                extensions = ws2.response.headers.get("Sec-WebSocket-Extensions")
                assert (extensions is not None) is deflate
                await ws2.send("zzz" * 1000)
                assert await ws2.recv() == "zzz" * 1000

    run()


@async_test(timeout=30)
async def test_server_shutdown_closes_with_1012() -> None:
    rec = Recorder()
    async with serve(make_app(rec)) as (port, server):
        ws = await connect(f"ws://127.0.0.1:{port}/echo")
        await ws.send("hi")
        assert await ws.recv() == "hi"
        server.should_exit = True
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), STEP)
        assert info.value.code == 1012
        await asyncio.wait_for(rec.disconnected.wait(), STEP)
    assert rec.disconnects[0]["code"] == 1012


@async_test(timeout=30)
async def test_many_messages_with_a_slow_application() -> None:
    """More messages than ws_max_queue in one burst: reading pauses, nothing is lost."""
    rec = Recorder()
    async with (
        serve(make_app(rec), ws_max_queue=4) as (port, _),
        connect(f"ws://127.0.0.1:{port}/echo", compression=None) as ws,
    ):
        count = 2000
        for i in range(count):
            ws.send_nowait(str(i))
        received = [await asyncio.wait_for(ws.recv(), STEP) for _ in range(count)]
        assert received == [str(i) for i in range(count)]


@async_test(timeout=30)
async def test_early_frames_before_accept() -> None:
    """A client that sends a frame right after its request (before the 101)."""
    rec = Recorder()
    async with serve(make_app(rec)) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = ClientConnection(f"ws://127.0.0.1:{port}/echo", compression=None)
        writer.write(conn.data_to_send())
        await asyncio.sleep(0.05)  # the request head has reached uvicorn
        # Not allowed by the state machine before the 101: build the frame by hand.
        from wsframe import encode_frame

        writer.write(encode_frame(1, b"early", mask=b"abcd"))
        got: list[Any] = []
        messages: list[Any] = []
        conn.on_message = messages.append
        while not messages:
            data = await asyncio.wait_for(reader.read(65536), STEP)
            assert data
            conn.receive_data(data)
            got += conn.events()
        assert messages == ["early"]
        writer.close()


def test_starlette_echo() -> None:
    @async_test(timeout=30)
    async def run() -> None:
        rec = Recorder()
        async with serve(make_starlette_app(rec)) as (port, _):
            async with connect(f"ws://127.0.0.1:{port}/echo", subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                await ws.send("hello")
                assert await ws.recv() == "hello"
                await ws.send(b"\x00" * 100_000)
                assert await ws.recv() == b"\x00" * 100_000
            await asyncio.wait_for(rec.disconnected.wait(), STEP)
            with pytest.raises(InvalidHandshake) as info:
                await connect(f"ws://127.0.0.1:{port}/missing")
            assert info.value.status == 403
        assert rec.disconnects[0]["code"] == 1000

    run()


def test_importable_by_name() -> None:
    from uvicorn.importer import import_from_string

    assert import_from_string("wsframe.uvicorn:WSFrameProtocol") is WSFrameProtocol


#: A configured protocol, as an application module would define it for ``--ws``.
ORIGIN_PROTOCOL = WSFrameProtocol.configure(origins=["https://app.example"])


def test_configured_protocol_importable_by_name() -> None:
    from uvicorn.importer import import_from_string

    protocol = import_from_string("test_uvicorn:ORIGIN_PROTOCOL")
    assert protocol is ORIGIN_PROTOCOL and issubclass(protocol, WSFrameProtocol)
    assert protocol.origin_policy is not None
    assert protocol.origin_policy.allows("https://app.example")


def test_echo_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def run() -> None:
        rec = Recorder()
        async with serve(make_app(rec)) as (port, _), connect(f"ws://127.0.0.1:{port}/echo") as ws:
            for message in ("hello", b"\x00" * 70_000, "x" * 200_000):
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), STEP) == message

    uvloop.run(asyncio.wait_for(run(), 30))
