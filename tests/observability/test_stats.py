"""``server.stats()``, the process's totals, and stats shared between workers."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import threading

import pytest
from asyncio_helpers import async_test, echo, eventually, start, uri, within

from wsframe import sync
from wsframe.asyncio import connect
from wsframe.counters import Counters, utf8_length
from wsframe.stats import Stats, StatsDirectory, new_counters, process_stats


def test_utf8_length() -> None:
    for text in ("", "ascii", "é", "€uro", "😀 emoji", "\ud800"[:0], "a" * 1000):
        assert utf8_length(text) == len(text.encode())


def test_a_snapshot_is_frozen_and_sums() -> None:
    a, b = Counters("server"), Counters("server")
    a.messages_received_text = 3
    b.messages_received_binary = 2
    a.count_close("peer", True, (1000, ""), (1000, ""))
    b.count_close("peer", True, (1000, ""), None)
    b.count_response(503)
    a.observe_rtt(0.002)
    b.observe_rtt(10.0)
    total = Stats.of([a, b])
    assert total.messages_received == 5
    assert total.closes == {("peer", True): 2}
    assert total.close_codes_sent == {1000: 2}
    assert total.close_codes_received == {1000: 1}
    assert total.connections_refused == 1
    assert total.ping_rtt.count == 2 and total.ping_rtt.counts[-1] == 1
    assert total.ping_rtt.quantile(0.5) == 0.0025
    assert total.ping_rtt.quantile(1.0) == float("inf")
    with pytest.raises(dataclasses.FrozenInstanceError):
        total.connections_open = 1  # type: ignore[misc]
    assert Stats.of([]).messages_received == Stats.merge([]).connections_open == 0
    again = Stats.from_json(total.to_json())
    assert again == total
    assert Stats.merge([again, again]).messages_received == 10


@async_test
async def test_server_and_client_stats_count_both_ways() -> None:
    clients_before = process_stats("client")
    server = await start(echo, compression="deflate")
    try:
        async with connect(uri(server)) as ws:
            for message in ("héllo" * 50, b"\x00" * 3000):
                await ws.send(message)
                assert await within(ws.recv()) == message
            ping_rtt = await within(ws.ping())
            assert ping_rtt >= 0
        await eventually(lambda: server.stats().connections_closed == 1)
    finally:
        await server.close()
    stats = server.stats()
    assert stats.messages_received_text == stats.messages_sent_text == 1
    assert stats.messages_received_binary == stats.messages_sent_binary == 1
    assert stats.message_bytes_received == stats.message_bytes_sent == 300 + 3000
    assert stats.decompressed_bytes_received == 300 + 3000
    assert stats.compressed_bytes_received < 300  # both compress to a few bytes
    assert stats.compression_ratio is not None and stats.compression_ratio > 10
    assert stats.pings_received == stats.pongs_sent == 1
    assert stats.frames_received == 4  # two messages, a ping, a close
    assert stats.bytes_received > stats.compressed_bytes_received
    assert stats.handshake_duration.count == 1
    client = process_stats("client")
    assert client.messages_sent - clients_before.messages_sent == 2
    assert client.pings_sent - clients_before.pings_sent == 1
    assert client.connections_closed - clients_before.connections_closed == 1
    # The process's server totals include this server's.
    assert process_stats("server").messages_received >= stats.messages_received


@async_test
async def test_reading_pauses_are_counted() -> None:
    release = asyncio.Event()

    async def late_reader(ws: object) -> None:
        await release.wait()
        async for _ in ws:  # type: ignore[attr-defined]
            pass

    server = await start(late_reader, max_queue=4)
    try:
        async with connect(uri(server)) as ws:
            for i in range(20):
                await ws.send(str(i))
            await eventually(lambda: server.stats().reading_pauses == 1)
            release.set()
            await eventually(lambda: server.stats().messages_received == 20)
    finally:
        await server.close()


def test_sync_server_stats() -> None:
    def handler(ws: sync.WebSocket) -> None:
        for message in ws:
            ws.send(message)

    server = sync.serve(handler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with sync.connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as ws:
            ws.send("one")
            assert ws.recv(timeout=5) == "one"
            ws.send(b"two")
            assert ws.recv(timeout=5) == b"two"
    finally:
        server.shutdown()
        thread.join(10)
    stats = server.stats()
    assert (stats.messages_received_text, stats.messages_received_binary) == (1, 1)
    assert stats.messages_sent == 2
    assert stats.connections_accepted == stats.connections_closed == 1
    assert stats.closed_by_cause("peer") == 1


def test_stats_directory_shares_workers_numbers(tmp_path: pathlib.Path) -> None:
    first, second = new_counters("server"), new_counters("server")
    first.messages_received_text = 7
    first.connections_open = 2
    second.messages_received_binary = 5
    second.connections_open = 3
    one = StatsDirectory(str(tmp_path), worker="1", source=lambda: {"server": Stats.of([first])})
    two = StatsDirectory(str(tmp_path), worker="2", source=lambda: {"server": Stats.of([second])})
    two.publish()
    workers = one.read()  # publishes its own first
    assert sorted(workers) == ["1", "2"]
    total = one.total("server")
    assert total.messages_received == 12
    assert total.connections_open == 5
    # A worker that stopped: its file goes, and so do its numbers.
    two.remove()
    assert one.total("server").messages_received == 7
    # A worker that died without removing its file: left out once stale.
    two.publish()
    stale = StatsDirectory(str(tmp_path), worker="1", source=one.source, stale_after=-1.0)
    assert stale.read() == {}
    assert one.total("client").messages_received == 0


def test_close_codes_a_peer_chooses_are_bounded() -> None:
    counters = Counters("server")
    for code in range(3000, 3200):  # a peer may send any of 3000-4999
        counters.count_close("peer", True, (code, ""), (code, ""))
    stats = Stats.of([counters])
    assert len(stats.close_codes_received) == 65  # 64 codes and "the others"
    assert stats.close_codes_received[0] == 200 - 64
    assert sum(stats.close_codes_sent.values()) == 200


@async_test
async def test_refusals_over_max_connections_are_counted() -> None:
    from wsframe.errors import InvalidHandshake

    server = await start(echo, max_connections=1)
    try:
        async with connect(uri(server)):
            with pytest.raises(InvalidHandshake) as info:
                async with connect(uri(server)):
                    pass
            assert info.value.status == 503
        await eventually(lambda: server.stats().connections_closed == 1)
    finally:
        await server.close()
    stats = server.stats()
    assert stats.responses == {503: 1}
    assert stats.connections_refused == 1
    assert stats.limit_violations == {"too_many_connections": 1}


@async_test
async def test_a_closed_server_stays_in_the_process_totals_not_in_the_registry() -> None:
    from wsframe.stats import registered_counters

    before = process_stats("server").messages_received
    server = await start(echo)
    assert server.counters in registered_counters("server")
    try:
        async with connect(uri(server)) as ws:
            await ws.send("x")
            await within(ws.recv())
        await eventually(lambda: server.stats().connections_closed == 1)
    finally:
        await server.close()
    assert server.counters not in registered_counters("server")
    assert server.stats().messages_received == 1  # still readable
    assert process_stats("server").messages_received - before == 1


def test_counters_add() -> None:
    a, b = Counters("server"), Counters("server")
    b.messages_received_text = 4
    b.count_close("peer", True, (1000, ""), None)
    b.observe_rtt(0.001)
    b.rtt_sum = 0.5
    a.add(b)
    a.add(b)
    stats = Stats.of([a])
    assert stats.messages_received_text == 8
    assert stats.closes == {("peer", True): 2}
    assert stats.ping_rtt.count == 2 and stats.ping_rtt.sum == 1.0
    assert stats.connections_open == -2  # the gauge adds too (count_close without an open)
