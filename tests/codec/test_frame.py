"""Frame: construction, immutability, equality, hash and repr."""

from __future__ import annotations

import copy
import pickle

import pytest

from wsframe import Opcode


def test_defaults(codec) -> None:
    f = codec.Frame(1)
    assert (f.opcode, f.payload, f.fin, f.rsv1, f.rsv2, f.rsv3) == (
        1,
        b"",
        True,
        False,
        False,
        False,
    )
    assert type(f.opcode) is int and type(f.payload) is bytes
    assert f.fin is True and f.rsv1 is False


def test_values_normalised(codec) -> None:
    f = codec.Frame(Opcode.BINARY, bytearray(b"ab"), 0, 1, [], "x")
    assert type(f.opcode) is int and f.opcode == 2
    assert type(f.payload) is bytes and f.payload == b"ab"
    assert (f.fin, f.rsv1, f.rsv2, f.rsv3) == (False, True, False, True)
    assert all(type(v) is bool for v in (f.fin, f.rsv1, f.rsv2, f.rsv3))


def test_repr(codec) -> None:
    assert repr(codec.Frame(1, b"Hello")) == (
        "Frame(opcode=1, fin=True, rsv1=False, rsv2=False, rsv3=False, payload=<5 bytes>)"
    )
    assert repr(codec.Frame(Opcode.PONG, b"", False, True, True, True)) == (
        "Frame(opcode=10, fin=False, rsv1=True, rsv2=True, rsv3=True, payload=<0 bytes>)"
    )


def test_decoded_repr(codec) -> None:
    (f,) = codec.FrameDecoder("client").feed(b"\x81\x05Hello")
    assert (
        repr(f)
        == "Frame(opcode=1, fin=True, rsv1=False, rsv2=False, rsv3=False, payload=<5 bytes>)"
    )


def test_equality_and_hash(codec) -> None:
    a = codec.Frame(1, b"x")
    assert a == codec.Frame(1, b"x", True, False, False, False)
    assert hash(a) == hash(codec.Frame(1, b"x"))
    assert not (a != codec.Frame(1, b"x"))  # noqa: SIM202 (tests __ne__)
    for other in (
        codec.Frame(2, b"x"),
        codec.Frame(1, b"y"),
        codec.Frame(1, b"x", fin=False),
        codec.Frame(1, b"x", rsv1=True),
        codec.Frame(1, b"x", rsv2=True),
        codec.Frame(1, b"x", rsv3=True),
    ):
        assert a != other and not (a == other)  # noqa: SIM201 (tests __eq__)
    assert a != (1, b"x") and a != "Frame"
    assert len({a, codec.Frame(1, b"x"), codec.Frame(1, b"z")}) == 2
    (decoded,) = codec.FrameDecoder("client").feed(b"\x81\x01x")
    assert decoded == a and hash(decoded) == hash(a)


@pytest.mark.parametrize("name", ["opcode", "payload", "fin", "rsv1", "rsv2", "rsv3", "other"])
def test_immutable(codec, name: str) -> None:
    f = codec.Frame(1, b"x")
    with pytest.raises(AttributeError):
        setattr(f, name, 2)
    with pytest.raises(AttributeError):
        delattr(f, name)
    assert f == codec.Frame(1, b"x")


def test_pickle_and_copy(codec) -> None:
    f = codec.Frame(2, b"abc", False, True, False, False)
    assert pickle.loads(pickle.dumps(f)) == f
    assert copy.copy(f) == f and copy.deepcopy(f) == f


@pytest.mark.parametrize("opcode", [-1, 16, 300])
def test_opcode_out_of_range(codec, opcode: int) -> None:
    with pytest.raises(ValueError) as exc:
        codec.Frame(opcode)
    assert str(exc.value) == f"invalid opcode {opcode}"


def test_opcode_not_int(codec) -> None:
    with pytest.raises(TypeError):
        codec.Frame(1.0)
