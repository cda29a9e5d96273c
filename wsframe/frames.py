"""Frame-level constants and rules shared by both codecs (RFC 6455 §5)."""

from __future__ import annotations

import enum

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "DEFAULT_MAX_FRAME_SIZE",
    "MAX_CONTROL_PAYLOAD",
    "CloseCode",
    "Opcode",
]


class Opcode(enum.IntEnum):
    """Frame opcodes defined by RFC 6455 §5.2."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


DATA_OPCODES = frozenset({Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})

#: Control frames carry at most this many payload bytes (RFC 6455 §5.5).
MAX_CONTROL_PAYLOAD = 125

#: Default ``max_frame_size`` of :class:`wsframe.FrameDecoder`: 1 MiB.
DEFAULT_MAX_FRAME_SIZE = 1 << 20
