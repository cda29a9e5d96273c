"""Message assembly: frames of one message in, the message out.

This file is the pure-Python implementation and also the source of the
compiled one: the build compiles it with Cython, typed by
``_assembler_c.pxd``, as ``wsframe._assembler_c``. Both behave identically;
:mod:`wsframe.connection` picks one as the codec is picked.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any, Optional, Union

from .codec import Utf8Validator
from .errors import MessageTooBig, ProtocolError
from .events import BinaryFragment, TextFragment

if TYPE_CHECKING:
    from .deflate import PerMessageDeflate

__all__ = ["MessageAssembler"]

# Pieces of a fragmented message kept apart before they are folded together.
_MAX_CHUNKS = 32
_OP_CONT, _OP_TEXT = 0, 1


def invalid_utf8() -> ProtocolError:
    """The error of a text message that is not UTF-8 (close code 1007)."""
    return ProtocolError("invalid UTF-8 in a text message", 1007)


class MessageAssembler:
    """Reassembles the frames of a message: inflate, size limit, UTF-8, fragments.

    :meth:`begin` starts a message with the opcode and RSV1 bit of its first
    frame; :meth:`add` takes each frame's payload, the first one included.
    Each frame's payload is inflated when the message is compressed
    (``deflate``), counted against ``max_message_size`` (None: no limit) and,
    for text, validated as UTF-8 as it arrives. Without ``fragments``, the
    complete message (``str`` or ``bytes``) comes out of the call that adds
    its last frame; with ``fragments``, every frame comes out at once as a
    :class:`~wsframe.events.TextFragment` or
    :class:`~wsframe.events.BinaryFragment`. A violation raises
    :class:`~wsframe.errors.ProtocolError` (1007 for invalid UTF-8, 1009
    through :class:`~wsframe.errors.MessageTooBig` for the size).

    :meth:`check_arriving` checks a frame whose payload is still arriving: a
    continuation that would take an uncompressed message past the limit is
    refused from its header, and invalid text fails fast.
    """

    __slots__ = (
        "_chunks",
        "_compressed",
        "_decoder",
        "_size",
        "_utf8",
        "deflate",
        "fragments",
        "max_message_size",
        "opcode",
        "validated",
    )

    def __init__(self, max_message_size: Optional[int], fragments: bool) -> None:
        #: The largest message accepted (inflated), or None.
        self.max_message_size = max_message_size
        #: Whether messages come out frame by frame.
        self.fragments = fragments
        #: The permessage-deflate engine that inflates compressed messages.
        self.deflate: Optional[PerMessageDeflate] = None
        #: The opcode of the message in progress (1 text, 2 binary), 0 if none.
        self.opcode = 0
        #: Bytes of the frame in progress already validated by
        #: :meth:`check_arriving` (0 if none).
        self.validated = 0
        self._compressed = False
        self._chunks: list[Any] = []
        self._size = 0
        self._utf8 = Utf8Validator()
        self._decoder: Optional[codecs.IncrementalDecoder] = None

    def begin(self, opcode: int, compressed: bool) -> None:
        """Start a message: ``opcode`` (1 text, 2 binary) and RSV1 of its first frame."""
        self.opcode = opcode
        self._compressed = compressed
        self._size = 0

    def add(self, payload: Any, fin: bool) -> Union[str, bytes, TextFragment, BinaryFragment, None]:
        """Add the payload of the message's next frame; ``fin`` marks the last one.

        Returns the complete message after its last frame (without
        ``fragments``), a fragment event for every frame (with
        ``fragments``), else None.
        """
        data = payload
        if self._compressed:
            deflate = self.deflate
            assert deflate is not None
            data = deflate.decompress(data, fin)
        self._size += len(data)
        limit = self.max_message_size
        if limit is not None and self._size > limit:
            raise MessageTooBig(f"message of more than {limit} bytes")
        text = self.opcode == _OP_TEXT
        if text:
            checked = self.validated
            if checked:
                self.validated = 0
                valid = self._utf8.feed(memoryview(data)[checked:], fin)
            else:
                valid = self._utf8.feed(data, fin)
            if not valid:
                raise invalid_utf8()
        result: Union[str, bytes, TextFragment, BinaryFragment, None] = None
        if self.fragments:
            if text:
                if self._decoder is None:
                    self._decoder = codecs.getincrementaldecoder("utf-8")()
                result = TextFragment(self._decoder.decode(data, fin), fin)
            else:
                result = BinaryFragment(bytes(data), fin)
        else:
            self._append(data)
            if fin:
                message = b"".join(self._chunks)
                result = message.decode() if text else message
        if fin:
            self.reset()
        return result

    def _append(self, data: Any) -> None:
        chunks = self._chunks
        if not data:
            return
        chunks.append(data)
        if len(chunks) > _MAX_CHUNKS:
            # A message in many small frames: fold them into one buffer so
            # that memory stays near the message size, not a bytes object
            # (and a list slot) per frame.
            head = chunks[0]
            if not isinstance(head, bytearray):
                head = bytearray(head)
            for chunk in chunks[1:]:
                head += chunk
            self._chunks = [head]

    def check_arriving(
        self, opcode: int, rsv1: bool, received: int, length: int, payload: Any
    ) -> None:
        """Check a frame still arriving: ``received`` of its ``length`` bytes so far.

        A continuation of an uncompressed message that would take it past
        ``max_message_size`` raises :class:`~wsframe.errors.MessageTooBig`
        (1009) at once, from the frame's header, whatever its content: the
        same error, whether the frame arrives whole or in pieces.

        Then the UTF-8 of text is validated as it arrives: the first frame of
        an uncompressed text message, or a continuation of one.
        ``payload(start)`` returns the bytes received from offset ``start``
        (the frame decoder's ``partial_payload``). Raises
        :class:`~wsframe.errors.ProtocolError` (1007) as soon as the text can
        no longer be valid.
        """
        if opcode == _OP_CONT and self.opcode and not self._compressed:
            limit = self.max_message_size
            if limit is not None and self._size + length > limit:
                raise MessageTooBig(f"message of more than {limit} bytes")
        if rsv1 or received <= self.validated:
            return
        if opcode == _OP_TEXT:
            if self.opcode:
                return  # a protocol error, reported when the frame completes
        elif opcode != _OP_CONT or self.opcode != _OP_TEXT or self._compressed:
            return
        if not self._utf8.feed(payload(self.validated)):
            raise invalid_utf8()
        self.validated = received

    def reset(self) -> None:
        """Forget the message in progress (after its last frame, or a failure)."""
        self.opcode = 0
        self._compressed = False
        self._chunks = []
        self._size = 0
        self._decoder = None
        self.validated = 0
        self._utf8.reset()
