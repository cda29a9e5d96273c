"""encode_frame: RFC 6455 §5.7 examples, length encodings, flags and argument errors."""

from __future__ import annotations

import struct

import pytest

from wsframe import Opcode

KEY = bytes.fromhex("37fa213d")


def masked(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


# RFC 6455 §5.7
RFC_EXAMPLES = [
    # (description, opcode, payload, fin, mask, encoded)
    ("unmasked text Hello", 1, b"Hello", True, None, "810548656c6c6f"),
    ("masked text Hello", 1, b"Hello", True, KEY, "818537fa213d7f9f4d5158"),
    ("fragment 1 Hel", 1, b"Hel", False, None, "010348656c"),
    ("fragment 2 lo", 0, b"lo", True, None, "80026c6f"),
    ("unmasked ping Hello", 9, b"Hello", True, None, "890548656c6c6f"),
    ("masked pong Hello", 10, b"Hello", True, KEY, "8a8537fa213d7f9f4d5158"),
]


@pytest.mark.parametrize(
    "opcode, payload, fin, mask, encoded",
    [e[1:] for e in RFC_EXAMPLES],
    ids=[e[0] for e in RFC_EXAMPLES],
)
def test_rfc_examples(codec, opcode, payload, fin, mask, encoded) -> None:
    assert codec.encode_frame(opcode, payload, fin=fin, mask=mask) == bytes.fromhex(encoded)


def test_rfc_256_bytes_binary(codec) -> None:
    payload = bytes(range(256))
    frame = codec.encode_frame(2, payload)
    assert frame[:4] == bytes.fromhex("827e0100")
    assert frame[4:] == payload


def test_rfc_64kib_binary(codec) -> None:
    payload = bytes(65536)
    frame = codec.encode_frame(2, payload)
    assert frame[:10] == bytes.fromhex("827f0000000000010000")
    assert frame[10:] == payload
    assert len(frame) == 10 + 65536


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20])
@pytest.mark.parametrize("mask", [None, KEY])
def test_length_encodings(codec, n: int, mask) -> None:
    payload = bytes(i & 0xFF for i in range(n)) if n < 70000 else bytes(n)
    frame = codec.encode_frame(2, payload, mask=mask)
    assert type(frame) is bytes
    mbit = 0x80 if mask else 0
    if n < 126:
        header = bytes([0x82, mbit | n])
    elif n < 65536:
        header = bytes([0x82, mbit | 126]) + struct.pack("!H", n)
    else:
        header = bytes([0x82, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        assert (
            frame == header + mask + masked(payload, mask)
            if n < 70000
            else frame[: len(header) + 4] == header + mask
        )
    else:
        assert frame == header + payload


@pytest.mark.parametrize("fin", [True, False])
@pytest.mark.parametrize("rsv1", [True, False])
@pytest.mark.parametrize("rsv2", [True, False])
@pytest.mark.parametrize("rsv3", [True, False])
@pytest.mark.parametrize("opcode", [0, 1, 2])
def test_flags(codec, fin, rsv1, rsv2, rsv3, opcode) -> None:
    frame = codec.encode_frame(opcode, b"x", fin=fin, rsv1=rsv1, rsv2=rsv2, rsv3=rsv3)
    assert frame[0] == (fin << 7) | (rsv1 << 6) | (rsv2 << 5) | (rsv3 << 4) | opcode
    assert frame[1:] == b"\x01x"


def test_flags_by_truth_value(codec) -> None:
    assert codec.encode_frame(1, b"", fin=0, rsv1=[1], rsv2="", rsv3=3)[0] == 0x51
    assert codec.encode_frame(8, b"", rsv1=1)[0] == 0xC8  # not policed on the sending side


@pytest.mark.parametrize("opcode", [0, 1, 2, 8, 9, 10])
def test_all_valid_opcodes(codec, opcode: int) -> None:
    assert codec.encode_frame(opcode, b"")[0] == 0x80 | opcode
    assert codec.encode_frame(Opcode(opcode), b"")[0] == 0x80 | opcode


def test_str_payload_is_utf8(codec) -> None:
    text = "héllo €𝄞"
    assert codec.encode_frame(1, text) == codec.encode_frame(1, text.encode())
    assert codec.encode_frame(1, text, mask=KEY) == codec.encode_frame(1, text.encode(), mask=KEY)
    assert codec.encode_frame(1, "") == b"\x81\x00"


def test_str_payload_lone_surrogate(codec) -> None:
    with pytest.raises(UnicodeEncodeError):
        codec.encode_frame(1, "a\ud800b")


def test_control_payload_limit(codec) -> None:
    assert codec.encode_frame(9, b"p" * 125)[1] == 125
    assert codec.encode_frame(8, "é" * 62 + "a")[1] == 125
    for op in (8, 9, 10):
        with pytest.raises(ValueError) as exc:
            codec.encode_frame(op, b"p" * 126)
        assert str(exc.value) == "control frame payload must be at most 125 bytes, not 126"
    with pytest.raises(ValueError) as exc:
        codec.encode_frame(10, "é" * 63)
    assert str(exc.value) == "control frame payload must be at most 125 bytes, not 126"


@pytest.mark.parametrize("opcode", [8, 9, 10])
def test_control_fragmented(codec, opcode: int) -> None:
    with pytest.raises(ValueError) as exc:
        codec.encode_frame(opcode, b"", fin=False)
    assert str(exc.value) == "control frames cannot be fragmented"


@pytest.mark.parametrize("opcode", [3, 4, 7, 11, 15, 16, -1, 256])
def test_invalid_opcode(codec, opcode: int) -> None:
    with pytest.raises(ValueError) as exc:
        codec.encode_frame(opcode, b"")
    assert str(exc.value) == f"invalid opcode {opcode}"


@pytest.mark.parametrize("opcode", [1.0, "1", None, b"\x01"])
def test_opcode_not_int(codec, opcode) -> None:
    with pytest.raises(TypeError):
        codec.encode_frame(opcode, b"")


def test_payload_not_buffer(codec) -> None:
    for bad, name in ((None, "NoneType"), (12, "int"), ([1], "list")):
        with pytest.raises(TypeError) as exc:
            codec.encode_frame(2, bad)
        assert str(exc.value) == f"payload must be a bytes-like object or str, not '{name}'"


@pytest.mark.parametrize("n", [0, 3, 5, 16])
def test_bad_mask_length(codec, n: int) -> None:
    with pytest.raises(ValueError) as exc:
        codec.encode_frame(1, b"abc", mask=bytes(n))
    assert str(exc.value) == f"mask must be 4 bytes, not {n}"


def test_mask_not_buffer(codec) -> None:
    with pytest.raises(TypeError) as exc:
        codec.encode_frame(1, b"abc", mask="abcd")
    assert str(exc.value) == "mask must be a bytes-like object, not 'str'"
    with pytest.raises(TypeError) as exc:
        codec.encode_frame(1, b"abc", mask=memoryview(b"abcdefgh")[::2])
    assert str(exc.value) == "mask must be a C-contiguous buffer"


def test_argument_order(codec) -> None:
    # opcode first, then payload, then the control-frame rules, then mask
    with pytest.raises(TypeError):
        codec.encode_frame(None, None, fin=False, mask=b"")
    with pytest.raises(ValueError, match=r"^invalid opcode 3$"):
        codec.encode_frame(3, None, mask=b"")
    with pytest.raises(TypeError, match=r"^payload must be"):
        codec.encode_frame(8, None, fin=False, mask=b"")
    with pytest.raises(ValueError, match=r"^control frames cannot be fragmented$"):
        codec.encode_frame(8, b"x" * 200, fin=False, mask=b"")
    with pytest.raises(ValueError, match=r"^control frame payload must be at most 125 bytes"):
        codec.encode_frame(8, b"x" * 200, mask=b"")


def test_masked_frame_roundtrip_key_types(codec) -> None:
    payload = b"The quick brown fox"
    expected = codec.encode_frame(1, payload, mask=KEY)
    assert codec.encode_frame(1, payload, mask=bytearray(KEY)) == expected
    assert codec.encode_frame(1, payload, mask=memoryview(KEY)) == expected
    assert expected[6:] == masked(payload, KEY)


def test_payload_not_modified_and_not_held(codec) -> None:
    payload = bytearray(b"abcdefgh")
    codec.encode_frame(2, payload, mask=KEY)
    assert payload == b"abcdefgh"
    payload.extend(b"ok")  # no buffer export left behind
    mask = bytearray(KEY)
    codec.encode_frame(2, payload, mask=mask)
    mask.extend(b"ok")


@pytest.mark.parametrize("opcode", [1 << 64, -(1 << 70)])
def test_huge_opcode_is_invalid_not_overflow(codec, opcode: int) -> None:
    with pytest.raises(ValueError) as exc:
        codec.encode_frame(opcode, b"")
    assert str(exc.value) == f"invalid opcode {opcode}"


def test_str_subclass_payload(codec) -> None:
    class Text(str):
        pass

    assert codec.encode_frame(1, Text("héllo")) == codec.encode_frame(1, "héllo".encode())


# ---------------------------------------------------------------- frame header


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20])
@pytest.mark.parametrize("mask", [None, KEY])
def test_header_matches_encode_frame(codec, n: int, mask) -> None:
    payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    header = codec.encode_frame_header(2, n, fin=False, rsv1=True, mask=mask)
    body = payload if mask is None else codec.apply_mask(payload, mask)
    assert header + body == codec.encode_frame(2, payload, fin=False, rsv1=True, mask=mask)
    assert len(header) == (2 if n < 126 else 4 if n < 65536 else 10) + (0 if mask is None else 4)


def test_header_huge_length(codec) -> None:
    header = codec.encode_frame_header(2, (1 << 63) - 1)
    assert header == b"\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"


@pytest.mark.parametrize("length", [-1, 1 << 63, 1 << 80])
def test_header_length_out_of_range(codec, length: int) -> None:
    with pytest.raises(ValueError) as info:
        codec.encode_frame_header(2, length)
    assert str(info.value) == f"length must be between 0 and 2**63 - 1, not {length}"


def test_header_length_not_int(codec) -> None:
    with pytest.raises(TypeError):
        codec.encode_frame_header(2, 1.5)


def test_header_control_rules(codec) -> None:
    assert codec.encode_frame_header(9, 125) == b"\x89\x7d"
    with pytest.raises(ValueError) as info:
        codec.encode_frame_header(9, 126)
    assert str(info.value) == "control frame payload must be at most 125 bytes, not 126"
    with pytest.raises(ValueError) as info:
        codec.encode_frame_header(8, 2, fin=False)
    assert str(info.value) == "control frames cannot be fragmented"
    with pytest.raises(ValueError) as info:
        codec.encode_frame_header(3, 0)
    assert str(info.value) == "invalid opcode 3"
    with pytest.raises(ValueError) as info:
        codec.encode_frame_header(1, 0, mask=b"abc")
    assert str(info.value) == "mask must be 4 bytes, not 3"
