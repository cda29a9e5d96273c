"""The chat page in a real headless Chromium (Playwright), against ``python -m wsframe chat``.

Needs ``pip install playwright`` and a Chromium at ``/usr/bin/chromium`` (or
``$CHROMIUM``); skipped when either is missing, unless ``CI`` is set, where
that is a failure.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "chat-screenshot.png"
TIMEOUT_MS = 15_000


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = sync_playwright is None or not os.path.exists(CHROMIUM)
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"playwright or {CHROMIUM} missing, and CI is set")
        pytest.skip(f"playwright or {CHROMIUM} missing")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChatProcess:
    """``python -m wsframe chat`` in a subprocess, restartable on the same port and file."""

    def __init__(self, port: int, db: Path, *args: str) -> None:
        self.port = port
        self.db = db
        self.args = args
        self.proc: Any = None

    def start(self) -> None:
        command = [sys.executable, "-m", "wsframe", "chat", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, "--db", str(self.db), *self.args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening on"):
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError("the chat server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(10) == 0
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ChatProcess]:
    server = ChatProcess(_free_port(), tmp_path / "chat.sqlite3")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _login(page: Any, url: str, nick: str) -> None:
    page.goto(url)
    page.fill("#nick-input", nick)
    page.click("#login-form button")
    _wait_open(page, nick)
    page.wait_for_selector('#rooms li.joined[data-room="general"]')


def _wait_open(page: Any, nick: str) -> None:
    page.wait_for_selector('#conn-state[data-state="open"]')
    page.wait_for_function("nick => document.getElementById('me').textContent === nick", arg=nick)


def _say(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def _wait_text(page: Any, text: str) -> None:
    page.wait_for_function(
        """text => [...document.querySelectorAll('#messages .msg .text')]
                   .some(node => node.textContent === text)""",
        arg=text,
    )


def _texts(page: Any) -> list[str]:
    texts: list[str] = page.eval_on_selector_all(
        "#messages .msg:not(.system) .text", "nodes => nodes.map(n => n.textContent)"
    )
    return texts


def _users(page: Any) -> list[str]:
    users: list[str] = page.eval_on_selector_all(
        "#users li", "nodes => nodes.map(n => n.dataset.nick)"
    )
    return users


def test_chat_in_chromium(chat: ChatProcess, tmp_path: Path) -> None:
    sync_playwright = _playwright()
    url = f"http://127.0.0.1:{chat.port}/"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            pages = {}
            errors: list[str] = []
            for nick in ("alice", "bob"):
                context = browser.new_context(viewport={"width": 1100, "height": 680})
                context.set_default_timeout(TIMEOUT_MS)
                page = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                _login(page, url, nick)
                pages[nick] = page
            alice, bob = pages["alice"], pages["bob"]

            # Presence: each sees the other in #general.
            alice.wait_for_selector('#users li[data-nick="bob"]')
            assert _users(bob) == ["alice", "bob"]

            conversation = [
                (alice, "Hi all! Is the new wsframe build out?"),
                (bob, "Yes, echo went from 2.5 µs to 0.9 µs per message here"),
                (alice, "Nice. And the chat keeps its history across restarts?"),
                (bob, "It does: SQLite, and the page reconnects by itself."),
                (alice, "<b>markup</b> stays plain text, by the way"),
            ]
            for page, text in conversation:
                _say(page, text)
                _wait_text(alice, text)
                _wait_text(bob, text)
            # HTML is shown as text, never interpreted.
            assert bob.locator("#messages .msg .text b").count() == 0

            # Typing indicator.
            bob.type("#text", "typing…")
            alice.wait_for_function(
                "() => document.getElementById('typing').textContent.includes('bob is typing')"
            )
            bob.fill("#text", "")

            # A third user joining later gets the history.
            context = browser.new_context(viewport={"width": 1100, "height": 680})
            context.set_default_timeout(TIMEOUT_MS)
            carol = context.new_page()
            _login(carol, url, "carol")
            for _, text in conversation:
                _wait_text(carol, text)
            alice.wait_for_selector('#users li[data-nick="carol"]')
            alice.screenshot(path=str(tmp_path / "before-restart.png"))

            # The server goes away: every page notices...
            chat.stop()
            for page in (alice, bob, carol):
                page.wait_for_selector(
                    '#conn-state[data-state="closed"], #conn-state[data-state="connecting"]'
                )
            chat.start()
            # ...then reconnects by itself, re-claims its nickname and rejoins.
            for nick, page in (("alice", alice), ("bob", bob), ("carol", carol)):
                _wait_open(page, nick)
                page.wait_for_selector('#users li[data-nick="alice"]')
            for page in (alice, bob, carol):
                assert _texts(page)[: len(conversation)] == [t for _, t in conversation]

            _say(carol, "Back already? That restart took a second.")
            _say(bob, "History intact too.")
            for page in (alice, bob, carol):
                _wait_text(page, "Back already? That restart took a second.")
                _wait_text(page, "History intact too.")
            alice.wait_for_selector('#users li[data-nick="bob"]')
            alice.wait_for_selector('#users li[data-nick="carol"]')
            # Another room, and a direct message.
            bob.fill("#join-room", "random")
            bob.press("#join-room", "Enter")
            alice.wait_for_selector('#rooms li[data-room="random"]')
            carol.click('#users li[data-nick="alice"]')
            _say(carol, "Sending you the benchmark numbers privately")
            alice.wait_for_selector('#dms li[data-dm="carol"] .badge')
            carol.click('#rooms li[data-room="general"]')
            alice.wait_for_function("() => document.getElementById('conn-detail').textContent")
            carol.type("#text", "Let me try a direct mess")
            alice.wait_for_function(
                "() => document.getElementById('typing').textContent.includes('carol is typing')"
            )
            shot = tmp_path / "chat.png"
            alice.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
            if os.environ.get("WSFRAME_UPDATE_SCREENSHOT"):
                # Refresh the README's picture: WSFRAME_UPDATE_SCREENSHOT=1 pytest ...
                SCREENSHOT.parent.mkdir(exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
            assert not errors, errors
        finally:
            browser.close()


# A page of another origin (another loopback port) that tries to use the chat.
FOREIGN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>another site</title></head><body>
<script>
"use strict";
window.attempt = (url) => new Promise((resolve) => {
  const result = { opened: false, messages: [] };
  const ws = new WebSocket(url);
  ws.onopen = () => { result.opened = true; ws.send(JSON.stringify({ type: "ping", id: "x" })); };
  ws.onmessage = (event) => { result.messages.push(JSON.parse(event.data)); ws.close(1000); };
  ws.onclose = (event) => { result.code = event.code; resolve(result); };
});
</script></body></html>
"""


@contextlib.contextmanager
def _foreign_site() -> Iterator[str]:
    """An HTTP server on another loopback port serving FOREIGN_PAGE; yields its URL."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = FOREIGN_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_chat_refuses_a_page_of_another_origin_in_chromium(
    chat: ChatProcess, tmp_path: Path
) -> None:
    # Cross-site WebSocket hijacking: a page of another origin (another port of
    # the same loopback address) opens the chat's WebSocket. Chromium sends
    # that page's Origin; the chat answers 403 and the page never gets in,
    # while the chat's own page works. The same page is let in by a chat
    # started with --origin naming it.
    sync_playwright = _playwright()
    ws_url = f"ws://127.0.0.1:{chat.port}/ws"
    with _foreign_site() as foreign, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context()
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            handshakes: list[str] = []
            page.on(
                "websocket",
                lambda ws: ws.on("socketerror", lambda error: handshakes.append(str(error))),
            )
            page.goto(foreign)
            result = page.evaluate("url => attempt(url)", ws_url)
            assert result == {"opened": False, "messages": [], "code": 1006}, result
            assert any("403" in error for error in handshakes), handshakes

            own = context.new_page()
            _login(own, f"http://127.0.0.1:{chat.port}/", "alice")

            allowing = ChatProcess(_free_port(), tmp_path / "other.sqlite3", "--origin", foreign)
            allowing.start()
            try:
                url = f"ws://127.0.0.1:{allowing.port}/ws"
                result = page.evaluate("url => attempt(url)", url)
                assert result["opened"] and result["code"] == 1000, result
                assert result["messages"][0]["type"] == "pong"
            finally:
                allowing.stop()
        finally:
            browser.close()
