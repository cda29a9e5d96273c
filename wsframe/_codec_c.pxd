# The C-level interface of wsframe._codec_c, for the compiled connection
# (_connection_c) to read frames and feed the decoder without Python calls.

from cpython.object cimport PyObject
from libc.stdint cimport uint64_t


cdef class Frame:
    cdef readonly int opcode
    cdef readonly bint fin
    cdef readonly bint rsv1
    cdef readonly bint rsv2
    cdef readonly bint rsv3
    cdef readonly bytes payload


cdef class FrameDecoder:
    cdef str _role
    cdef object _max_frame_size
    cdef uint64_t _max
    cdef bint _allow_rsv1
    cdef unsigned char _mask_bit
    # 1 where a first header byte passes rules 1-4 (shared: see _B0_OK).
    cdef const unsigned char *_b0_ok
    # An incomplete header kept between feeds (at most 13 bytes).
    cdef unsigned char _hdr[14]
    cdef Py_ssize_t _hdr_len
    # The frame whose header was parsed last.
    cdef unsigned char _b0
    cdef uint64_t _plen
    cdef unsigned char _key[4]
    # A payload still arriving: an owned bytes object of _pcap bytes, _pfill filled.
    cdef PyObject *_partial
    cdef Py_ssize_t _pheader
    cdef Py_ssize_t _pcap
    cdef Py_ssize_t _pfill
    # Set once the decoder failed.
    cdef object _error_cls
    cdef object _error_msg

    cpdef list feed(self, object data, object size=*)
    cdef list _feed(self, const unsigned char *p, Py_ssize_t n)
    cdef Py_ssize_t _parse_header(self, const unsigned char *h, Py_ssize_t avail,
                                  list out) except -1
    cdef Py_ssize_t _take_payload(self, const unsigned char *p, Py_ssize_t n, Py_ssize_t pos,
                                  list out) except -1
    cdef Py_ssize_t _continue_payload(self, const unsigned char *p, Py_ssize_t n,
                                      list out) except -1
    cdef str _header_error(self, unsigned char b0, unsigned char b1)
    cdef int _fail(self, str message, object cls, list out) except -1
