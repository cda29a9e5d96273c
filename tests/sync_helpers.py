"""Helpers for the tests of the threaded API: servers in a thread, bounded waits."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

from wsframe.sync import Server, serve

#: Upper bound of one blocking step, in seconds.
STEP = 5.0


def echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


@contextlib.contextmanager
def running(handler: Callable[[Any], Any] = echo, **kwargs: Any) -> Iterator[Server]:
    """A :func:`wsframe.sync.serve` server on a free loopback port, accepting in a thread."""
    kwargs.setdefault("ping_interval", None)
    server = serve(handler, "127.0.0.1", 0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, name="test-serve-forever", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(STEP)
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"


def uri(server: Server, path: str = "/", scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{server.port}{path}"


def eventually(predicate: Callable[[], bool], timeout: float = STEP) -> None:
    """Wait until ``predicate()`` is true (polling), or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)
