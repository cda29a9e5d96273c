"""Bounded loopback soak: many concurrent connections for minutes, verified.

    python bench/soak.py                  # 10,000 connections, 180 s of traffic
    python bench/soak.py --quick          # 1,000 connections, 20 s of traffic
    python bench/soak.py --connections 2000 --duration 60 --clients 2 --json out.json
    python bench/soak.py --quick --compression-share 0      # plain connections only

Three kinds of process: this one (the coordinator: it only sets the phase and
reads the server's RSS and CPU time from /proc), one echo server
(``wsframe.asyncio.serve`` with its defaults, uvloop if installed) and
``--clients`` client processes that share ``--connections`` connections, a
``--compression-share`` of them negotiating permessage-deflate.

The run goes through phases, each bounded in time:

1. open the plain connections, wait ``--settle`` s: idle RSS of a plain connection;
2. open the compressed ones, wait again: idle RSS of a compressed connection;
3. echo traffic on the plain connections only (a third of ``--duration``):
   RSS of a plain connection under traffic;
4. traffic on every connection (the rest of ``--duration``): RSS of a
   compressed connection under traffic, and the steady window in which the
   server's CPU time (utime + stime) and the clients' echo round trips
   (p50/p99/p999) are measured;
5. drain, then quiet (connections open, no traffic, ``--settle`` s): RSS after
   traffic; then every connection closes.

Under traffic every connection sends bursts of numbered messages (text and
binary, 0-1000 bytes of padding) and checks that each echo comes back with
exactly the bytes sent, in order; now and then it closes and a new one takes
its place (``--churn``). A ``--room-share`` of the connections join a room to
which the server broadcasts (``wsframe.asyncio.broadcast``) numbered messages
at ``--broadcast-rate`` per second; members check every one's bytes and that
none is missing (the last one included), duplicated or out of order.

Exit status 1 if a message was lost, reordered or corrupted, the server closed
a connection, a phase timed out, or nothing was echoed.

RLIMIT_NOFILE is raised to its hard limit (it must allow the connections).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import queue as queue_module
import random
import resource
import sys
import time
import zlib
from typing import Any, Optional

try:
    import uvloop
except ImportError:  # pragma: no cover - optional
    uvloop = None

import wsframe
from wsframe.asyncio import Rooms, broadcast, connect, serve
from wsframe.asyncio.connection import ConnectionClosed

# Phases, set by the coordinator in shared[PHASE]; clients and the server poll it.
WAIT, OPEN_PLAIN, OPEN_COMP, TRAFFIC_PLAIN, TRAFFIC_ALL, DRAIN, QUIET, CLOSE, EXIT = range(9)

# Slots of the shared array (64-bit integers, each written by one process only).
PHASE = 0
CONN_PLAIN = 1  # server: open connections without compression
CONN_COMP = 2  # server: open connections with permessage-deflate
ECHOED = 3  # server: messages echoed
B_SEQ = 4  # server: number of the last broadcast message
B_DELIVERED = 5  # server: broadcast frames written
B_SLOW = 6  # server: members skipped by broadcast (too slow)
ROOM_SIZE = 7  # server: members of the room
SHARED_SLOTS = 8

ROOM = "soak"
JOIN = "J"  # the first message of a room member


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def run(main: Any) -> Any:
    if uvloop is not None:
        return uvloop.run(main) if hasattr(uvloop, "run") else _uvloop_run(main)
    return asyncio.run(main)


def _uvloop_run(main: Any) -> Any:  # uvloop < 0.18
    uvloop.install()
    return asyncio.run(main)


def broadcast_message(seq: int, size: int) -> str:
    """The broadcast message number ``seq``: both sides compute the exact text."""
    head = f"B:{seq}:"
    fill = f"{zlib.crc32(head.encode()):08x}"
    return head + (fill * (size // 8 + 1))[: max(size - len(head), 0)]


# ------------------------------------------------------------------ server


def server_process(args: argparse.Namespace, shared: Any, ready: Any) -> None:
    raise_nofile(args.connections + 2048)
    run(server_main(args, shared, ready))


async def server_main(args: argparse.Namespace, shared: Any, ready: Any) -> None:
    rooms = Rooms()
    echoed = 0

    async def handler(ws: Any) -> None:
        nonlocal echoed
        slot = CONN_COMP if ws.conn.deflate is not None else CONN_PLAIN
        shared[slot] += 1
        try:
            async for message in ws:
                if message == JOIN:
                    rooms.join(ROOM, ws)
                    continue
                await ws.send(message)
                echoed += 1
        finally:
            shared[slot] -= 1

    deflate_options: dict[str, Any] = {}
    if args.server_memlevel is not None:
        deflate_options["memory_level"] = args.server_memlevel
    if args.server_window_bits is not None:
        deflate_options["server_max_window_bits"] = args.server_window_bits
    if args.server_no_context_takeover:
        deflate_options["server_no_context_takeover"] = True
    if args.client_no_context_takeover:
        deflate_options["client_no_context_takeover"] = True
    server = await serve(
        handler,
        "127.0.0.1",
        0,
        backlog=4096,
        max_connections=args.connections + 1000,
        deflate_options=deflate_options,
    )
    ready.put(server.port)
    seq = delivered = slow = 0
    period = 1 / args.broadcast_rate if args.broadcast_rate > 0 else None
    next_broadcast = next_room_count = time.monotonic()
    while shared[PHASE] < EXIT:
        now = time.monotonic()
        phase = shared[PHASE]
        if period is not None and phase in (TRAFFIC_PLAIN, TRAFFIC_ALL) and now >= next_broadcast:
            seq += 1
            result = broadcast(rooms.members(ROOM), broadcast_message(seq, args.broadcast_size))
            delivered += result.sent
            slow += len(result.slow)
            next_broadcast = max(next_broadcast + period, now - period)
        shared[ECHOED] = echoed
        shared[B_SEQ] = seq
        shared[B_DELIVERED] = delivered
        shared[B_SLOW] = slow
        if phase < CLOSE and now >= next_room_count:
            shared[ROOM_SIZE] = len(rooms.members(ROOM))
            next_room_count = now + 1
        await asyncio.sleep(min(0.05, period or 0.05))
    await server.close()


# ------------------------------------------------------------------ clients


class Stats:
    def __init__(self) -> None:
        self.sent = self.echoed = self.bytes = 0
        self.lost = self.reordered = self.corrupt = 0
        self.broadcast_received = self.broadcast_lost = 0
        self.broadcast_reordered = self.broadcast_corrupt = 0
        self.broadcast_tail_checked = 0
        self.dropped = 0  # closed by the server while we were well-behaved
        self.connect_failures = 0
        self.connections_opened = 0
        self.reconnects = 0
        self.open = 0
        self.peak_open = 0


class Dropped(Exception):
    """The connection ended (the server closed it) while it was waiting."""


class Peer:
    """What one client connection expects next."""

    __slots__ = ("cid", "last_broadcast", "pending", "waiter")

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.pending: collections.deque[tuple[Any, float]] = collections.deque()
        self.waiter: Optional[asyncio.Future[None]] = None
        self.last_broadcast: Optional[int] = None


def _owner(message: Any) -> str:
    text = message if isinstance(message, str) else bytes(message).decode(errors="replace")
    return text.split(":", 1)[0]


async def client_main(
    index: int, plan: list[tuple[bool, bool]], port: int, args: argparse.Namespace, shared: Any
) -> dict[str, Any]:
    """Run this process's connections; ``plan`` is (compressed, room member) per slot."""
    stats = Stats()
    latencies = array.array("d")
    rng = random.Random(index)
    uri = f"ws://127.0.0.1:{port}/"
    gate = asyncio.Semaphore(100)  # handshakes in flight: a ramp, not a SYN flood
    reached = [asyncio.Event() for _ in range(EXIT + 1)]
    serial = 0

    async def follow_phase() -> None:
        while True:
            phase = shared[PHASE]
            for p in range(phase + 1):
                reached[p].set()
            if phase >= EXIT:
                return
            await asyncio.sleep(0.05)

    async def read(ws: Any, peer: Peer) -> None:
        async for message in ws:
            now = time.monotonic()
            if isinstance(message, str) and message.startswith("B:"):
                stats.broadcast_received += 1
                try:
                    seq = int(message.split(":", 2)[1])
                except ValueError:
                    stats.broadcast_corrupt += 1
                    continue
                if message != broadcast_message(seq, args.broadcast_size):
                    stats.broadcast_corrupt += 1
                    continue
                last = peer.last_broadcast
                if last is not None:
                    if seq <= last:
                        stats.broadcast_reordered += 1
                        continue
                    stats.broadcast_lost += seq - last - 1
                peer.last_broadcast = seq
                continue
            stats.echoed += 1
            stats.bytes += len(message)
            if not peer.pending:
                # An echo nobody sent: someone else's, or garbage.
                stats.corrupt += 1
                continue
            want, sent_at = peer.pending.popleft()
            if message == want:
                if shared[PHASE] == TRAFFIC_ALL:
                    latencies.append(now - sent_at)
            elif _owner(message) == peer.cid:
                stats.reordered += 1
            else:
                stats.corrupt += 1
            if not peer.pending and peer.waiter is not None and not peer.waiter.done():
                peer.waiter.set_result(None)

    async def until(awaited: Any, reader: asyncio.Task[None], timeout: float) -> bool:
        """Wait for ``awaited``; False if the connection ended first or time ran out."""
        waiter = asyncio.ensure_future(awaited)
        done, _ = await asyncio.wait(
            {waiter, reader}, timeout=timeout, return_when="FIRST_COMPLETED"
        )
        if waiter not in done:
            waiter.cancel()
            return False
        return True

    async def one_connection(cid: str, compressed: bool, member: bool) -> bool:
        """One connection's life; True to open another in its place (a churn)."""
        try:
            async with gate:
                ws = await connect(
                    uri,
                    proxy=None,
                    open_timeout=60,
                    compression="deflate" if compressed else None,
                )
        except Exception:
            stats.connect_failures += 1
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            return True
        stats.connections_opened += 1
        stats.open += 1
        stats.peak_open = max(stats.peak_open, stats.open)
        peer = Peer(cid)
        reader = asyncio.ensure_future(read(ws, peer))
        seq = 0
        try:
            traffic = reached[TRAFFIC_ALL if compressed else TRAFFIC_PLAIN]
            if not await until(traffic.wait(), reader, args.deadline):
                raise Dropped
            if member:
                await ws.send(JOIN)
            # Spread the first bursts so the load is smooth.
            await asyncio.sleep(rng.uniform(0, 2 / args.rate))
            while not reached[DRAIN].is_set():
                burst = rng.randint(1, 3)
                loop_time = time.monotonic
                for _ in range(burst):
                    body = f"{cid}:{seq}:" + "x" * rng.choice((0, 10, 100, 1000))
                    message: Any = body if seq % 2 else body.encode()
                    peer.pending.append((message, loop_time()))
                    await ws.send(message)
                    seq += 1
                stats.sent += burst
                peer.waiter = asyncio.get_running_loop().create_future()
                if peer.pending and not await until(peer.waiter, reader, args.echo_timeout):
                    if reader.done():
                        raise Dropped
                    stats.lost += len(peer.pending)
                    peer.pending.clear()
                    return True
                if rng.random() < args.churn:
                    stats.reconnects += 1
                    return True
                pause = rng.expovariate(args.rate) if args.rate else 0
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(reached[DRAIN].wait(), pause)
            # Keep reading (broadcasts) through the drain and the quiet phase.
            if not await until(reached[CLOSE].wait(), reader, args.deadline):
                raise Dropped
            if member and peer.last_broadcast is not None:
                stats.broadcast_tail_checked += 1
                stats.broadcast_lost += max(shared[B_SEQ] - peer.last_broadcast, 0)
            return False
        except (ConnectionClosed, Dropped):
            if not reached[CLOSE].is_set():
                stats.dropped += 1
            return not reached[DRAIN].is_set()
        finally:
            stats.open -= 1
            stats.lost += len(peer.pending)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def slot(slot_id: int, compressed: bool, member: bool) -> None:
        nonlocal serial
        await reached[OPEN_COMP if compressed else OPEN_PLAIN].wait()
        while not reached[DRAIN].is_set():
            serial += 1
            again = await one_connection(f"{index}.{slot_id}.{serial}", compressed, member)
            if not again:
                break

    follower = asyncio.ensure_future(follow_phase())
    try:
        await asyncio.wait_for(
            asyncio.gather(*(slot(i, c, m) for i, (c, m) in enumerate(plan))), args.deadline
        )
    except asyncio.TimeoutError:
        stats.dropped += stats.open  # still open at the deadline: counted as failures
    follower.cancel()
    out: dict[str, Any] = dict(vars(stats))
    out["latencies"] = latencies.tobytes()
    return out


def client_process(
    index: int,
    plan: list[tuple[bool, bool]],
    port: int,
    args: argparse.Namespace,
    shared: Any,
    queue: Any,
) -> None:
    raise_nofile(len(plan) + 1024)
    try:
        queue.put(run(client_main(index, plan, port, args, shared)))
    except BaseException as exc:
        queue.put({"error": f"client {index}: {exc!r}"})
        raise


# -------------------------------------------------------------- coordinator


PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def proc_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(values: list[float], fraction: float) -> Optional[float]:
    if not values:
        return None
    return values[min(int(fraction * len(values)), len(values) - 1)]


class Coordinator:
    def __init__(self, args: argparse.Namespace, shared: Any, server_pid: int) -> None:
        self.args = args
        self.shared = shared
        self.pid = server_pid
        self.peak = 0
        self.min_steady: Optional[int] = None
        self.failures: list[str] = []

    def connections(self) -> int:
        return int(self.shared[CONN_PLAIN] + self.shared[CONN_COMP])

    def sample(self) -> int:
        n = self.connections()
        self.peak = max(self.peak, n)
        return n

    def set_phase(self, phase: int) -> None:
        self.shared[PHASE] = phase

    def sleep(self, seconds: float, steady: bool = False) -> None:
        end = time.monotonic() + seconds
        while True:
            n = self.sample()
            if steady:
                self.min_steady = n if self.min_steady is None else min(self.min_steady, n)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.25, left))

    def wait_open(self, slot: int, target: int, what: str) -> None:
        end = time.monotonic() + self.args.ramp_timeout
        while self.shared[slot] < target:
            self.sample()
            if time.monotonic() > end:
                self.failures.append(
                    f"only {self.shared[slot]} of {target} {what} connections opened"
                )
                return
            time.sleep(0.1)

    def settled_rss(self) -> int:
        """RSS after ``--settle`` seconds (the lowest of the last samples: no transient)."""
        samples = []
        end = time.monotonic() + self.args.settle
        while time.monotonic() < end:
            self.sample()
            samples.append(proc_rss(self.pid))
            time.sleep(0.25)
        return min(samples[-4:]) if samples else proc_rss(self.pid)


def coordinate(args: argparse.Namespace) -> int:
    ctx = multiprocessing.get_context("fork")
    shared = ctx.RawArray("q", SHARED_SLOTS)
    ready = ctx.Queue()
    server = ctx.Process(target=server_process, args=(args, shared, ready), daemon=True)
    server.start()
    port = ready.get(timeout=60)
    time.sleep(1)
    assert server.pid is not None
    base_rss = proc_rss(server.pid)
    c = Coordinator(args, shared, server.pid)

    rng = random.Random(1)
    n_comp = round(args.connections * args.compression_share)
    n_plain = args.connections - n_comp
    kinds = [True] * n_comp + [False] * n_plain
    rng.shuffle(kinds)
    plan = [(compressed, rng.random() < args.room_share) for compressed in kinds]
    plans = [plan[i :: args.clients] for i in range(args.clients)]
    results_queue = ctx.Queue()
    clients = [
        ctx.Process(
            target=client_process, args=(i, p, port, args, shared, results_queue), daemon=True
        )
        for i, p in enumerate(plans)
    ]
    for proc in clients:
        proc.start()
    started = time.monotonic()
    report: dict[str, Any] = {
        "implementation": wsframe.implementation,
        "loop": "uvloop" if uvloop is not None else "asyncio",
        "connections_target": args.connections,
        "plain_connections": n_plain,
        "compressed_connections": n_comp,
        "room_members": sum(m for _, m in plan),
    }
    kib = 1024

    def per(delta: int, n: int) -> Optional[float]:
        return round(delta / n / kib, 2) if n else None

    # 1-2. Idle: plain connections, then compressed ones.
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.verbose else (lambda *a: None)
    c.set_phase(OPEN_PLAIN)
    c.wait_open(CONN_PLAIN, n_plain, "plain")
    rss_idle_plain = c.settled_rss() if n_plain else base_rss
    log("idle plain", rss_idle_plain, time.monotonic() - started)
    c.set_phase(OPEN_COMP)
    c.wait_open(CONN_COMP, n_comp, "compressed")
    rss_idle = c.settled_rss() if n_comp else rss_idle_plain
    report["ramp_and_idle_s"] = round(time.monotonic() - started, 1)
    log("idle all", rss_idle, time.monotonic() - started)

    # 3. Traffic on the plain connections only.
    t_plain = args.duration / 3 if n_plain and n_comp else 0.0
    t_all = args.duration - t_plain
    rss_traffic_plain = rss_idle
    if t_plain:
        c.set_phase(TRAFFIC_PLAIN)
        c.sleep(t_plain)
        rss_traffic_plain = proc_rss(server.pid)
        log("traffic plain", rss_traffic_plain, time.monotonic() - started)

    # 4. Traffic everywhere: the steady window.
    c.set_phase(TRAFFIC_ALL)
    c.sleep(min(2.0, t_all / 4))  # members of the room join
    cpu0, echoed0, delivered0, t0 = (
        proc_cpu(server.pid),
        shared[ECHOED],
        shared[B_DELIVERED],
        time.monotonic(),
    )
    c.sleep(t_all - min(2.0, t_all / 4), steady=True)
    cpu1, echoed1, delivered1, t1 = (
        proc_cpu(server.pid),
        shared[ECHOED],
        shared[B_DELIVERED],
        time.monotonic(),
    )
    rss_traffic = proc_rss(server.pid)
    held_end_of_traffic = c.connections()
    room_size = int(shared[ROOM_SIZE])
    log("traffic all", rss_traffic, time.monotonic() - started)

    # 5. Drain, quiet, close.
    c.set_phase(DRAIN)
    c.sleep(args.drain)
    c.set_phase(QUIET)
    rss_quiet = c.settled_rss()
    held_at_end = c.connections()
    c.set_phase(CLOSE)
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while len(results) < len(clients) and time.monotonic() < deadline:
        try:
            results.append(results_queue.get(timeout=1))
        except queue_module.Empty:
            if not any(proc.is_alive() for proc in clients):
                break
    if len(results) < len(clients):
        c.failures.append(f"{len(clients) - len(results)} client process(es) did not report")
    c.set_phase(EXIT)
    for proc in clients:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
    server.join(30)
    if server.is_alive():
        server.terminate()
        c.failures.append("the server did not stop")

    total: dict[str, Any] = collections.Counter()
    lat: list[float] = []
    for result in results:
        if "error" in result:
            c.failures.append(result["error"])
            continue
        samples = array.array("d")
        samples.frombytes(result.pop("latencies"))
        lat.extend(samples)
        total.update(result)
    lat.sort()
    window = t1 - t0
    cpu = cpu1 - cpu0
    messages = (echoed1 - echoed0) + (delivered1 - delivered0)
    report.update(
        {
            "connections_peak": c.peak,
            "connections_min_steady": c.min_steady,
            "connections_end_of_traffic": held_end_of_traffic,
            "connections_at_end": held_at_end,
            "connections_opened": total["connections_opened"],
            "reconnects": total["reconnects"],
            "connect_failures": total["connect_failures"],
            "dropped_by_server": total["dropped"],
            "messages_sent": total["sent"],
            "messages_echoed": total["echoed"],
            "mb_echoed": round(total["bytes"] / 1e6, 1),
            "lost": total["lost"],
            "reordered": total["reordered"],
            "corrupt": total["corrupt"],
            "broadcast_sent": int(shared[B_SEQ]),
            "broadcast_room_size": room_size,
            "broadcast_delivered": int(shared[B_DELIVERED]),
            "broadcast_received": total["broadcast_received"],
            "broadcast_skipped_slow": int(shared[B_SLOW]),
            "broadcast_tails_checked": total["broadcast_tail_checked"],
            "broadcast_lost": total["broadcast_lost"],
            "broadcast_reordered": total["broadcast_reordered"],
            "broadcast_corrupt": total["broadcast_corrupt"],
            "steady_window_s": round(window, 1),
            "steady_messages_per_s": round(messages / window) if window > 0 else None,
            "server_cpu_s": round(cpu, 2),
            "server_cpu_percent": round(100 * cpu / window, 1) if window > 0 else None,
            "server_cpu_us_per_message": round(1e6 * cpu / messages, 1) if messages else None,
            "latency_samples": len(lat),
            "latency_p50_ms": _ms(percentile(lat, 0.50)),
            "latency_p99_ms": _ms(percentile(lat, 0.99)),
            "latency_p999_ms": _ms(percentile(lat, 0.999)),
            "latency_max_ms": _ms(lat[-1] if lat else None),
            "server_rss_base_mib": round(base_rss / kib / kib, 1),
            "server_rss_idle_mib": round(rss_idle / kib / kib, 1),
            "server_rss_traffic_mib": round(rss_traffic / kib / kib, 1),
            "server_rss_quiet_mib": round(rss_quiet / kib / kib, 1),
            "kib_per_conn_idle": per(rss_idle - base_rss, args.connections),
            "kib_per_conn_idle_plain": per(rss_idle_plain - base_rss, n_plain),
            "kib_per_conn_idle_compressed": per(rss_idle - rss_idle_plain, n_comp),
            "kib_per_conn_traffic": per(rss_traffic - base_rss, args.connections),
            "kib_per_conn_traffic_plain": (
                per(rss_idle_plain - base_rss + rss_traffic_plain - rss_idle, n_plain)
                if t_plain or not n_comp
                else None
            ),
            "kib_per_conn_traffic_compressed": (
                per(rss_idle - rss_idle_plain + rss_traffic - rss_traffic_plain, n_comp)
                if t_plain or not n_plain
                else None
            ),
            "kib_per_conn_quiet": per(rss_quiet - base_rss, args.connections),
            "elapsed_s": round(time.monotonic() - started, 1),
        }
    )
    # With one kind of connection only, its figures are the overall ones.
    if not n_plain:
        report["kib_per_conn_traffic_compressed"] = report["kib_per_conn_traffic"]
    if not n_comp:
        report["kib_per_conn_traffic_plain"] = report["kib_per_conn_traffic"]
    for key, value in report.items():
        print(f"{key:34} {value}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    bad = {
        key: report[key]
        for key in (
            "lost",
            "reordered",
            "corrupt",
            "dropped_by_server",
            "broadcast_lost",
            "broadcast_reordered",
            "broadcast_corrupt",
        )
        if report[key]
    }
    if not report["messages_echoed"]:
        c.failures.append("nothing was echoed")
    if args.room_share > 0 and args.broadcast_rate > 0 and not report["broadcast_received"]:
        c.failures.append("no broadcast was received")
    if bad:
        c.failures.append(", ".join(f"{key} {value}" for key, value in bad.items()))
    if c.failures:
        print("FAILED: " + "; ".join(c.failures))
        return 1
    print("OK")
    return 0


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else round(seconds * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, help="10,000 (1,000 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds of traffic: 180 (20 with --quick)")
    parser.add_argument("--quick", action="store_true", help="1,000 connections, 20 s")
    parser.add_argument("--clients", type=int, default=2, help="client processes (2-4)")
    parser.add_argument("--rate", type=float, default=0.5, help="bursts per second per connection")
    parser.add_argument(
        "--churn", type=float, default=0.02, help="chance to reconnect after a burst"
    )
    parser.add_argument(
        "--compression-share",
        type=float,
        default=0.2,
        help="fraction of the connections that negotiate permessage-deflate [0.2]",
    )
    parser.add_argument(
        "--room-share", type=float, default=0.1, help="fraction that join the broadcast room"
    )
    parser.add_argument(
        "--broadcast-rate", type=float, default=2.0, help="broadcasts per second to the room"
    )
    parser.add_argument("--broadcast-size", type=int, default=200, help="bytes per broadcast")
    parser.add_argument(
        "--server-memlevel", type=int, help="zlib memLevel of the server's compressors (1-9)"
    )
    parser.add_argument(
        "--server-window-bits", type=int, help="the server's server_max_window_bits (9-15)"
    )
    parser.add_argument(
        "--server-no-context-takeover",
        action="store_true",
        help="the server drops its compressor after every message",
    )
    parser.add_argument(
        "--client-no-context-takeover",
        action="store_true",
        help="the server asks clients for it and drops its decompressor after every message",
    )
    parser.add_argument(
        "--settle", type=float, help="seconds before an idle RSS reading: 10 (5 with --quick)"
    )
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to drain the traffic")
    parser.add_argument(
        "--ramp-timeout", type=float, help="seconds to open the connections of a kind"
    )
    parser.add_argument("--echo-timeout", type=float, default=30.0, help="an echo later is lost")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("-v", "--verbose", action="store_true", help="phases on stderr")
    args = parser.parse_args()
    if args.connections is None:
        args.connections = 1000 if args.quick else 10_000
    if args.duration is None:
        args.duration = 20.0 if args.quick else 180.0
    if args.settle is None:
        args.settle = 5.0 if args.quick else 10.0
    if args.ramp_timeout is None:
        args.ramp_timeout = 30 + args.connections / 50
    # A client gives up on its own after every phase could have ended.
    args.deadline = 2 * args.ramp_timeout + 3 * args.settle + args.duration + args.drain + 60
    if not 0 <= args.compression_share <= 1 or not 0 <= args.room_share <= 1:
        parser.error("shares are fractions from 0 to 1")
    args.clients = max(1, min(args.clients, args.connections))
    raise_nofile(args.connections + 2048)
    sys.exit(coordinate(args))


if __name__ == "__main__":
    main()
