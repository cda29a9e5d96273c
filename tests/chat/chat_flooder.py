"""A chat client that floods over a plain blocking socket, for the flood tests.

A writer thread sends ``ping`` messages as fast as the socket takes them and
keeps sending while the server closes; the reading thread feeds what arrives
to a sans-I/O :class:`~wsframe.connection.ClientConnection` and answers its
close frame. One lock orders the connection and the socket's writes, so the
close reply is never interleaved inside a data frame.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from wsframe.connection import ClientConnection
from wsframe.events import Accepted, CloseReceived, TextMessage
from wsframe.state import State


@dataclass
class FloodOutcome:
    """What the flooding client saw."""

    errors: list[str] = field(default_factory=list)  # the "code" of each error message
    close: Optional[tuple[Optional[int], str]] = None  # the server's close frame
    close_code: Optional[int] = None  # the connection's close code at the end (1006: lost)
    reset: Optional[str] = None  # where a connection reset happened, if any
    ended: str = ""  # "eof" (the server's FIN) or "timeout"
    sent: int = 0  # messages sent
    sent_after_close: int = 0  # messages sent after the server's close frame was sent
    other: list[Any] = field(default_factory=list)


def flood(port: int, *, timeout: float = 15.0, batch: int = 50) -> FloodOutcome:
    """Connect to the chat at 127.0.0.1:``port``/ws and flood it with pings."""
    outcome = FloodOutcome()
    conn = ClientConnection(f"ws://127.0.0.1:{port}/ws", compression=None)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    lock = threading.Lock()
    stop = threading.Event()
    close_seen = threading.Event()
    try:
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            assert data, "the server closed during the handshake"
            conn.receive_data(data)
            events = conn.events()
            if events:
                assert isinstance(events[0], Accepted), events
                outcome.other.extend(events[1:])
                break
        message = json.dumps({"type": "ping", "id": "flood"})

        def writer() -> None:
            try:
                while not stop.is_set():
                    with lock:
                        if conn.state is not State.OPEN:
                            return
                        for _ in range(batch):
                            conn.send_text(message)
                        sock.sendall(conn.data_to_send())
                        outcome.sent += batch
                        if close_seen.is_set():
                            outcome.sent_after_close += batch
            except ConnectionResetError:
                outcome.reset = outcome.reset or "send"
            except OSError:
                pass  # EPIPE after the end, or the socket closed under us

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                outcome.reset = outcome.reset or (
                    "recv after close" if outcome.close is not None else "recv"
                )
                data = b""
            except socket.timeout:
                outcome.ended = "timeout"
                break
            with lock:
                if data:
                    conn.receive_data(data)
                else:
                    conn.receive_eof()
                for event in conn.events():
                    if isinstance(event, TextMessage):
                        reply = json.loads(event.data)
                        if reply["type"] == "error":
                            outcome.errors.append(reply["code"])
                    elif isinstance(event, CloseReceived):
                        outcome.close = (event.code, event.reason)
                        close_seen.set()
                    else:
                        outcome.other.append(event)
                pending = conn.data_to_send()  # the close reply
                if pending:
                    with contextlib.suppress(OSError):
                        sock.sendall(pending)
            if not data:
                outcome.ended = outcome.ended or "eof"
                break
        stop.set()
        thread.join(timeout)
        outcome.close_code = conn.close_code
    finally:
        stop.set()
        sock.close()
    return outcome
