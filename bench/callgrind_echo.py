"""Instructions per echoed message, counted by callgrind: a steady gauge of the hot path.

    python bench/callgrind_echo.py measure [--targets listener,handler] [--sizes 256,16384]
    python bench/callgrind_echo.py check [--baseline bench/callgrind_baseline.json]
    python bench/callgrind_echo.py update [--baseline bench/callgrind_baseline.json]
    python bench/callgrind_echo.py compare BASE.json NEW.json   (two ``measure --json`` outputs)

Wall-clock rates on a shared 2-core machine move by 10-30 % from run to run;
instruction counts do not: callgrind counts the same instructions for the same
binary and inputs whatever else the machine is doing. This benchmark drives
the server side of one connection exactly as an event loop does — a
``get_buffer``/``buffer_updated`` call per received frame, with a transport
whose ``write`` keeps nothing — through the public API: ``wsframe.asyncio``'s
``WebSocket`` over a ``ServerConnection``, echoing each message from a
``Listener`` (``listener``) or from an ``async for``/``send`` handler
(``handler``), and through uvicorn's ASGI protocol class (``uvicorn``). Per
message it counts the whole path: decode, reassembly, UTF-8, delivery,
encode and the write. ``measure`` also takes ``raw`` (a protocol echoing the
bytes back: the harness's own cost, the floor) and
``uvicorn-websockets-sansio`` (uvicorn's websockets protocol through the same
harness).

Each figure is ``(I(n2) - I(n1)) / (n2 - n1)``, the instructions of two runs
with different message counts, so the interpreter's start-up cancels out.
``check`` compares with the committed baseline and fails (exit 1) when a
figure grew by more than ``--tolerance`` (3 %); ``update`` rewrites the
baseline — a deliberate, reviewed commit. The baseline records the
interpreter, Cython, event loop and compiler it was taken with; ``check``
refuses to compare counts from another toolchain (exit 2) rather than report
noise. Where the toolchain is not the baseline's (a CI runner), measure both
trees in the same job and ``compare`` the two: the same rule, base against
change.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BASELINE = os.path.join(HERE, "callgrind_baseline.json")
TARGETS = ("listener", "handler", "uvicorn")
#: Peers measured by the same harness (``measure`` only; no baseline).
PEER_TARGETS = ("raw", "uvicorn-websockets-sansio")
SIZES = (256, 16384)
COUNTS = (2000, 6000)


# ------------------------------------------------------------- the workload


class _Transport:
    """What the protocol sees of a socket: accepts writes and forgets them."""

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.written += len(chunk)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _feed(protocol: Any, data: bytes) -> None:
    """Hand ``data`` to ``protocol`` as uvloop's BufferedProtocol path does."""
    buffer = protocol.get_buffer(len(data))
    buffer[: len(data)] = data
    protocol.buffer_updated(len(data))


def _asgi_echo() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "bytes": event.get("bytes")})

    return app


def _uvicorn_protocol(target: str) -> Any:
    """A uvicorn WebSocket protocol for one connection, as uvicorn makes it."""
    import asyncio

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    if target == "uvicorn":
        from wsframe.uvicorn import WSFrameProtocol as protocol_class
    else:  # uvicorn-websockets-sansio
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol as protocol_class,
        )
    config = Config(
        _asgi_echo(),
        ws=protocol_class,
        ws_per_message_deflate=False,
        lifespan="off",
        proxy_headers=False,
        log_level="critical",
    )
    config.load()
    return protocol_class(config, ServerState(), {}, _loop=asyncio.get_running_loop())


class _RawEcho:
    """The floor: a buffered protocol echoing the bytes back, no WebSocket work."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(256 * 1024))
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.transport.write(bytes(self.buffer[:nbytes]))


def workload(target: str, size: int, count: int) -> None:
    """Echo ``count`` binary messages of ``size`` bytes through one connection."""
    import asyncio

    from wsframe import encode_frame
    from wsframe.asyncio import Listener, Server, WebSocket
    from wsframe.options import Options

    frame = encode_frame(2, bytes(size), mask=b"\x01\x02\x03\x04")

    class Echo(Listener):
        def on_message(self, ws: WebSocket, message: Any) -> None:
            ws.send_nowait(message)

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        if target.startswith("uvicorn"):
            protocol = _uvicorn_protocol(target)
        elif target == "raw":
            protocol = _RawEcho()
        else:
            handler = Echo if target == "listener" else echo
            options = Options(compression=None, ping_interval=None, open_timeout=None)
            protocol = Server(handler, options).protocol_factory()
        transport = _Transport()
        protocol.connection_made(transport)
        if target.startswith("uvicorn"):
            protocol.data_received(_REQUEST)  # uvicorn replays the request head
        else:
            _feed(protocol, _REQUEST)
        for _ in range(3):
            await asyncio.sleep(0)  # the handler or the application starts, accepts
        # What exists now is never collected: a collection of the older
        # generations, which comes at a point that depends on everything
        # allocated since start-up, would otherwise land in one counted run
        # and not the other.
        gc.collect()
        gc.freeze()
        before = transport.written
        asynchronous = target not in ("listener", "raw")
        for _ in range(count):
            if hasattr(protocol, "get_buffer"):
                _feed(protocol, frame)
            else:
                protocol.data_received(frame)
            if asynchronous:
                await asyncio.sleep(0)  # the handler answers
        if transport.written - before < count * size:
            raise SystemExit(f"only {transport.written - before} bytes echoed")
        transport.close()

    _run(main())


def _run(main: Any) -> None:
    """Run on uvloop (the event loop of production servers) when installed."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        asyncio.run(main)
    else:
        uvloop.run(main)


# ---------------------------------------------------------------- measuring


def instructions(target: str, size: int, count: int) -> int:
    """Instructions callgrind counts for one run of the workload."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            os.path.abspath(__file__),
            "run",
            target,
            str(size),
            str(count),
        ]
        subprocess.run(command, check=True, env=env, capture_output=True)
        with open(out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no total")


def per_message(target: str, size: int) -> float:
    # A plain run first writes the bytecode caches, so that both counted runs
    # load the same modules the same way (the difference is the messages).
    command = [sys.executable, os.path.abspath(__file__), "run", target, str(size), "10"]
    subprocess.run(command, check=True, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True)
    n1, n2 = COUNTS
    return (instructions(target, size, n2) - instructions(target, size, n1)) / (n2 - n1)


def toolchain() -> dict[str, str]:
    import Cython

    import wsframe

    cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return {
        "loop": loop,
        "python": platform.python_version(),
        "implementation": wsframe.implementation,
        "cython": Cython.__version__,
        "cc": cc.splitlines()[0] if cc else "",
        "machine": platform.machine(),
    }


def measure(targets: list[str], sizes: list[int]) -> dict[str, float]:
    figures = {}
    for target in targets:
        for size in sizes:
            key = f"{target}/{size}"
            figures[key] = round(per_message(target, size), 1)
            print(f"  {key}: {figures[key]:,.1f} instructions/message", file=sys.stderr)
    return figures


def _compare(base: dict[str, float], new: dict[str, float], tolerance: float) -> int:
    """Print each figure against its base; 1 if one grew by more than ``tolerance``."""
    worse = []
    for key, value in new.items():
        reference = base.get(key)
        if reference is None:
            continue
        change = value / reference - 1
        print(f"{key}\t{value:,.1f}\tbase {reference:,.1f}\t{change:+.1%}")
        if change > tolerance:
            worse.append(key)
    if worse:
        print(f"regression over {tolerance:.0%}: {', '.join(worse)}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the workload itself (run under valgrind)")
    run.add_argument("target", choices=TARGETS + PEER_TARGETS)
    run.add_argument("size", type=int)
    run.add_argument("count", type=int)
    for name in ("measure", "check", "update"):
        p = sub.add_parser(name)
        p.add_argument("--targets", default=",".join(TARGETS))
        p.add_argument("--sizes", default=",".join(map(str, SIZES)))
        p.add_argument("--baseline", default=DEFAULT_BASELINE)
        p.add_argument("--tolerance", type=float, default=0.03)
        p.add_argument("--json", help="measure: also write the figures here")
    compare = sub.add_parser("compare")
    compare.add_argument("base")
    compare.add_argument("new")
    compare.add_argument("--tolerance", type=float, default=0.03)
    args = parser.parse_args()
    if args.command == "run":
        workload(args.target, args.size, args.count)
        return 0
    if args.command == "compare":
        with open(args.base) as f, open(args.new) as g:
            base, new = json.load(f)["instructions"], json.load(g)["instructions"]
        return _compare(base, new, args.tolerance)
    targets = args.targets.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.command == "check":
        with open(args.baseline) as f:
            baseline = json.load(f)
        if baseline["toolchain"] != toolchain():
            print(
                f"toolchain differs from the baseline's: {toolchain()} != {baseline['toolchain']}",
                file=sys.stderr,
            )
            return 2
        return _compare(baseline["instructions"], measure(targets, sizes), args.tolerance)
    figures = measure(targets, sizes)
    report = {"toolchain": toolchain(), "instructions": figures}
    path = args.baseline if args.command == "update" else args.json
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        print(f"written to {path}")
    if args.command == "measure":
        for key, value in figures.items():
            print(f"{key}\t{value:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
