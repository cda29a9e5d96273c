"""Types of the compiled codec ``wsframe._codec_c`` (built from ``_codec_c.pyx``).

The module exports the same names as :mod:`wsframe._codec_py`; the behaviour
both follow is ``docs/codec.md``. Checked against the built module by
``python -m mypy.stubtest wsframe._codec_c``.
"""

from typing import Optional, SupportsIndex, Union, final

from typing_extensions import Buffer, disjoint_base

SIMD_PATH: str
BUILD_INFO: dict[str, Optional[str]]

def apply_mask(data: Buffer, key: Buffer, phase: SupportsIndex = 0) -> bytes: ...
def mask_inplace(buffer: Buffer, key: Buffer, phase: SupportsIndex = 0) -> int: ...
def encode_frame(
    opcode: SupportsIndex,
    payload: Union[Buffer, str],
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: Optional[Buffer] = None,
) -> bytes: ...
def encode_frame_header(
    opcode: SupportsIndex,
    length: SupportsIndex,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: Optional[Buffer] = None,
) -> bytes: ...

@final
class Frame:
    """One WebSocket frame: ``opcode``, ``payload`` (unmasked bytes) and flags."""

    def __init__(
        self,
        opcode: SupportsIndex,
        payload: Buffer = b"",
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None: ...
    @property
    def opcode(self) -> int: ...
    @property
    def fin(self) -> bool: ...
    @property
    def rsv1(self) -> bool: ...
    @property
    def rsv2(self) -> bool: ...
    @property
    def rsv3(self) -> bool: ...
    @property
    def payload(self) -> bytes: ...
    def _key(self) -> tuple[int, bool, bool, bool, bool, bytes]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(
        self,
    ) -> tuple[type[Frame], tuple[int, bytes, bool, bool, bool, bool]]: ...

@disjoint_base
class FrameDecoder:
    """Incremental frame decoder for one direction of one connection.

    Not thread-safe: one decoder belongs to one connection and is fed by one
    thread at a time.
    """

    def __init__(
        self,
        role: str,
        *,
        max_frame_size: Optional[SupportsIndex] = 1048576,
        allow_rsv1: bool = False,
    ) -> None: ...
    @property
    def role(self) -> str: ...
    @property
    def max_frame_size(self) -> int: ...
    @property
    def allow_rsv1(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    @property
    def partial(self) -> Optional[tuple[int, bool, int]]: ...
    @property
    def partial_length(self) -> Optional[int]: ...
    def partial_payload(self, start: SupportsIndex = 0) -> bytes: ...
    def feed(self, data: Buffer, size: Optional[SupportsIndex] = None) -> list[Frame]: ...

@disjoint_base
class Utf8Validator:
    """Incremental, fail-fast UTF-8 validation across the frames of a message."""

    def __init__(self) -> None: ...
    def feed(self, data: Buffer, final: bool = False) -> bool: ...
    def reset(self) -> None: ...

def validate_utf8(data: Buffer) -> bool: ...
