"""Hostile peers against a running server, over raw sockets.

The server (tests/hostile_server.py, an echo server) runs in a process of its
own, once with the C codec and once with the pure-Python one
(``WSFRAME_NO_EXTENSIONS=1``). After each attack: the server answered with the
right HTTP status or close code, it still serves a normal client, and the
memory Python allocated in it (tracemalloc, measured by the server after a GC)
is back near where it was; its RSS stays bounded.

PyPy has no tracemalloc: there the server measures its GC's memory after a
collection and, for peaks, the growth of its resident high-water mark
(tests/hostile_server.py). Both count what the JIT keeps for code it compiles
on the way, and the peak also counts garbage not collected yet, so the bounds
are coarser there (``TRACED_SLACK``, ``peak_bound``): they still catch a
compression bomb inflated (64 MiB) or memory kept per connection, not a few MiB.

The sans-I/O tests of the ping rate limit at the end run in this process, with
both codecs too.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import select
import socket
import ssl
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from conftest import IS_PYPY, require_c

from wsframe import _codec_py
from wsframe.connection import ClientConnection, ServerConnection, State
from wsframe.events import Ping, Request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x01\x02\x03\x04"
#: Python allocations a server may keep after an attack (caches warmed by it).
TRACED_SLACK = (8 << 20) if IS_PYPY else 1 << 20
#: RSS a server may gain over the whole module (freed memory is not always
#: returned to the OS).
RSS_SLACK = 96 << 20
IDLE_CONNECTIONS = 2000
#: Peaks on PyPy (see the module's docstring): below the 64 MiB bomb.
PYPY_PEAK_BOUND = 48 << 20


def peak_bound(bound: int) -> int:
    """The bound for a peak measured by the server: ``bound`` on CPython."""
    return max(bound, PYPY_PEAK_BOUND) if IS_PYPY else bound


# The frame codec the raw peers use (their side is not under test).
encode_frame = _codec_py.encode_frame
FrameDecoder = _codec_py.FrameDecoder


# ------------------------------------------------------------------- server


class ServerProcess:
    def __init__(self, implementation: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        if implementation == "python":
            env["WSFRAME_NO_EXTENSIONS"] = "1"
        else:
            env.pop("WSFRAME_NO_EXTENSIONS", None)
            env["WSFRAME_USE_CEXT"] = "1"  # on PyPy too (no effect on CPython)
        self.implementation = implementation
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "hostile_server.py"), "--open-timeout", "1"],
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening "), line
        self.port = int(line.split()[1])
        stats = self.stats()
        assert stats["implementation"] == implementation
        # Warm up what every connection uses (read buffer, zlib, the codec).
        for _ in range(3):
            assert_serves(self)
            assert_serves(self, deflate=True)
        self.wait_idle()
        self.baseline = self.stats()

    def stats(self, reset: bool = False) -> dict[str, Any]:
        with connect(self.port) as sock:
            sock.sendall(
                f"GET /_stats{'?reset' if reset else ''} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            status, _, body = read_response(sock)
        assert status == 200, body
        return dict(json.loads(body))

    def wait_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the server holds no connection; return its stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["connections"] == 0 or time.monotonic() > deadline:
                assert stats["connections"] == 0, stats
                return stats
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.fixture(scope="module", params=["c", "python"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    if request.param == "c":
        require_c()
    raise_nofile(IDLE_CONNECTIONS + 1024)
    proc = ServerProcess(request.param)
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


# -------------------------------------------------------------- raw peers


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def upgrade_request(
    *, key: str = KEY, version: str = "13", extra: str = "", path: str = "/"
) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: {version}\r\n{extra}\r\n"
    ).encode()


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """An HTTP response: read to the end of the connection."""
    data = recv_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def http_status(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(port) as sock:
        sock.sendall(data)
        return read_response(sock)


class RawClient:
    """An upgraded connection driven by hand: frames in, frames out."""

    def __init__(self, port: int, *, deflate: bool = False) -> None:
        self.sock = connect(port)
        extra = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
        self.sock.sendall(upgrade_request(extra=extra))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            assert chunk, data
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.deflate = b"permessage-deflate" in head
        assert self.deflate == deflate
        self.decoder = FrameDecoder("client", allow_rsv1=deflate)
        self.frames: list[Any] = list(self.decoder.feed(rest))

    def send(self, opcode: int, payload: bytes = b"", **flags: Any) -> None:
        self.sock.sendall(encode_frame(opcode, payload, mask=MASK, **flags))

    def next_frame(self, timeout: float = 5.0) -> Any:
        """The next frame from the server (None at the end of the connection)."""
        self.sock.settimeout(timeout)
        while not self.frames:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.frames.extend(self.decoder.feed(chunk))
        return self.frames.pop(0)

    def close_code(self, timeout: float = 5.0) -> Optional[int]:
        """Skip frames until the server's close frame; return its code."""
        while True:
            frame = self.next_frame(timeout)
            if frame is None:
                return None
            if frame.opcode == 8:
                return int.from_bytes(frame.payload[:2], "big") if frame.payload else 1005

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def compress(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def assert_serves(server: ServerProcess, deflate: bool = False) -> None:
    """A normal client: a text and a binary message echoed, a clean close."""
    with RawClient(server.port, deflate=deflate) as client:
        for opcode, payload in ((1, "héllo".encode()), (2, bytes(range(256)) * 40)):
            if deflate:
                client.send(opcode, compress(payload), rsv1=True)
            else:
                client.send(opcode, payload)
            frame = client.next_frame()
            assert frame is not None and frame.opcode == opcode
            got = frame.payload
            if frame.rsv1:
                got = zlib.decompressobj(-15).decompress(got + b"\x00\x00\xff\xff")
            assert got == payload
        client.send(8, struct.pack("!H", 1000))
        assert client.close_code() == 1000
        assert client.next_frame() is None


# ---------------------------------------------------------- the handshake


def test_plain_http(hostile: ServerProcess) -> None:
    status, headers, _ = http_status(hostile.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 426
    assert headers.get("upgrade", "").lower() == "websocket"
    status, _, _ = http_status(
        hostile.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert status in (400, 405)
    status, _, _ = http_status(hostile.port, b"GET / HTTP/1.0\r\n\r\n")
    assert status in (400, 426, 505)


def test_wrong_version(hostile: ServerProcess) -> None:
    status, headers, _ = http_status(hostile.port, upgrade_request(version="8"))
    assert status == 426
    assert headers["sec-websocket-version"] == "13"
    status, headers, _ = http_status(hostile.port, upgrade_request(version="thirteen"))
    assert status in (400, 426)


@pytest.mark.parametrize("key", ["", "not base64!", "c2hvcnQ=", "A" * 300])
def test_wrong_key(hostile: ServerProcess, key: str) -> None:
    status, _, _ = http_status(hostile.port, upgrade_request(key=key))
    assert status == 400


def test_oversized_request_line(hostile: ServerProcess) -> None:
    status, _, _ = http_status(hostile.port, upgrade_request(path="/" + "a" * 100_000))
    assert status == 414


def test_oversized_header_line(hostile: ServerProcess) -> None:
    status, _, _ = http_status(hostile.port, upgrade_request(extra=f"X-Big: {'b' * 100_000}\r\n"))
    assert status == 431


def test_too_many_headers(hostile: ServerProcess) -> None:
    extra = "".join(f"X-H{i}: {i}\r\n" for i in range(1000))
    status, _, _ = http_status(hostile.port, upgrade_request(extra=extra))
    assert status == 431


def test_too_many_header_bytes(hostile: ServerProcess) -> None:
    extra = "".join(f"X-H{i}: {'v' * 4000}\r\n" for i in range(40))
    status, _, _ = http_status(hostile.port, upgrade_request(extra=extra))
    assert status == 431


@pytest.mark.parametrize("endless", ["headers", "line"])
def test_endless_headers(hostile: ServerProcess, endless: str) -> None:
    """Headers that never end: answered with 431 long before memory matters."""
    with connect(hostile.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        piece = b"X-More: yes\r\n" * 100 if endless == "headers" else b"y" * 1300
        if endless == "line":
            sock.sendall(b"X-Line: ")
        sent = 0
        try:
            while sent < 64 << 20:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 4 << 20, "the server kept reading"
        status, _, _ = read_response(sock)
    assert status == 431


def client_hello() -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_tls_on_plain_port(hostile: ServerProcess) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(client_hello())
        data = recv_all(sock)
    # An HTTP error (or nothing), then the end of the connection.
    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:100]


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(hostile: ServerProcess, seed: int) -> None:
    rng = random.Random(seed)
    junk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 5000, 100_000])))
    with connect(hostile.port) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(junk + b"\r\n\r\n")
        data = recv_all(sock, timeout=3.0)
    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:100]


def test_half_sent_handshake(hostile: ServerProcess) -> None:
    """Requests held open halfway are dropped after open_timeout (1 s here)."""
    socks = [connect(hostile.port) for _ in range(50)]
    try:
        for index, sock in enumerate(socks):
            if index % 2:
                sock.sendall(upgrade_request()[:60])  # else: nothing at all
        start = time.monotonic()
        for sock in socks:
            assert recv_all(sock, timeout=5.0) == b""
        assert time.monotonic() - start < 4.0
    finally:
        for sock in socks:
            sock.close()


# --------------------------------------------------------------- frames


def test_unmasked_frame(hostile: ServerProcess) -> None:
    with RawClient(hostile.port) as client:
        client.sock.sendall(encode_frame(1, b"hello"))
        assert client.close_code() == 1002


def test_huge_declared_length(hostile: ServerProcess) -> None:
    """A header announcing 2**62 bytes: refused from the header, nothing reserved."""
    with RawClient(hostile.port) as client:
        client.sock.sendall(b"\x82\xff" + struct.pack("!Q", 1 << 62) + MASK + b"x" * 1000)
        assert client.close_code() == 1009
    with RawClient(hostile.port) as client:
        client.sock.sendall(b"\x82\xff" + struct.pack("!Q", 1 << 63))  # MSB set
        assert client.close_code() == 1002


def test_invalid_utf8(hostile: ServerProcess) -> None:
    with RawClient(hostile.port) as client:
        client.send(1, b"ok \xff\xfe")
        assert client.close_code() == 1007
    with RawClient(hostile.port) as client:
        # Fragmented: refused at the first bad fragment, before the end.
        client.send(1, b"caf\xc3", fin=False)
        client.send(0, b"\x28", fin=False)
        assert client.close_code() == 1007
    with RawClient(hostile.port) as client:
        client.send(8, struct.pack("!H", 1000) + b"\xed\xa0\x80")  # surrogate in the reason
        assert client.close_code() == 1007


@pytest.mark.parametrize(
    "header",
    [
        b"\x83",  # reserved opcode 3
        b"\x8b",  # reserved opcode 0xb
        b"\xa1",  # RSV2
        b"\x91",  # RSV3
        b"\xc1",  # RSV1 without permessage-deflate
        b"\x09",  # fragmented ping
    ],
)
def test_reserved_opcodes_and_bits(hostile: ServerProcess, header: bytes) -> None:
    with RawClient(hostile.port) as client:
        client.sock.sendall(header + b"\x82" + MASK + b"hi")
        assert client.close_code() == 1002


def test_protocol_errors(hostile: ServerProcess) -> None:
    cases = [
        [(0, b"x", {})],  # continuation with nothing to continue
        [(1, b"a", {"fin": False}), (2, b"b", {})],  # new message inside a fragmented one
        [(8, b"\x00\x10", {})],  # close code 16
        [(8, b"\x03", {})],  # 1-byte close payload
    ]
    for frames in cases:
        with RawClient(hostile.port) as client:
            for opcode, payload, flags in frames:
                client.send(opcode, payload, **flags)
            assert client.close_code() == 1002


_BOMB: dict[int, bytes] = {}


def bomb(size: int) -> bytes:
    if size not in _BOMB:
        _BOMB[size] = compress(bytes(size))
    return _BOMB[size]


@pytest.mark.parametrize("fragmented", [False, True])
def test_compression_bomb(hostile: ServerProcess, fragmented: bool) -> None:
    """64 MiB of zeros in 64 KiB compressed: 64 times the 1 MiB limit."""
    payload = bomb(64 << 20)
    assert len(payload) < 1 << 20
    hostile.stats(reset=True)
    with RawClient(hostile.port, deflate=True) as client:
        if fragmented:
            step = len(payload) // 8
            pieces = [payload[i : i + step] for i in range(0, len(payload), step)]
            client.send(2, pieces[0], fin=False, rsv1=True)
            try:
                for piece in pieces[1:]:
                    client.send(0, piece, fin=False)
                client.send(0, b"", fin=True)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            client.send(2, payload, rsv1=True)
        assert client.close_code() == 1009
    peak = hostile.stats()["peak"] - hostile.baseline["traced"]
    # Never inflated far past the limit: the frame, the limit, zlib's buffers.
    assert peak < peak_bound(8 << 20), peak


# ---------------------------------------------------------------- floods


def test_ping_flood(hostile: ServerProcess) -> None:
    """1000 pings at once: answered up to the burst (20), then closed with 1008."""
    with RawClient(hostile.port) as client:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.sock.sendall(encode_frame(9, b"p" * 125, mask=MASK) * 1000)
        pongs = 0
        while True:
            frame = client.next_frame()
            assert frame is not None, "no close frame"
            if frame.opcode == 10:
                pongs += 1
            elif frame.opcode == 8:
                assert int.from_bytes(frame.payload[:2], "big") == 1008
                break
        assert 20 <= pongs <= 25, pongs


def test_pings_within_rate(hostile: ServerProcess) -> None:
    """A peer pinging at 20/s over a burst of 20 drains its bucket slowly."""
    with RawClient(hostile.port) as client:
        for index in range(20):
            client.send(9, str(index).encode())
            frame = client.next_frame()
            assert frame.opcode == 10 and frame.payload == str(index).encode()
        for _ in range(10):
            time.sleep(0.11)  # refills more than one token
            client.send(9, b"again")
            assert client.next_frame().opcode == 10
        client.send(1, b"still open")
        assert client.next_frame().payload == b"still open"


def test_flood_of_tiny_frames(hostile: ServerProcess) -> None:
    """A message in 300,000 tiny frames: memory stays near the message size.

    (Kept as a bytes object per frame, it would take some 14 MB for 0.9 MB.)
    """
    count = 300_000
    hostile.stats(reset=True)
    with RawClient(hostile.port) as client:
        first = encode_frame(2, b"abc", fin=False, mask=MASK)
        piece = encode_frame(0, b"def", fin=False, mask=MASK)
        empty = encode_frame(0, b"", fin=False, mask=MASK)
        client.sock.sendall(first + (piece * 10 + empty) * (count // 11))
        client.send(0, b"!", fin=True)
        frame = client.next_frame(timeout=30)
        assert frame.opcode == 2
        assert frame.payload == b"abc" + b"def" * 10 * (count // 11) + b"!"
    peak = hostile.stats()["peak"] - hostile.baseline["traced"]
    assert peak < peak_bound(6 << 20), peak


def test_flood_of_tiny_messages(hostile: ServerProcess) -> None:
    """50,000 messages sent without reading: backpressure, none lost or reordered."""
    count = 50_000
    hostile.stats(reset=True)
    with RawClient(hostile.port) as client:
        data = b"".join(encode_frame(2, struct.pack("!I", i), mask=MASK) for i in range(count))
        client.sock.setblocking(False)
        view = memoryview(data)
        received: list[int] = []
        buffer = b""
        while view or len(received) < count:
            writable = [client.sock] if view else []
            readable, writable, _ = select.select([client.sock], writable, [], 10)
            assert readable or writable, "stalled"
            if writable:
                sent = client.sock.send(view[:65536])
                view = view[sent:]
            if readable and (not view or len(received) % 7 == 0):
                # Read slowly while sending, so the server has to push back.
                chunk = client.sock.recv(65536)
                assert chunk
                buffer += chunk
                for frame in client.decoder.feed(buffer):
                    received.append(struct.unpack("!I", frame.payload)[0])
                buffer = b""
        assert received == list(range(count))
    peak = hostile.stats()["peak"] - hostile.baseline["traced"]
    assert peak < peak_bound(8 << 20), peak


def test_idle_connections(hostile: ServerProcess) -> None:
    """2000 open connections doing nothing; others are still served."""
    clients = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            clients.append(RawClient(hostile.port))
        stats = hostile.stats()
        assert stats["connections"] == IDLE_CONNECTIONS
        per_connection = (stats["traced"] - hostile.baseline["traced"]) / IDLE_CONNECTIONS
        print(f"\n{hostile.implementation}: {per_connection:.0f} B traced per idle connection")
        assert per_connection < 16 << 10
        assert_serves(hostile)
    finally:
        for client in clients:
            client.close()


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
