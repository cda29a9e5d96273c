# Types for compiling _connection_py.py as wsframe._connection_c (Cython's pure
# Python mode: setup.py copies the source to _connection_c.py beside this file).

cimport cython

from wsframe._assembler_c cimport MessageAssembler as CMessageAssembler
from wsframe._codec_c cimport Frame as CFrame
from wsframe._codec_c cimport FrameDecoder as CFrameDecoder
from wsframe._counters_c cimport Counters as CCounters

cdef int _OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG
cdef object _CONNECTING, _OPEN, _CLOSING, _CLOSED


cdef class _MaskKeys:
    cdef object _lock
    cdef bytes _pool
    cdef Py_ssize_t _pos


cdef class Connection:
    cdef CMessageAssembler _assembler
    cdef object _clock
    cdef CFrameDecoder _decoder
    cdef object _deferred_error
    cdef list _events
    cdef object _held_pong
    cdef list _out
    cdef bint _paused
    cdef object _pings
    cdef object _stashed
    cdef object _stashed_error
    cdef bint _tx_compressed
    cdef int _tx_opcode
    cdef public bint auto_pong
    cdef public object close_received
    cdef public object close_sent
    cdef public bint close_transport
    cdef public object closed_by
    cdef public CCounters counters
    cdef public bint defer_failure
    cdef public object deflate
    cdef public object frame_logger
    cdef public object error
    cdef public bint fragments
    cdef public bint hold_pongs
    cdef public bint is_server
    cdef public object max_message_size
    cdef public object max_ping_burst
    cdef public object max_ping_rate
    cdef public object on_message
    cdef public object options
    cdef public object state
    cdef public object subprotocol

    cpdef bytes data_to_send(self)
    cpdef list events(self)
    cdef object _mask(self)
    cdef _check_open(self)
    cdef _check_no_fragments(self)
    @cython.locals(counters=CCounters)
    cdef _send_message(self, int opcode, object data, bint fin)
    cdef bytes _encode(self, int opcode, object data)
    @cython.locals(counters=CCounters)
    cpdef bytes encode_message(self, object data)
    cpdef send_ping(self, object payload=*)
    cpdef release_pong(self)
    @cython.locals(counters=CCounters)
    cdef _queue_pong(self, object payload)
    cdef inline _sent_frame(self, int opcode, bint fin, bint rsv1, object payload)
    cdef bint _answers_pings(self)
    cdef _send_close(self, bytes payload, object code, str reason)
    cpdef bint receive_data(self, object data, object size=*)
    @cython.locals(decoder=CFrameDecoder, counters=CCounters, frames=list)
    cdef _receive_frames(self, object data, object size=*)
    cdef CMessageAssembler _message_assembler(self)
    cdef _stash(self, object frames, object error)
    @cython.locals(
        frame=CFrame,
        assembler=CMessageAssembler,
        count=Py_ssize_t,
        index=Py_ssize_t,
        opcode=int,
        counters=CCounters,
    )
    cdef _process_frames(self, object frames, object error)
    cdef _fail_or_defer(self, object error)
    cpdef fail_pending(self)
    cpdef pause(self)
    cpdef resume(self)
    @cython.locals(opcode=int, assembler=CMessageAssembler)
    cdef _receive_frame(self, CFrame frame)
    @cython.locals(counters=CCounters)
    cdef _assemble(self, CFrame frame)
    cdef _deliver(self, object message)
    cdef _receive_close(self, object payload)
    cdef _fail(self, object error)


cdef _count_sent(CCounters counters, int opcode, object data, bint fin)
