"""Logs: one INFO line per connection open and close, with the close's cause."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Callable

import pytest
from asyncio_helpers import async_test, eventually, raw_client, start, within

from wsframe.asyncio import Listener, WebSocket, connect
from wsframe.codec import encode_frame

CLOSED = re.compile(
    r"connection (\d+) closed: 127\.0\.0\.1:\d+, [\d.]+ s, sent (\d+|none|-), "
    r"received (?:\d+|none|-)( \(not clean\))?, by (local|remote|nobody), (\w+)(: .*)?$"
)


async def hold(ws: WebSocket) -> None:
    """A handler that reads until the connection closes."""
    async for _ in ws:
        pass


async def goodbye(ws: WebSocket) -> None:
    """A handler that closes at once (the server closes first)."""
    await ws.close(1000, "bye")


async def crash(ws: WebSocket) -> None:
    await ws.recv()
    raise RuntimeError("the application broke")


async def slow(ws: WebSocket) -> None:
    ws.fail(1008, "too slow to keep up", cause="slow_consumer")
    await ws.wait_closed()


class Raising(Listener):
    def on_message(self, ws: WebSocket, message: Any) -> None:
        raise ValueError("listener broke")


async def client_closes(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/"):
        pass


async def client_waits(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await within(ws.wait_closed())


async def client_sends(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send("hello")
        await within(ws.wait_closed())


async def too_big(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send("x" * 2000)
        await within(ws.wait_closed())


async def bad_close(port: int) -> None:
    peer = await raw_client(port)
    await peer.send_raw(encode_frame(8, b"\x03\xed", mask=b"abcd"))  # 1005 is not for the wire
    await within(peer.events_until_eof())
    peer.close()


async def ping_flood(port: int) -> None:
    peer = await raw_client(port)
    for _ in range(5):
        await peer.send_raw(encode_frame(9, b"", mask=b"abcd"))
    await within(peer.events_until_eof())
    peer.close()


async def never_pongs(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/", auto_pong=False, ping_interval=None) as ws:
        await within(ws.wait_closed())


async def drops(port: int) -> None:
    peer = await raw_client(port)
    peer.close()  # no closing handshake


CASES: dict[str, tuple[Any, Callable[[int], Any], dict[str, Any], str, str]] = {
    # cause: (handler, client, server options, code sent, closed by)
    "peer": (hold, client_closes, {}, "1000", "remote"),  # our answer's code
    "local": (goodbye, client_waits, {}, "1000", "local"),
    "protocol_error": (hold, bad_close, {}, "1002", "local"),
    "message_too_big": (hold, too_big, {"max_message_size": 1000}, "1009", "local"),
    "ping_flood": (hold, ping_flood, {"max_ping_rate": 1, "max_ping_burst": 2}, "1008", "local"),
    "heartbeat_timeout": (
        hold,
        never_pongs,
        {"ping_interval": 0.1, "ping_timeout": 0.1},
        "1011",
        "local",
    ),
    "slow_consumer": (slow, client_waits, {}, "1008", "local"),
    "handler_error": (crash, client_sends, {}, "1011", "local"),
    "abnormal": (hold, drops, {}, "-", "nobody"),
}


@pytest.mark.parametrize("cause", sorted(CASES))
@async_test
async def test_close_logged_with_cause(caplog: pytest.LogCaptureFixture, cause: str) -> None:
    handler, client, options, code, closed_by = CASES[cause]
    caplog.set_level(logging.INFO, logger="wsframe.server")
    server = await start(handler, **options)
    try:
        await client(server.port)
        await eventually(lambda: server.stats().connections_closed == 1)
    finally:
        await server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "wsframe.server"]
    opened = [line for line in lines if " open: 127.0.0.1:" in line]
    closed = [m for line in lines if (m := CLOSED.match(line))]
    assert len(opened) == 1 and len(closed) == 1, lines
    match = closed[0]
    assert opened[0].startswith(f"connection {match.group(1)} open: ")
    assert match.group(2) == code
    assert match.group(4) == closed_by
    assert match.group(5) == cause
    if cause in ("protocol_error", "message_too_big", "ping_flood"):
        assert match.group(6), "the violation's message is logged"
    assert server.stats().closed_by_cause(cause) == 1


@async_test
async def test_listener_error_logged_as_handler_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsframe.server")
    server = await start(Raising)
    try:
        await client_sends(server.port)
        await eventually(lambda: server.stats().connections_closed == 1)
    finally:
        await server.close()
    closed = [m for r in caplog.records if (m := CLOSED.match(r.getMessage()))]
    assert [(m.group(2), m.group(5)) for m in closed] == [("1011", "handler_error")]


@async_test
async def test_client_logs_on_its_own_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsframe.client")
    server = await start(hold)
    try:
        await client_closes(server.port)
    finally:
        await server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "wsframe.client"]
    assert any(CLOSED.match(line) and line.endswith("by local, local") for line in lines), lines


@async_test
async def test_nothing_logged_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wsframe")
    server = await start(hold)
    try:
        await client_closes(server.port)
        await asyncio.sleep(0.05)
    finally:
        await server.close()
    assert not [r for r in caplog.records if r.name in ("wsframe.server", "wsframe.client")]
