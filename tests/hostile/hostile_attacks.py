"""Hostile peers over raw sockets, and the servers they attack in a process of their own.

Shared by tests/hostile/test_hostile.py (each attack once, then repeated) and
bench/hostile_repeat.py (the long repetitions and their table).

* :class:`ServerProcess` runs tests/hostile/hostile_server.py (``serve()`` with its
  defaults: permessage-deflate, 1 MiB messages, an echo handler);
  :class:`EchoProcess` runs ``python -m wsframe echo`` (a :class:`Listener`,
  64 MiB messages, uvloop when installed). ``implementation="python"`` runs
  either with ``WSFRAME_NO_EXTENSIONS=1``.
* Each ``attack_*`` function is one attack with its checks of the server's
  answers (status, close code, what it echoed); :data:`ATTACKS` names them.
* :func:`repeat` runs one attack many times in a row against one server and
  returns the server's RSS after the first and the last round. RSS is read
  from ``/proc/PID/status`` (Linux), without asking the server anything, so
  nothing forces a garbage collection in it: cyclic garbage stays until the
  collector finds it by itself, as in production.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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
from typing import Any, Callable, Optional, Union

from wsframe import _codec_py

#: The tests' interpreter, which runs the servers too.
IS_PYPY = sys.implementation.name == "pypy"

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x01\x02\x03\x04"
IDLE_CONNECTIONS = 2000
#: ``python -m wsframe echo``'s limit on a message (wsframe.echo.ECHO_MAX_MESSAGE_SIZE).
ECHO_MAX_MESSAGE_SIZE = 64 << 20
# The frame codec the raw peers use (their side is not under test).
encode_frame = _codec_py.encode_frame
FrameDecoder = _codec_py.FrameDecoder


def rss_of(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def raise_nofile(wanted: int) -> Optional[str]:
    """Raise RLIMIT_NOFILE to ``wanted``; return why it cannot be, or None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return None
    if hard != resource.RLIM_INFINITY and hard < wanted:
        return f"RLIMIT_NOFILE hard limit {hard} < {wanted}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return None


def _environment(implementation: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if implementation == "python":
        env["WSFRAME_NO_EXTENSIONS"] = "1"
    else:
        env.pop("WSFRAME_NO_EXTENSIONS", None)
        env["WSFRAME_USE_CEXT"] = "1"  # on PyPy too (no effect on CPython)
    return env


class _Process:
    """A server in a subprocess: its port, its RSS, how to stop it."""

    proc: subprocess.Popen[str]
    port: int
    implementation: str
    #: A message bigger than this is refused with 1009.
    max_message_size: int

    def rss(self) -> int:
        """The server's RSS in bytes, read from /proc (nothing asked of the server)."""
        return rss_of(self.proc.pid)

    def steady_memory(self) -> int:
        """What a series compares from round to round: the RSS (see ServerProcess)."""
        return self.rss()

    def settle(self) -> None:
        """Wait until the server has finished with the connections of the last attack."""
        raise NotImplementedError

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ServerProcess(_Process):
    """tests/hostile/hostile_server.py: ``serve()`` with its defaults (and a stats endpoint).

    ``trace=False`` runs it without tracemalloc (to measure RSS as a
    production server has it); ``close_timeout`` is passed to ``serve()``.
    """

    max_message_size = 1 << 20

    def __init__(
        self, implementation: str, *, trace: bool = True, close_timeout: Optional[float] = None
    ) -> None:
        self.implementation = implementation
        self.trace = trace
        command = [sys.executable, os.path.join(HERE, "hostile_server.py"), "--open-timeout", "1"]
        if not trace:
            command.append("--no-tracemalloc")
        if close_timeout is not None:
            command += ["--close-timeout", str(close_timeout)]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, env=_environment(implementation), cwd=ROOT, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening "), line
        self.port = int(line.split()[1])
        stats = self.stats(gc=trace)
        assert stats["implementation"] == implementation
        # Warm up what every connection uses (read buffer, zlib, the codec).
        for _ in range(3):
            assert_serves(self)
            assert_serves(self, deflate=True)
        self.wait_idle(gc=trace)
        self.baseline = self.stats(gc=trace)

    def stats(self, reset: bool = False, *, gc: bool = True) -> dict[str, Any]:
        """The server's /_stats; ``gc=False``: without collecting garbage first."""
        query = "&".join(name for name, wanted in (("reset", reset), ("nogc", not gc)) if wanted)
        with connect(self.port) as sock:
            sock.sendall(f"GET /_stats?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, body = read_response(sock)
        assert status == 200, body
        return dict(json.loads(body))

    def wait_idle(self, timeout: float = 10.0, *, gc: bool = True) -> dict[str, Any]:
        """Wait until the server holds no connection; return its stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats(gc=gc)
            if stats["connections"] == 0 or time.monotonic() > deadline:
                assert stats["connections"] == 0, stats
                return stats
            time.sleep(0.05)

    def settle(self) -> None:
        self.wait_idle(gc=False)

    def steady_memory(self) -> int:
        """The RSS on CPython, read without forcing a collection (a reference cycle
        shows); on PyPy, whose tracing GC frees nothing before its next major
        collection, the memory the GC holds right after one (``traced``)."""
        if IS_PYPY:
            return int(self.stats(gc=True)["traced"])
        return self.rss()


class EchoProcess(_Process):
    """``python -m wsframe echo`` on a free port."""

    max_message_size = ECHO_MAX_MESSAGE_SIZE

    def __init__(self, implementation: str) -> None:
        self.implementation = implementation
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsframe", "echo", "--port", "0"],
            stdout=subprocess.PIPE,
            env=_environment(implementation),
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on ws://"), line
        self.port = int(line.rsplit(":", 1)[1])
        for _ in range(3):
            assert_serves(self)
            assert_serves(self, deflate=True)

    def settle(self) -> None:
        # No stats endpoint: the attacks wait for the server's answer and
        # the end of the connection; leave it a moment to let go of it.
        time.sleep(0.2)


Server = Union[ServerProcess, EchoProcess]


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


def assert_serves(server: Server, deflate: bool = False) -> None:
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


def attack_plain_http(server: Server) -> None:
    status, headers, _ = http_status(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 426
    assert headers.get("upgrade", "").lower() == "websocket"
    status, _, _ = http_status(
        server.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert status in (400, 405)
    status, _, _ = http_status(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert status in (400, 426, 505)


def attack_wrong_version(server: Server) -> None:
    status, headers, _ = http_status(server.port, upgrade_request(version="8"))
    assert status == 426
    assert headers["sec-websocket-version"] == "13"
    status, headers, _ = http_status(server.port, upgrade_request(version="thirteen"))
    assert status in (400, 426)


WRONG_KEYS = ["", "not base64!", "c2hvcnQ=", "A" * 300]


def attack_wrong_key(server: Server, key: str) -> None:
    status, _, _ = http_status(server.port, upgrade_request(key=key))
    assert status == 400


def attack_oversized_request_line(server: Server) -> None:
    status, _, _ = http_status(server.port, upgrade_request(path="/" + "a" * 100_000))
    assert status == 414


def attack_oversized_header_line(server: Server) -> None:
    status, _, _ = http_status(server.port, upgrade_request(extra=f"X-Big: {'b' * 100_000}\r\n"))
    assert status == 431


def attack_too_many_headers(server: Server) -> None:
    extra = "".join(f"X-H{i}: {i}\r\n" for i in range(1000))
    status, _, _ = http_status(server.port, upgrade_request(extra=extra))
    assert status == 431


def attack_too_many_header_bytes(server: Server) -> None:
    extra = "".join(f"X-H{i}: {'v' * 4000}\r\n" for i in range(40))
    status, _, _ = http_status(server.port, upgrade_request(extra=extra))
    assert status == 431


ENDLESS = ["headers", "line"]


def attack_endless_headers(server: Server, endless: str) -> None:
    """Headers that never end: answered with 431 long before memory matters."""
    with connect(server.port) as sock:
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


@functools.cache
def client_hello() -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("a TLS handshake completed without a server")


def attack_tls_on_plain_port(server: Server) -> None:
    with connect(server.port) as sock:
        sock.sendall(client_hello())
        data = recv_all(sock)
    # An HTTP error (or nothing), then the end of the connection.
    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:100]


RANDOM_SEEDS = range(5)


@functools.cache
def random_junk(seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 5000, 100_000])))


def attack_random_bytes(server: Server, seed: int) -> None:
    junk = random_junk(seed)
    with connect(server.port) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(junk + b"\r\n\r\n")
        data = recv_all(sock, timeout=3.0)
    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:100]


def attack_half_sent_handshake(server: Server) -> None:
    """Requests held open halfway are dropped after open_timeout (1 s here)."""
    socks = [connect(server.port) for _ in range(50)]
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


def attack_unmasked_frame(server: Server) -> None:
    with RawClient(server.port) as client:
        client.sock.sendall(encode_frame(1, b"hello"))
        assert client.close_code() == 1002


def attack_huge_declared_length(server: Server) -> None:
    """A header announcing 2**62 bytes: refused from the header, nothing reserved."""
    with RawClient(server.port) as client:
        client.sock.sendall(b"\x82\xff" + struct.pack("!Q", 1 << 62) + MASK + b"x" * 1000)
        assert client.close_code() == 1009
    with RawClient(server.port) as client:
        client.sock.sendall(b"\x82\xff" + struct.pack("!Q", 1 << 63))  # MSB set
        assert client.close_code() == 1002


def attack_invalid_utf8(server: Server) -> None:
    with RawClient(server.port) as client:
        client.send(1, b"ok \xff\xfe")
        assert client.close_code() == 1007
    with RawClient(server.port) as client:
        # Fragmented: refused at the first bad fragment, before the end.
        client.send(1, b"caf\xc3", fin=False)
        client.send(0, b"\x28", fin=False)
        assert client.close_code() == 1007
    with RawClient(server.port) as client:
        client.send(8, struct.pack("!H", 1000) + b"\xed\xa0\x80")  # surrogate in the reason
        assert client.close_code() == 1007


RESERVED_HEADERS = [
    b"\x83",  # reserved opcode 3
    b"\x8b",  # reserved opcode 0xb
    b"\xa1",  # RSV2
    b"\x91",  # RSV3
    b"\xc1",  # RSV1 without permessage-deflate
    b"\x09",  # fragmented ping
]


def attack_reserved_opcodes_and_bits(server: Server, header: bytes) -> None:
    with RawClient(server.port) as client:
        client.sock.sendall(header + b"\x82" + MASK + b"hi")
        assert client.close_code() == 1002


def attack_protocol_errors(server: Server) -> None:
    cases = [
        [(0, b"x", {})],  # continuation with nothing to continue
        [(1, b"a", {"fin": False}), (2, b"b", {})],  # new message inside a fragmented one
        [(8, b"\x00\x10", {})],  # close code 16
        [(8, b"\x03", {})],  # 1-byte close payload
    ]
    for frames in cases:
        with RawClient(server.port) as client:
            for opcode, payload, flags in frames:
                client.send(opcode, payload, **flags)
            assert client.close_code() == 1002


@functools.cache
def bomb(size: int) -> bytes:
    """``size`` zero bytes (a multiple of 1 MiB), deflated: about a thousandth of it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size >> 20)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]


def bomb_for(server: Server) -> bytes:
    """A bomb far over the server's limit: 64 MiB in 64 KiB for ``serve()``'s
    1 MiB, 256 MiB in 256 KiB for the echo server's 64 MiB."""
    return bomb(min(64 * server.max_message_size, 256 << 20))


def attack_compression_bomb(server: Server, fragmented: bool) -> None:
    """A message that inflates to many times the limit: refused with 1009."""
    payload = bomb_for(server)
    with RawClient(server.port, deflate=True) as client:
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


# ---------------------------------------------------------------- floods


def attack_ping_flood(server: Server) -> None:
    """1000 pings at once: answered up to the burst (20), then closed with 1008."""
    with RawClient(server.port) as client:
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


def attack_pings_within_rate(server: Server) -> None:
    """A peer pinging at 20/s over a burst of 20 drains its bucket slowly."""
    with RawClient(server.port) as client:
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


TINY_FRAMES = 300_000


@functools.cache
def _tiny_frames() -> bytes:
    first = encode_frame(2, b"abc", fin=False, mask=MASK)
    piece = encode_frame(0, b"def", fin=False, mask=MASK)
    empty = encode_frame(0, b"", fin=False, mask=MASK)
    return first + (piece * 10 + empty) * (TINY_FRAMES // 11)


def attack_flood_of_tiny_frames(server: Server) -> None:
    """A message in 300,000 tiny frames: echoed whole."""
    with RawClient(server.port) as client:
        client.sock.sendall(_tiny_frames())
        client.send(0, b"!", fin=True)
        frame = client.next_frame(timeout=30)
        assert frame.opcode == 2
        assert frame.payload == b"abc" + b"def" * 10 * (TINY_FRAMES // 11) + b"!"


TINY_MESSAGES = 50_000


@functools.cache
def _tiny_messages() -> bytes:
    return b"".join(encode_frame(2, struct.pack("!I", i), mask=MASK) for i in range(TINY_MESSAGES))


def attack_flood_of_tiny_messages(server: Server) -> None:
    """50,000 messages sent without reading: backpressure, none lost or reordered."""
    count = TINY_MESSAGES
    with RawClient(server.port) as client:
        client.sock.setblocking(False)
        view = memoryview(_tiny_messages())
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


def attack_idle_connections(server: Server, inspect: Optional[Callable[[], None]] = None) -> None:
    """2000 open connections doing nothing; others are still served.

    ``inspect`` is called once they are all open, before another client is
    served.
    """
    clients = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            clients.append(RawClient(server.port))
        if isinstance(server, ServerProcess):
            stats = server.stats(gc=False)
            assert stats["connections"] == IDLE_CONNECTIONS
        if inspect is not None:
            inspect()
        assert_serves(server)
    finally:
        for client in clients:
            client.close()


# ----------------------------------------------------------- repetition


def _each(attack: Callable[[Server, Any], None], params: Any) -> Callable[[Server], None]:
    """One round: ``attack`` with each of ``params`` in turn."""

    def run(server: Server) -> None:
        for param in params:
            attack(server, param)

    return run


#: Every attack of tests/hostile/test_hostile.py, by name: one round of it (with
#: every parameter the test takes, except the bomb's two forms, kept apart).
ATTACKS: dict[str, Callable[[Server], None]] = {
    "plain_http": attack_plain_http,
    "wrong_version": attack_wrong_version,
    "wrong_key": _each(attack_wrong_key, WRONG_KEYS),
    "oversized_request_line": attack_oversized_request_line,
    "oversized_header_line": attack_oversized_header_line,
    "too_many_headers": attack_too_many_headers,
    "too_many_header_bytes": attack_too_many_header_bytes,
    "endless_headers": _each(attack_endless_headers, ENDLESS),
    "tls_on_plain_port": attack_tls_on_plain_port,
    "random_bytes": _each(attack_random_bytes, RANDOM_SEEDS),
    "half_sent_handshake": attack_half_sent_handshake,
    "unmasked_frame": attack_unmasked_frame,
    "huge_declared_length": attack_huge_declared_length,
    "invalid_utf8": attack_invalid_utf8,
    "reserved_opcodes_and_bits": _each(attack_reserved_opcodes_and_bits, RESERVED_HEADERS),
    "protocol_errors": attack_protocol_errors,
    "compression_bomb": functools.partial(attack_compression_bomb, fragmented=False),
    "compression_bomb_fragmented": functools.partial(attack_compression_bomb, fragmented=True),
    "ping_flood": attack_ping_flood,
    "pings_within_rate": attack_pings_within_rate,
    "flood_of_tiny_frames": attack_flood_of_tiny_frames,
    "flood_of_tiny_messages": attack_flood_of_tiny_messages,
    "idle_connections": attack_idle_connections,
}

#: The attacks also repeated against ``python -m wsframe echo`` (64 MiB limit).
ECHO_ATTACKS = ["compression_bomb", "compression_bomb_fragmented"]


@dataclasses.dataclass
class Series:
    """An attack repeated ``reps`` times in a row against one server."""

    attack: str
    server: str
    implementation: str
    reps: int
    #: Server RSS (bytes) after the first round and after the last.
    rss_first: int
    rss_last: int
    seconds: float

    @property
    def growth(self) -> int:
        """RSS gained from the first round to the last, in bytes."""
        return self.rss_last - self.rss_first


def repeat(server: Server, name: str, reps: int) -> Series:
    """Run attack ``name`` ``reps`` times in a row; the server must still serve after."""
    if reps < 2:
        raise ValueError("a series needs at least 2 rounds")
    attack = ATTACKS[name]
    start = time.monotonic()
    attack(server)
    server.settle()
    first = server.steady_memory()
    for _ in range(reps - 1):
        attack(server)
    server.settle()
    last = server.steady_memory()
    seconds = time.monotonic() - start
    assert_serves(server)
    assert_serves(server, deflate=True)
    kind = "echo" if isinstance(server, EchoProcess) else "serve"
    return Series(name, kind, server.implementation, reps, first, last, seconds)
