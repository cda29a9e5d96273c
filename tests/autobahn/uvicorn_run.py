"""Autobahn (with ``kosoku``) against uvicorn echo servers, one per WebSocket implementation.

    python tests/autobahn/uvicorn_run.py [--ws wsframe websockets wsproto]
        [--cases PATTERN ...] [--exclude PATTERN ...] [--parallel 2]
        [--outdir reports/uvicorn] [--timeout 1800] [--strict] [--codec c|python]

For each implementation in turn, a uvicorn server (uvloop, httptools, the
implementation as ``--ws``, permessage-deflate on, ``ws_max_size`` 16 MiB,
heartbeats off, a raw ASGI echo application) starts on a free loopback port,
``kosoku -m fuzzingclient`` runs against it, and the server is stopped by its
PID. The per-case JSON reports of each run go to ``OUTDIR/<impl>/`` and are
summarized side by side: counts per ``behavior`` and ``behaviorClose``, and
the cases that are neither OK nor INFORMATIONAL.

Implementations: ``wsframe`` (``wsframe.uvicorn:WSFrameProtocol``),
``websockets``, ``websockets-sansio``, ``wsproto`` (uvicorn's own).

Exit status: 0 if wsframe (when selected) has no FAILED case (with
``--strict``: no case other than OK and INFORMATIONAL, in ``behavior`` and in
``behaviorClose``); 1 otherwise; 2 if a run could not be carried out. The
other implementations are reported, not judged. ``--codec python`` runs
wsframe's pure-Python twins (``WSFRAME_NO_EXTENSIONS=1``).

The server alone: ``python tests/autobahn/uvicorn_run.py --serve IMPL --port P``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The kosoku next to this interpreter (its venv) first, as run.py finds it.
_BESIDE = Path(sys.executable).parent / "kosoku"
_RUNNABLE = _BESIDE.is_file() and os.access(_BESIDE, os.X_OK)
KOSOKU = str(_BESIDE) if _RUNNABLE else shutil.which("kosoku")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HOST = "127.0.0.1"

WS_IMPLS = {
    "wsframe": "wsframe.uvicorn:WSFrameProtocol",
    "websockets": "websockets",
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
}


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI echo: text back as text, bytes back as bytes."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


def serve(impl: str, port: int) -> None:
    """Run the echo server with ``impl`` until terminated."""
    sys.path.insert(0, str(ROOT))
    import uvicorn

    uvicorn.run(
        echo_app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        ws=WS_IMPLS[impl],
        ws_per_message_deflate=True,
        ws_max_size=16 * 1024 * 1024,
        ws_ping_interval=None,
        lifespan="off",
        log_level="error",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_one(impl: str, args: argparse.Namespace) -> Path:
    """Run kosoku against the ``impl`` server; return its report directory."""
    outdir = Path(args.outdir) / impl
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if args.codec == "python":
        env["WSFRAME_NO_EXTENSIONS"] = "1"
    else:
        env.pop("WSFRAME_NO_EXTENSIONS", None)
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", impl, "--port", str(port)],
        env=env,
    )
    try:
        wait_for_port(server, port)
        command = [KOSOKU or "kosoku", "-m", "fuzzingclient", f"{HOST}:{port}", "-o", str(outdir)]
        command += ["-p", str(args.parallel)]
        for pattern in args.cases or ():
            command += ["-i", pattern]
        for pattern in args.exclude or ():
            command += ["-x", pattern]
        started = time.monotonic()
        kosoku = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            kosoku.wait(args.timeout)
        except subprocess.TimeoutExpired:
            kosoku.kill()
            kosoku.wait()
            raise RuntimeError(f"kosoku did not finish within {args.timeout} s") from None
        print(f"{impl}: kosoku finished in {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        stop(server)
    return outdir


def read_reports(outdir: Path) -> dict[str, dict[str, Any]]:
    """``case id -> report`` from every per-case JSON file under ``outdir``."""
    reports: dict[str, dict[str, Any]] = {}
    for path in outdir.rglob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "behavior" in data and "id" in data:
            reports[str(data["id"])] = data
    return reports


def summarize(
    impl: str, reports: dict[str, dict[str, Any]], strict: bool = False
) -> tuple[str, int]:
    """The summary text, and how many cases fail (FAILED; with ``strict`` anything
    but OK and INFORMATIONAL, in ``behavior`` or ``behaviorClose``)."""
    behaviors = collections.Counter(r["behavior"] for r in reports.values())
    closes = collections.Counter(r.get("behaviorClose", "?") for r in reports.values())
    lines = [
        f"== {impl}: {len(reports)} cases",
        "   behavior:      " + ", ".join(f"{k} {v}" for k, v in sorted(behaviors.items())),
        "   behaviorClose: " + ", ".join(f"{k} {v}" for k, v in sorted(closes.items())),
    ]
    odd = sorted(
        (case for case, r in reports.items() if r["behavior"] not in ("OK", "INFORMATIONAL")),
        key=lambda case: [int(part) if part.isdigit() else part for part in case.split(".")],
    )
    if odd:
        shown = ", ".join(f"{case} ({reports[case]['behavior']})" for case in odd[:40])
        more = f" and {len(odd) - 40} more" if len(odd) > 40 else ""
        lines.append(f"   not OK: {shown}{more}")
    if strict:
        passing = ("OK", "INFORMATIONAL")
        failing = sum(
            1
            for r in reports.values()
            if r["behavior"] not in passing or r.get("behaviorClose") not in passing
        )
        return "\n".join(lines), failing
    return "\n".join(lines), behaviors.get("FAILED", 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=sorted(WS_IMPLS))
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--ws", nargs="+", default=["wsframe", "websockets", "wsproto"])
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--exclude", nargs="*")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--outdir", default="reports/uvicorn")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--strict", action="store_true", help="only OK and INFORMATIONAL pass")
    parser.add_argument("--codec", choices=("c", "python"), default="c")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if KOSOKU is None:
        print("kosoku is not installed", file=sys.stderr)
        return 2
    failed = 0
    summaries = []
    for impl in args.ws:
        if impl not in WS_IMPLS:
            parser.error(f"unknown implementation {impl!r}")
        try:
            outdir = run_one(impl, args)
        except RuntimeError as exc:
            print(f"{impl}: {exc}", file=sys.stderr)
            return 2
        text, count = summarize(impl, read_reports(outdir), args.strict and impl == "wsframe")
        print(text, flush=True)
        summaries.append(text)
        if impl == "wsframe":
            failed = count
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
