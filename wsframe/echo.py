"""``python -m wsframe echo``: the conformance and benchmark echo server.

Text is echoed as text and binary as binary, from a :class:`Listener` whose
``on_message`` runs synchronously as data arrives. permessage-deflate is
accepted, messages up to 64 MiB. Runs on uvloop when it is installed.
``--api sync`` runs the threaded server of :mod:`wsframe.sync` instead (a
thread per connection echoing in a ``for message in ws`` loop).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from .asyncio import Listener, WebSocket, serve

__all__ = ["EchoListener", "run_echo", "run_sync_echo"]

#: Autobahn's largest messages are 16 MiB; leave room.
ECHO_MAX_MESSAGE_SIZE = 64 << 20


class EchoListener(Listener):
    """Sends every message back as it came."""

    def on_message(self, ws: WebSocket, message: Any) -> None:
        ws.send_nowait(message)


async def _serve(host: str, port: int, **options: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(
                signum,
                # set_result returns None: the lambda's value is never used.
                lambda: stop.done() or stop.set_result(None),  # type: ignore[func-returns-value]
            )
        except (NotImplementedError, RuntimeError):  # Windows
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set_result, None))
    async with serve(
        EchoListener, host, port, max_message_size=ECHO_MAX_MESSAGE_SIZE, **options
    ) as server:
        print(f"listening on ws://{host}:{server.port}", flush=True)
        await stop


def run_echo(host: str = "127.0.0.1", port: int = 9001, **options: Any) -> int:
    """Run the echo server until SIGINT or SIGTERM; return the exit status (0)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(host, port, **options))
    else:
        if sys.version_info >= (3, 11):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_serve(host, port, **options))
        else:  # pragma: no cover - older Pythons
            uvloop.install()
            asyncio.run(_serve(host, port, **options))
    return 0


def sync_echo(ws: Any) -> None:
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
