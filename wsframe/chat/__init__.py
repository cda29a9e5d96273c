"""``python -m wsframe chat``: an instant-messaging server with a browser client.

The page is served at ``/`` and the WebSocket at ``/ws``; the JSON protocol
is described in ``docs/chat-protocol.md``. Modules: :mod:`.protocol`
(validation and encoding of messages), :mod:`.store` (SQLite history),
:mod:`.server` (nicknames, rooms, presence, rate limits, the HTTP front).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, Optional, Union

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


async def _serve(host: str, port: int, db: str, **options: Any) -> None:
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
    async with chat.serve(host, port) as server:
        where = "memory" if db == ":memory:" else db
        print(f"chat history in {where}", flush=True)
        print(f"listening on http://{_url_host(host)}:{server.port}", flush=True)
        await stop


def run_chat(
    host: str = "127.0.0.1",
    port: int = 8765,
    db: Optional[Union[str, Path]] = None,
    **options: Any,
) -> int:
    """Run the chat server until SIGINT or SIGTERM; return the exit status (0).

    ``db`` is the history's SQLite file (default: :func:`default_db_path`), or
    ``":memory:"``. ``options`` go to :class:`ChatServer`.
    """
    path = str(default_db_path() if db is None else db)
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
