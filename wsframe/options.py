"""The options of a WebSocket connection: one frozen, typed, validated record.

:class:`Options` holds every setting a connection has, whichever side and
driver runs it: the sans-I/O :class:`~wsframe.connection.ServerConnection`
and :class:`~wsframe.connection.ClientConnection` read the protocol fields,
the drivers (``wsframe.asyncio``'s ``serve``/``connect``, uvicorn's
``WSFrameProtocol``) the I/O fields. Build one once and share it::

    options = Options(max_message_size=16 << 20, compression=None)
    serve(handler, "127.0.0.1", 8765, options=options)

or pass the same names as keyword arguments (``serve(handler, host, port,
max_message_size=16 << 20)``), which :meth:`Options.build` turns into one.
Invalid values raise :class:`ValueError` (or :class:`TypeError` for an
unknown name) when the record is made, not when a peer first connects.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Optional, TypedDict

from .handshake import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADER_LINE,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_REQUEST_LINE,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_PING_BURST",
    "DEFAULT_MAX_PING_RATE",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "DEFAULT_WRITE_LIMIT",
    "Options",
    "OptionsDict",
]

#: Default ``max_message_size``: 1 MiB, for a reassembled (and inflated) message.
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
#: Default ``max_ping_rate``: pings per second a peer may send on average.
DEFAULT_MAX_PING_RATE = 10.0
#: Default ``max_ping_burst``: pings a peer may send at once above that rate.
DEFAULT_MAX_PING_BURST = 20
#: Default ``max_queue``: received messages buffered before reading pauses.
DEFAULT_MAX_QUEUE = 16
#: Default ``write_limit``: high-water mark of the transport's write buffer, in bytes.
DEFAULT_WRITE_LIMIT = 64 * 1024
#: Default ``ping_interval``: seconds between two heartbeat pings.
DEFAULT_PING_INTERVAL = 20.0
#: Default ``ping_timeout``: seconds to wait for a heartbeat's pong before failing with 1011.
DEFAULT_PING_TIMEOUT = 20.0
#: Default ``open_timeout``: seconds to complete the opening handshake.
DEFAULT_OPEN_TIMEOUT = 10.0
#: Default ``close_timeout``: seconds to wait for the closing handshake before dropping TCP.
DEFAULT_CLOSE_TIMEOUT = 10.0

Compression = Optional[Literal["deflate"]]


@dataclasses.dataclass(frozen=True)
class Options:
    """Every setting of a connection, with its default; immutable.

    Messages:
        ``max_message_size`` [1 MiB]: the largest message accepted,
        reassembled and inflated (None: no limit); a larger one fails the
        connection with 1009. ``fragments`` [False]: deliver messages frame
        by frame (``TextFragment``/``BinaryFragment`` events) instead of
        whole.

    Extensions and subprotocols:
        ``compression`` ["deflate"]: offer (client) or accept (server)
        permessage-deflate, or None. ``deflate_options``: keyword arguments of
        :func:`wsframe.deflate.negotiate_deflate` (server) or
        :func:`wsframe.deflate.deflate_offer` (client). ``subprotocols``:
        supported (server, preferred first) or offered (client).

    Control frames:
        ``auto_pong`` [True]: answer pings automatically. ``max_ping_rate``
        [10/s, None: no limit] and ``max_ping_burst`` [20]: pings the peer may
        send per second on average and at once; over them the connection is
        failed with 1008.

    Opening handshake (limits of :mod:`wsframe.handshake`'s parsers):
        ``max_request_line`` [8 KiB; the status line on the client],
        ``max_header_line`` [8 KiB], ``max_headers`` [100],
        ``max_header_bytes`` [64 KiB], ``max_body`` [64 KiB of a refusal's
        body kept by the client].

    Drivers (I/O):
        ``max_queue`` [16]: received messages buffered for the application
        before reading pauses. ``write_limit`` [64 KiB]: high-water mark of
        the send buffer (``send`` waits above it). ``ping_interval`` [20 s,
        None: no heartbeat] and ``ping_timeout`` [20 s; None: as
        ``ping_interval``]: heartbeat pings, and how long their pong may take
        before the connection is failed with 1011. ``open_timeout`` [10 s,
        None: none] to complete the opening handshake; ``close_timeout``
        [10 s] to complete the closing one before the TCP connection is
        dropped.
    """

    max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE
    fragments: bool = False
    compression: Compression = "deflate"
    deflate_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    subprotocols: tuple[str, ...] = ()
    auto_pong: bool = True
    max_ping_rate: Optional[float] = DEFAULT_MAX_PING_RATE
    max_ping_burst: int = DEFAULT_MAX_PING_BURST
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_header_line: int = DEFAULT_MAX_HEADER_LINE
    max_headers: int = DEFAULT_MAX_HEADERS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_body: int = DEFAULT_MAX_BODY
    max_queue: int = DEFAULT_MAX_QUEUE
    write_limit: int = DEFAULT_WRITE_LIMIT
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL
    ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT
    open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT

    def __post_init__(self) -> None:
        # Normalised to immutable forms: a list or dict given by the caller
        # cannot change the record afterwards.
        subprotocols: Iterable[str] = self.subprotocols or ()
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a sequence of str, not a str")
        object.__setattr__(self, "subprotocols", tuple(subprotocols))
        object.__setattr__(
            self,
            "deflate_options",
            types.MappingProxyType(dict(self.deflate_options or {})),
        )
        self._validate()

    def _validate(self) -> None:
        if self.max_message_size is not None and self.max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0 or None, not {self.max_message_size}")
        if self.compression not in (None, "deflate"):
            raise ValueError(f"compression must be 'deflate' or None, not {self.compression!r}")
        if self.max_ping_rate is not None and not self.max_ping_rate > 0:
            raise ValueError(f"max_ping_rate must be > 0 or None, not {self.max_ping_rate}")
        if self.max_ping_burst < 1:
            raise ValueError(f"max_ping_burst must be >= 1, not {self.max_ping_burst}")
        for name in ("max_request_line", "max_header_line", "max_headers", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.max_body < 0:
            raise ValueError(f"max_body must be >= 0, not {self.max_body}")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {self.max_queue}")
        if self.write_limit < 0:
            raise ValueError(f"write_limit must be >= 0, not {self.write_limit}")
        for name in ("ping_interval", "ping_timeout", "open_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, not {value}")
        if not self.close_timeout > 0:
            raise ValueError(f"close_timeout must be > 0, not {self.close_timeout}")

    @classmethod
    def build(cls, options: Optional[Options] = None, **overrides: Unpack[OptionsDict]) -> Options:
        """``options`` (or the defaults) with ``overrides`` applied.

        ``ping_interval=0`` is read as None (no heartbeat), as it was before
        options were records.
        """
        base = cls() if options is None else options
        if not overrides:
            return base
        unknown = set(overrides) - _FIELDS
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = dict(overrides)
        if changes.get("ping_interval") == 0:
            changes["ping_interval"] = None
        return dataclasses.replace(base, **changes)

    @property
    def heartbeat(self) -> Optional[tuple[float, float]]:
        """``(interval, timeout)`` of heartbeat pings, or None when they are off."""
        if not self.ping_interval:
            return None
        return self.ping_interval, self.ping_timeout or self.ping_interval

    def head_limits(self, *, client: bool) -> dict[str, int]:
        """Keyword arguments of :class:`~wsframe.handshake.RequestParser` (or, with
        ``client``, :class:`~wsframe.handshake.ResponseParser`)."""
        limits = {
            "max_request_line": self.max_request_line,
            "max_header_line": self.max_header_line,
            "max_headers": self.max_headers,
            "max_header_bytes": self.max_header_bytes,
        }
        if client:
            limits["max_body"] = self.max_body
        return limits


class OptionsDict(TypedDict, total=False):
    """The fields of :class:`Options` as keyword arguments (for type checkers)."""

    max_message_size: Optional[int]
    fragments: bool
    compression: Compression
    deflate_options: Optional[Mapping[str, Any]]
    subprotocols: Optional[Iterable[str]]
    auto_pong: bool
    max_ping_rate: Optional[float]
    max_ping_burst: int
    max_request_line: int
    max_header_line: int
    max_headers: int
    max_header_bytes: int
    max_body: int
    max_queue: int
    write_limit: int
    ping_interval: Optional[float]
    ping_timeout: Optional[float]
    open_timeout: Optional[float]
    close_timeout: float


_FIELDS = frozenset(field.name for field in dataclasses.fields(Options))
