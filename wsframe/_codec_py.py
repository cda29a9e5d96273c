"""The frame codec in pure Python: the twin of :mod:`wsframe._codec_c`.

Same names, same results, same exceptions and messages as the C module, as
specified in ``docs/codec.md``. Used when the C extension is not built or when
``WSFRAME_NO_EXTENSIONS=1``.

Speed notes: masking XORs two big integers (``int.from_bytes`` /
``int.to_bytes`` are linear and run in C inside CPython), except on PyPy,
where a plain loop over a ``bytearray`` is what the JIT compiles best (several
times faster there than the big integers, far slower on CPython); the decoder
keeps a read offset into its buffer and compacts it rarely, and UTF-8
validation leans on the interpreter's own incremental UTF-8 decoder.
"""

from __future__ import annotations

import codecs
import operator
import platform
import threading
from typing import Any, Optional, Union

from .errors import MessageTooBig, ProtocolError
from .frames import DEFAULT_MAX_FRAME_SIZE

__all__ = [
    "BUILD_INFO",
    "SIMD_PATH",
    "Frame",
    "FrameDecoder",
    "Utf8Validator",
    "apply_mask",
    "encode_frame",
    "encode_frame_header",
    "mask_inplace",
    "validate_utf8",
]

#: The masking kernel in use: always ``"python"`` here.
SIMD_PATH: str = "python"

#: How the codec was built: the same keys as ``wsframe._codec_c.BUILD_INFO``,
#: all None here (nothing is compiled).
BUILD_INFO: dict[str, Optional[str]] = {
    "compiler": None,
    "cc": None,
    "cflags": None,
    "cython": None,
    "kernels": None,
}

_MAX_SIZE = (1 << 63) - 1
_index = operator.index
_from_bytes = int.from_bytes
_setattr = object.__setattr__
_utf8_decode = codecs.utf_8_decode
_Utf8IncrementalDecoder = codecs.getincrementaldecoder("utf-8")

# Opcodes: 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong.
_VALID_OPCODES = frozenset((0, 1, 2, 8, 9, 10))
_RESERVED_OPCODES = frozenset((3, 4, 5, 6, 7, 11, 12, 13, 14, 15))

# Compact the decoder's buffer once the consumed prefix is at least this large
# and at least half of the buffer.
_COMPACT_THRESHOLD = 4096


# --------------------------------------------------------------------------
# Buffers


def _prefix(mv: memoryview, size: Any) -> memoryview:
    """The first ``size`` bytes of ``mv`` (``ValueError`` outside 0..len)."""
    n = _index(size)
    length = mv.nbytes
    if not 0 <= n <= length:
        mv.release()
        raise ValueError(f"size must be from 0 to {length}, not {n}")
    return mv[:n]


def _view(obj: Any, name: str) -> memoryview:
    """Return a flat unsigned-byte view of ``obj``'s memory.

    Raises the contract's ``TypeError`` for non-buffers and non-C-contiguous
    buffers. The caller owns (and should release) the returned view.
    """
    try:
        mv = memoryview(obj)
    except TypeError:
        raise TypeError(f"{name} must be a bytes-like object, not '{type(obj).__name__}'") from None
    return _flat(mv, name)


def _flat(mv: memoryview, name: str) -> memoryview:
    """Check that ``mv`` is C-contiguous and return it as 1-D unsigned bytes."""
    if mv.format == "B" and mv.ndim == 1:
        if mv.c_contiguous:
            return mv
        mv.release()
        raise TypeError(f"{name} must be a C-contiguous buffer")
    if not mv.c_contiguous:
        mv.release()
        raise TypeError(f"{name} must be a C-contiguous buffer")
    if mv.nbytes == 0:
        # memoryview.cast refuses shapes containing zeros.
        readonly = mv.readonly
        mv.release()
        return memoryview(b"") if readonly else memoryview(bytearray())
    flat = mv.cast("B")
    mv.release()
    return flat


def _key(obj: Any, name: str) -> bytes:
    """Return a 4-byte masking key as ``bytes`` (contract checks and messages)."""
    if type(obj) is bytes:
        if len(obj) != 4:
            raise ValueError(f"{name} must be 4 bytes, not {len(obj)}")
        return obj
    mv = _view(obj, name)
    try:
        n = mv.nbytes
        if n != 4:
            raise ValueError(f"{name} must be 4 bytes, not {n}")
        return mv.tobytes()
    finally:
        mv.release()


def _phase(phase: Any) -> int:
    value = _index(phase)
    if value < 0 or value > 3:
        raise ValueError(f"phase must be 0, 1, 2 or 3, not {value}")
    return value


def _xor_bigint(data: Any, n: int, key: bytes) -> bytes:
    """``data`` (``n`` bytes, any buffer) XOR ``key`` repeated; key phase 0."""
    if n == 0:
        return b""
    stream = key * ((n >> 2) + 1)
    if len(stream) != n:
        stream = stream[:n]
    return (_from_bytes(data, "little") ^ _from_bytes(stream, "little")).to_bytes(n, "little")


def _xor_loop(out: bytearray, n: int, key: bytes) -> None:
    """XOR the first ``n`` bytes of ``out`` in place with ``key`` repeated; key phase 0.

    A loop over a ``bytearray`` (not a memoryview: PyPy's JIT compiles
    ``bytearray`` indexing into plain loads and stores, memoryview indexing it
    does not).
    """
    k0, k1, k2, k3 = key
    end = n & ~3
    i = 0
    while i < end:
        out[i] ^= k0
        out[i + 1] ^= k1
        out[i + 2] ^= k2
        out[i + 3] ^= k3
        i += 4
    while i < n:
        out[i] ^= key[i & 3]
        i += 1


def _xor_bytearray(data: Any, n: int, key: bytes) -> bytes:
    """The same result as :func:`_xor_bigint`, through :func:`_xor_loop` (for PyPy)."""
    if n == 0:
        return b""
    out = bytearray(data)
    _xor_loop(out, n, key)
    return bytes(out)


#: PyPy's JIT runs the bytearray loop 4-8 times faster than big-integer XOR
#: (whose conversions are slower there than in CPython); CPython runs the
#: big integers in C and the loop in the interpreter, so each keeps its own.
_ON_PYPY = platform.python_implementation() == "PyPy"
_xor = _xor_bytearray if _ON_PYPY else _xor_bigint


def apply_mask(data: Any, key: Any, phase: int = 0) -> bytes:
    """Return ``data`` XOR ``key``, starting at ``key[phase]``.

    ``out[i] = data[i] ^ key[(phase + i) % 4]``. ``data`` and ``key`` are any
    C-contiguous buffers; ``key`` must be 4 bytes and ``phase`` 0-3.
    """
    mv = _view(data, "data")
    try:
        k = _key(key, "key")
        p = _phase(phase)
        if p:
            k = k[p:] + k[:p]
        return _xor(mv, mv.nbytes, k)
    finally:
        mv.release()


def mask_inplace(buffer: Any, key: Any, phase: int = 0) -> int:
    """XOR the writable ``buffer`` in place with ``key`` from ``key[phase]``.

    Returns the phase to pass to the next call for the following bytes,
    ``(phase + len(buffer)) % 4``, so that a payload split over several reads
    can be (un)masked piece by piece.
    """
    mv = _view(buffer, "buffer")
    try:
        if mv.readonly:
            raise TypeError("buffer must be writable")
        k = _key(key, "key")
        p = _phase(phase)
        n = mv.nbytes
        if n:
            if p:
                k = k[p:] + k[:p]
            if _ON_PYPY and type(buffer) is bytearray:
                _xor_loop(buffer, n, k)  # in place, no copy
            else:
                mv[:] = _xor(mv, n, k)
        return (p + n) & 3
    finally:
        mv.release()


# --------------------------------------------------------------------------
# Encoding


def _opcode(opcode: Any) -> int:
    op: int = _index(opcode)
    if op not in _VALID_OPCODES:
        raise ValueError(f"invalid opcode {op}")
    return op


def _check_control(op: int, fin: Any, n: int) -> None:
    if op >= 8:
        if not fin:
            raise ValueError("control frames cannot be fragmented")
        if n > 125:
            raise ValueError(f"control frame payload must be at most 125 bytes, not {n}")


def _header(
    op: int, n: int, fin: Any, rsv1: Any, rsv2: Any, rsv3: Any, key: Optional[bytes]
) -> bytes:
    """A frame header for an ``n``-byte payload, ending with ``key`` if given."""
    b0 = op | (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    b0 |= 0x10 if rsv3 else 0
    mask_bit = 0x80 if key is not None else 0
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 65536:
        header = bytes((b0, mask_bit | 126, n >> 8, n & 0xFF))
    else:
        header = bytes((b0, mask_bit | 127)) + n.to_bytes(8, "big")
    return header if key is None else header + key


def encode_frame(
    opcode: int,
    payload: Any,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: Optional[Any] = None,
) -> bytes:
    """Encode one whole frame (RFC 6455 §5.2) and return it as ``bytes``.

    ``payload`` is any C-contiguous buffer or a ``str`` (encoded as UTF-8).
    With ``mask`` (a 4-byte key) the frame is masked with it, otherwise it is
    sent unmasked. RSV bits are written as given.
    """
    op = _opcode(opcode)
    if isinstance(payload, str):
        data: Union[bytes, memoryview] = payload.encode("utf-8")
        n = len(data)
        mv = None
    else:
        try:
            mv = memoryview(payload)
        except TypeError:
            raise TypeError(
                f"payload must be a bytes-like object or str, not '{type(payload).__name__}'"
            ) from None
        mv = _flat(mv, "payload")
        data = mv
        n = mv.nbytes
    try:
        _check_control(op, fin, n)
        if mask is None:
            return _header(op, n, fin, rsv1, rsv2, rsv3, None) + data
        k = _key(mask, "mask")
        return _header(op, n, fin, rsv1, rsv2, rsv3, k) + _xor(data, n, k)
    finally:
        if mv is not None:
            mv.release()


def encode_frame_header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: Optional[Any] = None,
) -> bytes:
    """Encode only the header of a frame whose ``length``-byte payload is sent apart.

    For zero-copy sends of large payloads: write the header and the payload
    one after the other (``transport.writelines([header, payload])``). With
    ``mask`` the header ends with the key and the caller sends the payload
    masked with it (``apply_mask(payload, mask)``).
    """
    op = _opcode(opcode)
    n = _index(length)
    if n < 0 or n > _MAX_SIZE:
        raise ValueError(f"length must be between 0 and 2**63 - 1, not {n}")
    _check_control(op, fin, n)
    return _header(op, n, fin, rsv1, rsv2, rsv3, None if mask is None else _key(mask, "mask"))


# --------------------------------------------------------------------------
# Frames


class Frame:
    """A decoded frame: immutable, compared and hashed by value.

    Attributes: ``opcode`` (int), ``payload`` (bytes, unmasked), ``fin``,
    ``rsv1``, ``rsv2``, ``rsv3`` (bool).
    """

    __slots__ = ("fin", "opcode", "payload", "rsv1", "rsv2", "rsv3")

    opcode: int
    payload: bytes
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool

    def __init__(
        self,
        opcode: int,
        payload: Any = b"",
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None:
        if type(payload) is not bytes:
            mv = _view(payload, "payload")
            try:
                payload = mv.tobytes()
            finally:
                mv.release()
        value = int(_index(opcode))
        if value < 0 or value > 15:
            raise ValueError(f"invalid opcode {value}")
        _setattr(self, "opcode", value)
        _setattr(self, "payload", payload)
        _setattr(self, "fin", bool(fin))
        _setattr(self, "rsv1", bool(rsv1))
        _setattr(self, "rsv2", bool(rsv2))
        _setattr(self, "rsv3", bool(rsv3))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"'Frame' object attribute '{name}' is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"'Frame' object attribute '{name}' is read-only")

    def _key(self) -> tuple[int, bool, bool, bool, bool, bytes]:
        return (self.opcode, self.fin, self.rsv1, self.rsv2, self.rsv3, self.payload)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.opcode == other.opcode
            and self.fin == other.fin
            and self.rsv1 == other.rsv1
            and self.rsv2 == other.rsv2
            and self.rsv3 == other.rsv3
            and self.payload == other.payload
        )

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        if result is NotImplemented:
            return result  # type: ignore[no-any-return]  # NotImplemented, typed as Any
        return not result

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Frame(opcode={self.opcode}, fin={self.fin}, rsv1={self.rsv1}, "
            f"rsv2={self.rsv2}, rsv3={self.rsv3}, payload=<{len(self.payload)} bytes>)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (Frame, (self.opcode, self.payload, self.fin, self.rsv1, self.rsv2, self.rsv3))


_frame_new = Frame.__new__
# The slot descriptors set attributes without going through Frame.__setattr__.
_set_opcode = Frame.__dict__["opcode"].__set__
_set_payload = Frame.__dict__["payload"].__set__
_set_fin = Frame.__dict__["fin"].__set__
_set_rsv1 = Frame.__dict__["rsv1"].__set__
_set_rsv2 = Frame.__dict__["rsv2"].__set__
_set_rsv3 = Frame.__dict__["rsv3"].__set__


def _new_frame(opcode: int, payload: bytes, fin: bool, rsv1: bool) -> Frame:
    """Build a decoded :class:`Frame` from already-normalised values (fast path)."""
    frame = _frame_new(Frame)
    _set_opcode(frame, opcode)
    _set_payload(frame, payload)
    _set_fin(frame, fin)
    _set_rsv1(frame, rsv1)
    _set_rsv2(frame, False)
    _set_rsv3(frame, False)
    return frame


# --------------------------------------------------------------------------
# Decoding


class _DecodeError(Exception):
    """Internal: a protocol violation met while parsing (class and message)."""

    def __init__(self, cls: type[ProtocolError], message: str) -> None:
        super().__init__(message)
        self.cls = cls
        self.message = message


class FrameDecoder:
    """Incremental frame decoder (RFC 6455 §5.2).

    ``role="server"`` decodes frames sent by a client (they must be masked);
    ``role="client"`` decodes frames sent by a server (they must not be).
    Frames with a payload over ``max_frame_size`` bytes (``None``: no limit)
    are refused from their header, before the payload arrives. RSV1 is only
    allowed with ``allow_rsv1`` (e.g. permessage-deflate).
    """

    __slots__ = (
        "_allow_rsv1",
        "_buf",
        "_failed",
        "_lock",
        "_max",
        "_partial",
        "_pos",
        "_role",
        "_server",
    )

    def __init__(
        self,
        role: str,
        *,
        max_frame_size: Optional[int] = DEFAULT_MAX_FRAME_SIZE,
        allow_rsv1: bool = False,
    ) -> None:
        if type(role) is not str or role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        if max_frame_size is None:
            limit = _MAX_SIZE
        else:
            limit = int(_index(max_frame_size))
            if limit < 0:
                raise ValueError(f"max_frame_size must be >= 0, not {limit}")
        self._role: str = role
        self._server: bool = role == "server"
        self._max: int = limit
        self._allow_rsv1: bool = bool(allow_rsv1)
        self._buf = bytearray()
        self._pos = 0
        self._partial: Optional[tuple[int, int, int, int]] = None
        self._failed: Optional[tuple[type[ProtocolError], str, int]] = None
        # Serialises feed() and the partial-payload readers, as the compiled
        # decoder's critical section does (free-threaded Python: a decoder
        # fed from two threads at once stays consistent).
        self._lock = threading.Lock()

    @property
    def role(self) -> str:
        """``"server"`` or ``"client"``: the side this decoder runs on."""
        return self._role

    @property
    def max_frame_size(self) -> int:
        """The largest payload accepted, in bytes (``2**63 - 1`` for no limit)."""
        return self._max

    @property
    def allow_rsv1(self) -> bool:
        """Whether data frames may have the RSV1 bit set."""
        return self._allow_rsv1

    @property
    def partial(self) -> Optional[tuple[int, bool, int]]:
        """``(opcode, rsv1, received)`` of the frame whose payload is arriving, or None."""
        with self._lock:
            partial = self._partial
            if partial is None:
                return None
            opcode, b0, offset, _ = partial
            return (opcode, (b0 & 0x40) != 0, len(self._buf) - self._pos - offset)

    @property
    def partial_length(self) -> Optional[int]:
        """The payload length, from its header, of the frame whose payload is arriving, or None."""
        partial = self._partial
        return None if partial is None else partial[3]

    def partial_payload(self, start: int = 0) -> bytes:
        """The payload received so far of the frame in progress, unmasked, from ``start``."""
        start = _index(start)
        if start < 0:
            raise ValueError(f"start must be >= 0, not {start}")
        with self._lock:
            return self._partial_payload(start)

    def _partial_payload(self, start: int) -> bytes:
        partial = self._partial
        if partial is None:
            return b""
        _, _, offset, _ = partial
        first = self._pos + offset
        received = len(self._buf) - first
        if start >= received:
            return b""
        data = bytes(self._buf[first + start :])
        if not self._server:
            return data
        key = bytes(self._buf[first - 4 : first])
        phase = start & 3
        if phase:
            key = key[phase:] + key[:phase]
        return _xor(data, len(data), key)

    @property
    def buffered(self) -> int:
        """Bytes received and held but not yet returned as frames."""
        with self._lock:
            return len(self._buf) - self._pos

    def feed(self, data: Any, size: Optional[int] = None) -> list[Frame]:
        """Append ``data`` and return, in order, every frame now complete.

        ``size``: take only the first ``size`` bytes of ``data`` (a driver
        that reads into a reusable buffer passes it whole with the count).
        Raises :class:`~wsframe.ProtocolError` (or
        :class:`~wsframe.MessageTooBig`) on a violation; its ``frames`` holds
        the frames completed earlier in this call. The decoder then stays
        failed and every later call raises the same error with no frames.
        """
        with self._lock:
            return self._feed(data, size)

    def _feed(self, data: Any, size: Optional[int]) -> list[Frame]:
        failed = self._failed
        if failed is not None:
            raise failed[0](failed[1], failed[2])
        mv = _view(data, "data")
        if size is not None:
            mv = _prefix(mv, size)
        try:
            frames: list[Frame] = []
            buf = self._buf
            if self._pos == len(buf):
                # Nothing held: parse straight from the chunk, keep the rest.
                if self._pos:
                    buf.clear()
                    self._pos = 0
                try:
                    pos = self._parse(mv, 0, mv.nbytes, frames)
                except _DecodeError as exc:
                    self._fail(exc)
                    raise exc.cls(exc.message, None, frames) from None
                if pos < mv.nbytes:
                    buf += mv[pos:]
                return frames
            buf += mv
        finally:
            mv.release()
        view = memoryview(buf)
        try:
            pos = self._parse(view, self._pos, len(buf), frames)
        except _DecodeError as exc:
            self._fail(exc)
            raise exc.cls(exc.message, None, frames) from None
        finally:
            view.release()
        if pos == len(buf):
            buf.clear()
            self._pos = 0
        elif pos >= _COMPACT_THRESHOLD and pos >= (len(buf) >> 1):
            del buf[:pos]
            self._pos = 0
        else:
            self._pos = pos
        return frames

    def _fail(self, exc: _DecodeError) -> None:
        self._failed = (exc.cls, exc.message, exc.cls.default_close_code)
        self._buf = bytearray()
        self._pos = 0
        self._partial = None

    def _parse(self, b: memoryview, pos: int, end: int, frames: list[Frame]) -> int:
        """Parse complete frames from ``b[pos:end]``; return the new position.

        Sets ``_partial`` to ``(opcode, first header byte, payload offset from
        the frame's start, length)`` when it stops at a frame whose header is
        complete but whose payload is not (the frame then starts at ``_pos``).
        """
        self._partial = None
        server = self._server
        allow_rsv1 = self._allow_rsv1
        limit = self._max
        append = frames.append
        while end - pos >= 2:
            b0 = b[pos]
            b1 = b[pos + 1]
            opcode = b0 & 0x0F
            # Rules 1-6: as soon as the first two bytes are available.
            if opcode in _RESERVED_OPCODES:
                raise _DecodeError(ProtocolError, f"reserved opcode {opcode:#x}")
            if b0 & 0x70:
                if b0 & 0x20:
                    raise _DecodeError(
                        ProtocolError, "RSV2 bit set without an extension that defines it"
                    )
                if b0 & 0x10:
                    raise _DecodeError(
                        ProtocolError, "RSV3 bit set without an extension that defines it"
                    )
                if not allow_rsv1:
                    raise _DecodeError(
                        ProtocolError, "RSV1 bit set without an extension that defines it"
                    )
                if opcode >= 8:
                    raise _DecodeError(ProtocolError, "RSV1 bit set on a control frame")
                if opcode == 0:
                    raise _DecodeError(ProtocolError, "RSV1 bit set on a continuation frame")
            length = b1 & 0x7F
            if opcode >= 8:
                if not b0 & 0x80:
                    raise _DecodeError(ProtocolError, "fragmented control frame")
                if length > 125:
                    raise _DecodeError(ProtocolError, "control frame payload too long")
            masked = b1 & 0x80
            if server:
                if not masked:
                    raise _DecodeError(ProtocolError, "unmasked frame from client")
            elif masked:
                raise _DecodeError(ProtocolError, "masked frame from server")
            # Rules 7-9: as soon as the extended length is available.
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length = (b[start] << 8) | b[start + 1]
                start += 2
                if length < 126:
                    raise _DecodeError(ProtocolError, "payload length not minimally encoded")
            elif length == 127:
                if end - start < 8:
                    break
                length = _from_bytes(b[start : start + 8], "big")
                start += 8
                if length >> 63:
                    raise _DecodeError(
                        ProtocolError, "payload length has the most significant bit set"
                    )
                if length < 65536:
                    raise _DecodeError(ProtocolError, "payload length not minimally encoded")
            if length > limit:
                raise _DecodeError(
                    MessageTooBig,
                    f"frame payload of {length} bytes exceeds max_frame_size of {limit}",
                )
            if masked:
                stop = start + 4 + length
                if stop > end:
                    if end >= start + 4:  # the key is here: the payload is arriving
                        self._partial = (opcode, b0, start + 4 - pos, length)
                    break
                payload = _xor(b[start + 4 : stop], length, b[start : start + 4].tobytes())
            else:
                stop = start + length
                if stop > end:
                    self._partial = (opcode, b0, start - pos, length)
                    break
                payload = b[start:stop].tobytes()
            append(_new_frame(opcode, payload, b0 >= 0x80, (b0 & 0x40) != 0))
            pos = stop
        return pos


# --------------------------------------------------------------------------
# UTF-8


class Utf8Validator:
    """Incremental, fail-fast UTF-8 validator (RFC 3629).

    :meth:`feed` returns ``False`` at the first byte that makes the input
    invalid (overlong forms, surrogates, code points above U+10FFFF, stray or
    missing continuation bytes) and keeps returning ``False`` until
    :meth:`reset`.
    """

    __slots__ = ("_decoder", "_failed", "_lock")

    def __init__(self) -> None:
        self._decoder = _Utf8IncrementalDecoder("strict")
        self._failed = False
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Return to the initial state (start of a new message)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._decoder.reset()
        self._failed = False

    def feed(self, data: Any, final: bool = False) -> bool:
        """Validate ``data`` as the continuation of what was fed since the last reset.

        Returns ``True`` while the input so far is a prefix of valid UTF-8
        (with ``final`` true: complete, valid UTF-8), ``False`` as soon as it
        can no longer become valid. ``final`` true resets the validator after
        computing the answer.
        """
        mv = _view(data, "data")
        try:
            with self._lock:
                ok = not self._failed
                if ok:
                    decoder = self._decoder
                    try:
                        decoder.decode(mv, bool(final))
                    except UnicodeDecodeError:
                        ok = False
                    else:
                        if not final:
                            # CPython's decoder waits for a third byte before
                            # rejecting ED A0..BF (a surrogate); reject it now.
                            pending = decoder.getstate()[0]
                            if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                                ok = False
                    if not ok:
                        self._failed = True
                if final:
                    self._reset()
                return ok
        finally:
            mv.release()


def validate_utf8(data: Any) -> bool:
    """Return whether ``data`` is complete, valid UTF-8 (one shot)."""
    mv = _view(data, "data")
    try:
        _utf8_decode(mv, "strict", True)
    except UnicodeDecodeError:
        return False
    finally:
        mv.release()
    return True
