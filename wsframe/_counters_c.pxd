# Types for compiling _counters_py.py as wsframe._counters_c (Cython's pure
# Python mode: setup.py copies the source to _counters_c.py beside this file).

cpdef Py_ssize_t utf8_length(str text)
cpdef Py_ssize_t payload_size(object data)
cdef Py_ssize_t _bucket(tuple bounds, double value)
cdef _count_code(dict counts, object code)


cdef class Counters:
    cdef public str side
    cdef public long long connections_open
    cdef public long long connections_accepted
    cdef public long long connections_closed
    cdef public long long handshakes_abandoned
    cdef public long long messages_received_text
    cdef public long long messages_received_binary
    cdef public long long message_bytes_received
    cdef public long long messages_sent_text
    cdef public long long messages_sent_binary
    cdef public long long message_bytes_sent
    cdef public long long bytes_received
    cdef public long long bytes_sent
    cdef public long long frames_received
    cdef public long long frames_sent
    cdef public long long pings_received
    cdef public long long pongs_received
    cdef public long long pings_sent
    cdef public long long pongs_sent
    cdef public long long compressed_bytes_received
    cdef public long long decompressed_bytes_received
    cdef public long long uncompressed_bytes_sent
    cdef public long long compressed_bytes_sent
    cdef public long long reading_pauses
    cdef public long long writing_pauses
    cdef public dict close_codes_sent
    cdef public dict close_codes_received
    cdef public dict closes
    cdef public dict responses
    cdef public dict limit_violations
    cdef public long long broadcast_skipped
    cdef public list rtt_buckets
    cdef public long long rtt_count
    cdef public double rtt_sum
    cdef public list handshake_buckets
    cdef public long long handshake_count
    cdef public double handshake_sum

    cpdef message_received(self, object message)
    cpdef add(self, Counters other)
    cpdef message_sent(self, object message)
