"""Real clients against wsframe's asyncio server: Chromium (through Playwright) and Node.js.

The server runs in a thread with its own event loop, for the whole module; it
serves the test page itself at ``/`` (through ``process_request``), so the
page and the WebSocket share the origin ``http://127.0.0.1:PORT``, and the
WebSocket at ``/ws``: it echoes every message, and closes with 4001 and a
reason when asked with the text ``!close``.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or
``$CHROMIUM``), driven by Playwright's synchronous API. Without chromium or
Playwright the browser tests are skipped, unless the environment variable
``CI`` is set: then they fail. The same goes for ``node`` (Node.js 20+, its
built-in WebSocket client) in the Node test.

Every test runs with both codecs (the ``server_codec`` fixture points the
connection module at ``wsframe._codec_c`` or ``wsframe._codec_py``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from wsframe.asyncio import ConnectionClosedError, WebSocket, serve

broadcast_module = importlib.import_module("wsframe.asyncio.broadcast")

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: Seconds for any one step (page load, a script, the server's start and stop).
TIMEOUT = 15.0
ONE_MIB = 1 << 20
SERVER_CLOSE = (4001, "server says bye — tschüss ✓")
PAGE_CLOSE = (4000, "page leaves — ciao ✓")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wsframe browser test</title></head>
<body><h1>wsframe browser test</h1><pre id="log"></pre>
<script>
"use strict";
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };

// Open a WebSocket to this page's server; messages are queued for next().
function openSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    const queue = [], waiters = [];
    ws.onmessage = (event) => {
      if (waiters.length) waiters.shift()(event.data); else queue.push(event.data);
    };
    ws.next = () => queue.length ? Promise.resolve(queue.shift())
                                 : new Promise((r) => waiters.push(r));
    ws.closed = new Promise((r) => ws.addEventListener("close", (event) => r({
      code: event.code, reason: event.reason, wasClean: event.wasClean,
    })));
    ws.onopen = () => { log(`open, extensions: ${ws.extensions}`); resolve(ws); };
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
}

function pattern(n, seed) {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed + (i >> 10)) & 0xff;
  return bytes;
}

function sameBytes(buffer, bytes) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength !== bytes.length) return false;
  const got = new Uint8Array(buffer);
  for (let i = 0; i < bytes.length; i++) if (got[i] !== bytes[i]) return false;
  return true;
}
</script></body></html>
"""

ECHO_SCRIPT = """async ([closeCode, closeReason, big]) => {
  const ws = await openSocket();
  const result = { extensions: ws.extensions, protocol: ws.protocol, checks: {} };
  const text = "héllo wörld — Привет, 世界 🌍";
  ws.send(text);
  result.checks.text = (await ws.next()) === text;
  ws.send("");
  result.checks.emptyText = (await ws.next()) === "";
  const small = pattern(256, 0);
  ws.send(small.buffer);
  result.checks.binary = sameBytes(await ws.next(), small);
  ws.send(new ArrayBuffer(0));
  result.checks.emptyBinary = sameBytes(await ws.next(), new Uint8Array(0));
  const large = pattern(big, 7);
  ws.send(large.buffer);
  result.checks.largeBinary = sameBytes(await ws.next(), large);
  const largeText = "ünïcödé ".repeat(big / 8);
  ws.send(largeText);
  result.checks.largeText = (await ws.next()) === largeText;
  for (let i = 0; i < 200; i++) ws.send(i % 2 ? `n${i}` : pattern(i, i).buffer);
  let ordered = true;
  for (let i = 0; i < 200; i++) {
    const data = await ws.next();
    ordered = ordered && (i % 2 ? data === `n${i}` : sameBytes(data, pattern(i, i)));
  }
  result.checks.ordered = ordered;
  ws.send("!big");
  result.checks.serverLarge = sameBytes(await ws.next(), pattern(big, 3));
  ws.close(closeCode, closeReason);
  result.close = await ws.closed;
  log(JSON.stringify(result));
  return result;
}"""

SERVER_CLOSE_SCRIPT = """async () => {
  const ws = await openSocket();
  ws.send("!close");
  return await ws.closed;
}"""


def js_pattern(n: int, seed: int) -> bytes:
    """The page's ``pattern(n, seed)``."""
    return bytes((i * 31 + seed + (i >> 10)) & 0xFF for i in range(n))


class ServerThread:
    """wsframe's server on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Any = None
        self.port = 0
        #: ``(close_code, close_reason)`` of each finished WebSocket connection.
        self.closes: list[tuple[Optional[int], str]] = []
        #: Whether permessage-deflate was in use, per WebSocket connection.
        self.deflate: list[bool] = []
        self.big = js_pattern(ONE_MIB, 3)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def start(self) -> None:
        self.thread.start()
        self.server = self.call(self._start())
        self.port = self.server.port

    async def _start(self) -> Any:
        return await serve(
            self.handler,
            "127.0.0.1",
            0,
            max_message_size=4 * ONE_MIB,
            process_request=self.process_request,
            ping_interval=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )

    def stop(self) -> None:
        try:
            if self.server is not None:
                self.call(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(TIMEOUT)
            if not self.thread.is_alive():
                self.loop.close()

    def process_request(self, ws: WebSocket, request: Any) -> Any:
        if request.path == "/":
            return (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE)
        if request.path != "/ws":
            return (404, "not found\n")
        return None

    async def handler(self, ws: WebSocket) -> None:
        self.deflate.append(ws.connection.deflate is not None)
        try:
            async for message in ws:
                if message == "!close":
                    await ws.close(*SERVER_CLOSE)
                    break
                if message == "!big":
                    await ws.send(self.big)
                    continue
                await ws.send(message)
        except ConnectionClosedError:
            pass
        finally:
            await ws.wait_closed()
            self.closes.append((ws.close_code, ws.close_reason))

    def wait_closes(self, n: int) -> list[tuple[Optional[int], str]]:
        async def wait() -> None:
            while len(self.closes) < n:
                await asyncio.sleep(0.01)

        self.call(asyncio.wait_for(wait(), TIMEOUT))
        return list(self.closes)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread()
    try:
        thread.start()
        yield thread
    finally:
        thread.stop()


@pytest.fixture(autouse=True)
def server_codec(active_codec: Any, server: ServerThread) -> Any:
    """The codec of this run; forget earlier closes."""
    server.closes.clear()
    server.deflate.clear()
    return active_codec


def unavailable(what: str) -> None:
    """Skip because ``what`` is missing, or fail in CI (where it must be installed)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} is not available")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        unavailable(f"chromium ({CHROMIUM}; apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox"],
            headless=True,
            timeout=TIMEOUT * 1000,
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, server: ServerThread) -> Iterator[Any]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://127.0.0.1:{server.port}/")
        yield page
        assert errors == []
    finally:
        context.close()


def test_page_is_served_by_process_request(page: Any) -> None:
    assert page.title() == "wsframe browser test"


def test_echo_large_and_page_close(page: Any, server: ServerThread, tmp_path: Any) -> None:
    """Text, binary, empty, 1 MiB both ways, ordering, deflate; the page closes."""
    result = page.evaluate(ECHO_SCRIPT, [*PAGE_CLOSE, ONE_MIB])
    assert result["checks"] == {
        "text": True,
        "emptyText": True,
        "binary": True,
        "emptyBinary": True,
        "largeBinary": True,
        "largeText": True,
        "ordered": True,
        "serverLarge": True,
    }
    assert result["extensions"].split(";")[0] == "permessage-deflate"
    assert server.deflate == [True]
    # The server echoes the page's code; the browser reports it.
    assert result["close"] == {"code": PAGE_CLOSE[0], "reason": "", "wasClean": True}
    assert server.wait_closes(1) == [PAGE_CLOSE]
    page.screenshot(path=str(tmp_path / "browser.png"))
    assert (tmp_path / "browser.png").stat().st_size > 0


def test_server_closes_with_code_and_reason(page: Any, server: ServerThread) -> None:
    result = page.evaluate(SERVER_CLOSE_SCRIPT)
    code, reason = SERVER_CLOSE
    assert result == {"code": code, "reason": reason, "wasClean": True}
    # The browser echoes the code in its answer.
    assert server.wait_closes(1)[0][0] == code


NODE_SCRIPT = r"""
const [port, closeCode, closeReason] = process.argv.slice(1);
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
ws.binaryType = "arraybuffer";
const queue = [], waiters = [];
ws.onmessage = (e) => { if (waiters.length) waiters.shift()(e.data); else queue.push(e.data); };
const next = () =>
  queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r));
const closed = new Promise((r) => ws.onclose = (e) =>
  r({code: e.code, reason: e.reason, wasClean: e.wasClean}));
ws.onerror = (e) => { console.error("error", e.message); process.exit(2); };
ws.onopen = async () => {
  const checks = {};
  const text = "héllo — Привет 🌍";
  ws.send(text);
  checks.text = (await next()) === text;
  const big = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
  ws.send(big);
  const got = new Uint8Array(await next());
  checks.largeBinary = got.length === big.length && got.every((b, i) => b === big[i]);
  ws.close(Number(closeCode), closeReason);
  const close = await closed;
  console.log(JSON.stringify({extensions: ws.extensions, checks, close}));
  clearTimeout(timer);
};
const timer = setTimeout(() => { console.error("timeout"); process.exit(3); }, 10000);
"""


def test_node_websocket_client(server: ServerThread) -> None:
    """Node.js's built-in WebSocket (undici) as another real client."""
    node = shutil.which("node")
    if node is None:
        unavailable("node (Node.js 20+)")
    assert node is not None
    proc = subprocess.run(
        [
            node,
            "--experimental-websocket",
            "-e",
            NODE_SCRIPT,
            str(server.port),
            *map(str, PAGE_CLOSE),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["checks"] == {"text": True, "largeBinary": True}
    # Node 20's client offers no permessage-deflate; if a later one does, we accept it.
    assert server.deflate == [result["extensions"].startswith("permessage-deflate")]
    assert result["close"] == {"code": PAGE_CLOSE[0], "reason": "", "wasClean": True}
    assert server.wait_closes(1) == [PAGE_CLOSE]
