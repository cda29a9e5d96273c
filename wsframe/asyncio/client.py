"""The asyncio WebSocket client: ``connect()``, with reconnection."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl as ssl_module
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from typing import Any, Optional, Union

from ..connection import DEFAULT_MAX_MESSAGE_SIZE, ClientConnection
from ..errors import InvalidHandshake
from .connection import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_WRITE_LIMIT,
    Listener,
    WebSocket,
)
from .keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, Heartbeat

__all__ = ["DEFAULT_OPEN_TIMEOUT", "connect"]

logger = logging.getLogger("wsframe.client")

#: Default seconds to open the TCP connection and complete the handshake.
DEFAULT_OPEN_TIMEOUT = 10.0


class _ClientWebSocket(WebSocket):
    __slots__ = ()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        super().connection_lost(exc)
        if self._heartbeat is not None:
            self._heartbeat.close()


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
      4xx status is not retried.

    Options (defaults in brackets): ``subprotocols``, ``compression``
    ("deflate" or None), ``deflate_options``, ``origin``, ``extra_headers``,
    ``ssl`` (an SSLContext; wss:// uses a default one), ``server_hostname``,
    ``open_timeout`` [10 s], ``ping_interval`` [20 s, None disables],
    ``ping_timeout`` [20 s], ``close_timeout`` [10 s], ``max_message_size``
    [1 MiB], ``max_queue`` [16], ``write_limit`` [64 KiB], ``max_ping_rate``
    [10 pings/s from the server, None disables] and ``max_ping_burst`` [20]
    (over them: close 1008), ``listener`` (a
    :class:`Listener` instance or class, for the callback style), ``host`` and
    ``port`` to connect somewhere else than the URI says (a proxy, a test),
    ``path`` to connect over a Unix socket, or ``sock`` (a connected socket).
    """

    def __init__(
        self,
        uri: str,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        compression: Optional[str] = "deflate",
        deflate_options: Optional[dict[str, Any]] = None,
        origin: Optional[str] = None,
        extra_headers: Any = None,
        ssl: Optional[Union[ssl_module.SSLContext, bool]] = None,
        server_hostname: Optional[str] = None,
        host: Optional[str] = None,
        port: Optional[int] = None,
        path: Optional[str] = None,
        sock: Optional[socket.socket] = None,
        open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        listener: Optional[Union[Listener, type[Listener]]] = None,
        max_attempts: Optional[int] = None,
        backoff_initial: float = 0.5,
        backoff_factor: float = 2.0,
        backoff_max: float = 30.0,
        **limits: int,
    ) -> None:
        parts = urllib.parse.urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss"):
            raise ValueError(f"not a ws:// or wss:// URI: {uri!r}")
        secure = scheme == "wss"
        if secure and (ssl is None or ssl is True):
            ssl = ssl_module.create_default_context()
        elif not secure and ssl:
            raise ValueError("ssl is only for wss:// URIs")
        self.uri = uri
        if path is not None and sock is not None:
            raise ValueError("give path or sock, not both")
        self._path = path
        self._sock = sock
        self._host = host or parts.hostname
        self._port = port or parts.port or (443 if secure else 80)
        self._ssl = ssl or None
        self._server_hostname = server_hostname or (parts.hostname if secure else None)
        self._conn_options: dict[str, Any] = {
            "subprotocols": subprotocols,
            "compression": compression,
            "deflate_options": deflate_options,
            "origin": origin,
            "extra_headers": extra_headers,
            "max_message_size": max_message_size,
            **limits,
        }
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._max_queue = max_queue
        self._write_limit = write_limit
        self._listener = listener
        self._max_attempts = max_attempts
        self._backoff = (backoff_initial, backoff_factor, backoff_max)
        self._ws: Optional[WebSocket] = None
        ClientConnection(uri, **self._conn_options)  # validate the options now

    async def _connect(self) -> WebSocket:
        loop = asyncio.get_running_loop()
        listener = self._listener
        if isinstance(listener, type):
            listener = listener()
        ws = _ClientWebSocket(
            ClientConnection(self.uri, **self._conn_options),
            listener=listener,
            max_queue=self._max_queue,
            write_limit=self._write_limit,
            close_timeout=self._close_timeout,
        )
        ws._open_waiter = loop.create_future()
        if self._ping_interval:
            ws._heartbeat = Heartbeat(
                loop, self._ping_interval, self._ping_timeout or self._ping_interval
            )

        async def open_connection() -> None:
            if self._path is not None:
                await loop.create_unix_connection(
                    lambda: ws, self._path, ssl=self._ssl, server_hostname=self._server_hostname
                )
            elif self._sock is not None:
                await loop.create_connection(
                    lambda: ws,
                    sock=self._sock,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
            else:
                await loop.create_connection(
                    lambda: ws,
                    # None only for a URI without a host: asyncio raises ValueError.
                    self._host,  # type: ignore[arg-type]
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
            assert ws._open_waiter is not None
            await ws._open_waiter

        try:
            await asyncio.wait_for(open_connection(), self._open_timeout)
        except BaseException:
            if ws._transport is not None:
                ws._transport.abort()
            raise
        return ws

    def __await__(self) -> Any:
        return self._connect().__await__()

    async def __aenter__(self) -> WebSocket:
        self._ws = await self._connect()
        return self._ws

    async def __aexit__(self, *exc_info: Any) -> None:
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
            except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
                if isinstance(exc, InvalidHandshake) and exc.status and 400 <= exc.status < 500:
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
                if ws._transport is not None and ws.connection.closed_by is None:
                    # The application left the loop body with the connection open.
                    await ws.close()
            if ws._app_closed:
                return  # the application closed it: do not reconnect
            await ws.wait_closed()
