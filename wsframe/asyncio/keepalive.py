"""Heartbeats: one timer per server (or client) pings every member connection.

A ping goes out every ``ping_interval`` seconds; when its pong has not come
back within ``ping_timeout``, the connection is failed with close code 1011 —
this is how a peer that vanished behind a NAT is found. One periodic sweep
serves every connection, so an idle connection holds no timer of its own.
What to do for each connection at each tick is the connection's business
(:meth:`wsframe.driver.KeepaliveMember.keepalive`); this module only keeps
time.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from ..driver import KeepaliveMember
from ..options import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT

__all__ = ["DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT", "Heartbeat"]


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
        self._members: set[KeepaliveMember] = set()
        self._handle: Optional[asyncio.TimerHandle] = None

    def __len__(self) -> int:
        """The number of member connections."""
        return len(self._members)

    def add(self, member: KeepaliveMember) -> None:
        """Start pinging ``member`` (its first ping goes out after ``ping_interval``)."""
        member.keepalive_start(self._loop.time())
        self._members.add(member)
        if self._handle is None:
            self._handle = self._loop.call_later(self._period, self._tick)

    def discard(self, member: KeepaliveMember) -> None:
        """Stop pinging ``member``."""
        self._members.discard(member)
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
        interval, timeout = self.ping_interval, self.ping_timeout
        for member in list(self._members):
            if not member.keepalive(now, interval, timeout):
                self._members.discard(member)
        self._handle = self._loop.call_later(self._period, self._tick) if self._members else None
