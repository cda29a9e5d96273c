"""The asyncio client: connect(), reconnection with backoff, client-side heartbeats.

Real loopback sockets; every test runs with both codecs (``codec`` fixture).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from asyncio_helpers import (
    Capture,
    RawServer,
    async_test,
    eventually,
    free_port,
    start,
    uri,
    within,
)

from wsframe.asyncio import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    WebSocket,
    connect,
)
from wsframe.errors import InvalidHandshake
from wsframe.events import CloseReceived, Ping


class Delays:
    """Replaces ``random.uniform``: records the upper bounds, returns them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bounds: list[float] = []
        monkeypatch.setattr(random, "uniform", self)

    def __call__(self, low: float, high: float) -> float:
        assert low == 0
        self.bounds.append(high)
        return high


# ------------------------------------------------------------------ connect


@async_test
async def test_await_connect_and_async_with() -> None:
    capture = Capture()
    async with await start(capture) as server:
        ws = await within(connect(uri(server)))
        assert ws.ready_state == 1
        await within(ws.close())
        assert ws.ready_state == 3
        async with connect(uri(server)) as ws:
            assert ws.ready_state == 1
        assert ws.ready_state == 3 and ws.close_code == 1000


def test_connect_rejects_other_schemes() -> None:
    with pytest.raises(ValueError):
        connect("http://localhost/")
    with pytest.raises(ValueError):
        connect("ws://localhost/", ssl=True)


@async_test
async def test_connect_refused_raises_oserror() -> None:
    with pytest.raises(OSError):
        await within(connect(f"ws://127.0.0.1:{free_port()}/"))


@async_test
async def test_connect_host_and_port_override() -> None:
    capture = Capture()
    async with (
        await start(capture) as server,
        connect("ws://example.invalid/app", host="127.0.0.1", port=server.port),
    ):
        server_ws = await capture.next()
        assert server_ws.request is not None
        assert server_ws.request.headers["Host"] == "example.invalid"
        assert server_ws.request.path == "/app"


@async_test
async def test_open_timeout_when_the_server_never_answers() -> None:
    raw = RawServer()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await within(connect(f"ws://127.0.0.1:{raw.port}/", open_timeout=0.2))
        assert loop.time() - started < 1.5
    finally:
        raw.close()


@async_test
async def test_client_close_timeout_when_the_server_never_answers() -> None:
    raw = RawServer()
    try:
        connecting = asyncio.ensure_future(
            connect(f"ws://127.0.0.1:{raw.port}/", close_timeout=0.2, ping_interval=None)
        )
        await raw.accept()
        ws = await within(connecting)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await within(ws.close())  # the raw server never reads the close frame
        assert loop.time() - started < 1.5
        assert ws.ready_state == 3
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert not info.value.was_clean and info.value.code == 1006
    finally:
        raw.close()


# --------------------------------------------------------------- heartbeats


@async_test
async def test_client_heartbeat_fails_a_server_that_never_pongs() -> None:
    raw = RawServer()
    try:
        connecting = asyncio.ensure_future(
            connect(f"ws://127.0.0.1:{raw.port}/", ping_interval=0.2, ping_timeout=0.2)
        )
        peer = await raw.accept(auto_pong=False)
        ws = await within(connecting)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionClosed) as info:
            await within(ws.recv())
        assert 0.3 <= loop.time() - started < 0.9
        assert info.value.sent == (1011, "keepalive ping timeout")
        events = await peer.events_until_eof(answer=False)
        assert any(isinstance(e, Ping) for e in events)
        assert [e.code for e in events if isinstance(e, CloseReceived)] == [1011]
        peer.close()  # after our FIN (graceful failure), the peer closes
    finally:
        raw.close()


@async_test
async def test_client_heartbeat_healthy_connection_survives() -> None:
    async def handler(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async with (
        await start(handler, ping_interval=None) as server,
        connect(uri(server), ping_interval=0.05, ping_timeout=0.05) as ws,
    ):
        await asyncio.sleep(0.5)
        await ws.send("alive")
        assert await within(ws.recv()) == "alive"
        rtt = await within(ws.ping())
        assert 0 <= rtt < 1


# ---------------------------------------------------------------- reconnect


@async_test
async def test_reconnects_after_the_server_closes() -> None:
    counter = {"n": 0}

    async def handler(ws: WebSocket) -> None:
        counter["n"] += 1
        await ws.send(f"hello {counter['n']}")  # then return: close 1000

    async with await start(handler) as server:
        greetings = []
        async for ws in connect(uri(server), backoff_initial=0.01):
            greetings.extend([message async for message in ws])
            if len(greetings) == 3:
                break
        assert greetings == ["hello 1", "hello 2", "hello 3"]
        assert counter["n"] == 3


@async_test
async def test_reconnects_to_a_restarted_server() -> None:
    first = Capture()
    server = await start(first)
    port = server.port
    restarted: list[Any] = []
    try:

        async def restart_later() -> None:
            await asyncio.sleep(0.2)
            restarted.append(await start(second, port=port))

        second = Capture()
        sessions = []
        async for ws in connect(f"ws://127.0.0.1:{port}/", backoff_initial=0.02):
            sessions.append(ws)
            if len(sessions) == 1:
                await first.next()
                await server.close()  # going away
                with pytest.raises(ConnectionClosedOK) as info:
                    await within(ws.recv())
                assert info.value.code == 1001
                restarting = asyncio.ensure_future(restart_later())
            else:
                await second.next()
                await within(restarting)
                await ws.close()
        assert len(sessions) == 2
    finally:
        await server.close()
        for other in restarted:
            await other.close()


@async_test
async def test_backoff_grows_exponentially_and_max_attempts_raises(monkeypatch) -> None:
    delays = Delays(monkeypatch)
    port = free_port()
    attempts = 0
    with pytest.raises(OSError):
        async for _ in connect(
            f"ws://127.0.0.1:{port}/",
            backoff_initial=0.01,
            backoff_factor=2,
            backoff_max=0.05,
            max_attempts=6,
        ):
            attempts += 1
    assert attempts == 0
    assert delays.bounds == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])


@async_test
async def test_backoff_delays_are_really_slept() -> None:
    port = free_port()
    loop = asyncio.get_running_loop()
    started = loop.time()
    random.seed(12345)
    with pytest.raises(OSError):
        async for _ in connect(
            f"ws://127.0.0.1:{port}/", backoff_initial=0.05, backoff_factor=3, max_attempts=4
        ):
            pass
    elapsed = loop.time() - started
    random.seed(12345)
    expected = sum(random.uniform(0, 0.05 * 3**i) for i in range(3))
    assert expected * 0.8 <= elapsed < expected + 0.5


@async_test
async def test_backoff_resets_after_a_successful_connection(monkeypatch) -> None:
    delays = Delays(monkeypatch)
    capture = Capture()
    port = free_port()
    servers: list[Any] = []

    async def start_after(count: int) -> None:
        await eventually(lambda: len(delays.bounds) >= count)
        servers.append(await start(capture, port=port))

    try:
        starting = asyncio.ensure_future(start_after(3))
        sessions = 0
        async for ws in connect(f"ws://127.0.0.1:{port}/", backoff_initial=0.01):
            sessions += 1
            await capture.next()
            await within(starting)
            if sessions == 1:
                assert delays.bounds[:3] == pytest.approx([0.01, 0.02, 0.04])
                mark = len(delays.bounds)
                await servers[-1].close()
                starting = asyncio.ensure_future(start_after(mark + 1))
                with pytest.raises(ConnectionClosed):
                    await within(ws.recv())
            else:
                assert delays.bounds[mark] == pytest.approx(0.01)
                await ws.close()
        assert sessions == 2
    finally:
        for server in servers:
            await server.close()


@async_test
async def test_no_reconnect_after_the_application_closes() -> None:
    capture = Capture()
    async with await start(capture) as server:
        sessions = 0
        async for ws in connect(uri(server), backoff_initial=0.01):
            sessions += 1
            await capture.next()
            await ws.close()
        assert sessions == 1
        await asyncio.sleep(0.1)
        assert capture.queue.empty()


@async_test
async def test_no_retry_after_a_4xx_refusal() -> None:
    calls: list[str] = []

    def process_request(ws: WebSocket, request: Any) -> Any:
        calls.append(request.path)
        return (403, "go away")

    async with await start(Capture(), process_request=process_request) as server:
        with pytest.raises(InvalidHandshake) as info:
            async for _ in connect(uri(server), backoff_initial=0.01):
                pass
        assert info.value.status == 403
        assert calls == ["/"]


@async_test
async def test_5xx_refusal_is_retried(monkeypatch) -> None:
    delays = Delays(monkeypatch)
    calls: list[str] = []

    def process_request(ws: WebSocket, request: Any) -> Any:
        calls.append(request.path)
        return (503, "busy") if len(calls) < 3 else None

    capture = Capture()
    async with await start(capture, process_request=process_request) as server:
        async for ws in connect(uri(server), backoff_initial=0.01):
            await capture.next()
            await ws.close()
        assert len(calls) == 3 and len(delays.bounds) == 2


@async_test
async def test_leaving_the_loop_closes_the_connection() -> None:
    capture = Capture()
    async with await start(capture) as server:
        iterator = connect(uri(server), backoff_initial=0.01).__aiter__()
        ws = await within(iterator.__anext__())
        server_ws = await capture.next()
        await within(iterator.aclose())  # what leaving the loop amounts to
        assert ws.ready_state == 3
        await within(server_ws.wait_closed())
        assert server_ws.close_code == 1000


@async_test
async def test_exception_in_the_loop_body_closes_the_connection() -> None:
    capture = Capture()
    async with await start(capture) as server:

        async def body() -> None:
            iterator = connect(uri(server), backoff_initial=0.01).__aiter__()
            try:
                async for ws in iterator:
                    holder.append(ws)
                    raise KeyError("application error")
            finally:
                await iterator.aclose()

        holder: list[WebSocket] = []
        with pytest.raises(KeyError):
            await within(body())
        server_ws = await capture.next()
        await within(server_ws.wait_closed())
        assert holder[0].ready_state == 3


@async_test
async def test_reconnect_after_heartbeat_failure() -> None:
    raw = RawServer()
    try:
        sessions = 0

        async def accept_twice() -> None:
            await raw.accept(auto_pong=False)
            await raw.accept(auto_pong=True)

        accepting = asyncio.ensure_future(accept_twice())
        async for ws in connect(
            f"ws://127.0.0.1:{raw.port}/",
            ping_interval=0.1,
            ping_timeout=0.1,
            backoff_initial=0.01,
        ):
            sessions += 1
            if sessions == 1:
                with pytest.raises(ConnectionClosedError):
                    await within(ws.recv())
            else:
                await within(accepting)
                ws.abort()
                break
        assert sessions == 2
    finally:
        raw.close()
