"""apply_mask and mask_inplace against plain references, at every length, phase and offset."""

from __future__ import annotations

import array
import os
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

KEYS = [b"\x37\xfa\x21\x3d", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x80\x7f\xfe"]


def ref_loop(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """The definition, one byte at a time."""
    return bytes(b ^ key[(phase + i) % 4] for i, b in enumerate(data))


def ref_np(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """A vectorised reference (numpy)."""
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    k = np.frombuffer(key, dtype=np.uint8)
    stream = np.resize(np.roll(k, -phase), arr.size)
    return (arr ^ stream).tobytes()


def test_references_agree() -> None:
    rng = random.Random(1)
    for n in range(0, 40):
        data = rng.randbytes(n)
        for phase in range(4):
            assert ref_loop(data, KEYS[0], phase) == ref_np(data, KEYS[0], phase)


@pytest.mark.parametrize("kernel", ["bigint", "bytearray"])
def test_pure_python_kernels(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both kernels of the pure codec, on any interpreter.

    Big integers are the default on CPython, a bytearray loop on PyPy (with
    ``mask_inplace`` on a bytearray working in place there).
    """
    from wsframe import _codec_py

    monkeypatch.setattr(_codec_py, "_ON_PYPY", kernel == "bytearray")
    monkeypatch.setattr(_codec_py, "_xor", getattr(_codec_py, f"_xor_{kernel}"))
    rng = random.Random(7692)
    key = KEYS[3]
    for n in [*range(70), 125, 1000, 4099, 65536, 65539]:
        data = rng.randbytes(n)
        for phase in range(4):
            expected = ref_np(data, key, phase)
            assert _codec_py.apply_mask(data, key, phase) == expected, (n, phase)
            buf = bytearray(data)
            assert _codec_py.mask_inplace(buf, key, phase) == (phase + n) % 4
            assert buf == expected, (n, phase)
            other = array.array("B", data)
            _codec_py.mask_inplace(memoryview(other), key, phase)
            assert other.tobytes() == expected, (n, phase)
        frame = _codec_py.encode_frame(2, data, mask=key)
        assert frame.endswith(ref_np(data, key))
        decoder = _codec_py.FrameDecoder("server", max_frame_size=None)
        [decoded] = decoder.feed(frame[:3]) + decoder.feed(frame[3:])
        assert decoded.payload == data


def test_every_length_phase_offset(codec) -> None:
    rng = random.Random(6455)
    base = bytes(rng.randbytes(300 + 16))
    key = KEYS[0]
    for n in range(0, 301):
        for offset in range(16):
            chunk = base[offset : offset + n]
            for phase in range(4):
                expected = ref_np(chunk, key, phase)
                # apply_mask on a misaligned slice of a larger buffer
                src = bytearray(base)
                view = memoryview(src)[offset : offset + n]
                out = codec.apply_mask(view, key, phase)
                assert type(out) is bytes
                assert out == expected, (n, offset, phase)
                assert bytes(src) == base  # input untouched
                # mask_inplace on the same slice: only the slice changes
                ret = codec.mask_inplace(view, key, phase)
                assert ret == (phase + n) % 4
                assert bytes(src[offset : offset + n]) == expected, (n, offset, phase)
                assert src[:offset] == base[:offset]
                assert src[offset + n :] == base[offset + n :]
                view.release()


@pytest.mark.parametrize("key", KEYS)
def test_small_lengths_against_loop(codec, key: bytes) -> None:
    rng = random.Random(7)
    for n in range(0, 70):
        data = rng.randbytes(n)
        for phase in range(4):
            assert codec.apply_mask(data, key, phase) == ref_loop(data, key, phase)
            buf = bytearray(data)
            assert codec.mask_inplace(buf, key, phase) == (phase + n) % 4
            assert bytes(buf) == ref_loop(data, key, phase)


def test_default_phase_is_zero(codec) -> None:
    data = bytes(range(37))
    assert codec.apply_mask(data, KEYS[0]) == codec.apply_mask(data, KEYS[0], 0)
    buf = bytearray(data)
    assert codec.mask_inplace(buf, KEYS[0]) == 37 % 4
    assert bytes(buf) == ref_loop(data, KEYS[0], 0)


def test_mask_is_an_involution(codec) -> None:
    data = os.urandom(1000)
    for phase in range(4):
        assert codec.apply_mask(codec.apply_mask(data, KEYS[3], phase), KEYS[3], phase) == data


@pytest.mark.parametrize("size", [64 * 1024, (1 << 20) + 3])
def test_large(codec, size: int) -> None:
    data = os.urandom(size)
    key = os.urandom(4)
    for phase in range(4):
        expected = ref_np(data, key, phase)
        assert codec.apply_mask(data, key, phase) == expected
        buf = bytearray(data)
        assert codec.mask_inplace(buf, key, phase) == (phase + size) % 4
        assert buf == expected


def test_large_misaligned_numpy(codec) -> None:
    arr = np.frombuffer(os.urandom((1 << 20) + 40), dtype=np.uint8).copy()
    key = b"\x12\x34\x56\x78"
    for offset in (1, 3, 7, 13):
        chunk = arr[offset : offset + (1 << 20) + 3]
        expected = ref_np(chunk.tobytes(), key, offset % 4)
        assert codec.apply_mask(chunk, key, offset % 4) == expected
        work = chunk.copy()
        codec.mask_inplace(work, key, offset % 4)
        assert work.tobytes() == expected


@given(
    data=st.binary(max_size=600),
    key=st.binary(min_size=4, max_size=4),
    phase=st.integers(0, 3),
    cuts=st.lists(st.integers(0, 600), max_size=8),
)
def test_chained_phases_equal_one_call(codec, data, key, phase, cuts) -> None:
    whole = codec.apply_mask(data, key, phase)
    points = sorted({c for c in cuts if c <= len(data)} | {0, len(data)})
    # apply_mask piece by piece
    out = []
    p = phase
    for a, b in zip(points, points[1:]):
        out.append(codec.apply_mask(data[a:b], key, p))
        p = (p + (b - a)) % 4
    assert b"".join(out) == whole
    # mask_inplace piece by piece, passing the returned phase on
    buf = bytearray(data)
    view = memoryview(buf)
    p = phase
    for a, b in zip(points, points[1:]):
        p = codec.mask_inplace(view[a:b], key, p)
    view.release()
    assert p == (phase + len(data)) % 4
    assert bytes(buf) == whole


@pytest.mark.parametrize(
    "key",
    [
        b"\x37\xfa\x21\x3d",
        bytearray(b"\x37\xfa\x21\x3d"),
        memoryview(b"xx\x37\xfa\x21\x3dyy")[2:6],
        array.array("B", b"\x37\xfa\x21\x3d"),
        array.array("I", [int.from_bytes(b"\x37\xfa\x21\x3d", "little")]),
        np.frombuffer(b"\x37\xfa\x21\x3d", dtype=np.uint8),
        np.frombuffer(b"\x37\xfa\x21\x3d", dtype=np.uint16),
    ],
    ids=["bytes", "bytearray", "memoryview-slice", "array-B", "array-I", "np-u8", "np-u16"],
)
def test_key_buffer_types(codec, key) -> None:
    data = b"Hello, WebSocket!"
    expected = ref_loop(data, b"\x37\xfa\x21\x3d", 1)
    assert codec.apply_mask(data, key, 1) == expected
    buf = bytearray(data)
    codec.mask_inplace(buf, key, 1)
    assert bytes(buf) == expected


def test_phase_accepts_index_objects(codec) -> None:
    data = b"abcdefg"
    assert codec.apply_mask(data, KEYS[0], np.int64(2)) == ref_loop(data, KEYS[0], 2)
    assert codec.mask_inplace(bytearray(data), KEYS[0], True) == (1 + 7) % 4


@pytest.mark.parametrize("phase", [4, -1, 5, 100, -4])
def test_bad_phase(codec, phase: int) -> None:
    with pytest.raises(ValueError) as exc:
        codec.apply_mask(b"abc", KEYS[0], phase)
    assert str(exc.value) == f"phase must be 0, 1, 2 or 3, not {phase}"
    with pytest.raises(ValueError) as exc:
        codec.mask_inplace(bytearray(b"abc"), KEYS[0], phase)
    assert str(exc.value) == f"phase must be 0, 1, 2 or 3, not {phase}"


@pytest.mark.parametrize("phase", [1.0, "1", None])
def test_phase_not_int(codec, phase) -> None:
    with pytest.raises(TypeError):
        codec.apply_mask(b"abc", KEYS[0], phase)
    with pytest.raises(TypeError):
        codec.mask_inplace(bytearray(b"abc"), KEYS[0], phase)


@pytest.mark.parametrize("n", [0, 1, 3, 5, 8])
def test_bad_key_length(codec, n: int) -> None:
    with pytest.raises(ValueError) as exc:
        codec.apply_mask(b"abc", b"k" * n)
    assert str(exc.value) == f"key must be 4 bytes, not {n}"
    with pytest.raises(ValueError) as exc:
        codec.mask_inplace(bytearray(b"abc"), bytearray(n))
    assert str(exc.value) == f"key must be 4 bytes, not {n}"


def test_key_length_counts_bytes_not_items(codec) -> None:
    with pytest.raises(ValueError) as exc:
        codec.apply_mask(b"abc", array.array("I", [1, 2]))
    assert str(exc.value) == "key must be 4 bytes, not 8"


def test_readonly_buffer(codec) -> None:
    for buf in (b"abcd", memoryview(bytearray(b"abcd")).toreadonly(), np.zeros(4, np.uint8)[:]):
        if isinstance(buf, np.ndarray):
            buf.flags.writeable = False
        with pytest.raises(TypeError) as exc:
            codec.mask_inplace(buf, KEYS[0])
        assert str(exc.value) == "buffer must be writable"


def test_not_a_buffer(codec) -> None:
    with pytest.raises(TypeError) as exc:
        codec.apply_mask("text", KEYS[0])
    assert str(exc.value) == "data must be a bytes-like object, not 'str'"
    with pytest.raises(TypeError) as exc:
        codec.apply_mask(b"abc", 1234)
    assert str(exc.value) == "key must be a bytes-like object, not 'int'"
    with pytest.raises(TypeError) as exc:
        codec.mask_inplace([1, 2, 3], KEYS[0])
    assert str(exc.value) == "buffer must be a bytes-like object, not 'list'"
    with pytest.raises(TypeError) as exc:
        codec.mask_inplace(bytearray(3), None)
    assert str(exc.value) == "key must be a bytes-like object, not 'NoneType'"


def test_argument_order(codec) -> None:
    # data is checked before key, key before phase
    with pytest.raises(TypeError, match=r"^data must be"):
        codec.apply_mask(None, b"12", 9)
    with pytest.raises(ValueError, match=r"^key must be 4 bytes, not 2$"):
        codec.apply_mask(b"", b"12", 9)
    # buffer: type, then contiguity, then writability, then key
    with pytest.raises(TypeError, match=r"^buffer must be a C-contiguous buffer$"):
        codec.mask_inplace(memoryview(b"abcdef")[::2], b"12", 9)
    with pytest.raises(TypeError, match=r"^buffer must be writable$"):
        codec.mask_inplace(b"abc", b"12", 9)
    with pytest.raises(ValueError, match=r"^key must be 4 bytes, not 2$"):
        codec.mask_inplace(bytearray(3), b"12", 9)


def test_no_reference_kept(codec) -> None:
    buf = bytearray(b"abcdefgh")
    codec.mask_inplace(buf, KEYS[0], 0)
    codec.apply_mask(buf, bytearray(KEYS[0]))
    buf.extend(b"more")  # would raise BufferError if a view were still exported
    key = bytearray(KEYS[0])
    codec.apply_mask(b"x", key)
    key.append(1)
    with pytest.raises(ValueError):
        codec.mask_inplace(buf, b"k")
    buf.extend(b"again")  # no view leaked on the error path either


def test_simd_path(codec) -> None:
    assert codec.SIMD_PATH in {"avx2", "sse2", "neon", "scalar64", "python"}
    assert (codec.SIMD_PATH == "python") == codec.__name__.endswith("_codec_py")
