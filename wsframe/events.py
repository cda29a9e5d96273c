"""What a connection reports: small immutable event objects.

A :class:`~wsframe.connection.ServerConnection` or
:class:`~wsframe.connection.ClientConnection` turns received bytes into these
events; ``connection.events()`` hands them over in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .deflate import PerMessageDeflate
    from .errors import InvalidHandshake
    from .handshake import Request as HttpRequest
    from .handshake import Response as HttpResponse

__all__ = [
    "Accepted",
    "BinaryFragment",
    "BinaryMessage",
    "CloseReceived",
    "Event",
    "Ping",
    "Pong",
    "Rejected",
    "Request",
    "TextFragment",
    "TextMessage",
]


class Event:
    """Base class of every event: immutable, compared and shown by value."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *args: object) -> None:
        for name, value in zip(self.__slots__, args):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} events are immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={_short(getattr(self, name))}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:72] + "...>"


class Request(Event):
    """Server: a complete HTTP request head arrived.

    Answer it with ``connection.accept()`` (WebSocket upgrade),
    ``connection.reject(status, body)`` or ``connection.respond(...)`` (plain
    HTTP, e.g. to serve a page). ``request.is_websocket`` says whether it asks
    for an upgrade.
    """

    __slots__ = ("request",)
    request: HttpRequest

    def __init__(self, request: HttpRequest) -> None:
        super().__init__(request)


class Accepted(Event):
    """Client: the server accepted the opening handshake; the connection is open."""

    __slots__ = ("response", "subprotocol", "extensions")
    response: HttpResponse
    subprotocol: Optional[str]
    extensions: Optional[PerMessageDeflate]

    def __init__(
        self,
        response: HttpResponse,
        subprotocol: Optional[str],
        extensions: Optional[PerMessageDeflate],
    ) -> None:
        super().__init__(response, subprotocol, extensions)


class Rejected(Event):
    """The opening handshake failed (either side); the connection is closed.

    ``error.status`` is the HTTP status: the one the server answered (client
    side) or the one sent to the client (server side).
    """

    __slots__ = ("error",)
    error: InvalidHandshake

    def __init__(self, error: InvalidHandshake) -> None:
        super().__init__(error)


class TextMessage(Event):
    """A complete text message, decoded."""

    __slots__ = ("data",)
    data: str

    def __init__(self, data: str) -> None:
        super().__init__(data)


class BinaryMessage(Event):
    """A complete binary message."""

    __slots__ = ("data",)
    data: bytes

    def __init__(self, data: bytes) -> None:
        super().__init__(data)


class TextFragment(Event):
    """A piece of a text message (only with ``fragments=True``).

    ``data`` holds the characters completed by this frame (a character split
    across frames is delivered with the frame that completes it); ``final``
    marks the last piece of the message.
    """

    __slots__ = ("data", "final")
    data: str
    final: bool

    def __init__(self, data: str, final: bool) -> None:
        super().__init__(data, final)


class BinaryFragment(Event):
    """A piece of a binary message (only with ``fragments=True``)."""

    __slots__ = ("data", "final")
    data: bytes
    final: bool

    def __init__(self, data: bytes, final: bool) -> None:
        super().__init__(data, final)


class Ping(Event):
    """The peer sent a ping (answered automatically unless ``auto_pong=False``)."""

    __slots__ = ("payload",)
    payload: bytes

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)


class Pong(Event):
    """The peer sent a pong."""

    __slots__ = ("payload",)
    payload: bytes

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)


class CloseReceived(Event):
    """The peer sent a close frame: ``code`` is None when it carried no code."""

    __slots__ = ("code", "reason")
    code: Optional[int]
    reason: str

    def __init__(self, code: Optional[int], reason: str) -> None:
        super().__init__(code, reason)
