"""An echo server for tests/test_hostile.py, run in a process of its own.

``python tests/hostile_server.py [--open-timeout S] [--close-timeout S]
[--no-tracemalloc]`` prints ``listening PORT`` once it accepts connections.
``GET /_stats`` (plain HTTP) answers JSON: ``traced`` (bytes allocated by
Python, tracemalloc, after a GC), ``peak`` (their peak since the last
``/_stats?reset``), ``rss`` (bytes), ``connections`` (other than this request)
and ``implementation``. ``/_stats?nogc`` skips the GC (to watch the server as
it runs by itself: cyclic garbage waits for the collector). With
``--no-tracemalloc`` (to measure RSS as a production server has it),
``traced`` and ``peak`` are 0. ``WSFRAME_NO_EXTENSIONS=1`` selects the
pure-Python codec.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import tracemalloc
from typing import Any, Optional

import wsframe
from wsframe.asyncio import Server, WebSocket, serve


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


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

    def process_request(ws: WebSocket, request: Any) -> Any:
        if request.path != "/_stats":
            return None
        query = set((request.query or "").split("&"))
        if "nogc" not in query:
            gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        if "reset" in query:
            tracemalloc.reset_peak()
        assert server is not None
        body = {
            "traced": current,
            "peak": peak,
            "rss": rss(),
            "connections": len(server.websockets) - 1,
            "implementation": wsframe.implementation,
        }
        return (200, {"Content-Type": "application/json"}, json.dumps(body))

    if not args.no_tracemalloc:
        tracemalloc.start()
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
