"""The exception hierarchy of wsframe.

Every error a peer can cause is a :class:`ProtocolError` (or a subclass) and
carries the close code the connection must be failed with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["MessageTooBig", "ProtocolError", "WebSocketError"]


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
        close_code: int | None = None,
        frames: Sequence[Any] = (),
    ) -> None:
        super().__init__(message)
        self.close_code: int = self.default_close_code if close_code is None else close_code
        self.frames: list[Any] = list(frames)


class MessageTooBig(ProtocolError):
    """A frame or message is larger than the configured limit (close code 1009)."""

    default_close_code = 1009
