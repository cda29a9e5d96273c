"""The asyncio WebSocket client: ``connect()``, with reconnection."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl as ssl_module
import sys
from collections.abc import AsyncIterator, Awaitable, Generator
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ..connection import ClientConnection
from ..errors import InvalidHandshake, InvalidProxy
from ..headers import HeadersLike
from ..options import DEFAULT_OPEN_TIMEOUT, Options
from ..proxy import (
    ENVIRONMENT,
    ConnectExchange,
    Proxy,
    ProxySetting,
    select_proxy,
    socks_arguments,
    socks_errors,
)
from ..uri import WebSocketURI, parse_uri
from .connection import Listener, WebSocket
from .keepalive import Heartbeat

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..options import OptionsDict

__all__ = ["DEFAULT_OPEN_TIMEOUT", "connect"]

#: ``create_connection(loop, protocol_factory, host, port, **options)``: opens the TCP connection.
CreateConnection = Callable[..., Awaitable[Any]]


def _loop_create_connection(
    loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any
) -> Awaitable[Any]:
    return loop.create_connection(*args, **kwargs)


logger = logging.getLogger("wsframe.client")


class _ClientWebSocket(WebSocket):
    __slots__ = ()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        super().connection_lost(exc)
        if isinstance(self.heartbeat, Heartbeat):
            self.heartbeat.close()  # a client's heartbeat serves it alone


class _TunnelProtocol(asyncio.Protocol):
    """The HTTP CONNECT exchange with a proxy, until the tunnel is open."""

    def __init__(self, exchange: ConnectExchange, opened: asyncio.Future[None]) -> None:
        self.exchange = exchange
        self.opened = opened

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.exchange.request)  # type: ignore[attr-defined]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return
        try:
            opened = self.exchange.receive(data)
        except InvalidProxy as exc:
            self.opened.set_exception(exc)
            return
        if opened:
            self.transport.pause_reading()  # type: ignore[attr-defined]
            self.opened.set_result(None)

    def eof_received(self) -> None:
        self.connection_lost(None)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.opened.done():
            try:
                self.exchange.receive_eof()
            except InvalidProxy as error:
                self.opened.set_exception(error)


class connect:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``).

    * ``ws = await connect(uri)``, then ``await ws.close()``;
    * ``async with connect(uri) as ws:`` closes on exit;
    * ``async for ws in connect(uri):`` reconnects: after the connection
      fails or the server closes it, the next iteration connects again, after
      an exponential backoff with full jitter (``backoff_initial`` [0.5 s],
      ``backoff_factor`` [2], ``backoff_max`` [30 s]); ``max_attempts``
      consecutive failures (None: no limit) end it by raising the last error.
      It stops for good when the application closed the connection itself
      (``await ws.close()``) or leaves the loop. A refused handshake with a
      4xx status is not retried, nor is a proxy's refusal
      (:class:`~wsframe.errors.InvalidProxy` with a status).

    Where to connect: ``proxy`` — by default the environment's proxy for the
    URI (``https_proxy``, ``http_proxy``, ``all_proxy``, ``no_proxy``), a
    URL (``http://user:pass@host:port``, ``https://...``, ``socks5://``,
    ``socks5h://``, ``socks4://``; see :mod:`wsframe.proxy`) or None for a
    direct connection; ``proxy_ssl``: the SSLContext for an ``https://``
    proxy (with a ``wss://`` URI, TLS in TLS: Python 3.11 or later). ``ssl``
    (an SSLContext; wss:// uses a default one),
    ``server_hostname``, ``host`` and ``port`` to connect somewhere else than
    the URI says (a proxy, a test), ``path`` to connect over a Unix socket,
    or ``sock`` (a connected socket); ``create_connection(loop,
    protocol_factory, host, port, **options)`` instead of
    ``loop.create_connection`` (e.g. ``aiofastnet.create_connection``). The request: ``origin``,
    ``extra_headers``. ``listener``: a :class:`Listener` instance or class,
    for the callback style.

    The connection's settings: ``options`` (an
    :class:`~wsframe.options.Options`), or its fields as keyword arguments —
    ``subprotocols``, ``compression`` ("deflate" or None),
    ``deflate_options``, ``open_timeout`` [10 s], ``ping_interval`` [20 s,
    None disables], ``ping_timeout`` [20 s], ``close_timeout`` [10 s],
    ``max_message_size`` [1 MiB], ``max_queue`` [16], ``write_limit``
    [64 KiB], ``max_ping_rate`` [10 pings/s from the server, None disables]
    and ``max_ping_burst`` [20] (over them: close 1008), and the response
    limits.
    """

    def __init__(
        self,
        uri: Union[str, WebSocketURI],
        *,
        proxy: ProxySetting = ENVIRONMENT,
        proxy_ssl: Optional[ssl_module.SSLContext] = None,
        origin: Optional[str] = None,
        extra_headers: Optional[HeadersLike] = None,
        ssl: Optional[Union[ssl_module.SSLContext, bool]] = None,
        server_hostname: Optional[str] = None,
        host: Optional[str] = None,
        port: Optional[int] = None,
        path: Optional[str] = None,
        sock: Optional[socket.socket] = None,
        create_connection: Optional[CreateConnection] = None,
        listener: Optional[Union[Listener, type[Listener]]] = None,
        max_attempts: Optional[int] = None,
        backoff_initial: float = 0.5,
        backoff_factor: float = 2.0,
        backoff_max: float = 30.0,
        options: Optional[Options] = None,
        **overrides: Unpack[OptionsDict],
    ) -> None:
        parsed = parse_uri(uri)
        secure = parsed.secure
        if secure and (ssl is None or ssl is True):
            ssl = ssl_module.create_default_context()
        elif not secure and ssl:
            raise ValueError("ssl is only for wss:// URIs")
        self.uri = uri
        self._uri = parsed
        if path is not None and sock is not None:
            raise ValueError("give path or sock, not both")
        self._path = path
        self._sock = sock
        self._create_connection = create_connection or _loop_create_connection
        self._host = host or parsed.host
        self._port = port or parsed.port
        self._ssl = ssl or None
        self._server_hostname = server_hostname or (parsed.host if secure else None)
        # An explicit host or socket means no proxy.
        self._proxy = proxy if host is None and path is None and sock is None else None
        select_proxy(parsed, proxy)  # a bad proxy URL fails now
        self._proxy_ssl = proxy_ssl
        #: The connection's settings.
        self.options = Options.build(options, **overrides)
        self._origin = origin
        self._extra_headers = extra_headers
        self._listener = listener
        self._max_attempts = max_attempts
        self._backoff = (backoff_initial, backoff_factor, backoff_max)
        self._ws: Optional[WebSocket] = None
        self._new_connection()  # validate the URI and headers now

    def _new_connection(self) -> ClientConnection:
        return ClientConnection(
            self._uri, self.options, origin=self._origin, extra_headers=self._extra_headers
        )

    async def _connect(self) -> WebSocket:
        loop = asyncio.get_running_loop()
        listener = self._listener
        if isinstance(listener, type):
            listener = listener()
        ws = _ClientWebSocket(self._new_connection(), listener=listener)
        opened = ws.expect_open()
        heartbeat = self.options.heartbeat
        if heartbeat is not None:
            ws.heartbeat = Heartbeat(loop, *heartbeat)

        proxy = select_proxy(self._uri, self._proxy)

        async def open_connection() -> None:
            if proxy is not None:
                await self._through_proxy(loop, ws, proxy)
            elif self._path is not None:
                await loop.create_unix_connection(
                    lambda: ws, self._path, ssl=self._ssl, server_hostname=self._server_hostname
                )
            elif self._sock is not None:
                await self._create_connection(
                    loop,
                    lambda: ws,
                    sock=self._sock,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
            else:
                await self._create_connection(
                    loop,
                    lambda: ws,
                    # None only for a URI without a host: asyncio raises ValueError.
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
            await opened

        try:
            await asyncio.wait_for(open_connection(), self.options.open_timeout)
        except BaseException:
            ws.abort()
            raise
        return ws

    async def _through_proxy(
        self, loop: asyncio.AbstractEventLoop, ws: WebSocket, proxy: Proxy
    ) -> None:
        """Open the TCP connection to the origin as a tunnel through ``proxy``."""
        uri = self._uri
        if proxy.is_socks:
            from python_socks.async_.asyncio import Proxy as SocksProxy

            with socks_errors(proxy):
                sock = await SocksProxy(*socks_arguments(proxy)).connect(
                    uri.host, uri.port, timeout=self.options.open_timeout
                )
            await self._create_connection(
                loop, lambda: ws, sock=sock, ssl=self._ssl, server_hostname=self._server_hostname
            )
            return
        if proxy.secure and self._ssl is not None and sys.version_info < (3, 11):
            raise ValueError(
                "wss:// through an https:// proxy needs Python 3.11 or later with asyncio "
                "(TLS in TLS with loop.start_tls); use an http:// or SOCKS proxy, or "
                "wsframe.sync.connect"
            )
        opened: asyncio.Future[None] = loop.create_future()
        tunnel = _TunnelProtocol(ConnectExchange(proxy, uri.host, uri.port), opened)
        proxy_ssl = (
            (self._proxy_ssl or ssl_module.create_default_context()) if proxy.secure else None
        )
        transport, _ = await loop.create_connection(
            lambda: tunnel,
            proxy.host,
            proxy.port,
            ssl=proxy_ssl,
            server_hostname=proxy.host if proxy_ssl is not None else None,
        )
        try:
            await opened
            if isinstance(self._ssl, ssl_module.SSLContext):
                # TLS to the origin inside the tunnel (inside TLS to an https:// proxy).
                upgraded = await loop.start_tls(
                    transport, ws, self._ssl, server_hostname=self._server_hostname
                )
                assert upgraded is not None
                transport = upgraded
            else:
                transport.set_protocol(ws)
                transport.resume_reading()
        except BaseException:
            transport.abort()
            raise
        ws.connection_made(transport)

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._connect().__await__()

    async def __aenter__(self) -> WebSocket:
        self._ws = await self._connect()
        return self._ws

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[WebSocket]:
        return self._reconnecting()

    async def _reconnecting(self) -> AsyncIterator[WebSocket]:
        initial, factor, maximum = self._backoff
        delay = initial
        failures = 0
        while True:
            try:
                ws = await self._connect()
            except (OSError, asyncio.TimeoutError, InvalidHandshake, InvalidProxy) as exc:
                refused = isinstance(exc, InvalidProxy) and exc.status is not None
                if refused or (
                    isinstance(exc, InvalidHandshake) and exc.status and 400 <= exc.status < 500
                ):
                    raise  # refused: retrying would not help
                failures += 1
                if self._max_attempts is not None and failures >= self._max_attempts:
                    raise
                pause = random.uniform(0, delay)
                logger.info(
                    "connecting to %s failed (%s); retrying in %.2f s", self.uri, exc, pause
                )
                await asyncio.sleep(pause)
                delay = min(maximum, delay * factor)
                continue
            failures = 0
            delay = initial
            try:
                yield ws
            finally:
                if ws.transport is not None and ws.connection.closed_by is None:
                    # The application left the loop body with the connection open.
                    await ws.close()
            if ws.closed_by_application:
                return  # the application closed it: do not reconnect
            if not ws.draining:
                # A failed connection drains by itself (bounded by
                # close_timeout); any other ends before the next one starts.
                await ws.wait_closed()
