"""Utf8Validator and validate_utf8: RFC 3629 validity, fail-fast position, chunking."""

from __future__ import annotations

import random
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st


def first_invalid(data: bytes) -> Optional[int]:
    """Index of the first byte that makes ``data`` invalid UTF-8 (Unicode table 3-7), or None."""
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif b == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif 0xE1 <= b <= 0xEC or b in (0xEE, 0xEF):
            need, lo, hi = 2, 0x80, 0xBF
        elif b == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif b == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= b <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif b == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return i
        for j in range(1, need + 1):
            if i + j >= n:
                return None
            c = data[i + j]
            low, high = (lo, hi) if j == 1 else (0x80, 0xBF)
            if not low <= c <= high:
                return i + j
        i += need + 1
    return None


def is_valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


VALID = [
    b"",
    b"Hello",
    "κόσμε".encode(),
    b"\x00",
    b"\x7f",
    b"\xc2\x80",  # U+0080
    b"\xdf\xbf",  # U+07FF
    b"\xe0\xa0\x80",  # U+0800
    b"\xed\x9f\xbf",  # U+D7FF
    b"\xee\x80\x80",  # U+E000
    b"\xef\xbf\xbd",  # U+FFFD
    b"\xef\xbf\xbf",  # U+FFFF
    b"\xf0\x90\x80\x80",  # U+10000
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF
    "a€𝄞z".encode() * 100,
    b"x" * 1000 + "é".encode() + b"y" * 1000,
]

INVALID = [
    b"\x80",
    b"\xbf",
    b"\xc0\x80",  # overlong NUL
    b"\xc1\xbf",  # overlong
    b"\xe0\x80\x80",
    b"\xe0\x9f\xbf",  # overlong U+07FF
    b"\xf0\x80\x80\x80",
    b"\xf0\x8f\xbf\xbf",  # overlong U+FFFF
    b"\xed\xa0\x80",  # U+D800
    b"\xed\xbf\xbf",  # U+DFFF
    b"\xed\xa0\x80\xed\xb0\x80",  # surrogate pair
    b"\xf4\x90\x80\x80",  # U+110000
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xfe",
    b"\xff",
    b"\xc2",  # truncated
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"a\xc2b",
    b"\xe2\x28\xa1",
    "κόσμε".encode() + b"\xed\xa0\x80edited",
    b"x" * 1000 + b"\x80",
]


@pytest.mark.parametrize("data", VALID)
def test_valid(codec, data: bytes) -> None:
    assert is_valid(data)
    assert codec.validate_utf8(data) is True
    assert codec.Utf8Validator().feed(data, final=True) is True
    v = codec.Utf8Validator()
    assert v.feed(data) is True


@pytest.mark.parametrize("data", INVALID)
def test_invalid(codec, data: bytes) -> None:
    assert not is_valid(data)
    assert codec.validate_utf8(data) is False
    assert codec.Utf8Validator().feed(data, final=True) is False


@pytest.mark.parametrize(
    "data, index",
    [
        (b"\xed\xa0", 1),
        (b"\xf4\x90", 1),
        (b"\xe0\x80", 1),
        (b"\xf0\x80", 1),
        (b"\xf0\x8f", 1),
        (b"\xc0", 0),
        (b"\xc1", 0),
        (b"\xf5", 0),
        (b"\xff", 0),
        (b"\x80", 0),
        (b"ab\xe2\x82\x28", 4),
        (b"\xf0\x9f\x98\x80\xf0\x9f\x98\x41", 7),
        (b"\xed\x9f\xbf\xed\xbf", 4),
    ],
)
def test_fail_fast_index(codec, data: bytes, index: int) -> None:
    assert first_invalid(data) == index
    v = codec.Utf8Validator()
    results = [v.feed(data[i : i + 1]) for i in range(len(data))]
    assert results == [True] * index + [False] * (len(data) - index)
    assert codec.Utf8Validator().feed(data) is False
    assert codec.Utf8Validator().feed(data[:index]) is True


@pytest.mark.parametrize(
    "prefix",
    [
        b"\xed",
        b"\xe0",
        b"\xe0\xa0",
        b"\xf0",
        b"\xf0\x90",
        b"\xf4\x8f\xbf",
        b"\xc2",
        b"\xf3\xbf\xbf",
        b"\xed\x9f",
    ],
)
def test_incomplete_prefix_is_true_until_final(codec, prefix: bytes) -> None:
    v = codec.Utf8Validator()
    assert v.feed(prefix) is True
    assert v.feed(b"", final=True) is False
    assert v.feed(b"ok", final=True) is True  # reset after final


def test_every_two_byte_prefix(codec) -> None:
    """Feeding any two bytes one by one agrees with the reference at each step."""
    v = codec.Utf8Validator()
    for a in range(256):
        for b in range(0x70, 0x100):
            data = bytes([a, b])
            bad = first_invalid(data)
            v.reset()
            assert v.feed(data[:1]) is (bad != 0), data
            assert v.feed(data[1:]) is (bad is None), data


def test_every_three_byte_prefix_of_multibyte_leads(codec) -> None:
    v = codec.Utf8Validator()
    for a in range(0xE0, 0xF5):
        for b in range(0x80, 0xC0):
            for c in (0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xFF):
                data = bytes([a, b, c])
                v.reset()
                assert v.feed(data) is (first_invalid(data) is None), data


def test_stays_false_until_reset(codec) -> None:
    v = codec.Utf8Validator()
    assert v.feed(b"\xff") is False
    assert v.feed(b"abc") is False
    assert v.feed(b"") is False
    v.reset()
    assert v.feed(b"abc") is True
    assert v.feed(b"\xc3") is True
    v.reset()
    assert v.feed(b"\xa9") is False  # the pending lead byte was forgotten


def test_final_resets(codec) -> None:
    v = codec.Utf8Validator()
    assert v.feed(b"\xff", final=True) is False
    assert v.feed(b"fine", final=True) is True
    assert v.feed(b"\xe2\x82") is True
    assert v.feed(b"\xac", final=True) is True
    assert v.feed(b"\xe2\x82", final=True) is False
    assert v.feed(b"\xac") is False  # stray continuation: the old prefix was dropped
    v.reset()
    assert v.feed(b"", final=True) is True


def test_chunked_every_split_equals_one_shot(codec) -> None:
    rng = random.Random(9)
    samples = [*VALID[:14], *INVALID, "a€𝄞é".encode(), b"\xf0\x9f\x98\x80" * 3]
    for data in samples:
        if len(data) > 40:
            continue
        expected = codec.validate_utf8(data)
        for i in range(len(data) + 1):
            for j in range(i, len(data) + 1):
                v = codec.Utf8Validator()
                r1 = v.feed(data[:i])
                r2 = v.feed(data[i:j])
                r3 = v.feed(data[j:], final=True)
                assert r3 is expected, (data, i, j)
                assert r1 is (first_invalid(data[:i]) is None)
                assert r2 is (first_invalid(data[:j]) is None)
        for _ in range(5):
            v = codec.Utf8Validator()
            pos = 0
            while pos < len(data):
                step = rng.randint(1, 4)
                v.feed(data[pos : pos + step])
                pos += step
            assert v.feed(b"", final=True) is expected


def test_large(codec) -> None:
    ascii_data = b"a" * (1 << 20)
    assert codec.validate_utf8(ascii_data) is True
    mixed = ("é" * 1000 + "x" * 3000 + "𝄞").encode() * 64
    assert codec.validate_utf8(mixed) is True
    assert codec.validate_utf8(mixed + b"\xc0\xaf") is False
    assert codec.validate_utf8(ascii_data + b"\xed\xa0\x80" + ascii_data) is False
    v = codec.Utf8Validator()
    assert v.feed(ascii_data) is True and v.feed(mixed[:-1]) is True
    assert v.feed(mixed[-1:], final=True) is True


def test_not_a_buffer(codec) -> None:
    with pytest.raises(TypeError) as exc:
        codec.validate_utf8("text")
    assert str(exc.value) == "data must be a bytes-like object, not 'str'"
    with pytest.raises(TypeError) as exc:
        codec.Utf8Validator().feed(None)
    assert str(exc.value) == "data must be a bytes-like object, not 'NoneType'"
    with pytest.raises(TypeError) as exc:
        codec.Utf8Validator().feed(memoryview(b"abcd")[::2])
    assert str(exc.value) == "data must be a C-contiguous buffer"


_utf8ish = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(
        st.one_of(
            st.text(max_size=5).map(lambda s: s.encode("utf-8", "surrogatepass")),
            st.binary(min_size=1, max_size=2),
            st.sampled_from([b"\xed", b"\xf4", b"\xe0", b"\xf0", b"\x80", b"\xbf", b"\xc0"]),
        ),
        max_size=10,
    ).map(b"".join),
)


@given(data=_utf8ish)
def test_against_python_decoder(codec, data: bytes) -> None:
    valid = is_valid(data)
    assert codec.validate_utf8(data) is valid
    bad = first_invalid(data)
    # the reference agrees with Python on complete inputs
    if bad is not None:
        assert not valid
    v = codec.Utf8Validator()
    results = [v.feed(data[i : i + 1]) for i in range(len(data))]
    if bad is None:
        assert all(results)
    else:
        assert results == [True] * bad + [False] * (len(data) - bad)
    assert v.feed(b"", final=True) is valid


@given(data=_utf8ish, cuts=st.lists(st.integers(0, 60), max_size=5))
def test_random_chunks(codec, data: bytes, cuts: list) -> None:
    points = sorted({c for c in cuts if c <= len(data)} | {0, len(data)})
    v = codec.Utf8Validator()
    for a, b in zip(points, points[1:]):
        assert v.feed(data[a:b]) is (first_invalid(data[:b]) is None)
    assert v.feed(b"", final=True) is is_valid(data)
