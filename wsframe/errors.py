"""The exception hierarchy of wsframe: every exception it raises is here.

::

    WebSocketError
    ├── ProtocolError          the peer broke RFC 6455 / 7692 (.close_code)
    │   └── MessageTooBig      a frame or message over the limit (1009)
    ├── InvalidHandshake       the opening handshake failed (.status)
    ├── InvalidProxy           the proxy refused or broke the tunnel (.status)
    ├── InvalidState           not allowed in the connection's state
    ├── ConcurrencyError       two threads read one connection at once (also a RuntimeError)
    └── ConnectionClosed       the connection is closed (.code, .reason)
        ├── ConnectionClosedOK     cleanly, with 1000 or 1001
        └── ConnectionClosedError  with an error code, or not cleanly

Every error a peer can cause is a :class:`ProtocolError` (or a subclass) and
carries the close code the connection must be failed with. Misuse of an
argument raises the built-in ``TypeError``/``ValueError``, as everywhere in
Python.

Every name here is also importable from ``wsframe``, and the ones an API
raises from that API's package (``wsframe.asyncio``, ``wsframe.sync``).
Three exceptions of the package are deliberately not part of this hierarchy:
``wsframe._codec_py``'s private ``_DecodeError`` (control flow inside the
pure-Python decoder, never seen outside it), the chat demo's
``ProtocolViolation`` (an application's own refusal, answered to its client
as JSON, as an application built on wsframe would define it) and the
benchmark harness's ``NotAvailable``/``CheckFailed`` (``tests/test_errors_module.py``
keeps that list closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional, TypeVar

if TYPE_CHECKING:
    from ._codec_py import Frame
    from .headers import HeadersLike

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "InvalidHandshake",
    "InvalidProxy",
    "InvalidState",
    "MessageTooBig",
    "ProtocolError",
    "WebSocketError",
    "drop_traceback",
]

_E = TypeVar("_E", bound=BaseException)


class WebSocketError(Exception):
    """Base class of every exception raised by wsframe."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455 / RFC 7692; fail the connection with ``close_code``.

    ``frames`` holds the complete, valid frames that a :class:`FrameDecoder`
    decoded in the same ``feed()`` call before it met the violation, so that no
    valid data that arrived before the error is lost.
    """

    default_close_code = 1002

    def __init__(
        self,
        message: str,
        close_code: Optional[int] = None,
        frames: Sequence[Frame] = (),
    ) -> None:
        super().__init__(message)
        self.close_code: int = self.default_close_code if close_code is None else close_code
        self.frames: list[Frame] = list(frames)


class MessageTooBig(ProtocolError):
    """A frame or message is larger than the configured limit (close code 1009)."""

    default_close_code = 1009


class _HTTPAnswer(WebSocketError):
    """An error that carries an HTTP answer: ``status``, ``headers``, ``body``."""

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        headers: Optional[HeadersLike] = None,
        body: bytes = b"",
    ) -> None:
        from .headers import Headers  # late import: errors.py stays import-light

        super().__init__(message)
        self.message: str = message
        self.status: Optional[int] = status
        self.headers: Headers = Headers(headers)
        self.body: bytes = bytes(body)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class InvalidHandshake(_HTTPAnswer):
    """The opening handshake failed.

    On the server, ``status`` is the HTTP status to answer with (400, 405,
    414, 426, 431, 505, ...), ``headers`` the extra header fields the answer
    needs (e.g. ``Allow: GET`` for 405, ``Sec-WebSocket-Version: 13`` for
    426) and ``body`` a short text body; build the answer with
    ``wsframe.handshake.reject_response(exc.status, exc.body, exc.headers)``.

    On the client, ``status``/``headers``/``body`` are what the server
    answered; ``status`` is ``None`` if the response could not even be parsed.

    ``str(exc)`` is the message, prefixed with ``HTTP <status>:`` when there
    is a status.
    """

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"HTTP {self.status}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.status, self.headers.items(), self.body))


class InvalidProxy(_HTTPAnswer):
    """A client could not open its tunnel through a proxy.

    ``proxy`` is the proxy's URL without its password. ``status`` is the
    HTTP status an HTTP proxy answered ``CONNECT`` with (407 Proxy
    Authentication Required, 403, 502...) or the reply code a SOCKS proxy
    refused with, and ``headers``/``body`` what an HTTP proxy sent; ``status``
    is ``None`` when the proxy sent no valid answer at all (it closed the
    connection, or did not speak the protocol).
    """

    def __init__(
        self,
        message: str,
        proxy: str = "",
        status: Optional[int] = None,
        headers: Optional[HeadersLike] = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message, status, headers, body)
        self.proxy: str = proxy

    def __str__(self) -> str:
        return f"{self.message} (proxy {self.proxy})" if self.proxy else self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.message, self.proxy, self.status, self.headers.items(), self.body),
        )


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two threads did at once what only one at a time may do.

    ``wsframe.sync``: ``recv()`` (or iterating) on a connection from a thread
    while another thread is already in ``recv()``.
    """


class InvalidState(WebSocketError):
    """The application asked for something the connection's state forbids.

    For example sending on a connection that is not open, or starting a new
    message while a fragmented one is being sent.
    """


class ConnectionClosed(WebSocketError):
    """The connection is closed: raised by ``recv``, ``send``, ``ping``...

    ``code``/``reason``: the close code and reason the peer sent (1005 if it
    sent none, 1006 if the connection ended without a close frame from it);
    ``was_clean``: whether the closing handshake completed; ``sent`` and
    ``rcvd``: the ``(code, reason)`` of the close frames sent and received,
    or None.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        was_clean: bool,
        sent: Optional[tuple[Optional[int], str]] = None,
        rcvd: Optional[tuple[Optional[int], str]] = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.was_clean = was_clean
        self.sent = sent
        self.rcvd = rcvd
        clean = "cleanly" if was_clean else "abnormally"
        detail = f" ({reason})" if reason else ""
        super().__init__(f"connection closed {clean} with code {code}{detail}")


class ConnectionClosedOK(ConnectionClosed):
    """Closed cleanly with 1000 (normal) or 1001 (going away)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or without a complete closing handshake."""


def drop_traceback(error: _E) -> _E:
    """Drop the tracebacks of ``error`` and of its causes and contexts; return ``error``.

    For an exception that is kept after it was handled, e.g. as
    :attr:`wsframe.connection.Connection.error`. A traceback holds every frame
    the exception went through with its local variables and, through
    ``f_back``, every frame that called them. Kept, it keeps alive what those
    frames held: the inflated part of a compression bomb, the payloads of
    the frames read with the violation, the request head of a failed
    handshake... And since those frames also hold the object that keeps the
    error (``self``), they form a reference cycle that only the cyclic garbage
    collector frees, when it next examines its oldest generation: on a server
    that allocates few objects per connection, possibly hundreds of
    connections later. The message, the close code and the chain of causes
    stay.
    """
    pending: list[Optional[BaseException]] = [error]
    seen: set[int] = set()
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        pending.append(exc.__cause__)
        pending.append(exc.__context__)
    return error
