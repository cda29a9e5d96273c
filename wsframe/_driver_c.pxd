# Types for compiling _driver_py.py as wsframe._driver_c (Cython's pure Python
# mode: setup.py copies the source to _driver_c.py beside this file).

cimport cython

from wsframe._connection_c cimport Connection as CConnection
from wsframe._counters_c cimport Counters as CCounters

cdef Py_ssize_t _ZERO_COPY_SIZE
cdef Py_ssize_t _READ_BUFFER_SIZE
cdef object _CONNECTING, _OPEN, _CLOSED


cdef class DriverCore:
    cdef object _abort_timer
    cdef object _cause
    cdef list _cork
    cdef bint _draining
    cdef object _fail_timer
    cdef Py_ssize_t _id
    cdef object _inbox
    cdef object _listener_message
    cdef double _ping_deadline
    cdef object _ping_payload
    cdef double _ping_sent_at
    cdef object _read_view
    cdef Py_ssize_t _resume_at
    cdef double _started_at
    cdef public CConnection conn
    cdef public CCounters counters
    cdef public bint discard_messages
    cdef public object heartbeat
    cdef public object listener
    cdef public Py_ssize_t max_queue
    cdef public bint opened
    cdef public object reader_waiter
    cdef public bint reading_paused
    cdef public object remote_address
    cdef public object transport
    cdef public object writer_waiter
    cdef public bint writing_paused

    cpdef wake_reader(self)
    cpdef wake_writer(self)
    @cython.locals(size=Py_ssize_t)
    cpdef buffer_updated(self, object nbytes)
    cpdef process(self)
    cpdef deliver(self, object message)
    @cython.locals(counters=CCounters)
    cpdef send_message(self, object message)
    cpdef flush(self)
    cpdef uncork(self)
