"""Who may open a connection: counting connections per client address.

Both servers (:mod:`wsframe.asyncio.server` and :mod:`wsframe.sync.server`)
answer 503 to a client address beyond ``max_connections_per_ip``; this
module holds the one count they share the rules of.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

__all__ = ["ConnectionsPerClient", "client_key"]


def client_key(peername: object) -> Optional[str]:
    """What ``max_connections_per_ip`` counts a client by: its IPv4 address, or
    the /64 network of its IPv6 address (one host usually has a whole /64);
    None for a Unix socket."""
    if not isinstance(peername, tuple) or not peername:
        return None
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return str(peername[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionsPerClient:
    """Open connections per client address, against a limit.

    ``add(peername)`` counts a new connection and tells whether its address is
    now over ``limit``; ``remove(key)`` forgets it when the connection ends.
    ``counts`` maps each address (see :func:`client_key`) to its connections;
    an address with none is absent, so the map does not grow with the
    clients that came and went. Not thread-safe: a threaded server calls it
    under its own lock.
    """

    __slots__ = ("counts", "limit")

    def __init__(self, limit: Optional[int]) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"max_connections_per_ip must be >= 1 or None, not {limit}")
        self.limit = limit  #: None: no limit (nothing is counted)
        self.counts: dict[str, int] = {}  #: connections per client address

    def add(self, peername: object) -> tuple[Optional[str], bool]:
        """Count a connection from ``peername``: ``(key, over_limit)``.

        ``key`` is what to pass to :meth:`remove` later (None: nothing was
        counted, because there is no limit or the peer has no IP address).
        """
        if self.limit is None:
            return None, False
        key = client_key(peername)
        if key is None:
            return None, False
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        return key, count > self.limit

    def remove(self, key: Optional[str]) -> None:
        """Forget a connection counted by :meth:`add` (None: nothing to do)."""
        if key is None:
            return
        count = self.counts.get(key, 0) - 1
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)
