"""Prometheus metrics: scraped from ``/metrics`` after scripted traffic.

The server serves ``wsframe.metrics.metrics_endpoint`` on its WebSocket port;
the test scrapes it over HTTP and parses the text with prometheus_client's
own parser, then checks every counter the traffic should have moved.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from asyncio_helpers import async_test, echo, eventually, raw_client, start, uri, within
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from wsframe.asyncio import broadcast, connect
from wsframe.codec import encode_frame
from wsframe.metrics import Collector, metrics_endpoint

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, path: str = "/metrics") -> tuple[Samples, str]:
    """GET the metrics (blocking: run in a thread) and parse them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, content_type


def value(samples: Samples, name: str, **labels: str) -> float:
    labels.setdefault("side", "server")
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@async_test(timeout=30)
async def test_metrics_after_scripted_traffic() -> None:
    registry = CollectorRegistry()
    room: set[Any] = set()

    async def handler(ws: Any) -> None:
        if ws.request.path == "/room":
            room.add(ws)
            await ws.wait_closed()
            return
        await echo(ws)

    server = await start(
        handler,
        process_request=metrics_endpoint(registry=registry),
        max_message_size=1000,
        ping_interval=0.3,
        ping_timeout=0.3,
    )
    registry.register(Collector(server))
    port = server.port
    loop = asyncio.get_running_loop()
    try:
        # 1. A well-behaved client: 3 text and 2 binary messages, echoed, a clean close.
        async with connect(uri(server)) as ws:
            for text in ("a", "bé", "ccc"):
                await ws.send(text)
                assert await within(ws.recv()) == text
            for data in (b"\x00" * 10, b"\x01" * 20):
                await ws.send(data)
                assert await within(ws.recv()) == data

        # 2. A message over max_message_size: failed with 1009.
        async with connect(uri(server), ping_interval=None) as ws:
            await ws.send("x" * 2000)
            await within(ws.wait_closed())
            assert ws.close_code == 1009

        # 3. A bad close frame (code 1005 may not be sent): failed with 1002.
        peer = await raw_client(port)
        await peer.send_raw(encode_frame(8, b"\x03\xed", mask=b"abcd"))
        await within(peer.events_until_eof())
        peer.close()

        # 4. A peer that never answers pings: heartbeat timeout, 1011.
        async with connect(uri(server), auto_pong=False, ping_interval=None) as ws:
            await within(ws.wait_closed())
            assert ws.close_code == 1011

        # 5. A consumer that stops reading: closed by broadcast as too slow.
        slow = await raw_client(port, "/room", rcvbuf=4096)
        await eventually(lambda: len(room) == 1)
        sent = 0
        for _ in range(200):
            result = broadcast(room, b"\x02" * 65536, max_buffer=65536, on_slow="close")
            sent += result.sent
            if result.slow:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the reader that stopped reading was never too slow")
        slow.close()

        # 6. A request that is not a valid upgrade: refused with 400.
        bad = await raw_client(port, handshake=False)
        await bad.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        answer = await within(loop.sock_recv(bad.sock, 4096))
        assert answer.startswith(b"HTTP/1.1 400"), answer
        bad.close()

        await eventually(lambda: server.stats().connections_open == 0 and not server.websockets)
        samples, content_type = await loop.run_in_executor(None, scrape, port)
    finally:
        await server.close()

    assert content_type.startswith("text/plain; version=")
    stats = server.stats()
    assert value(samples, "wsframe_connections_open") == 0
    assert value(samples, "wsframe_connections_accepted_total") == 5
    assert total(samples, "wsframe_connections_closed_total") == 5
    for cause in (
        "peer",
        "message_too_big",
        "protocol_error",
        "heartbeat_timeout",
        "slow_consumer",
    ):
        assert total(samples, "wsframe_connections_closed_total", cause=cause) == 1, cause
    assert value(samples, "wsframe_connections_closed_total", cause="peer", clean="true") == 1
    assert value(samples, "wsframe_connections_refused_total", status="400") == 1
    assert value(samples, "wsframe_handshake_duration_seconds_count") == 5

    assert value(samples, "wsframe_messages_received_total", type="text") == 3
    assert value(samples, "wsframe_messages_received_total", type="binary") == 2
    assert value(samples, "wsframe_messages_sent_total", type="text") == 3
    assert value(samples, "wsframe_messages_sent_total", type="binary") == 2 + sent
    assert value(samples, "wsframe_message_received_bytes_total") == 1 + 3 + 3 + 10 + 20
    assert value(samples, "wsframe_message_sent_bytes_total") == 1 + 3 + 3 + 10 + 20 + 65536 * sent
    assert value(samples, "wsframe_received_bytes_total") == stats.bytes_received > 0
    assert value(samples, "wsframe_sent_bytes_total") >= 65536 * sent

    assert value(samples, "wsframe_close_frames_sent_total", code="1009") == 1
    assert value(samples, "wsframe_close_frames_sent_total", code="1002") == 1
    assert value(samples, "wsframe_close_frames_sent_total", code="1011") == 1
    assert value(samples, "wsframe_close_frames_sent_total", code="1008") == 1
    assert value(samples, "wsframe_close_frames_received_total", code="1000") == 1
    assert value(samples, "wsframe_close_frames_received_total", code="1005") == 0  # not parsed
    assert value(samples, "wsframe_limit_violations_total", kind="message_too_big") == 1
    assert value(samples, "wsframe_limit_violations_total", kind="slow_consumer") == 1
    # Every pong the server got answered one of its heartbeat pings.
    assert value(samples, "wsframe_pings_sent_total") >= 1
    assert value(samples, "wsframe_ping_rtt_seconds_count") == value(
        samples, "wsframe_pongs_received_total"
    )
    assert value(samples, "wsframe_ping_rtt_seconds_bucket", le="+Inf") == value(
        samples, "wsframe_ping_rtt_seconds_count"
    )
