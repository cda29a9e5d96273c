"""The asyncio WebSocket server: ``serve()`` and :class:`Server`."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Callable, Optional, Union

from ..connection import DEFAULT_MAX_MESSAGE_SIZE, ServerConnection, State
from ..handshake import Request as HttpRequest
from ..handshake import Response
from .connection import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_WRITE_LIMIT,
    Listener,
    WebSocket,
)
from .keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, Heartbeat

__all__ = ["DEFAULT_OPEN_TIMEOUT", "Server", "serve"]

logger = logging.getLogger("wsframe.server")

#: Default seconds a client has to complete the opening handshake.
DEFAULT_OPEN_TIMEOUT = 10.0

Handler = Callable[[WebSocket], Awaitable[Any]]
ProcessRequest = Callable[[WebSocket, HttpRequest], Any]


_INTERNAL_ERROR = (500, "Internal Server Error\n")


class _ServerWebSocket(WebSocket):
    """A server-side connection: runs the handshake policy and the handler."""

    __slots__ = ("_busy", "_open_timer", "_server", "_task")

    def __init__(self, server: Server) -> None:
        options = server._options
        super().__init__(
            ServerConnection(
                subprotocols=options["subprotocols"],
                select_subprotocol=options["select_subprotocol"],
                compression=options["compression"],
                deflate_options=options["deflate_options"],
                max_message_size=options["max_message_size"],
                **options["limits"],
            ),
            listener=server._listener_factory() if server._listener_factory else None,
            handler=server._handler,
            max_queue=options["max_queue"],
            write_limit=options["write_limit"],
            close_timeout=options["close_timeout"],
        )
        self._server = server
        self._heartbeat = server._heartbeat
        self._task: Optional[asyncio.Task[None]] = None
        self._open_timer: Optional[asyncio.TimerHandle] = None
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self._server
        server.websockets.add(self)
        limit = server._max_connections
        # Beyond max_connections, the request is answered with 503.
        self._busy = limit is not None and len(server.websockets) > limit
        timeout = server._options["open_timeout"]
        if timeout is not None:
            assert self._loop is not None
            self._open_timer = self._loop.call_later(timeout, self._open_timed_out)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        super().connection_lost(exc)
        self._server.websockets.discard(self)

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if self._conn.state is State.CONNECTING and self._transport is not None:
            # Half a request held open, or a handler of process_request that
            # never answers: drop it.
            self._transport.abort()

    def _on_request(self, request: HttpRequest) -> None:
        if self._busy:
            self._respond((503, {"Retry-After": "1"}, "Too many connections, retry later\n"))
            return
        process_request = self._server._process_request
        if process_request is None:
            self._accept()
            return
        try:
            result = process_request(self, request)
        except Exception:
            logger.exception("process_request failed")
            result = _INTERNAL_ERROR
        if inspect.isawaitable(result):
            assert self._loop is not None
            self._task = self._loop.create_task(self._process_async(result))
        else:
            self._answer(result)

    async def _process_async(self, pending: Awaitable[Any]) -> None:
        try:
            result = await pending
        except Exception:
            logger.exception("process_request failed")
            result = _INTERNAL_ERROR
        self._task = None
        if self._transport is None or self._conn.state is not State.CONNECTING:
            return
        self._answer(result)
        self._after_handshake_io()

    def _answer(self, result: Any) -> None:
        """Go on with the handshake (None) or send process_request's response."""
        try:
            if result is None:
                self._accept()
            else:
                self._respond(result)
        except Exception:
            if result is not None and result is not _INTERNAL_ERROR:
                logger.exception("invalid response from process_request: %r", result)
                self._respond(_INTERNAL_ERROR)
            else:
                raise

    def _respond(self, result: Any) -> None:
        conn = self._conn
        assert isinstance(conn, ServerConnection)
        if isinstance(result, Response):
            status, headers, body = result.status, result.headers, result.body
        elif len(result) == 2:
            (status, body), headers = result, None
        else:
            status, headers, body = result
        conn.respond(status, body, headers)

    def _accept(self) -> None:
        conn = self._conn
        assert isinstance(conn, ServerConnection)
        conn.accept()
        if conn.state is not State.OPEN:
            return  # an invalid request: answered with an error status
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        self._flush()  # the 101 before anything the handler sends
        self._on_open()
        if self._handler is not None:
            assert self._loop is not None
            self._task = self._loop.create_task(self._run_handler())
        events = conn.events()  # frames that came with the request
        if events:
            self._dispatch(events)

    def _after_handshake_io(self) -> None:
        self._flush()
        if self._conn.close_transport and self._transport is not None:
            self._end_transport()
        elif self._conn.failure_pending and self._loop is not None:
            self._schedule_failure()

    async def _run_handler(self) -> None:
        assert self._handler is not None
        try:
            pending = self._handler(self)
            if not inspect.isawaitable(pending):
                raise TypeError(
                    f"the connection handler {self._handler!r} returned {pending!r}, not an "
                    "awaitable: pass an async function, or a Listener subclass"
                )
            await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._conn.state is State.OPEN:
                logger.exception("connection handler failed")
                await self.close(1011, "internal error")
            return
        finally:
            self._task = None
        await self.close(1000)


class Server:
    """A running WebSocket server (returned by :func:`serve`).

    ``websockets`` is the set of its connections. :meth:`close` stops
    accepting new ones and closes every open connection with 1001 (going
    away); ``async with`` does the same on exit.
    """

    def __init__(
        self,
        handler: Union[Handler, type[Listener], Callable[[], Listener]],
        options: dict[str, Any],
        *,
        process_request: Optional[ProcessRequest] = None,
        max_connections: Optional[int] = None,
    ) -> None:
        self._handler: Optional[Handler] = None
        self._listener_factory: Optional[Callable[[], Listener]] = None
        if _is_listener_class(handler):
            self._listener_factory = handler  # type: ignore[assignment]
        elif callable(handler):
            self._handler = handler  # type: ignore[assignment]
        else:
            raise TypeError(
                "handler must be an async function (called with each connection) "
                "or a Listener subclass (instantiated for each connection)"
            )
        self._options = options
        self._process_request = process_request
        self._max_connections = max_connections
        #: The connections of this server (open or still in their handshake).
        self.websockets: set[WebSocket] = set()
        self._server: Optional[asyncio.AbstractServer] = None
        self._heartbeat: Optional[Heartbeat] = None
        self._closing: Optional[asyncio.Task[None]] = None
        self._wakeup: Optional[asyncio.Future[None]] = None

    def _protocol(self) -> WebSocket:
        return _ServerWebSocket(self)

    async def _start(self, create: Callable[..., Awaitable[asyncio.AbstractServer]]) -> None:
        loop = asyncio.get_running_loop()
        interval = self._options["ping_interval"]
        if interval:
            self._heartbeat = Heartbeat(loop, interval, self._options["ping_timeout"] or interval)
        self._server = await create(self._protocol)

    @property
    def sockets(self) -> Sequence[socket.socket]:
        """The listening sockets."""
        return tuple(self._server.sockets) if self._server is not None else ()  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket (handy with ``port=0``)."""
        return int(self.sockets[0].getsockname()[1])

    def is_serving(self) -> bool:
        """Whether the server accepts new connections."""
        return self._server is not None and self._server.is_serving()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called or the task is cancelled.

        Cancelling it closes the server (and its connections, with 1001).
        """
        assert self._server is not None
        try:
            while self._closing is None:
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
            await asyncio.shield(self._closing)
        except asyncio.CancelledError:
            await self.close()
            raise

    async def close(self, close_connections: bool = True, code: int = 1001) -> None:
        """Stop listening, close every connection with ``code``, wait for them."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(
                self._close(close_connections, code)
            )
            if self._wakeup is not None and not self._wakeup.done():
                self._wakeup.set_result(None)  # serve_forever returns
        await asyncio.shield(self._closing)

    async def _close(self, close_connections: bool, code: int) -> None:
        if self._server is not None:
            self._server.close()
        if self._heartbeat is not None:
            self._heartbeat.close()
        if close_connections:
            websockets = list(self.websockets)
            for ws in websockets:
                if ws._conn.state is State.CONNECTING and ws._transport is not None:
                    ws._transport.abort()
            # A closing handshake with each (close_timeout bounds it).
            if websockets:
                await asyncio.gather(
                    *(ws.close(code, "server shutting down") for ws in websockets),
                    return_exceptions=True,
                )
            tasks = [t for ws in websockets if (t := ws._task) is not None]  # type: ignore[attr-defined]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server is closed."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
        elif self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


def _is_listener_class(obj: Any) -> bool:
    """A Listener subclass, or a functools.partial of one (a class with arguments)."""
    if isinstance(obj, functools.partial):
        obj = obj.func
    return isinstance(obj, type) and issubclass(obj, Listener)


class serve:
    """Start a WebSocket server.

    ``handler`` is an ``async def handler(ws)`` run once per connection (the
    connection closes when it returns), or a :class:`Listener` subclass (one
    instance per connection, the callback style). ``await serve(...)`` returns
    the :class:`Server`; ``async with serve(...) as server`` closes it on exit.

    Listening: ``host``/``port`` (``port=0`` picks a free one), or ``sock`` (an
    already bound socket), or ``path`` (a Unix socket); ``reuse_port`` lets
    several worker processes share a port; ``ssl`` for wss://.

    Options (defaults in brackets): ``subprotocols`` (supported, preferred
    first) or ``select_subprotocol(request, offered)``; ``compression``
    ("deflate", or None), ``deflate_options``; ``max_message_size`` [1 MiB];
    ``max_queue`` [16 messages buffered before reading pauses];
    ``write_limit`` [64 KiB high-water mark of the send buffer];
    ``ping_interval`` [20 s, None disables], ``ping_timeout`` [20 s];
    ``open_timeout`` [10 s to complete the handshake]; ``close_timeout``
    [10 s]; ``process_request(ws, request)`` (may be async) returning None to
    go on with the handshake or ``(status, body)`` / ``(status, headers,
    body)`` / a :class:`~wsframe.handshake.Response` to answer with instead;
    ``max_connections`` (beyond it new requests get 503); ``max_ping_rate``
    [10 pings/s from a client on average, None disables] and
    ``max_ping_burst`` [20 at once] (a client over them is closed with 1008);
    and the request
    limits ``max_request_line``, ``max_header_line``, ``max_headers``,
    ``max_header_bytes``.
    """

    def __init__(
        self,
        handler: Union[Handler, type[Listener], Callable[[], Listener]],
        host: Optional[Union[str, Sequence[str]]] = None,
        port: Optional[int] = None,
        *,
        sock: Optional[socket.socket] = None,
        path: Optional[str] = None,
        reuse_port: bool = False,
        backlog: int = 1024,
        ssl: Optional[ssl_module.SSLContext] = None,
        subprotocols: Optional[Iterable[str]] = None,
        select_subprotocol: Optional[Callable[[HttpRequest, list[str]], Optional[str]]] = None,
        compression: Optional[str] = "deflate",
        deflate_options: Optional[dict[str, Any]] = None,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
        open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        process_request: Optional[ProcessRequest] = None,
        max_connections: Optional[int] = None,
        **limits: int,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        options = {
            "subprotocols": list(subprotocols or ()),
            "select_subprotocol": select_subprotocol,
            "compression": compression,
            "deflate_options": deflate_options,
            "max_message_size": max_message_size,
            "max_queue": max_queue,
            "write_limit": write_limit,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "open_timeout": open_timeout,
            "close_timeout": close_timeout,
            "limits": limits,
        }
        self._server = Server(
            handler, options, process_request=process_request, max_connections=max_connections
        )
        self._listen: dict[str, Any] = {
            "host": host,
            "port": port,
            "sock": sock,
            "path": path,
            "reuse_port": reuse_port,
            "backlog": backlog,
            "ssl": ssl,
        }

    async def _start(self) -> Server:
        loop = asyncio.get_running_loop()
        listen = self._listen
        if listen["path"] is not None:

            def create(factory: Callable[[], WebSocket]) -> Awaitable[asyncio.AbstractServer]:
                return loop.create_unix_server(
                    factory,
                    listen["path"],
                    sock=listen["sock"],
                    backlog=listen["backlog"],
                    ssl=listen["ssl"],
                )

        else:

            def create(factory: Callable[[], WebSocket]) -> Awaitable[asyncio.AbstractServer]:
                kwargs: dict[str, Any] = {"backlog": listen["backlog"], "ssl": listen["ssl"]}
                if listen["sock"] is not None:
                    kwargs["sock"] = listen["sock"]
                else:
                    kwargs.update(host=listen["host"], port=listen["port"])
                    if listen["reuse_port"]:
                        kwargs["reuse_port"] = True
                return loop.create_server(factory, **kwargs)

        await self._server._start(create)
        return self._server

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._server.close()
