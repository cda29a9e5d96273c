"""Counters and gauges of connections, as typed snapshots.

Every server (:class:`wsframe.asyncio.Server`, :class:`wsframe.sync.Server`)
has its own :class:`~wsframe.counters.Counters`, bumped by its connections
as they work (the compiled message path adds to C integers, no Python call);
client connections, and server connections no server owns (the uvicorn
driver's), count in the process's defaults. ``server.stats()`` and
:func:`process_stats` return a :class:`Stats`: a frozen snapshot, safe to
keep and compare::

    before = server.stats()
    ...
    after = server.stats()
    print(after.messages_received - before.messages_received)

:mod:`wsframe.metrics` exposes the same numbers to Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Literal, Optional

from .counters import HANDSHAKE_BUCKETS, LIMIT_CAUSES, RTT_BUCKETS, Counters
from .driver import default_counters

__all__ = [
    "CLOSE_CAUSES",
    "LIMIT_KINDS",
    "Counters",
    "Histogram",
    "Stats",
    "StatsDirectory",
    "new_counters",
    "process_stats",
    "registered_counters",
    "retire_counters",
]

Side = Literal["server", "client"]

#: Every cause a connection may close with (see
#: :attr:`wsframe.driver.DriverCore.close_cause`).
CLOSE_CAUSES = (
    "peer",
    "local",
    "protocol_error",
    "message_too_big",
    "ping_flood",
    "heartbeat_timeout",
    "slow_consumer",
    "handler_error",
    "abnormal",
)
#: The kinds of limit violations counted.
LIMIT_KINDS = (*sorted(LIMIT_CAUSES), "too_many_connections")

_retired = {"server": Counters("server"), "client": Counters("client")}
_registry: list[Counters] = [
    default_counters(True),
    default_counters(False),
    _retired["server"],
    _retired["client"],
]
_registry_lock = threading.Lock()


def new_counters(side: Side = "server") -> Counters:
    """New counters for a group of connections, counted in :func:`process_stats`.

    Each server makes its own, and hands it to :func:`retire_counters` once
    closed.
    """
    counters = Counters(side)
    with _registry_lock:
        _registry.append(counters)
    return counters


def retire_counters(counters: Counters) -> None:
    """A server closed: keep what it counted in the process's totals, forget it.

    Its numbers are added to the process's totals for closed servers, so
    that :func:`process_stats` never goes down, and the registry does not
    grow with every server a process ever ran. ``counters`` stay readable
    (``server.stats()``); what they count from now on is theirs alone.
    """
    with _registry_lock:
        if counters in _registry:
            _registry.remove(counters)
            _retired[counters.side].add(counters)


def registered_counters(side: Optional[Side] = None) -> list[Counters]:
    """Every registered :class:`Counters` (of one ``side``, if given)."""
    with _registry_lock:
        return [c for c in _registry if side is None or c.side == side]


@dataclasses.dataclass(frozen=True)
class Histogram:
    """A histogram of durations: ``counts[i]`` observations were at most
    ``bounds[i]`` seconds (and above ``bounds[i - 1]``); the last count is
    above every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float

    @property
    def mean(self) -> Optional[float]:
        """The mean observation in seconds, or None without observations."""
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> Optional[float]:
        """The upper bound of the bucket holding quantile ``q`` (0-1), or None."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for bound, count in zip(self.bounds, self.counts):
            seen += count
            if seen >= rank:
                return bound
        return float("inf")

    @classmethod
    def merge(cls, histograms: Iterable[Histogram]) -> Histogram:
        """The sum of histograms with the same bounds."""
        items = list(histograms)
        bounds = items[0].bounds
        counts = [sum(column) for column in zip(*(h.counts for h in items))]
        return cls(bounds, tuple(counts), sum(h.count for h in items), sum(h.sum for h in items))


def _added(dicts: Iterable[Mapping[object, int]]) -> dict[object, int]:
    total: dict[object, int] = {}
    for counts in dicts:
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total


@dataclasses.dataclass(frozen=True)
class Stats:
    """What a group of connections counted, at one instant.

    Everything counts since the server (or process) started, except
    ``connections_open``. Bytes on the network include handshakes and frame
    headers; message bytes are payloads, inflated, text as UTF-8.
    """

    connections_open: int
    connections_accepted: int
    connections_closed: int
    handshakes_abandoned: int
    #: Answers other than an upgrade (refusals, plain HTTP), by status.
    responses: Mapping[int, int]
    messages_received_text: int
    messages_received_binary: int
    message_bytes_received: int
    messages_sent_text: int
    messages_sent_binary: int
    message_bytes_sent: int
    bytes_received: int
    bytes_sent: int
    frames_received: int
    frames_sent: int
    pings_received: int
    pongs_received: int
    pings_sent: int
    pongs_sent: int
    compressed_bytes_received: int
    decompressed_bytes_received: int
    uncompressed_bytes_sent: int
    compressed_bytes_sent: int
    reading_pauses: int
    writing_pauses: int
    broadcast_skipped: int
    #: Close frames sent and received, by code (None: a close frame without one).
    close_codes_sent: Mapping[Optional[int], int]
    close_codes_received: Mapping[Optional[int], int]
    #: Connections closed, by ``(cause, clean)``; see :data:`CLOSE_CAUSES`.
    closes: Mapping[tuple[str, bool], int]
    #: Limits peers went over, by kind; see :data:`LIMIT_KINDS`.
    limit_violations: Mapping[str, int]
    #: Heartbeat ping round trips.
    ping_rtt: Histogram
    #: Opening handshakes, from the TCP connection to the connection open.
    handshake_duration: Histogram

    @property
    def messages_received(self) -> int:
        """Messages received, text and binary."""
        return self.messages_received_text + self.messages_received_binary

    @property
    def messages_sent(self) -> int:
        """Messages sent, text and binary."""
        return self.messages_sent_text + self.messages_sent_binary

    @property
    def connections_refused(self) -> int:
        """Requests answered with an error status (4xx, 5xx) instead of an upgrade."""
        return sum(count for status, count in self.responses.items() if status >= 400)

    @property
    def compression_ratio(self) -> Optional[float]:
        """Payload bytes before compression per byte after, both ways (None: none)."""
        compressed = self.compressed_bytes_received + self.compressed_bytes_sent
        if not compressed:
            return None
        return (self.decompressed_bytes_received + self.uncompressed_bytes_sent) / compressed

    def closed_by_cause(self, cause: str) -> int:
        """Connections closed with ``cause``, clean or not."""
        return sum(count for (c, _), count in self.closes.items() if c == cause)

    @classmethod
    def of(cls, counters: Iterable[Counters]) -> Stats:
        """The sum of what the given counters counted (read now; none: all zero)."""
        total = Counters()
        for item in counters:
            total.add(item)  # a copy too: the snapshot shares nothing with live counters
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = field.name
            if name == "ping_rtt":
                values[name] = Histogram(
                    RTT_BUCKETS, tuple(total.rtt_buckets), total.rtt_count, total.rtt_sum
                )
            elif name == "handshake_duration":
                values[name] = Histogram(
                    HANDSHAKE_BUCKETS,
                    tuple(total.handshake_buckets),
                    total.handshake_count,
                    total.handshake_sum,
                )
            else:
                values[name] = getattr(total, name)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def merge(cls, items: Iterable[Stats]) -> Stats:
        """The sum of several snapshots (e.g. one per worker process; none: all zero)."""
        snapshots = list(items)
        if not snapshots:
            return cls.of([])
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = field.name
            column = [getattr(s, name) for s in snapshots]
            if name in ("ping_rtt", "handshake_duration"):
                values[name] = Histogram.merge(column)
            elif name in _DICTS:
                values[name] = _added(column)
            else:
                values[name] = sum(column)
        return cls(**values)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (:meth:`from_json` reads it back)."""
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Histogram):
                data[field.name] = [list(value.bounds), list(value.counts), value.count, value.sum]
            elif field.name == "closes":
                data[field.name] = [[cause, clean, n] for (cause, clean), n in value.items()]
            elif field.name in _DICTS:
                data[field.name] = [[key, n] for key, n in value.items()]
            else:
                data[field.name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stats:
        """A snapshot from :meth:`to_json`'s data."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = data[field.name]
            if field.name in ("ping_rtt", "handshake_duration"):
                bounds, counts, count, total = value
                values[field.name] = Histogram(tuple(bounds), tuple(counts), count, total)
            elif field.name == "closes":
                values[field.name] = {(cause, clean): n for cause, clean, n in value}
            elif field.name in _DICTS:
                values[field.name] = {key: n for key, n in value}
            else:
                values[field.name] = value
        return cls(**values)


_DICTS = frozenset(
    {"responses", "close_codes_sent", "close_codes_received", "closes", "limit_violations"}
)


def process_stats(side: Optional[Side] = None) -> Stats:
    """What every connection of the process counted (of one ``side``, if given)."""
    return Stats.of(registered_counters(side))


def _process_by_side() -> dict[str, Stats]:
    return {"server": process_stats("server"), "client": process_stats("client")}


class StatsDirectory:
    """Stats shared by worker processes through files in one ``directory``.

    Several processes serving one port (``python -m wsframe chat --workers
    N``) each count their own connections. Each process makes one of these
    on the same directory and calls :meth:`publish` now and then (:meth:`run`
    does it every few seconds): it writes ``source()`` — ``{side: Stats}``,
    by default the whole process's — to ``DIRECTORY/wsframe-WORKER.json``.
    Any process can then :meth:`read` every worker's numbers, or their
    :meth:`total`. Files not refreshed for ``stale_after`` seconds (a worker
    gone) are left out.
    """

    def __init__(
        self,
        directory: str,
        *,
        worker: Optional[str] = None,
        source: Optional[Callable[[], Mapping[str, Stats]]] = None,
        stale_after: float = 30.0,
    ) -> None:
        self.directory = directory
        #: This process's name among the workers (default: its PID).
        self.worker = worker if worker is not None else str(os.getpid())
        self.stale_after = stale_after
        self.source: Callable[[], Mapping[str, Stats]] = source or _process_by_side
        os.makedirs(directory, exist_ok=True)

    @property
    def path(self) -> str:
        """This worker's file."""
        return os.path.join(self.directory, f"wsframe-{self.worker}.json")

    def publish(self) -> None:
        """Write this worker's numbers now (atomically: readers never see half a file)."""
        data = {side: stats.to_json() for side, stats in self.source().items()}
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".wsframe-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def run(self, interval: float = 2.0) -> None:
        """Publish every ``interval`` seconds until cancelled (run it as a task)."""
        while True:
            self.publish()
            await asyncio.sleep(interval)

    def remove(self) -> None:
        """Remove this worker's file (when it stops)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def read(self) -> dict[str, dict[str, Stats]]:
        """Every live worker's numbers: ``{worker: {side: Stats}}`` (this one's fresh)."""
        self.publish()
        workers: dict[str, dict[str, Stats]] = {}
        now = time.time()
        for name in sorted(os.listdir(self.directory)):
            if not (name.startswith("wsframe-") and name.endswith(".json")):
                continue
            path = os.path.join(self.directory, name)
            try:
                if now - os.stat(path).st_mtime > self.stale_after:
                    continue
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                by_side = {side: Stats.from_json(value) for side, value in data.items()}
            except (OSError, ValueError, KeyError, TypeError):
                continue  # gone, being replaced, or not ours
            workers[name[len("wsframe-") : -len(".json")]] = by_side
        return workers

    def total(self, side: Side = "server") -> Stats:
        """The sum over every live worker of one ``side``."""
        return Stats.merge(by_side[side] for by_side in self.read().values() if side in by_side)
