"""Client proxies, for both APIs: real proxy servers on loopback, then fakes.

The origin is a wsframe server (the threaded one) on ws:// and wss://
(trustme's CA); the proxies are tinyproxy (HTTP CONNECT, with and without
Basic auth, refusing with 407 and 403), TLS in front of it (an https://
proxy: TLS to the proxy, then TLS to the origin inside), microsocks (SOCKS5,
with and without auth) and Dante (SOCKS4/4a/5/5h). A proxy that is not
installed skips its tests with the Debian package to install.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from proxy_servers import FakeProxy, TLSFront, dante, microsocks, tinyproxy
from sync_helpers import STEP, running

import wsframe.asyncio
import wsframe.sync
from wsframe.errors import InvalidHandshake, InvalidProxy
from wsframe.proxy import ENVIRONMENT, ConnectExchange, Proxy, parse_proxy, select_proxy
from wsframe.uri import parse_uri

AUTH = ("alice", "s3cret")
APIS = ["sync", "asyncio"]


@pytest.fixture(scope="module")
def origins(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[dict[str, str]]:
    """``{"ws": uri, "wss": uri}`` of two echo servers (the second over TLS)."""
    with running() as plain, running(ssl=tls[0]) as secure:
        yield {
            "ws": f"ws://127.0.0.1:{plain.port}/echo",
            "wss": f"wss://127.0.0.1:{secure.port}/echo",
        }


@pytest.fixture(autouse=True)
def no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without proxy variables (each sets what it needs)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy", "wss_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def round_trip(
    api: str,
    uri: str,
    proxy: Any = ENVIRONMENT,
    client_ssl: Optional[ssl.SSLContext] = None,
    **kwargs: Any,
) -> str:
    """Connect with ``api`` (through ``proxy``), echo one message, close; return it."""
    ssl_arg = client_ssl if uri.startswith("wss:") else None
    kwargs.setdefault("open_timeout", STEP)
    if api == "sync":
        with wsframe.sync.connect(uri, proxy=proxy, ssl=ssl_arg, **kwargs) as ws:
            ws.send("through")
            message: str = ws.recv(timeout=STEP)
            return message

    async def main() -> str:
        async with wsframe.asyncio.connect(uri, proxy=proxy, ssl=ssl_arg, **kwargs) as ws:
            await ws.send("through")
            return await asyncio.wait_for(ws.recv(), STEP)  # type: ignore[no-any-return]

    return asyncio.run(asyncio.wait_for(main(), STEP * 2))


def with_credentials(url: str, auth: tuple[str, str] = AUTH) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{auth[0]}:{auth[1]}@{rest}"


# ----------------------------------------------------------- HTTP CONNECT


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("scheme", ["ws", "wss"])
class TestHttpProxy:
    def test_tinyproxy(self, api: str, scheme: str, tmp_path: Path, origins: Any, tls: Any) -> None:
        with tinyproxy(tmp_path) as proxy:
            assert round_trip(api, origins[scheme], proxy, tls[1]) == "through"

    def test_tinyproxy_with_basic_auth(
        self, api: str, scheme: str, tmp_path: Path, origins: Any, tls: Any
    ) -> None:
        with tinyproxy(tmp_path, auth=AUTH) as proxy:
            assert round_trip(api, origins[scheme], with_credentials(proxy), tls[1]) == "through"
            with pytest.raises(InvalidProxy) as info:
                round_trip(api, origins[scheme], proxy, tls[1])
            assert info.value.status == 407
            assert "407" in str(info.value) and proxy in str(info.value)
            assert "Proxy-Authenticate" in info.value.headers
            with pytest.raises(InvalidProxy) as info:
                round_trip(api, origins[scheme], with_credentials(proxy, ("alice", "no")), tls[1])
            assert info.value.status in (401, 407)
            assert "no" not in info.value.proxy.split("@")[0].split(":")[-1]  # no password shown

    def test_tinyproxy_refusing_with_403(
        self, api: str, scheme: str, tmp_path: Path, origins: Any, tls: Any
    ) -> None:
        with tinyproxy(tmp_path, deny=True) as proxy:
            with pytest.raises(InvalidProxy) as info:
                round_trip(api, origins[scheme], proxy, tls[1])
            assert info.value.status == 403

    def test_https_proxy(
        self, api: str, scheme: str, tmp_path: Path, origins: Any, tls: Any
    ) -> None:
        """TLS to the proxy, then (wss://) TLS to the origin inside that session."""
        with tinyproxy(tmp_path, auth=AUTH) as proxy, TLSFront(proxy, tls[0]) as front:
            url = with_credentials(f"https://127.0.0.1:{front.port}")
            if api == "asyncio" and scheme == "wss" and sys.version_info < (3, 11):
                # asyncio's start_tls cannot stack TLS on a TLS transport before 3.11.
                with pytest.raises(ValueError, match=r"3\.11"):
                    round_trip(api, origins[scheme], url, tls[1], proxy_ssl=tls[1])
                return
            got = round_trip(api, origins[scheme], url, tls[1], proxy_ssl=tls[1])
            assert got == "through"
            assert front.connections == 1


def test_sync_tls_in_tls_timeouts_and_large_messages(
    tmp_path: Path, origins: Any, tls: Any
) -> None:
    """wss:// inside an https:// proxy (TLSTunnel): recv(timeout=), big messages, ping."""
    with (
        tinyproxy(tmp_path) as proxy,
        TLSFront(proxy, tls[0]) as front,
        wsframe.sync.connect(
            origins["wss"], proxy=front.url, proxy_ssl=tls[1], ssl=tls[1], open_timeout=STEP
        ) as ws,
    ):
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        payload = bytes(range(256)) * 2000
        ws.send(payload)
        assert ws.recv(timeout=STEP) == payload
        assert ws.ping(timeout=STEP) > 0
        assert ws.socket_transport.get_extra_info("cipher") is not None


# ------------------------------------------------------------------- SOCKS


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("scheme", ["ws", "wss"])
class TestSocksProxy:
    @pytest.mark.parametrize("kind", ["socks5", "socks5h"])
    def test_microsocks(
        self, api: str, scheme: str, kind: str, tmp_path: Path, origins: Any, tls: Any
    ) -> None:
        pytest.importorskip("python_socks")
        with microsocks(tmp_path) as address:
            assert round_trip(api, origins[scheme], f"{kind}://{address}", tls[1]) == "through"

    def test_microsocks_with_auth(
        self, api: str, scheme: str, tmp_path: Path, origins: Any, tls: Any
    ) -> None:
        pytest.importorskip("python_socks")
        with microsocks(tmp_path, auth=AUTH) as address:
            url = with_credentials(f"socks5h://{address}")
            assert round_trip(api, origins[scheme], url, tls[1]) == "through"
            with pytest.raises(InvalidProxy) as info:
                round_trip(api, origins[scheme], f"socks5://{address}", tls[1])
            assert "SOCKS" in str(info.value)
            bad = with_credentials(f"socks5://{address}", ("alice", "wrong"))
            with pytest.raises(InvalidProxy):
                round_trip(api, origins[scheme], bad, tls[1])

    @pytest.mark.parametrize("kind", ["socks4", "socks4a", "socks5"])
    def test_dante(
        self, api: str, scheme: str, kind: str, tmp_path: Path, origins: Any, tls: Any
    ) -> None:
        pytest.importorskip("python_socks")
        with dante(tmp_path) as address:
            assert round_trip(api, origins[scheme], f"{kind}://{address}", tls[1]) == "through"


@pytest.mark.parametrize("api", APIS)
def test_socks_proxy_refusing_the_destination(api: str, tmp_path: Path) -> None:
    pytest.importorskip("python_socks")
    with microsocks(tmp_path) as address:
        # Nothing listens on port 9 of loopback: the proxy reports its failure.
        with pytest.raises((InvalidProxy, OSError)) as info:
            round_trip(api, "ws://127.0.0.1:9/", f"socks5://{address}")
        if isinstance(info.value, InvalidProxy):
            assert info.value.status is not None


# ------------------------------------------------------ from the environment


@pytest.mark.parametrize("api", APIS)
class TestEnvironment:
    def test_http_proxy_variable(
        self, api: str, tmp_path: Path, origins: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with tinyproxy(tmp_path, deny=True) as proxy:
            monkeypatch.setenv("http_proxy", proxy)
            with pytest.raises(InvalidProxy) as info:  # it went through the (refusing) proxy
                round_trip(api, origins["ws"])
            assert info.value.status == 403
            assert round_trip(api, origins["ws"], proxy=None) == "through"  # None: direct

    def test_https_proxy_variable_for_wss(
        self, api: str, tmp_path: Path, origins: Any, tls: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with tinyproxy(tmp_path, auth=AUTH) as proxy:
            monkeypatch.setenv("https_proxy", with_credentials(proxy))
            monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # not for wss://
            assert round_trip(api, origins["wss"], client_ssl=tls[1]) == "through"

    def test_all_proxy_variable_with_socks(
        self, api: str, tmp_path: Path, origins: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("python_socks")
        with microsocks(tmp_path) as address:
            monkeypatch.setenv("all_proxy", f"socks5h://{address}")
            assert round_trip(api, origins["ws"]) == "through"

    def test_no_proxy_bypasses(
        self, api: str, origins: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with FakeProxy("close") as fake:
            monkeypatch.setenv("http_proxy", fake.url)
            monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
            assert round_trip(api, origins["ws"]) == "through"
            assert fake.connections == 0


# ------------------------------------------------------ misbehaving proxies


@pytest.mark.parametrize("api", APIS)
class TestBrokenProxy:
    def test_proxy_closing_before_answering(self, api: str, origins: Any) -> None:
        with FakeProxy("close") as fake, pytest.raises(InvalidProxy) as info:
            round_trip(api, origins["ws"], fake.url)
        assert info.value.status is None
        assert "closed the connection" in str(info.value)

    def test_proxy_answering_garbage(self, api: str, origins: Any) -> None:
        with FakeProxy("garbage") as fake, pytest.raises(InvalidProxy) as info:
            round_trip(api, origins["ws"], fake.url)
        assert "invalid answer" in str(info.value)

    def test_proxy_dropping_the_tunnel_during_the_handshake(self, api: str, origins: Any) -> None:
        with FakeProxy("ok-then-close") as fake, pytest.raises(InvalidHandshake):
            round_trip(api, origins["ws"], fake.url)

    def test_silent_proxy_times_out(self, api: str, origins: Any) -> None:
        with FakeProxy("silent") as fake, pytest.raises((TimeoutError, asyncio.TimeoutError)):
            round_trip(api, origins["ws"], fake.url, open_timeout=0.5)

    def test_unreachable_proxy(self, api: str, origins: Any) -> None:
        with pytest.raises(OSError):
            round_trip(api, origins["ws"], "http://127.0.0.1:9")


def test_asyncio_reconnects_through_a_proxy(tmp_path: Path) -> None:
    """``async for ws in connect(...)`` connects again through the proxy."""

    def one_message(ws: Any) -> None:
        ws.send("hello")
        ws.close(1001)  # going away: the client reconnects

    async def main(uri: str, proxy: str) -> list[str]:
        got: list[str] = []
        async for ws in wsframe.asyncio.connect(uri, proxy=proxy, backoff_initial=0.01):
            try:
                async for message in ws:
                    got.append(message)
            except wsframe.asyncio.ConnectionClosed:
                pass
            if len(got) == 3:
                await ws.close()
        return got

    with running(one_message) as origin, tinyproxy(tmp_path, auth=AUTH) as proxy:
        uri = f"ws://127.0.0.1:{origin.port}/"
        got = asyncio.run(asyncio.wait_for(main(uri, with_credentials(proxy)), STEP * 3))
    assert got == ["hello"] * 3


# ------------------------------------------------------------ no I/O at all


class TestSelection:
    def test_parse_proxy(self) -> None:
        proxy = parse_proxy("http://u%40x:p%3Aw@proxy.example:3128")
        assert proxy == Proxy("http", "proxy.example", 3128, "u@x", "p:w")
        assert proxy.url == "http://u@x@proxy.example:3128"
        assert parse_proxy("socks5h://h").port == 1080 and parse_proxy("socks5h://h").remote_dns
        assert not parse_proxy("socks5://h").remote_dns
        assert parse_proxy("https://h").secure and parse_proxy("https://h").port == 443
        assert parse_proxy("proxy:8080") == Proxy("http", "proxy", 8080)
        with pytest.raises(ValueError):
            parse_proxy("ftp://h")

    def test_select_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        ws, wss = parse_uri("ws://example.com/"), parse_uri("wss://example.com/")
        assert select_proxy(ws) is None
        monkeypatch.setenv("http_proxy", "http://h1:1")
        monkeypatch.setenv("https_proxy", "http://h2:2")
        assert select_proxy(ws) == Proxy("http", "h1", 1)
        assert select_proxy(wss) == Proxy("http", "h2", 2)
        assert select_proxy(ws, None) is None
        assert select_proxy(ws, "socks5://s:5") == Proxy("socks5", "s", 5)
        monkeypatch.setenv("no_proxy", ".example.com")
        assert select_proxy(ws) is None and select_proxy(wss) is None
        monkeypatch.delenv("no_proxy")
        monkeypatch.delenv("http_proxy")
        monkeypatch.setenv("all_proxy", "socks5h://s:7")
        assert select_proxy(ws) == Proxy("socks5h", "s", 7)

    def test_connect_exchange(self) -> None:
        proxy = Proxy("http", "p", 3128, "user", "pw")
        exchange = ConnectExchange(proxy, "::1", 8080)
        assert exchange.request.startswith(b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n")
        assert b"Proxy-Authorization: Basic dXNlcjpwdw==\r\n" in exchange.request
        assert not exchange.receive(b"HTTP/1.1 200 OK\r\n")
        assert exchange.receive(b"Via: x\r\n\r\n")
        refused = ConnectExchange(proxy, "h", 80)
        with pytest.raises(InvalidProxy) as info:
            refused.receive(b"HTTP/1.1 407 Auth\r\nProxy-Authenticate: Basic\r\n\r\n")
        assert info.value.status == 407 and info.value.proxy == "http://user@p:3128"
        with pytest.raises(InvalidProxy):
            ConnectExchange(proxy, "h", 80).receive_eof()
        with pytest.raises(InvalidProxy):
            ConnectExchange(proxy, "h", 80).receive(b"HTTP/1.1 200 OK\r\n\r\nearly")
        with pytest.raises(InvalidProxy):
            ConnectExchange(proxy, "h", 80).receive(b"x" * 70_000)
