"""wsframe: a fast, correct WebSocket (RFC 6455 + RFC 7692) frame codec.

The hot paths (masking, frame decoding and encoding, UTF-8 validation) run in
C when the extension is built; a pure-Python twin with the same API and
byte-identical results is used otherwise (or with ``WSFRAME_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

from ._version import __version__
from .codec import (
    SIMD_PATH,
    Frame,
    FrameDecoder,
    Utf8Validator,
    apply_mask,
    encode_frame,
    encode_frame_header,
    implementation,
    mask_inplace,
    validate_utf8,
)
from .connection import ClientConnection, ServerConnection, State
from .errors import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidProxy,
    InvalidState,
    MessageTooBig,
    ProtocolError,
    WebSocketError,
)
from .frames import CloseCode, Opcode

__all__ = [
    "SIMD_PATH",
    "ClientConnection",
    "CloseCode",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Frame",
    "FrameDecoder",
    "InvalidHandshake",
    "InvalidProxy",
    "InvalidState",
    "MessageTooBig",
    "Opcode",
    "ProtocolError",
    "ServerConnection",
    "State",
    "Utf8Validator",
    "WebSocketError",
    "__version__",
    "apply_mask",
    "encode_frame",
    "encode_frame_header",
    "implementation",
    "mask_inplace",
    "validate_utf8",
]
