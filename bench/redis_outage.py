"""Failures under traffic with RedisRooms: what is lost, when, and how fast it recovers.

Real processes on loopback: a ``redis-server`` started on a free port, worker
processes each running a :class:`~wsframe.asyncio.redis_rooms.RedisRooms`
(default settings: heartbeat 1 s, presence TTL 5 s, backoff up to 5 s) behind
a tiny WebSocket relay, and WebSocket clients in this process. Senders send a
numbered stream (``--rate`` messages per second each) to room ``r``; receivers
in ``r`` record what arrives. Scenarios:

``redis-restart``
    Two workers, a sender and a receiver on each. Redis is SIGKILLed, stays
    down ``--down`` seconds, and is started again (same port, empty).
``worker-kill``
    Three workers; senders on A and B, a receiver on each worker. B is
    SIGKILLed; its clients fail over to C (as a load balancer would send them).
``chat-leave``
    Two ``python -m wsframe chat --redis`` servers; ann on the first, bob on
    the second, both in ``general``. The first is stopped (SIGTERM, then in a
    second run SIGKILL): how long until bob receives ``presence`` ``leave``.

For each sender/receiver pair the report gives the messages lost, the send
times of the first and last lost message relative to the fault, and the
recovery: when the first message sent after the fault that arrived was sent,
relative to the repair (Redis back) or to the fault (worker killed). "Lost
outside the window" counts losses sent more than ``MARGIN`` before the fault
or after that recovery point: it must be 0, and so must duplicates and order
violations. Pub/sub is at-most-once, so what is sent while Redis is down is
lost by design.

    python bench/redis_outage.py [--scenario all|redis-restart|worker-kill|chat-leave]
                                 [--rate 200] [--down 1.0] [--json PATH]

``tests/chat/test_redis_rooms.py`` runs the same scenarios with assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wsframe.asyncio import ConnectionClosed, WebSocket, connect  # noqa: E402

#: Messages sent this long before the fault may be lost (in flight when it hit).
MARGIN = 0.1
#: Seconds of traffic before the fault.
BEFORE = 1.0
#: Seconds of traffic after the repair (Redis back) or the fault (worker killed).
AFTER = 4.0

#: The relay run by each worker: a command per WebSocket message.
WORKER = r"""
import asyncio, json, sys
from wsframe.asyncio import serve
from wsframe.asyncio.redis_rooms import RedisRooms

async def main():
    rooms = RedisRooms(sys.argv[1], prefix="outage")
    await rooms.start()

    async def handler(ws):
        async for message in ws:
            command, _, arg = message.partition(" ")
            if command == "say":
                rooms.send("r", arg)
            elif command == "join":
                rooms.join("r", ws, arg)
                await ws.send("ok")
            elif command == "who":
                await ws.send("who " + json.dumps(
                    {"who": sorted(rooms.presence("r")), "connected": rooms.connected,
                     "subscribed": rooms.is_subscribed("r")}))

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        print(server.port, flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` on a loopback port (no persistence), stopped or killed by PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1",
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
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` (SIGKILL: a crash) and wait for the process to end."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


class Worker:
    """A relay process (``WORKER``) and its port."""

    def __init__(self, url: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, url], stdout=subprocess.PIPE, env=env
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("worker did not start")
        self.port = int(line)
        self.uri = f"ws://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        """SIGKILL it (no goodbye) and reap it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def processes(redis: RedisServer, count: int) -> Iterator[list[Worker]]:
    """``count`` workers on ``redis``, killed at the end."""
    workers: list[Worker] = []
    try:
        for _ in range(count):
            workers.append(Worker(redis.url))
        yield workers
    finally:
        for worker in workers:
            worker.kill()


async def _connect(uris: list[str], start: int) -> tuple[WebSocket, int]:
    """Connect to the first of ``uris[start:]`` that answers (failover order)."""
    last: Optional[BaseException] = None
    for index in range(start, len(uris)):
        try:
            ws = await asyncio.wait_for(connect(uris[index], compression=None), 5.0)
            return ws, index
        except (OSError, asyncio.TimeoutError) as exc:
            last = exc
    raise ConnectionError(f"no worker answers: {last!r}")


async def _ask(ws: WebSocket, text: str, prefix: str) -> str:
    await ws.send(text)
    while True:
        reply = await asyncio.wait_for(ws.recv(), 5.0)
        if isinstance(reply, str) and reply.startswith(prefix):
            return reply[len(prefix) :].strip()


class Sender:
    """Sends ``tag:seq`` to room ``r`` at ``rate`` per second; fails over on a lost connection."""

    def __init__(self, tag: str, uris: list[str], rate: float) -> None:
        self.tag = tag
        self.uris = uris
        self.rate = rate
        #: seq -> when it was handed to the connection (monotonic)
        self.sent: dict[int, float] = {}
        self.failovers: list[float] = []

    async def run(self, until: float) -> None:
        """Send until the monotonic time ``until``."""
        ws, index = await _connect(self.uris, 0)
        seq = 0
        next_at = time.monotonic()
        try:
            while time.monotonic() < until:
                try:
                    await ws.send(f"say {self.tag}:{seq}")
                    self.sent[seq] = time.monotonic()
                    seq += 1
                except (ConnectionClosed, OSError):
                    seq += 1  # it may have gone out: never reuse its number
                    with contextlib.suppress(Exception):
                        await ws.close()
                    ws, index = await _connect(self.uris, index + 1)
                    self.failovers.append(time.monotonic())
                    continue
                next_at += 1.0 / self.rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)


class Receiver:
    """A member of room ``r`` that records ``(seq, arrival)`` per sender tag."""

    def __init__(self, name: str, uris: list[str]) -> None:
        self.name = name
        self.uris = uris
        self.got: dict[str, list[tuple[int, float]]] = {}
        self.failovers: list[float] = []
        self.ws: Optional[WebSocket] = None
        self.index = 0

    async def join(self) -> None:
        """Connect (with failover) and join ``r``."""
        self.ws, self.index = await _connect(self.uris, self.index)
        await _ask(self.ws, f"join {self.name}", "ok")

    async def run(self, until: float) -> None:
        """Record arrivals until ``until``; on a lost connection, fail over and join again."""
        assert self.ws is not None
        while time.monotonic() < until:
            try:
                message = await asyncio.wait_for(self.ws.recv(), until - time.monotonic())
            except asyncio.TimeoutError:
                break
            except (ConnectionClosed, OSError):
                self.index += 1
                await self.join()
                self.failovers.append(time.monotonic())
                continue
            if not isinstance(message, str) or ":" not in message:
                continue
            tag, _, seq = message.partition(":")
            self.got.setdefault(tag, []).append((int(seq), time.monotonic()))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2.0)


@dataclass
class PairReport:
    """What one receiver got of one sender's stream, around a fault."""

    sender: str
    receiver: str
    sent: int
    lost: int
    #: Lost messages sent before ``fault - MARGIN`` or after ``recovered``.
    lost_outside_window: int
    duplicates: int
    out_of_order: int
    #: Send times of the first and last lost message, relative to the fault (s).
    first_lost: Optional[float]
    last_lost: Optional[float]
    #: Send time of the first message sent after the fault that arrived,
    #: relative to the repair (Redis restart) or the fault (worker killed);
    #: None when nothing was lost.
    recovery: Optional[float]


def analyse(sender: Sender, receiver: Receiver, fault: float, repair: float) -> PairReport:
    """Compare what ``sender`` sent with what ``receiver`` got."""
    got = [seq for seq, _ in receiver.got.get(sender.tag, [])]
    unique = set(got)
    lost = sorted(set(sender.sent) - unique)
    after = [sender.sent[seq] for seq in unique if sender.sent.get(seq, 0.0) > fault]
    recovered = min(after) if after else None
    outside = [
        seq
        for seq in lost
        if sender.sent[seq] < fault - MARGIN
        or (recovered is not None and sender.sent[seq] > recovered)
    ]
    lost_times = [sender.sent[seq] - fault for seq in lost]
    return PairReport(
        sender=sender.tag,
        receiver=receiver.name,
        sent=len(sender.sent),
        lost=len(lost),
        lost_outside_window=len(outside),
        duplicates=len(got) - len(unique),
        out_of_order=sum(1 for a, b in zip(got, got[1:]) if b < a),
        first_lost=round(min(lost_times), 4) if lost_times else None,
        last_lost=round(max(lost_times), 4) if lost_times else None,
        recovery=round(recovered - repair, 4) if recovered is not None and lost else None,
    )


@dataclass
class ScenarioReport:
    """One scenario's pairs and timings."""

    scenario: str
    pairs: list[PairReport] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


async def _settle(receivers: list[Receiver], uris: list[str], timeout: float = 15.0) -> None:
    """Wait until every worker sees every receiver in ``r`` and is subscribed."""
    names = sorted(r.name for r in receivers)
    deadline = time.monotonic() + timeout
    for uri in uris:
        async with connect(uri, compression=None) as ws:
            while True:
                state = json.loads(await _ask(ws, "who", "who"))
                if state["who"] == names and state["connected"] and state["subscribed"]:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{uri}: presence did not settle: {state}")
                await asyncio.sleep(0.05)


async def redis_restart(rate: float = 200.0, down: float = 1.0) -> ScenarioReport:
    """Redis SIGKILLed under traffic, restarted ``down`` seconds later (empty)."""
    redis = RedisServer()
    redis.start()
    try:
        with processes(redis, 2) as (a, b):
            senders = [Sender("a", [a.uri], rate), Sender("b", [b.uri], rate)]
            receivers = [Receiver("ra", [a.uri]), Receiver("rb", [b.uri])]
            for receiver in receivers:
                await receiver.join()
            await _settle(receivers, [a.uri, b.uri])
            start = time.monotonic()
            fault = start + BEFORE
            repair = fault + down
            until = repair + AFTER
            tasks = [asyncio.ensure_future(s.run(until)) for s in senders]
            tasks += [asyncio.ensure_future(r.run(until + 1.0)) for r in receivers]
            await asyncio.sleep(max(0.0, fault - time.monotonic()))
            fault = time.monotonic()
            redis.stop(signal.SIGKILL)
            await asyncio.sleep(max(0.0, fault + down - time.monotonic()))
            redis.start()
            repair = time.monotonic()
            await asyncio.gather(*tasks)
    finally:
        redis.stop()
    report = ScenarioReport("redis-restart", notes={"down_s": round(repair - fault, 3)})
    for sender in senders:
        for receiver in receivers:
            pair = analyse(sender, receiver, fault, repair)
            report.pairs.append(pair)
    return report


async def worker_kill(rate: float = 200.0) -> ScenarioReport:
    """A worker SIGKILLed under traffic; its clients fail over to another worker."""
    redis = RedisServer()
    redis.start()
    try:
        with processes(redis, 3) as (a, b, c):
            senders = [Sender("a", [a.uri], rate), Sender("b", [b.uri, c.uri], rate)]
            receivers = [
                Receiver("ra", [a.uri]),
                Receiver("rb", [b.uri, c.uri]),
                Receiver("rc", [c.uri]),
            ]
            for receiver in receivers:
                await receiver.join()
            await _settle(receivers, [a.uri, b.uri, c.uri])
            fault = time.monotonic() + BEFORE
            until = fault + AFTER
            tasks = [asyncio.ensure_future(s.run(until)) for s in senders]
            tasks += [asyncio.ensure_future(r.run(until + 1.0)) for r in receivers]
            await asyncio.sleep(max(0.0, fault - time.monotonic()))
            fault = time.monotonic()
            b.kill()
            await asyncio.gather(*tasks)
    finally:
        redis.stop()
    report = ScenarioReport("worker-kill")
    report.notes["sender_b_failover_s"] = [round(t - fault, 4) for t in senders[1].failovers]
    report.notes["receiver_rb_failover_s"] = [round(t - fault, 4) for t in receivers[1].failovers]
    for sender in senders:
        for receiver in receivers:
            report.pairs.append(analyse(sender, receiver, fault, fault))
    return report


def _chat(port: int, db: str, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "wsframe", "chat", "--port", str(port), "--db", db,
         "--redis", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )  # fmt: skip


async def chat_client(port: int, nick: str, timeout: float = 20.0) -> WebSocket:
    """A chat client said hello as ``nick`` (waits for the server to listen)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/ws", compression=None)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    await ws.send(json.dumps({"type": "hello", "nick": nick}))
    await chat_expect(ws, lambda m: m["type"] == "welcome")
    return ws


async def chat_expect(ws: WebSocket, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The next chat message for which ``check(message)`` is true, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        message: dict[str, Any] = json.loads(raw)
        if check(message):
            return message


def presence_has(room: str, nick: str, action: str) -> Any:
    """A check for :func:`chat_expect`: a ``presence`` message with that change."""
    change = {"room": room, "nick": nick, "action": action}
    return lambda m: m["type"] == "presence" and change in m["changes"]


async def chat_leave(sig: int, timeout: float = 10.0) -> float:
    """Seconds from stopping ann's chat server with ``sig`` to bob's ``presence`` leave."""
    redis = RedisServer()
    redis.start()
    port_a, port_b = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "chat.sqlite3")
        a = _chat(port_a, db, redis.url)
        b = _chat(port_b, db, redis.url)
        try:
            bob = await chat_client(port_b, "bob")
            await bob.send(json.dumps({"type": "join", "room": "general"}))
            ann = await chat_client(port_a, "ann")
            await ann.send(json.dumps({"type": "join", "room": "general"}))
            await chat_expect(bob, presence_has("general", "ann", "join"))
            started = time.monotonic()
            a.send_signal(sig)
            await chat_expect(bob, presence_has("general", "ann", "leave"), timeout)
            latency = time.monotonic() - started
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ann.close(), 2.0)
            await bob.close()
            return latency
        finally:
            for process in (a, b):
                if process.poll() is None:
                    process.kill()
                process.wait()
            redis.stop()


def _print_pairs(report: ScenarioReport) -> None:
    print(f"\n== {report.scenario}  {report.notes}")
    print(
        f"{'pair':8} {'sent':>6} {'lost':>5} {'outside':>7} {'dup':>4} {'order':>5} "
        f"{'first lost':>10} {'last lost':>9} {'recovery':>8}"
    )
    for p in report.pairs:

        def fmt(value: Optional[float]) -> str:
            return "-" if value is None else f"{value:+.3f}s"

        print(
            f"{p.sender + '->' + p.receiver:8} {p.sent:6d} {p.lost:5d} "
            f"{p.lost_outside_window:7d} {p.duplicates:4d} {p.out_of_order:5d} "
            f"{fmt(p.first_lost):>10} {fmt(p.last_lost):>9} {fmt(p.recovery):>8}"
        )


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    chosen = args.scenario
    if chosen in ("all", "redis-restart"):
        report = await redis_restart(args.rate, args.down)
        _print_pairs(report)
        results["redis-restart"] = asdict(report)
    if chosen in ("all", "worker-kill"):
        report = await worker_kill(args.rate)
        _print_pairs(report)
        results["worker-kill"] = asdict(report)
    if chosen in ("all", "chat-leave"):
        print("\n== chat-leave (presence leave reaching bob on the other server)")
        for name, sig in (("SIGTERM", signal.SIGTERM), ("SIGKILL", signal.SIGKILL)):
            latency = await chat_leave(sig)
            print(f"{name}: {latency:.3f} s")
            results[f"chat-leave-{name}"] = round(latency, 4)
    return results


def main() -> None:
    """Run the chosen scenarios, print the tables, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenario",
        default="all",
        choices=["all", "redis-restart", "worker-kill", "chat-leave"],
    )
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s per sender")
    parser.add_argument("--down", type=float, default=1.0, help="seconds Redis stays down")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = asyncio.run(_main(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
