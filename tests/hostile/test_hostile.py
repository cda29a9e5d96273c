"""Hostile peers against a running server, over raw sockets.

The server (tests/hostile/hostile_server.py, an echo server) runs in a process of its
own, once with the C codec and once with the pure-Python one
(``WSFRAME_NO_EXTENSIONS=1``). After each attack: the server answered with the
right HTTP status or close code, it still serves a normal client, and the
memory Python allocated in it (tracemalloc, measured by the server after a GC)
is back near where it was; its RSS stays bounded.

Then every attack again, many times in a row against one server without
tracemalloc (and the compression bomb against ``python -m wsframe echo`` too):
the server's RSS, read from /proc without forcing a GC in it, must not grow
from the first round to the last. A short series runs by default; the long
one (``--stress`` or ``WSFRAME_STRESS=1``, marker ``stress``) repeats each
attack 200 times. ``python bench/hostile_repeat.py`` prints the table.
The attacks themselves live in tests/hostile/hostile_attacks.py.

PyPy has no tracemalloc: there the server measures its GC's memory after a
collection and, for peaks, the growth of its resident high-water mark
(tests/hostile/hostile_server.py). Both count what the JIT keeps for code it compiles
on the way, and the peak also counts garbage not collected yet, so the bounds
are coarser there (``TRACED_SLACK``, ``peak_bound``): they still catch a
compression bomb inflated (64 MiB) or memory kept per connection, not a few MiB.

The sans-I/O tests of the ping rate limit at the end run in this process, with
both codecs too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import IS_PYPY, require_c
from hostile_attacks import (
    ATTACKS,
    ECHO_ATTACKS,
    ENDLESS,
    IDLE_CONNECTIONS,
    RANDOM_SEEDS,
    RESERVED_HEADERS,
    WRONG_KEYS,
    EchoProcess,
    ServerProcess,
    assert_serves,
    attack_compression_bomb,
    attack_endless_headers,
    attack_flood_of_tiny_frames,
    attack_flood_of_tiny_messages,
    attack_half_sent_handshake,
    attack_huge_declared_length,
    attack_idle_connections,
    attack_invalid_utf8,
    attack_oversized_header_line,
    attack_oversized_request_line,
    attack_ping_flood,
    attack_pings_within_rate,
    attack_plain_http,
    attack_protocol_errors,
    attack_random_bytes,
    attack_reserved_opcodes_and_bits,
    attack_tls_on_plain_port,
    attack_too_many_header_bytes,
    attack_too_many_headers,
    attack_unmasked_frame,
    attack_wrong_key,
    attack_wrong_version,
    bomb,
    raise_nofile,
    repeat,
)

from wsframe.connection import ClientConnection, ServerConnection, State
from wsframe.events import Ping, Request

#: Python allocations a server may keep after an attack (caches warmed by it).
TRACED_SLACK = (8 << 20) if IS_PYPY else 1 << 20
#: Peaks on PyPy (see the module's docstring): below the 64 MiB bomb.
PYPY_PEAK_BOUND = 48 << 20


def peak_bound(bound: int) -> int:
    """The bound for a peak measured by the server: ``bound`` on CPython."""
    return max(bound, PYPY_PEAK_BOUND) if IS_PYPY else bound


#: RSS a server may gain over the whole module (freed memory is not always
#: returned to the OS).
RSS_SLACK = 96 << 20


# ------------------------------------------------------------------- server


def _start(implementation: str) -> str:
    """Check the codec can run; raise the open-files limit for idle_connections."""
    if implementation == "c":
        require_c()
    problem = raise_nofile(IDLE_CONNECTIONS + 1024)
    if problem is not None:
        pytest.skip(problem)
    return implementation


@pytest.fixture(scope="module", params=["c", "python"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    proc = ServerProcess(_start(request.param))
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture
def hostile(server: ServerProcess) -> Iterator[ServerProcess]:
    """The server; after the test, check that it recovered."""
    yield server
    assert_recovered(server)


def assert_recovered(server: ServerProcess) -> None:
    assert_serves(server)
    assert_serves(server, deflate=True)
    deadline = time.monotonic() + 10.0
    while True:
        stats = server.wait_idle()
        grown = stats["traced"] - server.baseline["traced"]
        if grown <= TRACED_SLACK or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert grown <= TRACED_SLACK, f"server keeps {grown} more bytes than before: {stats}"
    rss_grown = stats["rss"] - server.baseline["rss"]
    assert rss_grown <= RSS_SLACK, f"server RSS grew by {rss_grown} bytes: {stats}"


# ---------------------------------------------------------- the handshake


def test_plain_http(hostile: ServerProcess) -> None:
    attack_plain_http(hostile)


def test_wrong_version(hostile: ServerProcess) -> None:
    attack_wrong_version(hostile)


@pytest.mark.parametrize("key", WRONG_KEYS)
def test_wrong_key(hostile: ServerProcess, key: str) -> None:
    attack_wrong_key(hostile, key)


def test_oversized_request_line(hostile: ServerProcess) -> None:
    attack_oversized_request_line(hostile)


def test_oversized_header_line(hostile: ServerProcess) -> None:
    attack_oversized_header_line(hostile)


def test_too_many_headers(hostile: ServerProcess) -> None:
    attack_too_many_headers(hostile)


def test_too_many_header_bytes(hostile: ServerProcess) -> None:
    attack_too_many_header_bytes(hostile)


@pytest.mark.parametrize("endless", ENDLESS)
def test_endless_headers(hostile: ServerProcess, endless: str) -> None:
    """Headers that never end: answered with 431 long before memory matters."""
    attack_endless_headers(hostile, endless)


def test_tls_on_plain_port(hostile: ServerProcess) -> None:
    attack_tls_on_plain_port(hostile)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_bytes(hostile: ServerProcess, seed: int) -> None:
    attack_random_bytes(hostile, seed)


def test_half_sent_handshake(hostile: ServerProcess) -> None:
    """Requests held open halfway are dropped after open_timeout (1 s here)."""
    attack_half_sent_handshake(hostile)


# --------------------------------------------------------------- frames


def test_unmasked_frame(hostile: ServerProcess) -> None:
    attack_unmasked_frame(hostile)


def test_huge_declared_length(hostile: ServerProcess) -> None:
    """A header announcing 2**62 bytes: refused from the header, nothing reserved."""
    attack_huge_declared_length(hostile)


def test_invalid_utf8(hostile: ServerProcess) -> None:
    attack_invalid_utf8(hostile)


@pytest.mark.parametrize("header", RESERVED_HEADERS)
def test_reserved_opcodes_and_bits(hostile: ServerProcess, header: bytes) -> None:
    attack_reserved_opcodes_and_bits(hostile, header)


def test_protocol_errors(hostile: ServerProcess) -> None:
    attack_protocol_errors(hostile)


@pytest.mark.parametrize("fragmented", [False, True])
def test_compression_bomb(hostile: ServerProcess, fragmented: bool) -> None:
    """64 MiB of zeros in 64 KiB compressed: 64 times the 1 MiB limit."""
    assert len(bomb(64 << 20)) < 1 << 20
    hostile.stats(reset=True)
    attack_compression_bomb(hostile, fragmented)
    peak = hostile.stats()["peak"] - hostile.baseline["traced"]
    # Never inflated far past the limit: the frame, the limit, zlib's buffers.
    assert peak < peak_bound(8 << 20), peak


# ---------------------------------------------------------------- floods


def test_ping_flood(hostile: ServerProcess) -> None:
    """1000 pings at once: answered up to the burst (20), then closed with 1008."""
    attack_ping_flood(hostile)


def test_pings_within_rate(hostile: ServerProcess) -> None:
    """A peer pinging at 20/s over a burst of 20 drains its bucket slowly."""
    attack_pings_within_rate(hostile)


def test_flood_of_tiny_frames(hostile: ServerProcess) -> None:
    """A message in 300,000 tiny frames: memory stays near the message size.

    (Kept as a bytes object per frame, it would take some 14 MB for 0.9 MB.)
    """
    hostile.stats(reset=True)
    attack_flood_of_tiny_frames(hostile)
    peak = hostile.stats()["peak"] - hostile.baseline["traced"]
    assert peak < peak_bound(6 << 20), peak


def test_flood_of_tiny_messages(hostile: ServerProcess) -> None:
    """50,000 messages sent without reading: backpressure, none lost or reordered."""
    hostile.stats(reset=True)
    attack_flood_of_tiny_messages(hostile)
    peak = hostile.stats()["peak"] - hostile.baseline["traced"]
    assert peak < peak_bound(8 << 20), peak


def test_idle_connections(hostile: ServerProcess) -> None:
    """2000 open connections doing nothing; others are still served."""

    def inspect() -> None:
        stats = hostile.stats()
        assert stats["connections"] == IDLE_CONNECTIONS
        per_connection = (stats["traced"] - hostile.baseline["traced"]) / IDLE_CONNECTIONS
        print(f"\n{hostile.implementation}: {per_connection:.0f} B traced per idle connection")
        assert per_connection < 16 << 10

    attack_idle_connections(hostile, inspect)


# ------------------------------------------------------------ repetition

#: Rounds of each attack in a stress series (--stress), and the RSS it may gain
#: from its first round to its last: 5 MiB on serve(), 10 MiB for the bomb on
#: ``python -m wsframe echo`` (issue 13).
STRESS_REPS = 200
STRESS_BOUND = {"serve": 5 << 20, "echo": 10 << 20}
if IS_PYPY:
    # The echo server has no endpoint to force a collection: its RSS holds
    # the garbage of the rounds since the GC's last major collection (a
    # 64 MiB inflation each); a leak of one round each (1.9 GiB) still shows.
    STRESS_BOUND["echo"] = 3 * 64 << 20
    # On serve(), what is compared is the GC's memory after a major
    # collection, arenas included: 2000 connections a round (idle_connections)
    # leave its arenas 3-7 MiB larger over the first rounds, as the allocator's
    # warm-up does on CPython's RSS. 16 MiB still catches a leak of the bomb's
    # size (1-2 MiB a round over 30) or of a round's connections (~6 MiB a
    # round); CPython runs the same pure-Python code under the 5 MiB bound.
    STRESS_BOUND["serve"] = 16 << 20
#: The short series of the default run: 30 rounds, or 5 for the attacks that
#: take about a second each (a timeout to wait for, 2000 connections, 300,000
#: frames). Same bounds: a leak of 200 KB a round (the bomb left 1-2 MiB a
#: round on serve(), 64 MiB on echo) shows over 30 rounds. A short series
#: cannot bound growth in proportion to its rounds: the first rounds of the
#: bigger attacks still warm up the allocator (idle_connections: +3 MiB over
#: 4 rounds, then flat).
SHORT_REPS = 30
SHORT_REPS_SLOW = 5
SLOW = {
    "half_sent_handshake",
    "pings_within_rate",
    "flood_of_tiny_frames",
    "flood_of_tiny_messages",
    "idle_connections",
}

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RSS is read from /proc"
)


@pytest.fixture(scope="module", params=["c", "python"])
def quiet_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The server of test_hostile without tracemalloc: RSS as in production."""
    proc = ServerProcess(_start(request.param), trace=False)
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="module", params=["c", "python"])
def echo_server(request: pytest.FixtureRequest) -> Iterator[EchoProcess]:
    """``python -m wsframe echo``: a Listener, 64 MiB messages, uvloop if installed."""
    proc = EchoProcess(_start(request.param))
    try:
        yield proc
    finally:
        proc.close()


def assert_flat(server: Any, name: str, reps: int, bound: int) -> None:
    series = repeat(server, name, reps)
    print(
        f"\n{series.server}/{series.implementation} {name} x{reps}: RSS "
        f"{series.rss_first / (1 << 20):.1f} -> {series.rss_last / (1 << 20):.1f} MiB "
        f"in {series.seconds:.0f} s"
    )
    assert series.growth < bound, (
        f"{name} x{reps}: RSS grew by {series.growth} bytes from the first round to the last"
    )


@linux_only
@pytest.mark.parametrize("name", list(ATTACKS))
def test_repeated(quiet_server: ServerProcess, name: str) -> None:
    """Each attack, again and again: the server's RSS stays where the first round left it."""
    reps = SHORT_REPS_SLOW if name in SLOW else SHORT_REPS
    assert_flat(quiet_server, name, reps, STRESS_BOUND["serve"])


@linux_only
@pytest.mark.parametrize("name", ECHO_ATTACKS)
def test_repeated_on_echo(echo_server: EchoProcess, name: str) -> None:
    """The bomb, again and again, on ``python -m wsframe echo`` (64 MiB inflated each)."""
    assert_flat(echo_server, name, SHORT_REPS, STRESS_BOUND["echo"])


@linux_only
@pytest.mark.stress
@pytest.mark.parametrize("name", list(ATTACKS))
def test_repeated_stress(quiet_server: ServerProcess, name: str) -> None:
    assert_flat(quiet_server, name, STRESS_REPS, STRESS_BOUND["serve"])


@linux_only
@pytest.mark.stress
@pytest.mark.parametrize("name", ECHO_ATTACKS)
def test_repeated_on_echo_stress(echo_server: EchoProcess, name: str) -> None:
    assert_flat(echo_server, name, STRESS_REPS, STRESS_BOUND["echo"])


# ------------------------------------------ the ping rate limit, sans-I/O


@pytest.fixture
def conn_codec(active_codec: Any) -> Any:
    """The codec of this run (the connection's)."""
    return active_codec


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def opened(**options: Any) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection("ws://example.com/")
    server = ServerConnection(**options)
    server.receive_data(client.data_to_send())
    [event] = server.events()
    assert isinstance(event, Request)
    server.accept()
    client.receive_data(server.data_to_send())
    client.events()
    return client, server


def pings(client: ClientConnection, count: int) -> bytes:
    for _ in range(count):
        client.send_ping(b"x")
    return client.data_to_send()


def test_ping_rate_burst_then_1008(conn_codec: Any) -> None:
    clock = Clock()
    client, server = opened(max_ping_rate=2.0, max_ping_burst=5, clock=clock)
    server.receive_data(pings(client, 5))
    assert [type(e) for e in server.events()] == [Ping] * 5
    assert server.state is State.OPEN
    server.receive_data(pings(client, 1))
    assert server.state is State.CLOSING
    assert server.error is not None and server.error.close_code == 1008
    assert str(server.error) == "more than 2 pings per second"
    client.receive_data(server.data_to_send())
    assert client.close_code == 1008


def test_ping_rate_refills(conn_codec: Any) -> None:
    clock = Clock()
    client, server = opened(max_ping_rate=2.0, max_ping_burst=3, clock=clock)
    for _ in range(50):
        server.receive_data(pings(client, 1))
        clock.now += 0.5  # exactly the rate: never runs out
    assert server.state is State.OPEN
    server.receive_data(pings(client, 3))  # the whole burst
    assert server.state is State.OPEN
    clock.now += 0.4  # less than one token back
    server.receive_data(pings(client, 1))
    assert server.error is not None and server.error.close_code == 1008


def test_ping_rate_client_side(conn_codec: Any) -> None:
    clock = Clock()
    client = ClientConnection("ws://x/", max_ping_rate=1.0, max_ping_burst=1, clock=clock)
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    server.events()
    server.accept()
    server.send_ping(b"a")
    server.send_ping(b"b")
    client.receive_data(server.data_to_send())
    assert client.error is not None and client.error.close_code == 1008


def test_ping_rate_disabled(conn_codec: Any) -> None:
    client, server = opened(max_ping_rate=None)
    server.receive_data(pings(client, 10_000))
    assert server.state is State.OPEN
    assert len(server.events()) == 10_000


def test_ping_rate_options_checked() -> None:
    with pytest.raises(ValueError):
        ServerConnection(max_ping_rate=0)
    with pytest.raises(ValueError):
        ClientConnection("ws://x/", max_ping_burst=0)


def test_many_small_fragments_are_folded(conn_codec: Any) -> None:
    client, server = opened()
    client.send_binary(b"a", fin=False)
    for index in range(1000):
        client.send_continuation(bytes([index % 256]) if index % 3 else b"", fin=False)
    client.send_continuation(b"z", fin=True)
    server.receive_data(client.data_to_send())
    [event] = server.events()
    expected = b"a" + bytes(i % 256 for i in range(1000) if i % 3) + b"z"
    assert event.data == expected and type(event.data) is bytes
