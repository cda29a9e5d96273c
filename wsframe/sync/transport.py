"""A blocking socket as the driver core's transport.

The driver core (:class:`wsframe.driver.DriverCore`) writes to a transport
that never blocks (:class:`wsframe.driver.Transport`), and it is called under
the connection's lock. :class:`SocketTransport` keeps what the core writes in
a queue instead, and the thread that made the core write — after releasing
the connection's lock — sends the queue with :meth:`~SocketTransport.drain`
under a send lock of its own. So a thread blocked in ``sendall`` (the peer
reads slowly) never holds the connection's lock: the reader thread goes on
reading, answering pings and seeing the close frame, and two peers that both
send a lot cannot deadlock on each other's full buffers.

Closing follows asyncio's transports: :meth:`~SocketTransport.close` sends
what is queued, then shuts the socket down; :meth:`~SocketTransport.abort`
shuts it down at once, dropping the queue. Shutting down (not closing) wakes
a thread blocked in ``recv`` on it; that thread — the connection's reader —
closes the socket when it leaves, so a descriptor is never reused while a
thread still waits on it.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from ..typing import BytesLike

if TYPE_CHECKING:
    from ..driver import DriverCore
    from .client import TLSTunnel

#: What the threaded driver reads and writes: a socket (TLS or not, from a
#: SOCKS proxy or not), or TLS inside TLS through an ``https://`` proxy.
SocketLike = Union[socket.socket, "TLSTunnel"]

__all__ = ["SocketTransport", "set_no_delay"]

#: The largest chunk a thread that must not block (a heartbeat, a timer) sends.
_SMALL_WRITE = 4096
#: Buffers handed to one ``sendmsg`` call.
_MAX_IOV = 512


def set_no_delay(sock: SocketLike) -> None:
    """Send small frames at once (TCP_NODELAY, as asyncio's TCP transports do)."""
    with contextlib.suppress(OSError, AttributeError):  # a Unix socket
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _writable(sock: SocketLike) -> bool:
    """Whether ``sock`` has room in its send buffer now (does not block)."""
    try:
        fileno = sock.fileno()
        if fileno < 0:
            return False
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fileno, select.POLLOUT)
            return bool(poller.poll(0))
        return bool(select.select([], [fileno], [], 0)[1])
    except (OSError, ValueError):
        return False


class SocketTransport:
    """What the driver core writes to, over a connected blocking socket.

    ``sock`` is a socket (or an :class:`ssl.SSLSocket`, or any object with
    ``sendall``/``recv_into``/``shutdown``/``close``); ``lock`` is the
    connection's lock (a ``threading.Condition`` over a reentrant lock, which
    the core runs under; it is notified when the socket is shut down) and
    ``driver`` the core (its ``pause_writing``/``resume_writing``
    are called as the queue passes ``write_limit``).
    """

    __slots__ = (
        "_aborted",
        "_closing",
        "_driver",
        "_eof",
        "_failed",
        "_high",
        "_lock",
        "_low",
        "_pending",
        "_send_lock",
        "_shut",
        "_size",
        "_vectored",
        "reading_paused",
        "sock",
    )

    def __init__(self, sock: SocketLike, driver: DriverCore, lock: threading.Condition) -> None:
        #: The socket.
        self.sock = sock
        self._driver = driver
        self._lock = lock
        self._send_lock = threading.Lock()
        self._pending: collections.deque[BytesLike] = collections.deque()
        self._size = 0
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._closing = False  # close() was called: shut down once the queue is sent
        self._eof = False  # write_eof() was called: half-close once the queue is sent
        self._shut = False  # the socket was shut down (both ways)
        self._aborted = False
        self._failed = False
        # TLS sockets send one buffer at a time; plain ones hand several to sendmsg.
        self._vectored = hasattr(sock, "sendmsg") and not isinstance(sock, ssl.SSLSocket)
        #: Whether the core paused reading (the reader thread waits until resumed).
        self.reading_paused = False

    # --------------------------------------------------------- the core's side

    def write(self, data: BytesLike) -> None:
        """Queue ``data``; the thread that called the core sends it with :meth:`drain`."""
        if self._shut or self._aborted or self._failed:
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size > self._high and not self._driver.writing_paused:
            self._driver.pause_writing()

    def writelines(self, chunks: Iterable[BytesLike]) -> None:
        """Queue several buffers, in order."""
        for chunk in chunks:
            self.write(chunk)

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet handed to the kernel."""
        return self._size

    def set_write_buffer_limits(
        self, high: Optional[int] = None, low: Optional[int] = None
    ) -> None:
        """The queue size above which the core's ``pause_writing`` is called."""
        if high is not None:
            self._high = high
        self._low = low if low is not None else self._high // 4

    def pause_reading(self) -> None:
        """The reader thread stops reading after its current read."""
        self.reading_paused = True

    def resume_reading(self) -> None:
        """The reader thread reads again (called under the connection's lock)."""
        self.reading_paused = False
        self._lock.notify_all()

    def can_write_eof(self) -> bool:
        """A plain TCP socket can half-close; a TLS one cannot (as asyncio's)."""
        return self._vectored

    def write_eof(self) -> None:
        """Send our FIN once the queue is sent; keep reading."""
        self._eof = True

    def close(self) -> None:
        """Shut the socket down once the queue is sent."""
        self._closing = True

    def abort(self) -> None:
        """Shut the socket down now, dropping the queue (wakes the reader thread)."""
        self._aborted = True
        self._pending.clear()
        self._size = 0
        self._shutdown(socket.SHUT_RDWR)

    def is_closing(self) -> bool:
        """Whether the transport is closing or closed."""
        return self._closing or self._shut or self._aborted or self._failed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"peername"``, ``"sockname"``, ``"socket"``, ``"ssl_object"`` (the
        :class:`ssl.SSLSocket` itself, which has the same inspection methods),
        ``"peercert"``, ``"cipher"``."""
        sock = self.sock
        try:
            if name == "peername":
                return sock.getpeername()
            if name == "sockname":
                return sock.getsockname()
        except OSError:
            return default
        if name == "socket":
            return sock
        if isinstance(sock, ssl.SSLSocket) or not isinstance(sock, socket.socket):  # TLS
            if name == "ssl_object":
                return sock
            if name == "peercert":
                return sock.getpeercert()
            if name == "cipher":
                return sock.cipher()
        return default

    # ------------------------------------------------------ the driver's side

    @property
    def has_pending(self) -> bool:
        """Whether anything waits to be sent (or a shutdown is due)."""
        return bool(self._pending) or ((self._closing or self._eof) and not self._shut)

    @property
    def failed(self) -> bool:
        """Whether sending failed (the peer is gone) or the transport was aborted."""
        return self._failed or self._aborted

    def drain(self, block: bool = True) -> bool:
        """Send the queue; call it holding no lock. Returns False if the socket failed.

        With ``block`` the thread waits for the send lock and for the peer to
        make room; without (a heartbeat or a timer thread, which serve many
        connections) it sends only small chunks while the socket has room,
        and leaves the rest to the next thread that drains.
        """
        pending = self._pending
        while pending or ((self._closing or self._eof) and not self._shut):
            if self._failed or self._aborted:
                return False
            if not self._send_lock.acquire(block):
                return True
            try:
                if block:
                    self._send_queue()
                else:
                    while pending and len(pending[0]) <= _SMALL_WRITE and _writable(self.sock):
                        chunk = pending.popleft()
                        self._size -= len(chunk)
                        self.sock.sendall(chunk)
                    if pending:
                        return True
                if self._closing:
                    self._shutdown(socket.SHUT_RDWR)
                elif self._eof and not self._shut:
                    self._half_close()
            except OSError:
                self._failed = True
                pending.clear()
                self._size = 0
                self._shutdown(socket.SHUT_RDWR)  # the reader thread sees the end
                return False
            finally:
                self._send_lock.release()
            if self._driver.writing_paused and self._size <= self._low:
                with self._lock:
                    self._driver.resume_writing()  # may queue a held pong: loop
        return True

    def _send_queue(self) -> None:
        pending = self._pending
        sock = self.sock
        while pending:
            if len(pending) == 1 or not self._vectored:
                chunk = pending.popleft()
                sock.sendall(chunk)
                self._size -= len(chunk)
                continue
            chunks = [pending.popleft() for _ in range(min(len(pending), _MAX_IOV))]
            size = sum(map(len, chunks))
            _sendmsg_all(cast(socket.socket, sock), chunks)  # _vectored: a plain socket
            self._size -= size

    def shutdown_reading(self) -> None:
        """Shut the receiving side down: a thread blocked reading sees the end."""
        if not self._shut:
            self._shutdown_socket(socket.SHUT_RD)

    def _half_close(self) -> None:
        self._eof = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def _shutdown(self, how: int) -> None:
        if self._shut:
            return
        self._shut = True
        self._shutdown_socket(how)
        with self._lock:  # reentrant: whoever shuts down, the reader is told
            self._lock.notify_all()

    def _shutdown_socket(self, how: int) -> None:
        # socket.socket's own shutdown: an SSLSocket's would drop its TLS
        # state under the feet of a thread reading it.
        sock = self.sock
        with contextlib.suppress(OSError, TypeError):
            if hasattr(sock, "shutdown_transport"):
                sock.shutdown_transport(how)
            else:
                socket.socket.shutdown(sock, how)


def _sendmsg_all(sock: socket.socket, chunks: list[BytesLike]) -> None:
    """``sendall`` for several buffers: as few ``sendmsg`` calls as the kernel allows."""
    while chunks:
        sent = sock.sendmsg(chunks)
        while sent:
            size = len(chunks[0])
            if sent >= size:
                sent -= size
                del chunks[0]
            else:
                chunks[0] = memoryview(chunks[0])[sent:]
                sent = 0
