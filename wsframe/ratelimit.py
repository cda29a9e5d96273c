"""A token bucket: how often something may happen, with bursts."""

from __future__ import annotations

import time
from typing import Callable, Optional

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows ``rate`` events per second on average and ``burst`` at once.

    The bucket holds at most ``burst`` tokens and gains ``rate`` tokens per
    second; :meth:`take` spends one and says whether there was one to spend.
    It starts full. ``clock`` measures time in seconds
    (:func:`time.monotonic` by default; tests pass their own).

    Used by the connection for the pings a peer may send
    (``max_ping_rate``/``max_ping_burst``) and by the chat demo for the
    messages a client may send.
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, not {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, not {burst}")
        #: Tokens gained per second.
        self.rate = rate
        #: Tokens the bucket holds at most.
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp: Optional[float] = None

    def take(self) -> bool:
        """Spend a token if there is one: True if allowed, False if over the rate."""
        now = self._clock()
        tokens = self._tokens
        if self._stamp is not None:
            tokens = min(self.burst, tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
