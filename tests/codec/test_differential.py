"""The C and the Python codec give identical results and errors, call by call."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from conftest import outcome
from hypothesis import given
from hypothesis import strategies as st

from wsframe import MessageTooBig, ProtocolError

DATA_OPS = [0, 1, 2]
CONTROL_OPS = [8, 9, 10]


def as_tuple(f: Any) -> tuple[Any, ...]:
    return (f.opcode, f.payload, f.fin, f.rsv1, f.rsv2, f.rsv3)


def run_calls(decoder: Any, chunks: list[bytes], buffered: bool = False) -> list[tuple[Any, ...]]:
    """Feed each chunk; describe each call's result or error (and ``buffered``)."""
    out = []
    for chunk in chunks:
        try:
            frames = decoder.feed(chunk)
        except ProtocolError as e:
            out.append(("error", type(e), str(e), e.close_code, [as_tuple(f) for f in e.frames]))
        else:
            out.append(("ok", [as_tuple(f) for f in frames]))
            if buffered:
                out[-1] += (decoder.buffered,)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 <= c <= len(data)} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


# --------------------------------------------------------------------------
# Masking and encoding


@given(
    data=st.binary(max_size=300),
    key=st.binary(min_size=4, max_size=4),
    phase=st.integers(0, 3),
    offset=st.integers(0, 15),
)
def test_mask_identical(codecs_pair, data, key, phase, offset) -> None:
    c, py = codecs_pair
    buf = bytes(offset) + data
    view = memoryview(buf)[offset:]
    assert c.apply_mask(view, key, phase) == py.apply_mask(view, key, phase)
    bc, bp = bytearray(buf), bytearray(buf)
    assert c.mask_inplace(memoryview(bc)[offset:], key, phase) == py.mask_inplace(
        memoryview(bp)[offset:], key, phase
    )
    assert bc == bp


frame_args = st.fixed_dictionaries(
    {
        "opcode": st.sampled_from(DATA_OPS + CONTROL_OPS),
        "payload": st.one_of(
            st.binary(max_size=200),
            st.text(max_size=60),
            st.integers(0, 70000).map(lambda n: b"\x5a" * n),
        ),
        "fin": st.booleans(),
        "rsv1": st.booleans(),
        "rsv2": st.booleans(),
        "rsv3": st.booleans(),
        "mask": st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    }
)


@given(args=frame_args)
def test_encode_identical(codecs_pair, args) -> None:
    c, py = codecs_pair
    opcode = args.pop("opcode")
    payload = args.pop("payload")
    r_c = outcome(c.encode_frame, opcode, payload, **args)
    r_py = outcome(py.encode_frame, opcode, payload, **args)
    assert r_c == r_py


@given(
    opcode=st.one_of(st.integers(-3, 20), st.sampled_from([None, 1.0, "1"])),
    payload=st.one_of(
        st.binary(max_size=130), st.text(max_size=3), st.sampled_from([None, 3, [1]])
    ),
    fin=st.booleans(),
    mask=st.one_of(st.none(), st.binary(max_size=6), st.sampled_from(["abcd", 7])),
)
def test_encode_errors_identical(codecs_pair, opcode, payload, fin, mask) -> None:
    c, py = codecs_pair
    assert outcome(c.encode_frame, opcode, payload, fin=fin, mask=mask) == outcome(
        py.encode_frame, opcode, payload, fin=fin, mask=mask
    )


@given(
    data=st.one_of(st.binary(max_size=8), st.sampled_from([None, "s", 5])),
    key=st.one_of(st.binary(max_size=6), st.sampled_from([None, "abcd"])),
    phase=st.one_of(st.integers(-2, 6), st.sampled_from([None, 1.5])),
    inplace=st.booleans(),
)
def test_mask_errors_identical(codecs_pair, data, key, phase, inplace) -> None:
    c, py = codecs_pair
    if inplace:

        def mk(d):
            return bytearray(d) if isinstance(d, bytes) else d

        assert outcome(c.mask_inplace, mk(data), key, phase) == outcome(
            py.mask_inplace, mk(data), key, phase
        )
    else:
        assert outcome(c.apply_mask, data, key, phase) == outcome(py.apply_mask, data, key, phase)


# --------------------------------------------------------------------------
# Decoding valid streams


@st.composite
def streams(draw: Any) -> tuple[str, list[tuple[Any, ...]], bytes]:
    """A role and a stream of random valid frames for it, with the expected frames."""
    role = draw(st.sampled_from(["server", "client"]))
    allow_rsv1 = draw(st.booleans())
    n = draw(st.integers(0, 12))
    frames, data = [], b""
    from wsframe import _codec_py as py

    for _ in range(n):
        opcode = draw(st.sampled_from(DATA_OPS + CONTROL_OPS))
        if opcode >= 8:
            payload = draw(st.binary(max_size=125))
            fin = True
        else:
            size = draw(st.sampled_from([0, 1, 3, 125, 126, 127, 200, 65535, 65536, 70000]))
            payload = (
                bytes([size & 0xFF]) * size
                if size > 200
                else draw(st.binary(min_size=min(size, 200), max_size=min(size, 200)))
            )
            fin = draw(st.booleans())
        rsv1 = allow_rsv1 and opcode in (1, 2) and draw(st.booleans())
        mask = draw(st.binary(min_size=4, max_size=4)) if role == "server" else None
        data += py.encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=mask)
        frames.append((opcode, payload, fin, rsv1, False, False))
    return role if not allow_rsv1 else role + "+rsv1", frames, data


def _decoder(mod: Any, role: str, **kwargs: Any) -> Any:
    base, _, flag = role.partition("+")
    return mod.FrameDecoder(base, allow_rsv1=bool(flag), max_frame_size=None, **kwargs)


@given(stream=streams(), cuts=st.lists(st.integers(0, 300000), max_size=10))
def test_decode_random_streams(codecs_pair, stream, cuts) -> None:
    c, py = codecs_pair
    role, frames, data = stream
    # also cut close to frame boundaries, where headers are
    chunks = split(data, [*cuts, len(data) // 2, 1, 3])
    dc, dp = _decoder(c, role), _decoder(py, role)
    got_c, got_py = [], []
    for chunk in chunks:
        fc = [as_tuple(f) for f in dc.feed(chunk)]
        fp = [as_tuple(f) for f in dp.feed(chunk)]
        assert fc == fp
        got_c += fc
        got_py += fp
    assert got_c == frames
    assert dc.buffered == dp.buffered == 0


@given(stream=streams(), cuts=st.lists(st.integers(0, 300000), max_size=10))
def test_buffered_identical(codecs_pair, stream, cuts) -> None:
    """``buffered`` agrees after every call (kept apart so a difference here is reported alone)."""
    c, py = codecs_pair
    role, _, data = stream
    chunks = split(data, [*cuts, 1, 2, 3, 5, 9, 15])
    assert run_calls(_decoder(c, role), chunks, True) == run_calls(_decoder(py, role), chunks, True)


@given(stream=streams())
def test_decode_one_byte_at_a_time(codecs_pair, stream) -> None:
    c, py = codecs_pair
    role, frames, data = stream
    if len(data) > 3000:
        data = data[:3000]
        frames = None
    dc, dp = _decoder(c, role), _decoder(py, role)
    got = []
    for i in range(len(data)):
        chunk = data[i : i + 1]
        fc = [as_tuple(f) for f in dc.feed(chunk)]
        assert fc == [as_tuple(f) for f in dp.feed(chunk)]
        got += fc
    if frames is not None:
        assert got == frames


# --------------------------------------------------------------------------
# Decoding invalid streams


def _bad_frames() -> list[tuple[str, dict, bytes]]:
    """(role, kwargs, offending bytes) for every rule of the contract."""
    k = b"\x01\x02\x03\x04"
    tail = b"\x00" * 12
    bad: list[tuple[str, dict, bytes]] = []
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        bad.append(("server", {}, bytes([0x80 | op, 0x80]) + k))
    for b0 in (0xA1, 0x91, 0xC1, 0xF1, 0xE2, 0xB0, 0xD9):
        bad.append(("server", {}, bytes([b0, 0x81]) + k + b"x"))
        if b0 != 0xC1:  # RSV1 on a text frame is fine with allow_rsv1
            bad.append(("client", {"allow_rsv1": True}, bytes([b0, 0x01]) + b"x"))
    for b0 in (0xC8, 0xC9, 0xCA, 0x49, 0xC0, 0x40):
        bad.append(("client", {"allow_rsv1": True}, bytes([b0, 0x00])))
    for b0 in (0x08, 0x09, 0x0A):
        bad.append(("server", {}, bytes([b0, 0x80]) + k))
        bad.append(("client", {}, bytes([b0, 0x7E]) + tail))
    for b0 in (0x88, 0x89, 0x8A):
        bad.append(("server", {}, bytes([b0, 0xFE]) + tail))
        bad.append(("client", {}, bytes([b0, 0x7F]) + tail))
    bad.append(("server", {}, b"\x81\x03abc"))
    bad.append(("server", {}, b"\x82\x7e\x01\x00" + tail))
    bad.append(("client", {}, b"\x81\x83" + k + b"abc"))
    bad.append(("client", {}, b"\x82\x7f" + b"\x80" + bytes(7) + tail))
    bad.append(("server", {"max_frame_size": None}, b"\x82\xff" + b"\xff" * 8 + tail))
    bad.append(("client", {}, b"\x82\x7e\x00\x7d" + tail))
    bad.append(("server", {}, b"\x82\xfe\x00\x00" + tail))
    bad.append(("client", {}, b"\x82\x7f" + (65535).to_bytes(8, "big") + tail))
    bad.append(("server", {}, b"\x82\xff" + (125).to_bytes(8, "big") + tail))
    bad.append(("server", {"max_frame_size": 10}, b"\x82\x8b" + k + b"x" * 11))
    bad.append(("client", {"max_frame_size": 200}, b"\x82\x7e\x00\xc9" + tail))
    bad.append(("client", {}, b"\x82\x7f" + (1 << 21).to_bytes(8, "big") + tail))
    bad.append(("server", {"max_frame_size": 0}, b"\x89\x81" + k + b"x"))
    bad.append(("client", {"max_frame_size": 70000}, b"\x82\x7f" + (70001).to_bytes(8, "big")))
    return bad


BAD = _bad_frames()


def _valid_prefix(role: str, kwargs: dict) -> bytes:
    from wsframe import _codec_py as py

    limit = kwargs.get("max_frame_size", 1 << 20)
    mask = b"\x09\x08\x07\x06" if role == "server" else None
    out = b""
    for op, payload in ((1, b"Hi"), (9, b""), (2, b"z" * 130), (0, b"!")):
        if limit is None or len(payload) <= limit:
            out += py.encode_frame(op, payload, mask=mask)
    return out


@pytest.mark.parametrize("case", BAD, ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD)])
def test_invalid_every_cut_identical(codecs_pair, case) -> None:
    c, py = codecs_pair
    role, kwargs, bad = case
    stream = _valid_prefix(role, kwargs) + bad
    for cut in range(len(stream) + 1):
        chunks = [stream[:cut], stream[cut:], b"", b"\x81\x00"]
        r_c = run_calls(c.FrameDecoder(role, **kwargs), chunks)
        r_py = run_calls(py.FrameDecoder(role, **kwargs), chunks)
        assert r_c == r_py, cut
        assert any(r[0] == "error" for r in r_py)
    chunks = [stream[i : i + 1] for i in range(len(stream))] + [b"x"]
    r_c = run_calls(c.FrameDecoder(role, **kwargs), chunks)
    assert r_c == run_calls(py.FrameDecoder(role, **kwargs), chunks)


@given(
    case=st.sampled_from(BAD),
    cuts=st.lists(st.integers(0, 200), max_size=6),
    junk=st.binary(max_size=20),
)
def test_invalid_random_cuts_identical(codecs_pair, case, cuts, junk) -> None:
    c, py = codecs_pair
    role, kwargs, bad = case
    stream = _valid_prefix(role, kwargs) + bad + junk
    chunks = [*split(stream, cuts), junk]
    assert run_calls(c.FrameDecoder(role, **kwargs), chunks) == run_calls(
        py.FrameDecoder(role, **kwargs), chunks
    )


@given(
    role=st.sampled_from(["server", "client"]),
    allow_rsv1=st.booleans(),
    limit=st.sampled_from([0, 5, 125, 126, 65536, None]),
    data=st.binary(max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=5),
)
def test_random_bytes_identical(codecs_pair, role, allow_rsv1, limit, data, cuts) -> None:
    c, py = codecs_pair
    chunks = split(data, cuts)
    kw = {"allow_rsv1": allow_rsv1, "max_frame_size": limit}
    dc, dp = c.FrameDecoder(role, **kw), py.FrameDecoder(role, **kw)
    assert run_calls(dc, chunks) == run_calls(dp, chunks)


def test_error_classes() -> None:
    assert issubclass(MessageTooBig, ProtocolError)


# --------------------------------------------------------------------------
# Frames, constructors, UTF-8


def test_frame_identical(codecs_pair) -> None:
    c, py = codecs_pair
    for args in [(1,), (2, b"abc", False, True), (10, b"", True, False, True, True), (0, b"x" * 9)]:
        fc, fp = c.Frame(*args), py.Frame(*args)
        assert repr(fc) == repr(fp)
        assert as_tuple(fc) == as_tuple(fp)
        assert hash(fc) == hash(fp)
        assert fc == c.Frame(*args) and fp == py.Frame(*args)
    for bad in [(16,), (-1,), (1.5,), (1, None), (1, 5)]:
        assert outcome(c.Frame, *bad)[:2] == outcome(py.Frame, *bad)[:2]


@given(
    role=st.one_of(st.sampled_from(["server", "client", "Server", "", None, b"client"])),
    limit=st.one_of(st.none(), st.integers(-3, 10), st.sampled_from([1.5, "9"])),
)
def test_decoder_constructor_identical(codecs_pair, role, limit) -> None:
    c, py = codecs_pair
    rc = outcome(c.FrameDecoder, role, max_frame_size=limit)
    rp = outcome(py.FrameDecoder, role, max_frame_size=limit)
    assert rc[0] == rp[0]
    if rc[0] == "raise":
        assert rc == rp
    else:
        dc, dp = rc[2], rp[2]
        assert (dc.role, dc.max_frame_size, dc.allow_rsv1, dc.buffered) == (
            dp.role,
            dp.max_frame_size,
            dp.allow_rsv1,
            dp.buffered,
        )


@given(data=st.binary(max_size=60), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_utf8_identical(codecs_pair, data, cuts) -> None:
    c, py = codecs_pair
    assert c.validate_utf8(data) == py.validate_utf8(data)
    vc, vp = c.Utf8Validator(), py.Utf8Validator()
    for chunk in split(data, cuts):
        assert vc.feed(chunk) == vp.feed(chunk)
    assert vc.feed(b"", final=True) == vp.feed(b"", final=True)


def test_utf8_random_text_identical(codecs_pair) -> None:
    c, py = codecs_pair
    rng = random.Random(5)
    alphabet = "aé€𝄞\u07ff\u0800\uffff\U0010ffff"
    for _ in range(300):
        data = bytearray("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))).encode())
        if data and rng.random() < 0.5:
            data[rng.randrange(len(data))] = rng.randrange(256)
        vc, vp = c.Utf8Validator(), py.Utf8Validator()
        for i in range(len(data)):
            assert vc.feed(data[i : i + 1]) == vp.feed(data[i : i + 1])
        assert c.validate_utf8(data) == py.validate_utf8(data)


def test_buffer_type_messages_identical(codecs_pair) -> None:
    c, py = codecs_pair
    objs = [
        None,
        5,
        "s",
        memoryview(b"abcdefgh")[::2],
        np.zeros((3, 3)).T,
        b"abcd",
        bytearray(b"abcd"),
        np.zeros((0, 4)),
        np.arange(4, dtype=np.uint8),
    ]
    for obj in objs:
        for fn, args in [
            ("apply_mask", (obj, b"abcd")),
            ("apply_mask", (b"x", obj)),
            ("mask_inplace", (obj, b"abcd")),
            ("mask_inplace", (bytearray(2), obj)),
            ("validate_utf8", (obj,)),
            ("encode_frame", (1, obj)),
        ]:
            assert outcome(getattr(c, fn), *args) == outcome(getattr(py, fn), *args), (fn, obj)
        assert outcome(c.encode_frame, 1, b"", mask=obj) == outcome(
            py.encode_frame, 1, b"", mask=obj
        )
