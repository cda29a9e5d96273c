"""Real proxy servers on loopback for the proxy tests, and misbehaving fakes.

* :func:`tinyproxy` — an HTTP CONNECT proxy (Debian ``tinyproxy``), with or
  without Basic auth, or denying every client (403);
* :func:`microsocks` — a SOCKS5 proxy (Debian ``microsocks``), with or
  without a user and password;
* :func:`dante` — a SOCKS4/SOCKS5 proxy (Debian ``dante-server``);
* :class:`TLSFront` — TLS in front of a proxy, which makes an ``https://``
  proxy of tinyproxy;
* :class:`FakeProxy` — a proxy that reads the CONNECT request, then closes,
  never answers, or says 200 and closes.

Each binary is looked up on PATH (and in /usr/sbin); a missing one skips the
test with the Debian package to install (``.ci/run`` installs them). Every
process listens on 127.0.0.1 only and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

START_TIMEOUT = 10.0


def find_binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        pytest.skip(
            f"{name} is not installed (Debian package {package}: apt-get install {package})"
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.args!r} did not listen on {port}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def _process(argv: list[str], port: int, log: Path) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_listening(port, proc, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def tinyproxy(
    tmp_path: Path, *, auth: Optional[tuple[str, str]] = None, deny: bool = False
) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a tinyproxy (``deny``: every client gets 403)."""
    binary = find_binary("tinyproxy", "tinyproxy")
    port = free_port()
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "MaxClients 100",
        # A client that is not allowed gets 403 Access denied.
        "Allow 192.0.2.1" if deny else "Allow 127.0.0.1",
        "LogLevel Info",
    ]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    conf = tmp_path / f"tinyproxy-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    with _process([binary, "-d", "-c", str(conf)], port, tmp_path / f"tinyproxy-{port}.log"):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def microsocks(tmp_path: Path, *, auth: Optional[tuple[str, str]] = None) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a microsocks SOCKS5 proxy."""
    binary = find_binary("microsocks", "microsocks")
    port = free_port()
    argv = [binary, "-i", "127.0.0.1", "-p", str(port)]
    if auth is not None:
        argv += ["-u", auth[0], "-P", auth[1]]
    with _process(argv, port, tmp_path / f"microsocks-{port}.log"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def dante(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a Dante SOCKS server (SOCKS4 and SOCKS5, no auth)."""
    binary = find_binary("danted", "dante-server")
    port = free_port()
    conf = tmp_path / f"danted-{port}.conf"
    unprivileged = "nobody" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    conf.write_text(
        "logoutput: stderr\n"
        f"internal: 127.0.0.1 port = {port}\n"
        "external: 127.0.0.1\n"
        "clientmethod: none\nsocksmethod: none\n"
        + ("user.privileged: root\n" if os.geteuid() == 0 else "")
        + f"user.unprivileged: {unprivileged}\n"
        "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n}\n"
        "socks pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n}\n"
    )
    with _process([binary, "-f", str(conf), "-N", "1"], port, tmp_path / f"danted-{port}.log"):
        yield f"127.0.0.1:{port}"


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class _Listener:
    """A loopback listener whose connections are served in daemon threads."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)

    def __enter__(self) -> _Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TLSFront(_Listener):
    """TLS on a loopback port in front of ``target`` (a proxy): an https:// proxy."""

    def __init__(self, target: str, context: ssl.SSLContext) -> None:
        self.target = target
        self.context = context
        super().__init__()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def serve(self, client: socket.socket) -> None:
        host, port = self.target.rsplit("//", 1)[-1].rsplit(":", 1)
        try:
            client.settimeout(10)
            tls = self.context.wrap_socket(client, server_side=True)
            tls.settimeout(None)
            upstream = socket.create_connection((host, int(port)), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        threading.Thread(target=_pipe, args=(upstream, tls), daemon=True).start()
        _pipe(tls, upstream)


class FakeProxy(_Listener):
    """An HTTP proxy that misbehaves after reading the CONNECT request.

    ``mode``: ``"close"`` (closes without answering), ``"silent"`` (never
    answers), ``"ok-then-close"`` (answers 200, then closes before the
    WebSocket handshake), ``"garbage"`` (answers something that is not HTTP).
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._held: list[socket.socket] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = client.recv(4096)
                if not chunk:
                    break
                data += chunk
            if self.mode == "silent":
                self._held.append(client)  # keep it open, say nothing
                return
            if self.mode == "ok-then-close":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                client.recv(4096)  # the WebSocket request
            elif self.mode == "garbage":
                client.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
        except OSError:
            pass
        client.close()

    def close(self) -> None:
        for sock in self._held:
            sock.close()
        super().close()
