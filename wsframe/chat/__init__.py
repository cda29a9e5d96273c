"""``python -m wsframe chat``: an instant-messaging server with a browser client.

The page is served at ``/`` and the WebSocket at ``/ws``; the JSON protocol
is described in ``docs/chat-protocol.md``. Modules, in the order a reader may
want them: :mod:`.protocol` (validation and encoding of messages),
:mod:`.server` (sessions, nicknames, rooms, presence, rate limits),
:mod:`.pages` (the page and its assets), :mod:`.store` (SQLite history),
:mod:`.supervisor` (several worker processes) and this module, which runs it.

``workers=N`` (``--workers``) runs N processes on one port (``SO_REUSEPORT``),
sharing rooms through Redis (``redis=URL``, required when N > 1) and one
SQLite history file in WAL mode. A worker that dies after it was up (killed,
crashed) is replaced; its clients reconnect to the others meanwhile, and its
users leave the others' presence when its presence expires.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..asyncio.runner import run_until_signal
from ..handshake import OriginPolicy
from .server import ChatServer, ChatSession, RateLimiter
from .store import HistoryStore, default_db_path
from .supervisor import run_workers

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


@contextlib.asynccontextmanager
async def _serving(
    host: str,
    port: int,
    db: str,
    reuse_port: bool = False,
    ready: Optional[Callable[[], object]] = None,
    **options: Any,
) -> AsyncIterator[None]:
    chat = ChatServer(db, **options)
    serve_options = {"reuse_port": True} if reuse_port else {}
    async with chat.serve(host, port, **serve_options) as server:
        print(f"chat history in {'memory' if db == ':memory:' else db}", flush=True)
        if options.get("redis") is not None:
            print(f"rooms shared through {options['redis']} (pid {os.getpid()})", flush=True)
        print(f"listening on http://{_url_host(host)}:{server.port}", flush=True)
        if ready is not None:
            ready()
        yield


def _run_one(
    host: str,
    port: int,
    path: str,
    ready: Optional[Callable[[], object]] = None,
    *,
    reuse_port: bool = False,
    **options: Any,
) -> int:
    """One chat process until SIGINT or SIGTERM (``ready()`` once it listens)."""
    return run_until_signal(
        partial(_serving, host, port, path, reuse_port=reuse_port, ready=ready, **options)
    )


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
        # Each worker publishes its numbers here: /stats.json and /metrics
        # on any of them show every worker's.
        with tempfile.TemporaryDirectory(prefix="wsframe-chat-stats-") as stats_dir:
            worker = partial(_run_one, reuse_port=True, redis=redis, stats_dir=stats_dir, **options)
            return run_workers(worker, host, port, path, workers, redis)
    return _run_one(host, port, path, reuse_port=reuse_port, redis=redis, **options)
