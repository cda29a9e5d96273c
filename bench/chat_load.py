"""Load test of ``python -m wsframe chat`` on loopback.

1000 simulated users (wsframe's client, in two worker processes) join 10
rooms and each sends one message per second for 30 s (``--quick``: 5 s).
Reports the messages delivered per second, the delivery latency (sender's
timestamp in the message to the receiver's clock; same machine, so the same
clock), the server's memory, and checks that nothing was lost: every member
of a room must receive every message sent to that room, exactly once.

    python bench/chat_load.py [--quick] [--clients 1000] [--rooms 10] [--json PATH]

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


async def worker_main(args: argparse.Namespace) -> None:
    from wsframe.asyncio import Listener, WebSocket, connect

    loop = asyncio.get_running_loop()
    uri = f"ws://127.0.0.1:{args.port}/ws"
    first = args.worker * args.clients
    ids = [f"u{first + i}" for i in range(args.clients)]
    room_of = {cid: f"room{(first + i) % args.rooms}" for i, cid in enumerate(ids)}
    # recv[receiver][sender] = [count, sum of seq]
    recv: dict[str, dict[str, list[int]]] = {cid: {} for cid in ids}
    latency_hist: collections.Counter[int] = collections.Counter()  # in 0.1 ms buckets
    sent: dict[str, int] = dict.fromkeys(ids, 0)
    last_rx = [time.monotonic()]

    class Client(Listener):
        def __init__(self, cid: str) -> None:
            self.cid = cid
            self.counts = recv[cid]
            self.waiter: Optional[asyncio.Future[dict[str, Any]]] = None
            self.expect = ""

        def on_message(self, ws: WebSocket, message: Any) -> None:
            if message.startswith('{"type":"message"'):
                now = time.time_ns()
                # No json.loads: the text field is "sender seq stamp" (ASCII).
                start = message.index('"text":"') + 8
                sender, seq, stamp = message[start : message.index('"', start)].split()
                latency_hist[(now - int(stamp)) // 100_000] += 1
                entry = self.counts.get(sender)
                if entry is None:
                    entry = self.counts[sender] = [0, 0]
                entry[0] += 1
                entry[1] += int(seq)
                last_rx[0] = time.monotonic()
                return
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                data = json.loads(message)
                if data["type"] in (self.expect, "error"):
                    waiter.set_result(data)

        async def ask(self, ws: WebSocket, expect: str, **command: Any) -> dict[str, Any]:
            self.expect = expect
            self.waiter = loop.create_future()
            ws.send_nowait(json.dumps(command))
            answer = await asyncio.wait_for(self.waiter, 30)
            if answer["type"] == "error":
                raise RuntimeError(f"{self.cid}: {answer}")
            return answer

    sockets: dict[str, WebSocket] = {}
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
    end = start + args.duration

    async def talk(cid: str) -> None:
        ws = sockets[cid]
        at = start + random.random()  # spread the senders over each second
        seq = 0
        while at < end:
            await asyncio.sleep(max(0.0, at - time.time()))
            ws.send_nowait(
                json.dumps(
                    {
                        "type": "message",
                        "room": room_of[cid],
                        "text": f"{cid} {seq} {time.time_ns()}",
                    }
                )
            )
            seq += 1
            # One per second; an overloaded client does not catch up in a burst.
            at = max(at + 1.0, time.time() + 0.5)
        sent[cid] = seq

    await asyncio.gather(*(talk(cid) for cid in ids))
    # Drain: stop once nothing arrived for 2 s (at most 30 s).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and time.monotonic() - last_rx[0] < 2.0:
        await asyncio.sleep(0.2)
    result = {
        "sent": sent,
        "room_of": room_of,
        "recv": recv,
        "latency_hist": {str(k): v for k, v in latency_hist.items()},
    }
    print("result " + json.dumps(result), flush=True)
    await asyncio.gather(*(ws.close() for ws in sockets.values()), return_exceptions=True)


# ----------------------------------------------------------------------- main


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
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, help="seconds of sending (default 30)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 5.0 if args.quick else 30.0
    raise_fd_limit()
    if args.worker is not None:
        asyncio.run(worker_main(args))
        return 0

    per_worker = args.clients // args.workers
    clients = per_worker * args.workers
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "wsframe", "chat", "--port", str(args.port),
             "--db", os.path.join(tmp, "load.sqlite3")],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert server.stdout is not None
        line = ""
        while not line.startswith("listening on"):
            line = server.stdout.readline()
            if not line:
                raise SystemExit("the chat server did not start")
        port = int(line.rsplit(":", 1)[1])
        idle = proc_status(server.pid)
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(k),
                    "--port",
                    str(port),
                    "--clients",
                    str(per_worker),
                    "--rooms",
                    str(args.rooms),
                    "--duration",
                    str(args.duration),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for k in range(args.workers)
        ]
        try:
            t0 = time.monotonic()
            for w in workers:
                assert w.stdout is not None
                if w.stdout.readline().strip() != "ready":
                    raise SystemExit("a worker failed to connect its clients")
            setup = time.monotonic() - t0
            connected = proc_status(server.pid)
            start = time.time() + 0.5
            for w in workers:
                assert w.stdin is not None
                w.stdin.write(f"go {start}\n")
                w.stdin.flush()
            peak_rss = 0
            cpu_start = proc_status(server.pid).get("cpu_ticks", 0)
            while time.time() < start + args.duration:
                peak_rss = max(peak_rss, proc_status(server.pid).get("VmRSS", 0))
                time.sleep(0.5)
            cpu_end = proc_status(server.pid).get("cpu_ticks", 0)
            results = []
            for w in workers:
                out, _ = w.communicate(timeout=120)
                results.append(json.loads(out.split("result ", 1)[1]))
            final = proc_status(server.pid)
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
            server.terminate()
            server.wait(10)

    sent: dict[str, int] = {}
    room_of: dict[str, str] = {}
    recv: dict[str, dict[str, list[int]]] = {}
    hist: collections.Counter[int] = collections.Counter()
    for r in results:
        sent.update(r["sent"])
        room_of.update(r["room_of"])
        recv.update(r["recv"])
        hist.update({int(k): v for k, v in r["latency_hist"].items()})
    members: dict[str, list[str]] = collections.defaultdict(list)
    for cid, room in room_of.items():
        members[room].append(cid)
    expected = lost = extra = 0
    for cids in members.values():
        for receiver in cids:
            got = recv[receiver]
            for sender in cids:
                n = sent[sender]
                expected += n
                count, seq_sum = got.get(sender, (0, 0))
                if count < n:
                    lost += n - count
                elif count > n or seq_sum != n * (n - 1) // 2:
                    extra += abs(count - n) or 1
    delivered = sum(hist.values())
    messages = sum(sent.values())
    report = {
        "clients": clients,
        "rooms": args.rooms,
        "duration_s": args.duration,
        "setup_s": round(setup, 2),
        "messages_sent": messages,
        "deliveries_expected": expected,
        "deliveries": delivered,
        "lost": lost,
        "duplicated_or_wrong": extra,
        "delivered_per_s": round(delivered / args.duration),
        "latency_p50_ms": percentile(hist, 0.50),
        "latency_p99_ms": percentile(hist, 0.99),
        "latency_max_ms": percentile(hist, 1.0),
        "server_rss_idle_mib": round(idle.get("VmRSS", 0) / 1024, 1),
        "server_rss_connected_mib": round(connected.get("VmRSS", 0) / 1024, 1),
        "server_rss_peak_mib": round(max(peak_rss, final.get("VmHWM", 0)) / 1024, 1),
        "server_cpu_percent": round((cpu_end - cpu_start) / os.sysconf("SC_CLK_TCK")
                                    / args.duration * 100),
    }  # fmt: skip
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    ok = lost == 0 and extra == 0 and delivered == expected
    print("OK: no message lost" if ok else "FAILED: messages lost or duplicated")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
