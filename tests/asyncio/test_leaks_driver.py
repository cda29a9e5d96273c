"""Leak checks of the connection and the driver core (compiled, or the twins).

Messages of every kind go through a ``ServerConnection``/``ClientConnection``
pair and through the driver core with a transport that keeps nothing — the
per-message path, its failure paths (a violation, a failed connection, an
oversize message) and whole connections opened and closed. Over many rounds
the memory Python allocates (tracemalloc) must stay flat, and so must the
number of live objects: a reference the compiled code forgets to release, or
a cycle that keeps a closed connection alive, shows here.
``bash tests/valgrind.sh`` runs the codec loops under valgrind too.

PyPy has no tracemalloc and no reference counting: there only the number of
live objects is checked (after a full collection), and the check that
reference counting alone frees a closed connection is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
from conftest import IS_PYPY

try:
    import tracemalloc
except ImportError:  # PyPy
    tracemalloc = None  # type: ignore[assignment]

from wsframe import encode_frame
from wsframe.asyncio import Listener, WebSocket
from wsframe.connection import ClientConnection, ServerConnection
from wsframe.driver import DriverCore
from wsframe.errors import InvalidState
from wsframe.options import Options

KEY = b"\x11\x22\x33\x44"


class NullTransport:
    """A transport that accepts everything and keeps nothing."""

    closed = False

    def write(self, data: Any) -> None:
        pass

    def writelines(self, chunks: Any) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Driver(DriverCore):
    """The core with no event loop: callbacks run at once, timers never."""

    def call_soon(self, callback: Callable[[], Any]) -> None:
        callback()

    def call_later(self, delay: float, callback: Callable[[], Any]) -> None:
        return None


class Echo(Listener):
    def on_message(self, ws: Any, message: Any) -> None:
        ws.send_message(message)


def opened(**options: Any) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection("ws://example.com/", **options)
    server = ServerConnection(**options)
    server.receive_data(client.data_to_send())
    server.events()
    server.accept()
    client.receive_data(server.data_to_send())
    client.events()
    return client, server


def frames(*parts: tuple[int, Any, bool]) -> bytes:
    return b"".join(encode_frame(op, data, fin=fin, mask=KEY) for op, data, fin in parts)


def cases() -> dict[str, Callable[[], None]]:
    client, server = opened(compression="deflate", max_ping_rate=None)
    traffic = frames(
        (1, "héllo ✓" * 20, True),
        (2, bytes(300), True),
        (1, "frag", False),
        (9, b"ping", True),
        (0, "ment ✓", True),
    )
    driver = Driver(ServerConnection(compression=None, max_ping_rate=None), Echo())
    driver.connection_made(NullTransport())
    driver.receive(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    driver.conn.accept()
    driver.flush()
    echo = frames((2, bytes(256), True), (1, "text", True), (9, b"p", True))

    def connection_messages() -> None:
        client.send_text("compressed ✓" * 10)
        client.send_binary(bytes(1000))
        server.receive_data(client.data_to_send())
        server.events()
        server.receive_data(traffic)
        server.events()
        client.receive_data(server.data_to_send())
        client.events()

    def driver_echo() -> None:
        driver.receive(echo)

    def violation() -> None:
        _, conn = opened()
        conn.receive_data(frames((1, "a", False), (2, b"b", True)))
        conn.events()
        conn.data_to_send()

    def oversize() -> None:
        peer, conn = opened(compression="deflate", max_message_size=1000)
        peer.send_binary(bytes(20_000))  # compresses to little, inflates past the limit
        conn.receive_data(peer.data_to_send())
        conn.events()

    def whole_connection() -> None:
        ws = Driver(ServerConnection(compression=None), Echo())
        ws.connection_made(NullTransport())
        ws.receive(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        ws.conn.accept()
        ws.receive(echo)
        ws.fail(1011, "going")
        ws.connection_lost(None)
        try:
            ws.send_message("after")
        except InvalidState:
            raise
        except Exception:
            pass

    return {
        "connection_messages": connection_messages,
        "driver_echo": driver_echo,
        "violation": violation,
        "oversize": oversize,
        "whole_connection": whole_connection,
    }


def _traced() -> int:
    """Bytes allocated by Python now (tracemalloc; 0 where it does not exist)."""
    return tracemalloc.get_traced_memory()[0] if tracemalloc is not None else 0


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    if tracemalloc is None:
        yield
        return
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def _growth(func: Callable[[], None], rounds: int) -> tuple[Optional[int], int]:
    """Bytes traced (None without tracemalloc) and objects alive more after ``rounds`` calls."""
    gc.collect()
    objects_before = len(gc.get_objects())
    traced_before = _traced()
    for _ in range(rounds):
        func()
    gc.collect()
    traced = _traced() - traced_before if tracemalloc is not None else None
    return traced, len(gc.get_objects()) - objects_before


@pytest.mark.parametrize("name", list(cases()))
def test_no_leak(name: str) -> None:
    func = cases()[name]
    for _ in range(300):  # warm up caches and free lists
        func()
    with _tracing():
        # Two windows: a one-time growth (a dict of the interpreter resizing)
        # lands in one at most; a leak grows both.
        windows = [_growth(func, 1500) for _ in range(2)]
    # One small object kept per round would be >= 24 KB a window.
    if tracemalloc is not None:
        assert min(traced or 0 for traced, _ in windows) < 16 * 1024, f"{name}: {windows}"
    assert min(objects for _, objects in windows) < 100, f"{name}: {windows}"


@pytest.mark.skipif(IS_PYPY, reason="PyPy has no reference counting: its GC frees everything")
def test_a_closed_connection_is_freed_without_the_cycle_collector() -> None:
    """connection_lost breaks the connection <-> driver cycle: refcounting frees both."""

    async def main() -> int:
        options = Options(compression=None)
        gc.collect()
        gc.disable()
        try:
            before = len(gc.get_objects())
            for _ in range(200):
                ws = WebSocket(ServerConnection(options), listener=Echo())
                ws.connection_made(NullTransport())
                ws.connection_lost(None)
                del ws
            return len(gc.get_objects()) - before
        finally:
            gc.enable()

    assert asyncio.run(main()) < 50
