"""Frames at DEBUG: one line per frame received and sent, only when enabled."""

from __future__ import annotations

import logging

import pytest
from asyncio_helpers import async_test, echo, eventually, start, uri, within

from wsframe.asyncio import connect


@async_test
async def test_frames_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wsframe.server")
    server = await start(echo, compression=None)
    try:
        async with connect(uri(server), compression=None) as ws:
            await ws.send("hello")
            assert await within(ws.recv()) == "hello"
            await ws.send(b"\x00\x01" * 100)
            await within(ws.recv())
            await within(ws.ping(b"pi"))
        await eventually(lambda: server.stats().connections_closed == 1)
    finally:
        await server.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    frames = [line.split(": ", 1)[1] for line in lines if line.startswith("connection ")]
    assert frames == [
        "< TEXT fin, 5 bytes: 'hello'",
        "> TEXT fin, 5 bytes: 'hello'",
        "< BINARY fin, 200 bytes: " + repr(b"\x00\x01" * 20) + "…",
        "> BINARY fin, 200 bytes: " + repr(b"\x00\x01" * 20) + "…",
        "< PING fin, 2 bytes: b'pi'",
        "> PONG fin, 2 bytes: b'pi'",
        "< CLOSE fin, 2 bytes: b'\\x03\\xe8'",
        "> CLOSE fin, 2 bytes: b'\\x03\\xe8'",
    ]
    # Every line names the same connection as its open and close lines.
    prefixes = {line.split(":", 1)[0] for line in lines if line.startswith("connection ")}
    assert len(prefixes) == 1


@async_test
async def test_no_frame_lines_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsframe")
    server = await start(echo)
    try:
        async with connect(uri(server)) as ws:
            await ws.send("hello")
            await within(ws.recv())
    finally:
        await server.close()
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert [r for r in caplog.records if r.levelno == logging.INFO]  # open/close lines
