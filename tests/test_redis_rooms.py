"""RedisRooms: rooms shared by several server processes through a real Redis.

A fixture starts ``redis-server`` on a free loopback port (no persistence)
and stops it by PID. Without ``redis-server`` (or the ``redis`` package) the
tests are skipped with the reason, except under CI (``CI`` set), where they
fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from asyncio_helpers import async_test, free_port, within

from wsframe.asyncio import WebSocket, connect

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

ROOT = Path(__file__).resolve().parent.parent

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


class RedisServer:
    """A ``redis-server`` subprocess on a loopback port, stopped by PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


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
        for ws in clients:
            await ws.close()
    finally:
        _stop(chat)
        out, _ = chat.communicate(timeout=30)
        assert out.count("listening on") == 2
        assert chat.returncode == 0
