"""RedisRooms: rooms shared by several server processes through a real Redis.

A fixture starts ``redis-server`` on a free loopback port (no persistence)
and stops it by PID. Without ``redis-server`` (or the ``redis`` package) the
tests are skipped with the reason, except under CI (``CI`` set), where they
fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from asyncio_helpers import async_test, free_port, within

from wsframe.asyncio import WebSocket, connect, serve

REDIS_SERVER = shutil.which("redis-server")
try:
    import redis  # noqa: F401

    HAVE_REDIS_PY = True
except ImportError:  # pragma: no cover
    HAVE_REDIS_PY = False

if not (REDIS_SERVER and HAVE_REDIS_PY):
    reason = (
        "redis-server is not installed (apt-get install redis-server)"
        if not REDIS_SERVER
        else "the redis package is not installed (pip install 'wsframe[redis]')"
    )
    if os.environ.get("CI"):
        raise RuntimeError(f"test_redis_rooms under CI: {reason}")
    pytest.skip(reason, allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]

#: A tiny server for the tests: commands over a WebSocket drive a RedisRooms.
SERVER = r"""
import asyncio, json, sys
from wsframe.asyncio import serve
from wsframe.asyncio.redis_rooms import RedisRooms

async def main():
    url, ttl = sys.argv[1], float(sys.argv[2])
    rooms = RedisRooms(url, prefix="test", heartbeat_interval=0.2, presence_ttl=ttl,
                       max_backoff=0.5)
    await rooms.start()

    async def handler(ws):
        async for message in ws:
            command, _, arg = message.partition(" ")
            if command == "join":
                room, name = arg.split(" ")
                rooms.join(room, ws, name)
                await ws.send("ok")
            elif command == "say":
                room, _, text = arg.partition(" ")
                rooms.send(room, text)
            elif command == "who":
                await ws.send("who " + json.dumps(sorted(rooms.presence(arg))))
            elif command == "status":
                await ws.send("status " + json.dumps(
                    {"connected": rooms.connected, "subscribed": rooms.is_subscribed(arg),
                     "stats": rooms.stats}))

    async with serve(handler, "127.0.0.1", 0) as server:
        print(server.port, flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def _outage() -> Any:
    """``bench/redis_outage.py``: the scenarios the benchmark reports."""
    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("redis_outage")


# One redis-server runner for the tests and bench/redis_outage.py.
RedisServer = _outage().RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Worker:
    """A server process (the script above) and its port."""

    def __init__(self, url: str, ttl: float = 2.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, url, str(ttl)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        started.extend(Worker(redis_server.url) for _ in range(2))
        yield started
    finally:
        for worker in started:
            worker.kill()


async def command(ws: WebSocket, text: str, answer: str) -> Any:
    """Send a command and return the JSON of the answer starting with ``answer``."""
    await ws.send(text)
    while True:
        reply = await within(ws.recv(), 5.0)
        assert isinstance(reply, str)
        if reply.startswith(answer):
            rest = reply[len(answer) :].strip()
            return json.loads(rest) if rest else None


async def wait_for(ws: WebSocket, text: str, check: Any, timeout: float = 10.0) -> Any:
    """Repeat a ``who``/``status`` command until ``check(answer)`` holds."""
    answer = text.split(" ")[0]
    deadline = time.monotonic() + timeout
    while True:
        value = await command(ws, text, answer)
        if check(value):
            return value
        assert time.monotonic() < deadline, f"{text}: still {value}"
        await asyncio.sleep(0.05)


async def drain(ws: WebSocket, count: int, timeout: float = 10.0) -> list[str]:
    """The next ``count`` messages."""
    received: list[str] = []
    deadline = time.monotonic() + timeout
    while len(received) < count:
        message = await within(ws.recv(), max(0.01, deadline - time.monotonic()))
        assert isinstance(message, str)
        received.append(message)
    return received


async def quiet(ws: WebSocket, seconds: float = 0.3) -> list[str]:
    """Whatever arrives within ``seconds``."""
    extra: list[str] = []
    try:
        while True:
            message = await asyncio.wait_for(ws.recv(), seconds)
            assert isinstance(message, str)
            extra.append(message)
    except asyncio.TimeoutError:
        return extra


@async_test(timeout=60)
async def test_two_processes_exactly_once_in_order(workers: list[Worker]) -> None:
    a, b = workers
    names = ["a1", "a2", "b1", "b2"]
    clients = [await connect(w.uri()).__aenter__() for w in (a, a, b, b)]
    try:
        for ws, name in zip(clients, names):
            await command(ws, f"join r {name}", "ok")
        for ws in (clients[0], clients[2]):
            await wait_for(ws, "status r", lambda s: s["connected"] and s["subscribed"])
            await wait_for(ws, "who r", lambda who: who == sorted(names))
        per_sender = 200
        for i in range(per_sender):
            for ws, name in zip(clients, names):
                await ws.send(f"say r {name}:{i}")
        total = per_sender * len(names)
        for ws in clients:
            received = await drain(ws, total)
            assert await quiet(ws) == []  # nothing twice
            assert len(set(received)) == total
            for name in names:
                mine = [int(m.split(":")[1]) for m in received if m.startswith(name + ":")]
                assert mine == list(range(per_sender)), name
    finally:
        for ws in clients:
            await ws.close()


@async_test(timeout=60)
async def test_sigkill_removes_presence_within_ttl(redis_server: RedisServer) -> None:
    a, b = Worker(redis_server.url, ttl=1.0), Worker(redis_server.url, ttl=1.0)
    try:
        async with connect(a.uri()) as wa, connect(b.uri()) as wb:
            await command(wa, "join lobby ann", "ok")
            await command(wb, "join lobby bob", "ok")
            await wait_for(wa, "who lobby", lambda who: who == ["ann", "bob"])
            b.kill()
            started = time.monotonic()
            await wait_for(wa, "who lobby", lambda who: who == ["ann"], timeout=5.0)
            # TTL (1 s) + one heartbeat (0.2 s) + slack.
            assert time.monotonic() - started < 2.0
    finally:
        a.kill()
        b.kill()


@async_test(timeout=90)
async def test_redis_restart(redis_server: RedisServer, workers: list[Worker]) -> None:
    a, b = workers
    async with (
        connect(a.uri()) as a1,
        connect(a.uri()) as a2,
        connect(b.uri()) as b1,
    ):
        for ws, name in ((a1, "a1"), (a2, "a2"), (b1, "b1")):
            await command(ws, f"join r {name}", "ok")
        for ws in (a1, b1):
            await wait_for(ws, "status r", lambda s: s["connected"] and s["subscribed"])
        await a1.send("say r before")
        for ws in (a1, a2, b1):
            assert await drain(ws, 1) == ["before"]

        redis_server.stop()
        await wait_for(a1, "status r", lambda s: not s["subscribed"])
        # Local rooms keep working; sending never blocks nor fails the app.
        for i in range(20):
            await a1.send(f"say r down{i}")
        assert await drain(a2, 20) == [f"down{i}" for i in range(20)]
        assert await drain(a1, 20) == [f"down{i}" for i in range(20)]
        status = await wait_for(a1, "status r", lambda s: s["stats"]["dropped"] > 0)
        assert status["stats"]["errors"] > 0
        assert await quiet(b1) == []

        redis_server.start()  # same port, empty
        for ws in (a1, b1):
            await wait_for(ws, "status r", lambda s: s["connected"] and s["subscribed"], 20.0)
        await wait_for(a1, "who r", lambda who: who == ["a1", "a2", "b1"])
        for i in range(100):
            await a1.send(f"say r a:{i}")
            await b1.send(f"say r b:{i}")
        expected_a = [f"a:{i}" for i in range(100)]
        expected_b = [f"b:{i}" for i in range(100)]
        for ws in (a1, a2, b1):
            received = await drain(ws, 200)
            assert [m for m in received if m.startswith("a:")] == expected_a
            assert [m for m in received if m.startswith("b:")] == expected_b
            assert await quiet(ws) == []


@async_test(timeout=30)
async def test_send_never_raises_without_redis() -> None:
    from wsframe.asyncio.redis_rooms import RedisRooms

    errors: list[tuple[BaseException, int]] = []
    rooms = RedisRooms(
        f"redis://127.0.0.1:{free_port()}/0",
        on_error=lambda exc, dropped: errors.append((exc, dropped)),
        max_queue=10,
    )
    async with rooms:
        started = time.monotonic()
        for i in range(100):
            rooms.send("r", f"m{i}")
        assert time.monotonic() - started < 0.1
        deadline = time.monotonic() + 5
        while rooms.stats["dropped"] < 100 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert rooms.stats["dropped"] >= 100
        assert errors
        assert not rooms.connected


def _chat(port: int, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "wsframe", "chat", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_chat_workers_need_redis() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsframe", "chat", "--workers", "2", "--db", ":memory:"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "--redis" in result.stderr


async def _chat_client(port: int, nick: str) -> tuple[WebSocket, dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/ws").__aenter__()
            break
        except OSError:
            assert time.monotonic() < deadline, "chat did not start"
            await asyncio.sleep(0.1)
    await ws.send(json.dumps({"type": "hello", "nick": nick}))
    welcome = await _expect(ws, "welcome")
    return ws, welcome


async def _expect(ws: WebSocket, kind: str, **fields: Any) -> dict[str, Any]:
    while True:
        raw = await within(ws.recv(), 10.0)
        message: dict[str, Any] = json.loads(raw)
        if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
            return message


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@async_test(timeout=90)
async def test_chat_across_processes(redis_server: RedisServer, tmp_path: Path) -> None:
    db = str(tmp_path / "chat.sqlite3")
    port_a, port_b = free_port(), free_port()
    a = _chat(port_a, "--db", db, "--redis", redis_server.url)
    b = _chat(port_b, "--db", db, "--redis", redis_server.url)
    try:
        ann, _ = await _chat_client(port_a, "ann")
        bob, _ = await _chat_client(port_b, "bob")
        # Presence is eventually consistent: wait until bob's process knows ann.
        deadline = time.monotonic() + 10
        while True:
            await bob.send(json.dumps({"type": "dm", "to": "ann", "text": "ping"}))
            reply = json.loads(await within(bob.recv(), 5))
            if reply["type"] == "dm":
                break
            # Not known yet; poll below the chat's rate limit (5/s), and back
            # off if a slow machine bunched the tries up anyway.
            assert reply.get("code") in ("no_such_user", "rate_limited"), reply
            assert time.monotonic() < deadline
            await asyncio.sleep(1.0 if reply.get("code") == "rate_limited" else 0.25)
        # Nicknames are global.
        eve = await connect(f"ws://127.0.0.1:{port_b}/ws").__aenter__()
        await eve.send(json.dumps({"type": "hello", "nick": "ANN"}))
        assert (await _expect(eve, "error"))["code"] == "nick_taken"
        for ws in (ann, bob):
            await ws.send(json.dumps({"type": "join", "room": "general"}))
            await _expect(ws, "joined", room="general")
        deadline = time.monotonic() + 10
        while True:
            await ann.send(json.dumps({"type": "rooms"}))
            rooms = (await _expect(ann, "rooms"))["rooms"]
            users = next(r["users"] for r in rooms if r["room"] == "general")
            if users == ["ann", "bob"]:
                break
            assert time.monotonic() < deadline, users
            await asyncio.sleep(0.1)
        await ann.send(json.dumps({"type": "message", "room": "general", "text": "hi bob"}))
        got = await _expect(bob, "message", text="hi bob")
        mine = await _expect(ann, "message", text="hi bob")
        assert got["id"] == mine["id"]
        await bob.send(json.dumps({"type": "dm", "to": "ANN", "text": "psst"}))
        dm = await _expect(ann, "dm", text="psst")  # after the "ping" ones
        assert dm["from"] == "bob" and dm["to"] == "ann"
        # History is shared: a later join on the other process replays it.
        await bob.send(json.dumps({"type": "leave", "room": "general"}))
        await _expect(bob, "left")
        await bob.send(json.dumps({"type": "join", "room": "general"}))
        joined = await _expect(bob, "joined", room="general")
        assert [m["text"] for m in joined["history"]] == ["hi bob"]
        for ws in (ann, bob, eve):
            await ws.close()
    finally:
        _stop(a)
        _stop(b)


@async_test(timeout=90)
async def test_chat_workers(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    chat = _chat(port, "--workers", "2", "--db", str(tmp_path / "h.sqlite3"),
                 "--redis", redis_server.url)  # fmt: skip
    try:
        clients = []
        for i in range(8):  # spread over both workers by the kernel
            ws, _ = await _chat_client(port, f"user{i}")
            await ws.send(json.dumps({"type": "join", "room": "general"}))
            await _expect(ws, "joined", room="general")
            clients.append(ws)
        await asyncio.sleep(0.5)  # subscriptions and presence settle
        await clients[0].send(json.dumps({"type": "message", "room": "general", "text": "all"}))
        for ws in clients:
            await _expect(ws, "message", text="all")
        await _check_stats_of_every_worker(port, 8)
        for ws in clients:
            await ws.close()
    finally:
        _stop(chat)
        out, _ = chat.communicate(timeout=30)
        assert out.count("listening on") == 2
        assert chat.returncode == 0


def _http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def _check_stats_of_every_worker(port: int, clients: int) -> None:
    """/stats.json and /metrics, from whichever worker answers, count every worker's."""
    loop = asyncio.get_running_loop()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    answers = 0
    while answers < 6:  # several answers: the kernel spreads them over the workers
        stats = json.loads(await loop.run_in_executor(None, _http_get, base + "/stats.json"))
        if stats["connections_open"] == clients:
            answers += 1
        else:
            assert time.monotonic() < deadline, stats  # a worker's file lags by <= 1 s
            await asyncio.sleep(0.2)
    # hello + join + the message from the first client, hello + join from the others.
    assert stats["messages_received"] >= 2 * clients + 1
    parser = pytest.importorskip("prometheus_client.parser")
    text = await loop.run_in_executor(None, _http_get, base + "/metrics")
    open_by_worker = {
        sample.labels["worker"]: sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "wsframe_connections_open"
    }
    assert len(open_by_worker) == 2, open_by_worker
    assert sum(open_by_worker.values()) == clients


# ------------------------------------------------ presence changes (on_presence)


class Members:
    """Server-side connections to put in rooms, from clients connected to a local server."""

    def __init__(self) -> None:
        self.server_side: list[WebSocket] = []
        self.clients: list[WebSocket] = []
        self.server: Any = None

    async def __aenter__(self) -> Members:
        async def handler(ws: WebSocket) -> None:
            self.server_side.append(ws)
            async for _ in ws:
                pass

        self.server = await serve(handler, "127.0.0.1", 0)
        return self

    async def new(self) -> WebSocket:
        """A new server-side connection."""
        count = len(self.server_side)
        self.clients.append(await connect(f"ws://127.0.0.1:{self.server.port}/"))
        deadline = time.monotonic() + 5
        while len(self.server_side) == count:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        return self.server_side[-1]

    async def __aexit__(self, *exc: object) -> None:
        for ws in self.clients:
            await ws.close()
        await self.server.close()


def _rooms(url: str, changes: list[tuple[str, str, str]], **options: Any) -> Any:
    from wsframe.asyncio.redis_rooms import RedisRooms

    options = {"heartbeat_interval": 0.1, "presence_ttl": 0.5, "max_backoff": 0.2, **options}
    return RedisRooms(
        url, prefix="presence", on_presence=lambda *change: changes.append(change), **options
    )


async def _until(predicate: Any, timeout: float, what: str) -> float:
    """Wait until ``predicate()`` (polling); return how long it took."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, what
        await asyncio.sleep(0.005)
    return time.monotonic() - started


@async_test(timeout=30)
async def test_on_presence_reports_every_change_of_the_global_view(
    redis_server: RedisServer,
) -> None:
    one: list[tuple[str, str, str]] = []
    two: list[tuple[str, str, str]] = []
    async with Members() as members, _rooms(redis_server.url, one) as p1:
        p2 = _rooms(redis_server.url, two)
        await p2.start()
        await p1.wait_connected(5)
        await p2.wait_connected(5)
        ann = await members.new()
        p1.join("lobby", ann, "ann")
        assert one == [("lobby", "ann", "join")]  # a local change: at once
        await _until(lambda: two == [("lobby", "ann", "join")], 2, f"remote join: {two}")
        bob = await members.new()
        p2.join("lobby", bob, "bob")
        await _until(lambda: ("lobby", "bob", "join") in one, 2, f"remote join: {one}")
        # The same name in both processes: present while either has it.
        # (A process's events arrive in order: a join in a "barrier" room
        # seen by the other proves that what came before was seen too.)
        ann2, mark1, mark2 = await members.new(), await members.new(), await members.new()
        p2.join("lobby", ann2, "ann")
        p2.join("barrier", mark2, "m2")
        await _until(lambda: ("barrier", "m2", "join") in one, 2, f"barrier: {one}")
        p1.leave("lobby", ann)
        p1.join("barrier", mark1, "m1")
        await _until(lambda: ("barrier", "m1", "join") in two, 2, f"barrier: {two}")
        await asyncio.sleep(0.3)  # and a few heartbeats (snapshots) change nothing
        assert p1.presence("lobby") == p2.presence("lobby") == {"ann", "bob"}
        assert ("lobby", "ann", "leave") not in one + two
        p1.join("lobby", ann, "ann")
        # A goodbye makes the others report its members' leaves at once
        # (well before the presence TTL).
        await p2.close()
        took = await _until(
            lambda: ("lobby", "bob", "leave") in one, 2, f"leave after close: {one}"
        )
        assert took < 0.3, took
        assert ("lobby", "ann", "leave") not in one  # still here, in p1
        assert p1.presence("lobby") == {"ann"}
        await asyncio.sleep(0.4)  # heartbeats: no stale snapshot brings bob back
        assert one.count(("lobby", "bob", "join")) == 1 and p1.presence("lobby") == {"ann"}


@async_test(timeout=40)
async def test_redis_restart_does_not_make_members_leave(redis_server: RedisServer) -> None:
    one: list[tuple[str, str, str]] = []
    two: list[tuple[str, str, str]] = []
    async with (
        Members() as members,
        _rooms(redis_server.url, one) as p1,
        _rooms(redis_server.url, two) as p2,
    ):
        p1.join("lobby", await members.new(), "ann")
        p2.join("lobby", await members.new(), "bob")
        await _until(lambda: p1.presence("lobby") == p2.presence("lobby") == {"ann", "bob"},
                     3, "presence")  # fmt: skip
        redis_server.stop()
        await _until(lambda: not p1.connected and not p2.connected, 5, "outage seen")
        await asyncio.sleep(0.6)  # longer than the presence TTL: every key expired
        redis_server.start()  # empty
        await _until(lambda: p1.connected and p2.connected, 5, "reconnected")
        await asyncio.sleep(1.5)  # the TTL (grace) and several heartbeats
        assert [c for c in one + two if c[2] == "leave"] == []
        assert p1.presence("lobby") == p2.presence("lobby") == {"ann", "bob"}


# ------------------------------------------------------------------ close()


@pytest.mark.parametrize("redis_up", [True, False], ids=["redis-up", "redis-down"])
@async_test(timeout=60)
async def test_close_is_prompt(
    redis_up: bool, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Closed many times at random moments of heavy traffic and fast heartbeats,
    # so that close() often cancels a task inside a redis-py command (before
    # the fix, about 1 close in 15 waited 2 s for the heartbeat task).
    import random

    from wsframe.asyncio.redis_rooms import RedisRooms

    if not redis_up:
        redis_server.stop()
    caplog.set_level(logging.WARNING, logger="wsframe.redis")
    durations = []
    for _ in range(40):
        rooms = RedisRooms(redis_server.url, heartbeat_interval=0.005, presence_ttl=0.5,
                           max_backoff=0.1)  # fmt: skip
        await rooms.start()
        if redis_up:
            await rooms.wait_connected(5)
        deadline = time.monotonic() + random.uniform(0.0, 0.1)
        while time.monotonic() < deadline:
            for i in range(20):
                rooms.send(f"r{i % 3}", "x")
            await asyncio.sleep(random.uniform(0.0, 0.005))
        started = time.monotonic()
        await rooms.close()
        durations.append(time.monotonic() - started)
        assert rooms.connected is False
    assert max(durations) < 0.5, durations
    assert not [r for r in caplog.records if "did not stop" in r.getMessage()]


@async_test(timeout=30)
async def test_close_stops_a_task_that_swallowed_its_cancellation(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """What ``asyncio.wait_for`` does on Python < 3.12 (inside redis-py), made certain."""
    import redis.asyncio as aioredis

    from wsframe.asyncio.redis_rooms import RedisRooms

    in_command = asyncio.Event()

    class SwallowingRedis(aioredis.Redis):  # type: ignore[misc]
        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            pipe = super().pipeline(*args, **kwargs)
            execute = pipe.execute

            async def late_reply(*a: Any, **k: Any) -> Any:
                result = await execute(*a, **k)
                in_command.set()
                # The cancellation is lost, as in wait_for on Python < 3.12.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.5)
                return result

            pipe.execute = late_reply
            return pipe

    client = SwallowingRedis.from_url(redis_server.url)
    caplog.set_level(logging.WARNING, logger="wsframe.redis")
    try:
        rooms = RedisRooms(client=client, heartbeat_interval=0.01, presence_ttl=1.0)
        await rooms.start()
        await within(in_command.wait(), 5)
        started = time.monotonic()
        await rooms.close()
        assert time.monotonic() - started < 1.0  # 2 s before the fix
        assert not [r for r in caplog.records if "did not stop" in r.getMessage()]
    finally:
        await client.aclose()


# ----------------------------------------------------- failures under traffic


#: On PyPy the fault hits the fresh worker processes 1 s after they start,
#: while the JIT is still tracing and compiling: tens of ms of messages are then
#: in flight (held in a worker), more than these bounds, calibrated on CPython,
#: allow. Known and not fixed: the scenarios pass there only now and then.
PYPY_IN_FLIGHT = pytest.mark.xfail(
    platform.python_implementation() == "PyPy",
    reason="PyPy: JIT warm-up of the fresh workers puts more messages in flight "
    "than the CPython-calibrated bounds allow",
    strict=False,
)


@PYPY_IN_FLIGHT
@async_test(timeout=60)
async def test_redis_killed_and_restarted_under_traffic() -> None:
    outage = _outage()
    report = await outage.redis_restart(rate=200.0, down=1.0)
    print(report)
    by_pair = {(p.sender, p.receiver): p for p in report.pairs}
    for pair in report.pairs:
        assert pair.duplicates == 0 and pair.out_of_order == 0, pair
        assert pair.lost_outside_window == 0, pair
        assert pair.sent > 900, pair  # 200/s for 6 s, on a loaded machine too
    for local in (("a", "ra"), ("b", "rb")):  # no Redis needed: nothing lost
        assert by_pair[local].lost == 0, by_pair[local]
    for remote in (("a", "rb"), ("b", "ra")):
        pair = by_pair[remote]
        # What was sent while Redis was down is lost (at-most-once)...
        assert pair.lost > 0 and pair.first_lost is not None and pair.last_lost is not None
        assert -outage.MARGIN <= pair.first_lost < 0.3, pair
        # ...and delivery resumes soon after Redis is back (the subscriber's
        # backoff: 50 ms doubling, jittered, for a 1 s outage).
        # (Nothing sent after that was lost: lost_outside_window above.)
        assert pair.recovery is not None and pair.recovery < 2.0, pair


@PYPY_IN_FLIGHT
@async_test(timeout=60)
async def test_worker_killed_under_traffic() -> None:
    outage = _outage()
    report = await outage.worker_kill(rate=200.0)
    print(report)
    for pair in report.pairs:
        assert pair.duplicates == 0 and pair.out_of_order == 0, pair
        assert pair.lost_outside_window == 0, pair
        assert pair.sent > 600, pair
        if pair.receiver != "rb":
            # The survivors' traffic is not disturbed; of the killed worker's
            # sender only what was in flight may be lost.
            assert pair.lost <= (0 if pair.sender == "a" else 5), pair
        else:  # rb was on the killed worker: lost while it moved to another one
            assert pair.lost <= 50, pair
        if pair.lost:
            assert pair.recovery is not None and pair.recovery < 1.0, pair
    assert report.notes["sender_b_failover_s"] and report.notes["receiver_rb_failover_s"]


# ------------------------------------ chat: presence leaves across servers


async def _leave_reaches_bob(redis_server: RedisServer, db: str, sig: int) -> float:
    """Two chat servers, ann on the first, bob on the second, both in ``general``;
    the first is stopped with ``sig``. Returns how long bob waited for ann's leave."""
    port_a, port_b = free_port(), free_port()
    a = _chat(port_a, "--db", db, "--redis", redis_server.url)
    b = _chat(port_b, "--db", db, "--redis", redis_server.url)
    try:
        bob, _ = await _chat_client(port_b, "bob")
        await bob.send(json.dumps({"type": "join", "room": "general"}))
        await _expect(bob, "joined", room="general")
        ann, _ = await _chat_client(port_a, "ann")
        await ann.send(json.dumps({"type": "join", "room": "general"}))
        joined = {"room": "general", "nick": "ann", "action": "join"}
        while joined not in (await _expect(bob, "presence"))["changes"]:
            pass
        started = time.monotonic()
        os.kill(a.pid, sig)
        left = {"room": "general", "nick": "ann", "action": "leave"}
        # SIGKILL: the presence TTL (5 s) plus a heartbeat (1 s), then 50 ms
        # of grouping; _expect waits 10 s per message.
        while left not in (await _expect(bob, "presence"))["changes"]:
            pass
        latency = time.monotonic() - started
        a.wait(15)
        # The page's other source agrees, and stays so: no stale snapshot
        # brings ann back a heartbeat later.
        await asyncio.sleep(1.2)
        await bob.send(json.dumps({"type": "rooms"}))
        rooms = (await _expect(bob, "rooms"))["rooms"]
        assert next(r["users"] for r in rooms if r["room"] == "general") == ["bob"]
        await bob.send(json.dumps({"type": "ping", "id": "barrier"}))
        while True:
            message = json.loads(await within(bob.recv(), 5))
            assert message["type"] != "presence", message
            if message["type"] == "pong":
                break
        with contextlib.suppress(Exception):
            await within(ann.close(), 2)
        await bob.close()
        return latency
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@async_test(timeout=60)
async def test_chat_presence_leave_when_a_server_stops(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    latency = await _leave_reaches_bob(redis_server, str(tmp_path / "h.sqlite3"), signal.SIGTERM)
    print(f"SIGTERM: leave after {latency:.3f} s")
    assert latency < 2.0


@async_test(timeout=60)
async def test_chat_presence_leave_when_a_server_is_killed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    latency = await _leave_reaches_bob(redis_server, str(tmp_path / "h.sqlite3"), signal.SIGKILL)
    print(f"SIGKILL: leave after {latency:.3f} s")
    assert latency < 5.0 + 1.0 + 1.0  # presence TTL + a heartbeat + slack


def _worker_of(server_port: int, client_port: int, pids: list[int]) -> Optional[int]:
    """Which of ``pids`` holds the server side of the TCP connection from ``client_port``."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == server_port and (
                int(remote.split(":")[1], 16) == client_port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return None


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc")
@async_test(timeout=90)
async def test_chat_worker_killed_is_replaced(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    chat = _chat(port, "--workers", "2", "--db", str(tmp_path / "h.sqlite3"),
                 "--redis", redis_server.url)  # fmt: skip
    assert chat.stdout is not None
    lines: list[str] = []

    async def line() -> str:
        assert chat.stdout is not None
        text: str = await within(asyncio.to_thread(chat.stdout.readline), 20)
        assert text, "the chat's output ended"
        lines.append(text)
        return text

    def pids() -> list[int]:
        return [int(x.split("(pid ")[1].rstrip(")\n")) for x in lines if "(pid " in x]

    clients: dict[str, tuple[WebSocket, int]] = {}  # nick -> (connection, worker pid)
    try:
        while sum("listening on" in x for x in lines) < 2:
            await line()
        for i in range(40):  # until both workers have a client
            sock = socket.create_connection(("127.0.0.1", port))
            ws = await connect(f"ws://127.0.0.1:{port}/ws", sock=sock).__aenter__()
            owner = _worker_of(port, sock.getsockname()[1], pids())  # accepted by now
            assert owner is not None
            await ws.send(json.dumps({"type": "hello", "nick": f"u{i}"}))
            await _expect(ws, "welcome")
            await ws.send(json.dumps({"type": "join", "room": "general"}))
            await _expect(ws, "joined")
            clients[f"u{i}"] = (ws, owner)
            if len({pid for _, pid in clients.values()}) == 2:
                break
        killed = next(iter(clients.values()))[1]
        gone = sorted(nick for nick, (_, pid) in clients.items() if pid == killed)
        staying = [ws for ws, pid in clients.values() if pid != killed]
        assert gone and staying
        # Every client's presence is known everywhere before the kill.
        deadline = time.monotonic() + 10
        for ws in staying:
            while True:
                await ws.send(json.dumps({"type": "rooms"}))
                rooms = (await _expect(ws, "rooms"))["rooms"]
                if next(r["users"] for r in rooms if r["room"] == "general") == sorted(clients):
                    break
                assert time.monotonic() < deadline, rooms
                await asyncio.sleep(0.3)  # below the chat's rate limit
        started = time.monotonic()
        os.kill(killed, signal.SIGKILL)
        # The survivors see the killed worker's users leave (its presence expires).
        for ws in staying:
            left: set[str] = set()
            while left != set(gone):
                for change in (await _expect(ws, "presence"))["changes"]:
                    if change["action"] == "leave" and change["room"] == "general":
                        left.add(change["nick"])
        leave_latency = time.monotonic() - started
        assert leave_latency < 7.0, leave_latency
        # The chat is still up, with a new worker.
        while sum("listening on" in x for x in lines) < 3:
            await line()
        assert chat.poll() is None
        # A user of the killed worker comes back under its nickname and talks.
        ws, _ = await _chat_client(port, gone[0])
        await ws.send(json.dumps({"type": "join", "room": "general"}))
        await _expect(ws, "joined")
        await ws.send(json.dumps({"type": "message", "room": "general", "text": "back"}))
        for other in staying:
            await _expect(other, "message", text="back")
        print(f"worker SIGKILL: leaves after {leave_latency:.3f} s, "
              f"{gone[0]} back and heard after {time.monotonic() - started:.3f} s")  # fmt: skip
        await ws.close()
    finally:
        for ws, _ in clients.values():
            with contextlib.suppress(Exception):
                await within(ws.close(), 2)
        _stop(chat)
        _, err = chat.communicate(timeout=30)
    assert chat.returncode == 0, err
    assert f"worker {killed} exited with -9" in err and "replaces it" in err
