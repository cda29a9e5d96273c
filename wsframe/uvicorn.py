"""A WebSocket protocol for uvicorn, on wsframe's sans-I/O connection.

Serve any ASGI application (Starlette, FastAPI, ...) with wsframe's codec::

    uvicorn app:app --ws wsframe.uvicorn:WSFrameProtocol

or programmatically, ``uvicorn.Config(app, ws=WSFrameProtocol)``. Requires
uvicorn (``pip install wsframe[uvicorn]``).

uvicorn's HTTP protocol parses the request head, sees ``Upgrade:
websocket``, creates this protocol with ``(config, server_state,
app_state)``, calls :meth:`~WSFrameProtocol.connection_made` with its
transport, replays the request head through
:meth:`~WSFrameProtocol.data_received` and hands the transport over. From
there this class follows the ASGI WebSocket specification (2.4):

* ``websocket.connect`` first; the application answers with
  ``websocket.accept`` (``subprotocol``, ``headers``), ``websocket.close``
  (a 403 response) or, through the ``websocket.http.response`` extension,
  ``websocket.http.response.start`` / ``.body`` (any response);
* ``websocket.receive`` with ``text`` (str) or ``bytes`` for each message;
  ``websocket.send`` with ``text`` or ``bytes``; ``websocket.close`` with
  ``code`` and ``reason``;
* ``websocket.disconnect`` with the peer's ``code`` and ``reason``, 1009 for
  a message over ``ws_max_size``, 1011 for a keepalive timeout, 1012 on
  server shutdown, 1006 for a connection lost without a close frame.

uvicorn's settings apply: ``ws_max_size`` (largest message, inflated),
``ws_max_queue`` (received messages the application has not read yet before
reading from the socket pauses), ``ws_ping_interval`` / ``ws_ping_timeout``
(heartbeats, one shared timer per loop) and ``ws_per_message_deflate``.

The per-message path avoids events and ``asyncio.Queue``: whole messages
come from the connection's ``on_message`` callback straight into a deque, and
a sent message is one :meth:`~wsframe.connection.Connection.encode_message`
and one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, Optional, cast
from urllib.parse import unquote

from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)

from .asyncio.keepalive import Heartbeat
from .connection import ServerConnection, State
from .errors import InvalidHandshake
from .events import BinaryMessage, CloseReceived, Pong, Rejected, Request, TextMessage
from .handshake import validate_request

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from .handshake import Request as HttpRequest

__all__ = ["WSFrameProtocol"]

#: Seconds to wait for the peer's close frame after sending ours.
CLOSE_TIMEOUT = 10.0

# Handshake headers the server sets itself: dropped from the application's
# ``websocket.accept`` headers (a subprotocol goes in ``subprotocol``).
_ACCEPT_RESERVED = frozenset(
    {
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"content-length",
        b"transfer-encoding",
    }
)
# Set by the response itself (wsframe.handshake.reject_response).
_RESPONSE_RESERVED = frozenset({b"content-length", b"transfer-encoding", b"connection"})

_OPEN = State.OPEN
_CONNECTING = State.CONNECTING

# One heartbeat per (loop, interval, timeout): one timer serves every
# connection; an entry is dropped when its last member leaves.
_heartbeats: dict[tuple[Any, float, float], Heartbeat] = {}


class WSFrameProtocol(asyncio.Protocol):
    """uvicorn's WebSocket protocol interface, implemented with wsframe.

    Use as ``--ws wsframe.uvicorn:WSFrameProtocol``. One instance serves one
    connection; uvicorn creates it when an HTTP request asks for the upgrade.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.root_path: str = config.root_path
        self.asgi_version = config.asgi_version
        self.app_state = app_state

        # Shared server state.
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers: list[tuple[bytes, bytes]] = server_state.default_headers

        # Connection state.
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: Optional[tuple[str, Optional[int]]] = None
        self.client: Optional[tuple[str, int]] = None
        self.scheme = "ws"
        self.scope: Any = {}

        conn = ServerConnection(
            compression="deflate" if config.ws_per_message_deflate else None,
            max_message_size=config.ws_max_size,
        )
        conn.on_message = self._on_message
        self.conn = conn

        # ASGI state.
        self.handshake_complete = False  # accepted, or answered with HTTP
        self.close_sent = False  # the application closed (or we failed the connection)
        self.app_closed = False  # the application sent websocket.close
        self.disconnected = False  # the transport is gone
        self.response_started = False
        self._response: Optional[tuple[int, list[tuple[str, str]], list[bytes]]] = None
        self._close_timer: Optional[asyncio.TimerHandle] = None

        # Received events the application has not read, and its waiter.
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._disconnect: Optional[dict[str, Any]] = None
        max_queue = config.ws_max_queue
        self._max_queue: int = max_queue if max_queue and max_queue > 0 else 1 << 62
        self._resume_at = self._max_queue // 2

        # Flow control.
        self._paused_reading = False
        self._write_paused = False
        self._drain_waiter: Optional[asyncio.Future[None]] = None

        # Heartbeat state (read and written by wsframe.asyncio.keepalive).
        self._heartbeat: Optional[Heartbeat] = None
        self._heartbeat_key: Optional[tuple[Any, float, float]] = None
        self._ping_payload: Optional[bytes] = None
        self._ping_sent_at = 0.0
        self._ping_deadline = 0.0

    # ---------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register with the server (uvicorn calls this with the HTTP transport)."""
        self.connections.add(self)  # type: ignore[arg-type]
        self.transport = cast(asyncio.Transport, transport)
        self.server = get_local_addr(self.transport)
        self.client = get_remote_addr(self.transport)
        self.scheme = "wss" if is_ssl(self.transport) else "ws"

    def data_received(self, data: bytes) -> None:
        """Feed bytes (first the replayed request head) to the connection."""
        conn = self.conn
        conn.receive_data(data)
        if conn._events or conn._out or conn.close_transport:
            self._after_receive()

    def eof_received(self) -> Optional[bool]:
        """The peer shut its side down: let the transport close."""
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        """The transport is closed: tell the application, unregister."""
        self._stop_heartbeat()
        self.connections.discard(self)
        self.disconnected = True
        conn = self.conn
        if conn._paused:
            conn.resume()  # what was read is delivered before the disconnect
        if conn.state is not State.CLOSED:
            conn.receive_eof()
        events = conn.events()
        if events:
            self._handle_events(events)
        code = conn.close_code if self.handshake_complete else None
        self._queue_disconnect(code or 1006)
        self.handshake_complete = True
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if exc is None:
            self.transport.close()

    def pause_writing(self) -> None:
        """The transport's write buffer is over its high-water mark."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The transport's write buffer drained below its low-water mark."""
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---------------------------------------------------- uvicorn's interface

    def shutdown(self) -> None:
        """Server shutdown: close with 1012 (Service Restart), or answer 500."""
        self._stop_heartbeat()
        if self.close_sent:
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self.transport.close()
            return
        if self.handshake_complete and not self.response_started:
            self.close_sent = True
            if self.conn.state is _OPEN:
                self.conn.close(1012)
                self._flush()
            self._queue_disconnect(1012)
        else:
            self.send_500_response()
        self.transport.close()

    def on_task_complete(self, task: asyncio.Task[None]) -> None:
        """Forget the application's task once done."""
        self.tasks.discard(task)

    async def run_asgi(self) -> None:
        """Run the application for this connection."""
        try:
            result = await self.app(self.scope, self.asgi_receive, self.asgi_send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self._finish_response()
            self.send_500_response()
            if self.conn.state is _OPEN and not self.disconnected:
                self._fail(1011, "")
        else:
            self._finish_response()
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
                if self.conn.state is _OPEN and not self.disconnected:
                    self._fail(1011, "")
            if self.conn.state is _OPEN and not self.disconnected and not self.close_sent:
                # Returned without closing: close normally (the peer gets 1000).
                self._start_close(1000, "")
        if self._close_timer is None:
            self.transport.close()

    def send_500_response(self) -> None:
        """Answer 500 if no answer went out yet."""
        conn = self.conn
        if self.handshake_complete or self.response_started or conn.request is None:
            return
        if conn.state is not _CONNECTING:
            return
        conn.reject(500, "Internal Server Error", self._default_headers())
        self.handshake_complete = True
        self._flush()

    # ------------------------------------------------------------- ASGI

    async def asgi_receive(self) -> dict[str, Any]:
        """ASGI ``receive``: the next event for the application."""
        queue = self._queue
        while not queue:
            if self._disconnect is not None:
                return self._disconnect  # read again after the end: nothing follows it
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        message = queue.popleft()
        if self._paused_reading and len(queue) <= self._resume_at:
            self._resume_reading()
        return message

    async def asgi_send(self, message: dict[str, Any]) -> None:
        """ASGI ``send``: a message from the application."""
        if self._write_paused:
            await self._drain()
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.send" and self.handshake_complete and not self.close_sent:
            conn = self.conn
            if conn.state is not _OPEN:
                if self.response_started:
                    raise RuntimeError(
                        "Expected ASGI message 'websocket.http.response.body' "
                        "but got 'websocket.send'."
                    )
                raise ClientDisconnected()  # the peer closed
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
                if data is None:
                    raise RuntimeError("'websocket.send' needs 'bytes' or 'text'")
            frame = conn.encode_message(data)
            if conn._out:
                self._flush()
            self.transport.write(frame)
            return
        if not self.handshake_complete:
            self._send_handshake(kind, message)
        elif self.response_started:
            self._send_response_body(kind, message)
        elif not self.close_sent:
            if kind == "websocket.close":
                if self.conn.state is not _OPEN:
                    raise ClientDisconnected()
                self._start_close(message.get("code", 1000), message.get("reason") or "")
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        elif not self.app_closed:
            raise ClientDisconnected()  # we failed the connection meanwhile
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )

    # ------------------------------------------------------------ handshake

    def _on_request(self, request: HttpRequest) -> None:
        """The request head is complete: validate it, then start the application."""
        try:
            validate_request(request)
            subprotocols = request.subprotocols
        except InvalidHandshake as exc:
            # Malformed upgrade: answered without bothering the application.
            self.conn.reject(exc.status or 400, exc.body or b"", exc.headers or None)
            self.handshake_complete = True
            self.close_sent = True
            self._flush()
            self.transport.close()
            return
        root_path = self.root_path
        raw_path = request.path
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": request.query.encode("ascii"),
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ],
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._queue.append({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def _send_handshake(self, kind: str, message: dict[str, Any]) -> None:
        conn = self.conn
        if kind == "websocket.accept":
            self._log("[accepted]")
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in (*self.default_headers, *message.get("headers", ()))
                if name.lower() not in _ACCEPT_RESERVED
            ]
            if self.transport.is_closing():
                return
            self.handshake_complete = True
            conn.accept(message.get("subprotocol"), headers)
            if conn.state is not _OPEN:  # refused after all (validated before: unlikely)
                self._flush()
                self.transport.close()
                return
            self._flush()
            self._start_heartbeat()
            if conn._events or conn._out or conn.close_transport:
                self._after_receive()  # frames the client sent before the 101
        elif kind == "websocket.close":
            self._log("403")
            self._queue_disconnect(1006)
            self.handshake_complete = True
            self.close_sent = True
            conn.reject(403, b"", self._default_headers())
            self._flush()
            self.transport.close()
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 200 <= status < 600:
                raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
            self._log(str(status))
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
                if name.lower() not in _RESPONSE_RESERVED
            ]
            self._response = (status, headers, [])
            self.handshake_complete = True
            self.response_started = True
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' "
                f"or 'websocket.http.response.start' but got '{kind}'."
            )

    def _send_response_body(self, kind: str, message: dict[str, Any]) -> None:
        response = self._response
        if kind != "websocket.http.response.body" or response is None:
            raise RuntimeError(
                f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
            )
        response[2].append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            self._finish_response()

    def _finish_response(self) -> None:
        """Send the response the application started, with the body it sent so far."""
        response = self._response
        if response is None or self.disconnected:
            return
        self._response = None
        status, headers, body = response
        names = {name.lower() for name, _ in headers}
        defaults = [(n, v) for n, v in self._default_headers() if n.lower() not in names]
        self.conn.reject(status, b"".join(body), defaults + headers)
        self._queue_disconnect(1006)
        self.close_sent = True
        self._flush()
        self.transport.close()

    def _log(self, outcome: str) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s - "WebSocket %s" %s',
                get_client_addr(self.scope),
                get_path_with_query_string(self.scope),
                outcome,
            )

    def _default_headers(self) -> list[tuple[str, str]]:
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.default_headers]

    # ------------------------------------------------------------- receiving

    def _on_message(self, message: Any) -> None:
        """A whole message from the connection (its ``on_message`` callback)."""
        if self.close_sent:
            return  # the application closed: nobody reads it
        queue = self._queue
        if type(message) is str:
            queue.append({"type": "websocket.receive", "text": message})
        else:
            queue.append({"type": "websocket.receive", "bytes": message})
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(queue) >= self._max_queue and not self._paused_reading:
            # The application is behind: keep the rest of this read undecoded
            # in the connection and stop reading the socket.
            self._paused_reading = True
            self.conn.pause()
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        self._paused_reading = False
        conn = self.conn
        conn.resume()
        if conn._events or conn._out or conn.close_transport:
            self._after_receive()
        if not self._paused_reading and not self.disconnected:
            self.transport.resume_reading()

    def _after_receive(self) -> None:
        """Handle what receiving left in the connection: events, bytes, closing."""
        conn = self.conn
        if conn._events:
            self._handle_events(conn.events())
        if conn._out and not self.disconnected:
            self.transport.write(conn.data_to_send())
        if conn.close_transport and not self.disconnected:
            if conn.error is not None and conn.close_sent is not None:
                # The peer broke the protocol (or sent too much): conn sent
                # the close frame; tell the application why.
                code, reason = conn.close_sent
                self.close_sent = True
                self._queue_disconnect(code or 1006, reason)
            self._stop_heartbeat()
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self.transport.close()

    def _handle_events(self, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is Pong:
                if event.payload == self._ping_payload:
                    self._ping_payload = None
            elif kind is CloseReceived:
                code = event.code
                self._queue_disconnect(1005 if code is None else code, event.reason)
            elif kind is Request:
                self._on_request(event.request)
            elif kind is Rejected:
                # A malformed request head: the connection answered it.
                self.handshake_complete = True
                self.close_sent = True
            elif kind is TextMessage or kind is BinaryMessage:
                # A message queued as an event (events were pending before it).
                self._on_message(event.data)

    def _queue_disconnect(self, code: int, reason: Optional[str] = None) -> None:
        """Queue the (only) ``websocket.disconnect``; ``reason`` if a close frame gave one."""
        if self._disconnect is not None:
            return
        message: dict[str, Any] = {"type": "websocket.disconnect", "code": code}
        if reason is not None:
            message["reason"] = reason
        self._disconnect = message
        self._queue.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------- sending

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.disconnected:
            self.transport.write(data)

    async def _drain(self) -> None:
        while self._write_paused and not self.disconnected:
            waiter = self._drain_waiter
            if waiter is None or waiter.done():
                waiter = self._drain_waiter = self.loop.create_future()
            await asyncio.shield(waiter)

    def _start_close(self, code: int, reason: str) -> None:
        """The application closes: send the close frame, wait for the answer."""
        self.conn.close(code, reason)
        self.close_sent = True
        self.app_closed = True
        self._queue_disconnect(code, reason)
        self._flush()
        self._stop_heartbeat()
        if self._paused_reading:
            self._resume_reading()  # the peer's close frame must be read
        if not self.transport.is_closing() and self._close_timer is None:
            self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self.transport.close)

    def _fail(self, code: int, reason: str) -> None:
        """Close with ``code`` and drop the connection without waiting."""
        self.close_sent = True
        if self.conn.state is _OPEN:
            self.conn.close(code, reason)
            self._flush()
        self._queue_disconnect(code, reason)
        self._stop_heartbeat()
        self.transport.close()

    # ------------------------------------------------------------- heartbeat

    def _start_heartbeat(self) -> None:
        interval = self.config.ws_ping_interval
        if not interval or interval <= 0:
            return
        timeout = self.config.ws_ping_timeout
        if not timeout or timeout <= 0:
            timeout = float("inf")  # ping, but never give up on the pong
        key = (self.loop, float(interval), float(timeout))
        heartbeat = _heartbeats.get(key)
        if heartbeat is None:
            heartbeat = _heartbeats[key] = Heartbeat(self.loop, interval, timeout)
        self._heartbeat = heartbeat
        self._heartbeat_key = key
        heartbeat.add(self)  # type: ignore[arg-type]

    def _stop_heartbeat(self) -> None:
        heartbeat = self._heartbeat
        if heartbeat is None:
            return
        self._heartbeat = None
        heartbeat.discard(self)  # type: ignore[arg-type]
        if not heartbeat._members and _heartbeats.get(self._heartbeat_key) is heartbeat:  # type: ignore[arg-type]
            del _heartbeats[self._heartbeat_key]  # type: ignore[arg-type]

    def _send_heartbeat(self, payload: bytes, now: float, deadline: float) -> None:
        """Called by the heartbeat: send a ping it will wait for."""
        if self.conn.state is not _OPEN or self.disconnected or self.close_sent:
            return
        self._ping_payload = payload
        self._ping_sent_at = now
        self._ping_deadline = deadline
        self.conn.send_ping(payload)
        self._flush()

    def fail(self, code: int, reason: str = "") -> None:
        """Called by the heartbeat when the pong did not come back in time."""
        if self.close_sent or self.disconnected:
            return
        self.logger.debug("WebSocket keepalive ping timeout")
        self._fail(code, reason)
