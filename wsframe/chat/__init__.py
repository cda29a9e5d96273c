"""``python -m wsframe chat``: an instant-messaging server with a browser client.

The page is served at ``/`` and the WebSocket at ``/ws``; the JSON protocol
is described in ``docs/chat-protocol.md``. Modules: :mod:`.protocol`
(validation and encoding of messages), :mod:`.store` (SQLite history),
:mod:`.server` (nicknames, rooms, presence, rate limits, the HTTP front).

``workers=N`` (``--workers``) runs N processes on one port (``SO_REUSEPORT``),
sharing rooms through Redis (``redis=URL``, required when N > 1) and one
SQLite history file in WAL mode. A worker that dies after it was up (killed,
crashed) is replaced; its clients reconnect to the others meanwhile, and its
users leave the others' presence when its presence expires.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..handshake import OriginPolicy
from .server import ChatServer, ChatSession, RateLimiter
from .store import HistoryStore, default_db_path

__all__ = [
    "ChatServer",
    "ChatSession",
    "HistoryStore",
    "RateLimiter",
    "default_db_path",
    "run_chat",
]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _serve(
    host: str,
    port: int,
    db: str,
    reuse_port: bool = False,
    ready: Optional[Callable[[], None]] = None,
    **options: Any,
) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop(*_: Any) -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, request_stop)
        except (NotImplementedError, RuntimeError):  # Windows
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(request_stop))
    chat = ChatServer(db, **options)
    serve_options = {"reuse_port": True} if reuse_port else {}
    async with chat.serve(host, port, **serve_options) as server:
        where = "memory" if db == ":memory:" else db
        print(f"chat history in {where}", flush=True)
        if chat.shared is not None:
            print(f"rooms shared through {chat.shared.url} (pid {os.getpid()})", flush=True)
        print(f"listening on http://{_url_host(host)}:{server.port}", flush=True)
        if ready is not None:
            ready()
        await stop


def run_chat(
    host: str = "127.0.0.1",
    port: int = 8765,
    db: Optional[Union[str, Path]] = None,
    *,
    workers: int = 1,
    redis: Optional[str] = None,
    reuse_port: bool = False,
    **options: Any,
) -> int:
    """Run the chat server until SIGINT or SIGTERM; return the exit status (0).

    ``db`` is the history's SQLite file (default: :func:`default_db_path`), or
    ``":memory:"``. ``redis`` (a URL) shares the rooms with other processes;
    ``workers`` > 1 runs that many processes on ``port`` and needs ``redis``
    and a history file (:class:`ValueError` otherwise). ``options`` go to
    :class:`ChatServer` (e.g. ``origins``: other pages allowed to connect;
    an invalid one is a :class:`ValueError` here, before any worker starts).
    """
    OriginPolicy(options.get("origins", ()))  # ValueError now, not in a worker
    path = str(default_db_path() if db is None else db)
    if workers > 1:
        return _run_workers(host, port, path, workers, redis, options)
    if redis is not None:
        options["redis"] = redis
    return _run_one(host, port, path, reuse_port, options)


def _run_one(host: str, port: int, path: str, reuse_port: bool, options: dict[str, Any]) -> int:
    options["reuse_port"] = reuse_port
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(host, port, path, **options))
        return 0
    # uvloop when installed: its socket transports and timers are in C, which
    # halves the cost of each write in a room broadcast.
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(host, port, path, **options))
    else:  # pragma: no cover - older Pythons
        uvloop.install()
        asyncio.run(_serve(host, port, path, **options))
    return 0


def _worker(
    host: str, port: int, path: str, redis: str, options: dict[str, Any], ready: Any
) -> None:
    """One worker process of :func:`run_chat` (``workers`` > 1); sets ``ready`` once it listens."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
    _run_one(host, port, path, True, {**options, "redis": redis, "ready": ready.set})


#: A worker that dies after it was listening is replaced, but not more than
#: this many times within ``RESTART_WINDOW`` seconds (then the chat stops with
#: exit status 1, as it does when a worker dies before it listens).
MAX_RESTARTS = 10
RESTART_WINDOW = 60.0


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _run_workers(
    host: str, port: int, path: str, workers: int, redis: Optional[str], options: dict[str, Any]
) -> int:
    if redis is None:
        raise ValueError(
            "several workers need Redis to share rooms: add --redis redis://HOST:PORT/DB"
        )
    if path == ":memory:":
        raise ValueError("several workers need a shared history file: --db PATH, not :memory:")
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("several workers need SO_REUSEPORT, which this platform lacks")
    if port == 0:
        port = _free_port(host)
    context = multiprocessing.get_context("spawn")

    ready: dict[int, Any] = {}  # id(process) -> its "listening" event

    def new_worker() -> Any:
        event = context.Event()
        process = context.Process(
            target=_worker, args=(host, port, path, redis, options, event), daemon=True
        )
        ready[id(process)] = event
        return process

    processes = [new_worker() for _ in range(workers)]
    restarts: list[float] = []
    stopping = False
    stopped_at = 0.0

    def stop(*_: Any) -> None:
        nonlocal stopping, stopped_at
        if not stopping:
            stopped_at = time.monotonic()
        stopping = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                process.terminate()  # SIGTERM: a clean stop

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.start()
        print(f"{workers} workers on port {port}, rooms shared through {redis}", flush=True)
        status = 0
        while any(process.is_alive() for process in processes):
            if stopping and time.monotonic() - stopped_at > 10.0:
                break  # a worker that ignores SIGTERM is killed below
            for index, process in enumerate(processes):
                process.join(0.2 / workers)
                if process.exitcode is None or stopping:
                    continue
                now = time.monotonic()
                print(f"worker {process.pid} exited with {process.exitcode}", file=sys.stderr)
                restarts[:] = [t for t in restarts if now - t < RESTART_WINDOW]
                if not ready.pop(id(process)).is_set():
                    print("it failed to start: stopping", file=sys.stderr)
                elif len(restarts) >= MAX_RESTARTS:
                    replaced = f"{len(restarts)} workers replaced within {RESTART_WINDOW:.0f} s"
                    print(f"{replaced}: stopping", file=sys.stderr)
                else:
                    restarts.append(now)
                    processes[index] = replacement = new_worker()
                    replacement.start()
                    print(f"worker {replacement.pid} replaces it", file=sys.stderr, flush=True)
                    continue
                status = 1
                stop()
        return status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for process in processes:
            process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join()
