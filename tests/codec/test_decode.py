"""FrameDecoder: RFC examples, length encodings, every rule at the moment it applies."""

from __future__ import annotations

import os
import random
import struct
import time
from typing import Any, NamedTuple, Optional

import pytest

from wsframe import MessageTooBig, ProtocolError

KEY = bytes.fromhex("37fa213d")
MAX = (1 << 63) - 1


def xor(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def header(b0: int, n: int, masked: bool, form: Optional[int] = None) -> bytes:
    """A frame header for a payload of n bytes; ``form`` forces 7, 16 or 64-bit length."""
    m = 0x80 if masked else 0
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    if form == 7:
        return bytes([b0, m | n])
    if form == 16:
        return bytes([b0, m | 126]) + struct.pack("!H", n)
    return bytes([b0, m | 127]) + struct.pack("!Q", n)


def frame_bytes(b0: int, payload: bytes, key: Optional[bytes]) -> bytes:
    h = header(b0, len(payload), key is not None)
    if key is None:
        return h + payload
    return h + key + xor(payload, key)


def as_tuple(f: Any) -> tuple[Any, ...]:
    return (f.opcode, f.payload, f.fin, f.rsv1, f.rsv2, f.rsv3)


# --------------------------------------------------------------------------
# RFC 6455 §5.7 examples


def test_rfc_unmasked_text(codec) -> None:
    d = codec.FrameDecoder("client")
    (f,) = d.feed(bytes.fromhex("810548656c6c6f"))
    assert as_tuple(f) == (1, b"Hello", True, False, False, False)
    assert type(f.payload) is bytes and type(f.opcode) is int
    assert f.fin is True and f.rsv1 is False and f.rsv2 is False and f.rsv3 is False


def test_rfc_masked_text(codec) -> None:
    d = codec.FrameDecoder("server")
    (f,) = d.feed(bytes.fromhex("818537fa213d7f9f4d5158"))
    assert as_tuple(f) == (1, b"Hello", True, False, False, False)


def test_rfc_fragmented(codec) -> None:
    d = codec.FrameDecoder("client")
    frames = d.feed(bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"))
    assert [as_tuple(f) for f in frames] == [
        (1, b"Hel", False, False, False, False),
        (0, b"lo", True, False, False, False),
    ]


def test_rfc_ping_pong(codec) -> None:
    (ping,) = codec.FrameDecoder("client").feed(bytes.fromhex("890548656c6c6f"))
    assert as_tuple(ping) == (9, b"Hello", True, False, False, False)
    (pong,) = codec.FrameDecoder("server").feed(bytes.fromhex("8a8537fa213d7f9f4d5158"))
    assert as_tuple(pong) == (10, b"Hello", True, False, False, False)


def test_rfc_256_and_64k(codec) -> None:
    d = codec.FrameDecoder("client")
    (f,) = d.feed(bytes.fromhex("827e0100") + bytes(range(256)))
    assert f.payload == bytes(range(256))
    (f,) = d.feed(bytes.fromhex("827f0000000000010000") + b"\xab" * 65536)
    assert f.payload == b"\xab" * 65536 and f.opcode == 2


# --------------------------------------------------------------------------
# Length encodings and chunking


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 65537])
@pytest.mark.parametrize("role", ["server", "client"])
def test_length_boundaries(codec, n: int, role: str) -> None:
    payload = os.urandom(n)
    key = KEY if role == "server" else None
    data = frame_bytes(0x82, payload, key)
    d = codec.FrameDecoder(role)
    (f,) = d.feed(data)
    assert f.payload == payload
    assert d.buffered == 0
    # same, byte by byte over the header, then the payload in two pieces
    d = codec.FrameDecoder(role)
    hlen = len(data) - n
    cuts = sorted({*range(1, hlen + 1), hlen + n // 2, len(data)})
    prev = 0
    for cut in cuts:
        frames = d.feed(data[prev:cut])
        prev = cut
        if cut < len(data):
            assert frames == [] and d.buffered == cut
        else:
            assert [f.payload for f in frames] == [payload] and d.buffered == 0


def test_one_byte_at_a_time_many_frames(codec) -> None:
    rng = random.Random(3)
    frames, data = [], b""
    for _ in range(40):
        n = rng.choice([0, 1, 5, 125, 126, 300])
        op = rng.choice([0, 1, 2]) if n > 125 else rng.choice([0, 1, 2, 8, 9, 10])
        payload = rng.randbytes(n)
        frames.append((op, payload, True, False, False, False))
        data += frame_bytes(0x80 | op, payload, KEY)
    d = codec.FrameDecoder("server")
    got = []
    for i in range(len(data)):
        got += d.feed(data[i : i + 1])
    assert [as_tuple(f) for f in got] == frames
    assert d.buffered == 0


def test_many_frames_in_one_chunk_then_partial(codec) -> None:
    one = frame_bytes(0x81, b"abc", None)
    d = codec.FrameDecoder("client")
    frames = d.feed(one * 5 + one[:3])
    assert len(frames) == 5 and all(f.payload == b"abc" for f in frames)
    assert d.buffered == 3
    frames = d.feed(one[3:] + one * 2 + one[:1])
    assert len(frames) == 3 and d.buffered == 1
    assert [as_tuple(f) for f in d.feed(one[1:])] == [(1, b"abc", True, False, False, False)]
    assert d.buffered == 0


def test_large_frame_many_small_chunks_is_not_quadratic(codec) -> None:
    payload = os.urandom(4 << 20)
    data = frame_bytes(0x82, payload, KEY)
    d = codec.FrameDecoder("server", max_frame_size=None)
    start = time.perf_counter()
    out = []
    step = 1024
    for i in range(0, len(data), step):
        out += d.feed(data[i : i + step])
    elapsed = time.perf_counter() - start
    assert len(out) == 1 and out[0].payload == payload
    assert elapsed < 10, elapsed


def test_feed_takes_the_first_size_bytes_of_a_reused_buffer(codec) -> None:
    """feed(buffer, size) decodes what feed(buffer[:size]) would, without the slice."""
    stream = b"".join(frame_bytes(0x82, bytes([i]) * (i * 7), os.urandom(4)) for i in range(1, 40))
    buffer = bytearray(4096)
    whole = codec.FrameDecoder("server")
    reused = codec.FrameDecoder("server")
    expected, got = [], []
    for start in range(0, len(stream), 97):
        chunk = stream[start : start + 97]
        buffer[: len(chunk)] = chunk
        buffer[len(chunk) : len(chunk) + 4] = b"\xff\xff\xff\xff"  # garbage after: not read
        expected += whole.feed(chunk)
        got += reused.feed(buffer, len(chunk))
        got += reused.feed(memoryview(buffer), 0)
    assert got == expected and len(got) == 39
    assert len(reused.feed(stream, None)) == 39  # None: all of it


@pytest.mark.parametrize("size", [-1, 5])
def test_feed_size_out_of_range(codecs_pair, size: int) -> None:
    messages = set()
    for codec in codecs_pair:
        with pytest.raises(ValueError) as info:
            codec.FrameDecoder("server").feed(bytearray(4), size)
        messages.add(str(info.value))
    assert messages == {f"size must be from 0 to 4, not {size}"}


def test_buffered(codec) -> None:
    d = codec.FrameDecoder("server")
    assert d.buffered == 0
    data = frame_bytes(0x82, b"x" * 300, KEY)  # 2 + 2 + 4 + 300
    assert d.feed(data[:1]) == [] and d.buffered == 1
    assert d.feed(data[1:3]) == [] and d.buffered == 3
    assert d.feed(data[3:10]) == [] and d.buffered == 10
    assert d.feed(b"") == [] and d.buffered == 10
    assert d.feed(data[10:-1]) == [] and d.buffered == len(data) - 1
    assert len(d.feed(data[-1:] + data[:5])) == 1 and d.buffered == 5


def test_payload_is_a_copy(codec) -> None:
    buf = bytearray(frame_bytes(0x82, b"hello", None))
    d = codec.FrameDecoder("client")
    (f,) = d.feed(buf)
    buf[-5:] = b"XXXXX"
    buf.extend(b"more")  # no view kept
    assert f.payload == b"hello"
    partial = bytearray(frame_bytes(0x82, b"world", None))
    assert d.feed(partial[:4]) == []
    partial[:4] = b"\x00\x00\x00\x00"
    partial.extend(b"x")
    (f,) = d.feed(partial[4:7])
    assert f.payload == b"world"


# --------------------------------------------------------------------------
# Constructor and properties


def test_properties(codec) -> None:
    d = codec.FrameDecoder("server")
    assert d.role == "server" and d.max_frame_size == 1 << 20 and d.allow_rsv1 is False
    d = codec.FrameDecoder("client", max_frame_size=None, allow_rsv1=1)
    assert d.role == "client" and d.max_frame_size == MAX and d.allow_rsv1 is True
    d = codec.FrameDecoder("client", max_frame_size=0)
    assert d.max_frame_size == 0


@pytest.mark.parametrize("role", ["Server", "", None, b"server", 1, "both"])
def test_bad_role(codec, role) -> None:
    with pytest.raises(ValueError) as exc:
        codec.FrameDecoder(role)
    assert str(exc.value) == f"role must be 'server' or 'client', not {role!r}"


def test_bad_max_frame_size(codec) -> None:
    with pytest.raises(ValueError) as exc:
        codec.FrameDecoder("server", max_frame_size=-1)
    assert str(exc.value) == "max_frame_size must be >= 0, not -1"
    for bad in (1.5, "10", b"1"):
        with pytest.raises(TypeError):
            codec.FrameDecoder("server", max_frame_size=bad)
    # role is checked first
    with pytest.raises(ValueError, match=r"^role must be"):
        codec.FrameDecoder("x", max_frame_size=-1)


def test_feed_not_a_buffer(codec) -> None:
    d = codec.FrameDecoder("server")
    with pytest.raises(TypeError) as exc:
        d.feed("text")
    assert str(exc.value) == "data must be a bytes-like object, not 'str'"
    with pytest.raises(TypeError) as exc:
        d.feed(memoryview(b"abcdef")[::2])
    assert str(exc.value) == "data must be a C-contiguous buffer"
    assert d.feed(frame_bytes(0x81, b"ok", KEY))[0].payload == b"ok"  # not failed by that


# --------------------------------------------------------------------------
# max_frame_size


def test_max_frame_size_from_header_only(codec) -> None:
    for n, form in ((1000, 16), (70000, 64), (11, 7)):
        d = codec.FrameDecoder("server", max_frame_size=10)
        h = header(0x82, n, True, form)
        with pytest.raises(MessageTooBig) as exc:
            d.feed(h)  # no key, no payload yet
        assert exc.value.close_code == 1009
        assert isinstance(exc.value, ProtocolError)
        assert str(exc.value) == f"frame payload of {n} bytes exceeds max_frame_size of 10"
        assert exc.value.frames == []


def test_max_frame_size_boundary(codec) -> None:
    d = codec.FrameDecoder("client", max_frame_size=200)
    assert d.feed(frame_bytes(0x82, b"a" * 200, None))[0].payload == b"a" * 200
    with pytest.raises(
        MessageTooBig, match=r"^frame payload of 201 bytes exceeds max_frame_size of 200$"
    ):
        d.feed(frame_bytes(0x82, b"a" * 201, None))


def test_max_frame_size_zero(codec) -> None:
    d = codec.FrameDecoder("client", max_frame_size=0)
    assert d.feed(b"\x81\x00\x89\x00")[1].opcode == 9
    with pytest.raises(
        MessageTooBig, match=r"^frame payload of 1 bytes exceeds max_frame_size of 0$"
    ):
        d.feed(b"\x81\x01")


def test_max_frame_size_none(codec) -> None:
    d = codec.FrameDecoder("client", max_frame_size=None)
    payload = os.urandom((1 << 20) + 1)
    assert d.feed(frame_bytes(0x82, payload, None))[0].payload == payload
    # a 2**62-byte header is accepted (the payload just never arrives)
    assert d.feed(b"\x82\x7f" + (1 << 62).to_bytes(8, "big")) == []
    assert d.buffered == 10


def test_default_max_frame_size(codec) -> None:
    d = codec.FrameDecoder("client")
    assert len(d.feed(header(0x82, 1 << 20, False))) == 0
    d = codec.FrameDecoder("client")
    with pytest.raises(MessageTooBig, match=rf"^frame payload of {(1 << 20) + 1} bytes"):
        d.feed(header(0x82, (1 << 20) + 1, False))


# --------------------------------------------------------------------------
# Rules, at the moment they apply


class Bad(NamedTuple):
    id: str
    role: str
    kwargs: dict
    data: bytes  # the offending frame (possibly followed by more bytes)
    trigger: int  # bytes of ``data`` needed before the error is raised
    exc: type
    message: str


def _bad_cases() -> list[Bad]:
    cases = []
    msgs = "{} bit set without an extension that defines it"
    tail = b"\x00" * 6
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        cases.append(
            Bad(
                f"reserved-{op}",
                "server",
                {},
                bytes([0x80 | op, 0x85]) + tail,
                2,
                ProtocolError,
                f"reserved opcode {op:#x}",
            )
        )
    cases += [
        Bad(
            "reserved-beats-rsv",
            "server",
            {},
            b"\xf3\x05" + tail,
            2,
            ProtocolError,
            "reserved opcode 0x3",
        ),
        Bad("rsv2", "server", {}, b"\xa1\x85" + tail, 2, ProtocolError, msgs.format("RSV2")),
        Bad("rsv3", "server", {}, b"\x91\x85" + tail, 2, ProtocolError, msgs.format("RSV3")),
        Bad("rsv1", "server", {}, b"\xc1\x85" + tail, 2, ProtocolError, msgs.format("RSV1")),
        Bad(
            "rsv-all",
            "client",
            {"allow_rsv1": True},
            b"\xf1\x05" + tail,
            2,
            ProtocolError,
            msgs.format("RSV2"),
        ),
        Bad(
            "rsv1+rsv3",
            "client",
            {"allow_rsv1": True},
            b"\xd1\x05" + tail,
            2,
            ProtocolError,
            msgs.format("RSV3"),
        ),
        Bad(
            "rsv2-ctrl-unfragmented",
            "server",
            {},
            b"\x29\xfe" + tail,
            2,
            ProtocolError,
            msgs.format("RSV2"),
        ),
        Bad(
            "rsv1-control",
            "server",
            {"allow_rsv1": True},
            b"\xc9\x85" + tail,
            2,
            ProtocolError,
            "RSV1 bit set on a control frame",
        ),
        Bad(
            "rsv1-control-fragmented",
            "server",
            {"allow_rsv1": True},
            b"\x4a\x05" + tail,
            2,
            ProtocolError,
            "RSV1 bit set on a control frame",
        ),
        Bad(
            "rsv1-continuation",
            "server",
            {"allow_rsv1": True},
            b"\xc0\x85" + tail,
            2,
            ProtocolError,
            "RSV1 bit set on a continuation frame",
        ),
        Bad(
            "fragmented-ping",
            "server",
            {},
            b"\x09\x85" + tail,
            2,
            ProtocolError,
            "fragmented control frame",
        ),
        Bad(
            "fragmented-close-long",
            "server",
            {},
            b"\x08\x7e" + tail,
            2,
            ProtocolError,
            "fragmented control frame",
        ),
        Bad(
            "control-126",
            "server",
            {},
            b"\x89\xfe" + tail,
            2,
            ProtocolError,
            "control frame payload too long",
        ),
        Bad(
            "control-127",
            "client",
            {},
            b"\x88\x7f" + tail,
            2,
            ProtocolError,
            "control frame payload too long",
        ),
        Bad(
            "unmasked-from-client",
            "server",
            {},
            b"\x81\x05hello",
            2,
            ProtocolError,
            "unmasked frame from client",
        ),
        Bad(
            "unmasked-from-client-64",
            "server",
            {"max_frame_size": 10},
            b"\x82\x7f" + tail,
            2,
            ProtocolError,
            "unmasked frame from client",
        ),
        Bad(
            "masked-from-server",
            "client",
            {},
            b"\x81\x85" + KEY + b"hello",
            2,
            ProtocolError,
            "masked frame from server",
        ),
        Bad(
            "msb",
            "client",
            {},
            b"\x82\x7f" + (1 << 63).to_bytes(8, "big") + tail,
            10,
            ProtocolError,
            "payload length has the most significant bit set",
        ),
        Bad(
            "msb-all",
            "server",
            {"max_frame_size": None},
            b"\x82\xff" + b"\xff" * 8 + tail,
            10,
            ProtocolError,
            "payload length has the most significant bit set",
        ),
        Bad(
            "non-minimal-16-0",
            "server",
            {},
            b"\x82\xfe\x00\x00" + tail,
            4,
            ProtocolError,
            "payload length not minimally encoded",
        ),
        Bad(
            "non-minimal-16-125",
            "client",
            {},
            b"\x82\x7e\x00\x7d" + tail,
            4,
            ProtocolError,
            "payload length not minimally encoded",
        ),
        Bad(
            "non-minimal-64-0",
            "client",
            {},
            b"\x82\x7f" + bytes(8) + tail,
            10,
            ProtocolError,
            "payload length not minimally encoded",
        ),
        Bad(
            "non-minimal-64-65535",
            "server",
            {},
            b"\x82\xff" + (65535).to_bytes(8, "big") + tail,
            10,
            ProtocolError,
            "payload length not minimally encoded",
        ),
        Bad(
            "non-minimal-beats-size",
            "server",
            {"max_frame_size": 3},
            b"\x82\xfe\x00\x05" + tail,
            4,
            ProtocolError,
            "payload length not minimally encoded",
        ),
        Bad(
            "too-big-7",
            "server",
            {"max_frame_size": 4},
            b"\x82\x85" + KEY + b"hello",
            2,
            MessageTooBig,
            "frame payload of 5 bytes exceeds max_frame_size of 4",
        ),
        Bad(
            "too-big-16",
            "client",
            {"max_frame_size": 1000},
            b"\x82\x7e\x03\xe9" + tail,
            4,
            MessageTooBig,
            "frame payload of 1001 bytes exceeds max_frame_size of 1000",
        ),
        Bad(
            "too-big-64",
            "server",
            {},
            b"\x82\xff" + (1 << 40).to_bytes(8, "big") + tail,
            10,
            MessageTooBig,
            f"frame payload of {1 << 40} bytes exceeds max_frame_size of {1 << 20}",
        ),
        Bad(
            "too-big-control-zero",
            "client",
            {"max_frame_size": 0},
            b"\x89\x01x",
            2,
            MessageTooBig,
            "frame payload of 1 bytes exceeds max_frame_size of 0",
        ),
    ]
    return cases


BAD = _bad_cases()


def valid_prefix(role: str, kwargs: dict) -> tuple[bytes, list[int], list[tuple]]:
    """A few valid frames; returns (bytes, end offset of each frame, frame tuples)."""
    key = KEY if role == "server" else None
    limit = kwargs.get("max_frame_size", 1 << 20)
    specs = [(0x81, b"Hello"), (0x89, b""), (0x02, b"x" * 130), (0x80, b"end")]
    specs = [(b0, p) for b0, p in specs if limit is None or len(p) <= limit]
    data, ends, tuples = b"", [], []
    for b0, payload in specs:
        data += frame_bytes(b0, payload, key)
        ends.append(len(data))
        tuples.append((b0 & 0x0F, payload, bool(b0 & 0x80), False, False, False))
    return data, ends, tuples


def expected_calls(chunks, ends, tuples, trigger_pos, exc, message):
    """What each feed() must do: ("ok", frames) or ("error", exc, message, frames)."""
    out, total = [], 0
    for chunk in chunks:
        prev, total = total, total + len(chunk)
        done = [t for t, e in zip(tuples, ends) if prev < e <= total]
        if total >= trigger_pos:
            out.append(("error", exc, message, done))
            # once failed, every further call raises the same with no frames
            out += [("error", exc, message, [])] * (len(chunks) - len(out))
            return out
        out.append(("ok", done))
    return out


def run_calls(decoder, chunks):
    out = []
    for chunk in chunks:
        try:
            frames = decoder.feed(chunk)
        except ProtocolError as e:
            assert e.close_code == (1009 if isinstance(e, MessageTooBig) else 1002)
            out.append(("error", type(e), str(e), [as_tuple(f) for f in e.frames]))
        else:
            out.append(("ok", [as_tuple(f) for f in frames]))
    return out


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_rule_at_every_cut(codec, case: Bad) -> None:
    prefix, ends, tuples = valid_prefix(case.role, case.kwargs)
    stream = prefix + case.data
    trigger_pos = len(prefix) + case.trigger
    for cut in range(len(stream) + 1):
        for cut2 in (cut, min(cut + 1, len(stream)), len(stream)):
            chunks = [stream[:cut], stream[cut:cut2], stream[cut2:], b"", b"\x81\x00"]
            d = codec.FrameDecoder(case.role, **case.kwargs)
            got = run_calls(d, chunks)
            assert got == expected_calls(
                chunks, ends, tuples, trigger_pos, case.exc, case.message
            ), (cut, cut2)


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_rule_byte_by_byte(codec, case: Bad) -> None:
    prefix, ends, tuples = valid_prefix(case.role, case.kwargs)
    stream = prefix + case.data
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    d = codec.FrameDecoder(case.role, **case.kwargs)
    assert run_calls(d, chunks) == expected_calls(
        chunks, ends, tuples, len(prefix) + case.trigger, case.exc, case.message
    )


def test_error_frames_and_failed_state(codec) -> None:
    d = codec.FrameDecoder("client")
    assert d.feed(b"\x81\x02hi")[0].payload == b"hi"
    with pytest.raises(ProtocolError) as exc:
        d.feed(b"\x81\x01a\x82\x01b\x83\x00\x81\x01c")
    err = exc.value
    assert type(err) is ProtocolError and err.close_code == 1002
    assert str(err) == "reserved opcode 0x3"
    assert [as_tuple(f) for f in err.frames] == [
        (1, b"a", True, False, False, False),
        (2, b"b", True, False, False, False),
    ]
    # every later feed() raises the same error, whatever it is given
    for again in (b"", b"\x81\x00", bytearray(b"\x81"), "not even a buffer"):
        with pytest.raises(ProtocolError) as exc2:
            d.feed(again)
        assert type(exc2.value) is ProtocolError
        assert str(exc2.value) == "reserved opcode 0x3"
        assert exc2.value.close_code == 1002
        assert exc2.value.frames == []


def test_failed_state_message_too_big(codec) -> None:
    d = codec.FrameDecoder("server", max_frame_size=1)
    with pytest.raises(MessageTooBig):
        d.feed(b"\x82\x82")
    with pytest.raises(MessageTooBig) as exc:
        d.feed(frame_bytes(0x81, b"", KEY))
    assert exc.value.close_code == 1009 and exc.value.frames == []
    assert str(exc.value) == "frame payload of 2 bytes exceeds max_frame_size of 1"


def test_rsv1_allowed(codec) -> None:
    d = codec.FrameDecoder("client", allow_rsv1=True)
    (f,) = d.feed(b"\xc1\x02hi")
    assert as_tuple(f) == (1, b"hi", True, True, False, False)
    (f,) = d.feed(b"\x42\x00")
    assert as_tuple(f) == (2, b"", False, True, False, False)
