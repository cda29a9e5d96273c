"""wsframe.handshake: the opening handshake, both sides, and interop with peers."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsframe import handshake as hs
from wsframe.errors import InvalidHandshake, WebSocketError
from wsframe.handshake import (
    Request,
    RequestParser,
    Response,
    ResponseParser,
    accept_key,
    accept_response,
    build_request,
    generate_key,
    reject_response,
    select_subprotocol,
    validate_key,
    validate_request,
    validate_response,
)
from wsframe.headers import Headers

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# RFC 6455 §1.2, with CRLF line endings
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)


def parse_request(data: bytes, **limits: int) -> Request:
    request = RequestParser(**limits).feed(data)
    assert request is not None
    return request


def request_error(data: bytes, **limits: int) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        RequestParser(**limits).feed(data)
    return info.value


def ws_request(*lines: str, target: str = "/chat", method: str = "GET") -> bytes:
    """An RFC-like request with ``lines`` replacing the defaults of the same names."""
    defaults = {
        "host": "Host: server.example.com",
        "upgrade": "Upgrade: websocket",
        "connection": "Connection: Upgrade",
        "sec-websocket-key": f"Sec-WebSocket-Key: {KEY}",
        "sec-websocket-version": "Sec-WebSocket-Version: 13",
    }
    extra: list[str] = []
    replaced: set[str] = set()
    for line in lines:
        name = line.split(":", 1)[0].lower()
        if name in defaults and name not in replaced:
            defaults[name] = line
            replaced.add(name)
        else:
            extra.append(line)
    head = [f"{method} {target} HTTP/1.1", *[v for v in defaults.values() if v], *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


def ws_request_without(*names: str) -> bytes:
    data = ws_request()
    lines = data.split(b"\r\n")
    kept = [ln for ln in lines if ln.split(b":", 1)[0].decode().lower() not in names]
    return b"\r\n".join(kept)


# -- keys ---------------------------------------------------------------------------


def test_accept_key_rfc_vector() -> None:
    assert accept_key(KEY) == ACCEPT
    assert hs.GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_generate_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key()
    assert len(base64.b64decode(key, validate=True)) == 16 and validate_key(key)
    assert generate_key() != generate_key()
    monkeypatch.setattr(hs.os, "urandom", lambda n: b"\x01" * n)
    assert generate_key() == base64.b64encode(b"\x01" * 16).decode()


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        (KEY, True),
        ("AAAAAAAAAAAAAAAAAAAAAA==", True),
        ("AAAAAAAAAAAAAAAAAAAAAB==", False),  # non-canonical padding bits
        ("AAAAAAAAAAAAAAAAAAAAAA", False),  # no padding
        ("AAAAAAAAAAAAAAAAAAAAAAA=", False),  # 17 bytes
        ("AAAAAAAAAAAAAAAAAAAAAA=", False),
        ("AAAAAAAAAAAAAAAAAAAA", False),  # 15 bytes
        ("AAAAAAAAAAAAAAAAAAAA!A==", False),
        ("AAAAAAAAAAA AAAAAAAAAA==", False),
        ("AAAAAAAAAAAAAAAAAAAAA\xe9==", False),
        ("", False),
    ],
)
def test_validate_key(key: str, valid: bool) -> None:
    assert validate_key(key) is valid


# -- InvalidHandshake -------------------------------------------------------------------


def test_invalid_handshake_attributes() -> None:
    exc = InvalidHandshake("nope", 405, {"Allow": "GET"}, b"nope\n")
    assert isinstance(exc, WebSocketError)
    assert exc.status == 405 and exc.headers == Headers([("Allow", "GET")])
    assert exc.body == b"nope\n" and exc.message == "nope"
    assert str(exc) == "HTTP 405: nope"
    assert "405" in repr(exc)
    plain = InvalidHandshake("garbage")
    assert str(plain) == "garbage" and plain.status is None
    assert plain.headers == Headers() and plain.body == b""
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.status, copy.headers, copy.body, str(copy)) == (
        405,
        exc.headers,
        b"nope\n",
        str(exc),
    )


# -- request parsing --------------------------------------------------------------------


def test_parse_rfc_request() -> None:
    request = parse_request(RFC_REQUEST)
    assert request.method == "GET" and request.target == "/chat" and request.version == "HTTP/1.1"
    assert request.path == "/chat" and request.query == ""
    assert request.headers["host"] == "server.example.com"
    assert request.origin == "http://example.com"
    assert request.is_websocket and request.key == KEY
    assert request.subprotocols == ["chat", "superchat"]
    assert request.extensions == []
    validate_request(request)


def test_path_and_query() -> None:
    request = parse_request(ws_request(target="/a/b%20c?x=1&y=%2F?z"))
    assert (request.path, request.query) == ("/a/b%20c", "x=1&y=%2F?z")
    request = parse_request(ws_request(target="/?"))
    assert (request.path, request.query) == ("/", "")
    request = parse_request(ws_request(target="ws://h.example/p?q=1"))
    assert (request.path, request.query) == ("/p", "q=1")
    validate_request(request)
    request = parse_request(ws_request(target="http://h.example"))
    assert (request.path, request.query) == ("/", "")


def test_values_stripped_and_latin1() -> None:
    request = parse_request(ws_request("X-Pad: \t padded value \t ", "X-Latin: caf\xe9", "X-E:"))
    assert request.headers["x-pad"] == "padded value"
    assert request.headers["x-latin"] == "caf\xe9"
    assert request.headers["x-e"] == ""


def test_leftover_and_sticky_states() -> None:
    parser = RequestParser()
    assert parser.feed(RFC_REQUEST[:10]) is None and parser.request is None
    request = parser.feed(RFC_REQUEST[10:] + b"\x81\x85frames")
    assert request is not None and parser.request is request
    assert parser.leftover == b"\x81\x85frames"
    with pytest.raises(RuntimeError):
        parser.feed(b"more")
    bad = RequestParser()
    with pytest.raises(InvalidHandshake) as first:
        bad.feed(b"GET / HTTP/1.1\n")
    with pytest.raises(InvalidHandshake) as second:
        bad.feed(b"Host: x\r\n\r\n")
    assert second.value is first.value


def test_plain_http_request_parses() -> None:
    request = parse_request(b"GET /index.html?v=2 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert not request.is_websocket
    assert request.path == "/index.html" and request.query == "v=2"
    assert request.key is None and request.origin is None
    with pytest.raises(InvalidHandshake) as info:
        validate_request(request)
    assert info.value.status == 426


def test_post_with_body_parses_body_in_leftover() -> None:
    parser = RequestParser()
    request = parser.feed(b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert request is not None and request.method == "POST"
    assert parser.leftover == b"abc"
    assert not request.is_websocket


def test_leading_empty_lines_ignored_up_to_limit() -> None:
    request = parse_request(b"\r\n\r\n" + RFC_REQUEST)
    assert request.target == "/chat"
    exc = request_error(b"\r\n" * (hs.MAX_LEADING_EMPTY_LINES + 1) + RFC_REQUEST)
    assert exc.status == 400


def _splits(data: bytes) -> list[tuple[bytes, bytes]]:
    return [(data[:i], data[i:]) for i in range(len(data) + 1)]


@pytest.mark.parametrize("extra", [b"", b"\x81\x00trailing frames"])
def test_request_every_split_point_equals_one_shot(extra: bytes) -> None:
    data = RFC_REQUEST + extra
    whole = RequestParser()
    expected = whole.feed(data)
    assert expected is not None
    for first, second in _splits(data):
        parser = RequestParser()
        got = parser.feed(first)
        if got is None:
            got = parser.feed(second)
        else:
            assert second == b"" or len(first) >= len(RFC_REQUEST)
            assert parser.leftover + second == extra
            continue
        assert got is not None
        assert (got.method, got.target, got.headers) == (
            expected.method,
            expected.target,
            expected.headers,
        )
        assert parser.leftover == whole.leftover == extra


def test_request_byte_at_a_time() -> None:
    parser = RequestParser()
    results = [parser.feed(bytes([b])) for b in RFC_REQUEST]
    assert all(r is None for r in results[:-1])
    last = results[-1]
    assert last is not None and last.headers == parse_request(RFC_REQUEST).headers


def test_request_byte_at_a_time_long_header_is_linear() -> None:
    # 60 KB header line fed one byte at a time: linear scanning keeps this fast
    data = b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 8000 + b"\r\n" + b"X: y\r\n" * 100
    parser = RequestParser(max_headers=200)
    for i in range(len(data)):
        assert parser.feed(data[i : i + 1]) is None
    assert parser.feed(b"\r\n") is not None


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_request_random_chunking(sizes: list[int]) -> None:
    data = RFC_REQUEST + b"rest"
    parser = RequestParser()
    pos = 0
    result = None
    for size in [*sizes, len(data)]:
        chunk = data[pos : pos + size]
        pos += len(chunk)
        result = parser.feed(chunk)
        if result is not None:
            break
    assert result is not None and result.headers == parse_request(RFC_REQUEST).headers
    assert parser.leftover + data[pos:] == b"rest"


@given(st.binary(max_size=300))
def test_request_parser_only_raises_invalid_handshake(data: bytes) -> None:
    parser = RequestParser()
    try:
        for i in range(0, len(data), 7):
            if parser.feed(data[i : i + 7]) is not None:
                break
    except InvalidHandshake as exc:
        assert exc.status in (400, 414, 431, 505) and exc.body


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"GET /chat HTTP/1.1\nHost: x\n\n", 400, "bare LF"),
        (b"GET /chat HTTP/1.1\r\nHost: x\n\r\n", 400, "bare LF"),
        (b"GET /chat HTTP/1.1\r\nHost: x\r\n\n", 400, "bare LF"),
        (b"GET /chat HTTP/1.1\r\nHost: x\ry: z\r\n\r\n", 400, "bare CR"),
        (b"GET /chat HTTP/1.1\r\nX-A: b\r\n  folded\r\n\r\n", 400, "folding"),
        (b"GET /chat HTTP/1.1\r\n\tX-A: b\r\n\r\n", 400, "folding"),
        (b"GET /chat HTTP/1.1\r\nNoColon\r\n\r\n", 400, "colon"),
        (b"GET /chat HTTP/1.1\r\n: empty name\r\n\r\n", 400, "header name"),
        (b"GET /chat HTTP/1.1\r\nHost : x\r\n\r\n", 400, "header name"),
        (b"GET /chat HTTP/1.1\r\nBad(Name): x\r\n\r\n", 400, "header name"),
        (b"GET /chat HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, "invalid character"),
        (b"GET /chat HTTP/1.1\r\nX: a\x7fb\r\n\r\n", 400, "invalid character"),
        (b"GET /chat HTTP/1.1\r\nX: a\x1bb\r\n\r\n", 400, "invalid character"),
        (b"GET /chat\r\n\r\n", 400, "request line"),
        (b"GET  /chat HTTP/1.1\r\n\r\n", 400, "request line"),
        (b"GET /chat HTTP/1.1 \r\n\r\n", 400, "request line"),
        (b"GET /a b HTTP/1.1\r\n\r\n", 400, "request line"),
        (b"G(T /chat HTTP/1.1\r\n\r\n", 400, "method"),
        (b"GET /ch\xe9t HTTP/1.1\r\n\r\n", 400, "target"),
        (b"GET /chat HTTP/1.1x\r\n\r\n", 400, "version"),
        (b"GET /chat http/1.1\r\n\r\n", 400, "version"),
        (b"GET /chat HTTP/11\r\n\r\n", 400, "version"),
        (b"GET /chat HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, "Content-Length"),
        (b"GET /chat HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
        (b"GET /chat HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400, "Content-Length"),
        (
            b"GET /chat HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            "Content-Length",
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "Transfer-Encoding",
        ),
        (b"GET /chat HTTP/1.0\r\nHost: x\r\n\r\n", 505, "HTTP/1.0"),
        (b"GET /chat HTTP/2.0\r\n\r\n", 505, "HTTP/2.0"),
        (b"GET /chat HTTP/0.9\r\n\r\n", 505, "HTTP/0.9"),
    ],
)
def test_request_parse_errors(data: bytes, status: int, message: str) -> None:
    exc = request_error(data)
    assert exc.status == status
    assert message in exc.message
    assert exc.body == (exc.message + "\n").encode()
    response = reject_response(exc.status, exc.body, exc.headers)
    assert response.status == status


def test_request_parse_errors_byte_at_a_time_same_status() -> None:
    for data in (b"GET /chat HTTP/1.0\r\n\r\n", b"GET /\r\n", b"GET / HTTP/1.1\r\nX\r\n"):
        parser = RequestParser()
        with pytest.raises(InvalidHandshake) as info:
            for b in data:
                parser.feed(bytes([b]))
        assert info.value.status == request_error(data).status


def test_content_length_zero_and_repeated_equal_accepted() -> None:
    request = parse_request(ws_request("Content-Length: 0"))
    validate_request(request)
    parse_request(b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n")


# -- limits -----------------------------------------------------------------------------


def test_default_limits() -> None:
    assert hs.DEFAULT_MAX_REQUEST_LINE == 8192
    assert hs.DEFAULT_MAX_HEADER_LINE == 8192
    assert hs.DEFAULT_MAX_HEADERS == 100
    assert hs.DEFAULT_MAX_HEADER_BYTES == 65536
    assert hs.DEFAULT_MAX_BODY == 65536
    for parser in (RequestParser(), ResponseParser()):
        assert parser.max_request_line == 8192
        assert parser.max_header_line == 8192
        assert parser.max_headers == 100
        assert parser.max_header_bytes == 65536
    assert ResponseParser().max_body == 65536


def _request_line(length: int) -> bytes:
    line = b"GET /" + b"a" * (length - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == length
    return line


def test_default_request_line_limit() -> None:
    parse_request(_request_line(8192) + b"\r\n\r\n")
    exc = request_error(_request_line(8193) + b"\r\n\r\n")
    assert exc.status == 414
    # detected before the line ends
    exc = request_error(b"GET /" + b"a" * 9000)
    assert exc.status == 414


def test_request_line_limit_configurable() -> None:
    parse_request(_request_line(40) + b"\r\n\r\n", max_request_line=40)
    assert request_error(_request_line(41) + b"\r\n\r\n", max_request_line=40).status == 414
    parser = RequestParser(max_request_line=40)
    assert parser.feed(_request_line(40) + b"\r") is None  # could still be a valid line
    assert request_error(_request_line(42), max_request_line=40).status == 414


def test_default_header_line_limit() -> None:
    ok = b"X: " + b"v" * (8192 - 3)
    parse_request(b"GET / HTTP/1.1\r\n" + ok + b"\r\n\r\n")
    exc = request_error(b"GET / HTTP/1.1\r\n" + ok + b"v\r\n\r\n")
    assert exc.status == 431 and "header line" in exc.message
    assert request_error(b"GET / HTTP/1.1\r\nX: " + b"v" * 9000).status == 431


def test_header_line_limit_configurable() -> None:
    parse_request(b"GET / HTTP/1.1\r\nX: 1234567\r\n\r\n", max_header_line=10)
    exc = request_error(b"GET / HTTP/1.1\r\nX: 12345678\r\n\r\n", max_header_line=10)
    assert exc.status == 431


def test_default_header_count_limit() -> None:
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(100))
    assert len(parse_request(b"GET / HTTP/1.1\r\n" + lines + b"\r\n").headers) == 100
    exc = request_error(b"GET / HTTP/1.1\r\n" + lines + b"Y: v\r\n\r\n")
    assert exc.status == 431 and "100 header fields" in exc.message


def test_header_count_limit_configurable() -> None:
    parse_request(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", max_headers=2)
    exc = request_error(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", max_headers=2)
    assert exc.status == 431


def test_default_header_bytes_limit() -> None:
    line = b"X: " + b"v" * 8189 + b"\r\n"  # 8194 bytes with CRLF
    lines = line * 7 + b"Y: " + b"v" * (65536 - 7 * 8194 - 5) + b"\r\n"
    assert len(lines) == 65536
    parse_request(b"GET / HTTP/1.1\r\n" + lines + b"\r\n")
    exc = request_error(b"GET / HTTP/1.1\r\n" + lines + b"Z: 1\r\n\r\n")
    assert exc.status == 431 and "65536" in exc.message
    # detected before the line ends
    assert request_error(b"GET / HTTP/1.1\r\n" + line * 8 + b"Z: 123").status == 431


def test_header_bytes_limit_configurable() -> None:
    parse_request(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", max_header_bytes=12)
    exc = request_error(b"GET / HTTP/1.1\r\nA: 1\r\nB: 23\r\n\r\n", max_header_bytes=12)
    assert exc.status == 431


# -- validate_request -------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        ("Upgrade: WebSocket", "Connection: keep-alive, Upgrade"),
        ("Upgrade: h2c, websocket", "Connection: UPGRADE"),
        ("Connection: keep-alive", "Connection: upgrade"),
        ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",),
    ],
)
def test_validate_request_accepts(lines: tuple[str, ...]) -> None:
    validate_request(parse_request(ws_request(*lines)))


@pytest.mark.parametrize(
    ("data", "status", "headers"),
    [
        (ws_request(method="POST"), 405, [("Allow", "GET")]),
        (ws_request(method="get"), 405, [("Allow", "GET")]),
        (ws_request_without("host"), 400, []),
        (ws_request("Host: a", "Host: b"), 400, []),
        (ws_request(target="*"), 400, []),
        (ws_request(target="example.com:80"), 400, []),
        (ws_request("Content-Length: 5"), 400, []),
        (ws_request("Transfer-Encoding: chunked"), 400, []),
        (ws_request_without("upgrade"), 426, [("Upgrade", "websocket")]),
        (ws_request("Upgrade: h2c"), 400, []),
        (ws_request("Upgrade: web socket"), 400, []),
        (ws_request_without("connection"), 400, []),
        (ws_request("Connection: keep-alive"), 400, []),
        (ws_request_without("sec-websocket-version"), 426, [("Sec-WebSocket-Version", "13")]),
        (ws_request("Sec-WebSocket-Version: 8"), 426, [("Sec-WebSocket-Version", "13")]),
        (ws_request("Sec-WebSocket-Version: 13, 8"), 426, [("Sec-WebSocket-Version", "13")]),
        (
            ws_request("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13"),
            426,
            [("Sec-WebSocket-Version", "13")],
        ),
        (ws_request_without("sec-websocket-key"), 400, []),
        (ws_request(f"Sec-WebSocket-Key: {KEY}", f"Sec-WebSocket-Key: {KEY}"), 400, []),
        (ws_request("Sec-WebSocket-Key: c2hvcnQ="), 400, []),
        (ws_request("Sec-WebSocket-Key: not base64 at all!!!!!!"), 400, []),
        (ws_request("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB=="), 400, []),
        (ws_request("Sec-WebSocket-Protocol: chat, sup er"), 400, []),
        (ws_request('Sec-WebSocket-Extensions: permessage-deflate; x="a b"'), 400, []),
    ],
)
def test_validate_request_errors(data: bytes, status: int, headers: list[tuple[str, str]]) -> None:
    request = parse_request(data)
    with pytest.raises(InvalidHandshake) as info:
        validate_request(request)
    exc = info.value
    assert exc.status == status
    assert exc.headers == Headers(headers)
    assert exc.body and exc.body.endswith(b"\n") and b"Traceback" not in exc.body
    response = reject_response(exc.status, exc.body, exc.headers)
    raw = response.serialize()
    assert raw.startswith(f"HTTP/1.1 {status} ".encode())
    for name, value in headers:
        assert f"{name}: {value}\r\n".encode() in raw
    assert raw.endswith(b"\r\n\r\n" + exc.body)


# -- accept / reject / select -----------------------------------------------------------------


def test_accept_response_rfc() -> None:
    request = parse_request(RFC_REQUEST)
    response = accept_response(request, subprotocol="chat")
    assert response.serialize() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"\r\n"
    )


def test_accept_response_extensions_and_extra_headers() -> None:
    request = parse_request(ws_request("Sec-WebSocket-Extensions: permessage-deflate"))
    response = accept_response(
        request,
        extensions="permessage-deflate; server_no_context_takeover",
        extra_headers={"Server": "wsframe", "Set-Cookie": "a=b"},
    )
    assert response.status == 101 and response.body == b""
    assert response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_no_context_takeover"
    )
    assert response.headers.items()[-2:] == [("Server", "wsframe"), ("Set-Cookie", "a=b")]
    assert "Sec-WebSocket-Protocol" not in response.headers
    assert "Sec-WebSocket-Extensions" not in accept_response(request, extensions="").headers


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subprotocol": "not-offered"},
        {"extensions": "bad ext"},
        {"extra_headers": {"Sec-WebSocket-Accept": "x"}},
        {"extra_headers": [("upgrade", "x")]},
        {"extra_headers": Headers([("CONNECTION", "close")])},
        {"extra_headers": {"Sec-WebSocket-Protocol": "chat"}},
        {"extra_headers": {"Sec-WebSocket-Extensions": "x"}},
        {"extra_headers": {"Content-Length": "0"}},
    ],
)
def test_accept_response_misuse(kwargs: dict[str, Any]) -> None:
    request = parse_request(RFC_REQUEST)
    with pytest.raises(ValueError):
        accept_response(request, **kwargs)


def test_accept_response_needs_key() -> None:
    request = parse_request(ws_request_without("sec-websocket-key"))
    with pytest.raises(ValueError):
        accept_response(request)


def test_reject_response() -> None:
    response = reject_response(403, "forbidden origin\n")
    assert response.serialize() == (
        b"HTTP/1.1 403 Forbidden\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 17\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"forbidden origin\n"
    )
    response = reject_response(426, b"", {"Sec-WebSocket-Version": "13"})
    assert response.reason == "Upgrade Required"
    assert response.headers.items() == [
        ("Sec-WebSocket-Version", "13"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", "0"),
        ("Connection", "close"),
    ]
    page = reject_response(200, "<h1>caf\xe9</h1>", {"Content-Type": "text/html; charset=utf-8"})
    assert page.reason == "OK" and page.body == "<h1>caf\xe9</h1>".encode()
    assert page.headers.get_all("Content-Type") == ["text/html; charset=utf-8"]
    assert page.headers["Content-Length"] == str(len(page.body))
    for status, reason in [
        (400, "Bad Request"),
        (405, "Method Not Allowed"),
        (414, "URI Too Long"),
        (431, "Request Header Fields Too Large"),
        (505, "HTTP Version Not Supported"),
    ]:
        assert reject_response(status).reason == reason
    assert reject_response(599).reason == ""


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (101, None),
        (199, None),
        (600, None),
        (400, {"Content-Length": "3"}),
        (400, {"Connection": "keep-alive"}),
        (400, {"Transfer-Encoding": "chunked"}),
    ],
)
def test_reject_response_misuse(status: int, headers: dict[str, str] | None) -> None:
    with pytest.raises(ValueError):
        reject_response(status, "x", headers)


def test_select_subprotocol() -> None:
    assert select_subprotocol(["chat", "superchat"], ["superchat", "chat"]) == "superchat"
    assert select_subprotocol(["chat", "superchat"], ["chat", "superchat"]) == "chat"
    assert select_subprotocol(["chat"], ["other"]) is None
    assert select_subprotocol([], ["chat"]) is None
    assert select_subprotocol(["Chat"], ["chat"]) is None  # case-sensitive


# -- build_request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "host", "target"),
    [
        ("ws://example.com", "example.com", "/"),
        ("ws://example.com/", "example.com", "/"),
        ("ws://example.com:80/chat", "example.com", "/chat"),
        ("ws://example.com:8080/chat", "example.com:8080", "/chat"),
        ("wss://example.com/chat", "example.com", "/chat"),
        ("wss://example.com:443/chat", "example.com", "/chat"),
        ("wss://example.com:80/chat", "example.com:80", "/chat"),
        ("ws://example.com:443/", "example.com:443", "/"),
        ("WS://Example.COM/Path", "example.com", "/Path"),
        ("ws://example.com/a/b?x=1&y=two", "example.com", "/a/b?x=1&y=two"),
        ("ws://example.com?x=1", "example.com", "/?x=1"),
        ("ws://example.com/a b?q=c d", "example.com", "/a%20b?q=c%20d"),
        ("ws://example.com/caf\xe9", "example.com", "/caf%C3%A9"),
        ("ws://example.com/%41?%42", "example.com", "/%41?%42"),
        ("ws://[::1]/", "[::1]", "/"),
        ("ws://[::1]:9001/x", "[::1]:9001", "/x"),
        ("wss://[2001:db8::7]:443/", "[2001:db8::7]", "/"),
        ("ws://127.0.0.1:9001", "127.0.0.1:9001", "/"),
        ("ws://b\xfccher.example/", "xn--bcher-kva.example", "/"),
    ],
)
def test_build_request_uris(uri: str, host: str, target: str) -> None:
    request = build_request(uri, key=KEY)
    assert request.method == "GET" and request.target == target
    assert (
        request.serialize()
        == (
            f"GET {target} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        ).encode()
    )


def test_build_request_full() -> None:
    request = build_request(
        "wss://user:p%40ss@example.com:8443/chat?room=1",
        key=KEY,
        origin="https://example.com",
        subprotocols=["chat", "superchat"],
        extensions="permessage-deflate; client_max_window_bits",
        extra_headers=[("User-Agent", "wsframe"), ("X-Multi", "1"), ("X-Multi", "2")],
    )
    assert request.headers.items() == [
        ("Host", "example.com:8443"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
        ("Origin", "https://example.com"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("Authorization", "Basic " + base64.b64encode(b"user:p@ss").decode()),
        ("User-Agent", "wsframe"),
        ("X-Multi", "1"),
        ("X-Multi", "2"),
    ]
    assert request.subprotocols == ["chat", "superchat"]
    assert request.extensions == [("permessage-deflate", [("client_max_window_bits", None)])]
    assert request.origin == "https://example.com"
    validate_request(parse_request(request.serialize()))


def test_build_request_generates_key(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = build_request("ws://x/"), build_request("ws://x/")
    assert a.key is not None and validate_key(a.key) and a.key != b.key
    monkeypatch.setattr(hs.os, "urandom", lambda n: b"\x02" * n)
    assert build_request("ws://x/").key == base64.b64encode(b"\x02" * 16).decode()


def test_build_request_extra_headers_forms() -> None:
    for extra in ({"X-A": "1"}, [("X-A", "1")], Headers([("X-A", "1")])):
        assert build_request("ws://x/", extra_headers=extra).headers["x-a"] == "1"
    # Origin/Authorization allowed in extra_headers when not set otherwise
    request = build_request("ws://x/", extra_headers={"Origin": "o", "Authorization": "Bearer t"})
    assert request.origin == "o" and request.headers["authorization"] == "Bearer t"


@pytest.mark.parametrize(
    ("uri", "kwargs"),
    [
        ("http://example.com/", {}),
        ("https://example.com/", {}),
        ("example.com/chat", {}),
        ("ws:///chat", {}),
        ("ws://example.com/#frag", {}),
        ("ws://example.com/#", {}),
        ("ws://example.com:99999/", {}),
        ("ws://example.com:port/", {}),
        ("ws://x/", {"key": "short"}),
        ("ws://x/", {"subprotocols": ["a b"]}),
        ("ws://x/", {"subprotocols": [""]}),
        ("ws://x/", {"extensions": "permessage-deflate;"}),
        ("ws://x/", {"origin": "a\r\nb"}),
        ("ws://x/", {"extra_headers": {"Host": "evil"}}),
        ("ws://x/", {"extra_headers": {"upgrade": "x"}}),
        ("ws://x/", {"extra_headers": {"Connection": "close"}}),
        ("ws://x/", {"extra_headers": {"Sec-WebSocket-Key": KEY}}),
        ("ws://x/", {"extra_headers": {"Sec-WebSocket-Version": "8"}}),
        ("ws://x/", {"extra_headers": {"Sec-WebSocket-Protocol": "chat"}}),
        ("ws://x/", {"extra_headers": [("sec-websocket-extensions", "x")]}),
        ("ws://x/", {"extra_headers": {"Content-Length": "3"}}),
        ("ws://x/", {"extra_headers": {"Transfer-Encoding": "chunked"}}),
        ("ws://x/", {"origin": "o", "extra_headers": {"Origin": "p"}}),
        ("ws://u:p@x/", {"extra_headers": {"Authorization": "Bearer t"}}),
        ("ws://x/", {"extra_headers": {"X-Bad": "a\r\nInjected: 1"}}),
    ],
)
def test_build_request_errors(uri: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_request(uri, **kwargs)


def test_request_object_checks() -> None:
    with pytest.raises(ValueError):
        Request("GET", "/a b")
    with pytest.raises(ValueError):
        Request("G T", "/")
    with pytest.raises(ValueError):
        Request("GET", "")
    r = Request("GET", "/x", {"Host": "h"})
    assert repr(r) == "Request('GET', '/x', Headers([('Host', 'h')]))"


# -- response parsing -----------------------------------------------------------------


def accept_bytes(key: str = KEY, *extra: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n" + b"".join(extra) + b"\r\n"
    )


def parse_response(data: bytes, **kwargs: int) -> tuple[Response, bytes]:
    parser = ResponseParser(**kwargs)
    response = parser.feed(data)
    assert response is not None
    return response, parser.leftover


def test_response_101_with_leftover_frames() -> None:
    response, leftover = parse_response(accept_bytes() + b"\x81\x02hi")
    assert response.status == 101 and response.reason == "Switching Protocols"
    assert response.version == "HTTP/1.1" and response.body == b""
    assert leftover == b"\x81\x02hi"
    assert validate_response(build_request("ws://x/", key=KEY), response) is None


def test_response_every_split_point_equals_one_shot() -> None:
    data = accept_bytes() + b"\x81\x02hi"
    expected, _ = parse_response(data)
    for i in range(len(data) + 1):
        parser = ResponseParser()
        got = parser.feed(data[:i])
        if got is None:
            got = parser.feed(data[i:])
            assert parser.leftover == b"\x81\x02hi"
        else:
            assert parser.leftover + data[i:] == b"\x81\x02hi"
        assert got is not None and got.headers == expected.headers
        assert (got.status, got.reason) == (101, "Switching Protocols")


def test_response_with_content_length_body_every_split() -> None:
    data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"
    for i in range(len(data) + 1):
        parser = ResponseParser()
        got = parser.feed(data[:i])
        if got is None:
            got = parser.feed(data[i:])
        assert got is not None and got.status == 403 and got.body == b"forbidden"
    parser = ResponseParser()
    assert parser.feed(data[:-1]) is None
    assert parser.feed(b"e+extra") is not None and parser.leftover == b"+extra"


def test_response_body_truncated_to_max_body() -> None:
    data = b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
    response, _ = parse_response(data, max_body=10)
    assert response.body == b"x" * 10
    parser = ResponseParser(max_body=10)
    assert parser.feed(data[:-1]) is None


def test_response_body_until_eof() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nbad ") is None
    assert parser.feed(b"request") is None
    response = parser.feed_eof()
    assert response.status == 400 and response.body == b"bad request"
    assert parser.feed_eof() is response
    with pytest.raises(RuntimeError):
        parser.feed(b"x")
    # without EOF, max_body bytes complete the response
    parser = ResponseParser(max_body=5)
    response2 = parser.feed(b"HTTP/1.1 400 Bad\r\n\r\n123456789")
    assert response2 is not None and response2.body == b"12345"


def test_response_short_body_at_eof() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nabc") is None
    assert parser.feed_eof().body == b"abc"


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
)
def test_response_without_body(head: bytes) -> None:
    response, leftover = parse_response(head + b"after")
    assert response.body == b"" and leftover == b"after"


def test_response_status_line_variants() -> None:
    assert parse_response(b"HTTP/1.1 101\r\n\r\n")[0].reason == ""
    assert parse_response(b"HTTP/1.1 101 \r\n\r\n")[0].reason == ""
    assert parse_response(b"HTTP/1.0 200 Fine thanks\r\nContent-Length: 0\r\n\r\n")[0].reason == (
        "Fine thanks"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 10 X\r\n\r\n",
        b"HTTP/1.1 1010 X\r\n\r\n",
        b"HTTP/1.1101 X\r\n\r\n",
        b"HTTP/2.0 101 X\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 101 X\n\n",
        b"HTTP/1.1 101 X\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 101 X\r\nX: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 400 X\r\nContent-Length: many\r\n\r\n",
        b"HTTP/1.1 101 " + b"x" * 9000,
        b"HTTP/1.1 101 X\r\nX: " + b"x" * 9000,
        b"HTTP/1.1 101 X\r\n" + b"X: y\r\n" * 101 + b"\r\n",
    ],
)
def test_response_parse_errors(data: bytes) -> None:
    parser = ResponseParser()
    with pytest.raises(InvalidHandshake) as info:
        parser.feed(data)
    assert info.value.status is None and str(info.value).startswith("invalid HTTP response")
    with pytest.raises(InvalidHandshake):
        parser.feed(b"")


def test_response_limits_configurable() -> None:
    with pytest.raises(InvalidHandshake):
        ResponseParser(max_request_line=10).feed(b"HTTP/1.1 101 Switching\r\n\r\n")
    with pytest.raises(InvalidHandshake):
        ResponseParser(max_header_bytes=10).feed(b"HTTP/1.1 101 X\r\nA: 1\r\nB: 12\r\n\r\n")
    with pytest.raises(InvalidHandshake):
        ResponseParser(max_headers=1).feed(b"HTTP/1.1 101 X\r\nA: 1\r\nB: 2\r\n\r\n")
    with pytest.raises(InvalidHandshake):
        ResponseParser(max_header_line=4).feed(b"HTTP/1.1 101 X\r\nA: 12\r\n\r\n")


def test_response_eof_before_head() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 101 Swi") is None
    with pytest.raises(InvalidHandshake) as info:
        parser.feed_eof()
    assert info.value.status is None


@given(st.binary(max_size=300))
def test_response_parser_only_raises_invalid_handshake(data: bytes) -> None:
    parser = ResponseParser()
    try:
        if parser.feed(data) is None:
            parser.feed_eof()
    except InvalidHandshake as exc:
        assert exc.status is None


# -- validate_response ------------------------------------------------------------------


def _client_request(**kwargs: Any) -> Request:
    return build_request("ws://example.com/chat", key=KEY, **kwargs)


def test_validate_response_success_variants() -> None:
    request = _client_request(
        subprotocols=["chat", "superchat"],
        extensions="permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
    )
    data = (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"UPGRADE: WebSocket\r\n"
        b"connection: keep-alive, upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n"
        b"Sec-WebSocket-Protocol: superchat\r\n"
        b'Sec-WebSocket-Extensions: Permessage-Deflate; client_max_window_bits="12"\r\n'
        b"\r\n"
    )
    response, _ = parse_response(data)
    assert validate_response(request, response) == "superchat"
    # explicit parameters override what the request carries
    with pytest.raises(InvalidHandshake):
        validate_response(request, response, subprotocols=["chat"])
    with pytest.raises(InvalidHandshake):
        validate_response(request, response, offered_extensions=["x-webkit-deflate-frame"])
    assert validate_response(request, response, offered_extensions=["PERMESSAGE-DEFLATE"])


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nX-Why: origin\r\n\r\nnope",
            {},
            "rejected",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", {}, "rejected"),
        (b"HTTP/1.0 101 Switching Protocols\r\n" + accept_bytes()[36:], {}, "version"),
        (accept_bytes().replace(b"Upgrade: websocket", b"Upgrade: h2c"), {}, "Upgrade"),
        (accept_bytes().replace(b"Upgrade: websocket\r\n", b""), {}, "Upgrade"),
        (accept_bytes().replace(b"Upgrade: websocket", b"Upgrade: web socket"), {}, "Upgrade"),
        (accept_bytes().replace(b"Connection: Upgrade", b"Connection: close"), {}, "Connection"),
        (accept_bytes().replace(b"Connection: Upgrade\r\n", b""), {}, "Connection"),
        (accept_bytes(key="AAAAAAAAAAAAAAAAAAAAAA=="), {}, "Sec-WebSocket-Accept"),
        (
            accept_bytes(KEY, b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n"),
            {},
            "exactly one",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n",
            {},
            "exactly one",
        ),
        (accept_bytes(KEY, b"Sec-WebSocket-Protocol: chat\r\n"), {}, "not offered"),
        (
            accept_bytes(KEY, b"Sec-WebSocket-Protocol: other\r\n"),
            {"subprotocols": ["chat"]},
            "not offered",
        ),
        (
            accept_bytes(KEY, b"Sec-WebSocket-Protocol: chat, superchat\r\n"),
            {"subprotocols": ["chat", "superchat"]},
            "several",
        ),
        (
            accept_bytes(KEY, b"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"),
            {"subprotocols": ["chat"]},
            "several",
        ),
        (accept_bytes(KEY, b"Sec-WebSocket-Protocol: a b\r\n"), {}, "Sec-WebSocket-Protocol"),
        (accept_bytes(KEY, b"Sec-WebSocket-Extensions: permessage-deflate\r\n"), {}, "offered"),
        (
            accept_bytes(KEY, b"Sec-WebSocket-Extensions: x-other\r\n"),
            {"extensions": "permessage-deflate"},
            "offered",
        ),
        (
            accept_bytes(KEY, b"Sec-WebSocket-Extensions: permessage-deflate;\r\n"),
            {"extensions": "permessage-deflate"},
            "Sec-WebSocket-Extensions",
        ),
    ],
)
def test_validate_response_failures(data: bytes, kwargs: dict[str, Any], message: str) -> None:
    request = _client_request(**kwargs)
    parser = ResponseParser()
    response = parser.feed(data)
    assert response is not None
    with pytest.raises(InvalidHandshake) as info:
        validate_response(request, response)
    exc = info.value
    assert message in str(exc)
    assert exc.status == response.status and str(exc).startswith(f"HTTP {response.status}: ")
    assert exc.headers == response.headers and exc.body == response.body


def test_validate_response_rejection_carries_body() -> None:
    response, _ = parse_response(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nX-Why: origin\r\n\r\nnope"
    )
    with pytest.raises(InvalidHandshake) as info:
        validate_response(_client_request(), response)
    assert info.value.status == 403 and info.value.body == b"nope"
    assert info.value.headers["x-why"] == "origin"
    assert str(info.value) == "HTTP 403: server rejected the WebSocket connection: 403 Forbidden"


# -- round trip ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri", ["ws://example.com/chat?room=7", "wss://[::1]:8443/", "ws://localhost:9001"]
)
def test_round_trip(uri: str) -> None:
    client_request = build_request(
        uri,
        origin="https://example.com",
        subprotocols=["v2.chat", "v1.chat"],
        extensions="permessage-deflate; client_max_window_bits",
    )
    server_parser = RequestParser()
    server_request = server_parser.feed(client_request.serialize() + b"\x81\x80early")
    assert server_request is not None and server_parser.leftover == b"\x81\x80early"
    assert server_request.target == client_request.target
    assert server_request.headers == client_request.headers
    validate_request(server_request)
    assert server_request.origin == "https://example.com"
    subprotocol = select_subprotocol(server_request.subprotocols, ["v1.chat", "v2.chat"])
    assert subprotocol == "v1.chat"
    assert [name for name, _ in server_request.extensions] == ["permessage-deflate"]
    response = accept_response(
        server_request, subprotocol=subprotocol, extensions="permessage-deflate"
    )
    client_parser = ResponseParser()
    client_response = client_parser.feed(response.serialize() + b"\x81\x02hi")
    assert client_response is not None and client_parser.leftover == b"\x81\x02hi"
    assert validate_response(client_request, client_response) == "v1.chat"


def test_round_trip_rejection() -> None:
    raw = ws_request("Sec-WebSocket-Version: 8")
    try:
        validate_request(parse_request(raw))
    except InvalidHandshake as exc:
        wire = reject_response(exc.status or 500, exc.body, exc.headers).serialize()
    client_response, _ = parse_response(wire)
    with pytest.raises(InvalidHandshake) as info:
        validate_response(_client_request(), client_response)
    assert info.value.status == 426
    assert info.value.headers["Sec-WebSocket-Version"] == "13"
    assert info.value.body == b"unsupported WebSocket version, use 13\n"


# -- interop with real peers ----------------------------------------------------------


def test_interop_our_client_with_wsproto_server() -> None:
    wsproto = pytest.importorskip("wsproto")
    from wsproto.events import AcceptConnection
    from wsproto.events import Request as WsprotoRequest

    request = build_request("ws://example.com:8080/chat?x=1", subprotocols=["chat", "other"])
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(request.serialize())
    events = list(server.events())
    assert len(events) == 1 and isinstance(events[0], WsprotoRequest)
    assert events[0].target == "/chat?x=1" and events[0].host == "example.com:8080"
    assert events[0].subprotocols == ["chat", "other"]
    data = server.send(AcceptConnection(subprotocol="chat"))
    parser = ResponseParser()
    response = parser.feed(data)
    assert response is not None and validate_response(request, response) == "chat"


def test_interop_wsproto_client_with_our_server() -> None:
    wsproto = pytest.importorskip("wsproto")
    from wsproto.events import AcceptConnection
    from wsproto.events import Request as WsprotoRequest

    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    data = client.send(
        WsprotoRequest(host="example.com", target="/feed?a=b", subprotocols=["p1", "p2"])
    )
    request = parse_request(data)
    validate_request(request)
    assert (request.path, request.query) == ("/feed", "a=b")
    subprotocol = select_subprotocol(request.subprotocols, ["p2"])
    client.receive_data(accept_response(request, subprotocol=subprotocol).serialize())
    events = list(client.events())
    assert len(events) == 1 and isinstance(events[0], AcceptConnection)
    assert events[0].subprotocol == "p2"


def test_interop_our_client_with_websockets_server() -> None:
    pytest.importorskip("websockets")
    from websockets.server import ServerProtocol

    request = build_request(
        "ws://example.com/ws", origin="http://example.com", subprotocols=["chat"]
    )
    server = ServerProtocol(subprotocols=["chat"])
    server.receive_data(request.serialize())
    (ws_request_event,) = server.events_received()
    assert ws_request_event.path == "/ws"
    response = server.accept(ws_request_event)
    server.send_response(response)
    assert server.handshake_exc is None
    data = b"".join(server.data_to_send())
    parser = ResponseParser()
    ours = parser.feed(data)
    assert ours is not None and validate_response(request, ours) == "chat"


def test_interop_websockets_client_with_our_server() -> None:
    pytest.importorskip("websockets")
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri

    client = ClientProtocol(
        parse_uri("ws://[::1]:8765/chat?room=2"), origin="http://a.example", subprotocols=["x"]
    )
    client.send_request(client.connect())
    request = parse_request(b"".join(client.data_to_send()))
    validate_request(request)
    assert request.headers["host"] == "[::1]:8765" and request.origin == "http://a.example"
    assert request.path == "/chat" and request.query == "room=2"
    extensions = request.extensions
    assert [name for name, _ in extensions] in ([], ["permessage-deflate"])
    client.receive_data(accept_response(request, subprotocol="x").serialize())
    client.events_received()
    assert client.handshake_exc is None and client.state is State.OPEN
    assert client.subprotocol == "x"


def test_interop_websockets_rejects_bad_accept_like_we_do() -> None:
    pytest.importorskip("websockets")
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    client = ClientProtocol(parse_uri("ws://example.com/"))
    request = client.connect()
    client.send_request(request)
    ours = parse_request(b"".join(client.data_to_send()))
    bad = accept_response(ours)
    bad.headers["Sec-WebSocket-Accept"] = accept_key("AAAAAAAAAAAAAAAAAAAAAA==")
    client.receive_data(bad.serialize())
    client.events_received()
    assert client.handshake_exc is not None
    response, _ = parse_response(bad.serialize())
    with pytest.raises(InvalidHandshake):
        validate_response(ours, response)
