"""What the connections of a server (or of a process's clients) count.

This file is the pure-Python implementation and also the source of the
compiled one: the build compiles it with Cython, typed by ``_counters_c.pxd``,
as ``wsframe._counters_c``, whose fields are C integers that the compiled
driver core and connection bump without a Python call. :mod:`wsframe.stats`
documents them and turns them into a typed snapshot.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "HANDSHAKE_BUCKETS",
    "LIMIT_CAUSES",
    "MAX_CLOSE_CODES",
    "OTHER_CODES",
    "RTT_BUCKETS",
    "Counters",
    "payload_size",
    "utf8_length",
]

#: Distinct close codes counted one by one; beyond them (a peer may send any
#: of 3000-4999), codes are counted together under :data:`OTHER_CODES`.
MAX_CLOSE_CODES = 64
#: The key of the codes beyond :data:`MAX_CLOSE_CODES` (0 is no close code).
OTHER_CODES = 0
#: Upper bounds (seconds) of the ping round-trip histogram's buckets.
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Upper bounds (seconds) of the opening handshake duration's buckets.
HANDSHAKE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
#: The causes of a close that are a peer going over a limit (counted as
#: limit violations too).
LIMIT_CAUSES = frozenset({"message_too_big", "ping_flood", "slow_consumer"})


def utf8_length(text: str) -> int:
    """How many bytes ``text`` takes in UTF-8 (without encoding ASCII text)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def payload_size(data: Any) -> int:
    """Bytes of a payload: ``str`` as UTF-8, any bytes-like object by its buffer."""
    if type(data) is bytes:
        return len(data)
    if type(data) is str:
        return utf8_length(data)
    return memoryview(data).nbytes


class Counters:
    """Counters and gauges shared by a group of connections.

    The per-message ones are plain integer fields that the driver core, the
    connection and the deflate extension add to as they work; the rarer
    events (closes, refusals, round trips) go through methods. Every field
    only grows, except the gauge :attr:`connections_open`.

    On one event loop the counts are exact. Connections running in several
    threads (``wsframe.sync``) share their server's counters without a lock:
    a bump may rarely be lost when two threads add at the same instant.
    """

    def __init__(self, side: str = "server") -> None:
        #: ``"server"`` or ``"client"``: which side its connections are.
        self.side = side
        #: Connections open now (a gauge).
        self.connections_open = 0
        #: Opening handshakes completed.
        self.connections_accepted = 0
        #: Connections closed after they opened.
        self.connections_closed = 0
        #: TCP connections that never completed a handshake nor got an answer
        #: (dropped by ``open_timeout``, or the peer left).
        self.handshakes_abandoned = 0
        #: Messages received, by type.
        self.messages_received_text = 0
        self.messages_received_binary = 0
        #: Payload bytes of the messages received (inflated, text as UTF-8).
        self.message_bytes_received = 0
        #: Messages sent, by type (a broadcast counts once per recipient).
        self.messages_sent_text = 0
        self.messages_sent_binary = 0
        #: Payload bytes of the messages sent (before compression).
        self.message_bytes_sent = 0
        #: Bytes read from and written to the network (handshakes and frame
        #: headers included; compressed payloads as compressed).
        self.bytes_received = 0
        self.bytes_sent = 0
        #: Frames received and sent (control frames included).
        self.frames_received = 0
        self.frames_sent = 0
        #: Pings and pongs received and sent.
        self.pings_received = 0
        self.pongs_received = 0
        self.pings_sent = 0
        self.pongs_sent = 0
        #: permessage-deflate: payload bytes as compressed and as inflated,
        #: received; as given and as compressed, sent.
        self.compressed_bytes_received = 0
        self.decompressed_bytes_received = 0
        self.uncompressed_bytes_sent = 0
        self.compressed_bytes_sent = 0
        #: Times reading paused because the application fell behind
        #: (``max_queue`` messages waiting), and writing paused because the
        #: peer did (the write buffer over ``write_limit``).
        self.reading_pauses = 0
        self.writing_pauses = 0
        #: Close frames sent and received, by close code (None: no code;
        #: :data:`OTHER_CODES`: any code beyond the first
        #: :data:`MAX_CLOSE_CODES` distinct ones).
        self.close_codes_sent: dict[Optional[int], int] = {}
        self.close_codes_received: dict[Optional[int], int] = {}
        #: Connections closed, by ``(cause, clean)`` (see
        #: :func:`wsframe.stats.close_cause`).
        self.closes: dict[tuple[str, bool], int] = {}
        #: Answers that were not an upgrade (refusals, plain HTTP), by status.
        self.responses: dict[int, int] = {}
        #: Limits a peer went over, by kind (``message_too_big``,
        #: ``ping_flood``, ``slow_consumer``, ``too_many_connections``...).
        self.limit_violations: dict[str, int] = {}
        #: Broadcast recipients skipped because their buffer was full.
        self.broadcast_skipped = 0
        #: Heartbeat ping round trips: count per bucket (:data:`RTT_BUCKETS`,
        #: the last one beyond them), their count and sum (seconds).
        self.rtt_buckets: list[int] = [0] * (len(RTT_BUCKETS) + 1)
        self.rtt_count = 0
        self.rtt_sum = 0.0
        #: Opening handshake durations (:data:`HANDSHAKE_BUCKETS`), the same way.
        self.handshake_buckets: list[int] = [0] * (len(HANDSHAKE_BUCKETS) + 1)
        self.handshake_count = 0
        self.handshake_sum = 0.0

    def message_received(self, message: Any) -> None:
        """Count a message received (``str`` text, else binary)."""
        if type(message) is str:
            self.messages_received_text += 1
        else:
            self.messages_received_binary += 1
        self.message_bytes_received += payload_size(message)

    def message_sent(self, message: Any) -> None:
        """Count a message sent (``str`` text, else binary)."""
        if type(message) is str:
            self.messages_sent_text += 1
        else:
            self.messages_sent_binary += 1
        self.message_bytes_sent += payload_size(message)

    def observe_rtt(self, seconds: float) -> None:
        """A heartbeat ping's round trip took ``seconds``."""
        self.rtt_buckets[_bucket(RTT_BUCKETS, seconds)] += 1
        self.rtt_count += 1
        self.rtt_sum += seconds

    def observe_handshake(self, seconds: float) -> None:
        """An opening handshake took ``seconds`` (from the TCP connection to open)."""
        self.handshake_buckets[_bucket(HANDSHAKE_BUCKETS, seconds)] += 1
        self.handshake_count += 1
        self.handshake_sum += seconds

    def count_close(
        self,
        cause: str,
        clean: bool,
        sent: Optional[tuple[Optional[int], str]],
        received: Optional[tuple[Optional[int], str]],
    ) -> None:
        """An open connection closed: its cause and the close frames exchanged."""
        self.connections_open -= 1
        self.connections_closed += 1
        key = (cause, clean)
        self.closes[key] = self.closes.get(key, 0) + 1
        if sent is not None:
            _count_code(self.close_codes_sent, sent[0])
        if received is not None:
            _count_code(self.close_codes_received, received[0])

    def count_response(self, status: int) -> None:
        """The handshake was answered with ``status`` instead of an upgrade."""
        self.responses[status] = self.responses.get(status, 0) + 1

    def count_violation(self, kind: str) -> None:
        """A peer went over a limit of the ``kind`` given."""
        self.limit_violations[kind] = self.limit_violations.get(kind, 0) + 1

    def add(self, other: Counters) -> None:
        """Add what ``other`` counted to these counters (its gauge too)."""
        for name in _NUMBERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _BY_KEY:
            mine = getattr(self, name)
            for key, count in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + count
        for name in ("rtt_buckets", "handshake_buckets"):
            mine = getattr(self, name)
            for index, count in enumerate(getattr(other, name)):
                mine[index] += count


#: The numeric fields of :class:`Counters` (what :meth:`Counters.add` sums).
_NUMBERS = (
    "connections_open",
    "connections_accepted",
    "connections_closed",
    "handshakes_abandoned",
    "messages_received_text",
    "messages_received_binary",
    "message_bytes_received",
    "messages_sent_text",
    "messages_sent_binary",
    "message_bytes_sent",
    "bytes_received",
    "bytes_sent",
    "frames_received",
    "frames_sent",
    "pings_received",
    "pongs_received",
    "pings_sent",
    "pongs_sent",
    "compressed_bytes_received",
    "decompressed_bytes_received",
    "uncompressed_bytes_sent",
    "compressed_bytes_sent",
    "reading_pauses",
    "writing_pauses",
    "broadcast_skipped",
    "rtt_count",
    "rtt_sum",
    "handshake_count",
    "handshake_sum",
)
#: Its counts by key.
_BY_KEY = ("close_codes_sent", "close_codes_received", "closes", "responses", "limit_violations")


def _count_code(counts: dict[Optional[int], int], code: Optional[int]) -> None:
    if code not in counts and len(counts) >= MAX_CLOSE_CODES:
        code = OTHER_CODES
    counts[code] = counts.get(code, 0) + 1


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    index = 0
    for bound in bounds:
        if value <= bound:
            return index
        index += 1
    return index
