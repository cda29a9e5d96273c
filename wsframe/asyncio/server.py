"""The asyncio WebSocket server: ``serve()`` and :class:`Server`."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Union

from ..admission import ConnectionsPerClient
from ..connection import ServerConnection, State, SubprotocolSelector
from ..events import Event, Rejected
from ..handshake import HTTPAnswer, OriginPolicy, OriginsLike, http_answer
from ..handshake import Request as HttpRequest
from ..options import DEFAULT_OPEN_TIMEOUT, Options
from ..stats import Counters, Stats, new_counters, retire_counters
from .connection import Listener, WebSocket
from .keepalive import Heartbeat

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..options import OptionsDict

__all__ = ["DEFAULT_OPEN_TIMEOUT", "Server", "serve"]

logger = logging.getLogger("wsframe.server")

Handler = Callable[[WebSocket], Awaitable[object]]
#: ``create_server(loop, protocol_factory, host, port, **options)``: makes the TCP server.
CreateServer = Callable[..., Awaitable[asyncio.AbstractServer]]
#: ``process_request(ws, request)``: None to go on with the handshake, or an
#: answer (see :data:`wsframe.handshake.HTTPAnswer`); it may be a coroutine.
ProcessRequest = Callable[
    [WebSocket, HttpRequest], Union[Optional[HTTPAnswer], Awaitable[Optional[HTTPAnswer]]]
]


_INTERNAL_ERROR: HTTPAnswer = (500, "Internal Server Error\n")
_BUSY: HTTPAnswer = (503, {"Retry-After": "1"}, "Too many connections, retry later\n")


class _ServerWebSocket(WebSocket):
    """A server-side connection: runs the handshake policy and the handler."""

    __slots__ = ("_busy", "_client_key", "_open_timer", "_server", "_task")

    def __init__(self, server: Server) -> None:
        super().__init__(
            ServerConnection(
                server.options,
                select_subprotocol=server.select_subprotocol,
                origins=server.origins,
            ),
            listener=server.new_listener(),
            handler=server.handler,
            counters=server.counters,
        )
        self._server = server
        self.heartbeat = server.heartbeat
        self._task: Optional[asyncio.Task[None]] = None
        self._open_timer: Optional[asyncio.TimerHandle] = None
        self._busy = False
        self._client_key: Optional[str] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self._server
        server.websockets.add(self)
        limit = server.max_connections
        # Beyond max_connections, the request is answered with 503.
        self._busy = limit is not None and len(server.websockets) > limit
        self._client_key, over_limit = server.per_client.add(self.remote_address)
        self._busy = self._busy or over_limit
        timeout = server.options.open_timeout
        if timeout is not None:
            self._open_timer = self.call_later(timeout, self._open_timed_out)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        super().connection_lost(exc)
        server = self._server
        server.websockets.discard(self)
        server.per_client.remove(self._client_key)
        self._client_key = None

    def handle_event(self, event: Event) -> None:
        if isinstance(event, Rejected):
            # An invalid request, or one from an origin not allowed: answered
            # by the connection (the application never sees it).
            logger.info("refused a handshake from %s: %s", self.remote_address, event.error)
        super().handle_event(event)

    @property
    def handler_task(self) -> Optional[asyncio.Task[None]]:
        """The task running the connection's handler (or an async process_request)."""
        return self._task

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if self.conn.state is State.CONNECTING and self.transport is not None:
            # Half a request held open, or a handler of process_request that
            # never answers: drop it.
            self.transport.abort()

    def handle_request(self, request: HttpRequest) -> None:
        if self._busy:
            self.counters.count_violation("too_many_connections")
            self._respond(_BUSY)
            return
        process_request = self._server.process_request
        if process_request is None:
            self._accept()
            return
        try:
            result = process_request(self, request)
        except Exception:
            logger.exception("process_request failed")
            result = _INTERNAL_ERROR
        if inspect.isawaitable(result):
            self._task = self.event_loop().create_task(self._process_async(result))
        else:
            self._answer(result)

    async def _process_async(self, pending: Awaitable[Optional[HTTPAnswer]]) -> None:
        try:
            result = await pending
        except Exception:
            logger.exception("process_request failed")
            result = _INTERNAL_ERROR
        self._task = None
        if self.transport is None or self.conn.state is not State.CONNECTING:
            return
        self._answer(result)
        self.process()

    def _answer(self, result: Optional[HTTPAnswer]) -> None:
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

    def _respond(self, result: HTTPAnswer) -> None:
        conn = self.conn
        assert isinstance(conn, ServerConnection)
        conn.respond(*http_answer(result))

    def _accept(self) -> None:
        conn = self.conn
        assert isinstance(conn, ServerConnection)
        # Messages that came with the request wait as events until the
        # connection is open for the application (on_open first).
        conn.on_message = None
        conn.accept()
        conn.on_message = self.deliver
        if conn.state is not State.OPEN:
            return  # an invalid request: answered with an error status
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        self.flush()  # the 101 before anything the handler sends
        self.open_completed()
        if self._handler is not None:
            self._task = self.event_loop().create_task(self._run_handler())
        events = conn.events()  # frames that came with the request
        if events:
            self.dispatch(events)

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
            if self.conn.state is State.OPEN:
                logger.exception("connection handler failed")
                self.set_close_cause("handler_error")
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
        options: Options,
        *,
        select_subprotocol: Optional[SubprotocolSelector] = None,
        process_request: Optional[ProcessRequest] = None,
        max_connections: Optional[int] = None,
        origins: Optional[OriginsLike] = None,
        max_connections_per_ip: Optional[int] = None,
    ) -> None:
        #: Connections (open or in their handshake) per client address; its
        #: ``limit`` is ``max_connections_per_ip`` (beyond it: 503).
        self.per_client = ConnectionsPerClient(max_connections_per_ip)
        #: The async function run for each connection (None in the callback style).
        self.handler: Optional[Handler] = None
        self._listener_factory: Optional[Callable[[], Listener]] = None
        if _is_listener_class(handler):
            self._listener_factory = handler  # type: ignore[assignment]
        elif callable(handler):
            self.handler = handler  # type: ignore[assignment]
        else:
            raise TypeError(
                "handler must be an async function (called with each connection) "
                "or a Listener subclass (instantiated for each connection)"
            )
        #: The settings of every connection.
        self.options = options
        #: Chooses the subprotocol of each connection, if given.
        self.select_subprotocol = select_subprotocol
        #: Called with each request before the handshake (see :func:`serve`).
        self.process_request = process_request
        #: Beyond this many connections, new requests are answered with 503.
        self.max_connections = max_connections
        #: The origins allowed to open a WebSocket (None: any), see :func:`serve`.
        self.origins: Optional[OriginPolicy] = OriginPolicy.build(origins)
        #: The connections of this server (open or still in their handshake).
        self.websockets: set[WebSocket] = set()
        #: The heartbeat shared by the connections (None without pings).
        self.heartbeat: Optional[Heartbeat] = None
        #: What its connections count (see :meth:`stats`).
        self.counters: Counters = new_counters("server")
        self._server: Optional[asyncio.AbstractServer] = None
        self._closing: Optional[asyncio.Task[None]] = None
        self._wakeup: Optional[asyncio.Future[None]] = None

    def new_listener(self) -> Optional[Listener]:
        """A new listener for one connection (None unless in the callback style)."""
        return self._listener_factory() if self._listener_factory is not None else None

    def stats(self) -> Stats:
        """A snapshot of what this server's connections counted (:mod:`wsframe.stats`)."""
        return Stats.of([self.counters])

    def protocol_factory(self) -> WebSocket:
        """The protocol of one new connection, not yet connected.

        What the server gives ``loop.create_server``; pass it to
        ``loop.connect_accepted_socket(server.protocol_factory, sock)`` to
        serve a socket accepted elsewhere.
        """
        return _ServerWebSocket(self)

    async def _start(self, create: Callable[..., Awaitable[asyncio.AbstractServer]]) -> None:
        loop = asyncio.get_running_loop()
        heartbeat = self.options.heartbeat
        if heartbeat is not None:
            self.heartbeat = Heartbeat(loop, *heartbeat)
        self._server = await create(self.protocol_factory)

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
        if self.heartbeat is not None:
            self.heartbeat.close()
        if close_connections:
            websockets = list(self.websockets)
            for ws in websockets:
                if ws.conn.state is State.CONNECTING:
                    ws.abort()
            # A closing handshake with each (close_timeout bounds it).
            if websockets:
                await asyncio.gather(
                    *(ws.close(code, "server shutting down") for ws in websockets),
                    return_exceptions=True,
                )
            tasks = [
                task
                for ws in websockets
                if isinstance(ws, _ServerWebSocket) and (task := ws.handler_task) is not None
            ]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        retire_counters(self.counters)  # into the process's totals

    async def wait_closed(self) -> None:
        """Wait until the server is closed."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
        elif self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _loop_create_server(
    loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any
) -> Awaitable[asyncio.AbstractServer]:
    return loop.create_server(*args, **kwargs)


class _Listen(NamedTuple):
    """Where a server listens."""

    host: Optional[Union[str, Sequence[str]]]
    port: Optional[int]
    sock: Optional[socket.socket]
    path: Optional[str]
    reuse_port: bool
    backlog: int
    ssl: Optional[ssl_module.SSLContext]
    create_server: Optional[CreateServer]


def _is_listener_class(obj: object) -> bool:
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
    several worker processes share a port; ``ssl`` for wss://;
    ``create_server(loop, protocol_factory, host, port, **options)`` makes
    the TCP server instead of ``loop.create_server`` (e.g.
    ``aiofastnet.create_server``, whose TLS transport is faster).

    Handshake policy: ``select_subprotocol(request, offered)`` chooses a
    subprotocol (else the first of ``subprotocols`` the client offers);
    ``process_request(ws, request)`` (may be async) returns None to go on
    with the handshake or ``(status, body)`` / ``(status, headers, body)`` /
    a :class:`~wsframe.handshake.Response` to answer with instead;
    ``max_connections``: beyond it new requests get 503, as do those of a
    client address beyond ``max_connections_per_ip`` (IPv6 addresses count
    per /64; behind a proxy every client has the proxy's address).

    ``origins``: which browser pages may open a WebSocket (the defence
    against cross-site WebSocket hijacking): a collection of allowed origins
    -- ``"https://app.example.com"`` (scheme and host case-insensitive,
    default ports implied), compiled regular expressions matched against
    the normalised origin, and ``None`` to accept requests without
    ``Origin`` (non-browser clients) -- or a
    :class:`~wsframe.handshake.OriginPolicy` (e.g. with ``same_host=True``).
    A refused WebSocket request is answered 403 before ``process_request``
    and the handler see it; plain HTTP requests (pages served by
    ``process_request``) are not checked. Default None: no check, every
    page of every site may connect -- a server that trusts cookies (or the
    client's address) must set it. See ``docs/security.md``.

    Every connection's settings: ``options`` (an
    :class:`~wsframe.options.Options`), or its fields as keyword arguments —
    ``max_message_size`` [1 MiB], ``compression`` ["deflate" or None],
    ``deflate_options``, ``subprotocols``, ``max_queue`` [16 messages
    buffered before reading pauses], ``write_limit`` [64 KiB high-water mark
    of the send buffer], ``ping_interval`` [20 s, None disables],
    ``ping_timeout`` [20 s], ``open_timeout`` [10 s to complete the
    handshake], ``close_timeout`` [10 s], ``max_ping_rate`` [10 pings/s from
    a client on average, None disables] and ``max_ping_burst`` [20 at once]
    (a client over them is closed with 1008), and the request limits
    ``max_request_line``, ``max_header_line``, ``max_headers``,
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
        create_server: Optional[CreateServer] = None,
        select_subprotocol: Optional[SubprotocolSelector] = None,
        process_request: Optional[ProcessRequest] = None,
        max_connections: Optional[int] = None,
        max_connections_per_ip: Optional[int] = None,
        origins: Optional[OriginsLike] = None,
        options: Optional[Options] = None,
        **overrides: Unpack[OptionsDict],
    ) -> None:
        self._server = Server(
            handler,
            Options.build(options, **overrides),
            select_subprotocol=select_subprotocol,
            process_request=process_request,
            max_connections=max_connections,
            origins=origins,
            max_connections_per_ip=max_connections_per_ip,
        )
        self._listen = _Listen(host, port, sock, path, reuse_port, backlog, ssl, create_server)

    async def _start(self) -> Server:
        loop = asyncio.get_running_loop()
        listen = self._listen

        def create(factory: Callable[[], WebSocket]) -> Awaitable[asyncio.AbstractServer]:
            if listen.path is not None:
                return loop.create_unix_server(
                    factory, listen.path, sock=listen.sock, backlog=listen.backlog, ssl=listen.ssl
                )
            create_server = listen.create_server or _loop_create_server
            if listen.sock is not None:
                return create_server(
                    loop, factory, sock=listen.sock, backlog=listen.backlog, ssl=listen.ssl
                )
            return create_server(
                loop,
                factory,
                listen.host,
                listen.port,
                backlog=listen.backlog,
                ssl=listen.ssl,
                reuse_port=listen.reuse_port or None,
            )

        await self._server._start(create)
        return self._server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.close()
