"""Every function accepts every C-contiguous buffer and rejects the rest the same way."""

from __future__ import annotations

import array
from typing import Any, Callable

import numpy as np
import pytest

KEY = b"\x37\xfa\x21\x3d"


def _writable_makers() -> dict[str, Callable[[bytes], Any]]:
    """Writable buffers holding exactly ``raw`` (len(raw) a multiple of 8)."""
    return {
        "bytearray": bytearray,
        "memoryview": lambda raw: memoryview(bytearray(raw)),
        "memoryview-slice": lambda raw: memoryview(bytearray(b"xyz" + raw + b"uv"))[3:-2],
        "array-B": lambda raw: array.array("B", raw),
        "array-I": lambda raw: array.array("I", raw),
        "numpy-uint8": lambda raw: np.frombuffer(raw, dtype=np.uint8).copy(),
        "numpy-float64": lambda raw: np.frombuffer(raw, dtype=np.float64).copy(),
        "numpy-2d-uint8": lambda raw: np.frombuffer(raw, dtype=np.uint8).reshape(2, -1).copy(),
        "numpy-2d-uint32": lambda raw: np.frombuffer(raw, dtype=np.uint32).reshape(-1, 2).copy(),
        "numpy-3d-int16": lambda raw: np.frombuffer(raw, dtype=np.int16).reshape(2, 2, -1).copy(),
        "numpy-big-endian": lambda raw: np.frombuffer(raw, dtype=">i4").copy(),
        "numpy-c-slice": lambda raw: np.frombuffer(b"\0" * 8 + raw, dtype=np.uint8).copy()[8:],
        "numpy-0d": lambda raw: np.frombuffer(raw[:8], dtype=np.float64).copy().reshape(()),
    }


def _readonly_makers() -> dict[str, Callable[[bytes], Any]]:
    return {
        "bytes": bytes,
        "memoryview-bytes": memoryview,
        "memoryview-readonly": lambda raw: memoryview(bytearray(raw)).toreadonly(),
        "numpy-readonly": lambda raw: np.frombuffer(raw, dtype=np.uint16),
    }


MAKERS = {**_writable_makers(), **_readonly_makers()}
WRITABLE = _writable_makers()

EMPTY = {
    "bytes": b"",
    "bytearray": bytearray(),
    "memoryview": memoryview(b""),
    "array-I": array.array("I"),
    "numpy-empty": np.zeros(0, dtype=np.uint8),
    "numpy-0x3": np.zeros((0, 3)),
    "numpy-3x0": np.zeros((3, 0), dtype=np.uint32),
}


def _raw_for(name: str, raw: bytes) -> bytes:
    """The bytes a maker actually holds (the 0-d array keeps only 8)."""
    return raw[:8] if name == "numpy-0d" else raw


def noncontiguous() -> dict[str, Any]:
    return {
        "memoryview-step": memoryview(bytearray(b"abcdefghijklmnop"))[::2],
        "numpy-step": np.arange(16, dtype=np.uint8)[::2],
        "numpy-transposed": np.arange(16, dtype=np.uint8).reshape(4, 4).T,
        "numpy-columns": np.arange(16, dtype=np.uint8).reshape(4, 4)[:, :2],
        "numpy-fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    }


RAW16 = bytes(range(40, 56))
STREAM16 = b"\x82\x0e" + bytes(range(14))  # one unmasked binary frame, 16 bytes
TEXT16 = "héllo wörld!".encode()  # 14 bytes + 2
TEXT16 += b"!" * (16 - len(TEXT16))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_apply_mask_data(codec, name: str) -> None:
    raw = _raw_for(name, RAW16)
    assert codec.apply_mask(MAKERS[name](RAW16), KEY, 3) == codec.apply_mask(raw, KEY, 3)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_apply_mask_key(codec, name: str) -> None:
    if name == "numpy-0d":
        key = np.frombuffer(KEY, dtype=np.float32).copy().reshape(())
    else:
        key = MAKERS[name](KEY * 2)
        key = key[: len(key) // 2] if not isinstance(key, memoryview) or key.ndim == 1 else key
        if len(memoryview(key).tobytes()) != 4:
            pytest.skip("this maker cannot hold exactly 4 bytes")
    assert codec.apply_mask(RAW16, key) == codec.apply_mask(RAW16, KEY)
    buf = bytearray(RAW16)
    codec.mask_inplace(buf, key, 2)
    assert bytes(buf) == codec.apply_mask(RAW16, KEY, 2)


@pytest.mark.parametrize("name", sorted(WRITABLE))
def test_mask_inplace_buffer(codec, name: str) -> None:
    raw = _raw_for(name, RAW16)
    buf = WRITABLE[name](RAW16)
    assert codec.mask_inplace(buf, KEY, 1) == (1 + len(raw)) % 4
    assert memoryview(buf).tobytes() == codec.apply_mask(raw, KEY, 1)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_encode_payload_and_mask(codec, name: str) -> None:
    raw = _raw_for(name, RAW16)
    assert codec.encode_frame(2, MAKERS[name](RAW16)) == codec.encode_frame(2, raw)
    assert codec.encode_frame(2, MAKERS[name](RAW16), mask=KEY) == codec.encode_frame(
        2, raw, mask=KEY
    )
    if name != "numpy-0d":
        key = MAKERS[name](KEY * 2)
        if len(memoryview(key).tobytes()) == 8:
            with pytest.raises(ValueError, match=r"^mask must be 4 bytes, not 8$"):
                codec.encode_frame(2, raw, mask=key)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_decoder_feed(codec, name: str) -> None:
    raw = _raw_for(name, STREAM16)
    d = codec.FrameDecoder("client")
    frames = d.feed(MAKERS[name](STREAM16))
    if name == "numpy-0d":
        assert frames == [] and d.buffered == 8
    else:
        assert [f.payload for f in frames] == [bytes(range(14))] and d.buffered == 0
    assert raw  # the input was not consumed or altered


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_utf8(codec, name: str) -> None:
    raw = _raw_for(name, TEXT16)
    assert codec.validate_utf8(MAKERS[name](TEXT16)) is codec.validate_utf8(raw)
    assert codec.Utf8Validator().feed(MAKERS[name](TEXT16)) is True
    bad = b"\xff" + TEXT16[1:]
    assert codec.validate_utf8(MAKERS[name](bad)) is False
    assert codec.Utf8Validator().feed(MAKERS[name](bad), final=True) is False


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_zero_size(codec, name: str) -> None:
    empty = EMPTY[name]
    assert codec.apply_mask(empty, KEY, 2) == b""
    if not memoryview(empty).readonly:
        assert codec.mask_inplace(empty, KEY, 2) == 2
    assert codec.encode_frame(1, empty) == b"\x81\x00"
    assert codec.encode_frame(9, empty, mask=KEY) == b"\x89\x80" + KEY
    d = codec.FrameDecoder("client")
    assert d.feed(empty) == [] and d.buffered == 0
    assert codec.validate_utf8(empty) is True
    assert codec.Utf8Validator().feed(empty, final=True) is True
    with pytest.raises(ValueError, match=r"^key must be 4 bytes, not 0$"):
        codec.apply_mask(b"abc", empty)


@pytest.mark.parametrize("name", sorted(noncontiguous()))
def test_noncontiguous(codec, name: str) -> None:
    def obj() -> Any:
        return noncontiguous()[name]

    cases = [
        ("data", lambda: codec.apply_mask(obj(), KEY)),
        ("key", lambda: codec.apply_mask(b"abc", obj())),
        ("buffer", lambda: codec.mask_inplace(obj(), KEY)),
        ("key", lambda: codec.mask_inplace(bytearray(3), obj())),
        ("payload", lambda: codec.encode_frame(2, obj())),
        ("mask", lambda: codec.encode_frame(2, b"abc", mask=obj())),
        ("data", lambda: codec.FrameDecoder("server").feed(obj())),
        ("data", lambda: codec.Utf8Validator().feed(obj())),
        ("data", lambda: codec.validate_utf8(obj())),
    ]
    for pname, call in cases:
        with pytest.raises(TypeError) as exc:
            call()
        assert str(exc.value) == f"{pname} must be a C-contiguous buffer", pname


@pytest.mark.parametrize(
    "obj", [None, 1, 1.5, "str", [1, 2], (1,), {1: 2}, object()], ids=lambda o: type(o).__name__
)
def test_not_a_buffer(codec, obj: Any) -> None:
    t = type(obj).__name__
    cases = [
        ("data", lambda: codec.apply_mask(obj, KEY)),
        ("key", lambda: codec.apply_mask(b"abc", obj)),
        ("buffer", lambda: codec.mask_inplace(obj, KEY)),
        ("key", lambda: codec.mask_inplace(bytearray(3), obj)),
        ("data", lambda: codec.FrameDecoder("server").feed(obj)),
        ("data", lambda: codec.Utf8Validator().feed(obj)),
        ("data", lambda: codec.validate_utf8(obj)),
    ]
    if obj is not None:
        cases.append(("mask", lambda: codec.encode_frame(2, b"abc", mask=obj)))
    for pname, call in cases:
        with pytest.raises(TypeError) as exc:
            call()
        assert str(exc.value) == f"{pname} must be a bytes-like object, not '{t}'", pname
    if not isinstance(obj, str):
        with pytest.raises(TypeError) as exc:
            codec.encode_frame(2, obj)
        assert str(exc.value) == f"payload must be a bytes-like object or str, not '{t}'"


@pytest.mark.parametrize("name", sorted(_readonly_makers()))
def test_mask_inplace_readonly(codec, name: str) -> None:
    with pytest.raises(TypeError) as exc:
        codec.mask_inplace(_readonly_makers()[name](RAW16), KEY)
    assert str(exc.value) == "buffer must be writable"


def test_no_export_left_after_calls(codec) -> None:
    """No function keeps a view: the bytearrays can be resized afterwards."""
    buf = bytearray(RAW16)
    key = bytearray(KEY)
    codec.apply_mask(buf, key)
    codec.mask_inplace(buf, key, 1)
    codec.encode_frame(2, buf, mask=key)
    codec.FrameDecoder("client").feed(bytearray(STREAM16))
    d = codec.FrameDecoder("client")
    part = bytearray(STREAM16[:5])
    d.feed(part)
    codec.validate_utf8(buf)
    codec.Utf8Validator().feed(buf)
    for b in (buf, key, part):
        b.extend(b"resizable")
