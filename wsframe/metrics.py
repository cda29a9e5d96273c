"""wsframe's counters for Prometheus (``pip install wsframe[metrics]``).

:class:`Collector` reads :mod:`wsframe.stats` at each scrape and yields
metrics named after Prometheus' conventions; :func:`metrics_endpoint` is a
ready ``process_request`` that serves them at ``/metrics`` on the WebSocket
port::

    from wsframe.asyncio import serve
    from wsframe.metrics import metrics_endpoint

    server = await serve(handler, "0.0.0.0", 8765, process_request=metrics_endpoint())

Every metric has a ``side`` label (``server`` or ``client``):

=============================================  =========  ==========================
name                                           type       labels
=============================================  =========  ==========================
``wsframe_connections_open``                   gauge
``wsframe_connections_accepted_total``         counter
``wsframe_connections_closed_total``           counter    ``cause``, ``clean``
``wsframe_connections_refused_total``          counter    ``status`` (4xx, 5xx)
``wsframe_http_responses_total``               counter    ``status`` (every non-101)
``wsframe_handshakes_abandoned_total``         counter
``wsframe_handshake_duration_seconds``         histogram
``wsframe_messages_received_total``            counter    ``type`` (text, binary)
``wsframe_messages_sent_total``                counter    ``type``
``wsframe_message_received_bytes_total``       counter    (payloads, inflated)
``wsframe_message_sent_bytes_total``           counter
``wsframe_received_bytes_total``               counter    (the network's bytes)
``wsframe_sent_bytes_total``                   counter
``wsframe_frames_received_total``              counter
``wsframe_frames_sent_total``                  counter
``wsframe_pings_received_total`` (and pongs,   counter
sent)
``wsframe_deflate_compressed_bytes_total``     counter    ``direction`` (received,
                                                          sent)
``wsframe_deflate_uncompressed_bytes_total``   counter    ``direction``
``wsframe_close_frames_sent_total``            counter    ``code`` (``none``: no code,
                                                          ``other``: beyond 64 codes)
``wsframe_close_frames_received_total``        counter    ``code``
``wsframe_limit_violations_total``             counter    ``kind``
``wsframe_broadcast_skipped_total``            counter
``wsframe_reading_pauses_total``               counter
``wsframe_writing_pauses_total``               counter
``wsframe_ping_rtt_seconds``                   histogram
=============================================  =========  ==========================

The compression ratio is ``uncompressed / compressed`` per direction;
heartbeat timeouts are ``wsframe_connections_closed_total{cause="heartbeat_timeout"}``.

Several worker processes (``python -m wsframe chat --workers N``): each has
its own counters, and a scrape reaches whichever worker the kernel picks.
Either give each worker's collector a ``worker`` label
(``Collector(labels={"worker": "2"})``) and scrape each worker on an address
of its own, or have every worker publish its numbers to one directory
(:class:`wsframe.stats.StatsDirectory`) and collect from it
(``Collector(directory)``): any worker then answers every worker's numbers,
one ``worker`` label each; sum them in the query (``sum without (worker)
(...)``). The chat does the latter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, Optional, Union

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from .counters import Counters
from .handshake import HTTPAnswer, Request
from .stats import Histogram, Stats, StatsDirectory, process_stats

__all__ = ["Collector", "metrics_endpoint", "new_registry", "stats_metrics"]

#: What a :class:`Collector` reads: a server (anything with ``counters``),
#: :class:`~wsframe.counters.Counters`, a
#: :class:`~wsframe.stats.StatsDirectory`, or a function returning
#: ``{side: Stats}``.
Source = Union[Any, Counters, StatsDirectory, Callable[[], Mapping[str, Stats]]]


def _process_sources() -> dict[str, Stats]:
    return {"server": process_stats("server"), "client": process_stats("client")}


class Collector:
    """A Prometheus collector of wsframe's counters, read at each scrape.

    ``source``: None for every connection of the process (servers summed,
    clients summed); a server (``wsframe.asyncio.Server``,
    ``wsframe.sync.Server``) or a :class:`~wsframe.counters.Counters` for
    those alone; a :class:`~wsframe.stats.StatsDirectory` for every worker
    process publishing there (a ``worker`` label each); or a function
    returning ``{side: Stats}``. ``labels`` are added to every sample (e.g.
    ``{"worker": "1"}``).
    """

    def __init__(
        self, source: Optional[Source] = None, *, labels: Optional[Mapping[str, str]] = None
    ) -> None:
        self.labels = dict(labels or {})
        self._directory = source if isinstance(source, StatsDirectory) else None
        self._read = _reader(source) if self._directory is None else None

    def collect(self) -> Iterator[Metric]:
        """The metrics, read now (called by the registry at each scrape)."""
        if self._directory is not None:
            groups = [
                ({**self.labels, "worker": worker}, by_side)
                for worker, by_side in self._directory.read().items()
            ]
            return iter(stats_metrics(groups))
        assert self._read is not None
        return iter(stats_metrics([(self.labels, self._read())]))

    def describe(self) -> list[Metric]:
        """Nothing: the registry calls :meth:`collect` lazily."""
        return []


def _reader(source: Optional[Source]) -> Callable[[], Mapping[str, Stats]]:
    if source is None:
        return _process_sources
    if isinstance(source, Counters):
        counters = source
        return lambda: {counters.side: Stats.of([counters])}
    counters_of = getattr(source, "counters", None)
    if isinstance(counters_of, Counters):
        owned = counters_of
        return lambda: {owned.side: Stats.of([owned])}
    if callable(source):
        return source
    raise TypeError(f"cannot collect metrics from {source!r}")


Family = Union[CounterMetricFamily, GaugeMetricFamily]


class _Families:
    """Metric families by name, created on first use, with their label names."""

    def __init__(self) -> None:
        #: Every family, in the order first seen.
        self.families: list[Metric] = []
        self._values: dict[str, Family] = {}
        self._histograms: dict[str, HistogramMetricFamily] = {}

    def add(
        self,
        kind: type[Family],
        name: str,
        documentation: str,
        labels: Mapping[str, str],
        value: float,
    ) -> None:
        family = self._values.get(name)
        if family is None:
            family = self._values[name] = kind(name, documentation, labels=list(labels))
            self.families.append(family)
        family.add_metric(list(labels.values()), value)

    def histogram(
        self, name: str, documentation: str, labels: Mapping[str, str], histogram: Histogram
    ) -> None:
        family = self._histograms.get(name)
        if family is None:
            family = self._histograms[name] = HistogramMetricFamily(
                name, documentation, labels=list(labels)
            )
            self.families.append(family)
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip(histogram.bounds, histogram.counts):
            cumulative += count
            buckets.append((repr(float(bound)), cumulative))
        buckets.append(("+Inf", histogram.count))
        family.add_metric(list(labels.values()), buckets, histogram.sum)


def stats_metrics(groups: Iterable[tuple[Mapping[str, str], Mapping[str, Stats]]]) -> list[Metric]:
    """Prometheus metric families for ``(labels, {side: Stats})`` groups."""
    out = _Families()
    counter, gauge = CounterMetricFamily, GaugeMetricFamily
    for base, by_side in groups:
        for side, s in by_side.items():
            labels = {**base, "side": side}

            def add(
                family_type: type[Family],
                name: str,
                doc: str,
                value: float,
                labels: Mapping[str, str] = labels,
                **extra: str,
            ) -> None:
                out.add(family_type, name, doc, {**labels, **extra}, value)

            add(
                gauge,
                "wsframe_connections_open",
                "WebSocket connections open now.",
                s.connections_open,
            )
            add(
                counter,
                "wsframe_connections_accepted",
                "Opening handshakes completed.",
                s.connections_accepted,
            )
            for (cause, clean), count in sorted(s.closes.items()):
                add(
                    counter,
                    "wsframe_connections_closed",
                    "Connections closed after they opened, by cause.",
                    count,
                    cause=cause,
                    clean="true" if clean else "false",
                )
            for status, count in sorted(s.responses.items()):
                add(
                    counter,
                    "wsframe_http_responses",
                    "Requests answered otherwise than with an upgrade, by status.",
                    count,
                    status=str(status),
                )
                if status >= 400:
                    add(
                        counter,
                        "wsframe_connections_refused",
                        "WebSocket requests refused with an error status.",
                        count,
                        status=str(status),
                    )
            add(
                counter,
                "wsframe_handshakes_abandoned",
                "Connections that ended before the handshake completed or was answered.",
                s.handshakes_abandoned,
            )
            out.histogram(
                "wsframe_handshake_duration_seconds",
                "Opening handshakes, from the TCP connection to the connection open.",
                labels,
                s.handshake_duration,
            )
            for kind, received, sent in (
                ("text", s.messages_received_text, s.messages_sent_text),
                ("binary", s.messages_received_binary, s.messages_sent_binary),
            ):
                add(counter, "wsframe_messages_received", "Messages received.", received, type=kind)
                add(counter, "wsframe_messages_sent", "Messages sent.", sent, type=kind)
            add(
                counter,
                "wsframe_message_received_bytes",
                "Payload bytes of the messages received (inflated; text as UTF-8).",
                s.message_bytes_received,
            )
            add(
                counter,
                "wsframe_message_sent_bytes",
                "Payload bytes of the messages sent (before compression).",
                s.message_bytes_sent,
            )
            add(counter, "wsframe_received_bytes", "Bytes read from the network.", s.bytes_received)
            add(counter, "wsframe_sent_bytes", "Bytes written to the network.", s.bytes_sent)
            add(counter, "wsframe_frames_received", "Frames received.", s.frames_received)
            add(counter, "wsframe_frames_sent", "Frames sent.", s.frames_sent)
            add(counter, "wsframe_pings_received", "Pings received.", s.pings_received)
            add(counter, "wsframe_pongs_received", "Pongs received.", s.pongs_received)
            add(counter, "wsframe_pings_sent", "Pings sent.", s.pings_sent)
            add(counter, "wsframe_pongs_sent", "Pongs sent.", s.pongs_sent)
            for direction, compressed, uncompressed in (
                ("received", s.compressed_bytes_received, s.decompressed_bytes_received),
                ("sent", s.compressed_bytes_sent, s.uncompressed_bytes_sent),
            ):
                add(
                    counter,
                    "wsframe_deflate_compressed_bytes",
                    "permessage-deflate payload bytes, compressed.",
                    compressed,
                    direction=direction,
                )
                add(
                    counter,
                    "wsframe_deflate_uncompressed_bytes",
                    "permessage-deflate payload bytes, uncompressed.",
                    uncompressed,
                    direction=direction,
                )
            for name, codes in (
                ("wsframe_close_frames_sent", s.close_codes_sent),
                ("wsframe_close_frames_received", s.close_codes_received),
            ):
                for code, count in sorted(codes.items(), key=lambda item: item[0] or 0):
                    add(
                        counter,
                        name,
                        "Close frames, by close code.",
                        count,
                        code="none" if code is None else "other" if code == 0 else str(code),
                    )
            for kind, count in sorted(s.limit_violations.items()):
                add(
                    counter,
                    "wsframe_limit_violations",
                    "Limits peers went over, by kind.",
                    count,
                    kind=kind,
                )
            add(
                counter,
                "wsframe_broadcast_skipped",
                "Broadcast recipients skipped: too slow to keep up.",
                s.broadcast_skipped,
            )
            add(
                counter,
                "wsframe_reading_pauses",
                "Times reading paused because the application fell behind.",
                s.reading_pauses,
            )
            add(
                counter,
                "wsframe_writing_pauses",
                "Times writing paused because the peer fell behind.",
                s.writing_pauses,
            )
            out.histogram(
                "wsframe_ping_rtt_seconds", "Heartbeat ping round trips.", labels, s.ping_rtt
            )
    return out.families


def new_registry(source: Optional[Source] = None, **labels: str) -> CollectorRegistry:
    """A registry holding only wsframe's metrics (of ``source``, see :class:`Collector`)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(Collector(source, labels=labels))
    return registry


# --------------------------------------------------------------- the endpoint

ProcessRequest = Callable[[Any, Request], Any]


def metrics_endpoint(
    path: str = "/metrics",
    *,
    registry: Optional[CollectorRegistry] = None,
    then: Optional[ProcessRequest] = None,
) -> Callable[[Any, Request], Any]:
    """A ``process_request`` serving the metrics at ``path`` (GET, text format).

    ``registry``: what to serve (default: a registry with wsframe's metrics
    of the whole process, see :func:`new_registry`; pass
    ``prometheus_client.REGISTRY`` to serve your own metrics too). Other
    requests go to ``then`` (another ``process_request``, possibly async),
    or on to the WebSocket handshake. Works with ``wsframe.asyncio.serve``
    and ``wsframe.sync.serve``.
    """
    served = registry if registry is not None else new_registry()

    def process_request(ws: Any, request: Request) -> Any:
        if request.path == path:
            if request.method not in ("GET", "HEAD"):
                return (405, {"Allow": "GET, HEAD"}, "Method Not Allowed\n")
            answer: HTTPAnswer = (
                200,
                {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
                generate_latest(served),
            )
            return answer
        return then(ws, request) if then is not None else None

    return process_request
