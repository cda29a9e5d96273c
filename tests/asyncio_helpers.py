"""Helpers for the asyncio tests: running coroutines, servers, and raw peers.

A raw peer is a plain non-blocking socket driven by hand through the sans-I/O
:mod:`wsframe.connection`: it reads only when told to and answers only what it
is told to, so a test can make it stop reading or never answer a ping.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import importlib
import socket
from typing import Any, Callable, Optional

from wsframe.asyncio import Server, WebSocket, serve
from wsframe.connection import ClientConnection, Connection, ServerConnection
from wsframe.events import Accepted, Request

# The package exports a function of the same name as this module.
broadcast_module = importlib.import_module("wsframe.asyncio.broadcast")

#: Upper bound of one test, in seconds.
TEST_TIMEOUT = 15.0
#: Upper bound of one awaited step, in seconds.
STEP = 3.0


def async_test(func: Optional[Callable[..., Any]] = None, *, timeout: float = TEST_TIMEOUT) -> Any:
    """Run an ``async def`` test in a fresh event loop, bounded by ``timeout``."""

    def decorate(coro_func: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(coro_func)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            async def main() -> None:
                await asyncio.wait_for(coro_func(*args, **kwargs), timeout)

            asyncio.run(main())

        return wrapper

    return decorate(func) if func is not None else decorate


async def within(awaitable: Any, timeout: float = STEP) -> Any:
    """``await`` with a bound."""
    return await asyncio.wait_for(awaitable, timeout)


async def eventually(predicate: Callable[[], bool], timeout: float = STEP) -> None:
    """Wait until ``predicate()`` is true (polling), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def echo(ws: Any) -> None:
    """A handler that sends every message back."""
    async for message in ws:
        await ws.send(message)


async def start(handler: Any, **options: Any) -> Server:
    """Start a server on an OS-chosen loopback port."""
    if "path" not in options and "sock" not in options:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
    return await serve(handler, **options)


def uri(server: Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


class Capture:
    """A handler that hands each server-side connection to the test and waits.

    ``await capture.next()`` returns the next connection; the handler returns
    (closing with 1000) only when the test sets ``capture.release``.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[WebSocket] = asyncio.Queue()
        self.release = asyncio.Event()
        self.finished = 0

    async def __call__(self, ws: WebSocket) -> None:
        self.queue.put_nowait(ws)
        try:
            release = asyncio.ensure_future(self.release.wait())
            closed = asyncio.ensure_future(ws.wait_closed())
            try:
                await asyncio.wait({release, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                release.cancel()
                closed.cancel()
        finally:
            self.finished += 1

    async def next(self, timeout: float = STEP) -> WebSocket:
        return await within(self.queue.get(), timeout)


def free_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawPeer:
    """A socket driven by hand through a sans-I/O connection."""

    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        self.sock = sock
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.pending: collections.deque[Any] = collections.deque()
        self.eof = False

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await within(self.loop.sock_sendall(self.sock, data))

    async def send_raw(self, data: bytes) -> None:
        await within(self.loop.sock_sendall(self.sock, data))

    async def read_chunk(self, timeout: float = STEP, size: int = 1 << 16) -> bytes:
        """Read what is there and feed it to the connection (b"" at EOF)."""
        try:
            data = await within(self.loop.sock_recv(self.sock, size), timeout)
        except ConnectionResetError:
            data = b""
        if data:
            self.conn.receive_data(data)
        else:
            self.eof = True
            self.conn.receive_eof()
        self.pending.extend(self.conn.events())
        return data

    async def next_event(self, timeout: float = STEP, answer: bool = True) -> Any:
        """The next event; with ``answer``, write what the connection answered (pongs...)."""
        loop = self.loop
        deadline = loop.time() + timeout
        while not self.pending:
            if self.eof:
                raise EOFError("the peer closed the connection")
            await self.read_chunk(max(0.0, deadline - loop.time()))
            if answer:
                with contextlib.suppress(OSError):
                    await self.flush()
        return self.pending.popleft()

    async def events_until_eof(self, timeout: float = STEP, answer: bool = True) -> list[Any]:
        events = []
        while True:
            try:
                events.append(await self.next_event(timeout, answer))
            except EOFError:
                return events

    def close(self) -> None:
        self.sock.close()


async def raw_client(
    address: Any,
    path: str = "/",
    *,
    rcvbuf: Optional[int] = None,
    handshake: bool = True,
    **conn_options: Any,
) -> RawPeer:
    """Connect a raw client to ``address`` (a port on 127.0.0.1, or a Unix socket path)."""
    conn_options.setdefault("compression", None)
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    target = address if isinstance(address, str) else ("127.0.0.1", address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await within(asyncio.get_running_loop().sock_connect(sock, target))
        peer = RawPeer(sock, ClientConnection(f"ws://localhost{path}", **conn_options))
        if handshake:
            await peer.flush()
            event = await peer.next_event()
            assert isinstance(event, Accepted), event
    except BaseException:
        sock.close()
        raise
    return peer


class RawServer:
    """A listening socket whose connections are driven by hand."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.peers: list[RawPeer] = []

    async def accept(self, **conn_options: Any) -> RawPeer:
        """Accept one connection and complete its opening handshake."""
        conn_options.setdefault("compression", None)
        loop = asyncio.get_running_loop()
        sock, _ = await within(loop.sock_accept(self.sock))
        sock.setblocking(False)
        peer = RawPeer(sock, ServerConnection(**conn_options))
        self.peers.append(peer)
        event = await peer.next_event()
        assert isinstance(event, Request), event
        assert isinstance(peer.conn, ServerConnection)
        peer.conn.accept()
        await peer.flush()
        return peer

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.sock.close()


async def http_exchange(port: int, request: bytes, timeout: float = STEP) -> bytes:
    """Send raw bytes to ``port`` and read until the server closes."""
    reader, writer = await within(asyncio.open_connection("127.0.0.1", port))
    try:
        writer.write(request)
        return await within(reader.read(), timeout)
    finally:
        writer.close()


def ws_request(path: str = "/", host: str = "localhost", extra: str = "") -> bytes:
    """A valid WebSocket upgrade request head."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()
