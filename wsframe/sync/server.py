"""The threaded WebSocket server: ``serve()`` and :class:`Server`.

One thread accepts (:meth:`Server.serve_forever`); each connection gets a
thread that runs its opening handshake and then the application's handler,
and, once open, a reader thread (see :mod:`wsframe.sync.connection`). One
heartbeat thread pings every connection of the server.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, Optional

from ..admission import ConnectionsPerClient
from ..connection import ServerConnection, SubprotocolSelector
from ..handshake import HTTPAnswer, OriginPolicy, OriginsLike, http_answer
from ..handshake import Request as HttpRequest
from ..options import Options
from ..state import State
from ..stats import Counters, Stats, new_counters, retire_counters
from .connection import WebSocket
from .keepalive import Heartbeat
from .transport import set_no_delay

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..options import OptionsDict

__all__ = ["Server", "serve"]

logger = logging.getLogger("wsframe.server")

Handler = Callable[[WebSocket], object]
ProcessRequest = Callable[[WebSocket, HttpRequest], Optional[HTTPAnswer]]

_BUSY: HTTPAnswer = (503, {"Retry-After": "1"}, "Too many connections, retry later\n")
_FAILED: HTTPAnswer = (500, None, "Internal Server Error\n")


class Server:
    """A threaded WebSocket server (returned by :func:`serve`).

    :meth:`serve_forever` accepts connections until :meth:`shutdown` (from
    another thread) or Ctrl-C (SIGINT in the main thread), then closes every
    connection with 1001 (going away). ``with serve(...) as server:`` shuts
    down on exit. ``connections`` is the set of its connections.
    """

    def __init__(
        self,
        handler: Handler,
        options: Options,
        sockets: Sequence[socket.socket],
        *,
        ssl: Optional[ssl_module.SSLContext] = None,
        select_subprotocol: Optional[SubprotocolSelector] = None,
        process_request: Optional[ProcessRequest] = None,
        max_connections: Optional[int] = None,
        max_threads: Optional[int] = None,
        origins: Optional[OriginsLike] = None,
        max_connections_per_ip: Optional[int] = None,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be a function called with each connection")
        self.handler = handler  #: run for each connection, in the connection's thread
        self.options = options  #: every connection's settings
        self.connections: set[WebSocket] = set()  #: open or in their handshake
        #: What its connections count (see :meth:`stats`).
        self.counters: Counters = new_counters("server")
        self.max_connections = max_connections  #: more get 503 (None: no limit)
        #: Connections (open or in their handshake) per client address; its
        #: ``limit`` is ``max_connections_per_ip`` (beyond it: 503).
        self.per_client = ConnectionsPerClient(max_connections_per_ip)
        #: The origins allowed to open a WebSocket (None: any), see :func:`serve`.
        self.origins: Optional[OriginPolicy] = OriginPolicy.build(origins)
        self.process_request = process_request  #: see :func:`serve`
        self.select_subprotocol = select_subprotocol  #: see :func:`serve`
        #: One thread pings every connection (None: no heartbeat).
        self.heartbeat: Optional[Heartbeat] = None
        if options.heartbeat is not None:
            self.heartbeat = Heartbeat(*options.heartbeat, name="wsframe-server-heartbeat")
        self._sockets = list(sockets)
        self._ssl = ssl
        self._lock = threading.Condition(threading.Lock())
        self._threads = 0  # connection threads running
        self._slots = threading.BoundedSemaphore(max_threads) if max_threads else None
        self._stopping = False
        self._stopped = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._serving = False
        self._accepting = threading.Lock()  # held by serve_forever

    # ------------------------------------------------------------ properties

    @property
    def sockets(self) -> Sequence[socket.socket]:
        """The listening sockets."""
        return tuple(self._sockets)

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket (handy with ``port=0``)."""
        return int(self._sockets[0].getsockname()[1])

    def stats(self) -> Stats:
        """A snapshot of what this server's connections counted (:mod:`wsframe.stats`)."""
        return Stats.of([self.counters])

    def is_serving(self) -> bool:
        """Whether :meth:`serve_forever` accepts connections."""
        return self._serving

    # ------------------------------------------------------------- accepting

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` or SIGINT (Ctrl-C).

        On SIGINT it shuts the server down gracefully — every connection is
        closed with 1001 — and returns.
        """
        if self._stopping:
            return
        with self._accepting:
            interrupted = self._accept_until_shutdown()
        if interrupted:
            logger.info("interrupted: shutting down")
            self.shutdown()

    def _accept_until_shutdown(self) -> bool:
        """Accept until shutdown() wakes us up (False) or SIGINT (True)."""
        selector = selectors.DefaultSelector()
        try:
            for listener in self._sockets:
                listener.setblocking(False)
                selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            self._serving = True
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r or self._stopping:
                        break
                    self._accept(key.fileobj)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            return True
        finally:
            self._serving = False
            selector.close()
        return False

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, address = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if not self._stopping:
                logger.warning("accept failed: %s", exc)
                time.sleep(0.01)  # out of file descriptors: do not spin
            return
        sock.setblocking(True)
        set_no_delay(sock)
        slots = self._slots
        if slots is not None:
            while not slots.acquire(timeout=0.1):
                if self._stopping:
                    sock.close()
                    return
        with self._lock:
            self._threads += 1
        thread = threading.Thread(
            target=self._serve_connection, args=(sock, address), name="wsframe-conn", daemon=True
        )
        thread.start()

    # ----------------------------------------------------------- connection

    def _serve_connection(self, sock: socket.socket, address: object) -> None:
        try:
            if self._stopping:
                sock.close()
                return
            self._run_connection(sock, address)
        except Exception:
            logger.exception("connection from %s failed", address)
        finally:
            if self._slots is not None:
                self._slots.release()
            with self._lock:
                self._threads -= 1
                self._lock.notify_all()

    def _run_connection(self, sock: socket.socket, address: object) -> None:
        options = self.options
        timeout = options.open_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._ssl is not None:
            try:
                sock.settimeout(timeout)
                sock = self._ssl.wrap_socket(sock, server_side=True)
            except (OSError, ssl_module.SSLError) as exc:
                logger.debug("TLS handshake failed: %s", exc)
                sock.close()
                return
        conn = ServerConnection(
            options, select_subprotocol=self.select_subprotocol, origins=self.origins
        )
        ws = WebSocket(conn, sock, self.counters)
        ws.heartbeat = self.heartbeat
        with self._lock:
            self.connections.add(ws)
            limit = self.max_connections
            busy = limit is not None and len(self.connections) > limit
            client, over_limit = self.per_client.add(address)
            busy = busy or over_limit
        try:
            with ws.lock:
                ws.connection_made(ws.socket_transport)
            try:
                ws.read_handshake(deadline, lambda: conn.request is not None)
            except (OSError, TimeoutError) as exc:
                logger.debug("opening handshake failed: %s", exc)
                return
            if conn.request is None or conn.state is not State.CONNECTING:
                ws.end_handshake()  # a malformed request, answered; or EOF
                return
            if not self._answer(ws, conn, busy):
                ws.end_handshake()
                return
            ws.opened_in_thread()
            self._run_handler(ws)
        finally:
            with self._lock:
                self.connections.discard(ws)
                self.per_client.remove(client)

    def _answer(self, ws: WebSocket, conn: ServerConnection, busy: bool) -> bool:
        """Accept the request, or answer it otherwise; whether the connection opened."""
        answer: Optional[HTTPAnswer] = _BUSY if busy else None
        if busy:
            ws.counters.count_violation("too_many_connections")
        if answer is None and self.process_request is not None:
            try:
                answer = self.process_request(ws, conn.request)  # type: ignore[arg-type]
            except Exception:
                logger.exception("process_request failed")
                answer = _FAILED
        with ws.lock:
            if self._stopping:
                answer = (503, None, "Server shutting down\n")
            if answer is None:
                conn.accept()
            else:
                try:
                    status, body, headers = http_answer(answer)
                    conn.respond(status, body, headers)
                except Exception:
                    logger.exception("invalid response from process_request: %r", answer)
                    status, body, headers = http_answer(_FAILED)
                    conn.respond(status, body, headers)
            accepted = answer is None and conn.response is None
            if accepted:
                ws.open_completed()
            ws.process()
        if accepted:
            ws.socket_transport.drain()  # the 101 (a refusal is sent by end_handshake)
        return accepted

    def _run_handler(self, ws: WebSocket) -> None:
        try:
            self.handler(ws)
        except Exception:
            if ws.state is State.OPEN:
                logger.exception("connection handler failed")
                with ws.lock:
                    ws.set_close_cause("handler_error")
                ws.close(1011, "internal error")
            else:
                logger.debug("connection handler failed", exc_info=True)
        ws.close(1000)

    # -------------------------------------------------------------- stopping

    def shutdown(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop accepting, close every connection with ``code``, wait for them.

        Each connection gets ``close_timeout`` to finish its closing
        handshake, then is dropped; connection threads whose handler ignores
        the close are not waited for beyond that.
        """
        with self._lock:
            first = not self._stopping
            self._stopping = True
        if first:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
            for listener in self._sockets:
                listener.close()
            if self.heartbeat is not None:
                self.heartbeat.close()
        timeout = self.options.close_timeout
        deadline = time.monotonic() + timeout
        websockets = list(self.connections)
        for ws in websockets:
            with ws.lock:
                if ws.conn.state is State.CONNECTING:
                    ws.abort()
                else:
                    ws.start_close(code, reason)
            ws.socket_transport.drain(block=False)
        for ws in websockets:
            if not ws.wait_closed(max(0.0, deadline - time.monotonic())):
                ws.abort()
        with self._lock:
            end = time.monotonic() + timeout
            while self._threads and time.monotonic() < end:
                self._lock.wait(max(0.0, end - time.monotonic()))
        if first:
            # serve_forever has seen the wake-up (bounded: it was sent first).
            if self._accepting.acquire(timeout=timeout):
                self._accepting.release()
            self._wake_r.close()
            self._wake_w.close()
            retire_counters(self.counters)  # into the process's totals
            self._stopped.set()

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Wait until :meth:`shutdown` has finished; False on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _listen(
    host: Optional[str], port: Optional[int], *, reuse_port: bool, backlog: int
) -> socket.socket:
    address = (host or "", port or 0)
    if host and ":" in host:
        return socket.create_server(
            address, family=socket.AF_INET6, backlog=backlog, reuse_port=reuse_port
        )
    if not host and socket.has_dualstack_ipv6():
        return socket.create_server(
            address,
            family=socket.AF_INET6,
            dualstack_ipv6=True,
            backlog=backlog,
            reuse_port=reuse_port,
        )
    return socket.create_server(address, backlog=backlog, reuse_port=reuse_port)


def serve(
    handler: Handler,
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    max_threads: Optional[int] = None,
    ssl: Optional[ssl_module.SSLContext] = None,
    process_request: Optional[ProcessRequest] = None,
    select_subprotocol: Optional[SubprotocolSelector] = None,
    max_connections: Optional[int] = None,
    max_connections_per_ip: Optional[int] = None,
    origins: Optional[OriginsLike] = None,
    sock: Optional[socket.socket] = None,
    path: Optional[str] = None,
    reuse_port: bool = False,
    backlog: int = 1024,
    options: Optional[Options] = None,
    **overrides: Unpack[OptionsDict],
) -> Server:
    """Create a threaded WebSocket server listening on ``host``:``port``.

    ``handler(ws)`` runs in a thread of its own for each connection (the
    connection closes when it returns). The server listens at once; call
    :meth:`Server.serve_forever` to accept connections::

        with serve(echo, "127.0.0.1", 8765) as server:
            server.serve_forever()

    Listening: ``host``/``port`` (``port=0`` picks a free one; no host: every
    interface), or ``sock`` (a bound socket), or ``path`` (a Unix socket);
    ``reuse_port``, ``backlog``; ``ssl`` for wss://.

    Threads: one per connection; ``max_threads`` bounds how many connections
    are served at once (the others wait in the listen backlog until a
    thread is free).

    Handshake policy, as :func:`wsframe.asyncio.serve`:
    ``select_subprotocol(request, offered)``, ``process_request(ws,
    request)`` returning None to go on with the handshake or ``(status,
    body)`` / ``(status, headers, body)`` / a
    :class:`~wsframe.handshake.Response` to answer plain HTTP on the same
    port, ``max_connections`` (beyond it: 503) and
    ``max_connections_per_ip`` (503 for a client address beyond it; IPv6
    addresses count per /64), ``origins`` (the pages that may open a
    WebSocket; refused requests get 403, see ``docs/security.md``).

    Every connection's settings: ``options`` (an
    :class:`~wsframe.options.Options`) or its fields as keyword arguments
    (``max_message_size``, ``compression``, ``subprotocols``, ``max_queue``,
    ``ping_interval``, ``ping_timeout``, ``open_timeout``,
    ``close_timeout``...).
    """
    if sock is not None:
        listener = sock
        listener.listen(backlog)
    elif path is not None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(backlog)
        except BaseException:
            listener.close()
            raise
    else:
        listener = _listen(host, port, reuse_port=reuse_port, backlog=backlog)
    return Server(
        handler,
        Options.build(options, **overrides),
        [listener],
        ssl=ssl,
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        max_connections=max_connections,
        max_threads=max_threads,
        origins=origins,
        max_connections_per_ip=max_connections_per_ip,
    )
