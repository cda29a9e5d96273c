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

Origins: uvicorn has no setting for them, so :meth:`WSFrameProtocol.configure`
makes a protocol class with an origin policy (the same
:class:`~wsframe.handshake.OriginPolicy` as ``wsframe.asyncio.serve``'s
``origins``)::

    # myapp.py -- then: uvicorn myapp:app --ws myapp:WSProtocol
    WSProtocol = WSFrameProtocol.configure(origins=["https://app.example.com", None])

A request from another origin is answered 403 by the connection itself,
before the application is called. An application that must run under other
servers too can check its scope instead:
``OriginPolicy([...]).allows_scope(scope)`` before ``websocket.accept``.

uvicorn's settings apply: ``ws_max_size`` (largest message, inflated),
``ws_max_queue`` (received messages the application has not read yet before
reading from the socket pauses), ``ws_ping_interval`` / ``ws_ping_timeout``
(heartbeats, one shared timer per loop) and ``ws_per_message_deflate``.

Everything but ASGI is wsframe's driver core (:mod:`wsframe.driver`, shared
with :mod:`wsframe.asyncio`): the compiled per-message path (a whole message
goes from the connection's ``on_message`` callback straight into the inbox,
and a sent message is one encode and one ``transport.write``), the inbox and
its watermarks, write flow control, heartbeats, and deferred failure (a
violation after valid messages waits until the application has read them).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Optional, cast
from urllib.parse import unquote

from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)

from .asyncio.driver import AsyncioDriver
from .asyncio.keepalive import Heartbeat
from .connection import ServerConnection, State
from .driver import KeepaliveMember
from .errors import InvalidHandshake
from .events import CloseReceived, Event, Rejected, Request
from .handshake import OriginPolicy, OriginsLike, validate_request
from .options import Options

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from .handshake import Request as HttpRequest

__all__ = ["WSFrameProtocol"]

#: An ASGI event or message: a dict with a ``"type"`` (the ASGI spec types it so).
ASGIMessage = dict[str, Any]

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
# ws_max_queue 0 or None: no limit (ASGI servers' reading of it).
_UNLIMITED_QUEUE = 1 << 30

_OPEN = State.OPEN
_CONNECTING = State.CONNECTING
_CONNECT = {"type": "websocket.connect"}


class _SharedHeartbeat(Heartbeat):
    """One heartbeat per (loop, interval, timeout) for all of uvicorn's connections."""

    __slots__ = ("_key",)

    _registry: ClassVar[dict[tuple[Any, float, float], _SharedHeartbeat]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float) -> None:
        super().__init__(loop, interval, timeout)
        self._key = (loop, interval, timeout)

    @classmethod
    def get(cls, loop: asyncio.AbstractEventLoop, interval: float, timeout: float) -> Heartbeat:
        """The heartbeat of these settings on ``loop``, made on first use."""
        key = (loop, interval, timeout)
        heartbeat = cls._registry.get(key)
        if heartbeat is None:
            heartbeat = cls._registry[key] = cls(loop, interval, timeout)
        return heartbeat

    def discard(self, member: KeepaliveMember) -> None:
        """Stop pinging ``member``; forget this heartbeat once it has no member."""
        super().discard(member)
        if not len(self) and self._registry.get(self._key) is self:
            del self._registry[self._key]


def _options(config: Config) -> Options:
    max_queue = config.ws_max_queue
    return Options(
        compression="deflate" if config.ws_per_message_deflate else None,
        max_message_size=config.ws_max_size,
        max_queue=max_queue if max_queue and max_queue > 0 else _UNLIMITED_QUEUE,
        close_timeout=CLOSE_TIMEOUT,
        open_timeout=None,
        ping_interval=None,  # uvicorn's heartbeat settings: see _start_heartbeat
    )


class WSFrameProtocol(AsyncioDriver):
    """uvicorn's WebSocket protocol interface, implemented with wsframe.

    Use as ``--ws wsframe.uvicorn:WSFrameProtocol``. One instance serves one
    connection; uvicorn creates it when an HTTP request asks for the upgrade.
    """

    # Slots: attribute reads on the per-message path (asgi_send/asgi_receive)
    # are slot reads, and a connection holds no __dict__.
    __slots__ = (
        "_close_timer",
        "_connect_pending",
        "_disconnect",
        "_response",
        "app",
        "app_closed",
        "app_state",
        "asgi_version",
        "client",
        "close_sent",
        "config",
        "connections",
        "default_headers",
        "disconnected",
        "handshake_complete",
        "logger",
        "response_started",
        "root_path",
        "scheme",
        "scope",
        "server",
        "tasks",
    )

    conn: ServerConnection
    #: The origin policy of every connection (None: no check); see :meth:`configure`.
    origin_policy: ClassVar[Optional[OriginPolicy]] = None

    @classmethod
    def configure(cls, *, origins: Optional[OriginsLike] = None) -> type[WSFrameProtocol]:
        """A subclass whose connections refuse WebSocket requests from origins
        not in ``origins`` with 403, before the application is called.

        ``origins`` is as for ``wsframe.asyncio.serve``: allowed origins,
        compiled patterns, ``None`` for requests without ``Origin``, or an
        :class:`~wsframe.handshake.OriginPolicy`. Pass the class as
        ``uvicorn.Config(app, ws=...)``, or name it in ``--ws module:name``.
        """
        policy = OriginPolicy.build(origins)
        namespace = {"__slots__": (), "origin_policy": policy, "__module__": cls.__module__}
        return type(cls.__name__, (cls,), namespace)

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: ASGIMessage,
        _loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if not config.loaded:
            config.load()
        super().__init__(ServerConnection(_options(config), origins=self.origin_policy))
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
        self.server: Optional[tuple[str, Optional[int]]] = None
        self.client: Optional[tuple[str, int]] = None
        self.scheme = "ws"
        self.scope: Any = {}

        # ASGI state.
        self.handshake_complete = False  # accepted, or answered with HTTP
        self.close_sent = False  # the application closed (or we failed the connection)
        self.app_closed = False  # the application sent websocket.close
        self.disconnected = False  # the transport is gone
        self.response_started = False
        self._response: Optional[tuple[int, list[tuple[str, str]], list[bytes]]] = None
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._connect_pending = False  # websocket.connect not yet received by the app
        self._disconnect: Optional[ASGIMessage] = None

    # ---------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register with the server (uvicorn calls this with the HTTP transport)."""
        self.connections.add(self)  # type: ignore[arg-type]
        super().connection_made(transport)
        tcp = cast(asyncio.Transport, transport)
        self.server = get_local_addr(tcp)
        self.client = get_remote_addr(tcp)
        self.scheme = "wss" if is_ssl(tcp) else "ws"

    def connection_lost(self, exc: Optional[Exception]) -> None:
        """The transport is closed: tell the application, unregister."""
        self.connections.discard(self)  # type: ignore[arg-type]
        self.disconnected = True
        super().connection_lost(exc)
        code = self.conn.close_code if self.handshake_complete else None
        self._queue_disconnect(code or 1006)
        self.handshake_complete = True
        self._cancel_close_timer()

    def handle_event(self, event: Event) -> None:
        """The request, a refused request and the peer's close frame."""
        kind = type(event)
        if kind is CloseReceived:
            code = event.code  # type: ignore[attr-defined]
            self._queue_disconnect(1005 if code is None else code, event.reason)  # type: ignore[attr-defined]
        elif kind is Request:
            self._on_request(event.request)  # type: ignore[attr-defined]
        elif kind is Rejected:
            # A malformed request head, or an origin not allowed: the
            # connection answered it; the application is never called.
            self.handshake_complete = True
            self.close_sent = True
            error = event.error  # type: ignore[attr-defined]
            if self.logger.isEnabledFor(logging.INFO):
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
                self.logger.info('%s - "WebSocket" %s (%s)', client, error.status, error)

    def end_transport(self, graceful: bool = False) -> None:
        """The connection is over; after a violation, the application learns why."""
        conn = self.conn
        if conn.error is not None and conn.close_sent is not None and not self.close_sent:
            # The peer broke the protocol (or sent too much): the connection
            # sent the close frame; tell the application why.
            code, reason = conn.close_sent
            self.close_sent = True
            self._queue_disconnect(code or 1006, reason)
        self._cancel_close_timer()
        super().end_transport(graceful)

    def fail(self, code: int, reason: str = "", cause: Optional[str] = None) -> None:
        """Close with ``code`` and end the connection (heartbeat timeout, app error)."""
        if self.close_sent or self.disconnected:
            return
        self.close_sent = True
        self._queue_disconnect(code, reason)
        if cause == "heartbeat_timeout":
            self.logger.debug("WebSocket keepalive ping timeout")
        super().fail(code, reason, cause)

    # ---------------------------------------------------- uvicorn's interface

    def shutdown(self) -> None:
        """Server shutdown: close with 1012 (Service Restart), or answer 500."""
        if self.heartbeat is not None:
            self.heartbeat.discard(self)
        if self.close_sent:
            self._cancel_close_timer()
            self._close_transport()
            return
        if self.handshake_complete and not self.response_started:
            self.close_sent = True
            self.start_close(1012, "")
            self._queue_disconnect(1012)
        else:
            self.send_500_response()
        self._close_transport()

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
                self.fail(1011, "")
        else:
            self._finish_response()
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
                if self.conn.state is _OPEN and not self.disconnected:
                    self.fail(1011, "")
            if self.conn.state is _OPEN and not self.disconnected and not self.close_sent:
                # Returned without closing: close normally (the peer gets 1000).
                self._start_close(1000, "")
        if self._close_timer is None and not self.close_sent:
            self._close_transport()

    def send_500_response(self) -> None:
        """Answer 500 if no answer went out yet."""
        conn = self.conn
        if self.handshake_complete or self.response_started or conn.request is None:
            return
        if conn.state is not _CONNECTING:
            return
        conn.reject(500, "Internal Server Error", self._default_headers())
        self.handshake_complete = True
        self.flush()

    # ------------------------------------------------------------- ASGI

    async def asgi_receive(self) -> ASGIMessage:
        """ASGI ``receive``: the next event for the application."""
        while True:
            if self._connect_pending:
                self._connect_pending = False
                return _CONNECT
            message = self.take_message()
            if message is not None:
                if type(message) is str:
                    return {"type": "websocket.receive", "text": message}
                return {"type": "websocket.receive", "bytes": message}
            if self._disconnect is not None:
                return self._disconnect  # read again after the end: nothing follows it
            await self.reader_woken()

    async def asgi_send(self, message: ASGIMessage) -> None:
        """ASGI ``send``: a message from the application."""
        if self.writing_paused:
            await self.wait_drained()
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.send" and self.handshake_complete and not self.close_sent:
            if self.conn.state is not _OPEN:
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
            self.send_message(data)
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
            self.flush()
            self._close_transport()
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
        self._connect_pending = True
        task = self.event_loop().create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def _send_handshake(self, kind: str, message: ASGIMessage) -> None:
        conn = self.conn
        if kind == "websocket.accept":
            self._log("[accepted]")
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in (*self.default_headers, *message.get("headers", ()))
                if name.lower() not in _ACCEPT_RESERVED
            ]
            if self.transport is None or self.transport.is_closing():
                return
            self.handshake_complete = True
            conn.accept(message.get("subprotocol"), headers)
            if conn.state is not _OPEN:  # refused after all (validated before: unlikely)
                self.flush()
                self._close_transport()
                return
            self.flush()
            self._start_heartbeat()
            self.open_completed()
            self.process()  # frames the client sent before the 101
        elif kind == "websocket.close":
            self._log("403")
            self._queue_disconnect(1006)
            self.handshake_complete = True
            self.close_sent = True
            conn.reject(403, b"", self._default_headers())
            self.flush()
            self._close_transport()
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

    def _send_response_body(self, kind: str, message: ASGIMessage) -> None:
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
        self.flush()
        self._close_transport()

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

    # ------------------------------------------------------------- closing

    def _queue_disconnect(self, code: int, reason: Optional[str] = None) -> None:
        """Queue the (only) ``websocket.disconnect``; ``reason`` if a close frame gave one."""
        if self._disconnect is not None:
            return
        message: ASGIMessage = {"type": "websocket.disconnect", "code": code}
        if reason is not None:
            message["reason"] = reason
        self._disconnect = message
        self.wake_reader()

    def _close_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _cancel_close_timer(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    def _start_close(self, code: int, reason: str) -> None:
        """The application closes: send the close frame, wait for the answer."""
        self.start_close(code, reason)
        self.close_sent = True
        self.app_closed = True
        self.discard_messages = True  # nobody reads them any more
        self._queue_disconnect(code, reason)
        if self.heartbeat is not None:
            self.heartbeat.discard(self)
        if self.reading_paused:
            self.resume_reading()  # the peer's close frame must be read
        transport = self.transport
        if transport is not None and not transport.is_closing() and self._close_timer is None:
            self._close_timer = self.call_later(CLOSE_TIMEOUT, self._close_transport)

    # ------------------------------------------------------------- heartbeat

    def _start_heartbeat(self) -> None:
        interval = self.config.ws_ping_interval
        if not interval or interval <= 0:
            return
        timeout = self.config.ws_ping_timeout
        if not timeout or timeout <= 0:
            timeout = float("inf")  # ping, but never give up on the pong
        self.heartbeat = _SharedHeartbeat.get(self.event_loop(), float(interval), float(timeout))
