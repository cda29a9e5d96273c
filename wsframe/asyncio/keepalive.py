"""Heartbeats: one timer per server (or client) pings every member connection.

A ping goes out every ``ping_interval`` seconds; when its pong has not come
back within ``ping_timeout``, the connection is failed with close code 1011 —
this is how a peer that vanished behind a NAT is found. One periodic sweep
serves every connection, so an idle connection holds no timer of its own.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .connection import WebSocket

__all__ = ["DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT", "Heartbeat"]

#: Default seconds between two pings.
DEFAULT_PING_INTERVAL = 20.0
#: Default seconds to wait for a pong before failing the connection with 1011.
DEFAULT_PING_TIMEOUT = 20.0


class Heartbeat:
    """Pings a set of connections and fails those whose pong does not come back."""

    __slots__ = ("_handle", "_loop", "_members", "_period", "ping_interval", "ping_timeout")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, ping_interval: float, ping_timeout: float
    ) -> None:
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive")
        self._loop = loop
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        # Deadlines are met to within a quarter of the shorter delay.
        self._period = max(0.01, min(ping_interval, ping_timeout) / 4)
        self._members: set[WebSocket] = set()
        self._handle: Optional[asyncio.TimerHandle] = None

    def add(self, ws: WebSocket) -> None:
        """Start pinging ``ws`` (its first ping goes out after ``ping_interval``)."""
        ws._ping_sent_at = self._loop.time()
        ws._ping_payload = None
        self._members.add(ws)
        if self._handle is None:
            self._handle = self._loop.call_later(self._period, self._tick)

    def discard(self, ws: WebSocket) -> None:
        """Stop pinging ``ws``."""
        self._members.discard(ws)
        if not self._members and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        """Stop every ping."""
        self._members.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = self._loop.time()
        interval = self.ping_interval
        for ws in list(self._members):
            if ws._paused_reading:
                # The application is behind and reading is paused: a pong
                # could not be read, so the peer is not to blame.
                if ws._ping_payload is not None:
                    ws._ping_deadline = now + self.ping_timeout
                continue
            if ws._ping_payload is not None:
                if now >= ws._ping_deadline:
                    self._members.discard(ws)
                    ws.fail(1011, "keepalive ping timeout")
            elif now - ws._ping_sent_at >= interval:
                ws._send_heartbeat(os.urandom(4), now, now + self.ping_timeout)
        self._handle = self._loop.call_later(self._period, self._tick) if self._members else None
