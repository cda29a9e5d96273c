"""The Origin policy (cross-site WebSocket hijacking, RFC 6455 §10.2).

Three levels, all through public names: the parser and the policy
(:func:`wsframe.handshake.parse_origin`, :class:`~wsframe.handshake.OriginPolicy`),
the sans-I/O :class:`~wsframe.connection.ServerConnection` (``origins=``),
and ``wsframe.asyncio.serve(origins=...)`` over real sockets, where a
refused request must reach neither ``process_request`` nor the handler.
uvicorn's ``WSFrameProtocol.configure(origins=...)`` is tested in
``test_uvicorn.py``. Like the rest of the suite, this runs on the compiled
modules and again on their twins (``WSFRAME_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Optional

import pytest
from asyncio_helpers import async_test, http_exchange, start, uri, within
from hypothesis import given
from hypothesis import strategies as st

from wsframe.asyncio import WebSocket, connect
from wsframe.connection import ClientConnection, ServerConnection
from wsframe.errors import InvalidHandshake
from wsframe.events import Rejected, Request
from wsframe.handshake import Origin, OriginPolicy, parse_origin

# ------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://example.com", ("http", "example.com", 80)),
        ("http://example.com:80", ("http", "example.com", 80)),
        ("HTTP://Example.COM", ("http", "example.com", 80)),
        ("https://example.com", ("https", "example.com", 443)),
        ("https://example.com:443", ("https", "example.com", 443)),
        ("https://example.com:8443", ("https", "example.com", 8443)),
        ("http://127.0.0.1:8765", ("http", "127.0.0.1", 8765)),
        ("http://[::1]:8765", ("http", "[::1]", 8765)),
        ("http://[0:0:0:0:0:0:0:1]", ("http", "[::1]", 80)),
        ("wss://example.com", ("wss", "example.com", 443)),
        ("chrome-extension://abcdef", ("chrome-extension", "abcdef", None)),
        ("http://x:080", ("http", "x", 80)),
    ],
)
def test_parse_origin_normalises(value: str, expected: tuple[str, str, Optional[int]]) -> None:
    assert parse_origin(value) == Origin(*expected)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("HTTP://Example.COM:80", "http://example.com"),
        ("https://x:443", "https://x"),
        ("https://x:80", "https://x:80"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("foo://x", "foo://x"),
    ],
)
def test_origin_serialisation_leaves_out_default_ports(value: str, text: str) -> None:
    assert str(parse_origin(value)) == text


@pytest.mark.parametrize(
    "value",
    [
        "",
        "null",
        "example.com",
        "http://",
        "http://example.com/",
        "http://example.com/path",
        "http://example.com?q",
        "http://example.com#f",
        "http://user@example.com",
        "http://example.com:99999",
        "http://example.com:",
        "http://exa mple.com",
        "http://[zz::1]",
        "http://bücher.example",
        "http://a.com http://b.com",  # an origin list: browsers send one origin
        " http://example.com",
    ],
)
def test_parse_origin_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_origin(value)


# -------------------------------------------------------------------- policy


def test_exact_origins_case_and_default_ports() -> None:
    policy = OriginPolicy(["https://App.Example.com", "http://x:80", "http://y:8080"])
    for allowed in (
        "https://app.example.com",
        "https://APP.EXAMPLE.COM",
        "https://app.example.com:443",
        "HTTPS://app.example.com",
        "http://x",
        "http://x:80",
        "http://y:8080",
    ):
        assert policy.allows(allowed), allowed
    for refused in (
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "https://example.com",
        "https://app.example.com.evil.net",
        "https://evil.net",
        "http://x:8080",
        "http://y",
        "null",
        "garbage",
    ):
        assert not policy.allows(refused), refused


def test_missing_origin_needs_none() -> None:
    assert not OriginPolicy(["https://a.example"]).allows(None)
    assert OriginPolicy(["https://a.example", None]).allows(None)
    assert OriginPolicy([None]).allows(None)
    assert not OriginPolicy([None]).allows("https://a.example")
    assert not OriginPolicy([]).allows(None)


def test_patterns_fullmatch_the_normalised_origin() -> None:
    policy = OriginPolicy([re.compile(r"https://[a-z0-9-]+\.example\.com")])
    assert policy.allows("https://app.example.com")
    assert policy.allows("https://App.Example.com:443")  # normalised before matching
    assert not policy.allows("https://app.example.com.evil.net")  # fullmatch, not match
    assert not policy.allows("https://example.com")
    assert not policy.allows("http://app.example.com")
    assert not policy.allows("https://app.example.com:8443")
    assert not policy.allows(None)


def test_internationalised_host_in_the_configuration() -> None:
    policy = OriginPolicy(["https://bücher.example"])
    assert policy.allows("https://xn--bcher-kva.example")


def test_root_url_in_the_configuration_is_its_origin() -> None:
    policy = OriginPolicy(["https://a.example/", "http://b.example:8080/"])
    assert policy.allows("https://a.example") and policy.allows("http://b.example:8080")
    assert not policy.allows("https://a.example/")  # a browser never sends that


def test_same_host_compares_host_and_port_not_scheme() -> None:
    policy = OriginPolicy(same_host=True)
    assert policy.allows("http://127.0.0.1:8765", "127.0.0.1:8765")
    assert policy.allows("http://LOCALHOST:8765", "localhost:8765")
    assert policy.allows("https://chat.example", "chat.example")  # behind a TLS proxy
    assert policy.allows("http://chat.example", "chat.example:80")
    assert policy.allows("https://chat.example:443", "chat.example")
    assert policy.allows("http://[::1]:8765", "[::1]:8765")
    assert not policy.allows("http://127.0.0.1:9999", "127.0.0.1:8765")
    assert not policy.allows("http://localhost:8765", "127.0.0.1:8765")
    assert not policy.allows("http://chat.example", "chat.example:443")
    assert not policy.allows("http://evil.example", "chat.example")
    assert not policy.allows("chrome-extension://chat.example", "chat.example")
    assert not policy.allows("http://chat.example", None)
    assert not policy.allows("http://chat.example", "chat.example/x")
    assert not policy.allows(None, "chat.example")


@pytest.mark.parametrize(
    ("origins", "error"),
    [
        ("https://a.example", TypeError),  # a string, not a collection
        ([b"https://a.example"], TypeError),
        ([re.compile(rb"https://a")], TypeError),
        ([42], TypeError),
        (["https://a.example/x"], ValueError),
        (["https://a.example//"], ValueError),
        (["a.example"], ValueError),
        (["null"], ValueError),
        (["https://a.example:70000"], ValueError),
    ],
)
def test_invalid_configuration_is_refused_at_once(origins: Any, error: type) -> None:
    with pytest.raises(error):
        OriginPolicy(origins)


def test_build_and_repr() -> None:
    assert OriginPolicy.build(None) is None
    policy = OriginPolicy(["http://b:80", re.compile("https://c"), None], same_host=True)
    assert OriginPolicy.build(policy) is policy
    built = OriginPolicy.build(["https://a.example:443"])
    assert isinstance(built, OriginPolicy) and built.allows("https://a.example")
    assert repr(policy) == "OriginPolicy([http://b, re.compile('https://c'), None], same_host=True)"


def test_allows_scope_of_an_asgi_connection() -> None:
    policy = OriginPolicy(["https://a.example"], same_host=True)

    def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"type": "websocket", "headers": [(b"host", b"srv:8000"), *headers]}

    assert policy.allows_scope(scope((b"origin", b"https://A.example:443")))
    assert policy.allows_scope(scope((b"origin", b"http://srv:8000")))
    assert not policy.allows_scope(scope((b"origin", b"https://evil.example")))
    assert not policy.allows_scope(scope())
    assert OriginPolicy([None]).allows_scope(scope())
    two = scope((b"origin", b"https://a.example"), (b"origin", b"https://a.example"))
    assert not policy.allows_scope(two)


_ORIGIN_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(
        "{}://{}{}".format,
        st.sampled_from(["http", "HTTPS", "ws", "wss", "x-y"]),
        st.from_regex(r"[A-Za-z0-9.-]{1,20}|\[[0-9a-f:]{2,20}\]", fullmatch=True),
        st.sampled_from(["", ":0", ":80", ":443", ":8080", ":65535", ":65536", "/"]),
    ),
)


@given(origin=_ORIGIN_TEXT, host=st.one_of(st.none(), st.text(max_size=30)))
def test_any_text_is_decided_without_raising(origin: str, host: Optional[str]) -> None:
    policy = OriginPolicy(["https://a.example", None], same_host=True)
    assert policy.allows(origin, host) in (True, False)
    try:
        parsed = parse_origin(origin)
    except ValueError:
        assert not policy.allows(origin)
        return
    assert parse_origin(str(parsed)) == parsed  # the serialisation is canonical


# ------------------------------------------------------------------ sans-I/O


def _exchange(server: ServerConnection, origin: Optional[str], **client: Any) -> ClientConnection:
    peer = ClientConnection("ws://srv.example/chat", origin=origin, **client)
    server.receive_data(peer.data_to_send())
    return peer


def test_connection_refuses_before_the_application_sees_the_request() -> None:
    server = ServerConnection(origins=["https://app.example"])
    peer = _exchange(server, "https://evil.example")
    events = server.events()
    assert [type(e) for e in events] == [Rejected]  # no Request event
    error = events[0].error  # type: ignore[attr-defined]
    assert error.status == 403 and "https://evil.example" in str(error)
    answer = server.data_to_send()
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert answer.endswith(b"\r\n\r\norigin not allowed\n")  # the origin is not echoed
    assert server.close_transport and server.request is not None
    peer.receive_data(answer)
    [rejected] = peer.events()
    assert isinstance(rejected, Rejected) and rejected.error.status == 403


def test_connection_accepts_an_allowed_origin() -> None:
    server = ServerConnection(origins=["https://app.example:443"])
    _exchange(server, "https://APP.example")
    [event] = server.events()
    assert isinstance(event, Request)
    server.accept()
    assert server.data_to_send().startswith(b"HTTP/1.1 101 ")


def test_connection_missing_origin() -> None:
    refused = ServerConnection(origins=["https://app.example"])
    _exchange(refused, None)
    assert [type(e) for e in refused.events()] == [Rejected]
    assert refused.data_to_send().endswith(b"\r\n\r\nan Origin header is required\n")
    accepted = ServerConnection(origins=["https://app.example", None])
    _exchange(accepted, None)
    assert [type(e) for e in accepted.events()] == [Request]


def test_connection_several_origin_headers_are_refused() -> None:
    server = ServerConnection(origins=["https://app.example"])
    server.receive_data(
        b"GET / HTTP/1.1\r\nHost: srv\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: https://app.example\r\nOrigin: https://evil.example\r\n\r\n"
    )
    assert [type(e) for e in server.events()] == [Rejected]
    assert server.data_to_send().startswith(b"HTTP/1.1 403 ")


def test_connection_without_policy_accepts_any_origin() -> None:
    server = ServerConnection()
    assert server.origins is None
    _exchange(server, "https://evil.example")
    assert [type(e) for e in server.events()] == [Request]


def test_plain_http_requests_are_not_checked() -> None:
    # A page the application serves: the browser's same-origin policy already
    # keeps other sites from reading it.
    server = ServerConnection(origins=["https://app.example"])
    server.receive_data(b"GET / HTTP/1.1\r\nHost: srv\r\nOrigin: https://evil.example\r\n\r\n")
    assert [type(e) for e in server.events()] == [Request]


def test_frames_sent_with_a_refused_request_are_dropped() -> None:
    server = ServerConnection(origins=["https://app.example"])
    peer = ClientConnection("ws://srv/", origin="https://evil.example")
    head = peer.data_to_send()
    server.receive_data(head + b"\x81\x85\x00\x00\x00\x00hello")
    assert [type(e) for e in server.events()] == [Rejected]
    server.receive_data(b"\x81\x85\x00\x00\x00\x00again")
    assert server.events() == []


# --------------------------------------------------------- asyncio, real sockets


class Seen:
    """What the application saw: process_request calls and handler runs."""

    def __init__(self) -> None:
        self.requests: list[Optional[str]] = []
        self.handled: list[Optional[str]] = []

    def process_request(self, ws: WebSocket, request: Any) -> None:
        self.requests.append(request.origin)

    async def handler(self, ws: WebSocket) -> None:
        assert ws.request is not None
        self.handled.append(ws.request.origin)
        async for message in ws:
            await ws.send(message)


async def _refused(server: Any, origin: Optional[str]) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        await within(connect(uri(server), origin=origin))
    return info.value


async def _accepted(server: Any, origin: Optional[str]) -> None:
    async with connect(uri(server), origin=origin) as ws:
        await ws.send("hi")
        assert await within(ws.recv()) == "hi"


@async_test
async def test_serve_origins_allowed_and_refused() -> None:
    seen = Seen()
    origins = ["https://app.example", "http://127.0.0.1:8000"]
    async with await start(
        seen.handler, origins=origins, process_request=seen.process_request
    ) as server:
        for origin in ("https://app.example", "HTTPS://APP.Example:443", "http://127.0.0.1:8000"):
            await _accepted(server, origin)
        for origin in ("https://evil.example", "http://app.example", "https://app.example:8443"):
            error = await _refused(server, origin)
            assert error.status == 403 and error.body == b"origin not allowed\n"
        error = await _refused(server, None)
        assert error.status == 403 and error.body == b"an Origin header is required\n"
    # The refused requests reached neither process_request nor the handler.
    expected = ["https://app.example", "HTTPS://APP.Example:443", "http://127.0.0.1:8000"]
    assert seen.requests == expected and seen.handled == expected


@async_test
async def test_serve_origins_none_accepts_clients_without_origin() -> None:
    seen = Seen()
    async with await start(seen.handler, origins=["http://x:80", None]) as server:
        await _accepted(server, None)
        await _accepted(server, "http://X")
        await _accepted(server, "http://x:80")
        assert (await _refused(server, "http://x:8080")).status == 403
        assert (await _refused(server, "null")).status == 403
    assert seen.handled == [None, "http://X", "http://x:80"]


@async_test
async def test_serve_origins_patterns_and_policy_object() -> None:
    seen = Seen()
    policy = OriginPolicy([re.compile(r"https://[a-z]+\.example\.com")], same_host=True)
    async with await start(seen.handler, origins=policy) as server:
        assert server.origins is policy
        await _accepted(server, "https://app.example.com")
        await _accepted(server, f"http://127.0.0.1:{server.port}")  # same host
        assert (await _refused(server, "https://app.example.com.evil.net")).status == 403
        assert (await _refused(server, f"http://localhost:{server.port}")).status == 403
        assert (await _refused(server, None)).status == 403


@async_test
async def test_serve_without_origins_accepts_every_origin() -> None:
    seen = Seen()
    async with await start(seen.handler) as server:
        assert server.origins is None
        await _accepted(server, "https://evil.example")
        await _accepted(server, None)


@async_test
async def test_serve_origins_leave_pages_to_process_request() -> None:
    def process_request(ws: WebSocket, request: Any) -> Any:
        if not request.is_websocket:
            return (200, {"Content-Type": "text/plain"}, "page")
        return None

    async with await start(
        Seen().handler, origins=["https://app.example"], process_request=process_request
    ) as server:
        answer = await http_exchange(
            server.port, b"GET / HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"page")


@async_test
async def test_serve_refused_connection_is_closed_and_forgotten() -> None:
    async with await start(Seen().handler, origins=["https://app.example"]) as server:
        for _ in range(5):
            await _refused(server, "https://evil.example")
        for _ in range(200):
            if not server.websockets:
                break
            await asyncio.sleep(0.01)
        assert not server.websockets


def test_serve_invalid_origins_fail_at_once() -> None:
    from wsframe.asyncio import serve

    with pytest.raises(ValueError):
        serve(Seen().handler, "127.0.0.1", 0, origins=["https://a.example/path"])
    with pytest.raises(TypeError):
        serve(Seen().handler, "127.0.0.1", 0, origins="https://a.example")


@async_test
async def test_serve_logs_refused_handshakes(caplog: pytest.LogCaptureFixture) -> None:
    # Logged at INFO on "wsframe.server" with the client's address and the
    # origin (the 403 body never repeats the origin).
    caplog.set_level(logging.INFO, logger="wsframe.server")
    async with await start(Seen().handler, origins=["https://app.example"]) as server:
        await _refused(server, "https://evil.example")
    messages = [r.getMessage() for r in caplog.records if r.name == "wsframe.server"]
    assert any(
        "127.0.0.1" in m and "origin 'https://evil.example' not allowed" in m for m in messages
    ), messages
