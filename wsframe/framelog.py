"""Frames in the logs, at DEBUG: one line per frame received or sent.

Off unless DEBUG is enabled for ``wsframe.server`` / ``wsframe.client`` when
a connection starts: the driver core then gives the connection a
:class:`FrameLogger`, and the connection calls :func:`log_frame` for every
frame. Otherwise the connection holds None and the message path only
compares a pointer. Lines read ``connection 3: < TEXT fin, 5 bytes: 'hello'``
(``<`` received, ``>`` sent; payloads shortened).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from .counters import payload_size

__all__ = ["FrameLogger", "log_frame"]

_NAMES = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}
#: Characters (text) or bytes (others) of a payload shown.
PREVIEW = 40


class FrameLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that starts every line with ``connection N:``."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        assert self.extra is not None
        return f"connection {self.extra['connection']}: {msg}", kwargs


def log_frame(
    logger: Any, direction: str, opcode: int, fin: bool, rsv1: bool, payload: Any
) -> None:
    """Log one frame (``direction``: ``"<"`` received, ``">"`` sent) at DEBUG."""
    size = payload_size(payload)
    if opcode == 1 and not rsv1:
        text = (
            payload
            if type(payload) is str
            else bytes(payload[: PREVIEW * 4]).decode("utf-8", "replace")
        )
        preview = repr(text[:PREVIEW]) + ("…" if len(text) > PREVIEW else "")
    elif type(payload) is str:
        preview = repr(payload[:PREVIEW]) + ("…" if len(payload) > PREVIEW else "")
    else:
        preview = repr(bytes(payload[:PREVIEW])) + ("…" if size > PREVIEW else "")
    logger.debug(
        "%s %s%s%s, %d bytes: %s",
        direction,
        _NAMES.get(opcode, str(opcode)),
        " fin" if fin else "",
        " compressed" if rsv1 else "",
        size,
        preview,
    )
