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
