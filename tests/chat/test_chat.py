"""The chat demo (``python -m wsframe chat``): protocol, history store and server.

The server runs in the test's event loop; clients are wsframe's own
``connect``, speaking the JSON protocol of ``docs/chat-protocol.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Optional

import pytest
from asyncio_helpers import async_test, within

from wsframe.asyncio import ConnectionClosed, WebSocket, connect
from wsframe.chat import ChatServer, HistoryStore, default_db_path, protocol
from wsframe.chat.server import MAX_FRAME_SIZE
from wsframe.errors import InvalidHandshake

STEP = 3.0


class Client:
    """A chat client for tests: sends commands, waits for a given answer."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self) -> dict[str, Any]:
        raw = await within(self.ws.recv(), STEP)
        assert isinstance(raw, str)
        message: dict[str, Any] = json.loads(raw)
        self.seen.append(message)
        return message

    async def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The next message of type ``kind`` (with these fields), skipping others."""
        while True:
            message = await self.next()
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message

    async def error(self) -> dict[str, Any]:
        return await self.expect("error")

    async def quiet(self) -> list[dict[str, Any]]:
        """Everything received before the answer to a ping (a barrier)."""
        await self.send(type="ping", id="barrier")
        before = []
        while True:
            message = await self.next()
            if message["type"] == "pong" and message.get("id") == "barrier":
                return before
            before.append(message)


@contextlib.asynccontextmanager
async def chat_server(
    db: str = ":memory:", *, origins: Any = (), **options: Any
) -> AsyncIterator[str]:
    """A chat server on a free port; yields its WebSocket URI."""
    options.setdefault("presence_delay", 0.01)
    chat = ChatServer(db, origins=origins, **options)
    async with chat.serve("127.0.0.1", 0, ping_interval=None) as server:
        yield f"ws://127.0.0.1:{server.port}/ws"


@contextlib.asynccontextmanager
async def client(uri: str, nick: Optional[str] = None) -> AsyncIterator[Client]:
    async with connect(uri, ping_interval=None, compression=None) as ws:
        c = Client(ws)
        if nick is not None:
            await c.send(type="hello", nick=nick)
            await c.expect("welcome", nick=nick)
        yield c


# ---------------------------------------------------------------- protocol


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"nick": "x"}', "invalid_field"),
        ('{"type": 3}', "invalid_field"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": "hello"}', "invalid_field"),
        ('{"type": "hello", "nick": 42}', "invalid_field"),
        ('{"type": "hello", "nick": ""}', "invalid_nick"),
        ('{"type": "hello", "nick": "a b"}', "invalid_nick"),
        ('{"type": "hello", "nick": "<script>"}', "invalid_nick"),
        ('{"type": "hello", "nick": "' + "n" * 25 + '"}', "invalid_nick"),
        ('{"type": "join", "room": "no spaces"}', "invalid_room"),
        ('{"type": "message", "room": "r", "text": "   "}', "invalid_field"),
        ('{"type": "message", "room": "r", "text": "' + "x" * 2001 + '"}', "too_long"),
        ('{"type": "dm", "to": "<b>", "text": "hi"}', "invalid_field"),
        ('{"type": "ping", "pad": "' + "x" * 9000 + '"}', "too_big"),
        (b'{"type": "ping"}', "binary"),
    ],
)
def test_parse_rejects(raw: Any, code: str) -> None:
    with pytest.raises(protocol.ProtocolViolation) as info:
        protocol.parse(raw)
    assert info.value.code == code
    assert info.value.message


def test_parse_accepts() -> None:
    command = protocol.parse('{"type": "message", "room": "général", "text": " <b>hi</b> "}')
    assert command.type == "message"
    assert command.fields == {"room": "général", "text": "<b>hi</b>"}
    assert protocol.parse('{"type": "hello", "nick": "Zoë_1.x-y"}').fields["token"] is None
    assert protocol.parse('{"type": "ping", "id": 7}').fields == {"id": 7}


def test_encode_is_compact_json() -> None:
    text = protocol.encode("message", text="é <b>")
    assert text == '{"type":"message","text":"é <b>"}'


# ------------------------------------------------------------------- store


def test_store_keeps_last_n_in_order(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "sub" / "h.sqlite3", history=3)
    for i in range(5):
        store.add("r", "ann", f"m{i}", ts=i)
    store.add("other", "bob", "x")
    assert [m.text for m in store.recent("r")] == ["m2", "m3", "m4"]
    store.close()
    reopened = HistoryStore(tmp_path / "sub" / "h.sqlite3", history=3)
    assert [m.text for m in reopened.recent("r")] == ["m2", "m3", "m4"]
    assert reopened.rooms() == ["other", "r"]
    reopened.close()


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if sys.platform in ("win32", "darwin"):
        assert default_db_path().name == "chat.sqlite3"
        return
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "wsframe" / "chat.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_db_path() == Path.home() / ".local/share/wsframe/chat.sqlite3"


# ------------------------------------------------------------------ server


@async_test
async def test_nicknames() -> None:
    async with chat_server() as uri, client(uri, "ann") as ann, client(uri) as other:
        await other.send(type="join", room="general")
        assert (await other.error())["code"] == "not_identified"
        for bad in ("", " ", "a b", "<i>x</i>", "x" * 25):
            await other.send(type="hello", nick=bad)
            assert (await other.error())["code"] == "invalid_nick"
        await other.send(type="hello", nick="ANN")  # case-insensitive
        error = await other.error()
        assert error["code"] == "nick_taken" and error["ref"] == "hello"
        await other.send(type="hello", nick="Zoë")
        welcome = await other.expect("welcome")
        assert welcome["nick"] == "Zoë" and welcome["token"]
        await other.send(type="hello", nick="again")
        assert (await other.error())["code"] == "already_identified"
        await ann.quiet()


@async_test
async def test_reclaim_nickname_with_token() -> None:
    async with chat_server() as uri, client(uri) as first, client(uri) as second:
        await first.send(type="hello", nick="ann")
        token = (await first.expect("welcome"))["token"]
        await first.send(type="join", room="general")
        await first.expect("joined")
        await second.send(type="hello", nick="ann", token="wrong")
        assert (await second.error())["code"] == "nick_taken"
        await second.send(type="hello", nick="ann", token=token)
        assert (await second.expect("welcome"))["nick"] == "ann"
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await first.next()
        assert info.value.code == 4001


@async_test
async def test_reclaim_token_of_any_text_is_refused_not_a_crash() -> None:
    # The token is compared in constant time on its UTF-8 bytes: a non-ASCII
    # token (which secrets.compare_digest refuses as str) is a wrong token.
    async with chat_server() as uri, client(uri, "ann") as ann, client(uri) as other:
        for token in ("é" * 24, "\u2603", "", "x" * 64, "x" * 65):
            await other.send(type="hello", nick="ann", token=token)
            assert (await other.error())["code"] == "nick_taken"
        await ann.quiet()  # ann is still connected, still ann


def test_reclaim_token_entropy() -> None:
    # welcome's token: 144 random bits (secrets.token_urlsafe(18)), new per hello.
    from wsframe.chat.server import TOKEN_BYTES, new_token

    tokens = {new_token() for _ in range(1000)}
    assert TOKEN_BYTES >= 16 and len(tokens) == 1000
    assert all(len(token) == 24 and re.fullmatch(r"[A-Za-z0-9_-]+", token) for token in tokens)


def test_page_keeps_the_token_out_of_storage() -> None:
    # The re-claim token lives in the page's memory only: no storage API call
    # mentions it (the nickname alone is remembered).
    from importlib import resources

    script = resources.files("wsframe.demo").joinpath("chat.js").read_text(encoding="utf-8")
    calls = re.findall(r"(?:localStorage|sessionStorage)\.\w+\(([^)]*)\)", script)
    assert calls and not [call for call in calls if "token" in call.lower()], calls
    assert "document.cookie" not in script and "indexedDB" not in script


@async_test
async def test_websocket_origins_same_host_extra_and_none() -> None:
    async with chat_server(origins=["https://chat.example"]) as uri:
        port = uri.split(":")[2].split("/")[0]
        # The chat's own page (Host 127.0.0.1:PORT), the extra origin, no Origin.
        for origin in (f"http://127.0.0.1:{port}", "https://chat.example:443", None):
            async with connect(uri, origin=origin, ping_interval=None) as ws:
                await ws.send(json.dumps({"type": "ping", "id": 1}))
                assert json.loads(await within(ws.recv(), STEP))["type"] == "pong"
        # Pages of other origins: another site, another port, another host name.
        for origin in ("https://evil.example", "http://127.0.0.1:1", f"http://localhost:{port}"):
            with pytest.raises(InvalidHandshake) as info:
                await within(connect(uri, origin=origin), STEP)
            assert info.value.status == 403


def test_chat_origins_checked_at_once() -> None:
    with pytest.raises(ValueError):
        ChatServer(origins=["https://chat.example/path"])
    with pytest.raises(TypeError):
        ChatServer(origins="https://chat.example")


@async_test
async def test_join_leave_presence_and_rooms() -> None:
    async with chat_server() as uri, client(uri, "ann") as ann, client(uri, "bob") as bob:
        await ann.send(type="join", room="general")
        joined = await ann.expect("joined", room="general")
        assert joined["users"] == ["ann"] and joined["history"] == []
        await bob.send(type="join", room="general")
        assert (await bob.expect("joined"))["users"] == ["ann", "bob"]
        presence = await ann.expect("presence")
        assert {"room": "general", "nick": "bob", "action": "join"} in presence["changes"]
        await bob.send(type="rooms")
        rooms = {r["room"]: r["users"] for r in (await bob.expect("rooms"))["rooms"]}
        assert rooms["general"] == ["ann", "bob"]
        await bob.send(type="leave", room="general")
        await bob.expect("left", room="general")
        change = {"room": "general", "nick": "bob", "action": "leave"}
        await ann.expect("presence", changes=[change])
        await bob.send(type="leave", room="general")
        assert (await bob.error())["code"] == "not_in_room"
        # Presence goes to everyone online, in the room or not.
        async with client(uri, "cat") as cat:
            await cat.send(type="join", room="games")
            await cat.expect("joined")
            change = {"room": "games", "nick": "cat", "action": "join"}
            await bob.expect("presence", changes=[change])
        # Disconnecting leaves every room.
        change = {"room": "games", "nick": "cat", "action": "leave"}
        await ann.expect("presence", changes=[change])


@async_test
async def test_messages_and_history_replay() -> None:
    async with chat_server(history=5) as uri, client(uri, "ann") as ann:
        await ann.send(type="join", room="general")
        await ann.expect("joined")
        for i in range(8):
            await ann.send(type="message", room="general", text=f"<b>m{i}</b>")
        received = [await ann.expect("message") for _ in range(8)]
        assert [m["text"] for m in received] == [f"<b>m{i}</b>" for i in range(8)]
        first = received[0]
        assert first["from"] == "ann" and first["room"] == "general"
        assert isinstance(first["ts"], int) and first["ts"] > 1_600_000_000_000
        assert [m["id"] for m in received] == sorted(m["id"] for m in received)
        async with client(uri, "bob") as bob:
            await bob.send(type="join", room="general")
            history = (await bob.expect("joined"))["history"]
            assert [m["text"] for m in history] == [f"<b>m{i}</b>" for i in range(3, 8)]
            assert history == [{k: v for k, v in m.items() if k != "type"} for m in received[3:]]
            await bob.send(type="message", room="general", text="hello ann")
            await ann.expect("message", **{"from": "bob", "text": "hello ann"})
            await bob.send(type="message", room="elsewhere", text="x")
            assert (await bob.error())["code"] == "not_in_room"


@async_test
async def test_direct_messages() -> None:
    async with chat_server() as uri, client(uri, "ann") as ann:
        await ann.quiet()
        async with client(uri, "bob") as bob, client(uri, "cat") as cat:
            await ann.send(type="dm", to="BOB", text="psst")
            dm = await bob.expect("dm")
            assert (dm["from"], dm["to"], dm["text"]) == ("ann", "bob", "psst")
            assert (await ann.expect("dm"))["text"] == "psst"  # the sender's copy
            assert not [m for m in await cat.quiet() if m["type"] == "dm"]
            await ann.send(type="dm", to="nobody", text="hi")
            assert (await ann.error())["code"] == "no_such_user"
            await ann.send(type="dm", to="ann", text="note to self")
            assert (await ann.expect("dm"))["to"] == "ann"
            assert not [m for m in await ann.quiet() if m["type"] == "dm"]


@async_test
async def test_typing_indicator() -> None:
    async with chat_server() as uri, client(uri, "ann") as ann, client(uri, "bob") as bob:
        for c in (ann, bob):
            await c.send(type="join", room="general")
            await c.expect("joined")
        await ann.send(type="typing", room="general")
        assert (await bob.expect("typing")) == {"type": "typing", "room": "general", "nick": "ann"}
        assert not [m for m in await ann.quiet() if m["type"] == "typing"]
        await ann.send(type="typing", room="nowhere")
        assert (await ann.error())["code"] == "not_in_room"


@async_test
async def test_bad_input_gets_an_error_not_a_crash() -> None:
    async with chat_server() as uri, client(uri, "ann") as ann:
        cases = [
            ("{oops", "bad_json"),
            ('"just a string"', "bad_json"),
            ('{"type": "fly"}', "unknown_type"),
            ('{"type": "join"}', "invalid_field"),
            ('{"type": "join", "room": ["x"]}', "invalid_field"),
            ('{"type": "join", "room": "a/b"}', "invalid_room"),
            ('{"type": "message", "room": "general", "text": ""}', "invalid_field"),
            (json.dumps({"type": "dm", "to": "ann", "text": "x" * 2001}), "too_long"),
            (json.dumps({"type": "dm", "to": "ann", "text": "y" * 9000}), "too_big"),
        ]
        for raw, code in cases:
            await ann.ws.send(raw)
            error = await ann.error()
            assert error["code"] == code, raw[:60]
            assert isinstance(error["message"], str) and error["message"]
            await asyncio.sleep(0.25)  # stay under the rate limit
        await ann.ws.send(b"\x00binary")
        assert (await ann.error())["code"] == "binary"
        # Still alive and well.
        await ann.send(type="dm", to="ann", text="<img src=x onerror=alert(1)>")
        assert (await ann.expect("dm"))["text"] == "<img src=x onerror=alert(1)>"
        # A frame over the server's max_message_size closes with 1009.
        await ann.ws.send("z" * (MAX_FRAME_SIZE + 1))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ann.next()
        assert info.value.code == 1009


@async_test
async def test_rate_limit_then_1008() -> None:
    async with chat_server(rate=1.0, burst=3.0, abuse_limit=5.0) as uri, client(uri) as c:
        for i in range(3):
            await c.send(type="ping", id=i)
            await c.expect("pong", id=i)
        await c.send(type="ping", id=3)
        error = await c.error()
        assert error["code"] == "rate_limited"
        for i in range(20):
            try:
                await c.send(type="ping", id=i)
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await c.next()
        assert info.value.code == 1008
        assert sum(m.get("code") == "rate_limited" for m in c.seen) >= 3


@async_test
async def test_restart_with_file_db_keeps_history(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.sqlite3")
    async with chat_server(db) as uri, client(uri, "ann") as ann:
        await ann.send(type="join", room="general")
        await ann.expect("joined")
        await ann.send(type="message", room="general", text="before the restart")
        await ann.expect("message")
    async with chat_server(db) as uri, client(uri, "bob") as bob:
        rooms = (bob.seen[0])["rooms"]
        assert "general" in [r["room"] for r in rooms]
        await bob.send(type="join", room="general")
        history = (await bob.expect("joined"))["history"]
        assert [(m["from"], m["text"]) for m in history] == [("ann", "before the restart")]


async def _http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = await within(reader.read(), STEP)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@async_test
async def test_http_page_and_404() -> None:
    chat = ChatServer()
    async with chat.serve("127.0.0.1", 0) as server:
        status, headers, body = await _http_get(server.port, "/")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert b'<script src="chat.js"' in body
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        status, headers, body = await _http_get(server.port, "/chat.js")
        assert status == 200 and headers["content-type"].startswith("text/javascript")
        assert b"innerHTML" not in body  # user data only through textContent
        status, headers, _ = await _http_get(server.port, "/chat.css")
        assert status == 200 and headers["content-type"].startswith("text/css")
        for path in ("/nope", "/ws/x", "/../etc/passwd", "/index.htm"):
            assert (await _http_get(server.port, path))[0] == 404


def test_cli_prints_url_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("no SIGTERM to send on Windows")
    db = tmp_path / "cli.sqlite3"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsframe", "chat", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].strip() == f"chat history in {db}"
        assert lines[1].startswith("listening on http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert db.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_invalid_origin_exits_2() -> None:
    origins = ["--origin", "https://ok.example", "--origin", "https://chat.example/path"]
    result = subprocess.run(
        [sys.executable, "-m", "wsframe", "chat", "--port", "0", "--db", ":memory:", *origins],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "https://chat.example/path" in result.stderr and not result.stdout


def test_stores_opening_one_new_file_together(tmp_path: Path) -> None:
    # Workers start together on one new history file: SQLite refuses one of
    # them at once ("database is locked") unless the store retries.
    import multiprocessing

    path = tmp_path / "shared.sqlite3"
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        results = pool.map(_open_store, [str(path)] * 12)
    assert results == ["ok"] * 12


def _open_store(path: str) -> str:
    from wsframe.chat.store import HistoryStore

    HistoryStore(path, shared=True).add("room", "nick", "hello")
    return "ok"


# ------------------------------------------------------------------ flooding


def _assert_flood_outcome(outcome: Any) -> None:
    # The refused messages were answered, then the close frame said why; the
    # connection ended with 1008 (not 1006: nothing was lost to a reset).
    assert outcome.errors and set(outcome.errors) == {"rate_limited"}, outcome
    assert outcome.close == (1008, "flooding"), outcome
    assert outcome.close_code == 1008, outcome
    assert outcome.reset is None and outcome.ended == "eof", outcome


@async_test(timeout=30)
async def test_flooding_client_gets_its_errors_and_1008_over_a_real_socket() -> None:
    from chat_flooder import flood

    async with chat_server(rate=5.0, burst=10.0, abuse_limit=10.0) as uri:
        port = int(uri.split(":")[2].split("/")[0])
        outcome = await asyncio.to_thread(flood, port)
    _assert_flood_outcome(outcome)


def test_flooding_client_of_the_cli_chat_gets_its_errors_and_1008(tmp_path: Path) -> None:
    # The same against `python -m wsframe chat` (on uvloop when installed).
    from chat_flooder import flood

    proc = subprocess.Popen(
        [sys.executable, "-m", "wsframe", "chat", "--port", "0", "--db", ":memory:"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = ""
        for _ in range(3):
            line = proc.stdout.readline()
            if line.startswith("listening on"):
                break
        port = int(line.rsplit(":", 1)[1])
        for _ in range(3):
            _assert_flood_outcome(flood(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_both_rooms_have_one_interface() -> None:
    """The chat is written against one rooms interface: Rooms and RedisRooms both have it."""
    import inspect

    from wsframe.asyncio import Rooms
    from wsframe.asyncio.redis_rooms import RedisRooms

    for name in ("join", "leave", "leave_all", "members", "rooms", "all_rooms", "presence"):
        ours = inspect.signature(getattr(Rooms, name))
        theirs = inspect.signature(getattr(RedisRooms, name))
        assert list(ours.parameters) == list(theirs.parameters), name
    assert list(inspect.signature(Rooms.send).parameters) == list(
        inspect.signature(RedisRooms.send).parameters
    )
    for name in ("start", "close", "__aenter__", "__aexit__"):
        assert inspect.iscoroutinefunction(getattr(Rooms, name))
        assert inspect.iscoroutinefunction(getattr(RedisRooms, name))
    assert "on_presence" in inspect.signature(Rooms).parameters
    assert "on_presence" in inspect.signature(RedisRooms).parameters
