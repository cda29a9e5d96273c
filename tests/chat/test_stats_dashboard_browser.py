"""The chat's live dashboard (``/stats``) in a real headless Chromium.

Two chat pages send messages while a third page shows ``/stats``; the
plotted message rate must rise while they talk and fall back once they
stop, the connections chart must show both, and heartbeat round trips must
be plotted. ``/metrics`` is scraped from the same server. Needs Playwright
and Chromium, like ``test_chat_browser.py``.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_chat_browser import (
    CHROMIUM,
    ROOT,
    TIMEOUT_MS,
    ChatProcess,
    _free_port,
    _login,
    _playwright,
    _say,
    _wait_text,
)

STATS_SCREENSHOT = ROOT / "docs" / "stats-screenshot.png"


def _last(page: Any, chart: str) -> str:
    return str(page.eval_on_selector(f"#{chart}", "el => el.dataset.last"))


def test_dashboard_plots_live_traffic(tmp_path: Path) -> None:
    sync_playwright = _playwright()
    chat = ChatProcess(_free_port(), tmp_path / "chat.sqlite3", "--ping-interval", "0.5")
    chat.start()
    url = f"http://127.0.0.1:{chat.port}/"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                errors: list[str] = []

                def new_page() -> Any:
                    context = browser.new_context(viewport={"width": 1000, "height": 760})
                    context.set_default_timeout(TIMEOUT_MS)
                    page = context.new_page()
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    return page

                dashboard = new_page()
                dashboard.goto(url + "stats")
                dashboard.wait_for_selector('#poll-state[data-state="open"]')
                # Quiet: nobody connected, nothing sent.
                dashboard.wait_for_function(
                    "() => document.getElementById('rate').dataset.points >= '2'"
                )
                assert float(_last(dashboard, "rate")) == 0
                assert float(_last(dashboard, "connections")) == 0

                alice, bob = new_page(), new_page()
                _login(alice, url, "alice")
                _login(bob, url, "bob")
                dashboard.wait_for_function(
                    "() => Number(document.getElementById('connections').dataset.last) === 2"
                )
                # They talk for a few seconds: the plotted rate rises.
                deadline = time.monotonic() + 4
                count = 0
                while time.monotonic() < deadline:
                    for nick, page in (("alice", alice), ("bob", bob)):
                        count += 1
                        _say(page, f"{nick} says {count}")
                    time.sleep(0.3)
                _wait_text(alice, f"bob says {count}")
                dashboard.wait_for_function(
                    "() => Number(document.getElementById('rate').dataset.last) > 0"
                )
                # Heartbeat round trips (the browsers answer the server's pings).
                dashboard.wait_for_function(
                    "() => document.getElementById('rtt').dataset.last !== ''"
                )
                assert float(_last(dashboard, "rtt")) > 0
                peak = dashboard.evaluate(
                    "() => Math.max(...[...document.querySelectorAll('#rate path.line')].map("
                    "p => p.getTotalLength()))"
                )
                assert peak > 0  # a line is drawn
                shot = tmp_path / "stats.png"
                dashboard.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                if os.environ.get("WSFRAME_UPDATE_SCREENSHOT"):
                    shutil.copyfile(shot, STATS_SCREENSHOT)

                # /metrics on the same port, in Prometheus' text format.
                prometheus = pytest.importorskip("prometheus_client.parser")
                with urllib.request.urlopen(url + "metrics", timeout=5) as response:
                    text = response.read().decode()
                samples = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in prometheus.text_string_to_metric_families(text)
                    for s in family.samples
                }
                assert samples[("wsframe_connections_open", (("side", "server"),))] == 2
                received = samples[
                    ("wsframe_messages_received_total", (("side", "server"), ("type", "text")))
                ]
                assert received >= count  # hello, join... and every chat message

                # They stop: the rate falls back to zero.
                dashboard.wait_for_function(
                    "() => Number(document.getElementById('rate').dataset.last) === 0"
                )
                assert not errors, errors
            finally:
                browser.close()
    finally:
        chat.stop()
