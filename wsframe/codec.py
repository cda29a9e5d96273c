"""Chooses the frame codec: the C extension unless it is missing or disabled.

Set ``WSFRAME_NO_EXTENSIONS=1`` to use the pure-Python codec even when the C
extension is installed. On PyPy the pure-Python codec is the default (its JIT
runs it faster than the extension through cpyext); ``WSFRAME_USE_CEXT=1`` asks
for the extension there. ``implementation`` says which one is in use; the
other compiled modules (assembler, connection, driver) follow the same choice
(see ``wsframe._implementation``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

from . import _implementation

if TYPE_CHECKING:
    from . import _codec_py as _impl
else:
    _impl = _implementation.load("_codec")

#: True on PyPy, where the pure-Python twins are the default.
IS_PYPY: bool = _implementation.IS_PYPY

#: ``"c"`` when the compiled codec is in use, ``"python"`` otherwise.
implementation: Literal["c", "python"] = "c" if _implementation.use_c else "python"

apply_mask = _impl.apply_mask
mask_inplace = _impl.mask_inplace
encode_frame = _impl.encode_frame
encode_frame_header = _impl.encode_frame_header
FrameDecoder = _impl.FrameDecoder
Frame = _impl.Frame
Utf8Validator = _impl.Utf8Validator
validate_utf8 = _impl.validate_utf8
SIMD_PATH: str = _impl.SIMD_PATH
#: How the codec in use was built (compiler, flags, ...; all None in pure Python).
BUILD_INFO: dict[str, Optional[str]] = _impl.BUILD_INFO

__all__ = [
    "BUILD_INFO",
    "SIMD_PATH",
    "Frame",
    "FrameDecoder",
    "Utf8Validator",
    "apply_mask",
    "encode_frame",
    "encode_frame_header",
    "implementation",
    "mask_inplace",
    "validate_utf8",
]
