"""``python -m wsframe echo``: the conformance and benchmark echo server.

Text is echoed as text and binary as binary, from a :class:`Listener` whose
``on_message`` runs synchronously as data arrives. permessage-deflate is
accepted, messages up to 64 MiB. Runs on uvloop when it is installed.
``--api sync`` runs the threaded server of :mod:`wsframe.sync` instead (a
thread per connection echoing in a ``for message in ws`` loop).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

from .asyncio import Listener, WebSocket, serve
from .asyncio.runner import run_until_signal
from .typing import Data

if TYPE_CHECKING:
    from .sync import WebSocket as SyncWebSocket

__all__ = ["EchoListener", "run_echo", "run_sync_echo"]

#: Autobahn's largest messages are 16 MiB; leave room.
ECHO_MAX_MESSAGE_SIZE = 64 << 20


class EchoListener(Listener):
    """Sends every message back as it came."""

    def on_message(self, ws: WebSocket, message: Data) -> None:
        ws.send_nowait(message)


@contextlib.asynccontextmanager
async def _serving(host: str, port: int, **options: Any) -> AsyncIterator[None]:
    async with serve(
        EchoListener, host, port, max_message_size=ECHO_MAX_MESSAGE_SIZE, **options
    ) as server:
        print(f"listening on ws://{host}:{server.port}", flush=True)
        yield


def run_echo(host: str = "127.0.0.1", port: int = 9001, **options: Any) -> int:
    """Run the echo server until SIGINT or SIGTERM; return the exit status (0)."""
    return run_until_signal(partial(_serving, host, port, **options))


def sync_echo(ws: SyncWebSocket) -> None:
    """The threaded server's handler: every message back as it came."""
    for message in ws:
        ws.send(message)


def run_sync_echo(host: str = "127.0.0.1", port: int = 9001, **options: Any) -> int:
    """The echo server on :mod:`wsframe.sync`, until SIGINT or SIGTERM (exit status 0)."""
    from .sync import serve as serve_sync

    # SIGTERM as Ctrl-C: serve_forever shuts down gracefully (1001) and returns.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with serve_sync(
        sync_echo, host, port, max_message_size=ECHO_MAX_MESSAGE_SIZE, **options
    ) as server:
        print(f"listening on ws://{host}:{server.port}", flush=True)
        server.serve_forever()
    return 0
