"""End-to-end benchmarks: echo round trips, memory per idle connection, broadcast.

    python bench/e2e/run.py [--quick] [--json PATH] [--only echo|memory|broadcast]
                            [--client picows|wsframe]

Starts every server in its own process (servers.py), drives it from separate
client processes (clients.py), prints tables with ratios, and stops every
process it started, by PID, whatever happens. Loopback only. See README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS = ("picows", "aiohttp", "websockets")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# --------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    kind: str
    loop: str
    proc: subprocess.Popen[bytes]
    port: int
    note: str = ""


@dataclass
class Processes:
    """Every process started, so that all of them are stopped at the end."""

    env: dict[str, str]
    log_dir: str
    servers: list[Server] = field(default_factory=list)
    #: per loop: whether wsframe needs ``python -O`` there (see wsframe_needs_optimize)
    optimize: dict[str, bool] = field(default_factory=dict)

    def start(
        self,
        kind: str,
        loop: str,
        *,
        mode: str = "echo",
        defaults: bool = False,
        optimize: bool = False,
        name: Optional[str] = None,
        python: Optional[str] = None,
        env: Optional[dict[str, str]] = None,
    ) -> Server:
        """Start ``servers.py KIND`` on ``python`` (default: this interpreter)."""
        name = name or f"{kind}-{loop}"
        command = [python or sys.executable]
        if optimize:
            command.append("-O")
        command += [str(HERE / "servers.py"), kind, "--loop", loop, "--mode", mode]
        if defaults:
            command.append("--defaults")
        stderr = open(os.path.join(self.log_dir, f"{name}.{mode}.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, env=env or self.env, cwd=ROOT
        )
        stderr.close()
        assert proc.stdout is not None
        server = Server(name, kind, loop, proc, 0)
        self.servers.append(server)
        line = _readline(proc, 20.0)
        if not line.startswith("READY "):
            self.stop(server)
            raise RuntimeError(f"{name} did not start (see {self.log_dir}): {line!r}")
        server.port = int(line.split()[1])
        return server

    def stop(self, server: Server) -> None:
        proc = server.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in list(self.servers):
            self.stop(server)


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return "(timeout)"
    return proc.stdout.readline().decode(errors="replace").strip()


def client(procs: Processes, *args: str, timeout: float) -> dict[str, Any]:
    """Run clients.py with ``args``; its last stdout line is the JSON result."""
    command = [sys.executable, str(HERE / "clients.py"), *args]
    result = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=None,  # progress goes straight to our stderr
        env=procs.env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"client {args[0]} failed with status {result.returncode}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


# ------------------------------------------------------------------ tables


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"x{a / b:.2f}" if a and b else "-"


def size_label(size: int) -> str:
    return f"{size >> 10} KiB" if size >= 1024 else f"{size} B"


# -------------------------------------------------------------------- echo


def echo_servers(loops: list[str]) -> list[tuple[str, str]]:
    """(kind, loop) of every echo server: raw and wsframe on every loop, peers on the best."""
    best = loops[-1]
    servers = [("raw", loop) for loop in loops] + [("wsframe", loop) for loop in loops]
    servers += [(peer, best) for peer in PEERS if have(peer)]
    return servers


def wsframe_needs_optimize(procs: Processes, loop: str, notes: list[str]) -> bool:
    """Whether wsframe's echo server on ``loop`` only works under ``python -O``.

    wsframe at the time of writing asserts ``isinstance(transport,
    asyncio.Transport)`` in ``connection_made``, which uvloop's transports
    fail: every connection is dropped. ``python -O`` strips asserts, so the
    benchmarks measure it that way, with a note, rather than not at all.
    """
    cache = procs.optimize
    if loop not in cache:
        cache[loop] = False
        first_error = ""
        for optimize in (False, True):
            server = procs.start("wsframe", loop, optimize=optimize, name=f"wsframe-{loop}-check")
            try:
                check = client(procs, "check", "--port", str(server.port), timeout=30)
            finally:
                procs.stop(server)
            if check["ok"]:
                cache[loop] = optimize
                if optimize:
                    notes.append(
                        f"wsframe-{loop} fails a single echo ({first_error}); "
                        f"measured under `python -O` as wsframe-{loop}-O"
                    )
                break
            first_error = check["error"]
        else:
            notes.append(f"wsframe-{loop} fails a single echo ({first_error}), even with -O")
    return cache[loop]


def start_server(
    procs: Processes, kind: str, loop: str, notes: list[str], **options: Any
) -> Server:
    """Start a server; wsframe under ``python -O`` if it needs it (see above)."""
    if kind == "wsframe" and wsframe_needs_optimize(procs, loop, notes):
        return procs.start(kind, loop, optimize=True, name=f"{kind}-{loop}-O", **options)
    return procs.start(kind, loop, **options)


def run_echo(procs: Processes, args: argparse.Namespace, loops: list[str]) -> dict[str, Any]:
    notes: list[str] = [f"{peer}: not installed" for peer in PEERS if not have(peer)]
    servers: list[Server] = []
    for kind, loop in echo_servers(loops):
        server = start_server(procs, kind, loop, notes)
        if kind != "raw":
            check = client(procs, "check", "--port", str(server.port), timeout=30)
            if not check["ok"]:
                notes.append(f"{server.name}: fails a single echo ({check['error']}), skipped")
                procs.stop(server)
                continue
        servers.append(server)
    targets = []
    for server in servers:
        targets += ["--target", f"{server.name}={server.kind}:{server.port}"]
    timing = (
        ["--duration", "1.0", "--warmup", "0.3", "--reps", "1"]
        if args.quick
        else ["--duration", "1.5", "--warmup", "0.5", "--reps", "5"]
    )
    results = []
    for size in (256, 65536):
        for conns in (1, 16):
            log(f"echo: {size_label(size)}, {conns} connection(s)")
            result = client(
                procs,
                "echo",
                *targets,
                "--size",
                str(size),
                "--conns",
                str(conns),
                "--client",
                args.client,
                *timing,
                timeout=600,
            )
            results.append(result)
    for server in servers:
        procs.stop(server)
    return {
        "servers": [{"name": s.name, "kind": s.kind, "loop": s.loop} for s in servers],
        "results": results,
        "notes": notes,
    }


def print_echo(data: dict[str, Any]) -> None:
    servers = data["servers"]
    for result in data["results"]:
        medians = {name: statistics.median(r) for name, r in result["rates"].items() if r}
        bests = {name: max(r) for name, r in result["rates"].items() if r}
        picows = next((k for k in medians if k.startswith("picows")), None)
        print(
            f"\nEcho round trips/s: {size_label(result['size'])} binary, "
            f"{result['conns']} connection(s), {result['client']} client "
            f"on {result['client_loop']} ({max(map(len, result['rates'].values()))} repetitions)"
        )
        rows = []
        for server in servers:
            name = server["name"]
            rates = result["rates"].get(name) or []
            if not rates:
                error = result["errors"].get(name, "not measured")
                rows.append([name, "error", "", "", "", "", error[:60]])
                continue
            raw = f"raw-{server['loop']}"
            rows.append(
                [
                    name,
                    f"{medians[name]:,.0f}",
                    f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else "",
                    ratio(medians[name], medians.get(picows or "")),
                    ratio(bests[name], bests.get(picows or "")),
                    ratio(medians[name], medians.get(raw)),
                    ratio(bests[name], bests.get(raw)),
                ]
            )
        headers = ["server", "median rt/s", "min-max", "vs picows", "(best)", "vs raw", "(best)"]
        print(table(headers, rows))
    for note in data["notes"]:
        print(f"  note: {note}")


# ------------------------------------------------------------------ memory


def run_memory(procs: Processes, args: argparse.Namespace, loops: list[str]) -> dict[str, Any]:
    best = loops[-1]
    plan = [("raw", best, False)]
    for loop in reversed(loops):
        plan += [("wsframe", loop, False), ("wsframe", loop, True)]
    for peer in PEERS:
        if have(peer):
            plan += [(peer, best, False), (peer, best, True)]
    n = 1000
    rows = []
    notes: list[str] = []
    for kind, loop, deflate in plan:
        name = f"{kind}-{loop}"
        log(f"memory: {name}, {n} connections, deflate {'offered' if deflate else 'not offered'}")
        try:
            server = start_server(procs, kind, loop, notes, defaults=True)
            name = server.name
        except RuntimeError as exc:
            rows.append({"name": name, "deflate_offered": deflate, "error": str(exc)})
            continue
        command = ["idle", "--port", str(server.port), "--server-pid", str(server.proc.pid)]
        command += ["--n", str(n), "--settle", "0.5" if args.quick else "1.0"]
        if kind == "raw":
            command.append("--tcp")
        elif deflate:
            command.append("--deflate")
        try:
            result = client(procs, *command, timeout=120)
            result.update(name=name)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result = {"name": name, "deflate_offered": deflate, "error": str(exc)}
        finally:
            procs.stop(server)
        rows.append(result)
    return {"n": n, "rows": rows, "notes": notes}


def print_memory(data: dict[str, Any]) -> None:
    print(f"\nMemory per idle connection: {data['n']} connections, server RSS (VmRSS)")
    rows = []
    bare = next((r for r in data["rows"] if r["name"].startswith("raw") and "error" not in r), None)
    for r in data["rows"]:
        name = "bare TCP (accept only)" if r["name"].startswith("raw") else r["name"]
        offered = "-" if r["name"].startswith("raw") else ("yes" if r["deflate_offered"] else "no")
        if "error" in r:
            rows.append([name, offered, "error", "", "", r["error"][:60], ""])
            continue
        negotiated = "-" if r["name"].startswith("raw") else f"{r['deflate_negotiated']}/{r['n']}"
        rows.append(
            [
                name,
                offered,
                negotiated,
                f"{r['rss_before_kib'] / 1024:.1f}",
                f"{r['rss_after_kib'] / 1024:.1f}",
                f"{r['kib_per_conn']:.1f}",
                ratio(r["kib_per_conn"], bare["kib_per_conn"]) if bare else "-",
            ]
        )
    print(
        table(
            [
                "server (library defaults)",
                "deflate offered",
                "negotiated",
                "RSS before MiB",
                "after MiB",
                "KiB/conn",
                "vs bare TCP",
            ],
            rows,
        )
    )
    for note in data["notes"]:
        print(f"  note: {note}")


# --------------------------------------------------------------- broadcast


def run_broadcast(procs: Processes, args: argparse.Namespace, loops: list[str]) -> dict[str, Any]:
    best = loops[-1]
    plan = [("wsframe", loop) for loop in reversed(loops)]
    plan += [(peer, best) for peer in ("picows", "websockets") if have(peer)]
    rows = []
    notes: list[str] = []
    for kind, loop in plan:
        name = f"{kind}-{loop}"
        log(f"broadcast: {name}")
        server = start_server(procs, kind, loop, notes, mode="broadcast")
        name = server.name
        command = ["broadcast", "--port", str(server.port), "--n", "1000"]
        command += ["--reps", "5" if args.quick else "20"]
        try:
            result = client(procs, *command, timeout=180)
            result.update(name=name)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result = {"name": name, "error": str(exc)}
        finally:
            procs.stop(server)
        rows.append(result)
    return {"rows": rows, "notes": notes}


def print_broadcast(data: dict[str, Any]) -> None:
    rows = []
    first = next((r for r in data["rows"] if "error" not in r), None)
    for r in data["rows"]:
        if "error" in r:
            rows.append([r["name"], "error", "", "", "", r["error"][:60]])
            continue

        def med(key: str, reps: list[dict[str, float]] = r["reps"]) -> float:
            return statistics.median(rep[key] for rep in reps)

        all_us = [rep["all_us"] for rep in r["reps"]]
        rows.append(
            [
                r["name"],
                f"{med('call_us') / 1000:.2f}",
                f"{med('first_us') / 1000:.2f}",
                f"{med('median_us') / 1000:.2f}",
                f"{med('all_us') / 1000:.2f}",
                f"{min(all_us) / 1000:.2f}-{max(all_us) / 1000:.2f}",
            ]
        )
    if first is not None:
        print(
            f"\nBroadcast: one {first['size']} B binary message to {first['n']} connections "
            f"(median of {len(first['reps'])}; ms from the call's start)"
        )
    print(
        table(
            [
                "server",
                "in broadcast()",
                "first received",
                "half received",
                "all received",
                "all: min-max",
            ],
            rows,
        )
    )
    print(
        "  picows has no broadcast(): its row is a loop of transport.send(); websockets uses "
        "websockets.broadcast(). All received = the last of the 1000 clients (one picows "
        "client process) got it, so it includes that process's time to read 1000 frames."
    )
    for note in data["notes"]:
        print(f"  note: {note}")


# -------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter, one repetition (~1-2 min)")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    parser.add_argument("--only", choices=("echo", "memory", "broadcast"), action="append")
    parser.add_argument("--client", choices=("picows", "wsframe"), default="picows")
    args = parser.parse_args()
    if not have("picows"):
        parser.error("the clients need picows: pip install picows")
    loops = ["asyncio", "uvloop"] if have("uvloop") else ["asyncio"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    sections = args.only or ["echo", "memory", "broadcast"]
    sys.path.insert(0, str(ROOT))
    import wsframe

    report: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "wsframe": getattr(wsframe, "__version__", "?"),
            "implementation": wsframe.implementation,
            "loops": loops,
        },
        "quick": args.quick,
    }
    for module in (*PEERS, "uvloop"):
        if have(module):
            from importlib.metadata import version

            report["machine"][module] = version(module)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wsframe-e2e-") as log_dir:
        procs = Processes(env, log_dir)
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        try:
            if "echo" in sections:
                report["echo"] = run_echo(procs, args, loops)
                print_echo(report["echo"])
            if "memory" in sections:
                report["memory"] = run_memory(procs, args, loops)
                print_memory(report["memory"])
            if "broadcast" in sections:
                report["broadcast"] = run_broadcast(procs, args, loops)
                print_broadcast(report["broadcast"])
        finally:
            procs.stop_all()
            signal.signal(signal.SIGTERM, previous)
    report["seconds"] = round(time.monotonic() - started, 1)
    m = report["machine"]
    print(
        f"\n{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, wsframe {m['wsframe']} "
        f"({m['implementation']}), "
        + ", ".join(f"{k} {m[k]}" for k in (*PEERS, "uvloop") if k in m)
    )
    print(f"total {report['seconds']} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
