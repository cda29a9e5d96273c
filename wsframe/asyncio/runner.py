"""Run a server until SIGINT or SIGTERM, on uvloop when it is installed.

:func:`run_until_signal` is what ``python -m wsframe echo`` and ``python -m
wsframe chat`` do with their servers, and what an application's ``main``
can do with its own::

    @contextlib.asynccontextmanager
    async def app():
        async with serve(handler, "127.0.0.1", 8000) as server:
            print(f"listening on ws://127.0.0.1:{server.port}", flush=True)
            yield

    sys.exit(run_until_signal(app))
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Callable, TypeVar

__all__ = ["STOP_SIGNALS", "run", "run_until_signal"]

_T = TypeVar("_T")

#: The signals that stop a server: Ctrl-C and the polite kill.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)``, on uvloop when it is installed.

    uvloop's socket transports and timers are in C, which halves the cost of
    each write of a broadcast.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    uvloop.install()  # pragma: no cover - older Pythons
    return asyncio.run(main)  # pragma: no cover


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Future[None]]:
    """A future that completes on SIGINT or SIGTERM, for the running loop's lifetime."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop(*_: object) -> None:
        if not stop.done():
            stop.set_result(None)

    installed = []
    for signum in STOP_SIGNALS:
        try:
            loop.add_signal_handler(signum, request_stop)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # Windows
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(request_stop))
    try:
        yield stop
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def run_until_signal(serving: Callable[[], AbstractAsyncContextManager[object]]) -> int:
    """Enter ``serving()`` on a new event loop, stay until SIGINT or SIGTERM, leave it.

    ``serving`` is an async context manager factory (e.g. a
    :func:`contextlib.asynccontextmanager` that starts a server, prints where
    it listens and yields). The signals are handled from before it is
    entered, so one that comes as soon as the server listens stops it
    cleanly too. Returns the exit status: 0.
    """

    async def main() -> None:
        with _stop_signals() as stop:
            async with serving():
                await stop

    run(main())
    return 0
