"""The threaded WebSocket client: ``connect()``, directly or through a proxy."""

from __future__ import annotations

import socket
import ssl as ssl_module
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Union

from .. import proxy as proxies
from ..connection import ClientConnection
from ..errors import InvalidHandshake
from ..headers import HeadersLike
from ..options import Options
from ..state import State
from ..typing import BytesLike
from ..uri import WebSocketURI, parse_uri
from .connection import WebSocket
from .keepalive import Heartbeat
from .transport import SocketLike, set_no_delay

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..options import OptionsDict

__all__ = ["connect"]


def connect(
    uri: Union[str, WebSocketURI],
    *,
    options: Optional[Options] = None,
    ssl: Optional[Union[ssl_module.SSLContext, bool]] = None,
    proxy: proxies.ProxySetting = proxies.ENVIRONMENT,
    origin: Optional[str] = None,
    extra_headers: Optional[HeadersLike] = None,
    proxy_ssl: Optional[ssl_module.SSLContext] = None,
    server_hostname: Optional[str] = None,
    host: Optional[str] = None,
    port: Optional[int] = None,
    sock: Optional[socket.socket] = None,
    path: Optional[str] = None,
    **overrides: Unpack[OptionsDict],
) -> WebSocket:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``); blocks
    until the opening handshake completed.

    ``with connect(uri) as ws:`` closes it on exit; so does ``ws.close()``.

    Where to connect: ``proxy`` — by default the environment's proxy for the
    URI (``https_proxy``, ``http_proxy``, ``all_proxy``, ``no_proxy``), a URL
    (``http://user:pass@host:port``, ``https://...``, ``socks5://``,
    ``socks5h://``, ``socks4://``; see :mod:`wsframe.proxy`) or None for a
    direct connection; ``proxy_ssl``: the SSLContext for an ``https://``
    proxy. ``ssl`` (an SSLContext; wss:// uses a default one),
    ``server_hostname``, ``host`` and ``port`` to connect somewhere else than
    the URI says, ``path`` for a Unix socket, or ``sock`` (a connected
    socket). The request: ``origin``, ``extra_headers``.

    The connection's settings: ``options`` (an
    :class:`~wsframe.options.Options`) or its fields as keyword arguments,
    as for :func:`wsframe.asyncio.connect` (``open_timeout`` bounds
    everything up to the open connection: proxy, TLS, handshake).

    Raises :class:`~wsframe.errors.InvalidHandshake` if the server refuses,
    :class:`~wsframe.errors.InvalidProxy` if the proxy does,
    :class:`TimeoutError` past ``open_timeout``, :class:`OSError` if the
    connection cannot be made.
    """
    parsed = parse_uri(uri)
    if parsed.secure:
        if ssl is None or ssl is True:
            ssl = ssl_module.create_default_context()
    elif ssl:
        raise ValueError("ssl is only for wss:// URIs")
    settings = Options.build(options, **overrides)
    conn = ClientConnection(parsed, settings, origin=origin, extra_headers=extra_headers)
    timeout = settings.open_timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    connected: SocketLike
    if sock is not None:
        connected = sock
    else:
        if path is not None:
            sock = connected = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        else:
            chosen = None if host is not None else proxies.select_proxy(parsed, proxy)
            connected = _open_tcp(
                parsed, chosen, host or parsed.host, port or parsed.port, deadline, proxy_ssl
            )
    set_no_delay(connected)
    if ssl:
        assert isinstance(ssl, ssl_module.SSLContext)
        connected = _start_tls(connected, ssl, server_hostname or parsed.host, deadline)
    ws = WebSocket(conn, connected)
    heartbeat = settings.heartbeat
    if heartbeat is not None:
        ws.heartbeat = Heartbeat(*heartbeat, name="wsframe-client-heartbeat")
    with ws.lock:
        ws.connection_made(ws.socket_transport)
    ws.read_handshake(deadline, lambda: conn.state is not State.CONNECTING)
    if not ws.opened:  # (opened, it may be closed already: messages came with the 101)
        error = conn.error
        ws.end_handshake()
        if isinstance(error, InvalidHandshake):
            raise error
        raise InvalidHandshake("the connection closed during the opening handshake")
    ws.opened_in_thread()
    return ws


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out while opening the connection")
    return remaining


def _open_tcp(
    uri: WebSocketURI,
    proxy: Optional[proxies.Proxy],
    host: str,
    port: int,
    deadline: Optional[float],
    proxy_ssl: Optional[ssl_module.SSLContext],
) -> SocketLike:
    """A TCP connection to the origin: direct, or a tunnel through ``proxy``."""
    if proxy is None:
        return socket.create_connection((host, port), _remaining(deadline))
    if proxy.is_socks:
        from python_socks.sync import Proxy as SocksProxy

        with proxies.socks_errors(proxy):
            # python-socks may be absent when type-checking (it is optional).
            tunnel: socket.socket = SocksProxy(*proxies.socks_arguments(proxy)).connect(
                uri.host, uri.port, timeout=_remaining(deadline)
            )
            return tunnel
    sock: SocketLike = socket.create_connection((proxy.host, proxy.port), _remaining(deadline))
    try:
        if proxy.secure:
            context = proxy_ssl or ssl_module.create_default_context()
            sock = _start_tls(sock, context, proxy.host, deadline)
        exchange = proxies.ConnectExchange(proxy, uri.host, uri.port)
        sock.sendall(exchange.request)
        while True:
            sock.settimeout(_remaining(deadline))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"{proxy.url} did not answer CONNECT in time") from None
            if not data:
                exchange.receive_eof()
            if exchange.receive(data):
                break
    except BaseException:
        sock.close()
        raise
    return sock


def _start_tls(
    sock: SocketLike, context: ssl_module.SSLContext, hostname: str, deadline: Optional[float]
) -> SocketLike:
    """TLS over ``sock``; over a TLS socket already (an https:// proxy), TLS in TLS."""
    try:
        sock.settimeout(_remaining(deadline))
        if isinstance(sock, ssl_module.SSLSocket):
            return TLSTunnel(sock, context, hostname)
        if isinstance(sock, socket.socket):
            return context.wrap_socket(sock, server_hostname=hostname)
        raise ValueError("TLS inside a TLS tunnel inside TLS is not supported")
    except socket.timeout:
        sock.close()
        raise TimeoutError("timed out during the TLS handshake") from None
    except BaseException:
        sock.close()
        raise


class TLSTunnel:
    """A TLS session inside another one: ``wss://`` through an ``https://`` proxy.

    An :class:`ssl.SSLObject` over the outer TLS socket, with the socket
    methods the threaded driver uses (``recv``, ``recv_into``, ``sendall``,
    ``settimeout``, ``shutdown``, ``close``...). The TLS object is used under
    a lock; the outer socket's reads and writes happen outside it, so one
    thread may read while another writes.
    """

    def __init__(self, outer: ssl_module.SSLSocket, context: ssl_module.SSLContext, hostname: str):
        self.outer = outer
        self._incoming = ssl_module.MemoryBIO()
        self._outgoing = ssl_module.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=hostname)
        self._lock = threading.Lock()  # the TLS object
        self._write_lock = threading.Lock()  # the order of what goes out
        while True:
            try:
                with self._lock:
                    self._tls.do_handshake()
                self._flush()
                break
            except ssl_module.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ssl_module.SSLEOFError("EOF during the TLS handshake") from None

    def _flush(self) -> None:
        with self._write_lock:
            with self._lock:
                data = self._outgoing.read()
            if data:
                self.outer.sendall(data)

    def _fill(self) -> bool:
        data = self.outer.recv(65536)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    def recv_into(self, buffer: Union[bytearray, memoryview], nbytes: int = 0) -> int:
        """Read decrypted bytes into ``buffer``; 0 at the end."""
        view = memoryview(buffer)
        size = nbytes or len(view)
        while True:
            try:
                with self._lock:
                    count: int = self._tls.read(size, view)  # type: ignore[assignment]
                return count
            except ssl_module.SSLWantReadError:
                self._flush()
                if not self._fill():
                    return 0
            except (ssl_module.SSLZeroReturnError, ssl_module.SSLEOFError):
                return 0

    def recv(self, size: int) -> bytes:
        """Read at most ``size`` decrypted bytes; b"" at the end."""
        buffer = bytearray(size)
        return bytes(buffer[: self.recv_into(buffer)])

    def sendall(self, data: BytesLike) -> None:
        """Encrypt and send all of ``data``."""
        with self._write_lock:
            with self._lock:
                self._tls.write(data)
                out = self._outgoing.read()
            self.outer.sendall(out)

    def pending(self) -> int:
        """Bytes readable without waiting for the network (decrypted or buffered)."""
        with self._lock:
            return self._tls.pending() or self._incoming.pending or self.outer.pending()

    def shutdown_transport(self, how: int) -> None:
        """Shut the TCP connection down (wakes a thread blocked reading it)."""
        socket.socket.shutdown(self.outer, how)

    def shutdown(self, how: int) -> None:
        """As :meth:`shutdown_transport`."""
        self.shutdown_transport(how)

    def cipher(self) -> Any:
        """The inner session's cipher."""
        return self._tls.cipher()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The origin's certificate."""
        return self._tls.getpeercert(binary_form)

    def version(self) -> Optional[str]:
        """The inner session's TLS version."""
        return self._tls.version()

    def __getattr__(self, name: str) -> Any:
        # settimeout, gettimeout, fileno, getpeername, getsockname, close, family, type...
        return getattr(self.outer, name)
