# cython: language_level=3, freethreading_compatible=True
"""The compiled frame codec: Cython over the C kernels in ``csrc/``.

Same names and behaviour as :mod:`wsframe._codec_py`; the contract both follow
is ``docs/codec.md``. Decoding creates one ``bytes`` per payload at its final
size and unmasks straight into it, and one small :class:`Frame` per frame;
encoding builds the whole frame in one ``bytes`` allocation.

Free-threaded CPython (3.13t+): the module keeps the GIL disabled. Each
:class:`FrameDecoder` and :class:`Utf8Validator` serialises its own methods
with a per-object critical section (``PyCriticalSection``, through the
``wsf_cs_*`` macros below: nothing at all on a GIL build), so a decoder fed
from two threads at once stays memory-safe (frames may interleave; a decoder is still meant for one
connection's direction). The functions keep no mutable state; module-level
tables are written once at import.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
    _PyBytes_Resize,
)
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

import os
import warnings
from operator import index as _index

from wsframe.errors import MessageTooBig, ProtocolError

cdef extern from "Python.h":
    # Declared without an exception clause: failures are diagnosed by _acquire.
    int _get_buffer "PyObject_GetBuffer" (object obj, Py_buffer *view, int flags)
    void PyErr_Clear()
    bint PyLong_CheckExact(object o)
    long PyLong_AsLongAndOverflow(object o, int *overflow) except? -1
    bint PyByteArray_CheckExact(object o)
    char *PyByteArray_AS_STRING(object o)
    Py_ssize_t PyByteArray_GET_SIZE(object o)
    Py_ssize_t PY_SSIZE_T_MAX

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #  define WSF_FREE_THREADED 1
    typedef PyCriticalSection wsf_cs_t;
    #  define wsf_cs_begin(cs, op) PyCriticalSection_Begin((cs), (op))
    #  define wsf_cs_end(cs) PyCriticalSection_End(cs)
    #else
    #  define WSF_FREE_THREADED 0
    typedef int wsf_cs_t;
    #  define wsf_cs_begin(cs, op) ((void)(cs), (void)(op))
    #  define wsf_cs_end(cs) ((void)(cs))
    #endif
    """
    # 1 on a free-threaded build (Py_GIL_DISABLED), else 0: a C constant.
    bint WSF_FREE_THREADED
    # A per-object critical section (PyCriticalSection, CPython 3.13+) on a
    # free-threaded build; on a GIL build the macros are empty and the
    # object is not even referenced, so the hot path is unchanged (Cython's
    # `with cython.critical_section(obj)` holds a reference to obj even there).
    # Always paired as begin; try: ... finally: end.
    ctypedef int wsf_cs_t
    void wsf_cs_begin(wsf_cs_t *cs, object op)
    void wsf_cs_end(wsf_cs_t *cs)

cdef extern from "mask.h" nogil:
    int wsf_mask_init(const char *force)
    const char *wsf_mask_kernel_name()
    ctypedef unsigned (*wsf_mask_fn)(unsigned char *dst, const unsigned char *src, size_t len,
                                     const unsigned char *key, unsigned phase)
    wsf_mask_fn wsf_mask_kernel(const char *name)
    unsigned wsf_mask(unsigned char *dst, const unsigned char *src, size_t len,
                      const unsigned char *key, unsigned phase)

cdef extern from "utf8.h" nogil:
    ctypedef uint32_t wsf_utf8_state
    wsf_utf8_state WSF_UTF8_ACCEPT
    wsf_utf8_state WSF_UTF8_REJECT
    wsf_utf8_state wsf_utf8_validate(wsf_utf8_state state, const unsigned char *data,
                                     size_t len)


def _init_kernel():
    forced = os.environ.get("WSFRAME_MASK_KERNEL") or None
    if forced is None:
        wsf_mask_init(NULL)
    elif wsf_mask_init(forced.encode("ascii", "replace")) != 0:
        warnings.warn(
            f"WSFRAME_MASK_KERNEL={forced!r} is not a kernel this CPU can run; "
            f"using {wsf_mask_kernel_name().decode()}",
            RuntimeWarning,
            stacklevel=2,
        )
    return wsf_mask_kernel_name().decode()


#: The masking kernel in use: "avx2", "sse2", "neon" or "scalar64".
SIMD_PATH = _init_kernel()

# How this module was built. setup.py writes wsframe_build_info.h (the
# compiler command, the flags, the Cython version) into its build directory
# and defines WSFRAME_HAVE_BUILD_INFO; the compiler's name and version come
# from its own predefined macros.
cdef extern from *:
    """
    #ifdef WSFRAME_HAVE_BUILD_INFO
    #include "wsframe_build_info.h"
    #endif
    #define WSF_STR_(x) #x
    #define WSF_STR(x) WSF_STR_(x)
    #if defined(__clang__)
    #  define WSF_BUILD_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #  define WSF_BUILD_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #  define WSF_BUILD_COMPILER "msvc " WSF_STR(_MSC_FULL_VER)
    #else
    #  define WSF_BUILD_COMPILER "unknown"
    #endif
    #ifndef WSFRAME_BUILD_CC
    #  define WSFRAME_BUILD_CC ""
    #endif
    #ifndef WSFRAME_BUILD_CFLAGS
    #  define WSFRAME_BUILD_CFLAGS ""
    #endif
    #ifndef WSFRAME_BUILD_CYTHON
    #  define WSFRAME_BUILD_CYTHON ""
    #endif
    """
    const char *WSF_BUILD_COMPILER
    const char *WSFRAME_BUILD_CC
    const char *WSFRAME_BUILD_CFLAGS
    const char *WSFRAME_BUILD_CYTHON


cdef object _build_str(const char *value):
    text = value.decode("utf-8", "replace").strip()
    return text or None


def _build_info():
    kernels = [name for name in ("avx2", "sse2", "neon", "scalar64")
               if wsf_mask_kernel(name.encode("ascii")) != NULL]
    return {
        "compiler": _build_str(WSF_BUILD_COMPILER),
        "cc": _build_str(WSFRAME_BUILD_CC),
        "cflags": _build_str(WSFRAME_BUILD_CFLAGS),
        "cython": _build_str(WSFRAME_BUILD_CYTHON),
        "kernels": " ".join(kernels),
    }


#: How this module was built: "compiler" (name and version), "cc" (the
#: compiler command), "cflags", "cython" (version), and "kernels" (the masking
#: kernels compiled in that this CPU can run). Values are str or None.
BUILD_INFO = _build_info()

cdef uint64_t _UNLIMITED = 0x7FFFFFFFFFFFFFFF
# A partial payload larger than this is grown as its bytes arrive instead of
# being allocated at its declared size, so a header alone cannot make the
# decoder allocate a large buffer.
cdef Py_ssize_t _PREALLOCATE_LIMIT = 65536


# --------------------------------------------------------------------------
# Arguments

cdef inline int _acquire(object obj, Py_buffer *view, str name, bint writable,
                         bint or_str=False) except -1:
    """Gets a C-contiguous buffer of ``obj`` or raises the contract's error."""
    if _get_buffer(obj, view, PyBUF_SIMPLE) != 0:
        PyErr_Clear()
        if not PyObject_CheckBuffer(obj):
            if or_str:
                raise TypeError(
                    f"payload must be a bytes-like object or str, not '{type(obj).__name__}'"
                )
            raise TypeError(f"{name} must be a bytes-like object, not '{type(obj).__name__}'")
        raise TypeError(f"{name} must be a C-contiguous buffer")
    if writable and view.readonly:
        PyBuffer_Release(view)
        raise TypeError("buffer must be writable")
    return 0


cdef inline int _read_key(object key, unsigned char *out, str name) except -1:
    """Copies a 4-byte masking key into ``out``."""
    cdef Py_buffer view
    cdef Py_ssize_t n
    if type(key) is bytes:
        n = PyBytes_GET_SIZE(key)
        if n != 4:
            raise ValueError(f"{name} must be 4 bytes, not {n}")
        memcpy(out, PyBytes_AS_STRING(key), 4)
        return 0
    _acquire(key, &view, name, False)
    n = view.len
    if n == 4:
        memcpy(out, view.buf, 4)
    PyBuffer_Release(&view)
    if n != 4:
        raise ValueError(f"{name} must be 4 bytes, not {n}")
    return 0


cdef inline unsigned _read_phase(object phase) except 4:
    cdef object value
    cdef int overflow
    cdef long small
    if PyLong_CheckExact(phase):
        small = PyLong_AsLongAndOverflow(phase, &overflow)
        if not overflow and 0 <= small <= 3:
            return <unsigned>small
    value = _index(phase)
    if 0 <= value <= 3:
        return <unsigned>value
    raise ValueError(f"phase must be 0, 1, 2 or 3, not {value}")


# --------------------------------------------------------------------------
# Masking

# The default phase object (CPython's cached 0), recognised by identity, and
# the next-phase results as ready-made objects: both keep the small-payload
# call overhead down.
cdef object _ZERO = 0
cdef tuple _PHASES = (0, 1, 2, 3)


def apply_mask(data, key, phase=0):
    """Return ``data`` XOR-ed with the 4-byte ``key``, starting at ``key[phase]``.

    ``data`` and ``key`` may be any C-contiguous buffers. Returns new ``bytes``.
    """
    cdef Py_buffer view
    cdef unsigned char k[4]
    cdef unsigned start
    cdef bytes out
    cdef Py_ssize_t n
    if type(data) is bytes and type(key) is bytes and PyBytes_GET_SIZE(key) == 4:
        start = 0 if phase is _ZERO else _read_phase(phase)
        n = PyBytes_GET_SIZE(data)
        out = PyBytes_FromStringAndSize(NULL, n)
        wsf_mask(<unsigned char *>PyBytes_AS_STRING(out),
                 <const unsigned char *>PyBytes_AS_STRING(data), <size_t>n,
                 <const unsigned char *>PyBytes_AS_STRING(key), start)
        return out
    _acquire(data, &view, "data", False)
    try:
        _read_key(key, k, "key")
        start = _read_phase(phase)
        out = PyBytes_FromStringAndSize(NULL, view.len)
        wsf_mask(<unsigned char *>PyBytes_AS_STRING(out), <const unsigned char *>view.buf,
                 <size_t>view.len, k, start)
        return out
    finally:
        PyBuffer_Release(&view)


def mask_inplace(buffer, key, phase=0):
    """XOR the writable ``buffer`` in place with ``key`` from ``key[phase]``.

    Returns the next phase, ``(phase + len(buffer)) % 4``, so a payload that
    arrives in pieces can be unmasked piece by piece.
    """
    cdef Py_buffer view
    cdef unsigned char k[4]
    cdef unsigned start, next_phase
    cdef unsigned char *dst
    # The bytearray fast path relies on the GIL: without it another thread
    # could resize the bytearray under the pointer. On a free-threaded build
    # (WSF_FREE_THREADED, a compile-time constant) the buffer protocol below
    # holds an export instead, which makes a concurrent resize fail.
    if (not WSF_FREE_THREADED and PyByteArray_CheckExact(buffer) and type(key) is bytes
            and PyBytes_GET_SIZE(key) == 4):
        start = 0 if phase is _ZERO else _read_phase(phase)
        # Read after _read_phase (which may run Python code): no Python code
        # runs from here on, so the bytearray cannot be resized meanwhile.
        dst = <unsigned char *>PyByteArray_AS_STRING(buffer)
        next_phase = wsf_mask(dst, dst, <size_t>PyByteArray_GET_SIZE(buffer),
                              <const unsigned char *>PyBytes_AS_STRING(key), start)
        return _PHASES[next_phase]
    _acquire(buffer, &view, "buffer", True)
    try:
        _read_key(key, k, "key")
        start = _read_phase(phase)
        next_phase = wsf_mask(<unsigned char *>view.buf, <const unsigned char *>view.buf,
                              <size_t>view.len, k, start)
    finally:
        PyBuffer_Release(&view)
    return _PHASES[next_phase]


# --------------------------------------------------------------------------
# Frames

@cython.final
@cython.freelist(256)
cdef class Frame:
    """One WebSocket frame: ``opcode``, ``payload`` (unmasked bytes) and flags."""

    def __init__(self, opcode, payload=b"", fin=True, rsv1=False, rsv2=False, rsv3=False):
        cdef Py_buffer view
        value = _index(opcode)
        if not 0 <= value <= 15:
            raise ValueError(f"invalid opcode {value}")
        self.opcode = value
        if type(payload) is bytes:
            self.payload = payload
        else:
            _acquire(payload, &view, "payload", False)
            try:
                self.payload = PyBytes_FromStringAndSize(<char *>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3

    def _key(self):
        return (self.opcode, self.fin, self.rsv1, self.rsv2, self.rsv3, self.payload)

    def __eq__(self, other):
        if type(other) is not Frame:
            return NotImplemented
        return self._key() == (<Frame>other)._key()

    def __ne__(self, other):
        if type(other) is not Frame:
            return NotImplemented
        return self._key() != (<Frame>other)._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (
            f"Frame(opcode={self.opcode}, fin={self.fin}, rsv1={self.rsv1}, "
            f"rsv2={self.rsv2}, rsv3={self.rsv3}, payload=<{len(self.payload)} bytes>)"
        )

    def __reduce__(self):
        return (Frame, (self.opcode, self.payload, self.fin, self.rsv1, self.rsv2, self.rsv3))


cdef inline Frame _new_frame(unsigned char b0, bytes payload):
    cdef Frame frame = Frame.__new__(Frame)
    frame.opcode = b0 & 0x0F
    frame.fin = (b0 >> 7) & 1
    frame.rsv1 = (b0 >> 6) & 1
    frame.rsv2 = (b0 >> 5) & 1
    frame.rsv3 = (b0 >> 4) & 1
    frame.payload = payload
    return frame


cdef inline bint _is_control(unsigned char b0):
    return (b0 & 0x08) != 0


cdef inline bint _is_reserved_opcode(unsigned char opcode):
    return (3 <= opcode <= 7) or opcode >= 11


def _opcode_arg(opcode):
    value = _index(opcode)
    if value not in (0, 1, 2, 8, 9, 10):
        raise ValueError(f"invalid opcode {value}")
    return value


cdef inline Py_ssize_t _header_size(Py_ssize_t n, bint masked) noexcept:
    return (2 if n < 126 else (4 if n < 65536 else 10)) + (4 if masked else 0)


cdef inline unsigned char *_write_header(unsigned char *dst, long op, Py_ssize_t n, bint fin,
                                         bint rsv1, bint rsv2, bint rsv3,
                                         const unsigned char *key) noexcept:
    """Writes a frame header (and the key when ``key`` is not NULL); returns its end."""
    cdef unsigned char mask_bit = 0x80 if key != NULL else 0
    dst[0] = <unsigned char>((fin << 7) | (rsv1 << 6) | (rsv2 << 5) | (rsv3 << 4) | op)
    if n < 126:
        dst[1] = <unsigned char>(mask_bit | n)
        dst += 2
    elif n < 65536:
        dst[1] = mask_bit | 126
        dst[2] = <unsigned char>(n >> 8)
        dst[3] = <unsigned char>n
        dst += 4
    else:
        dst[1] = mask_bit | 127
        _store_be64(dst + 2, <uint64_t>n)
        dst += 10
    if key != NULL:
        memcpy(dst, key, 4)
        dst += 4
    return dst


cdef inline long _read_opcode(object opcode) except -1:
    cdef long op = -1
    cdef int overflow = 1
    if PyLong_CheckExact(opcode):
        op = PyLong_AsLongAndOverflow(opcode, &overflow)
    if overflow or op not in (0, 1, 2, 8, 9, 10):
        op = _opcode_arg(opcode)
    return op


cdef inline int _check_control(long op, bint fin, Py_ssize_t n) except -1:
    if op >= 8:
        if not fin:
            raise ValueError("control frames cannot be fragmented")
        if n > 125:
            raise ValueError(f"control frame payload must be at most 125 bytes, not {n}")
    return 0


def encode_frame(opcode, payload, *, bint fin=True, bint rsv1=False, bint rsv2=False,
                 bint rsv3=False, mask=None):
    """Encode one frame in a single allocation and return it as ``bytes``.

    ``payload`` is any C-contiguous buffer, or a ``str`` (encoded as UTF-8).
    ``mask`` is a 4-byte key (the payload is masked with it) or ``None``.
    Control frames (close, ping, pong) must be final and carry at most 125 bytes.
    """
    cdef Py_buffer view
    cdef bint have_view = False
    cdef const unsigned char *src
    cdef Py_ssize_t n
    cdef unsigned char key[4]
    cdef unsigned char *dst
    cdef long op = _read_opcode(opcode)
    cdef bytes out

    if type(payload) is bytes:
        src = <const unsigned char *>PyBytes_AS_STRING(payload)
        n = PyBytes_GET_SIZE(payload)
    elif isinstance(payload, str):
        src = <const unsigned char *>PyUnicode_AsUTF8AndSize(payload, &n)
    else:
        _acquire(payload, &view, "payload", False, True)
        have_view = True
        src = <const unsigned char *>view.buf
        n = view.len
    try:
        _check_control(op, fin, n)
        if mask is None:
            out = PyBytes_FromStringAndSize(NULL, _header_size(n, False) + n)
            dst = _write_header(<unsigned char *>PyBytes_AS_STRING(out), op, n, fin, rsv1, rsv2,
                                rsv3, NULL)
            memcpy(dst, src, <size_t>n)
        else:
            _read_key(mask, key, "mask")
            out = PyBytes_FromStringAndSize(NULL, _header_size(n, True) + n)
            dst = _write_header(<unsigned char *>PyBytes_AS_STRING(out), op, n, fin, rsv1, rsv2,
                                rsv3, key)
            wsf_mask(dst, src, <size_t>n, key, 0)
        return out
    finally:
        if have_view:
            PyBuffer_Release(&view)


def encode_frame_header(opcode, length, *, bint fin=True, bint rsv1=False, bint rsv2=False,
                        bint rsv3=False, mask=None):
    """Encode only the header of a frame whose ``length``-byte payload is sent apart.

    For zero-copy sends of large payloads: write the header and the payload
    one after the other (``transport.writelines([header, payload])``). With
    ``mask`` the header ends with the key and the caller sends the payload
    masked with it (``apply_mask(payload, mask)``).
    """
    cdef long op = _read_opcode(opcode)
    cdef object value = _index(length)
    cdef Py_ssize_t n
    cdef unsigned char key[4]
    cdef bytes out
    if value < 0 or value > _UNLIMITED:
        raise ValueError(f"length must be between 0 and 2**63 - 1, not {value}")
    if value > PY_SSIZE_T_MAX:
        raise OverflowError(f"length {value} is too large for this platform")
    n = value
    _check_control(op, fin, n)
    if mask is None:
        out = PyBytes_FromStringAndSize(NULL, _header_size(n, False))
        _write_header(<unsigned char *>PyBytes_AS_STRING(out), op, n, fin, rsv1, rsv2, rsv3, NULL)
    else:
        _read_key(mask, key, "mask")
        out = PyBytes_FromStringAndSize(NULL, _header_size(n, True))
        _write_header(<unsigned char *>PyBytes_AS_STRING(out), op, n, fin, rsv1, rsv2, rsv3, key)
    return out


cdef inline void _store_be64(unsigned char *p, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        p[7 - i] = <unsigned char>(v >> (8 * i))


cdef inline uint64_t _load_be64(const unsigned char *p) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v


# --------------------------------------------------------------------------
# Decoding

cdef object _first_byte_error(unsigned char b0, bint allow_rsv1):
    """The message of rules 1-4 broken by a first header byte, or None."""
    cdef unsigned char opcode = b0 & 0x0F
    if _is_reserved_opcode(opcode):
        return f"reserved opcode {opcode:#x}"
    if b0 & 0x20:
        return "RSV2 bit set without an extension that defines it"
    if b0 & 0x10:
        return "RSV3 bit set without an extension that defines it"
    if b0 & 0x40:
        if not allow_rsv1:
            return "RSV1 bit set without an extension that defines it"
        if _is_control(b0):
            return "RSV1 bit set on a control frame"
        if opcode == 0:
            return "RSV1 bit set on a continuation frame"
    if _is_control(b0) and not (b0 & 0x80):
        return "fragmented control frame"
    return None


# For every first header byte, whether it passes rules 1-4: [allow_rsv1][b0].
cdef unsigned char _B0_OK[2][256]
for _allow in range(2):
    for _b0 in range(256):
        _B0_OK[_allow][_b0] = _first_byte_error(<unsigned char>_b0, _allow) is None


cdef inline Py_ssize_t _prefix_size(Py_ssize_t length, object size) except -1:
    """How many bytes of a ``length``-byte buffer ``feed(data, size)`` takes."""
    cdef object n
    if size is None:
        return length
    n = _index(size)
    if not 0 <= n <= length:
        raise ValueError(f"size must be from 0 to {length}, not {n}")
    return <Py_ssize_t>n


cdef class FrameDecoder:
    """Incremental frame decoder for one direction of one connection.

    ``role="server"`` decodes what a client sends (frames must be masked);
    ``role="client"`` decodes what a server sends (frames must not be).
    ``feed(data)`` returns every frame completed by ``data``; violations raise
    :class:`wsframe.ProtocolError` carrying the close code (1002, or 1009 via
    :class:`wsframe.MessageTooBig` for a frame over ``max_frame_size``, decided
    from the header before the payload arrives).
    """

    # Its fields and C methods are declared in _codec_c.pxd (the compiled
    # connection reads frames and feeds the decoder without Python calls).

    def __cinit__(self):
        self._partial = NULL

    def __init__(self, role, *, max_frame_size=1048576, allow_rsv1=False):
        if role != "server" and role != "client" or type(role) is not str:
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        if max_frame_size is None:
            max_frame_size = _UNLIMITED
        else:
            max_frame_size = _index(max_frame_size)
            if max_frame_size < 0:
                raise ValueError(f"max_frame_size must be >= 0, not {max_frame_size}")
        self._role = role
        self._max_frame_size = max_frame_size
        self._max = min(max_frame_size, _UNLIMITED)
        self._allow_rsv1 = allow_rsv1
        self._mask_bit = 0x80 if role == "server" else 0
        self._b0_ok = _B0_OK[1 if self._allow_rsv1 else 0]
        self._hdr_len = 0
        self._error_cls = None

    def __dealloc__(self):
        Py_XDECREF(self._partial)
        self._partial = NULL

    @property
    def role(self):
        """``"server"`` or ``"client"``: which side of the connection decodes."""
        return self._role

    @property
    def max_frame_size(self):
        """The largest payload accepted in one frame, in bytes."""
        return self._max_frame_size

    @property
    def allow_rsv1(self):
        """Whether RSV1 may be set on the first frame of a data message."""
        return self._allow_rsv1

    @property
    def buffered(self):
        """Bytes received and held that are not yet part of a returned frame."""
        cdef wsf_cs_t cs
        wsf_cs_begin(&cs, self)
        try:
            if self._partial != NULL:
                return self._pheader + self._pfill
            return self._hdr_len
        finally:
            wsf_cs_end(&cs)

    @property
    def partial(self):
        """``(opcode, rsv1, received)`` of the frame whose payload is arriving, or None."""
        cdef wsf_cs_t cs
        wsf_cs_begin(&cs, self)
        try:
            if self._partial == NULL:
                return None
            return (self._b0 & 0x0F, (self._b0 & 0x40) != 0, self._pfill)
        finally:
            wsf_cs_end(&cs)

    @property
    def partial_length(self):
        """The payload length, from its header, of the frame whose payload is arriving, or None."""
        cdef wsf_cs_t cs
        wsf_cs_begin(&cs, self)
        try:
            if self._partial == NULL:
                return None
            return self._plen
        finally:
            wsf_cs_end(&cs)

    def partial_payload(self, start=0):
        """The payload received so far of the frame in progress, unmasked, from ``start``."""
        cdef Py_ssize_t offset
        value = _index(start)
        if value < 0:
            raise ValueError(f"start must be >= 0, not {value}")
        cdef wsf_cs_t cs
        wsf_cs_begin(&cs, self)
        try:
            if self._partial == NULL or value >= self._pfill:
                return b""
            offset = value
            return PyBytes_FromStringAndSize(
                PyBytes_AS_STRING(<object>self._partial) + offset, self._pfill - offset)
        finally:
            wsf_cs_end(&cs)

    cpdef list feed(self, object data, object size=None):
        """Add received bytes; return the list of frames they complete, in order.

        ``size``: take only the first ``size`` bytes of ``data``.

        Serialised per decoder (a critical section on free-threaded builds):
        the partial payload, the held header bytes and the error state are
        only touched inside it.
        """
        cdef Py_buffer view
        cdef wsf_cs_t cs
        wsf_cs_begin(&cs, self)
        try:
            if self._error_cls is not None:
                raise self._error_cls(self._error_msg)
            if type(data) is bytes and size is None:
                return self._feed(<const unsigned char *>PyBytes_AS_STRING(data),
                                  PyBytes_GET_SIZE(data))
            _acquire(data, &view, "data", False)
            try:
                return self._feed(<const unsigned char *>view.buf, _prefix_size(view.len, size))
            finally:
                PyBuffer_Release(&view)
        finally:
            wsf_cs_end(&cs)

    cdef list _feed(self, const unsigned char *p, Py_ssize_t n):
        cdef list out = []
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t take, header
        cdef unsigned char joined[14]
        if self._partial != NULL:
            pos = self._continue_payload(p, n, out)
            if self._partial != NULL:
                return out
        if self._hdr_len:
            take = min(14 - self._hdr_len, n - pos)
            memcpy(joined, self._hdr, <size_t>self._hdr_len)
            memcpy(joined + self._hdr_len, p + pos, <size_t>take)
            header = self._parse_header(joined, self._hdr_len + take, out)
            if header == 0:
                memcpy(self._hdr, joined, <size_t>(self._hdr_len + take))
                self._hdr_len += take
                return out
            pos += header - self._hdr_len
            self._hdr_len = 0
            self._pheader = header
            pos = self._take_payload(p, n, pos, out)
            if self._partial != NULL:
                return out
        while n - pos >= 2:
            header = self._parse_header(p + pos, n - pos, out)
            if header == 0:
                break
            self._pheader = header
            pos = self._take_payload(p, n, pos + header, out)
            if self._partial != NULL:
                return out
        memcpy(self._hdr, p + pos, <size_t>(n - pos))
        self._hdr_len = n - pos
        return out

    cdef Py_ssize_t _parse_header(self, const unsigned char *h, Py_ssize_t avail,
                                  list out) except -1:
        """Checks and parses a header; returns its length, or 0 if incomplete."""
        cdef unsigned char b0, b1, len7
        cdef Py_ssize_t size
        cdef uint64_t plen
        if avail < 2:
            return 0
        b0 = h[0]
        b1 = h[1]
        len7 = b1 & 0x7F
        if (not self._b0_ok[b0] or (b1 & 0x80) != self._mask_bit
                or (_is_control(b0) and len7 > 125)):
            self._fail(self._header_error(b0, b1), ProtocolError, out)
        if len7 < 126:
            plen = len7
            size = 2
        elif len7 == 126:
            if avail < 4:
                return 0
            plen = (<uint64_t>h[2] << 8) | h[3]
            if plen < 126:
                self._fail("payload length not minimally encoded", ProtocolError, out)
            size = 4
        else:
            if avail < 10:
                return 0
            plen = _load_be64(h + 2)
            if plen >> 63:
                self._fail("payload length has the most significant bit set", ProtocolError, out)
            if plen < 65536:
                self._fail("payload length not minimally encoded", ProtocolError, out)
            size = 10
        if plen > self._max or plen > <uint64_t>PY_SSIZE_T_MAX:
            self._fail(
                f"frame payload of {plen} bytes exceeds max_frame_size of {self._max_frame_size}",
                MessageTooBig, out)
        if self._mask_bit:
            if avail < size + 4:
                return 0
            memcpy(self._key, h + size, 4)
            size += 4
        self._b0 = b0
        self._plen = plen
        return size

    cdef Py_ssize_t _take_payload(self, const unsigned char *p, Py_ssize_t n, Py_ssize_t pos,
                                  list out) except -1:
        """Consumes the payload of the parsed header from ``p[pos:n]``."""
        cdef Py_ssize_t plen = <Py_ssize_t>self._plen
        cdef Py_ssize_t avail = n - pos
        cdef bytes payload
        cdef unsigned char *dst
        if avail >= plen:
            payload = PyBytes_FromStringAndSize(NULL, plen)
            dst = <unsigned char *>PyBytes_AS_STRING(payload)
            if self._mask_bit:
                wsf_mask(dst, p + pos, <size_t>plen, self._key, 0)
            else:
                memcpy(dst, p + pos, <size_t>plen)
            out.append(_new_frame(self._b0, payload))
            return pos + plen
        self._pcap = plen if plen <= _PREALLOCATE_LIMIT else max(avail, _PREALLOCATE_LIMIT)
        payload = PyBytes_FromStringAndSize(NULL, self._pcap)
        Py_INCREF(payload)
        self._partial = <PyObject *>payload
        self._pfill = 0
        return self._continue_payload(p + pos, avail, out) + pos

    cdef Py_ssize_t _continue_payload(self, const unsigned char *p, Py_ssize_t n,
                                      list out) except -1:
        """Adds ``p[:n]`` to the payload in progress; returns the bytes consumed."""
        cdef Py_ssize_t plen = <Py_ssize_t>self._plen
        cdef Py_ssize_t take = min(plen - self._pfill, n)
        cdef Py_ssize_t capacity
        cdef unsigned char *dst
        cdef bytes payload
        if self._pfill + take > self._pcap:
            capacity = min(plen, max(self._pfill + take, 2 * self._pcap))
            _PyBytes_Resize(&self._partial, capacity)
            self._pcap = capacity
        dst = <unsigned char *>PyBytes_AS_STRING(<object>self._partial) + self._pfill
        if self._mask_bit:
            wsf_mask(dst, p, <size_t>take, self._key, <unsigned>(self._pfill & 3))
        else:
            memcpy(dst, p, <size_t>take)
        self._pfill += take
        if self._pfill == plen:
            payload = <bytes>self._partial
            Py_XDECREF(self._partial)
            self._partial = NULL
            out.append(_new_frame(self._b0, payload))
        return take

    cdef str _header_error(self, unsigned char b0, unsigned char b1):
        message = _first_byte_error(b0, self._allow_rsv1)
        if message is not None:
            return message
        if _is_control(b0) and (b1 & 0x7F) > 125:
            return "control frame payload too long"
        if self._mask_bit:
            return "unmasked frame from client"
        return "masked frame from server"

    cdef int _fail(self, str message, object cls, list out) except -1:
        self._error_cls = cls
        self._error_msg = message
        Py_XDECREF(self._partial)
        self._partial = NULL
        self._hdr_len = 0
        raise cls(message, frames=out)


# --------------------------------------------------------------------------
# UTF-8

cdef class Utf8Validator:
    """Incremental, fail-fast UTF-8 validation across the frames of a message."""

    cdef wsf_utf8_state _state

    def __cinit__(self):
        self._state = WSF_UTF8_ACCEPT

    def feed(self, data, final=False):
        """Validate ``data`` as the continuation of what was fed since the last reset.

        Returns False as soon as the input can no longer be valid UTF-8; with
        ``final=True`` also when it ends inside a character, and the validator
        then resets itself for the next message.
        """
        cdef Py_buffer view
        cdef wsf_utf8_state state
        cdef wsf_cs_t cs
        wsf_cs_begin(&cs, self)
        try:
            if type(data) is bytes:
                state = wsf_utf8_validate(self._state,
                                          <const unsigned char *>PyBytes_AS_STRING(data),
                                          <size_t>PyBytes_GET_SIZE(data))
            else:
                _acquire(data, &view, "data", False)
                state = wsf_utf8_validate(self._state, <const unsigned char *>view.buf,
                                          <size_t>view.len)
                PyBuffer_Release(&view)
            if final:
                self._state = WSF_UTF8_ACCEPT
                return state == WSF_UTF8_ACCEPT
            self._state = state
            return state != WSF_UTF8_REJECT
        finally:
            wsf_cs_end(&cs)

    def reset(self):
        """Forget everything fed so far."""
        cdef wsf_cs_t cs
        wsf_cs_begin(&cs, self)
        try:
            self._state = WSF_UTF8_ACCEPT
        finally:
            wsf_cs_end(&cs)


def validate_utf8(data):
    """Return True if ``data`` (any C-contiguous buffer) is complete, valid UTF-8."""
    cdef Py_buffer view
    cdef wsf_utf8_state state
    if type(data) is bytes:
        state = wsf_utf8_validate(WSF_UTF8_ACCEPT,
                                  <const unsigned char *>PyBytes_AS_STRING(data),
                                  <size_t>PyBytes_GET_SIZE(data))
    else:
        _acquire(data, &view, "data", False)
        state = wsf_utf8_validate(WSF_UTF8_ACCEPT, <const unsigned char *>view.buf,
                                  <size_t>view.len)
        PyBuffer_Release(&view)
    return state == WSF_UTF8_ACCEPT
