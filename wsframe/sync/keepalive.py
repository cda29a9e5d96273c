"""Heartbeats for the threaded driver: a thread pings every member connection.

A server has one heartbeat thread for all its connections (a client one for
its connection). Each tick asks every member what to do
(:meth:`wsframe.driver.KeepaliveMember.keepalive`: ping when due, fail when
the pong is late); the threaded connection takes its lock for that and sends
without waiting, so one peer that does not read cannot stall the others. The
thread runs while there are members and is started again for the next one.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from ..driver import KeepaliveMember

__all__ = ["Heartbeat"]


class Heartbeat:
    """Pings a set of connections from one thread; fails those whose pong is late."""

    def __init__(self, ping_interval: float, ping_timeout: float, name: str = "") -> None:
        if not (ping_interval > 0 and ping_timeout > 0):
            raise ValueError("ping_interval and ping_timeout must be positive")
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        #: Seconds between ticks: deadlines are met to within a quarter of the shorter delay.
        self.period = max(0.01, min(ping_interval, ping_timeout) / 4)
        self._name = name or "wsframe-heartbeat"
        self._members: set[KeepaliveMember] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __len__(self) -> int:
        """The number of member connections."""
        return len(self._members)

    def add(self, member: KeepaliveMember) -> None:
        """Start pinging ``member`` (its first ping after ``ping_interval``)."""
        member.keepalive_start(time.monotonic())
        with self._lock:
            if self._stop.is_set():
                return
            self._members.add(member)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def discard(self, member: KeepaliveMember) -> None:
        """Stop pinging ``member``."""
        with self._lock:
            self._members.discard(member)

    def close(self) -> None:
        """Stop every ping; the thread ends at its next tick."""
        with self._lock:
            self._members.clear()
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                members = list(self._members)
                if not members:
                    self._thread = None
                    return
            now = time.monotonic()
            for member in members:
                if not member.keepalive(now, self.ping_interval, self.ping_timeout):
                    self.discard(member)
        with self._lock:
            self._thread = None
