"""Message assembly: the frames of a message in, the message out.

:class:`MessageAssembler` reassembles fragmented and compressed messages for
the connection: inflation, the message size limit, fail-fast UTF-8
validation and delivery fragment by fragment. It is compiled like the codec,
with a pure-Python twin (``wsframe._assembler_py``) selected by
``WSFRAME_NO_EXTENSIONS=1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _implementation

if TYPE_CHECKING:
    from ._assembler_py import MessageAssembler, invalid_utf8
else:
    _impl = _implementation.load("_assembler")
    MessageAssembler = _impl.MessageAssembler
    invalid_utf8 = _impl.invalid_utf8

__all__ = ["MessageAssembler", "invalid_utf8"]
