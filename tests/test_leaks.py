"""Leak checks of the C extension (wsframe._codec_c).

A release build has no ``sys.gettotalrefcount``, so: the reference counts of
the inputs do not move over many calls, the outputs hold the same references
as the pure-Python codec's, and the memory Python allocates (tracemalloc) and
the process's RSS stay flat over ~2 million calls in all, error paths
included. ``bash tests/valgrind.sh`` runs the same loops under valgrind.
"""

from __future__ import annotations

import array
import contextlib
import gc
import sys
from typing import Any, Callable

import pytest
from conftest import CODEC_PY, IS_PYPY, require_c

from wsframe.errors import ProtocolError

KEY = b"\x11\x22\x33\x44"
PAYLOAD = bytes(range(256)) * 8  # 2 KiB
TEXT = ("héllo wörld, ünïcode ✓ " * 40).encode()

pytestmark = pytest.mark.skipif(
    IS_PYPY,
    reason="reference counts and tracemalloc do not exist on PyPy (no sys.getrefcount "
    "semantics, a moving GC); these checks are for the C extension on CPython",
)


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _frames(codec: Any) -> bytes:
    enc = codec.encode_frame
    return (
        enc(1, TEXT, mask=KEY)
        + enc(2, PAYLOAD, mask=KEY)
        + enc(2, PAYLOAD * 40, mask=KEY)  # 64-bit length
        + enc(9, b"ping", mask=KEY)
        + enc(0, b"", fin=False, mask=KEY)
    )


def cases(codec: Any) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (one call, how many calls)."""
    frames = _frames(codec)
    head, tail = frames[:1000], frames[1000:]
    bad = codec.encode_frame(2, PAYLOAD, mask=KEY) + b"\x83\x80" + KEY  # reserved opcode
    buffer = bytearray(PAYLOAD)
    arr = array.array("I", PAYLOAD)
    validator = codec.Utf8Validator()

    def decode_whole() -> Any:
        return codec.FrameDecoder("server").feed(frames)

    def decode_split() -> Any:
        decoder = codec.FrameDecoder("server")
        decoder.feed(head)
        return decoder.feed(tail)

    def decode_error() -> Any:
        decoder = codec.FrameDecoder("server")
        try:
            decoder.feed(bad)
        except ProtocolError as exc:
            assert len(exc.frames) == 1
        with contextlib.suppress(ProtocolError):
            decoder.feed(b"x")  # failed for good

    def decode_too_big() -> Any:
        with contextlib.suppress(ProtocolError):
            codec.FrameDecoder("server", max_frame_size=100).feed(frames)

    def encode() -> Any:
        codec.encode_frame(2, PAYLOAD, mask=KEY)
        codec.encode_frame(1, "text ✓", fin=False, rsv1=True)
        return codec.encode_frame_header(2, 1 << 40, mask=KEY)

    def encode_error() -> Any:
        for args, kwargs in (
            ((3, b"x"), {}),
            ((9, PAYLOAD), {}),
            ((2, b"x"), {"mask": b"abc"}),
            ((2, 1.5), {}),
            ((1, "\ud800"), {}),
        ):
            with contextlib.suppress(ValueError, TypeError, UnicodeEncodeError):
                codec.encode_frame(*args, **kwargs)

    def mask() -> Any:
        codec.apply_mask(PAYLOAD, KEY, 1)
        codec.mask_inplace(buffer, KEY)
        return codec.mask_inplace(arr, KEY, 3)

    def mask_error() -> Any:
        for args in ((PAYLOAD, b"k"), (b"ro", KEY), (PAYLOAD, KEY, 7), ("str", KEY)):
            with contextlib.suppress(ValueError, TypeError):
                codec.mask_inplace(*args) if args[0] == b"ro" else codec.apply_mask(*args)

    def utf8() -> Any:
        codec.validate_utf8(TEXT)
        codec.validate_utf8(TEXT + b"\xff")
        validator.feed(TEXT[:101])
        return validator.feed(TEXT[101:], True)

    return {
        "decode_whole": (decode_whole, 200_000),
        "decode_split": (decode_split, 100_000),
        "decode_error": (decode_error, 50_000),
        "decode_too_big": (decode_too_big, 100_000),
        "encode": (encode, 200_000),
        "encode_error": (encode_error, 30_000),
        "mask": (mask, 200_000),
        "mask_error": (mask_error, 30_000),
        "utf8": (utf8, 200_000),
    }


CASES = list(cases(CODEC_PY))


@pytest.mark.parametrize("name", CASES)
def test_no_leak(name: str) -> None:
    import tracemalloc  # not on PyPy

    codec = require_c()
    func, count = cases(codec)[name]
    inputs = [PAYLOAD, TEXT, KEY]
    refs = [sys.getrefcount(obj) for obj in inputs]
    for _ in range(2000):  # warm up caches and free lists
        func()
    gc.collect()
    rss_before = rss()
    tracemalloc.start()
    try:
        for _ in range(2000):
            func()
        gc.collect()
        traced_before = tracemalloc.get_traced_memory()[0]
        for _ in range(count // 10):
            func()
        gc.collect()
        traced_grown = tracemalloc.get_traced_memory()[0] - traced_before
    finally:
        tracemalloc.stop()
    for _ in range(count):  # untraced: fast, for RSS
        func()
    gc.collect()
    rss_grown = rss() - rss_before
    assert [sys.getrefcount(obj) for obj in inputs] == refs
    # A leak of even one small object per call would show as >= 16 bytes/call.
    assert traced_grown < 16 * 1024, f"{name}: {traced_grown} bytes traced after {count // 10}"
    assert rss_grown < 4 << 20, f"{name}: RSS grew by {rss_grown} bytes after {count} calls"


def test_output_references() -> None:
    """The outputs hold exactly the references the pure-Python codec's hold."""
    codec_c = require_c()

    def counts(codec: Any) -> list[int]:
        frames = codec.FrameDecoder("server").feed(_frames(codec))
        out = [sys.getrefcount(frames)]
        out += [sys.getrefcount(frame) for frame in frames]
        out += [sys.getrefcount(frame.payload) for frame in frames if len(frame.payload) > 1]
        out.append(sys.getrefcount(codec.encode_frame(2, PAYLOAD, mask=KEY)))
        out.append(sys.getrefcount(codec.apply_mask(PAYLOAD, KEY)))
        try:
            codec.FrameDecoder("server").feed(b"\x83\x80")
        except ProtocolError as exc:
            out.append(sys.getrefcount(exc))
        return out

    assert counts(codec_c) == counts(CODEC_PY)
