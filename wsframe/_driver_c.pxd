# Types for compiling _driver_py.py as wsframe._driver_c (Cython's pure Python
# mode: setup.py copies the source to _driver_c.py beside this file).

from wsframe._connection_c cimport Connection as CConnection

cdef Py_ssize_t _ZERO_COPY_SIZE
cdef Py_ssize_t _READ_BUFFER_SIZE
cdef object _CONNECTING, _OPEN, _CLOSED


cdef class DriverCore:
    cdef object _abort_timer
    cdef list _cork
    cdef bint _draining
    cdef object _fail_timer
    cdef object _inbox
    cdef object _listener_message
    cdef double _ping_deadline
    cdef object _ping_payload
    cdef double _ping_sent_at
    cdef object _read_view
    cdef Py_ssize_t _resume_at
    cdef public CConnection conn
    cdef public bint discard_messages
    cdef public object heartbeat
    cdef public object listener
    cdef public Py_ssize_t max_queue
    cdef public bint opened
    cdef public object reader_waiter
    cdef public bint reading_paused
    cdef public object transport
    cdef public object writer_waiter
    cdef public bint writing_paused

    cpdef wake_reader(self)
    cpdef wake_writer(self)
    cpdef process(self)
    cpdef deliver(self, object message)
    cpdef send_message(self, object message)
    cpdef flush(self)
    cpdef uncork(self)
