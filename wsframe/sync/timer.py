"""Delayed calls for the threaded driver: one timer thread per process.

The driver core asks for ``call_later(delay, callback)`` a few times in a
connection's life (drop a connection whose peer does not finish the closing
handshake, fail a connection once a held-back violation is due). A thread
per call would be wasteful; :func:`call_later` keeps a heap of deadlines
served by one daemon thread, started when first needed. Callbacks run in
that thread, one at a time: they must not block (the threaded driver's take
the connection's lock and send without waiting).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable, Optional

__all__ = ["TimerHandle", "call_later"]

logger = logging.getLogger("wsframe.sync")


class TimerHandle:
    """A pending call; :meth:`cancel` it to drop it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback: Optional[Callable[[], object]] = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (if it has not run yet)."""
        self.cancelled = True
        self.callback = None


class _Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, delay), callback)
        with self._cond:
            heapq.heappush(self._heap, (handle.when, next(self._counter), handle))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wsframe-timer", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is handle:
                self._cond.notify()  # an earlier deadline than the one waited for
        return handle

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if heap and heap[0][0] <= now:
                        handle = heapq.heappop(heap)[2]
                        break
                    self._cond.wait(heap[0][0] - now if heap else None)
            callback = handle.callback
            handle.callback = None
            if callback is not None and not handle.cancelled:
                try:
                    callback()
                except Exception:
                    logger.exception("timer callback %r failed", callback)


_timers = _Timers()


def call_later(delay: float, callback: Callable[[], object]) -> TimerHandle:
    """Run ``callback()`` in the timer thread after ``delay`` seconds."""
    return _timers.call_later(delay, callback)
