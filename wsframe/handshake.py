"""The WebSocket opening handshake (RFC 6455 §4), both sides, without I/O.

Server::

    parser = RequestParser()
    request = parser.feed(data)          # None until the request head is complete
    ...                                  # (InvalidHandshake -> reject_response(...))
    if request.is_websocket:
        validate_request(request)        # InvalidHandshake(status, headers, body)
        response = accept_response(request, subprotocol=..., extensions=...)
    frames_start = parser.leftover

Client::

    request = build_request("ws://example.com/chat", subprotocols=["chat"])
    send(request.serialize())
    parser = ResponseParser()
    response = parser.feed(data)         # None until complete (feed_eof() at EOF)
    subprotocol = validate_response(request, response)
    frames_start = parser.leftover

Limits (keyword arguments of both parsers, same defaults on both sides):

* ``max_request_line=8192`` -- bytes of the request line / status line,
  without its CRLF (server: 414 URI Too Long);
* ``max_header_line=8192`` -- bytes of one header line, without its CRLF (431);
* ``max_headers=100`` -- number of header fields (431);
* ``max_header_bytes=65536`` -- bytes of all header lines together, CRLFs
  included, without the request/status line and the final empty line (431);
* client only: ``max_body=65536`` -- bytes of the body of a non-101 response
  that are kept (longer bodies are truncated).

Parsing is strict: lines must end with CRLF (a bare LF or CR is a 400), an
obsolete folded header line is a 400, header names must be tokens, control
characters other than HTAB are not allowed in header values, and header
values are stripped of surrounding spaces and tabs. Header octets are decoded
as latin-1. Up to 16 empty lines before the request line are ignored (RFC
9112 §2.2). The server speaks HTTP/1.1 only: any other version (HTTP/1.0
included) is answered 505. On the server every error is an
:class:`~wsframe.errors.InvalidHandshake` with the status, the extra headers
and a short text body to answer with -- never any other exception for bad
input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn, Optional, Union

from .errors import InvalidHandshake
from .headers import (
    ExtensionList,
    Headers,
    HeadersLike,
    is_token,
    parse_extensions,
    parse_tokens,
)
from .uri import WebSocketURI, parse_uri

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_HEADER_LINE",
    "DEFAULT_MAX_REQUEST_LINE",
    "DEFAULT_PORTS",
    "GUID",
    "HTTPAnswer",
    "Origin",
    "OriginPolicy",
    "OriginsLike",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "accept_key",
    "accept_response",
    "build_request",
    "generate_key",
    "http_answer",
    "parse_origin",
    "reject_response",
    "select_subprotocol",
    "validate_key",
    "validate_request",
    "validate_response",
]

#: The GUID of RFC 6455 §1.3, appended to the key before hashing.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

DEFAULT_MAX_REQUEST_LINE = 8192
DEFAULT_MAX_HEADER_LINE = 8192
DEFAULT_MAX_HEADERS = 100
DEFAULT_MAX_HEADER_BYTES = 65536
DEFAULT_MAX_BODY = 65536
#: Empty lines tolerated before the request/status line.
MAX_LEADING_EMPTY_LINES = 16

_TOKEN_BYTES_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION_RE = re.compile(rb"HTTP/([0-9])\.([0-9])")
_TARGET_RE = re.compile(rb"[\x21-\x7e]+")
_STATUS_LINE_RE = re.compile(rb"(HTTP/[0-9]\.[0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_BAD_VALUE_BYTES_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS_RE = re.compile(r"[0-9]+")

_TARGET_STR_RE = re.compile(r"[\x21-\x7e]+")

# What build_request / accept_response set themselves; extra headers may not.
_CLIENT_OWN = ("host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version")
_CLIENT_OWN_OPTIONAL = (
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
)
_SERVER_OWN = (
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
)


# ---------------------------------------------------------------------------
# Keys


def accept_key(key: str) -> str:
    """Return ``Sec-WebSocket-Accept`` for ``key``: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("latin-1")).digest()
    return base64.b64encode(digest).decode("ascii")


def generate_key() -> str:
    """Return a fresh ``Sec-WebSocket-Key``: base64 of 16 bytes from :func:`os.urandom`."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def validate_key(key: str) -> bool:
    """Return whether ``key`` is the canonical base64 encoding of exactly 16 bytes."""
    if len(key) != 24:
        return False
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    # canonical: the unused low bits of the last character must be zero
    return len(raw) == 16 and base64.b64encode(raw).decode("ascii") == key


# ---------------------------------------------------------------------------
# Messages


def _split_target(target: str) -> tuple[str, str]:
    """Return ``(path, query)`` of a request target (origin-form or absolute-form)."""
    if target.startswith("/"):
        path, _, query = target.partition("?")
        return path, query
    if "://" in target:
        parts = urllib.parse.urlsplit(target)
        path = parts.path or "/"
        return path, parts.query
    return target, ""


def _tokens_lower(headers: Headers, name: str) -> list[str]:
    return [t.lower() for t in parse_tokens(headers.get_all(name))]


class Request:
    """An HTTP request head (the client's opening handshake, or any HTTP request).

    ``method``, ``target`` (raw, as sent), ``path`` and ``query`` (the target's
    parts, still percent-encoded; ``query`` without the ``?``, ``""`` if none;
    an absolute-form target ``http://host/p?q`` gives ``/p`` and ``q``),
    ``headers`` (:class:`~wsframe.headers.Headers`) and ``version``.

    ``method`` must be a token and ``target`` non-empty visible ASCII
    (:class:`ValueError` otherwise).
    """

    __slots__ = ("headers", "method", "path", "query", "target", "version")

    def __init__(
        self,
        method: str,
        target: str,
        headers: Optional[HeadersLike] = None,
        version: str = "HTTP/1.1",
    ) -> None:
        if not is_token(method):
            raise ValueError(f"invalid method {method!r}")
        if _TARGET_STR_RE.fullmatch(target) is None:
            raise ValueError(f"invalid request target {target!r}")
        self.method: str = method
        self.target: str = target
        self.path: str
        self.query: str
        self.path, self.query = _split_target(target)
        self.headers: Headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.version: str = version

    @property
    def origin(self) -> Optional[str]:
        """The ``Origin`` header, or ``None``."""
        return self.headers.get("Origin")

    @property
    def is_websocket(self) -> bool:
        """Whether the request asks for a WebSocket upgrade (``Upgrade: websocket``).

        Only the ``Upgrade`` header is looked at; :func:`validate_request`
        checks the rest.
        """
        try:
            return "websocket" in _tokens_lower(self.headers, "Upgrade")
        except ValueError:
            return False

    @property
    def key(self) -> Optional[str]:
        """The ``Sec-WebSocket-Key``, or ``None`` unless there is exactly one."""
        values = self.headers.get_all("Sec-WebSocket-Key")
        return values[0] if len(values) == 1 else None

    @property
    def subprotocols(self) -> list[str]:
        """The offered subprotocols, in the client's order (:class:`ValueError` if malformed)."""
        return parse_tokens(self.headers.get_all("Sec-WebSocket-Protocol"))

    @property
    def extensions(self) -> ExtensionList:
        """The parsed ``Sec-WebSocket-Extensions`` offers (:class:`ValueError` if malformed)."""
        return parse_extensions(self.headers.get_all("Sec-WebSocket-Extensions"))

    def serialize(self) -> bytes:
        """Return the request head as bytes, ending with the empty line."""
        start = f"{self.method} {self.target} {self.version}\r\n".encode("ascii")
        return start + self.headers.serialize() + b"\r\n"

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.target!r}, {self.headers!r})"


class Response:
    """An HTTP response: ``status``, ``reason``, ``headers``, ``body`` (bytes), ``version``.

    ``reason`` defaults to the standard phrase of ``status`` (``""`` if unknown).
    :meth:`serialize` writes exactly these fields; it adds no header itself.
    """

    __slots__ = ("body", "headers", "reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: Optional[str] = None,
        headers: Optional[HeadersLike] = None,
        body: bytes = b"",
        version: str = "HTTP/1.1",
    ) -> None:
        self.status: int = status
        self.reason: str = _reason(status) if reason is None else reason
        self.headers: Headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body: bytes = bytes(body)
        self.version: str = version

    def serialize(self) -> bytes:
        """Return status line, header fields, empty line and body as bytes."""
        start = f"{self.version} {self.status} {self.reason}\r\n".encode("latin-1")
        return start + self.headers.serialize() + b"\r\n" + self.body

    def __repr__(self) -> str:
        return (
            f"Response({self.status!r}, {self.reason!r}, {self.headers!r}, "
            f"<{len(self.body)} bytes>)"
        )


# RFC 9110 names where older Pythons' http.HTTPStatus still uses RFC 7231's
_REASONS = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def _reason(status: int) -> str:
    """The standard reason phrase (RFC 9110) of ``status``, ``""`` if unknown."""
    if status in _REASONS:
        return _REASONS[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


# ---------------------------------------------------------------------------
# Incremental parsing


class _HeadParser:
    """Line reader shared by :class:`RequestParser` and :class:`ResponseParser`.

    It remembers how far it searched for LF, so feeding a head one byte at a
    time costs linear time.
    """

    _is_server = True

    def __init__(
        self,
        max_request_line: int,
        max_header_line: int,
        max_headers: int,
        max_header_bytes: int,
    ) -> None:
        self.max_request_line = max_request_line
        self.max_header_line = max_header_line
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self._buf = bytearray()
        self._line_start = 0  # start of the current line in _buf
        self._searched = 0  # _buf[_line_start:_searched] has no LF
        self._start_line: Optional[bytes] = None
        self._fields: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._empty_lines = 0
        self._error: Optional[InvalidHandshake] = None
        #: Bytes received after the head (after the body for a non-101 response).
        self.leftover: bytes = b""

    # -- errors ---------------------------------------------------------------

    def _invalid(
        self, status: int, message: str, headers: Optional[HeadersLike] = None
    ) -> NoReturn:
        if self._is_server:
            exc = InvalidHandshake(message, status, headers, (message + "\n").encode())
        else:
            exc = InvalidHandshake(f"invalid HTTP response: {message}")
        self._error = exc
        raise exc

    # -- head -----------------------------------------------------------------

    def _read_head(self) -> bool:
        """Consume complete lines from the buffer; return True once the head is complete."""
        buf = self._buf
        while True:
            lf = buf.find(b"\n", self._searched)
            if lf < 0:
                self._searched = len(buf)
                self._check_partial(len(buf) - self._line_start)
                return False
            start = self._line_start
            self._line_start = self._searched = lf + 1
            if lf == start or buf[lf - 1] != 0x0D:
                self._invalid(400, "line ending is a bare LF, not CRLF")
            line = bytes(buf[start : lf - 1])
            if b"\r" in line:
                self._invalid(400, "bare CR in the request head")
            if self._start_line is None:
                if not line:
                    self._empty_lines += 1
                    if self._empty_lines > MAX_LEADING_EMPTY_LINES:
                        self._invalid(400, "too many empty lines before the start line")
                    continue
                if len(line) > self.max_request_line:
                    self._start_line_too_long()
                self._start_line = line
                self._parse_start_line(line)
                continue
            if not line:
                return True
            self._parse_header_line(line)

    def _start_line_too_long(self) -> NoReturn:
        self._invalid(414, f"request line longer than {self.max_request_line} bytes")

    def _check_partial(self, pending: int) -> None:
        # pending may end with the CR of a CRLF still to come, hence the + 1
        if self._start_line is None:
            if pending > self.max_request_line + 1:
                self._start_line_too_long()
        else:
            if pending > self.max_header_line + 1:
                self._invalid(431, f"header line longer than {self.max_header_line} bytes")
            if self._header_bytes + pending > self.max_header_bytes:
                self._invalid(431, f"header fields longer than {self.max_header_bytes} bytes")

    def _parse_start_line(self, line: bytes) -> None:
        raise NotImplementedError

    def _parse_header_line(self, line: bytes) -> None:
        if len(line) > self.max_header_line:
            self._invalid(431, f"header line longer than {self.max_header_line} bytes")
        self._header_bytes += len(line) + 2
        if self._header_bytes > self.max_header_bytes:
            self._invalid(431, f"header fields longer than {self.max_header_bytes} bytes")
        if len(self._fields) >= self.max_headers:
            self._invalid(431, f"more than {self.max_headers} header fields")
        if line[0] in b" \t":
            self._invalid(400, "obsolete line folding in header fields")
        colon = line.find(b":")
        if colon < 0:
            self._invalid(400, "header line without a colon")
        name = line[:colon]
        if _TOKEN_BYTES_RE.fullmatch(name) is None:
            self._invalid(400, f"invalid header name {name.decode('latin-1')!r}")
        value = line[colon + 1 :].strip(b" \t")
        if _BAD_VALUE_BYTES_RE.search(value):
            self._invalid(400, f"invalid character in header {name.decode('ascii')!r}")
        self._fields.append((name.decode("ascii"), value.decode("latin-1")))

    def _content_length(self, headers: Headers) -> Optional[int]:
        values = headers.get_all("Content-Length")
        if not values:
            return None
        lengths = {item.strip(" \t") for v in values for item in v.split(",")}
        if len(lengths) != 1:
            self._invalid(400, "conflicting Content-Length values")
        (length,) = lengths
        if _DIGITS_RE.fullmatch(length) is None or len(length) > 18:
            self._invalid(400, f"invalid Content-Length {length!r}")
        return int(length)


class RequestParser(_HeadParser):
    """Incremental HTTP/1.1 request-head parser with limits (server side).

    Feed it received bytes in pieces of any size; :meth:`feed` returns
    ``None`` until the head is complete, then the :class:`Request`. Bytes
    after the head (e.g. frames a client sent eagerly, or the body of a
    non-upgrade request) are in :attr:`leftover`. It parses any HTTP/1.1
    request -- use :func:`validate_request` (or :attr:`Request.is_websocket`)
    to check WebSocket-ness. After the request was returned, :meth:`feed`
    raises :class:`RuntimeError`; after an error it raises the same error.

    Errors are :class:`~wsframe.errors.InvalidHandshake` with ``status``:
    400 malformed (bad request line, bare LF/CR, obsolete line folding, bad
    header name or value, bad ``Content-Length`` or both ``Content-Length``
    and ``Transfer-Encoding``, too many leading empty lines), 414 request line
    over ``max_request_line``, 431 header line over ``max_header_line``, over
    ``max_headers`` fields or over ``max_header_bytes``, 505 HTTP version
    other than 1.1 (HTTP/1.0 included). Limits are checked as bytes arrive,
    before a line is complete.
    """

    _is_server = True

    def __init__(
        self,
        *,
        max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
        max_header_line: int = DEFAULT_MAX_HEADER_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        super().__init__(max_request_line, max_header_line, max_headers, max_header_bytes)
        self._request: Optional[Request] = None
        self._method = ""
        self._target = ""

    @property
    def request(self) -> Optional[Request]:
        """The parsed request once complete, else ``None``."""
        return self._request

    def _parse_start_line(self, line: bytes) -> None:
        parts = line.split(b" ")
        if len(parts) != 3 or not all(parts):
            self._invalid(400, "malformed request line")
        method, target, version = parts
        if _TOKEN_BYTES_RE.fullmatch(method) is None:
            self._invalid(400, "invalid method in the request line")
        if _TARGET_RE.fullmatch(target) is None:
            self._invalid(400, "invalid request target")
        if _VERSION_RE.fullmatch(version) is None:
            self._invalid(400, "malformed HTTP version in the request line")
        if version != b"HTTP/1.1":
            self._invalid(
                505, f"HTTP version {version.decode('ascii')} not supported, use HTTP/1.1"
            )
        self._method = method.decode("ascii")
        self._target = target.decode("ascii")

    def feed(self, data: bytes) -> Optional[Request]:
        """Add received bytes; return the :class:`Request` once its head is complete."""
        if self._error is not None:
            raise self._error
        if self._request is not None:
            raise RuntimeError("the request head is complete; read .leftover instead")
        self._buf += data
        if not self._read_head():
            return None
        headers = Headers.from_parsed(self._fields)
        if "Transfer-Encoding" in headers and "Content-Length" in headers:
            self._invalid(400, "both Content-Length and Transfer-Encoding")
        self._content_length(headers)
        self._request = Request(self._method, self._target, headers)
        self.leftover = bytes(self._buf[self._line_start :])
        self._buf = bytearray()
        return self._request


class ResponseParser(_HeadParser):
    """Incremental HTTP/1.1 response parser with limits (client side).

    :meth:`feed` returns ``None`` until the response is complete, then the
    :class:`Response`. A 101 response is complete at the end of its head and
    the bytes after it (the server's first frames) are in :attr:`leftover`.
    Other responses carry a body: with ``Content-Length``, that many bytes (at
    most ``max_body`` are kept; the response is complete once
    ``min(length, max_body)`` bytes arrived); without it, up to the end of the
    connection -- call :meth:`feed_eof` -- or ``max_body`` bytes. 1xx, 204 and
    304 responses have no body. A ``Transfer-Encoding`` body is not decoded:
    such a response is returned at the end of its head with an empty body.

    The limits are those of :class:`RequestParser` (``max_request_line``
    applies to the status line). Errors are
    :class:`~wsframe.errors.InvalidHandshake` with ``status=None`` (the
    response could not be parsed).
    """

    _is_server = False

    def __init__(
        self,
        *,
        max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
        max_header_line: int = DEFAULT_MAX_HEADER_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        super().__init__(max_request_line, max_header_line, max_headers, max_header_bytes)
        self.max_body = max_body
        self._status = 0
        self._reason = ""
        self._version = ""
        self._head: Optional[Response] = None  # head parsed, body pending
        self._body_wanted: Optional[int] = None  # None: until EOF
        self._response: Optional[Response] = None

    @property
    def response(self) -> Optional[Response]:
        """The parsed response once complete, else ``None``."""
        return self._response

    def _start_line_too_long(self) -> NoReturn:
        self._invalid(0, f"status line longer than {self.max_request_line} bytes")

    def _parse_start_line(self, line: bytes) -> None:
        m = _STATUS_LINE_RE.fullmatch(line)
        if m is None:
            self._invalid(0, f"malformed status line {line[:100]!r}")
        version, status, reason = m.groups()
        if not version.startswith(b"HTTP/1."):
            self._invalid(0, f"unsupported HTTP version {version.decode('ascii')}")
        self._version = version.decode("ascii")
        self._status = int(status)
        self._reason = (reason or b"").decode("latin-1")

    def _complete(self, body: bytes, rest: bytes) -> Response:
        assert self._head is not None
        self._head.body = body
        self._response = self._head
        self.leftover = rest
        self._buf = bytearray()
        return self._response

    def feed(self, data: bytes) -> Optional[Response]:
        """Add received bytes; return the :class:`Response` once it is complete."""
        if self._error is not None:
            raise self._error
        if self._response is not None:
            raise RuntimeError("the response is complete; read .leftover instead")
        self._buf += data
        if self._head is None:
            if not self._read_head():
                return None
            headers = Headers.from_parsed(self._fields)
            self._head = Response(self._status, self._reason, headers, b"", self._version)
            del self._buf[: self._line_start]
            self._line_start = 0
            status = self._status
            if status < 200 or status in (204, 304) or "Transfer-Encoding" in headers:
                return self._complete(b"", bytes(self._buf))
            length = self._content_length(headers)
            self._body_wanted = None if length is None else min(length, self.max_body)
        if self._body_wanted is not None:
            if len(self._buf) >= self._body_wanted:
                n = self._body_wanted
                return self._complete(bytes(self._buf[:n]), bytes(self._buf[n:]))
        elif len(self._buf) >= self.max_body:
            return self._complete(bytes(self._buf[: self.max_body]), b"")
        return None

    def feed_eof(self) -> Response:
        """Signal the end of the connection; return the response.

        The body is whatever arrived (possibly shorter than its
        ``Content-Length``). If the head is incomplete, raise
        :class:`~wsframe.errors.InvalidHandshake` (``status=None``).
        """
        if self._error is not None:
            raise self._error
        if self._response is not None:
            return self._response
        if self._head is None:
            self._invalid(0, "connection closed before the end of the response head")
        return self._complete(bytes(self._buf[: self.max_body]), b"")


# ---------------------------------------------------------------------------
# Server


def _bad(status: int, message: str, headers: Optional[HeadersLike] = None) -> InvalidHandshake:
    return InvalidHandshake(message, status, headers, (message + "\n").encode())


def validate_request(request: Request) -> None:
    """Check that ``request`` is a valid WebSocket opening handshake (RFC 6455 §4.2.1).

    Raises :class:`~wsframe.errors.InvalidHandshake` with the status, extra
    headers and short text body to answer with, checking in this order:

    * 405 with ``Allow: GET`` -- the method is not ``GET``;
    * 400 -- not exactly one ``Host``; a target that is not origin-form
      (``/path?query``) or absolute-form (``ws://...``/``http://...``); a
      body (``Content-Length`` > 0 or any ``Transfer-Encoding``);
    * 426 with ``Upgrade: websocket`` -- no ``Upgrade`` header at all;
    * 400 -- ``Upgrade`` present without the ``websocket`` token, or
      ``Connection`` without the ``upgrade`` token (tokens compared
      case-insensitively in comma lists over every field with that name);
    * 426 with ``Sec-WebSocket-Version: 13`` -- ``Sec-WebSocket-Version``
      missing, repeated or not exactly ``13``;
    * 400 -- not exactly one ``Sec-WebSocket-Key``, or one that is not the
      (strict, canonical) base64 encoding of 16 bytes;
    * 400 -- a malformed ``Sec-WebSocket-Protocol`` or
      ``Sec-WebSocket-Extensions``.

    ``Origin`` is not checked here: see :class:`OriginPolicy` (the server's
    ``origins`` setting), checked before the application sees the request.
    """
    headers = request.headers
    if request.method != "GET":
        raise _bad(405, f"method {request.method} not allowed, use GET", {"Allow": "GET"})
    if len(headers.get_all("Host")) != 1:
        raise _bad(400, "exactly one Host header is required")
    if not (request.target.startswith("/") or "://" in request.target):
        raise _bad(400, "invalid request target")
    if "Transfer-Encoding" in headers:
        raise _bad(400, "an upgrade request cannot have a body")
    lengths = {i.strip(" \t") for v in headers.get_all("Content-Length") for i in v.split(",")}
    if lengths - {"0"}:
        raise _bad(400, "an upgrade request cannot have a body")
    if "Upgrade" not in headers:
        raise _bad(426, "WebSocket upgrade required", {"Upgrade": "websocket"})
    try:
        upgrade = _tokens_lower(headers, "Upgrade")
        connection = _tokens_lower(headers, "Connection")
    except ValueError as exc:
        raise _bad(400, f"invalid Upgrade or Connection header: {exc}") from None
    if "websocket" not in upgrade:
        raise _bad(400, "the Upgrade header does not contain websocket")
    if "upgrade" not in connection:
        raise _bad(400, "the Connection header does not contain upgrade")
    versions = headers.get_all("Sec-WebSocket-Version")
    if versions != ["13"]:
        raise _bad(426, "unsupported WebSocket version, use 13", {"Sec-WebSocket-Version": "13"})
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise _bad(400, "exactly one Sec-WebSocket-Key header is required")
    if not validate_key(keys[0]):
        raise _bad(400, "Sec-WebSocket-Key is not the base64 encoding of 16 bytes")
    try:
        request.subprotocols  # noqa: B018 -- parse for validation
    except ValueError as exc:
        raise _bad(400, f"invalid Sec-WebSocket-Protocol header: {exc}") from None
    try:
        request.extensions  # noqa: B018
    except ValueError as exc:
        raise _bad(400, f"invalid Sec-WebSocket-Extensions header: {exc}") from None


def _check_extra(extra: Headers, reserved: Iterable[str], role: str) -> None:
    for name in reserved:
        if name in extra:
            raise ValueError(f"extra_headers may not set {name!r}: the {role} handshake sets it")


def accept_response(
    request: Request,
    *,
    subprotocol: Optional[str] = None,
    extensions: Optional[str] = None,
    extra_headers: Optional[HeadersLike] = None,
) -> Response:
    """Return the 101 Switching Protocols response accepting ``request``.

    Headers: ``Upgrade: websocket``, ``Connection: Upgrade``,
    ``Sec-WebSocket-Accept``, then ``Sec-WebSocket-Protocol`` if
    ``subprotocol`` is given (it must be one the client offered),
    ``Sec-WebSocket-Extensions`` if ``extensions`` (an already formatted
    value, see :func:`~wsframe.headers.format_extensions`) is given and
    non-empty, then ``extra_headers``. ``extra_headers`` may not contain the
    handshake's own headers (nor ``Content-Length``/``Transfer-Encoding``).
    :class:`ValueError` for any misuse, including a request without exactly
    one ``Sec-WebSocket-Key`` (call :func:`validate_request` first).
    """
    key = request.key
    if key is None:
        raise ValueError("the request has no (single) Sec-WebSocket-Key")
    extra = Headers(extra_headers)
    _check_extra(extra, _SERVER_OWN, "server")
    headers = Headers(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
    )
    if subprotocol is not None:
        if subprotocol not in request.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions:
        parse_extensions([extensions])  # ValueError if malformed
        headers.add("Sec-WebSocket-Extensions", extensions)
    headers.extend(extra)
    return Response(101, "Switching Protocols", headers)


_FORBIDDEN_REJECT = ("content-length", "transfer-encoding", "connection")


#: What a server's ``process_request`` hook may answer a request with, instead
#: of None (go on with the handshake): a :class:`Response`, ``(status, body)``
#: or ``(status, headers, body)``, the body ``str`` (sent as UTF-8) or ``bytes``.
HTTPAnswer = Union[
    Response,
    tuple[int, Union[str, bytes]],
    tuple[int, Optional[HeadersLike], Union[str, bytes]],
]


def http_answer(answer: HTTPAnswer) -> tuple[int, Union[str, bytes], Optional[HeadersLike]]:
    """``answer`` as ``(status, body, headers)``, the arguments of ``respond``.

    Raises :class:`ValueError` (or :class:`TypeError`) if it is none of the
    forms of :data:`HTTPAnswer`.
    """
    if isinstance(answer, Response):
        return answer.status, answer.body, answer.headers
    if len(answer) == 2:
        status, body = answer
        return status, body, None
    status, headers, body = answer
    return status, body, headers


def reject_response(
    status: int,
    body: Union[str, bytes] = "",
    headers: Optional[HeadersLike] = None,
) -> Response:
    """Return a complete response with ``status`` that ends the connection.

    Meant for handshake failures (``reject_response(exc.status, exc.body,
    exc.headers)``) and for plain HTTP answers (e.g. serving a page). The
    reason phrase is the standard one; ``body`` (``str`` is UTF-8 encoded) is
    sent as is. Headers: ``headers`` first, then ``Content-Type: text/plain;
    charset=utf-8`` unless ``headers`` has a ``Content-Type``, then
    ``Content-Length`` and ``Connection: close``. ``status`` must be 200-599;
    ``headers`` may not contain ``Content-Length``, ``Transfer-Encoding`` or
    ``Connection`` (:class:`ValueError`).
    """
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"status must be an int in 200..599, not {status!r}")
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    h = Headers(headers)
    _check_extra(h, _FORBIDDEN_REJECT, "response")
    if "Content-Type" not in h:
        h.add("Content-Type", "text/plain; charset=utf-8")
    h.add("Content-Length", str(len(data)))
    h.add("Connection", "close")
    return Response(status, None, h, data)


def select_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> Optional[str]:
    """Return the first of ``supported`` (server preference) that the client ``offered``.

    Names are compared exactly (subprotocol names are case-sensitive);
    ``None`` if there is none in common.
    """
    offered_set = set(offered)
    for name in supported:
        if name in offered_set:
            return name
    return None


# ---------------------------------------------------------------------------
# Origin (RFC 6454; RFC 6455 §4.2.1 item 7 and §10.2)

#: Default ports of the schemes an ``Origin`` is compared in (RFC 6454 §4).
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_ORIGIN_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/?#\[\]@\\]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_HOST_RE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/?#\[\]@\\]+)(?::(?P<port>[0-9]{1,5}))?")

_ORIGIN_REFUSED = "origin not allowed"
_ORIGIN_MISSING = "an Origin header is required"


def _normal_host(host: str) -> str:
    """``host`` lower-cased; an IPv6 literal in its compressed form, bracketed."""
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r}") from None
    return host.lower()


def _port(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    port = int(text)
    if port > 65535:
        raise ValueError(f"port {port} out of range")
    return port


class Origin(NamedTuple):
    """A parsed, normalised origin (RFC 6454): ``scheme``, ``host``, ``port``.

    ``scheme`` and ``host`` are lower case (an IPv6 literal is bracketed and
    compressed); ``port`` is the explicit port or the scheme's default (80
    for http/ws, 443 for https/wss), None for another scheme without one.
    Two origins are the same origin when their tuples are equal, so
    ``http://X:80`` == ``http://x``. ``str()`` is the serialisation a browser
    sends: the default port left out.
    """

    scheme: str
    host: str
    port: Optional[int]

    def __str__(self) -> str:
        if self.port is None or DEFAULT_PORTS.get(self.scheme) == self.port:
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_origin(value: str) -> Origin:
    """Parse the value of an ``Origin`` header: ``scheme://host[:port]``.

    Strict, as browsers serialise origins: ASCII only, no path, query,
    userinfo, fragment or trailing slash, a port of 0-65535.
    :class:`ValueError` otherwise, and for ``null`` (the opaque origin of
    sandboxed frames, ``file:`` pages and redirects: it identifies no site).
    """
    if not value.isascii():
        raise ValueError(f"an origin is ASCII: {value!r}")
    if value == "null":
        raise ValueError("'null' is an opaque origin: it does not identify a site")
    match = _ORIGIN_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"not an origin (scheme://host[:port]): {value!r}")
    scheme = match["scheme"].lower()
    port = _port(match["port"])
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
    return Origin(scheme, _normal_host(match["host"]), port)


def _parse_host(value: str) -> tuple[str, Optional[int]]:
    """``(host, port)`` of a ``Host`` header (port None when absent); ValueError if malformed."""
    match = _HOST_RE.fullmatch(value) if value.isascii() else None
    if match is None:
        raise ValueError(f"invalid Host {value!r}")
    return _normal_host(match["host"]), _port(match["port"])


def _configured_origin(value: str) -> Origin:
    """An allowed origin as written in the configuration: an IDN host is
    IDNA-encoded, and a URL of the site's root (``https://x/``) is its origin."""
    if value.endswith("/") and not value.endswith("//"):
        value = value[:-1]
    if not value.isascii():
        match = _ORIGIN_RE.fullmatch(value)
        if match is None:
            raise ValueError(f"not an origin (scheme://host[:port]): {value!r}")
        host = match["host"].encode("idna").decode("ascii")
        value = value[: match.start("host")] + host + value[match.end("host") :]
    try:
        return parse_origin(value)
    except ValueError as exc:
        if value == "null":
            raise ValueError(
                "'null' cannot be allowed: any sandboxed frame or file: page of any site "
                "sends it (use process_request if you really must)"
            ) from None
        raise ValueError(f"{exc}; an allowed origin is scheme://host[:port] (no path)") from None


#: What an ``origins`` setting may be: an :class:`OriginPolicy`, or the
#: collection of allowed origins it is built from.
OriginsLike = Union["OriginPolicy", Iterable[Union[str, "re.Pattern[str]", None]]]


class OriginPolicy:
    r"""Which browser origins may open a WebSocket: the defence against
    cross-site WebSocket hijacking (RFC 6455 §10.2).

    A browser sends the ``Origin`` of the page that opens a WebSocket and
    lets any page open one to any server, with the server's cookies. A
    server that authenticates with cookies (or by the client's address)
    must therefore refuse the origins it does not know; non-browser clients
    send any ``Origin`` they like, or none, so this is no authentication.

    ``origins`` is a collection of:

    * ``"scheme://host[:port]"``: an exact origin. Scheme and host are
      compared case-insensitively and default ports are implied
      (``http://x:80`` is ``http://x``, ``https://x:443`` is ``https://x``);
      an internationalised host name may be written in Unicode, and a
      trailing ``/`` (the site's root URL) is allowed; any other path is not.
    * a compiled regular expression (``re.compile(...)``), matched with
      ``fullmatch`` against the normalised origin ``str(parse_origin(value))``
      -- lower case, no default port -- e.g.
      ``re.compile(r"https://[a-z0-9-]+\.example\.com")``. Escape the dots.
    * ``None``: accept requests without an ``Origin`` header (non-browser
      clients: command-line tools, other servers, load tests).

    ``same_host=True`` also accepts an origin whose host and port are the
    request's ``Host`` (the page was served by this server under the same
    name): the scheme is not compared, since behind a TLS-terminating proxy
    the server cannot know it; the port of a ``Host`` without one is the
    default of the origin's scheme.

    Refused: an origin not allowed, a missing ``Origin`` unless ``None`` is
    in ``origins``, several ``Origin`` headers, a malformed one, and
    ``null``. :class:`ValueError` for an invalid entry, :class:`TypeError`
    for a bare string instead of a collection.
    """

    __slots__ = ("allow_missing", "exact", "patterns", "same_host")

    def __init__(
        self,
        origins: Iterable[Union[str, re.Pattern[str], None]] = (),
        *,
        same_host: bool = False,
    ) -> None:
        if isinstance(origins, (str, bytes)):
            raise TypeError("origins must be a collection of origins, not a single string")
        exact: set[Origin] = set()
        patterns: list[re.Pattern[str]] = []
        allow_missing = False
        for item in origins:
            if item is None:
                allow_missing = True
            elif isinstance(item, str):
                exact.add(_configured_origin(item))
            elif isinstance(item, re.Pattern):
                if not isinstance(item.pattern, str):
                    raise TypeError(f"a pattern of origins matches str, not bytes: {item!r}")
                patterns.append(item)
            else:
                raise TypeError(
                    f"an allowed origin is a str, a compiled pattern or None, not {item!r}"
                )
        #: The exact origins allowed.
        self.exact: frozenset[Origin] = frozenset(exact)
        #: The patterns an origin may match instead.
        self.patterns: tuple[re.Pattern[str], ...] = tuple(patterns)
        #: Whether a request without ``Origin`` is accepted.
        self.allow_missing: bool = allow_missing
        #: Whether an origin naming the request's own ``Host`` is accepted.
        self.same_host: bool = bool(same_host)

    @classmethod
    def build(cls, origins: Optional[OriginsLike]) -> Optional[OriginPolicy]:
        """``origins`` as a policy: None (no check) and a policy stay as they are."""
        if origins is None or isinstance(origins, OriginPolicy):
            return origins
        return cls(origins)

    def allows(self, origin: Optional[str], host: Optional[str] = None) -> bool:
        """Whether a request with this ``Origin`` value (None: no header) may connect.

        ``host`` is the request's ``Host``, for ``same_host``.
        """
        if origin is None:
            return self.allow_missing
        try:
            parsed = parse_origin(origin)
        except ValueError:
            return False
        if parsed in self.exact:
            return True
        if self.same_host and host is not None and parsed.scheme in DEFAULT_PORTS:
            try:
                name, port = _parse_host(host)
            except ValueError:
                return False
            if port is None:
                port = DEFAULT_PORTS[parsed.scheme]
            if (name, port) == (parsed.host, parsed.port):
                return True
        if self.patterns:
            text = str(parsed)
            return any(pattern.fullmatch(text) for pattern in self.patterns)
        return False

    def _allows_values(self, origins: Sequence[str], hosts: Sequence[str]) -> bool:
        if len(origins) > 1:
            return False
        host = hosts[0] if len(hosts) == 1 else None
        return self.allows(origins[0] if origins else None, host)

    def allows_request(self, request: Request) -> bool:
        """Whether ``request`` may connect (several ``Origin`` headers: refused)."""
        headers = request.headers
        return self._allows_values(headers.get_all("Origin"), headers.get_all("Host"))

    def check(self, request: Request) -> None:
        """Raise :class:`~wsframe.errors.InvalidHandshake` (403, a short text
        body, never the origin itself) unless ``request`` may connect."""
        if self.allows_request(request):
            return
        origins = request.headers.get_all("Origin")
        if not origins:
            raise InvalidHandshake(_ORIGIN_MISSING, 403, None, f"{_ORIGIN_MISSING}\n".encode())
        shown = ", ".join(repr(o[:100]) for o in origins)
        raise InvalidHandshake(
            f"origin {shown} not allowed", 403, None, f"{_ORIGIN_REFUSED}\n".encode()
        )

    def allows_scope(self, scope: Mapping[str, Any]) -> bool:
        """Whether an ASGI ``websocket`` connection's scope may connect (its
        ``headers``: lower-case byte names and byte values)."""
        origins: list[str] = []
        hosts: list[str] = []
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origins.append(bytes(value).decode("latin-1"))
            elif name == b"host":
                hosts.append(bytes(value).decode("latin-1"))
        return self._allows_values(origins, hosts)

    def __repr__(self) -> str:
        items: list[str] = sorted(str(origin) for origin in self.exact)
        items += [f"re.compile({pattern.pattern!r})" for pattern in self.patterns]
        if self.allow_missing:
            items.append("None")
        same = ", same_host=True" if self.same_host else ""
        return f"OriginPolicy([{', '.join(items)}]{same})"


# ---------------------------------------------------------------------------
# Client


def build_request(
    uri: Union[str, WebSocketURI],
    *,
    key: Optional[str] = None,
    origin: Optional[str] = None,
    subprotocols: Optional[Sequence[str]] = None,
    extensions: Optional[str] = None,
    extra_headers: Optional[HeadersLike] = None,
) -> Request:
    """Return the client's opening-handshake :class:`Request` for ``uri``.

    ``uri`` must be ``ws://`` or ``wss://`` (any case) with a host and no
    fragment (:class:`ValueError` otherwise), or a
    :class:`~wsframe.uri.WebSocketURI` already parsed by
    :func:`~wsframe.uri.parse_uri`. ``Host`` carries the port only
    when it is not the scheme's default (80/443); IPv6 literals are
    bracketed; non-ASCII host names are IDNA-encoded. The target is the path
    (``/`` if empty) and query, percent-encoding characters not allowed in
    them. ``user:password@`` becomes ``Authorization: Basic``.

    ``key`` defaults to :func:`generate_key` (a given key must be valid
    base64 of 16 bytes). ``subprotocols`` must be tokens; ``extensions`` is an
    already formatted ``Sec-WebSocket-Extensions`` value (checked with
    :func:`~wsframe.headers.parse_extensions`). ``extra_headers`` (a dict,
    pairs or :class:`~wsframe.headers.Headers`) come last and may not set
    the handshake's own headers -- ``Host``, ``Upgrade``, ``Connection``,
    ``Sec-WebSocket-*``, ``Content-Length``, ``Transfer-Encoding``, nor
    ``Origin``/``Authorization`` when ``origin``/userinfo provide them --
    :class:`ValueError` otherwise.
    """
    parsed = parse_uri(uri)

    if key is None:
        key = generate_key()
    elif not validate_key(key):
        raise ValueError(f"invalid Sec-WebSocket-Key {key!r}")

    extra = Headers(extra_headers)
    reserved = list(_CLIENT_OWN + _CLIENT_OWN_OPTIONAL)
    if origin is not None:
        reserved.append("origin")
    if parsed.username is not None:
        reserved.append("authorization")
    _check_extra(extra, reserved, "client")

    headers = Headers(
        [
            ("Host", parsed.host_header),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ]
    )
    if origin is not None:
        headers.add("Origin", origin)
    if subprotocols:
        for name in subprotocols:
            if not isinstance(name, str) or not is_token(name):
                raise ValueError(f"invalid subprotocol name {name!r}")
        headers.add("Sec-WebSocket-Protocol", ", ".join(subprotocols))
    if extensions:
        parse_extensions([extensions])  # ValueError if malformed
        headers.add("Sec-WebSocket-Extensions", extensions)
    if parsed.user_info is not None:
        user, password = parsed.user_info
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers.add("Authorization", f"Basic {credentials}")
    headers.extend(extra)
    return Request("GET", parsed.resource_name, headers)


def validate_response(
    request: Request,
    response: Response,
    *,
    subprotocols: Optional[Sequence[str]] = None,
    offered_extensions: Optional[Sequence[str]] = None,
) -> Optional[str]:
    """Check the server's answer to ``request``; return the subprotocol (or ``None``).

    ``subprotocols`` (offered names) and ``offered_extensions`` (offered
    extension *names*) default to what ``request`` carries. Checks: status
    101 (and HTTP/1.1), ``Upgrade`` with the ``websocket`` token and
    ``Connection`` with the ``upgrade`` token (case-insensitive, comma lists),
    exactly one ``Sec-WebSocket-Accept`` matching the key, at most one
    subprotocol and only one that was offered, well-formed
    ``Sec-WebSocket-Extensions`` naming only offered extensions (their
    parameters are the extension's business, e.g. the deflate module).

    Any failure raises :class:`~wsframe.errors.InvalidHandshake` carrying the
    response's ``status``, ``headers`` and ``body``.
    """
    headers = response.headers

    def invalid(message: str) -> InvalidHandshake:
        return InvalidHandshake(message, response.status, headers, response.body)

    if response.status != 101:
        reason = f" {response.reason}" if response.reason else ""
        raise invalid(f"server rejected the WebSocket connection: {response.status}{reason}")
    if response.version != "HTTP/1.1":
        raise invalid(f"unexpected HTTP version {response.version} in a 101 response")
    try:
        upgrade = _tokens_lower(headers, "Upgrade")
        connection = _tokens_lower(headers, "Connection")
    except ValueError as exc:
        raise invalid(f"invalid Upgrade or Connection header: {exc}") from None
    if "websocket" not in upgrade:
        raise invalid("the Upgrade header of the response does not contain websocket")
    if "upgrade" not in connection:
        raise invalid("the Connection header of the response does not contain upgrade")
    accepts = headers.get_all("Sec-WebSocket-Accept")
    if len(accepts) != 1:
        raise invalid("the response needs exactly one Sec-WebSocket-Accept header")
    key = request.key
    if key is None or accepts[0] != accept_key(key):
        raise invalid("Sec-WebSocket-Accept does not match Sec-WebSocket-Key")

    if subprotocols is None:
        subprotocols = request.subprotocols
    try:
        chosen = parse_tokens(headers.get_all("Sec-WebSocket-Protocol"))
    except ValueError as exc:
        raise invalid(f"invalid Sec-WebSocket-Protocol header: {exc}") from None
    if len(chosen) > 1:
        raise invalid(f"the server selected several subprotocols: {', '.join(chosen)}")
    subprotocol = chosen[0] if chosen else None
    if subprotocol is not None and subprotocol not in subprotocols:
        raise invalid(f"the server selected subprotocol {subprotocol!r}, which was not offered")

    if offered_extensions is None:
        offered_extensions = [name for name, _ in request.extensions]
    offered_names = {name.lower() for name in offered_extensions}
    try:
        accepted = parse_extensions(headers.get_all("Sec-WebSocket-Extensions"))
    except ValueError as exc:
        raise invalid(f"invalid Sec-WebSocket-Extensions header: {exc}") from None
    for name, _ in accepted:
        if name not in offered_names:
            raise invalid(f"the server accepted extension {name!r}, which was not offered")
    return subprotocol
