"""Load test of ``python -m wsframe chat`` on loopback.

1000 simulated users (wsframe's client, in two worker processes) join 10
rooms and each sends one message per second for 30 s (``--quick``: 5 s).
Reports the messages delivered per second, the delivery latency (sender's
timestamp in the message to the receiver's clock; same machine, so the same
clock), the server's memory, the CPU of every process and the time each
spent waiting for a CPU (other load on the machine), and checks that nothing
was lost: every member of a room must receive every message sent to that
room, exactly once and in order per sender. Server and clients run on uvloop
when it is installed (``CHAT_LOAD_NO_UVLOOP=1`` for the clients: asyncio).

    python bench/chat_load.py [--quick] [--clients 1000] [--rooms 10] [--json PATH]
                              [--profile DIR]   # py-spy profiles of every process

Exit status 0 when no message was lost. The server runs with its history in
a SQLite file in a temporary directory (the real write path).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard limit; return it."""
    if resource is None:
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# --------------------------------------------------------------------- worker


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop if it is installed (its socket reads cost a third of asyncio's)."""
    if os.environ.get("CHAT_LOAD_NO_UVLOOP") != "1":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


async def worker_main(args: argparse.Namespace) -> None:
    """Connect ``args.clients`` users, then send and verify their messages."""
    from wsframe.asyncio import Listener, WebSocket, connect

    loop = asyncio.get_running_loop()
    uri = f"ws://127.0.0.1:{args.port}/ws"
    first = args.worker * args.clients
    ids = [f"u{first + i}" for i in range(args.clients)]
    room_of = {cid: f"room{(first + i) % args.rooms}" for i, cid in enumerate(ids)}
    # nexts[receiver][sender]: the next sequence number expected from sender.
    nexts: dict[str, dict[str, int]] = {cid: {} for cid in ids}
    latency_hist: collections.Counter[int] = collections.Counter()  # in 0.1 ms buckets
    # [messages out of order or repeated, first example]
    wrong: list[Any] = [0, None]
    last_rx = [time.monotonic()]
    time_ns = time.time_ns

    class Client(Listener):
        __slots__ = ("cid", "expect", "nexts", "waiter")

        def __init__(self, cid: str) -> None:
            self.cid = cid
            self.nexts = nexts[cid]
            self.waiter: Optional[asyncio.Future[dict[str, Any]]] = None
            self.expect = ""

        def on_message(self, ws: WebSocket, message: Any) -> None:
            # The hot path (100,000 calls/s in all): no JSON parse. The
            # server's message ends with "text":"SENDER SEQ STAMP","ts":N}
            # and the text is ASCII, written by this program.
            if message.startswith('{"type":"message"'):
                now = time_ns()
                start = message.rindex('"text":"') + 8
                sender, seq, stamp = message[start : message.index('"', start)].split()
                latency_hist[(now - int(stamp)) // 100_000] += 1
                nexts = self.nexts
                expected = nexts.get(sender, 0)
                if int(seq) != expected:
                    wrong[0] += 1
                    wrong[1] = wrong[1] or f"{self.cid} got {sender} #{seq}, expected #{expected}"
                nexts[sender] = int(seq) + 1
                last_rx[0] = now
                return
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                data = json.loads(message)
                if data["type"] in (self.expect, "error"):
                    waiter.set_result(data)
            elif message.startswith('{"type":"error"'):
                wrong[0] += 1
                wrong[1] = wrong[1] or f"{self.cid}: {message}"

        def on_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
            if not closing:
                closed.append(f"{self.cid}: closed by the server with {code} {reason}")

        async def ask(self, ws: WebSocket, expect: str, **command: Any) -> dict[str, Any]:
            self.expect = expect
            self.waiter = loop.create_future()
            ws.send_nowait(json.dumps(command))
            answer = await asyncio.wait_for(self.waiter, 30)
            self.waiter = None
            if answer["type"] == "error":
                raise RuntimeError(f"{self.cid}: {answer}")
            return answer

    sockets: dict[str, WebSocket] = {}
    closed: list[str] = []
    closing = False
    gate = asyncio.Semaphore(50)

    async def open_one(cid: str) -> None:
        async with gate:
            listener = Client(cid)
            ws = await connect(
                uri, listener=listener, compression=None, ping_interval=None, open_timeout=30
            )
            await listener.ask(ws, "welcome", type="hello", nick=cid)
            await listener.ask(ws, "joined", type="join", room=room_of[cid])
            sockets[cid] = ws

    await asyncio.gather(*(open_one(cid) for cid in ids))
    print("ready", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    start = float(line.split()[1])
    rounds = round(args.duration)

    # One sender task per worker, not a task per user: every user has a fixed
    # offset in the second, and sends at start + k + offset for k in
    # range(rounds) -- one message per second each, spread evenly. A late
    # sender sends what is due at once (it does not skip messages) and the
    # lateness is reported: it tells whether the load generator kept up.
    rng = random.Random(args.worker)
    schedule = sorted((rng.random(), cid) for cid in ids)
    frames = [
        (offset, sockets[cid], f'{{"type":"message","room":"{room_of[cid]}","text":"{cid} ')
        for offset, cid in schedule
    ]
    late_max = 0.0
    for k in range(rounds):
        base = start + k
        for offset, ws, head in frames:
            delay = base + offset - time.time()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            elif -delay > late_max:
                late_max = -delay
            ws.send_nowait(f'{head}{k} {time_ns()}"}}')
    sent = dict.fromkeys(ids, rounds)
    # Drain: stop once nothing arrived for 2 s (at most 60 s).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and time_ns() - last_rx[0] < 2_000_000_000:
        await asyncio.sleep(0.2)
    result = {
        "sent": sent,
        "room_of": room_of,
        "recv": nexts,
        "wrong": wrong[0],
        "wrong_example": wrong[1],
        "closed": closed[:5],
        "closed_count": len(closed),
        "send_late_max_ms": round(late_max * 1000, 1),
        "latency_hist": {str(k): v for k, v in latency_hist.items()},
    }
    # A file, not stdout: the result is large, and py-spy (--profile) shares stdout.
    Path(args.result).write_text(json.dumps(result))
    print("done", flush=True)
    closing = True
    await asyncio.gather(*(ws.close() for ws in sockets.values()), return_exceptions=True)


# ----------------------------------------------------------------------- main


def server_process(pid: int) -> int:
    """The Python process started as ``pid``: itself, or py-spy's child (``--profile``)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
        with open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
    except OSError:
        return pid
    return int(children[0]) if name == "py-spy" and children else pid


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (Linux), and its CPU seconds (x100)."""
    info: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    info[key] = int(value.split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            info["cpu_ticks"] = int(fields[11]) + int(fields[12])
        with open(f"/proc/{pid}/schedstat") as f:
            # Nanoseconds spent runnable but waiting for a CPU (other processes).
            info["wait_ns"] = int(f.read().split()[1])
    except OSError:
        pass
    return info


def percentile(hist: dict[int, int], fraction: float) -> float:
    """The ``fraction`` percentile of a histogram in 0.1 ms buckets, in ms."""
    total = sum(hist.values())
    rank = fraction * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return (bucket + 1) / 10
    return float("nan")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="send for 5 s instead of 30")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument(
        "--workers", type=int, default=2, help="client processes (default 2: one per core here)"
    )
    parser.add_argument("--duration", type=int, help="seconds of sending (default 30)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run the server and the workers under py-spy; write DIR/{server,worker*}.txt",
    )
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 5 if args.quick else 30
    raise_fd_limit()
    if args.worker is not None:
        loop = new_event_loop()
        try:
            loop.run_until_complete(worker_main(args))
        finally:
            loop.close()
        return 0

    per_worker = args.clients // args.workers
    clients = per_worker * args.workers

    def spied(name: str, command: list[str]) -> list[str]:
        if not args.profile:
            return command
        os.makedirs(args.profile, exist_ok=True)
        out = os.path.join(args.profile, f"{name}.txt")
        return ["py-spy", "record", "-r", "200", "-f", "raw", "-o", out, "--", *command]

    def read_line(proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if not line or (line.strip() and not line.startswith("py-spy>")):
                return line

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            spied("server", [sys.executable, "-m", "wsframe", "chat", "--port", str(args.port),
                             "--db", os.path.join(tmp, "load.sqlite3")]),
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        workers: list[subprocess.Popen[str]] = []
        try:
            line = ""
            while not line.startswith("listening on"):
                line = read_line(server)
                if not line:
                    raise SystemExit("the chat server did not start")
            port = int(line.rsplit(":", 1)[1])
            server_pid = server_process(server.pid)
            idle = proc_status(server_pid)
            t0 = time.monotonic()
            for k in range(args.workers):
                command = [sys.executable, __file__, "--worker", str(k), "--port", str(port),
                           "--clients", str(per_worker), "--rooms", str(args.rooms),
                           "--duration", str(args.duration),
                           "--result", os.path.join(tmp, f"worker{k}.json")]  # fmt: skip
                pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
                workers.append(
                    subprocess.Popen(spied(f"worker{k}", command), text=True, env=env, **pipes)
                )
            for w in workers:
                if read_line(w).strip() != "ready":
                    raise SystemExit("a worker failed to connect its clients")
            setup = time.monotonic() - t0
            worker_pids = [server_process(w.pid) for w in workers]
            connected = proc_status(server_pid)
            start = time.time() + 0.5
            for w in workers:
                assert w.stdin is not None
                w.stdin.write(f"go {start}\n")
                w.stdin.flush()
            time.sleep(0.5)
            pids = [server_pid, *worker_pids]
            cpu_start = [proc_status(pid) for pid in pids]
            peak_rss = 0
            while time.time() < start + args.duration:
                peak_rss = max(peak_rss, proc_status(server_pid).get("VmRSS", 0))
                time.sleep(0.25)
            cpu_end = [proc_status(pid) for pid in pids]
            final = proc_status(server_pid)
            results = []
            for k, w in enumerate(workers):
                w.communicate(timeout=120)
                try:
                    results.append(json.loads(Path(tmp, f"worker{k}.json").read_text()))
                except OSError:
                    raise SystemExit(f"worker {k} gave no result (status {w.returncode})") from None
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                    w.wait(10)
            # SIGINT: the chat server exits cleanly; py-spy (--profile) writes its profile.
            server.send_signal(signal.SIGINT)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)

    sent: dict[str, int] = {}
    room_of: dict[str, str] = {}
    recv: dict[str, dict[str, int]] = {}
    hist: collections.Counter[int] = collections.Counter()
    for r in results:
        sent.update(r["sent"])
        room_of.update(r["room_of"])
        recv.update(r["recv"])
        hist.update({int(k): v for k, v in r["latency_hist"].items()})
    members: dict[str, list[str]] = collections.defaultdict(list)
    for cid, room in room_of.items():
        members[room].append(cid)
    # Every member of a room must have received every message of that room:
    # in order per sender (checked as they arrived), so the next sequence
    # number expected from each sender is the number of messages it sent.
    expected = lost = 0
    for cids in members.values():
        for receiver in cids:
            got = recv[receiver]
            for sender in cids:
                n = sent[sender]
                expected += n
                lost += max(0, n - got.get(sender, 0))
    wrong = sum(r["wrong"] for r in results)
    delivered = sum(hist.values())
    messages = sum(sent.values())
    ticks = os.sysconf("SC_CLK_TCK") * args.duration / 100
    cpu = [
        round((end.get("cpu_ticks", 0) - begin.get("cpu_ticks", 0)) / ticks)
        for begin, end in zip(cpu_start, cpu_end)
    ]
    # Time runnable but not running: high when other processes share the CPUs.
    wait = [
        round((end.get("wait_ns", 0) - begin.get("wait_ns", 0)) / 1e7 / args.duration)
        for begin, end in zip(cpu_start, cpu_end)
    ]
    report = {
        "clients": clients,
        "rooms": args.rooms,
        "client_processes": args.workers,
        "duration_s": args.duration,
        "setup_s": round(setup, 2),
        "messages_sent": messages,
        "deliveries_expected": expected,
        "deliveries": delivered,
        "lost": lost,
        "out_of_order_or_repeated": wrong,
        "closed_by_server": sum(r["closed_count"] for r in results),
        "delivered_per_s": round(delivered / args.duration),
        "latency_p50_ms": percentile(hist, 0.50),
        "latency_p99_ms": percentile(hist, 0.99),
        "latency_max_ms": percentile(hist, 1.0),
        "send_late_max_ms": max(r["send_late_max_ms"] for r in results),
        "server_rss_idle_mib": round(idle.get("VmRSS", 0) / 1024, 1),
        "server_rss_connected_mib": round(connected.get("VmRSS", 0) / 1024, 1),
        "server_rss_peak_mib": round(max(peak_rss, final.get("VmHWM", 0)) / 1024, 1),
        "server_cpu_percent": cpu[0],
        "client_cpu_percent": cpu[1:],
        "server_cpu_wait_percent": wait[0],
        "client_cpu_wait_percent": wait[1:],
        "load_average": round(os.getloadavg()[0], 2),
    }
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    for r in results:
        for detail in filter(None, [r["wrong_example"], *r["closed"]]):
            print("  " + detail)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    ok = lost == 0 and wrong == 0 and delivered == expected
    print("OK: no message lost" if ok else "FAILED: messages lost, repeated or out of order")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
