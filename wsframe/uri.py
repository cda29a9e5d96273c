"""WebSocket URIs (RFC 6455 §3), parsed once into a small typed record.

:func:`parse_uri` checks a ``ws://`` or ``wss://`` URI and returns a
:class:`WebSocketURI`; the clients (``wsframe.asyncio.connect``,
``wsframe.sync.connect``), the proxy code and
:func:`wsframe.handshake.build_request` all read that record instead of
splitting the string again::

    uri = parse_uri("wss://user:pw@example.com/chat?room=1")
    uri.secure, uri.host, uri.port        # True, 'example.com', 443
    uri.resource_name                     # '/chat?room=1'
    uri.host_header                       # 'example.com'
    uri.user_info                         # ('user', 'pw')
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Optional, Union

__all__ = ["WebSocketURI", "parse_uri"]

_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_SAFE = "/?%:@!$&'()*+,;="


@dataclasses.dataclass(frozen=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI.

    ``host`` is the host name as the URI has it (lower-cased; IPv6 literals
    without brackets; non-ASCII names IDNA-encoded), ``port`` the explicit
    port or the scheme's default (80, 443), ``path`` and ``query`` are
    percent-encoded where the URI had characters not allowed there,
    ``username``/``password`` the decoded userinfo (None without).
    """

    secure: bool
    host: str
    port: int
    path: str = "/"
    query: str = ""
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def scheme(self) -> str:
        """``"wss"`` or ``"ws"``."""
        return "wss" if self.secure else "ws"

    @property
    def default_port(self) -> bool:
        """Whether :attr:`port` is the scheme's default (80 for ws, 443 for wss)."""
        return self.port == (443 if self.secure else 80)

    @property
    def resource_name(self) -> str:
        """The request target: the path and ``?query`` if there is one."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def netloc_host(self) -> str:
        """The host as it goes into a URI or a header (IPv6 literals bracketed)."""
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host, and the port unless it is the default."""
        host = self.netloc_host
        return host if self.default_port else f"{host}:{self.port}"

    @property
    def user_info(self) -> Optional[tuple[str, str]]:
        """``(username, password)`` from the URI, or None."""
        if self.username is None:
            return None
        return self.username, self.password or ""

    def __str__(self) -> str:
        port = "" if self.default_port else f":{self.port}"
        return f"{self.scheme}://{self.netloc_host}{port}{self.resource_name}"


def parse_uri(uri: Union[str, WebSocketURI]) -> WebSocketURI:
    """Parse a ``ws://`` or ``wss://`` URI (any case).

    Raises :class:`ValueError` for another scheme, a URI without a host, a
    fragment, or an invalid port. A :class:`WebSocketURI` is returned as is.
    """
    if isinstance(uri, WebSocketURI):
        return uri
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a ws:// or wss:// URI: {uri!r}")
    if parts.fragment or uri.endswith("#"):
        raise ValueError(f"a WebSocket URI cannot have a fragment: {uri!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URI {uri!r}")
    port = parts.port  # ValueError if invalid
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    secure = scheme == "wss"
    username = password = None
    if parts.username is not None:
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    return WebSocketURI(
        secure=secure,
        host=host,
        port=port if port is not None else (443 if secure else 80),
        path=urllib.parse.quote(parts.path or "/", safe=_PATH_SAFE),
        query=urllib.parse.quote(parts.query, safe=_QUERY_SAFE) if parts.query else "",
        username=username,
        password=password,
    )
