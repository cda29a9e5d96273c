# Types for compiling _assembler_py.py as wsframe._assembler_c (Cython's pure
# Python mode: setup.py copies the source to _assembler_c.py beside this file).

cdef int _MAX_CHUNKS
cdef int _OP_CONT
cdef int _OP_TEXT

cdef class MessageAssembler:
    cdef list _chunks
    cdef bint _compressed
    cdef object _decoder
    cdef Py_ssize_t _size
    cdef object _utf8
    cdef public object deflate
    cdef public bint fragments
    cdef public object max_message_size
    cdef public int opcode
    cdef public Py_ssize_t validated

    cpdef begin(self, int opcode, bint compressed)
    cpdef object add(self, object payload, bint fin)
    cdef _append(self, object data)
    cpdef reset(self)
