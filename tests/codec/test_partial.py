"""FrameDecoder.partial / partial_length / partial_payload: the frame whose payload is arriving."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

KEY = b"\x0f\xa1\x37\x5c"


def test_no_partial_at_first(codec) -> None:
    decoder = codec.FrameDecoder("server")
    assert decoder.partial is None
    assert decoder.partial_length is None
    assert decoder.partial_payload() == b""


@pytest.mark.parametrize("role", ["server", "client"])
@pytest.mark.parametrize("size", [5, 125, 300, 70_000])
def test_prefix_is_unmasked_as_it_arrives(codec, role: str, size: int) -> None:
    payload = os.urandom(size)
    frame = codec.encode_frame(1, payload, mask=KEY if role == "server" else None)
    header = len(frame) - size
    decoder = codec.FrameDecoder(role, max_frame_size=None)
    assert decoder.feed(frame[: header - 1]) == []
    assert decoder.partial is None  # the header is not complete yet
    fed = header - 1
    for step in (1, 2, 3, 7, size):  # cuts at every key phase
        chunk = frame[fed : min(fed + step, len(frame) - 1)]
        decoder.feed(chunk)
        fed += len(chunk)
        received = fed - header
        assert decoder.partial == (1, False, received)
        assert decoder.partial_length == size
        assert decoder.partial_payload() == payload[:received]
        for start in (0, 1, 2, 3, received // 2, received):
            assert decoder.partial_payload(start) == payload[start:received]
    [done] = decoder.feed(frame[fed:])
    assert done.payload == payload
    assert decoder.partial is None
    assert decoder.partial_length is None
    assert decoder.partial_payload() == b""


def test_partial_reports_rsv1_and_opcode(codec) -> None:
    decoder = codec.FrameDecoder("client", allow_rsv1=True)
    decoder.feed(codec.encode_frame(2, b"abcdef", rsv1=True, fin=False)[:4])
    assert decoder.partial == (2, True, 2)
    assert decoder.partial_length == 6


def test_negative_start(codec) -> None:
    with pytest.raises(ValueError, match="start must be >= 0, not -1"):
        codec.FrameDecoder("server").partial_payload(-1)


def test_partial_cleared_by_failure(codec) -> None:
    from wsframe import ProtocolError

    decoder = codec.FrameDecoder("server")
    decoder.feed(codec.encode_frame(1, b"x" * 50, mask=KEY)[:20])
    assert decoder.partial is not None
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x83\x80" + KEY)  # finishes nothing: still the same frame
        decoder.feed(b"\x00" * 100 + b"\x83\x80" + KEY)
    assert decoder.partial is None
    assert decoder.partial_length is None


@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 700), min_size=1, max_size=30),
    role=st.sampled_from(["server", "client"]),
)
def test_partial_identical_in_both_codecs(codecs_pair, sizes, cuts, role) -> None:
    c, py = codecs_pair
    stream = b"".join(
        c.encode_frame(2, bytes([n % 251]) * n, mask=KEY if role == "server" else None)
        for n in sizes
    )
    decoders = [m.FrameDecoder(role, max_frame_size=None) for m in (c, py)]
    position = 0
    for cut in cuts:
        chunk = stream[position : position + cut]
        position += len(chunk)
        results = [d.feed(chunk) for d in decoders]
        assert results[0] == [_py_frame_as_c(c, f) for f in results[1]]
        assert decoders[0].partial == decoders[1].partial
        assert decoders[0].partial_length == decoders[1].partial_length
        for start in (0, 1, 5):
            assert decoders[0].partial_payload(start) == decoders[1].partial_payload(start)


def _py_frame_as_c(c, frame):
    return c.Frame(frame.opcode, frame.payload, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3)
