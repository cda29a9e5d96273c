"""The chat's process supervisor: ``python -m wsframe chat --workers N``.

:func:`run_workers` starts N worker processes that listen on one port
(``SO_REUSEPORT``; the kernel spreads the connections), each running
:func:`wsframe.chat.run_chat` with the rooms shared through Redis. A worker
that dies after it was listening (killed, crashed) is replaced, at most
:data:`MAX_RESTARTS` times in :data:`RESTART_WINDOW` seconds; one that dies
before it listens stops them all (exit status 1). SIGINT and SIGTERM stop the
workers cleanly (SIGTERM each); one that ignores it for 10 s is killed.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Callable, Optional

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW", "run_workers"]

#: What a worker runs: ``serve(host, port, path, ready)``, ``ready()`` once it listens.
WorkerMain = Callable[[str, int, str, Callable[[], object]], object]


def _worker(main: WorkerMain, host: str, port: int, path: str, ready: Event) -> None:
    """One worker process: runs ``main``, which sets ``ready`` once it listens."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
    main(host, port, path, ready.set)


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


def run_workers(
    main: WorkerMain, host: str, port: int, path: str, workers: int, redis: Optional[str]
) -> int:
    """Run ``workers`` processes of ``main`` on ``port`` until SIGINT/SIGTERM; the exit status.

    ``main`` must be picklable (a module-level function, or a
    :func:`functools.partial` of one): the workers are spawned. ``redis`` and
    a history file (``path``) are required; :class:`ValueError` otherwise.
    """
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

    ready: dict[int, Event] = {}  # id(process) -> its "listening" event

    def new_worker() -> BaseProcess:
        event = context.Event()
        process = context.Process(target=_worker, args=(main, host, port, path, event), daemon=True)
        ready[id(process)] = event
        return process

    processes = [new_worker() for _ in range(workers)]
    restarts: list[float] = []
    stopping = False
    stopped_at = 0.0

    def stop(*_: object) -> None:
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
