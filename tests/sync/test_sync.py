"""The threaded API, wsframe.sync: client and server over real loopback sockets.

Every test is bounded in time (timeouts on each blocking call, servers shut
down in ``finally``) and runs on both twins like the rest of the suite.
"""

from __future__ import annotations

import array
import contextlib
import http.client
import os
import platform
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from sync_helpers import STEP, echo, eventually, running, uri

import wsframe.sync
from wsframe.connection import ClientConnection
from wsframe.errors import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
)
from wsframe.state import State
from wsframe.sync import WebSocket, connect

ROOT = Path(__file__).resolve().parents[2]


def dial(server: Any, path: str = "/", **kwargs: Any) -> WebSocket:
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("open_timeout", STEP)
    return connect(uri(server, path), **kwargs)


class TestMessages:
    def test_text_and_binary_round_trip(self) -> None:
        with running() as server, dial(server) as ws:
            ws.send("héllo")
            assert ws.recv(timeout=STEP) == "héllo"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=STEP) == b"\x00\x01"

    def test_bytes_like_objects_are_binary(self) -> None:
        with running() as server, dial(server) as ws:
            for message in (bytearray(b"ab"), memoryview(b"cd"), array.array("B", b"ef")):
                ws.send(message)
                assert ws.recv(timeout=STEP) == bytes(message)

    def test_iterables_are_fragmented_messages(self) -> None:
        received: list[Any] = []

        def handler(ws: WebSocket) -> None:
            conn = ws.connection
            for message in ws:
                received.append((message, conn.state))
                ws.send(message)

        with running(handler) as server, dial(server) as ws:
            ws.send(["one", "two", "three"])
            assert ws.recv(timeout=STEP) == "onetwothree"
            ws.send(iter([b"a", b"b"]))
            assert ws.recv(timeout=STEP) == b"ab"
            ws.send([])  # nothing to send
            ws.send(["only"])
            assert ws.recv(timeout=STEP) == "only"
            with pytest.raises(TypeError):
                ws.send(["text", b"bytes"])
        assert [m for m, _ in received][:2] == ["onetwothree", b"ab"]

    def test_send_rejects_other_types(self) -> None:
        with running() as server, dial(server) as ws, pytest.raises(TypeError):
            ws.send(42)

    def test_large_messages(self) -> None:
        payload = os.urandom(3 << 20)
        with running(max_message_size=None) as server, dial(server, max_message_size=None) as ws:
            ws.send(payload)
            assert ws.recv(timeout=STEP * 2) == payload

    def test_iteration_ends_on_normal_close(self) -> None:
        def handler(ws: WebSocket) -> None:
            ws.send("a")
            ws.send("b")
            ws.close(1000, "done")

        with running(handler) as server, dial(server) as ws:
            assert list(ws) == ["a", "b"]
            assert ws.close_code == 1000
            assert ws.close_reason == "done"
            assert ws.state is State.CLOSED and ws.ready_state == 3

    def test_recv_timeout(self) -> None:
        with running() as server, dial(server) as ws:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.2)
            assert 0.15 < time.monotonic() - started < 2
            ws.send("still there")  # the connection is fine after a timeout
            assert ws.recv(timeout=STEP) == "still there"

    def test_recv_after_close_raises(self) -> None:
        with running() as server:
            ws = dial(server)
            ws.close()
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=STEP)
            with pytest.raises(ConnectionClosedOK):
                ws.send("late")

    def test_abort_closes_even_when_nobody_reads(self) -> None:
        with running() as server:
            ws = dial(server)
            ws.abort()
            eventually(lambda: ws.state is State.CLOSED)  # the background reader saw the end
            assert ws.close_code == 1006
            with pytest.raises(ConnectionClosedError):
                ws.send("x")

    def test_messages_received_before_close_are_read(self) -> None:
        def handler(ws: WebSocket) -> None:
            for i in range(5):
                ws.send(str(i))
            ws.close(1001)

        with running(handler) as server, dial(server) as ws:
            assert ws.wait_closed(STEP)
            assert [ws.recv(timeout=STEP) for _ in range(5)] == ["0", "1", "2", "3", "4"]
            with pytest.raises(ConnectionClosedOK) as info:
                ws.recv(timeout=STEP)
            assert info.value.code == 1001


class TestThreads:
    def test_send_from_many_threads(self) -> None:
        count, threads = 200, 8
        with running(max_queue=1024) as server, dial(server, max_queue=1024) as ws:

            def sender(n: int) -> None:
                for i in range(count):
                    ws.send(f"{n}:{i}:" + "x" * (i * 37 % 3000))

            workers = [threading.Thread(target=sender, args=(n,)) for n in range(threads)]
            for worker in workers:
                worker.start()
            got = [ws.recv(timeout=STEP) for _ in range(count * threads)]
            for worker in workers:
                worker.join(STEP)
            by_sender: dict[str, list[int]] = {}
            for message in got:
                n, i, rest = message.split(":")
                assert rest == "x" * (int(i) * 37 % 3000)
                by_sender.setdefault(n, []).append(int(i))
            assert all(v == list(range(count)) for v in by_sender.values())

    def test_fragmented_message_is_not_interleaved(self) -> None:
        release = threading.Event()
        inside = threading.Event()

        def fragments() -> Any:
            yield "start-"
            inside.set()  # the first frame is being sent
            release.wait(STEP)
            yield "end"

        with running() as server, dial(server) as ws:
            sender = threading.Thread(target=ws.send, args=(fragments(),))
            sender.start()
            assert inside.wait(STEP)
            other = threading.Thread(target=ws.send, args=("other",))
            other.start()
            time.sleep(0.05)
            release.set()
            sender.join(STEP)
            other.join(STEP)
            assert [ws.recv(timeout=STEP), ws.recv(timeout=STEP)] == ["start-end", "other"]

    def test_both_peers_sending_a_lot_do_not_deadlock(self) -> None:
        """One thread sends while another reads; the server echoes: kernel
        buffers fill both ways, and nobody holds a connection's lock while
        blocked sending, so it all goes through."""
        payload = os.urandom(256 * 1024)
        count = 40
        with running(max_message_size=None) as server, dial(server, max_message_size=None) as ws:
            got: list[int] = []

            def reader() -> None:
                for _ in range(count):
                    got.append(len(ws.recv(timeout=STEP * 2)))

            thread = threading.Thread(target=reader)
            thread.start()
            for _ in range(count):
                ws.send(payload)
            thread.join(STEP * 4)
            assert got == [len(payload)] * count

    def test_recv_from_two_threads_is_an_error(self) -> None:
        with running() as server, dial(server) as ws:
            errors: list[BaseException] = []

            def reader() -> None:
                try:
                    ws.recv(timeout=1)
                except BaseException as exc:
                    errors.append(exc)

            first = threading.Thread(target=reader)
            first.start()
            time.sleep(0.1)
            with pytest.raises(ConcurrencyError, match="another thread"):
                ws.recv(timeout=1)
            first.join(STEP)
            assert len(errors) == 1 and isinstance(errors[0], TimeoutError)
            assert isinstance(ConcurrencyError("x"), RuntimeError)

    def test_ping_while_another_thread_reads(self) -> None:
        with running() as server, dial(server) as ws:
            got: list[Any] = []
            reader = threading.Thread(target=lambda: got.append(ws.recv(timeout=STEP)))
            reader.start()
            time.sleep(0.05)
            rtt = ws.ping(timeout=STEP)
            assert 0 < rtt < STEP
            ws.send("hi")
            reader.join(STEP)
            assert got == ["hi"]

    def test_handler_that_never_reads_still_answers_pings_and_sees_close(self) -> None:
        closed = threading.Event()
        codes: list[Optional[int]] = []

        def handler(ws: WebSocket) -> None:
            ws.send("hello")
            while ws.state is State.OPEN:  # never calls recv
                time.sleep(0.01)
            codes.append(ws.close_code)
            closed.set()

        with running(handler) as server, dial(server) as ws:
            assert ws.recv(timeout=STEP) == "hello"
            assert ws.ping(timeout=STEP) < STEP  # the server's background reader answers
            ws.close(1000, "bye")
            assert closed.wait(STEP)
            assert codes == [1000]

    def test_client_that_never_reads_answers_server_pings(self) -> None:
        pongs: list[float] = []

        def handler(ws: WebSocket) -> None:
            pongs.append(ws.ping(timeout=STEP))
            ws.send("done")
            for _ in ws:
                pass

        with running(handler) as server, dial(server) as ws:
            eventually(lambda: len(pongs) == 1)
            assert ws.recv(timeout=STEP) == "done"


class TestPingAndHeartbeat:
    def test_ping_returns_round_trip_time(self) -> None:
        with running() as server, dial(server) as ws:
            rtt = ws.ping(timeout=STEP)
            assert isinstance(rtt, float) and 0 < rtt < STEP
            assert ws.ping(b"abc", timeout=STEP) > 0

    def test_ping_on_closed_connection(self) -> None:
        with running() as server:
            ws = dial(server)
            ws.close()
            with pytest.raises(ConnectionClosed):
                ws.ping(timeout=STEP)

    def test_server_heartbeat_fails_a_silent_client(self) -> None:
        results: list[ConnectionClosed] = []

        def handler(ws: WebSocket) -> None:
            try:
                ws.recv(timeout=STEP * 2)
            except ConnectionClosed as exc:
                results.append(exc)

        with running(handler, ping_interval=0.1, ping_timeout=0.2) as server:
            # A raw client: completes the handshake, then never answers a ping.
            conn = ClientConnection(uri(server), compression=None)
            with socket.create_connection(("127.0.0.1", server.port), timeout=STEP) as sock:
                sock.sendall(conn.data_to_send())
                while conn.state is State.CONNECTING:
                    conn.receive_data(sock.recv(4096))
                eventually(lambda: len(results) == 1)
        assert isinstance(results[0], ConnectionClosedError)
        assert results[0].sent == (1011, "keepalive ping timeout")

    def test_client_heartbeat_keeps_an_idle_connection_alive(self) -> None:
        with running(ping_interval=0.05, ping_timeout=3) as server:
            with dial(server, ping_interval=0.05, ping_timeout=3) as ws:
                time.sleep(0.5)  # several pings each way, nobody reads
                ws.send("alive")
                assert ws.recv(timeout=STEP) == "alive"
            assert server.heartbeat is not None


class TestLimits:
    def test_message_too_big_closes_with_1009(self) -> None:
        with running(max_message_size=1000) as server, dial(server) as ws:
            ws.send("x" * 2000)
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=STEP)
            assert info.value.code == 1009

    def test_reading_pauses_when_the_application_is_behind(self) -> None:
        sent = threading.Event()

        def handler(ws: WebSocket) -> None:
            for i in range(200):
                ws.send("x" * 10_000 + str(i))
            sent.set()
            for _ in ws:
                pass

        with running(handler) as server, dial(server, max_queue=4) as ws:
            eventually(lambda: ws.reading_paused)  # the background reader filled the inbox
            time.sleep(0.1)
            assert ws.queued <= 5  # bounded: the rest waits in the kernel's buffers
            got = [ws.recv(timeout=STEP) for _ in range(200)]
            assert got[-1] == "x" * 10_000 + "199"
            assert sent.wait(STEP)

    def test_compression_is_negotiated(self) -> None:
        with running() as server, dial(server) as ws:
            assert ws.connection.deflate is not None
            ws.send("a" * 100_000)
            assert ws.recv(timeout=STEP) == "a" * 100_000
        with running(compression=None) as server, dial(server) as ws:
            assert ws.connection.deflate is None

    def test_open_timeout_against_a_silent_server(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as silent:
            port = silent.getsockname()[1]
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=0.3)
            assert time.monotonic() - started < 2

    def test_server_drops_a_client_that_never_sends_its_request(self) -> None:
        with (
            running(open_timeout=0.2) as server,
            socket.create_connection(("127.0.0.1", server.port), timeout=STEP) as sock,
        ):
            assert sock.recv(100) == b""  # dropped


class TestServer:
    def test_tls(self, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
        server_context, client_context = tls
        with (
            running(ssl=server_context) as server,
            connect(
                uri(server, scheme="wss"), proxy=None, ssl=client_context, open_timeout=STEP
            ) as ws,
        ):
            ws.send("secret")
            assert ws.recv(timeout=STEP) == "secret"
            assert ws.socket_transport.get_extra_info("ssl_object") is not None
            assert ws.ping(timeout=STEP) > 0

    def test_subprotocols(self) -> None:
        def handler(ws: WebSocket) -> None:
            ws.send(ws.subprotocol or "")

        with (
            running(handler, subprotocols=["chat.v2", "chat.v1"]) as server,
            dial(server, subprotocols=["chat.v1"]) as ws,
        ):
            assert ws.subprotocol == "chat.v1"
            assert ws.recv(timeout=STEP) == "chat.v1"

    def test_request_is_available(self) -> None:
        def handler(ws: WebSocket) -> None:
            assert ws.request is not None
            ws.send(ws.request.path + "?" + ws.request.query)

        with running(handler) as server, dial(server, "/room?x=1") as ws:
            assert ws.recv(timeout=STEP) == "/room?x=1"

    def test_process_request_answers_plain_http_on_the_same_port(self) -> None:
        def process_request(ws: WebSocket, request: Any) -> Any:
            if request.path == "/health":
                return 200, {"Content-Type": "text/plain"}, "ok\n"
            if request.path == "/forbidden":
                return 403, "no\n"
            if request.path == "/boom":
                raise RuntimeError("boom")
            return None

        with running(process_request=process_request) as server:
            client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=STEP)
            client.request("GET", "/health")
            response = client.getresponse()
            assert (response.status, response.read()) == (200, b"ok\n")
            with pytest.raises(InvalidHandshake) as info:
                dial(server, "/forbidden")
            assert info.value.status == 403
            with pytest.raises(InvalidHandshake) as info:
                dial(server, "/boom")
            assert info.value.status == 500
            with dial(server, "/ws") as ws:
                ws.send("fine")
                assert ws.recv(timeout=STEP) == "fine"

    def test_max_connections_answers_503(self) -> None:
        with running(max_connections=1) as server, dial(server):
            with pytest.raises(InvalidHandshake) as info:
                dial(server)
            assert info.value.status == 503

    def test_max_connections_per_ip_answers_503(self) -> None:
        # 127.0.0.1 is held to 2 connections; 127.0.0.2 (loopback on Linux too)
        # still gets in, and a slot comes back when a connection ends.
        with running(max_connections_per_ip=2) as server:
            first, second = dial(server), dial(server)
            with pytest.raises(InvalidHandshake) as info:
                dial(server)
            assert info.value.status == 503
            assert info.value.headers.get("Retry-After") == "1"
            # The refused connection is counted until its thread has ended,
            # which may be just after the client read the 503.
            eventually(lambda: server.per_client.counts == {"127.0.0.1": 2})
            try:
                other = socket.create_connection(
                    ("127.0.0.1", server.port), STEP, source_address=("127.0.0.2", 0)
                )
            except OSError:  # pragma: no cover - not Linux
                pass
            else:
                with other:
                    other.sendall(_upgrade_request())
                    assert other.recv(12) == b"HTTP/1.1 101"
                    eventually(lambda: server.per_client.counts.get("127.0.0.2") == 1)
            first.close()
            eventually(lambda: server.per_client.counts.get("127.0.0.1") == 1)
            with dial(server) as third:
                third.send("again")
                assert third.recv(timeout=STEP) == "again"
            second.close()
            eventually(lambda: not server.per_client.counts)

    def test_max_connections_per_ip_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="max_connections_per_ip"):
            wsframe.sync.serve(echo, "127.0.0.1", 0, max_connections_per_ip=0)

    def test_origins_refuse_other_pages_with_403(self) -> None:
        allowed = "https://app.example.com"
        with running(origins=[allowed, None]) as server:
            with pytest.raises(InvalidHandshake) as info:
                dial(server, origin="https://evil.example")
            assert info.value.status == 403
            for origin in (allowed, None):  # the allowed page; a non-browser client
                with dial(server, origin=origin) as ws:
                    ws.send("hi")
                    assert ws.recv(timeout=STEP) == "hi"
            eventually(lambda: not server.connections)

    def test_max_threads_bounds_the_connections_served_at_once(self) -> None:
        active: list[int] = []
        peak: list[int] = []
        lock = threading.Lock()

        def handler(ws: WebSocket) -> None:
            with lock:
                active.append(1)
                peak.append(len(active))
            try:
                echo(ws)
            finally:
                with lock:
                    active.pop()

        with running(handler, max_threads=2) as server:
            clients = [dial(server) for _ in range(2)]
            third: list[WebSocket] = []
            opener = threading.Thread(target=lambda: third.append(dial(server)))
            opener.start()
            time.sleep(0.3)
            assert not third  # waits for a free thread
            clients[0].close()
            opener.join(STEP)
            assert third
            for ws in [clients[1], *third]:
                ws.send("x")
                assert ws.recv(timeout=STEP) == "x"
                ws.close()
        assert max(peak) == 2

    def test_handler_exception_closes_with_1011(self) -> None:
        def handler(ws: WebSocket) -> None:
            raise RuntimeError("bug")

        with running(handler) as server, dial(server) as ws:
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=STEP)
            assert info.value.code == 1011

    def test_shutdown_closes_connections_with_1001(self) -> None:
        with running() as server:
            ws = dial(server)
            ws.send("x")
            assert ws.recv(timeout=STEP) == "x"
            shutdown = threading.Thread(target=server.shutdown)
            shutdown.start()
            with pytest.raises(ConnectionClosedOK) as info:
                ws.recv(timeout=STEP)
            assert info.value.code == 1001
            shutdown.join(STEP)
            assert not server.is_serving()
            with pytest.raises(OSError):
                dial(server)

    def test_sigint_in_serve_forever_shuts_down_gracefully(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "wsframe", "echo", "--api", "sync", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(ROOT),
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            assert line.startswith("listening on ws://"), line
            port = int(line.rsplit(":", 1)[1])
            with connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=STEP) as ws:
                ws.send("x")
                assert ws.recv(timeout=STEP) == "x"
                proc.send_signal(signal.SIGINT)
                with pytest.raises(ConnectionClosedOK) as info:
                    ws.recv(timeout=STEP)
                assert info.value.code == 1001
            assert proc.wait(STEP) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(STEP)


class TestInterop:
    def test_websockets_sync_client_against_the_sync_server(self) -> None:
        sync_client = pytest.importorskip("websockets.sync.client")
        with running() as server, _pypy_join_race_tolerated():
            with sync_client.connect(uri(server), open_timeout=STEP) as ws:
                ws.send("peer")
                assert ws.recv(timeout=STEP) == "peer"
                ws.send(b"\x01" * 100_000)
                assert ws.recv(timeout=STEP) == b"\x01" * 100_000
            assert ws.close_code == 1000

    def test_sync_client_against_a_websockets_server(self) -> None:
        sync_server = pytest.importorskip("websockets.sync.server")

        def handler(peer: Any) -> None:
            for message in peer:
                peer.send(message)

        with sync_server.serve(handler, "127.0.0.1", 0) as peer_server:
            thread = threading.Thread(target=peer_server.serve_forever, daemon=True)
            thread.start()
            port = peer_server.socket.getsockname()[1]
            try:
                with connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=STEP) as ws:
                    ws.send("peer")
                    assert ws.recv(timeout=STEP) == "peer"
                    assert ws.connection.deflate is not None
                    ws.send("z" * 200_000)
                    assert ws.recv(timeout=STEP) == "z" * 200_000
            finally:
                peer_server.shutdown()
                thread.join(STEP)


@contextlib.contextmanager
def _pypy_join_race_tolerated() -> Iterator[None]:
    """Let websockets' sync client close through PyPy's Thread.join race.

    websockets' ``close()`` joins its reader thread; on PyPy before the fix of
    pypy/pypy#5079 (PR #5080, after 7.3.17) ``Thread.join()`` may raise
    ``RuntimeError: cannot release un-acquired lock`` once the thread has
    ended (websockets hit it too: python-websockets/websockets#1314). That
    error alone is let through; an error it interrupted is raised, and so is
    anything else.
    """
    try:
        yield
    except RuntimeError as exc:
        if not (platform.python_implementation() == "PyPy" and "un-acquired lock" in str(exc)):
            raise
        if exc.__context__ is not None:
            raise exc.__context__ from None


def test_invalid_uri() -> None:
    with pytest.raises(ValueError):
        connect("http://example.com/", proxy=None)


def test_errors_are_exported() -> None:
    assert wsframe.sync.InvalidProxy is wsframe.errors.InvalidProxy


def _upgrade_request() -> bytes:
    return (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
