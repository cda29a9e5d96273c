"""The asyncio layer on uvloop, whose transports are not asyncio.Transport subclasses."""

from __future__ import annotations

import asyncio
import sys

import pytest

from wsframe.asyncio import Listener, connect, serve

uvloop = pytest.importorskip("uvloop", reason="uvloop is not available on this platform")


class Echo(Listener):
    def on_message(self, ws, message):
        ws.send_nowait(message)


async def echo_handler(ws):
    async for message in ws:
        await ws.send(message)


async def exchange(handler) -> list:
    async with serve(handler, "127.0.0.1", 0) as server:  # noqa: SIM117 - uses server.port
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("text")
            await ws.send(b"\x00" * 70_000)  # beyond the zero-copy threshold
            return [await ws.recv(), len(await ws.recv()), await ws.ping() > 0]


@pytest.mark.parametrize("handler", [Echo, echo_handler], ids=["listener", "coroutine"])
def test_server_and_client_on_uvloop(handler) -> None:
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(asyncio.wait_for(exchange(handler), 10))
    else:  # pragma: no cover
        loop = uvloop.new_event_loop()
        try:
            result = loop.run_until_complete(asyncio.wait_for(exchange(handler), 10))
        finally:
            loop.close()
    assert result == ["text", 70_000, True]


@pytest.mark.parametrize("kind", ["http", "https", "socks5h"])
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_client_through_a_proxy_on_uvloop(kind, scheme, tmp_path) -> None:
    """The tunnel's transport changes protocol (set_protocol) or gets TLS on top
    (start_tls, TLS in TLS for an https:// proxy) on uvloop's transports too."""
    import ssl

    trustme = pytest.importorskip("trustme")
    from proxy_servers import TLSFront, microsocks, tinyproxy
    from sync_helpers import running

    if kind == "socks5h":
        pytest.importorskip("python_socks")
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)

    async def through(uri, proxy) -> str:
        ssl_arg = client_ssl if scheme == "wss" else None
        async with connect(uri, proxy=proxy, proxy_ssl=client_ssl, ssl=ssl_arg) as ws:
            await ws.send("x")
            return await ws.recv()

    with running(ssl=server_ssl if scheme == "wss" else None) as origin:
        uri = f"{scheme}://127.0.0.1:{origin.port}/"
        if kind == "socks5h":
            with microsocks(tmp_path) as address:
                got = uvloop.run(asyncio.wait_for(through(uri, f"socks5h://{address}"), 10))
        else:
            with tinyproxy(tmp_path) as proxy:
                if kind == "https":
                    with TLSFront(proxy, server_ssl) as front:
                        got = uvloop.run(asyncio.wait_for(through(uri, front.url), 10))
                else:
                    got = uvloop.run(asyncio.wait_for(through(uri, proxy), 10))
    assert got == "x"
