"""The chat's HTTP answers beside the page: /stats.json, /metrics, the dashboard."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from wsframe.chat.pages import Pages
from wsframe.counters import Counters
from wsframe.handshake import Request
from wsframe.stats import Stats


def get(pages: Pages, path: str) -> Any:
    return pages(None, Request("GET", path, [("Host", "localhost")]))  # type: ignore[arg-type]


def counted() -> Stats:
    counters = Counters("server")
    counters.connections_open = 3
    counters.messages_received_text = 5
    counters.observe_rtt(0.004)
    return Stats.of([counters])


def test_stats_json_is_what_the_dashboard_plots() -> None:
    status, headers, body = get(Pages("/ws", stats=counted), "/stats.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert data["connections_open"] == 3
    assert data["messages_received"] == 5
    assert data["ping_rtt_count"] == 1 and data["ping_rtt_sum"] == pytest.approx(0.004)
    assert isinstance(data["time"], float)


def test_stats_json_while_not_serving() -> None:
    status, _, _ = get(Pages("/ws", stats=lambda: None), "/stats.json")
    assert status == 503


def test_dashboard_page_and_script_are_served() -> None:
    pages = Pages("/ws", stats=counted)
    status, headers, body = get(pages, "/stats")
    assert status == 200 and b'src="stats.js"' in body
    assert "Content-Security-Policy" in headers
    status, headers, body = get(pages, "/stats.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")


def test_metrics_in_prometheus_format() -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    status, headers, body = get(Pages("/ws", stats=counted), "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("wsframe_connections_open", (("side", "server"),))] == 3


def test_metrics_without_prometheus_client_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    monkeypatch.delitem(sys.modules, "wsframe.metrics", raising=False)
    status, _, body = get(Pages("/ws", stats=counted), "/metrics")
    assert status == 501
    assert "pip install wsframe[metrics]" in body


def test_without_stats_there_is_no_stats_json() -> None:
    status, _, _ = get(Pages("/ws"), "/stats.json")
    assert status == 404
