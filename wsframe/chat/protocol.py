"""The chat's JSON message protocol: validation of what clients send, encoding of replies.

Every message is one JSON object in a text frame, with a ``"type"`` field.
:func:`parse` turns a client's raw message into a :class:`Command` or raises
:class:`ProtocolViolation`, whose ``code`` and ``message`` become the
``{"type": "error", ...}`` answer. The full description is in
``docs/chat-protocol.md``.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple, Optional, Union

__all__ = [
    "CLIENT_TYPES",
    "MAX_MESSAGE_BYTES",
    "MAX_NICK_LENGTH",
    "MAX_ROOM_LENGTH",
    "MAX_TEXT_LENGTH",
    "Command",
    "ProtocolViolation",
    "encode",
    "error",
    "parse",
    "valid_name",
]

#: Longest accepted JSON message, in bytes (UTF-8). Larger ones get a
#: ``too_big`` error; the server closes the connection (1009) on frames over
#: twice this size before they are even read.
MAX_MESSAGE_BYTES = 8 * 1024
#: Longest chat or direct message text, in characters.
MAX_TEXT_LENGTH = 2000
MAX_NICK_LENGTH = 24
MAX_ROOM_LENGTH = 32

# Letters and digits of any script, ``_``, ``-`` and ``.``; no spaces, no markup.
_NAME_RE = re.compile(r"[^\W][\w.-]*")

#: Message types a client may send, with their required string fields.
CLIENT_TYPES: dict[str, tuple[str, ...]] = {
    "hello": ("nick",),
    "join": ("room",),
    "leave": ("room",),
    "rooms": (),
    "message": ("room", "text"),
    "dm": ("to", "text"),
    "typing": ("room",),
    "ping": (),
}


class ProtocolViolation(Exception):
    """A client's message that is refused; becomes a ``{"type": "error"}`` answer."""

    def __init__(self, code: str, message: str, ref: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


#: A client message's fields, validated by :func:`parse`: ``str`` values, and
#: None or an ``int`` only where the protocol allows (``token``, ``id``).
Fields = dict[str, Any]


class Command(NamedTuple):
    """A valid client message: its ``type`` and its (validated) fields."""

    type: str
    fields: Fields


def valid_name(name: str, max_length: int) -> bool:
    """Whether ``name`` is a valid nickname or room name (1..max_length characters)."""
    return 0 < len(name) <= max_length and _NAME_RE.fullmatch(name) is not None


def _text(value: str, kind: str, ref: str) -> str:
    text = value.strip()
    if not text:
        raise ProtocolViolation("invalid_field", f"{kind} is empty", ref)
    if len(text) > MAX_TEXT_LENGTH:
        raise ProtocolViolation(
            "too_long", f"{kind} is longer than {MAX_TEXT_LENGTH} characters", ref
        )
    return text


def parse(raw: Union[str, bytes]) -> Command:
    """Validate one raw client message; raise :class:`ProtocolViolation` if it is refused."""
    if not isinstance(raw, str):
        raise ProtocolViolation("binary", "binary messages are not supported; send JSON text")
    if len(raw) > MAX_MESSAGE_BYTES or len(raw.encode("utf-8", "surrogatepass")) > (
        MAX_MESSAGE_BYTES
    ):
        raise ProtocolViolation("too_big", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ProtocolViolation("bad_json", f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolViolation("bad_json", "a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolViolation("invalid_field", "missing or non-string field 'type'")
    required = CLIENT_TYPES.get(kind)
    if required is None:
        raise ProtocolViolation("unknown_type", f"unknown message type {kind[:40]!r}", kind[:40])
    fields: Fields = {}
    for name in required:
        value = data.get(name)
        if not isinstance(value, str):
            raise ProtocolViolation(
                "invalid_field", f"field {name!r} is missing or not a string", kind
            )
        fields[name] = value
    if "nick" in fields and not valid_name(fields["nick"], MAX_NICK_LENGTH):
        raise ProtocolViolation(
            "invalid_nick",
            f"a nickname is 1-{MAX_NICK_LENGTH} letters, digits, '_', '-' or '.'",
            kind,
        )
    if "to" in fields and not valid_name(fields["to"], MAX_NICK_LENGTH):
        raise ProtocolViolation("invalid_field", "field 'to' is not a valid nickname", kind)
    if "room" in fields and not valid_name(fields["room"], MAX_ROOM_LENGTH):
        raise ProtocolViolation(
            "invalid_room",
            f"a room name is 1-{MAX_ROOM_LENGTH} letters, digits, '_', '-' or '.'",
            kind,
        )
    if "text" in fields:
        fields["text"] = _text(fields["text"], "text", kind)
    if kind == "hello":
        token = data.get("token")
        fields["token"] = token if isinstance(token, str) and len(token) <= 64 else None
    elif kind == "ping":
        ping_id = data.get("id")
        ok = isinstance(ping_id, (int, str)) and len(str(ping_id)) <= 64
        fields["id"] = ping_id if ok else None
    return Command(kind, fields)


def encode(kind: str, **fields: Any) -> str:
    """Serialise one server message (compact JSON, non-ASCII kept as is)."""
    return json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


def error(code: str, message: str, ref: Optional[str] = None) -> str:
    """The ``{"type": "error"}`` message for ``code`` (see the protocol document)."""
    if ref is None:
        return encode("error", code=code, message=message)
    return encode("error", code=code, message=message, ref=ref)
