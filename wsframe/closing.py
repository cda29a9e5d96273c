"""The rules of close frames (RFC 6455 §5.5.1, §7.1.5, §7.4).

Pure functions, no state: which codes may travel in a close frame, how a
close payload is built and checked when sending, how a received one is
parsed, and how an error becomes a close reason. The state of the closing
handshake itself (who closed, what was sent and received) belongs to the
:class:`~wsframe.connection.Connection`.
"""

from __future__ import annotations

from typing import Optional

from .errors import ProtocolError

__all__ = [
    "MAX_CLOSE_REASON",
    "close_payload",
    "failure_reason",
    "is_valid_close_code",
    "parse_close",
]

#: Bytes of UTF-8 a close reason may hold: 125 bytes of control payload
#: minus the 2-byte code.
MAX_CLOSE_REASON = 123


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire (RFC 6455 §7.4)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_payload(code: Optional[int], reason: str = "") -> bytes:
    """The payload of a close frame we send; :class:`ValueError` if it may not be sent.

    ``code`` must be one a close frame may carry (1000-1003, 1007-1014,
    3000-4999), or None for a close frame without a code (and then without
    a reason); ``reason`` at most 123 bytes of UTF-8.
    """
    if code is None:
        if reason:
            raise ValueError("a close frame without a code cannot carry a reason")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} cannot be sent in a close frame")
    encoded = reason.encode()
    if len(encoded) > MAX_CLOSE_REASON:
        raise ValueError(f"close reason must be at most {MAX_CLOSE_REASON} bytes of UTF-8")
    return code.to_bytes(2, "big") + encoded


def parse_close(payload: bytes) -> tuple[Optional[int], str]:
    """``(code, reason)`` of a received close frame (code None: the frame had none).

    Raises :class:`~wsframe.errors.ProtocolError`: 1002 for a 1-byte payload
    or a code that may not be sent, 1007 for a reason that is not UTF-8.
    """
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError("invalid UTF-8 in a close reason", 1007) from None
    return code, reason


def failure_reason(error: BaseException) -> str:
    """``str(error)`` cut to what a close frame's reason can hold (whole characters)."""
    return str(error).encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
