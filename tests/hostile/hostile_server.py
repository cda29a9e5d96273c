"""An echo server for tests/hostile/test_hostile.py, run in a process of its own.

``python tests/hostile/hostile_server.py [--open-timeout S] [--close-timeout S]
[--no-tracemalloc]`` prints ``listening PORT`` once it accepts connections.
``GET /_stats`` (plain HTTP) answers JSON: ``traced`` (bytes allocated by
Python, tracemalloc, after a GC), ``peak`` (their peak since the last
``/_stats?reset``), ``rss`` (bytes), ``connections`` (other than this
request), ``implementation`` and ``memory`` (how ``traced`` and ``peak`` are
measured). ``/_stats?nogc`` skips the GC (to watch the server as it runs by
itself: cyclic garbage waits for the collector). With ``--no-tracemalloc``
(to measure RSS as a production server has it), ``traced`` and ``peak`` are
0. ``WSFRAME_NO_EXTENSIONS=1`` selects the pure-Python codec.

PyPy has no tracemalloc: there ``traced`` is the memory its GC uses after a
full collection (``gc.get_stats()``: objects in arenas and large objects
malloced on their own), and ``peak`` adds the growth of the resident
high-water mark since the reset (``/proc/self/clear_refs``), which also
counts what the GC has not collected yet: a coarser, upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
from typing import Any, Optional

import wsframe
from wsframe.asyncio import Server, WebSocket, serve

try:
    import tracemalloc
except ImportError:  # PyPy
    tracemalloc = None  # type: ignore[assignment]


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss() -> int:
    return _status("VmRSS")


class Memory:
    """``traced`` and ``peak`` (see the module's docstring), after a GC."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        if not enabled:
            self.kind = "none"
        else:
            self.kind = "tracemalloc" if tracemalloc is not None else "pypy-gc+rss-peak"
        self._peak_base = (0, 0)  # (traced, VmRSS) at the last reset
        if enabled and tracemalloc is not None:
            tracemalloc.start()
        elif enabled:
            self.reset()

    def current(self, collect: bool = True) -> tuple[int, int]:
        if collect:
            gc.collect()
        if not self.enabled:
            return 0, 0
        if tracemalloc is not None:
            return tracemalloc.get_traced_memory()
        traced = int(gc.get_stats()._s.total_gc_memory)  # type: ignore[attr-defined]
        base_traced, base_rss = self._peak_base
        return traced, max(traced, base_traced + _status("VmHWM") - base_rss)

    def reset(self) -> None:
        if not self.enabled:
            return
        if tracemalloc is not None:
            tracemalloc.reset_peak()
            return
        gc.collect()
        traced = int(gc.get_stats()._s.total_gc_memory)  # type: ignore[attr-defined]
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # VmHWM := VmRSS
        self._peak_base = (traced, rss())


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open-timeout", type=float, default=1.0)
    parser.add_argument("--close-timeout", type=float, default=None)
    parser.add_argument("--no-tracemalloc", action="store_true")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192 and (hard == resource.RLIM_INFINITY or hard > soft):
        target = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    server: Optional[Server] = None
    # Without tracemalloc (PyPy) reading the GC's statistics costs nothing.
    memory = Memory(enabled=not args.no_tracemalloc or tracemalloc is None)

    def process_request(ws: WebSocket, request: Any) -> Any:
        if request.path != "/_stats":
            return None
        query = set((request.query or "").split("&"))
        current, peak = memory.current(collect="nogc" not in query)
        if "reset" in query:
            memory.reset()
        assert server is not None
        body = {
            "traced": current,
            "peak": peak,
            "rss": rss(),
            "connections": len(server.websockets) - 1,
            "implementation": wsframe.implementation,
            "memory": memory.kind,
        }
        return (200, {"Content-Type": "application/json"}, json.dumps(body))

    options = {} if args.close_timeout is None else {"close_timeout": args.close_timeout}
    server = await serve(
        echo,
        "127.0.0.1",
        0,
        process_request=process_request,
        open_timeout=args.open_timeout,
        ping_interval=None,
        backlog=4096,
        **options,
    )
    print(f"listening {server.port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
