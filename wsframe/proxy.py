"""Client proxies: which one to use, and the HTTP ``CONNECT`` exchange without I/O.

Both clients (``wsframe.asyncio.connect`` and ``wsframe.sync.connect``) take
``proxy=``:

* a URL: ``http://[user:password@]host[:port]`` (a ``CONNECT`` tunnel),
  ``https://...`` (the same, over TLS to the proxy; a ``wss://`` origin then
  gets its own TLS session inside that one), ``socks5://`` (names resolved
  by the client), ``socks5h://`` (names resolved by the proxy),
  ``socks4://`` and ``socks4a://``; SOCKS needs the ``python-socks`` package
  (``pip install "wsframe[socks]"``);
* nothing (the default): the proxy the environment names for the URI, as
  :func:`urllib.request.getproxies` and :func:`urllib.request.proxy_bypass`
  read it — ``wss_proxy``/``https_proxy`` for ``wss://``,
  ``ws_proxy``/``http_proxy`` for ``ws://``, then ``all_proxy``; none for
  the hosts in ``no_proxy``;
* ``None``: no proxy, whatever the environment says.

A proxy that refuses (HTTP 407 or 403, a SOCKS error) or breaks the exchange
raises :class:`~wsframe.errors.InvalidProxy` with the status it answered.

This module holds what both clients share: :func:`select_proxy`,
:func:`parse_proxy`, :class:`Proxy`, the sans-I/O :class:`ConnectExchange`
(the tunnel request and the parsing of its answer), and
:func:`socks_arguments`/:func:`socks_errors` (python-socks' proxy and its
exceptions as wsframe's).
The I/O lives in each client.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any, Optional, Union

from .errors import InvalidHandshake, InvalidProxy
from .handshake import ResponseParser
from .uri import WebSocketURI

__all__ = [
    "ENVIRONMENT",
    "ConnectExchange",
    "Proxy",
    "ProxySetting",
    "parse_proxy",
    "select_proxy",
    "socks_arguments",
    "socks_errors",
]

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "socks5": 1080,
    "socks5h": 1080,
    "socks4": 1080,
    "socks4a": 1080,
}

#: Bytes of a proxy's answer to CONNECT that are read before giving up.
MAX_CONNECT_RESPONSE = 65536


class _Environment:
    def __repr__(self) -> str:
        return "ENVIRONMENT"


#: ``proxy=ENVIRONMENT`` (the default): the proxy the environment names, if any.
ENVIRONMENT = _Environment()

#: What ``proxy=`` accepts: a URL, a :class:`Proxy`, :data:`ENVIRONMENT` or None.
ProxySetting = Union[str, "Proxy", None, _Environment]


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A proxy: ``scheme`` is http, https, socks5, socks5h, socks4 or socks4a."""

    scheme: str
    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def is_socks(self) -> bool:
        """Whether it speaks SOCKS (else HTTP CONNECT)."""
        return self.scheme.startswith("socks")

    @property
    def secure(self) -> bool:
        """Whether the connection to the proxy itself uses TLS (``https://``)."""
        return self.scheme == "https"

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy resolves the origin's name (socks5h, socks4a, HTTP)."""
        return self.scheme in ("socks5h", "socks4a", "http", "https")

    @property
    def url(self) -> str:
        """The proxy's URL, without the password (for messages)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username is not None else ""
        return f"{self.scheme}://{user}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.url!r})"


def parse_proxy(url: str) -> Proxy:
    """Parse a proxy URL (:class:`ValueError` if it is not one wsframe can use).

    A URL without a scheme (``host:port``, as some environments have it) is
    an HTTP proxy.
    """
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"unsupported proxy scheme {scheme!r} in {url!r}: use http, https, "
            "socks5, socks5h, socks4 or socks4a"
        )
    if not parts.hostname:
        raise ValueError(f"no host in proxy URL {url!r}")
    username = password = None
    if parts.username is not None:
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    return Proxy(scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme], username, password)


def select_proxy(uri: WebSocketURI, proxy: ProxySetting = ENVIRONMENT) -> Optional[Proxy]:
    """The proxy to reach ``uri`` through, or None for a direct connection.

    ``proxy`` is what the application passed: a URL or :class:`Proxy` (used
    as is), None (no proxy) or :data:`ENVIRONMENT` (the environment's proxy
    for the URI's scheme unless ``no_proxy`` names its host).
    """
    if proxy is None:
        return None
    if isinstance(proxy, Proxy):
        return proxy
    if isinstance(proxy, str):
        return parse_proxy(proxy)
    if proxy is not ENVIRONMENT and proxy is not True:  # type: ignore[comparison-overlap]
        raise TypeError(f"proxy must be a URL, None or ENVIRONMENT, not {proxy!r}")
    proxies = urllib.request.getproxies()
    keys = ("wss", "https", "all") if uri.secure else ("ws", "http", "all")
    for key in keys:
        url = proxies.get(key)
        if url:
            break
    else:
        return None
    if urllib.request.proxy_bypass(f"{uri.netloc_host}:{uri.port}"):
        return None
    return parse_proxy(url)


class ConnectExchange:
    """The ``CONNECT`` request to an HTTP proxy and its answer, without I/O.

    Send :attr:`request`, then :meth:`receive` what the proxy answers until
    it returns True: the tunnel is open. :meth:`receive_eof` when the proxy
    closed the connection. A refusal (any status but 2xx), a malformed
    answer, a closed connection, or bytes after the answer (a WebSocket
    server never speaks first) raise :class:`~wsframe.errors.InvalidProxy`.
    """

    __slots__ = ("_buffer", "proxy", "request")

    def __init__(self, proxy: Proxy, host: str, port: int) -> None:
        #: The proxy.
        self.proxy = proxy
        self._buffer = bytearray()
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if proxy.username is not None:
            credentials = f"{proxy.username}:{proxy.password or ''}".encode()
            lines.append(f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}")
        #: The bytes to send to the proxy.
        self.request: bytes = ("\r\n".join(lines) + "\r\n\r\n").encode()

    def receive(self, data: bytes) -> bool:
        """Bytes from the proxy; True once the tunnel is open."""
        buffer = self._buffer
        start = max(0, len(buffer) - 3)
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buffer) > MAX_CONNECT_RESPONSE:
                raise self._error("the answer to CONNECT is too long")
            return False
        head, rest = bytes(buffer[: end + 4]), bytes(buffer[end + 4 :])
        try:
            parser = ResponseParser(max_body=0)
            response = parser.feed(head) or parser.feed_eof()
        except InvalidHandshake as exc:
            raise self._error(f"invalid answer to CONNECT: {exc.message}") from None
        if not 200 <= response.status < 300:
            reason = f" {response.reason}" if response.reason else ""
            raise InvalidProxy(
                f"the proxy refused the tunnel: {response.status}{reason}",
                self.proxy.url,
                response.status,
                response.headers,
                response.body,
            )
        if rest:
            raise self._error("unexpected bytes after the answer to CONNECT")
        return True

    def receive_eof(self) -> None:
        """The proxy closed the connection before its answer was complete."""
        raise self._error("the proxy closed the connection before answering CONNECT")

    def _error(self, message: str) -> InvalidProxy:
        return InvalidProxy(message, self.proxy.url)


@contextlib.contextmanager
def socks_errors(proxy: Proxy) -> Iterator[None]:
    """Turn python-socks' exceptions into wsframe's around a SOCKS connection.

    A refusal (``ProxyError``: a SOCKS reply code, bad credentials, a proxy
    that does not speak SOCKS) becomes :class:`~wsframe.errors.InvalidProxy`
    with the reply code as ``status``; a timeout :class:`TimeoutError`; a
    connection error stays an :class:`OSError`.
    """
    from python_socks import ProxyError, ProxyTimeoutError

    try:
        yield
    except ProxyTimeoutError:
        raise TimeoutError(f"timed out while connecting through {proxy.url}") from None
    except ProxyError as exc:
        code = getattr(exc, "error_code", None)
        raise InvalidProxy(f"the SOCKS proxy refused: {exc}", proxy.url, code) from None


def socks_arguments(proxy: Proxy) -> tuple[Any, str, int, Optional[str], Optional[str], bool]:
    """The positional arguments of python-socks' ``Proxy`` for ``proxy``.

    Raises :class:`ImportError` with the package to install if python-socks
    is missing.
    """
    try:
        from python_socks import ProxyType
    except ImportError:
        raise ImportError(
            f"a {proxy.scheme}:// proxy needs python-socks: pip install 'wsframe[socks]'"
        ) from None
    kind = ProxyType.SOCKS5 if proxy.scheme.startswith("socks5") else ProxyType.SOCKS4
    return kind, proxy.host, proxy.port, proxy.username, proxy.password, proxy.remote_dns
