"""Interoperability of the asyncio server and client with real peers, over loopback sockets.

wsframe's server (:func:`wsframe.asyncio.serve`) talks to the clients of
websockets (``websockets.asyncio.client.connect``) and aiohttp
(``ClientSession.ws_connect``); wsframe's client (:func:`wsframe.asyncio.connect`)
talks to websockets' server (``websockets.asyncio.server.serve``) and to an
aiohttp web server; and, as a baseline, wsframe to wsframe. Each case runs with
both codecs (the ``aio_codec`` fixture points the connection module at
``wsframe._codec_c`` or ``wsframe._codec_py``), and most with and without
permessage-deflate.

Every server below speaks the same small protocol so that one scenario works
against all of them: a text message starting with ``!`` is a command
(``!close CODE REASON``: close after a short pause, while the client is
waiting in ``recv()``; ``!ping``: ping the client and answer ``!rtt SECONDS``;
``!fragments``: send a fragmented text and a fragmented binary message, as
the server's API allows; ``!info``: answer a JSON object with the negotiated
subprotocol); anything else is echoed with its type (text or binary). Each
server records, per connection, the close code and reason the client sent.

The tests are synchronous and run their own event loop (``asyncio.run``) with
a timeout, so they need no pytest plugin. Ports are chosen by the OS, every
socket is on 127.0.0.1, and every server and client is closed in ``finally``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, Callable, Optional, Union

import pytest

from wsframe.asyncio import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    WebSocket,
    connect,
    serve,
)
from wsframe.errors import InvalidHandshake

# wsframe.asyncio.broadcast, the module (the package's attribute is the function).
broadcast_module = importlib.import_module("wsframe.asyncio.broadcast")

websockets = pytest.importorskip("websockets", minversion="13.0")
aiohttp = pytest.importorskip("aiohttp", minversion="3.9")

import websockets.asyncio.client as ws_client  # noqa: E402
import websockets.asyncio.server as ws_server  # noqa: E402
import websockets.exceptions as ws_exceptions  # noqa: E402
from aiohttp import web  # noqa: E402

Message = Union[str, bytes]

#: The message-size limit set on every side (above every default: 1 MiB ours
#: and websockets', 4 MiB aiohttp's).
LIMIT = 8 << 20
#: A "large" message: over 1 MiB.
BIG = (3 << 19) + 7
#: Seconds any one test may take, all included.
TEST_TIMEOUT = 20.0
#: Seconds for opening and closing handshakes.
IO_TIMEOUT = 5.0

SUBPROTOCOL = "chat.v1"
BAD_ORIGIN = "https://evil.example"
TEXT = "héllo wörld — Привет, 世界 🌍"

SERVER_PEERS = ["websockets", "aiohttp"]  # wsframe's client against their servers
CLIENT_PEERS = ["websockets", "aiohttp"]  # their clients against wsframe's server
#: (server, client): exactly one of them is not wsframe, except the baseline.
PAIRS = [
    *[pytest.param(("wsframe", c), id=f"wsframe-server-{c}-client") for c in CLIENT_PEERS],
    *[pytest.param((s, "wsframe"), id=f"{s}-server-wsframe-client") for s in SERVER_PEERS],
    pytest.param(("wsframe", "wsframe"), id="wsframe-server-wsframe-client"),
]
COMPRESSION = [pytest.param(True, id="deflate"), pytest.param(False, id="plain")]


@pytest.fixture
def aio_codec(active_codec: Any) -> Any:
    """The codec of this run (the asyncio layer's)."""
    return active_codec


def run(main: Callable[[], Awaitable[Any]], timeout: float = TEST_TIMEOUT) -> Any:
    """Run ``main()`` in a fresh event loop, failing after ``timeout`` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


# --------------------------------------------------------------------- TLS


# The tls fixture (a trustme CA for 127.0.0.1) comes from conftest.py.


# ----------------------------------------------------------------- servers


class ServerState:
    """What a server saw, for the test to check."""

    def __init__(self) -> None:
        #: ``(code, reason)`` of the close each connection received from its client.
        self.closes: list[tuple[Optional[int], Optional[str]]] = []
        #: Whether permessage-deflate was in use, per connection (wsframe only).
        self.deflate: list[bool] = []
        self.connection_done = asyncio.Event()

    async def wait_done(self) -> None:
        await asyncio.wait_for(self.connection_done.wait(), IO_TIMEOUT)


def parse_close_command(message: str) -> tuple[int, str]:
    _, code, reason = message.split(" ", 2)
    return int(code), reason


async def wsframe_server_handler(ws: WebSocket, state: ServerState) -> None:
    state.deflate.append(ws.connection.deflate is not None)
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("!"):
                if message.startswith("!close "):
                    code, reason = parse_close_command(message)
                    await asyncio.sleep(0.1)  # the client is in recv() by now
                    await ws.close(code, reason)
                    break
                if message == "!ping":
                    rtt = await ws.ping()
                    await ws.send(f"!rtt {rtt!r}")
                elif message == "!fragments":
                    await ws.send(iter(["Frag", "", "menté ", "текст"]))
                    await ws.send(iter([b"\x00\x01", b"", b"\xff" * 1000]))
                elif message == "!info":
                    await ws.send(json.dumps({"subprotocol": ws.subprotocol}))
                continue
            await ws.send(message)
    except ConnectionClosedError:
        pass
    finally:
        await ws.wait_closed()
        state.closes.append((ws.close_code, ws.close_reason))
        state.connection_done.set()


def wsframe_process_request(ws: WebSocket, request: Any) -> Any:
    if request.headers.get("Origin") == BAD_ORIGIN:
        return (403, {"Content-Type": "text/plain"}, "forbidden origin\n")
    return None


async def websockets_server_handler(ws: Any, state: ServerState) -> None:
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("!"):
                if message.startswith("!close "):
                    code, reason = parse_close_command(message)
                    await asyncio.sleep(0.1)
                    await ws.close(code, reason)
                    break
                if message == "!ping":
                    rtt = await (await ws.ping())
                    await ws.send(f"!rtt {rtt!r}")
                elif message == "!fragments":
                    await ws.send(["Frag", "", "menté ", "текст"])
                    await ws.send([b"\x00\x01", b"", b"\xff" * 1000])
                elif message == "!info":
                    await ws.send(json.dumps({"subprotocol": ws.subprotocol}))
                continue
            await ws.send(message)
    except ws_exceptions.ConnectionClosed:
        pass
    finally:
        await ws.wait_closed()
        state.closes.append((ws.close_code, ws.close_reason))
        state.connection_done.set()


def websockets_select_subprotocol(connection: Any, offered: Any) -> Optional[str]:
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def websockets_process_request(connection: Any, request: Any) -> Any:
    if request.headers.get("Origin") == BAD_ORIGIN:
        return connection.respond(403, "forbidden origin\n")
    return None


async def aiohttp_server_handler(
    request: web.Request, state: ServerState, compress: bool
) -> web.StreamResponse:
    if request.headers.get("Origin") == BAD_ORIGIN:
        return web.Response(status=403, text="forbidden origin\n")
    # autoping=False: pings and pongs reach the handler, so that it can time its own ping.
    ws = web.WebSocketResponse(
        protocols=(SUBPROTOCOL,), compress=compress, max_msg_size=LIMIT, autoping=False
    )
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    ping_sent_at: Optional[float] = None
    code: Optional[int] = None
    reason: Optional[str] = None
    try:
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == aiohttp.WSMsgType.PONG:
                if msg.data == b"srv" and ping_sent_at is not None:
                    await ws.send_str(f"!rtt {loop.time() - ping_sent_at!r}")
                    ping_sent_at = None
            elif msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("!"):
                if msg.data.startswith("!close "):
                    close_code, close_reason = parse_close_command(msg.data)
                    await asyncio.sleep(0.1)
                    await ws.close(code=close_code, message=close_reason.encode())
                    code = ws.close_code
                    break
                if msg.data == "!ping":
                    ping_sent_at = loop.time()
                    await ws.ping(b"srv")
                elif msg.data == "!fragments":
                    # aiohttp has no API to send a fragmented message: whole ones.
                    await ws.send_str("Fragmenté текст")
                    await ws.send_bytes(b"\x00\x01" + b"\xff" * 1000)
                elif msg.data == "!info":
                    await ws.send_str(json.dumps({"subprotocol": ws.ws_protocol}))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                code, reason = msg.data, msg.extra
                await ws.close()
                break
            else:  # CLOSING, CLOSED, ERROR
                break
    finally:
        state.closes.append((code, reason))
        state.connection_done.set()
    return ws


@asynccontextmanager
async def run_server(
    kind: str,
    state: ServerState,
    *,
    compress: bool = True,
    ssl_context: Optional[ssl.SSLContext] = None,
) -> AsyncIterator[str]:
    """Start a server of ``kind`` on a free loopback port; yield its ws:// or wss:// URI."""
    scheme = "wss" if ssl_context is not None else "ws"
    if kind == "wsframe":
        server = await serve(
            # A partial, not a lambda: serve() takes a plain callable for a Listener factory.
            functools.partial(wsframe_server_handler, state=state),
            "127.0.0.1",
            0,
            ssl=ssl_context,
            subprotocols=[SUBPROTOCOL],
            compression="deflate" if compress else None,
            max_message_size=LIMIT,
            ping_interval=None,
            open_timeout=IO_TIMEOUT,
            close_timeout=IO_TIMEOUT,
            process_request=wsframe_process_request,
        )
        try:
            yield f"{scheme}://127.0.0.1:{server.port}/ws"
        finally:
            await server.close()
    elif kind == "websockets":
        server = await ws_server.serve(
            lambda ws: websockets_server_handler(ws, state),
            "127.0.0.1",
            0,
            ssl=ssl_context,
            # Not subprotocols=[...]: with it, websockets refuses clients that offer none.
            select_subprotocol=websockets_select_subprotocol,
            compression="deflate" if compress else None,
            max_size=LIMIT,
            ping_interval=None,
            open_timeout=IO_TIMEOUT,
            close_timeout=IO_TIMEOUT,
            process_request=websockets_process_request,
        )
        try:
            port = next(iter(server.sockets)).getsockname()[1]
            yield f"{scheme}://127.0.0.1:{port}/ws"
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), IO_TIMEOUT)
    elif kind == "aiohttp":
        app = web.Application()

        async def handler(request: web.Request) -> web.StreamResponse:
            return await aiohttp_server_handler(request, state, compress)

        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
            await site.start()
            port = runner.addresses[0][1]
            yield f"{scheme}://127.0.0.1:{port}/ws"
        finally:
            await asyncio.wait_for(runner.cleanup(), IO_TIMEOUT)
    else:  # pragma: no cover
        raise ValueError(kind)


# ----------------------------------------------------------------- clients


class Client:
    """One client connection, whatever the library: the scenarios' common API."""

    #: Whether the library can send a fragmented message.
    can_fragment = True

    async def open(
        self,
        uri: str,
        *,
        compress: bool = True,
        subprotocols: Optional[list[str]] = None,
        origin: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        raise NotImplementedError

    async def open_rejected(self, uri: str, *, origin: str) -> int:
        """Open a connection the server refuses; return the HTTP status it answered."""
        raise NotImplementedError

    def response_header(self, name: str) -> Optional[str]:
        raise NotImplementedError

    @property
    def subprotocol(self) -> Optional[str]:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        raise NotImplementedError

    async def send_fragments(self, fragments: list[Any]) -> None:
        raise NotImplementedError

    async def recv(self) -> Message:
        raise NotImplementedError

    async def ping(self) -> float:
        """Ping the server and wait for its pong; return the round-trip time."""
        raise NotImplementedError

    async def close(self, code: int, reason: str) -> tuple[Optional[int], Optional[str]]:
        """Close with ``code``/``reason``; return the ``(code, reason)`` the server answered."""
        raise NotImplementedError

    async def recv_close(self) -> tuple[int, str]:
        """Wait in recv() for the server to close; return its ``(code, reason)``."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release everything (called in ``finally``)."""


class WsframeClient(Client):
    ws: WebSocket

    async def open(
        self,
        uri: str,
        *,
        compress: bool = True,
        subprotocols: Optional[list[str]] = None,
        origin: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.ws = await connect(
            uri,
            compression="deflate" if compress else None,
            subprotocols=subprotocols,
            origin=origin,
            ssl=ssl_context,
            max_message_size=LIMIT,
            ping_interval=None,
            open_timeout=IO_TIMEOUT,
            close_timeout=IO_TIMEOUT,
        )

    async def open_rejected(self, uri: str, *, origin: str) -> int:
        with pytest.raises(InvalidHandshake) as info:
            await connect(uri, origin=origin, open_timeout=IO_TIMEOUT)
        assert info.value.status is not None
        return info.value.status

    def response_header(self, name: str) -> Optional[str]:
        response = self.ws.connection.response  # type: ignore[attr-defined]
        return response.headers.get(name)  # type: ignore[no-any-return]

    @property
    def subprotocol(self) -> Optional[str]:
        return self.ws.subprotocol

    async def send(self, message: Message) -> None:
        await self.ws.send(message)

    async def send_fragments(self, fragments: list[Any]) -> None:
        await self.ws.send(fragments)

    async def recv(self) -> Message:
        return await self.ws.recv()

    async def ping(self) -> float:
        return await self.ws.ping()

    async def close(self, code: int, reason: str) -> tuple[Optional[int], Optional[str]]:
        await self.ws.close(code, reason)
        assert self.ws.connection.was_clean
        return self.ws.close_code, self.ws.close_reason

    async def recv_close(self) -> tuple[int, str]:
        with pytest.raises(ConnectionClosed) as info:
            await self.ws.recv()
        exc = info.value
        expected = ConnectionClosedOK if exc.code in (1000, 1001) else ConnectionClosedError
        assert type(exc) is expected
        assert exc.was_clean
        assert (self.ws.close_code, self.ws.close_reason) == (exc.code, exc.reason)
        await asyncio.wait_for(self.ws.wait_closed(), IO_TIMEOUT)
        return exc.code, exc.reason

    async def aclose(self) -> None:
        if hasattr(self, "ws"):
            await self.ws.close()


class WebsocketsClient(Client):
    ws: Any

    async def open(
        self,
        uri: str,
        *,
        compress: bool = True,
        subprotocols: Optional[list[str]] = None,
        origin: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        kwargs: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None else {}
        self.ws = await ws_client.connect(
            uri,
            compression="deflate" if compress else None,
            subprotocols=subprotocols,
            origin=origin,
            max_size=LIMIT,
            ping_interval=None,
            open_timeout=IO_TIMEOUT,
            close_timeout=IO_TIMEOUT,
            **kwargs,
        )

    async def open_rejected(self, uri: str, *, origin: str) -> int:
        with pytest.raises(ws_exceptions.InvalidStatus) as info:
            await ws_client.connect(uri, origin=origin, open_timeout=IO_TIMEOUT)
        return int(info.value.response.status_code)

    def response_header(self, name: str) -> Optional[str]:
        return self.ws.response.headers.get(name)  # type: ignore[no-any-return]

    @property
    def subprotocol(self) -> Optional[str]:
        return self.ws.subprotocol  # type: ignore[no-any-return]

    async def send(self, message: Message) -> None:
        await self.ws.send(message)

    async def send_fragments(self, fragments: list[Any]) -> None:
        await self.ws.send(fragments)

    async def recv(self) -> Message:
        return await self.ws.recv()  # type: ignore[no-any-return]

    async def ping(self) -> float:
        return await (await self.ws.ping())  # type: ignore[no-any-return]

    async def close(self, code: int, reason: str) -> tuple[Optional[int], Optional[str]]:
        await self.ws.close(code, reason)
        return self.ws.close_code, self.ws.close_reason

    async def recv_close(self) -> tuple[int, str]:
        with pytest.raises(ws_exceptions.ConnectionClosed) as info:
            await self.ws.recv()
        rcvd = info.value.rcvd
        assert rcvd is not None
        return rcvd.code, rcvd.reason

    async def aclose(self) -> None:
        if hasattr(self, "ws"):
            await self.ws.close()


class AiohttpClient(Client):
    can_fragment = False  # ClientWebSocketResponse sends whole messages only
    session: Any
    ws: Any

    def __init__(self) -> None:
        self.response_headers: Any = None

    def _session(self) -> Any:
        trace = aiohttp.TraceConfig()

        async def on_request_end(session: Any, context: Any, params: Any) -> None:
            self.response_headers = params.response.headers

        trace.on_request_end.append(on_request_end)
        self.session = aiohttp.ClientSession(trace_configs=[trace])
        return self.session

    async def open(
        self,
        uri: str,
        *,
        compress: bool = True,
        subprotocols: Optional[list[str]] = None,
        origin: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        # autoping=False: pongs reach recv(), so that ping() can time its own.
        self.ws = await self._session().ws_connect(
            uri,
            protocols=subprotocols or (),
            compress=15 if compress else 0,
            origin=origin,
            ssl=ssl_context if ssl_context is not None else True,
            max_msg_size=LIMIT,
            autoping=False,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=IO_TIMEOUT),
        )

    async def open_rejected(self, uri: str, *, origin: str) -> int:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await self._session().ws_connect(uri, origin=origin)
        return info.value.status

    def response_header(self, name: str) -> Optional[str]:
        return self.response_headers.get(name)  # type: ignore[no-any-return]

    @property
    def subprotocol(self) -> Optional[str]:
        return self.ws.protocol  # type: ignore[no-any-return]

    async def send(self, message: Message) -> None:
        if isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_bytes(message)

    async def send_fragments(self, fragments: list[Any]) -> None:  # pragma: no cover
        raise NotImplementedError("aiohttp cannot send a fragmented message")

    async def _receive(self) -> Any:
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.PING:
                await self.ws.pong(msg.data)
                continue
            return msg

    async def recv(self) -> Message:
        msg = await self._receive()
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        return msg.data  # type: ignore[no-any-return]

    async def ping(self) -> float:
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await self.ws.ping(b"cli")
        msg = await self._receive()
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"cli"), msg
        return loop.time() - sent_at

    async def close(self, code: int, reason: str) -> tuple[Optional[int], Optional[str]]:
        await self.ws.close(code=code, message=reason.encode())
        return self.ws.close_code, None  # aiohttp does not keep the answer's reason

    async def recv_close(self) -> tuple[int, str]:
        msg = await self._receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE, msg
        return msg.data, msg.extra

    async def aclose(self) -> None:
        if hasattr(self, "ws"):
            await self.ws.close()
        if hasattr(self, "session"):
            await self.session.close()


CLIENTS: dict[str, Callable[[], Client]] = {
    "wsframe": WsframeClient,
    "websockets": WebsocketsClient,
    "aiohttp": AiohttpClient,
}

Scenario = Callable[[Client, ServerState], Awaitable[None]]


def run_scenario(
    pair: tuple[str, str],
    scenario: Scenario,
    *,
    compress: bool = True,
    tls: Optional[tuple[ssl.SSLContext, ssl.SSLContext]] = None,
    subprotocols: Optional[list[str]] = None,
) -> None:
    """Start ``pair``'s server, connect its client, run ``scenario``, clean up."""
    server_kind, client_kind = pair

    async def main() -> None:
        state = ServerState()
        server_context, client_context = tls if tls is not None else (None, None)
        async with run_server(
            server_kind, state, compress=compress, ssl_context=server_context
        ) as uri:
            client = CLIENTS[client_kind]()
            try:
                await client.open(
                    uri,
                    compress=compress,
                    subprotocols=subprotocols,
                    ssl_context=client_context,
                )
                extensions = client.response_header("Sec-WebSocket-Extensions")
                if compress:
                    assert extensions is not None
                    assert extensions.split(";")[0].strip() == "permessage-deflate"
                else:
                    assert extensions is None
                if server_kind == "wsframe":
                    assert state.deflate == [compress]
                await scenario(client, state)
            finally:
                await client.aclose()

    run(main)


async def echo(client: Client, message: Message) -> None:
    await client.send(message)
    answer = await client.recv()
    assert type(answer) is type(message)
    assert answer == message


async def close_normally(client: Client, state: ServerState) -> None:
    code, _ = await client.close(1000, "")
    assert code == 1000
    await state.wait_done()
    assert state.closes == [(1000, "")] or state.closes == [(1000, None)]


# ------------------------------------------------------------------- tests


@pytest.mark.parametrize("compress", COMPRESSION)
@pytest.mark.parametrize("pair", PAIRS)
def test_messages(pair: tuple[str, str], compress: bool) -> None:
    """Text (non-ASCII), binary, empty text, empty binary, and every byte value."""

    async def scenario(client: Client, state: ServerState) -> None:
        await echo(client, TEXT)
        await echo(client, "")
        await echo(client, b"")
        await echo(client, bytes(range(256)))
        await echo(client, "\x00 NUL, surrogates-free astral: 𝄞")
        await echo(client, b"\x00" * 125 + b"\x01")  # lengths at the 7/16-bit boundaries
        await echo(client, b"\x02" * 126)
        await echo(client, "x" * 65535)
        await echo(client, b"\x03" * 65536)
        await close_normally(client, state)

    run_scenario(pair, scenario, compress=compress)


@pytest.mark.parametrize("compress", COMPRESSION)
@pytest.mark.parametrize("pair", PAIRS)
def test_large_messages(pair: tuple[str, str], compress: bool) -> None:
    """Messages over 1 MiB both ways (limits raised on both sides)."""
    random_bytes = os.urandom(BIG)  # incompressible
    compressible = b"wsframe " * (BIG // 8)
    text = ("ünïcödé " * (BIG // 10))[: BIG // 2]

    async def scenario(client: Client, state: ServerState) -> None:
        await echo(client, random_bytes)  # also the zero-copy send of an unmasked server
        await echo(client, compressible)
        await echo(client, text)
        await close_normally(client, state)

    run_scenario(pair, scenario, compress=compress)


@pytest.mark.parametrize("compress", COMPRESSION)
@pytest.mark.parametrize("pair", PAIRS)
def test_many_messages_in_order(pair: tuple[str, str], compress: bool) -> None:
    """Hundreds of messages sent back to back come back in order."""
    messages: list[Message] = [
        f"message {i} é" if i % 3 else i.to_bytes(4, "big") * (i % 50) for i in range(600)
    ]

    async def scenario(client: Client, state: ServerState) -> None:
        for message in messages:
            await client.send(message)
        received = [await client.recv() for _ in messages]
        assert received == messages
        await close_normally(client, state)

    run_scenario(pair, scenario, compress=compress)


@pytest.mark.parametrize("compress", COMPRESSION)
@pytest.mark.parametrize("pair", PAIRS)
def test_fragmented_messages(pair: tuple[str, str], compress: bool) -> None:
    """Fragmented messages both ways: reassembled whole by the receiver."""

    async def scenario(client: Client, state: ServerState) -> None:
        if client.can_fragment:
            await client.send_fragments([b"\x01" * 10, b"", b"\x02" * 70000])
            assert await client.recv() == b"\x01" * 10 + b"\x02" * 70000
            await client.send_fragments(["Frag", "", "menté ", "текст"])
            assert await client.recv() == "Fragmenté текст"
        await client.send("!fragments")
        assert await client.recv() == "Fragmenté текст"
        assert await client.recv() == b"\x00\x01" + b"\xff" * 1000
        await close_normally(client, state)

    run_scenario(pair, scenario, compress=compress)


@pytest.mark.parametrize("pair", PAIRS)
def test_pings_both_ways(pair: tuple[str, str]) -> None:
    """The client's ping gets its pong (RTT measured); the server's ping too."""

    async def scenario(client: Client, state: ServerState) -> None:
        rtt = await client.ping()
        assert 0.0 <= rtt < IO_TIMEOUT
        await client.send("!ping")
        answer = await client.recv()
        assert isinstance(answer, str) and answer.startswith("!rtt ")
        assert 0.0 <= float(answer.split()[1]) < IO_TIMEOUT
        await echo(client, "still open")
        await close_normally(client, state)

    run_scenario(pair, scenario)


@pytest.mark.parametrize("pair", PAIRS)
def test_client_closes_with_code_and_reason(pair: tuple[str, str]) -> None:
    """The server sees the client's close code and (non-ASCII) reason."""
    server_kind, client_kind = pair
    reason = "client leaves — ciao ✓"

    async def scenario(client: Client, state: ServerState) -> None:
        await echo(client, "hi")
        code, _ = await client.close(4002, reason)
        # RFC 6455 7.4.1: the answer typically echoes the code; aiohttp answers 1000.
        assert code in (4002, 1000)
        if client_kind == "wsframe" and server_kind != "aiohttp":
            assert code == 4002
        await state.wait_done()
        assert state.closes == [(4002, reason)]

    run_scenario(pair, scenario)


@pytest.mark.parametrize(
    "code, reason",
    [(4001, "server says bye — tschüss"), (1001, "going away"), (1000, "")],
    ids=["4001", "1001", "1000"],
)
@pytest.mark.parametrize("pair", PAIRS)
def test_server_closes_while_client_in_recv(pair: tuple[str, str], code: int, reason: str) -> None:
    """The server closes while the client waits in recv(): the client gets code and reason.

    wsframe's client raises ConnectionClosedOK (1000, 1001) or ConnectionClosedError.
    """
    _, client_kind = pair

    async def scenario(client: Client, state: ServerState) -> None:
        await echo(client, "hi")
        await client.send(f"!close {code} {reason}")
        assert await client.recv_close() == (code, reason)
        await state.wait_done()
        [(answer_code, _)] = state.closes
        # The client's answer echoes the code (aiohttp 3.14 answers 1000).
        assert answer_code in ((code, 1000) if client_kind == "aiohttp" else (code,))

    run_scenario(pair, scenario)


@pytest.mark.parametrize("pair", [p for p in PAIRS if p.values[0][1] == "wsframe"])
def test_async_iteration_ends_on_normal_close(pair: tuple[str, str]) -> None:
    """``async for message in ws`` ends quietly when the server closes with 1000."""

    async def scenario(client: Client, state: ServerState) -> None:
        assert isinstance(client, WsframeClient)
        await client.send("one")
        await client.send("!close 1000 done")
        received = [message async for message in client.ws]
        assert received == ["one"]
        assert (client.ws.close_code, client.ws.close_reason) == (1000, "done")
        assert client.ws.connection.was_clean

    run_scenario(pair, scenario)


@pytest.mark.parametrize("pair", PAIRS)
def test_subprotocol_negotiated(pair: tuple[str, str]) -> None:
    """The client offers two subprotocols; the server supports one; both agree."""

    async def scenario(client: Client, state: ServerState) -> None:
        assert client.subprotocol == SUBPROTOCOL
        assert client.response_header("Sec-WebSocket-Protocol") == SUBPROTOCOL
        await client.send("!info")
        info = json.loads(await client.recv())
        assert info == {"subprotocol": SUBPROTOCOL}
        await close_normally(client, state)

    run_scenario(pair, scenario, subprotocols=["chat.v0", SUBPROTOCOL])


@pytest.mark.parametrize("pair", PAIRS)
def test_no_subprotocol_offered(pair: tuple[str, str]) -> None:
    async def scenario(client: Client, state: ServerState) -> None:
        assert client.subprotocol is None
        assert client.response_header("Sec-WebSocket-Protocol") is None
        await client.send("!info")
        assert json.loads(await client.recv()) == {"subprotocol": None}
        await close_normally(client, state)

    run_scenario(pair, scenario)


@pytest.mark.parametrize("pair", PAIRS)
def test_handshake_rejected_by_process_request(pair: tuple[str, str]) -> None:
    """A bad Origin is refused with 403 before the upgrade; the client sees the status."""
    server_kind, client_kind = pair

    async def main() -> None:
        state = ServerState()
        async with run_server(server_kind, state) as uri:
            client = CLIENTS[client_kind]()
            try:
                assert await client.open_rejected(uri, origin=BAD_ORIGIN) == 403
            finally:
                await client.aclose()
            # The server still works for a good client.
            client = CLIENTS[client_kind]()
            try:
                await client.open(uri, origin="https://good.example")
                await echo(client, "after a rejection")
                await close_normally(client, state)
            finally:
                await client.aclose()

    run(main)


TLS_PAIRS = [
    *[pytest.param(("wsframe", c), id=f"wsframe-server-{c}-client") for c in CLIENT_PEERS],
    *[pytest.param((s, "wsframe"), id=f"{s}-server-wsframe-client") for s in SERVER_PEERS],
    pytest.param(("wsframe", "wsframe"), id="wsframe-server-wsframe-client"),
]


@pytest.mark.parametrize("compress", COMPRESSION)
@pytest.mark.parametrize("pair", TLS_PAIRS)
def test_tls(pair: tuple[str, str], compress: bool, tls: Any) -> None:
    """wss:// with a test CA: messages, a large one, pings, and the close both ways."""

    async def scenario(client: Client, state: ServerState) -> None:
        await echo(client, TEXT)
        await echo(client, b"\x00\xff" * 40000)  # > 16 KiB: the zero-copy path, over TLS
        await echo(client, os.urandom(BIG))
        assert 0.0 <= await client.ping() < IO_TIMEOUT
        await client.send("!close 4003 tls bye")
        assert await client.recv_close() == (4003, "tls bye")
        await state.wait_done()

    run_scenario(pair, scenario, compress=compress, tls=tls)


def test_wsframe_client_rejects_untrusted_certificate(tls: Any) -> None:
    """Without the test CA, wsframe's client refuses the server's certificate."""
    server_context, _ = tls

    async def main() -> None:
        state = ServerState()
        async with run_server("websockets", state, ssl_context=server_context) as uri:
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(uri, open_timeout=IO_TIMEOUT)

    run(main)


# ------------------------------------------------- permessage-deflate parameters

#: Repeated and varied messages: context takeover (or not) matters across them.
DEFLATE_MESSAGES: list[Message] = [
    "a" * 1000,
    "a" * 1000,
    os.urandom(70000),
    b"wsframe " * 40000,
    "é" * 5000,
    b"wsframe " * 40000,
    "",
]


async def echo_all(ws: Any) -> None:
    for message in DEFLATE_MESSAGES:
        await ws.send(message)
        assert await ws.recv() == message


@pytest.mark.parametrize(
    "offer, agreed",
    [
        ({}, "permessage-deflate"),
        (
            {"server_max_window_bits": 9, "client_max_window_bits": 9},
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
        ),
        (
            {"server_no_context_takeover": True, "client_no_context_takeover": True},
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            {"server_max_window_bits": 10, "client_no_context_takeover": True},
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
        ),
        # zlib cannot compress with a 256-byte window: the offer is declined.
        ({"server_max_window_bits": 8, "client_max_window_bits": None}, None),
    ],
    ids=["default", "window-9", "no-context-takeover", "window-10-client-no-takeover", "window-8"],
)
def test_deflate_offers_from_websockets_client(offer: dict[str, Any], agreed: Any) -> None:
    """wsframe's server answers websockets' deflate offers; messages round-trip."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    async def main() -> None:
        state = ServerState()
        async with run_server("wsframe", state) as uri:
            factory = ClientPerMessageDeflateFactory(**offer)
            async with ws_client.connect(
                uri, extensions=[factory], compression=None, max_size=LIMIT, ping_interval=None
            ) as ws:
                header = ws.response.headers.get("Sec-WebSocket-Extensions")
                if agreed is None:
                    assert header is None
                else:
                    assert sorted(header.split("; ")) == sorted(agreed.split("; "))
                await echo_all(ws)

    run(main)


@pytest.mark.parametrize(
    "server_options",
    [
        {"server_max_window_bits": 9, "client_max_window_bits": 9},
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        {"client_max_window_bits": 10},
    ],
    ids=["window-9", "no-context-takeover", "client-window-10"],
)
def test_deflate_answers_from_websockets_server(server_options: dict[str, Any]) -> None:
    """wsframe's client accepts what websockets' server requires; messages round-trip."""
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        server = await ws_server.serve(
            handler,
            "127.0.0.1",
            0,
            extensions=[ServerPerMessageDeflateFactory(**server_options)],
            compression=None,
            max_size=LIMIT,
            ping_interval=None,
        )
        try:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(
                f"ws://127.0.0.1:{port}/", max_message_size=LIMIT, ping_interval=None
            ) as ws:
                assert ws.connection.deflate is not None
                await echo_all(ws)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), IO_TIMEOUT)

    run(main)


@pytest.mark.parametrize(
    "deflate_options",
    [
        {},
        {"client_max_window_bits": 9},
        {"server_max_window_bits": 10},
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
    ],
    ids=["default", "client-window-9", "server-window-10", "no-context-takeover"],
)
def test_deflate_offers_to_aiohttp_server(deflate_options: dict[str, Any]) -> None:
    """wsframe's client's deflate offers, as an aiohttp server answers them."""

    async def main() -> None:
        state = ServerState()
        async with (
            run_server("aiohttp", state) as uri,
            connect(
                uri,
                deflate_options=deflate_options,
                max_message_size=LIMIT,
                ping_interval=None,
            ) as ws,
        ):
            header = ws.connection.response.headers.get("Sec-WebSocket-Extensions")
            assert header.startswith("permessage-deflate")
            await echo_all(ws)

    run(main)
