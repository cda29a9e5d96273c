"""permessage-deflate (RFC 7692): parameters, negotiation, (de)compression, limits, interop."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import sys
import time
import zlib
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsframe.deflate import (
    DEFAULT_COMPRESS_LEVEL,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MEMORY_LEVEL,
    EXTENSION_NAME,
    DeflateParameters,
    Param,
    PerMessageDeflate,
    accept_deflate_response,
    deflate_offer,
    negotiate_deflate,
)
from wsframe.errors import InvalidHandshake, MessageTooBig, ProtocolError

HELLO = bytes.fromhex("f248cdc9c90700")
HELLO_AGAIN = bytes.fromhex("f200110000")

SNCT = ("server_no_context_takeover", None)
CNCT = ("client_no_context_takeover", None)


def smwb(bits: Optional[str]) -> Param:
    return ("server_max_window_bits", bits)


def cmwb(bits: Optional[str]) -> Param:
    return ("client_max_window_bits", bits)


def engine(is_server: bool, **kwargs: Any) -> PerMessageDeflate:
    params = kwargs.pop("params", DeflateParameters())
    return PerMessageDeflate(params, is_server=is_server, **kwargs)


def pair(
    offer: DeflateParameters, max_message_size: Optional[int] = None, **server_prefs: Any
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """Negotiate as a real client and server would; return (client, server) engines."""
    result = negotiate_deflate(
        [offer.to_params()], max_message_size=max_message_size, **server_prefs
    )
    assert result is not None
    response, server = result
    client = accept_deflate_response(offer, response, max_message_size=max_message_size)
    return client, server


# -- RFC 7692 §7.2.3 examples ------------------------------------------------------


class TestRFCExamples:
    def test_hello_compressed(self) -> None:  # §7.2.3.1
        assert engine(True).compress(b"Hello") == HELLO
        assert engine(False).compress(b"Hello") == HELLO

    def test_hello_decompressed(self) -> None:
        assert engine(False).decompress(HELLO, True) == b"Hello"

    def test_hello_fragmented(self) -> None:  # §7.2.3.1, two fragments
        e = engine(False)
        assert e.decompress(HELLO[:3], False) + e.decompress(HELLO[3:], True) == b"Hello"

    def test_sharing_lz77_window(self) -> None:  # §7.2.3.2
        sender = engine(True)
        assert sender.compress(b"Hello") == HELLO
        assert sender.compress(b"Hello") == HELLO_AGAIN
        receiver = engine(False)
        assert receiver.decompress(HELLO, True) == b"Hello"
        assert receiver.decompress(HELLO_AGAIN, True) == b"Hello"

    def test_no_context_takeover_repeats_first_form(self) -> None:
        params = DeflateParameters(server_no_context_takeover=True)
        sender = engine(True, params=params)
        assert sender.compress(b"Hello") == HELLO
        assert sender.compress(b"Hello") == HELLO
        # The server's own no_context_takeover does not reset the client's compressor.
        client = engine(False, params=params)
        assert client.compress(b"Hello") == HELLO
        assert client.compress(b"Hello") == HELLO_AGAIN

    def test_second_hello_needs_the_window(self) -> None:
        # A receiver that resets (peer's no_context_takeover) cannot inflate it.
        receiver = engine(False, params=DeflateParameters(server_no_context_takeover=True))
        assert receiver.decompress(HELLO, True) == b"Hello"
        with pytest.raises(ProtocolError) as info:
            receiver.decompress(HELLO_AGAIN, True)
        assert info.value.close_code == 1002

    def test_bfinal_block(self) -> None:  # §7.2.3.3
        payload = bytes.fromhex("f348cdc9c9070000")
        e = engine(False)
        assert e.decompress(payload, True) == b"Hello"
        # The stream ended; the next messages still decompress.
        assert e.decompress(payload, True) == b"Hello"
        assert e.decompress(HELLO, True) == b"Hello"
        assert e.decompress(HELLO_AGAIN, True) == b"Hello"

    def test_bfinal_block_fragmented(self) -> None:
        payload = bytes.fromhex("f348cdc9c9070000")
        e = engine(False)
        out = b"".join(e.decompress(payload[i : i + 1], False) for i in range(len(payload)))
        assert out + e.decompress(b"", True) == b"Hello"

    def test_no_compression_block(self) -> None:  # §7.2.3.4
        payload = bytes.fromhex("0005 00faff 48656c6c6f 00")
        e = engine(False)
        assert e.decompress(payload, True) == b"Hello"
        # With context takeover, the stored "Hello" is in the window.
        assert e.decompress(HELLO_AGAIN, True) == b"Hello"

    def test_two_deflate_blocks(self) -> None:  # §7.2.3.5
        payload = bytes.fromhex("f24805000000ffff cac9c90700")
        assert engine(False).decompress(payload, True) == b"Hello"

    def test_empty_message(self) -> None:  # §7.2.3.6
        assert engine(True).compress(b"") == b"\x00"
        assert engine(False).decompress(b"\x00", True) == b""
        # Some peers send an empty payload for an empty message.
        assert engine(False).decompress(b"", True) == b""


# -- parameters ----------------------------------------------------------------


class TestParameters:
    @pytest.mark.parametrize(
        ("params", "is_offer", "expected"),
        [
            ([], True, DeflateParameters()),
            ([], False, DeflateParameters()),
            ([cmwb(None)], True, DeflateParameters(client_max_window_bits=True)),
            ([SNCT, CNCT], False, DeflateParameters(True, True)),
            ([smwb("10"), cmwb("9")], False, DeflateParameters(False, False, 10, 9)),
            (iter([SNCT]), True, DeflateParameters(server_no_context_takeover=True)),
        ],
    )
    def test_simple(self, params: Any, is_offer: bool, expected: DeflateParameters) -> None:
        assert DeflateParameters.from_params(params, is_offer=is_offer) == expected

    @pytest.mark.parametrize("bits", range(8, 16))
    @pytest.mark.parametrize("is_offer", [True, False])
    def test_window_bits(self, bits: int, is_offer: bool) -> None:
        got = DeflateParameters.from_params([smwb(str(bits)), cmwb(str(bits))], is_offer=is_offer)
        assert got == DeflateParameters(server_max_window_bits=bits, client_max_window_bits=bits)
        assert got.to_params() == [smwb(str(bits)), cmwb(str(bits))]

    def test_all_four_and_order(self) -> None:
        p = DeflateParameters(True, True, 12, 11)
        assert p.to_params() == [SNCT, CNCT, smwb("12"), cmwb("11")]
        assert DeflateParameters.from_params(list(reversed(p.to_params())), is_offer=False) == p

    def test_bare_client_max_window_bits(self) -> None:
        p = DeflateParameters(client_max_window_bits=True)
        assert p.to_params() == [cmwb(None)]
        assert DeflateParameters.from_params([cmwb(None)], is_offer=True) == p
        with pytest.raises(ValueError, match="needs a value"):
            DeflateParameters.from_params([cmwb(None)], is_offer=False)

    def test_names_case_insensitive(self) -> None:
        got = DeflateParameters.from_params(
            [("Server_No_Context_Takeover", None), ("CLIENT_MAX_WINDOW_BITS", "9")], is_offer=True
        )
        assert got == DeflateParameters(server_no_context_takeover=True, client_max_window_bits=9)
        # Non-ASCII look-alikes (Kelvin sign lowers to "k") are not folded.
        with pytest.raises(ValueError, match="unknown"):
            DeflateParameters.from_params(
                [("client_no_context_ta\u212aeover", None)], is_offer=True
            )

    @pytest.mark.parametrize(
        "value",
        [
            "16",
            "7",
            "0",
            "1",
            "010",
            "09",
            "+9",
            "-9",
            " 9",
            "9 ",
            "9.0",
            "",
            "0x9",
            "\u0669",
            "\uff11\uff10",
            "99",
            "15\x00",
            "1e1",
            "nine",
        ],
    )
    @pytest.mark.parametrize("name", ["server_max_window_bits", "client_max_window_bits"])
    @pytest.mark.parametrize("is_offer", [True, False])
    def test_invalid_window_bits(self, name: str, value: str, is_offer: bool) -> None:
        with pytest.raises(ValueError):
            DeflateParameters.from_params([(name, value)], is_offer=is_offer)

    @pytest.mark.parametrize("is_offer", [True, False])
    @pytest.mark.parametrize(
        "params",
        [
            [SNCT, SNCT],
            [CNCT, CNCT],
            [smwb("10"), smwb("10")],
            [cmwb("10"), cmwb("11")],
            [cmwb(None), cmwb("11")],
            [("server_no_context_takeover", None), ("SERVER_NO_CONTEXT_TAKEOVER", None)],
            [("server_no_context_takeover", "")],
            [("client_no_context_takeover", "true")],
            [smwb(None)],
            [("x_unknown", None)],
            [("server_max_window", "10")],
            [("", None)],
            [SNCT, ("mux", "1")],
        ],
    )
    def test_invalid_params(self, params: list[Param], is_offer: bool) -> None:
        with pytest.raises(ValueError):
            DeflateParameters.from_params(params, is_offer=is_offer)

    @pytest.mark.parametrize(
        "params",
        [
            None,
            42,
            [("a",)],
            [("a", "b", "c")],
            ["server_no_context_takeover"],
            [(1, None)],
            [("server_max_window_bits", 10)],
            [("server_max_window_bits", ["9"])],
            [["server_no_context_takeover", None]],
            "server_no_context_takeover",
        ],
    )
    def test_malformed_input_is_value_error(self, params: Any) -> None:
        with pytest.raises(ValueError):
            DeflateParameters.from_params(params, is_offer=True)

    @given(
        st.lists(
            st.tuples(
                st.one_of(
                    st.sampled_from(
                        [
                            "server_no_context_takeover",
                            "client_no_context_takeover",
                            "server_max_window_bits",
                            "client_max_window_bits",
                        ]
                    ),
                    st.text(max_size=30),
                ),
                st.one_of(
                    st.none(), st.sampled_from([str(i) for i in range(0, 20)]), st.text(max_size=5)
                ),
            ),
            max_size=6,
        ),
        st.booleans(),
    )
    def test_fuzz_only_value_error(self, params: list[Param], is_offer: bool) -> None:
        try:
            got = DeflateParameters.from_params(params, is_offer=is_offer)
        except ValueError:
            return
        # Whatever parses round-trips through to_params().
        assert DeflateParameters.from_params(got.to_params(), is_offer=is_offer) == got

    @given(
        st.lists(
            st.tuples(st.one_of(st.integers(), st.binary(), st.none()), st.none()),
            min_size=1,
            max_size=3,
        )
        | st.integers()
        | st.binary(min_size=1)
    )
    def test_fuzz_garbage_types(self, params: Any) -> None:
        with pytest.raises(ValueError):
            DeflateParameters.from_params(params, is_offer=True)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"server_max_window_bits": 16},
            {"server_max_window_bits": 7},
            {"server_max_window_bits": True},
            {"server_max_window_bits": "9"},
            {"client_max_window_bits": 16},
            {"client_max_window_bits": False},
            {"server_no_context_takeover": 1},
        ],
    )
    def test_constructor_validates(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            DeflateParameters(**kwargs)


# -- server negotiation ------------------------------------------------------------


def neg(offers: list[list[Param]], **prefs: Any) -> Optional[list[Param]]:
    result = negotiate_deflate(offers, **prefs)
    if result is None:
        return None
    response, eng = result
    # The engine is built from exactly the response.
    assert eng.params == DeflateParameters.from_params(response, is_offer=False)
    assert eng.is_server
    return response


class TestNegotiate:
    @pytest.mark.parametrize(
        ("offer", "prefs", "response"),
        [
            # RFC 7692 §7 examples.
            ([], {}, []),
            ([cmwb(None)], {}, []),
            ([SNCT], {}, [SNCT]),
            ([smwb("10")], {}, [smwb("10")]),
            ([smwb("10"), cmwb(None)], {}, [smwb("10")]),
            ([CNCT], {}, [CNCT]),
            ([SNCT, CNCT], {}, [SNCT, CNCT]),
            ([cmwb(None)], {"client_max_window_bits": 10}, [cmwb("10")]),
            # An offered client value is echoed, or lowered by our preference.
            ([cmwb("12")], {}, [cmwb("12")]),
            ([cmwb("12")], {"client_max_window_bits": 10}, [cmwb("10")]),
            ([cmwb("9")], {"client_max_window_bits": 10}, [cmwb("9")]),
            ([cmwb("8")], {}, [cmwb("8")]),  # the client offered 8: its business
            # Our client_max_window_bits is not asked of a client that did not offer it.
            ([], {"client_max_window_bits": 10}, []),
            # Server preferences.
            ([], {"server_no_context_takeover": True}, [SNCT]),
            ([], {"client_no_context_takeover": True}, [CNCT]),
            ([], {"server_max_window_bits": 11}, [smwb("11")]),
            ([smwb("13")], {"server_max_window_bits": 11}, [smwb("11")]),
            ([smwb("10")], {"server_max_window_bits": 11}, [smwb("10")]),
            ([SNCT], {"server_no_context_takeover": True}, [SNCT]),
            (
                [SNCT, CNCT, smwb("12"), cmwb(None)],
                {"server_max_window_bits": 14, "client_max_window_bits": 11},
                [SNCT, CNCT, smwb("12"), cmwb("11")],
            ),
        ],
    )
    def test_single_offer(
        self, offer: list[Param], prefs: dict[str, Any], response: list[Param]
    ) -> None:
        assert neg([offer], **prefs) == response

    @pytest.mark.parametrize("bits", range(9, 16))
    def test_window_bits_9_to_15(self, bits: int) -> None:
        assert neg([[smwb(str(bits)), cmwb(str(bits))]]) == [smwb(str(bits)), cmwb(str(bits))]
        result = negotiate_deflate([[smwb(str(bits)), cmwb(str(bits))]])
        assert result is not None
        eng = result[1]
        assert eng.local_max_window_bits == bits
        assert eng.remote_max_window_bits == bits

    def test_server_max_window_bits_8_declined(self) -> None:
        assert neg([[smwb("8")]]) is None
        assert neg([[smwb("8")]], server_max_window_bits=9) is None
        # RFC 7692 §7 fallback: the next offer is taken.
        assert neg([[smwb("8")], [smwb("9")]]) == [smwb("9")]
        assert neg([[smwb("8")], []]) == []

    def test_fallback_first_acceptable_in_client_order(self) -> None:
        offers: list[list[Param]] = [[SNCT, smwb("10")], [SNCT], []]
        assert neg(offers) == [SNCT, smwb("10")]
        assert neg(offers[1:]) == [SNCT]

    @pytest.mark.parametrize(
        "bad",
        [
            [smwb("16")],
            [smwb("7")],
            [smwb("010")],
            [smwb("+9")],
            [cmwb("16")],
            [cmwb("7")],
            [cmwb("010")],
            [SNCT, SNCT],
            [cmwb(None), cmwb(None)],
            [("foo", None)],
            [("server_no_context_takeover", "1")],
            [smwb(None)],
        ],
    )
    def test_invalid_offer_declined_not_error(self, bad: list[Param]) -> None:
        assert neg([bad]) is None
        assert neg([bad, [CNCT]]) == [CNCT]
        assert neg([bad, bad, []]) == []

    def test_no_offers(self) -> None:
        assert negotiate_deflate([]) is None

    @pytest.mark.parametrize(
        "prefs",
        [
            {"server_max_window_bits": 8},
            {"server_max_window_bits": 16},
            {"client_max_window_bits": 8},
            {"client_max_window_bits": True},
        ],
    )
    def test_invalid_preferences(self, prefs: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            negotiate_deflate([[]], **prefs)

    def test_engine_options(self) -> None:
        result = negotiate_deflate([[]], max_message_size=123, compress_level=9, memory_level=4)
        assert result is not None
        eng = result[1]
        assert (eng.max_message_size, eng.compress_level, eng.memory_level) == (123, 9, 4)
        default = negotiate_deflate([[]])
        assert default is not None
        assert default[1].max_message_size == DEFAULT_MAX_MESSAGE_SIZE
        assert default[1].compress_level == DEFAULT_COMPRESS_LEVEL
        assert default[1].memory_level == DEFAULT_MEMORY_LEVEL

    def test_engine_roles(self) -> None:
        result = negotiate_deflate([[SNCT, smwb("10"), cmwb("12")]])
        assert result is not None
        eng = result[1]
        assert eng.local_no_context_takeover and not eng.remote_no_context_takeover
        assert (eng.local_max_window_bits, eng.remote_max_window_bits) == (10, 12)


# -- client offer / response --------------------------------------------------------


class TestClient:
    def test_default_offer(self) -> None:
        assert deflate_offer() == (EXTENSION_NAME, [cmwb(None)])
        assert EXTENSION_NAME == "permessage-deflate"

    def test_full_offer(self) -> None:
        assert deflate_offer(
            client_max_window_bits=10,
            server_max_window_bits=12,
            client_no_context_takeover=True,
            server_no_context_takeover=True,
        ) == (EXTENSION_NAME, [SNCT, CNCT, smwb("12"), cmwb("10")])
        assert deflate_offer(client_max_window_bits=None, server_max_window_bits=8) == (
            EXTENSION_NAME,
            [smwb("8")],
        )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"client_max_window_bits": 8},
            {"client_max_window_bits": 16},
            {"server_max_window_bits": 7},
            {"server_max_window_bits": True},
        ],
    )
    def test_invalid_offer_arguments(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            deflate_offer(**kwargs)

    @pytest.mark.parametrize(
        ("offer", "response", "agreed"),
        [
            (DeflateParameters(), [], DeflateParameters()),
            (DeflateParameters(client_max_window_bits=True), [], DeflateParameters()),
            (
                DeflateParameters(client_max_window_bits=True),
                [cmwb("10")],
                DeflateParameters(client_max_window_bits=10),
            ),
            # The client keeps the limit it announced.
            (
                DeflateParameters(client_max_window_bits=12),
                [],
                DeflateParameters(client_max_window_bits=12),
            ),
            (
                DeflateParameters(client_max_window_bits=12),
                [cmwb("12")],
                DeflateParameters(client_max_window_bits=12),
            ),
            (
                DeflateParameters(client_max_window_bits=12),
                [cmwb("9")],
                DeflateParameters(client_max_window_bits=9),
            ),
            # The server may always add the context-takeover flags and its window.
            (DeflateParameters(), [SNCT], DeflateParameters(server_no_context_takeover=True)),
            (DeflateParameters(), [CNCT], DeflateParameters(client_no_context_takeover=True)),
            (DeflateParameters(), [smwb("8")], DeflateParameters(server_max_window_bits=8)),
            (DeflateParameters(), [smwb("11")], DeflateParameters(server_max_window_bits=11)),
            # Offered: must be accepted, at the same or a smaller value.
            (DeflateParameters(True), [SNCT], DeflateParameters(True)),
            (
                DeflateParameters(server_max_window_bits=10),
                [smwb("10")],
                DeflateParameters(server_max_window_bits=10),
            ),
            (
                DeflateParameters(server_max_window_bits=10),
                [smwb("9")],
                DeflateParameters(server_max_window_bits=9),
            ),
            # client_no_context_takeover offered is a promise the client keeps.
            (
                DeflateParameters(client_no_context_takeover=True),
                [],
                DeflateParameters(client_no_context_takeover=True),
            ),
            (
                DeflateParameters(True, True, 12, True),
                [SNCT, CNCT, smwb("12"), cmwb("15")],
                DeflateParameters(True, True, 12, 15),
            ),
        ],
    )
    def test_valid_response(
        self, offer: DeflateParameters, response: list[Param], agreed: DeflateParameters
    ) -> None:
        eng = accept_deflate_response(offer, response)
        assert eng.params == agreed
        assert not eng.is_server

    @pytest.mark.parametrize(
        ("offer", "response", "match"),
        [
            (DeflateParameters(), [cmwb("10")], "did not offer"),
            (DeflateParameters(client_max_window_bits=True), [cmwb(None)], "needs a value"),
            (DeflateParameters(client_max_window_bits=True), [cmwb("8")], "8-bit"),
            (DeflateParameters(client_max_window_bits=10), [cmwb("11")], "more than"),
            (DeflateParameters(server_no_context_takeover=True), [], "server_no_context"),
            (DeflateParameters(server_max_window_bits=10), [], "lacks"),
            (DeflateParameters(server_max_window_bits=10), [smwb("11")], "more than"),
            (DeflateParameters(), [smwb("16")], "invalid"),
            (DeflateParameters(), [smwb("7")], "invalid"),
            (DeflateParameters(), [smwb("010")], "invalid"),
            (DeflateParameters(), [smwb("+9")], "invalid"),
            (DeflateParameters(), [smwb(None)], "invalid"),
            (DeflateParameters(), [SNCT, SNCT], "duplicate"),
            (DeflateParameters(), [smwb("9"), smwb("9")], "duplicate"),
            (DeflateParameters(), [("unknown", None)], "unknown"),
            (DeflateParameters(), [("client_no_context_takeover", "x")], "no value"),
        ],
    )
    def test_invalid_response(
        self, offer: DeflateParameters, response: list[Param], match: str
    ) -> None:
        with pytest.raises(InvalidHandshake, match=match) as info:
            accept_deflate_response(offer, response)
        assert info.value.status is None

    def test_engine_roles(self) -> None:
        offer = DeflateParameters(server_no_context_takeover=True, client_max_window_bits=True)
        eng = accept_deflate_response(offer, [SNCT, smwb("9"), cmwb("11")])
        assert eng.remote_no_context_takeover and not eng.local_no_context_takeover
        assert (eng.local_max_window_bits, eng.remote_max_window_bits) == (11, 9)

    def test_peer_8_bit_window_decompresses(self) -> None:
        # The server may compress with 8 bits; we inflate with 9 (see module docs).
        eng = accept_deflate_response(DeflateParameters(), [smwb("8")])
        assert eng.remote_max_window_bits == 8
        assert eng.decompress(HELLO, True) == b"Hello"

    def test_engine_options(self) -> None:
        eng = accept_deflate_response(
            DeflateParameters(), [], max_message_size=None, compress_level=1, memory_level=9
        )
        assert (eng.max_message_size, eng.compress_level, eng.memory_level) == (None, 1, 9)


# -- engine -----------------------------------------------------------------------


class TestEngine:
    def test_rejects_local_8_bits(self) -> None:
        with pytest.raises(ValueError, match="8-bit"):
            engine(True, params=DeflateParameters(server_max_window_bits=8))
        with pytest.raises(ValueError, match="8-bit"):
            engine(False, params=DeflateParameters(client_max_window_bits=8))
        # The peer's 8 bits are fine.
        engine(False, params=DeflateParameters(server_max_window_bits=8))
        engine(True, params=DeflateParameters(client_max_window_bits=8))

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_message_size": -1},
            {"compress_level": 10},
            {"compress_level": -2},
            {"memory_level": 0},
            {"memory_level": 10},
        ],
    )
    def test_invalid_options(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            engine(True, **kwargs)

    def test_params_type(self) -> None:
        with pytest.raises(TypeError):
            PerMessageDeflate({}, is_server=True)  # type: ignore[arg-type]

    def test_bare_client_max_window_bits_is_15(self) -> None:
        eng = engine(False, params=DeflateParameters(client_max_window_bits=True))
        assert eng.local_max_window_bits == 15

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_bytes_like(self, kind: Any) -> None:
        sender, receiver = engine(True), engine(False)
        data = b"bytes-like " * 50
        compressed = sender.compress(kind(data))
        assert isinstance(compressed, bytes)
        out = receiver.decompress(kind(compressed), True)
        assert isinstance(out, bytes)
        assert out == data
        big = bytes(range(256)) * 100
        compressed = sender.compress(kind(big))
        assert (
            receiver.decompress(kind(compressed[:100]), False)
            + receiver.decompress(kind(compressed[100:]), True)
            == big
        )

    @pytest.mark.parametrize("level", [-1, 0, 1, 5, 9])
    @pytest.mark.parametrize("memory_level", [1, 5, 8, 9])
    def test_levels(self, level: int, memory_level: int) -> None:
        sender = engine(True, compress_level=level, memory_level=memory_level)
        receiver = engine(False)
        data = b"compress me " * 1000
        for _ in range(3):
            assert receiver.decompress(sender.compress(data), True) == data

    def test_compress_fragments(self) -> None:
        sender, receiver = engine(True), engine(False)
        parts = [b"Hel", b"", b"lo ", b"world" * 100]
        frames = [sender.compress_fragment(p, i == len(parts) - 1) for i, p in enumerate(parts)]
        # Non-final fragments are sync-flushed (decodable at once), the final one is stripped.
        assert all(f.endswith(b"\x00\x00\xff\xff") for f in frames[:-1])
        out = [receiver.decompress(f, i == len(frames) - 1) for i, f in enumerate(frames)]
        assert out[0] == b"Hel"
        assert b"".join(out) == b"".join(parts)
        # The stream continues into the next whole message.
        assert receiver.decompress(sender.compress(b"Hello"), True) == b"Hello"

    def test_fragmented_no_context_takeover_resets_after_final_only(self) -> None:
        params = DeflateParameters(server_no_context_takeover=True)
        sender = engine(True, params=params)
        first = sender.compress_fragment(b"Hello", False)
        second = sender.compress_fragment(b"Hello", True)
        receiver = engine(False, params=params)
        assert receiver.decompress(first, False) + receiver.decompress(second, True) == (
            b"HelloHello"
        )
        # Back-reference within the message, but not across messages.
        assert sender.compress(b"Hello") == HELLO

    def test_final_fragment_may_be_empty(self) -> None:
        sender, receiver = engine(True), engine(False)
        first = sender.compress_fragment(b"abc", False)
        last = sender.compress_fragment(b"", True)
        assert last in (b"", b"\x00")  # at most an empty stored block
        assert receiver.decompress(first, False) + receiver.decompress(last, True) == b"abc"

    def test_large_message_two_call_path(self) -> None:
        sender, receiver = engine(True), engine(False, max_message_size=None)
        data = bytes(range(256)) * 4096 + os.urandom(20000)
        compressed = sender.compress(data)
        assert len(compressed) > 8192
        assert receiver.decompress(compressed, True) == data

    def test_repr(self) -> None:
        assert "is_server=True" in repr(engine(True))


# -- round trips ------------------------------------------------------------------

VARIANTS = [
    pytest.param(DeflateParameters(), {}, id="defaults"),
    pytest.param(DeflateParameters(client_max_window_bits=True), {}, id="bare-cmwb"),
    pytest.param(
        DeflateParameters(client_max_window_bits=True), {"client_max_window_bits": 9}, id="cmwb9"
    ),
    pytest.param(DeflateParameters(client_max_window_bits=12), {}, id="cmwb12"),
    pytest.param(DeflateParameters(server_max_window_bits=9), {}, id="smwb9"),
    pytest.param(DeflateParameters(), {"server_max_window_bits": 10}, id="server-pref-smwb10"),
    pytest.param(DeflateParameters(server_no_context_takeover=True), {}, id="snct"),
    pytest.param(DeflateParameters(client_no_context_takeover=True), {}, id="cnct"),
    pytest.param(DeflateParameters(), {"server_no_context_takeover": True}, id="server-pref-snct"),
    pytest.param(DeflateParameters(), {"client_no_context_takeover": True}, id="server-pref-cnct"),
    pytest.param(
        DeflateParameters(True, True, 9, True), {"client_max_window_bits": 9}, id="all-min"
    ),
    pytest.param(DeflateParameters(True, True, 15, 15), {}, id="all-max"),
]

messages = st.lists(
    st.one_of(
        st.binary(max_size=2000),
        st.text(alphabet='ab xyz{}":,0123456789', max_size=3000).map(str.encode),
    ),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize(("offer", "prefs"), VARIANTS)
@given(data=messages)
def test_round_trip_both_directions(
    offer: DeflateParameters, prefs: dict[str, Any], data: list[bytes]
) -> None:
    client, server = pair(offer, **prefs)
    for message in data:
        assert server.decompress(client.compress(message), True) == message
        assert client.decompress(server.compress(message), True) == message


@pytest.mark.parametrize(("offer", "prefs"), VARIANTS)
@given(data=messages, st_data=st.data())
def test_round_trip_fragmented(
    offer: DeflateParameters, prefs: dict[str, Any], data: list[bytes], st_data: st.DataObject
) -> None:
    client, server = pair(offer, **prefs)
    for message in data:
        # Fragmented on the send side...
        cuts = sorted(st_data.draw(st.lists(st.integers(0, len(message)), max_size=4)))
        pieces = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)])]
        frames = [client.compress_fragment(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
        got = b"".join(server.decompress(f, i == len(frames) - 1) for i, f in enumerate(frames))
        assert got == message
        # ... and a whole message cut anywhere on the receive side.
        payload = server.compress(message)
        cuts = sorted(st_data.draw(st.lists(st.integers(0, len(payload)), max_size=4)))
        chunks = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        got = b"".join(client.decompress(c, i == len(chunks) - 1) for i, c in enumerate(chunks))
        assert got == message


@pytest.mark.parametrize(("offer", "prefs"), VARIANTS)
@given(message=st.binary(min_size=1, max_size=500).map(lambda b: b * 3))
def test_context_takeover_independence(
    offer: DeflateParameters, prefs: dict[str, Any], message: bytes
) -> None:
    client, server = pair(offer, **prefs)
    for eng, peer in ((client, server), (server, client)):
        first = eng.compress(message)
        second = eng.compress(message)
        if eng.local_no_context_takeover:
            # Each message is compressed on its own: same input, same bytes, and the
            # peer could inflate the second one with a fresh decompressor.
            assert first == second
            assert (
                engine(not peer.is_server, params=DeflateParameters()).decompress(second, True)
                == message
            )
        else:
            # The second one refers to the first one's window.
            assert len(second) < len(first) or len(first) <= 8
        assert peer.decompress(first, True) == message
        assert peer.decompress(second, True) == message


def test_window_bits_applied() -> None:
    # Data repeating at a distance of 1000 bytes compresses well with a 2048-byte
    # window, not with 512 or 1024 bytes (zlib reaches window - 262 bytes back).
    rnd = random.Random(7)
    block = bytes(rnd.getrandbits(8) for _ in range(1000))
    data = block * 5
    small = engine(True, params=DeflateParameters(server_max_window_bits=10)).compress(data)
    large = engine(True, params=DeflateParameters(server_max_window_bits=11)).compress(data)
    assert len(large) < 1500 < len(small)
    receiver = engine(False, params=DeflateParameters(server_max_window_bits=11))
    assert receiver.decompress(large, True) == data


# -- size limit ---------------------------------------------------------------------


def _bomb(megabytes: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(megabytes)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    payload = b"".join(parts)
    assert payload.endswith(b"\x00\x00\xff\xff")
    return payload[:-4]


def _proc_status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of memory allocated in the block, in bytes (``[peak]`` once it ends).

    tracemalloc where it exists (CPython); elsewhere (PyPy has no tracemalloc)
    the growth of the process's resident high-water mark, reset through
    ``/proc/self/clear_refs`` (Linux); skipped where neither is available.
    """
    result: list[int] = []
    try:
        import tracemalloc
    except ImportError:  # PyPy
        tracemalloc = None  # type: ignore[assignment]
    if tracemalloc is not None:
        tracemalloc.start()
        try:
            yield result
            result.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        return
    if not sys.platform.startswith("linux"):
        pytest.skip("no tracemalloc on this interpreter and no /proc to measure memory")
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # VmHWM := VmRSS
    before = _proc_status("VmRSS")
    yield result
    result.append(_proc_status("VmHWM") - before)


@pytest.fixture(scope="module")
def bomb_100mb() -> bytes:
    return _bomb(100)


class TestSizeLimit:
    def test_bomb_stops_early_with_little_memory(self, bomb_100mb: bytes) -> None:
        # DEFLATE's best ratio is about 1:1032, so 100 MB needs ~100 KB.
        assert len(bomb_100mb) < 110_000
        receiver = engine(False, max_message_size=1 << 20)
        with peak_memory() as measured:
            start = time.perf_counter()
            with pytest.raises(MessageTooBig) as info:
                receiver.decompress(bomb_100mb, True)
            elapsed = time.perf_counter() - start
        [peak] = measured
        assert info.value.close_code == 1009
        assert peak < 8 << 20, peak
        assert elapsed < 1.0

    def test_bomb_across_fragments(self, bomb_100mb: bytes) -> None:
        receiver = engine(False, max_message_size=10 << 20)
        with peak_memory() as measured, pytest.raises(MessageTooBig):
            for i in range(0, len(bomb_100mb), 1000):
                receiver.decompress(bomb_100mb[i : i + 1000], False)
        [peak] = measured
        assert peak < 16 << 20, peak

    def test_1kb_bomb(self) -> None:
        payload = _bomb(1)
        assert len(payload) < 1100
        with pytest.raises(MessageTooBig):
            engine(False, max_message_size=65536).decompress(payload, True)
        assert len(engine(False, max_message_size=1 << 20).decompress(payload, True)) == 1 << 20

    @pytest.mark.parametrize("size", [0, 1, 5, 1000, 4095, 4096, 65536, 100_000])
    def test_exact_boundary(self, size: int) -> None:
        message = (b"0123456789abcdef" * (size // 16 + 1))[:size]
        payload = engine(True).compress(message)
        assert engine(False, max_message_size=size).decompress(payload, True) == message
        if size:
            with pytest.raises(MessageTooBig):
                engine(False, max_message_size=size - 1).decompress(payload, True)

    @pytest.mark.parametrize("size", [1, 1000, 100_000])
    def test_boundary_across_fragments(self, size: int) -> None:
        message = bytes(size)
        sender = engine(True)
        pieces = [message[: size // 3], message[size // 3 : size // 2], message[size // 2 :]]
        frames = [sender.compress_fragment(p, i == 2) for i, p in enumerate(pieces)]

        def feed(limit: int) -> bytes:
            receiver = engine(False, max_message_size=limit)
            return b"".join(receiver.decompress(f, i == 2) for i, f in enumerate(frames))

        assert feed(size) == message
        with pytest.raises(MessageTooBig):
            feed(size - 1)

    def test_budget_is_per_message(self) -> None:
        sender, receiver = engine(True), engine(False, max_message_size=100)
        for _ in range(50):
            assert receiver.decompress(sender.compress(b"x" * 100), True) == b"x" * 100
        assert receiver.decompress(sender.compress_fragment(b"y" * 60, False), False) == b"y" * 60
        with pytest.raises(MessageTooBig):
            receiver.decompress(sender.compress_fragment(b"y" * 41, True), True)

    def test_unlimited(self) -> None:
        payload = _bomb(8)
        assert len(engine(False, max_message_size=None).decompress(payload, True)) == 8 << 20

    def test_default_limit_is_1_mib(self) -> None:
        assert DEFAULT_MAX_MESSAGE_SIZE == 1 << 20
        payload = engine(True).compress(bytes(1 << 20))
        assert len(engine(False).decompress(payload, True)) == 1 << 20
        with pytest.raises(MessageTooBig):
            engine(False).decompress(engine(True).compress(bytes((1 << 20) + 1)), True)


_STEP = 1 << 20  # wsframe.deflate._STEP: zlib is asked for at most this per call


def _patterned(size: int) -> bytes:
    """Compressible but not trivially: a ratio of about 1:30."""
    return (b"0123456789abcdefghij" * (size // 20 + 1))[:size]


@pytest.mark.parametrize("size", [_STEP - 1, _STEP, _STEP + 1, 3 * _STEP + 5])
@pytest.mark.parametrize("frames", [1, 3])
def test_large_message_inflated_in_steps(size: int, frames: int) -> None:
    """Past 1 MiB, zlib is asked for 1 MiB at a time: the same bytes, the same limit."""
    message = _patterned(size)
    sender = engine(True)
    pieces = [message[i * size // frames : (i + 1) * size // frames] for i in range(frames)]
    payloads = [sender.compress_fragment(p, i == frames - 1) for i, p in enumerate(pieces)]

    def receive(limit: int) -> bytes:
        receiver = engine(False, max_message_size=limit)
        out = b"".join(receiver.decompress(p, i == frames - 1) for i, p in enumerate(payloads))
        # The budget is back for the next message.
        assert receiver.decompress(engine(True).compress(b"next"), True) == b"next"
        return out

    assert receive(size) == message
    assert receive(size + _STEP) == message
    with pytest.raises(MessageTooBig):
        receive(size - 1)


@pytest.mark.parametrize("size", [_STEP, _STEP + 1, 2 * _STEP + 3])
def test_small_frame_large_message(size: int) -> None:
    """A few kilobytes inflating to megabytes (the one-call path), in steps too."""
    payload = _deflated(bytes(size))
    assert len(payload) < 4096
    assert engine(False, max_message_size=size).decompress(payload, True) == bytes(size)
    with pytest.raises(MessageTooBig):
        engine(False, max_message_size=size - 1).decompress(payload, True)


@pytest.mark.parametrize("first", [_STEP - 1, _STEP, 2 * _STEP])
def test_end_of_stream_within_steps(first: int) -> None:
    """A stream ended (BFINAL) at or near a step boundary, then another one."""
    data = _finished(_patterned(first)) + _deflated(b"and more")
    for limit in (8 * _STEP, first + 8):
        assert engine(False, max_message_size=limit).decompress(data, True) == (
            _patterned(first) + b"and more"
        )
    with pytest.raises(MessageTooBig):
        engine(False, max_message_size=first + 7).decompress(data, True)


def _deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def _finished(data: bytes) -> bytes:
    """A raw DEFLATE stream that ends with a BFINAL block."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH)


#: name -> (payloads of the frames of one message, the error expected).
_KEPT_ERRORS: dict[str, tuple[list[bytes], type[ProtocolError]]] = {
    "one_small_frame": ([_bomb(3)], MessageTooBig),  # < 4 KiB: the one-call path
    "one_frame": ([_bomb(8)], MessageTooBig),
    "fragments": ([_bomb(8)[:4000], _bomb(8)[4000:]], MessageTooBig),
    "after_end_of_stream": ([_finished(bytes(1_000_000)) + _bomb(1)], MessageTooBig),
    "corrupt_after_end_of_stream": ([_finished(bytes(1_000_000)) + b"\x07\xff"], ProtocolError),
}


@pytest.mark.parametrize("name", list(_KEPT_ERRORS))
def test_kept_error_holds_no_output(name: str) -> None:
    """The error of decompress() does not keep what was inflated before it.

    Its traceback starts in decompress(): the frames below it, which held the
    output (up to the limit: the megabytes of a compression bomb), are freed
    even if the caller keeps the error, e.g. as a failed connection's error.
    """
    tracemalloc = pytest.importorskip("tracemalloc", reason="PyPy has no tracemalloc")
    payloads, expected = _KEPT_ERRORS[name]
    receiver = engine(False, max_message_size=1 << 20)
    kept: Optional[BaseException] = None
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        try:
            for index, payload in enumerate(payloads):
                receiver.decompress(payload, index == len(payloads) - 1)
        except ProtocolError as exc:
            kept = exc
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert type(kept) is expected
    assert held < 64 << 10, f"{name}: the kept error holds {held} bytes"
    if expected is not MessageTooBig:
        assert isinstance(kept.__cause__, zlib.error)  # the cause stays


# -- corrupt data -------------------------------------------------------------------


class TestCorrupt:
    @pytest.mark.parametrize(
        "payload",
        [
            b"\xff\xff\xff\xff",
            b"\x07",  # BTYPE=11, reserved
            bytes.fromhex("0005 00 0000 48656c6c6f"),  # stored block, LEN/NLEN mismatch
            HELLO_AGAIN,  # distance too far back for a fresh window
        ],
    )
    def test_corrupt(self, payload: bytes) -> None:
        with pytest.raises(ProtocolError) as info:
            engine(False).decompress(payload, True)
        assert not isinstance(info.value, MessageTooBig)
        assert info.value.close_code == 1002
        assert "invalid permessage-deflate data" in str(info.value)

    def test_corrupt_in_fragment(self) -> None:
        receiver = engine(False)
        assert receiver.decompress(HELLO[:3], False) == b"He"  # streamed as it arrives
        first = engine(True).compress_fragment(b"Hello", False)
        receiver = engine(False)
        assert receiver.decompress(first, False) == b"Hello"
        with pytest.raises(ProtocolError):
            receiver.decompress(b"\x07\xff", True)  # next block has the reserved BTYPE

    @given(st.binary(min_size=1, max_size=200), st.integers(0, 100))
    def test_random_bytes_only_protocol_errors(self, payload: bytes, limit: int) -> None:
        try:
            out = engine(False, max_message_size=limit).decompress(payload, True)
        except ProtocolError as exc:
            assert exc.close_code in (1002, 1009)
        else:
            assert len(out) <= limit


# -- interop ----------------------------------------------------------------------

INTEROP = [
    pytest.param(DeflateParameters(client_max_window_bits=True), {}, id="defaults"),
    pytest.param(DeflateParameters(True, True, None, True), {}, id="no-context"),
    pytest.param(DeflateParameters(False, False, 10, 11), {}, id="bits-10-11"),
    pytest.param(
        DeflateParameters(client_max_window_bits=True),
        {"server_max_window_bits": 9, "client_max_window_bits": 12},
        id="server-prefs",
    ),
]

INTEROP_MESSAGES = [
    b"Hello",
    b"Hello",
    b"",
    b'{"type":"chat","text":"hi"}' * 20,
    bytes(range(256)) * 40,
]


class TestInteropWebsockets:
    ws_pmd = pytest.importorskip("websockets.extensions.permessage_deflate")
    ws_frames = pytest.importorskip("websockets.frames")

    def _exchange(self, ours: PerMessageDeflate, theirs: Any) -> None:
        frame_cls = self.ws_frames.Frame
        binary = self.ws_frames.Opcode.BINARY
        for message in INTEROP_MESSAGES:
            encoded = theirs.encode(frame_cls(binary, message))
            assert encoded.rsv1
            assert ours.decompress(encoded.data, True) == message
            decoded = theirs.decode(frame_cls(binary, ours.compress(message), rsv1=True))
            assert bytes(decoded.data) == message

    @pytest.mark.parametrize(("offer", "prefs"), INTEROP)
    def test_our_server_their_client(self, offer: DeflateParameters, prefs: dict[str, Any]) -> None:
        factory = self.ws_pmd.ClientPerMessageDeflateFactory(
            server_no_context_takeover=offer.server_no_context_takeover,
            client_no_context_takeover=offer.client_no_context_takeover,
            server_max_window_bits=offer.server_max_window_bits,
            client_max_window_bits=offer.client_max_window_bits,
        )
        result = negotiate_deflate([list(factory.get_request_params())], **prefs)
        assert result is not None
        response, ours = result
        theirs = factory.process_response_params(response, [])
        self._exchange(ours, theirs)

    @pytest.mark.parametrize(("offer", "prefs"), INTEROP)
    def test_our_client_their_server(self, offer: DeflateParameters, prefs: dict[str, Any]) -> None:
        factory = self.ws_pmd.ServerPerMessageDeflateFactory(**prefs)
        response, theirs = factory.process_request_params(offer.to_params(), [])
        ours = accept_deflate_response(offer, response)
        self._exchange(ours, theirs)


class _WsprotoRole:
    def __init__(self, client: bool) -> None:
        self.client = client


class TestInteropWsproto:
    wsproto_ext = pytest.importorskip("wsproto.extensions")
    wsproto_frame = pytest.importorskip("wsproto.frame_protocol")

    def _exchange(self, ours: PerMessageDeflate, theirs: Any, their_role: _WsprotoRole) -> None:
        opcode = self.wsproto_frame.Opcode.BINARY
        rsv_bits = self.wsproto_frame.RsvBits
        for message in INTEROP_MESSAGES:
            rsv, data = theirs.frame_outbound(
                their_role, opcode, rsv_bits(False, False, False), message, True
            )
            assert rsv.rsv1
            assert ours.decompress(data, True) == message
            payload = ours.compress(message)
            theirs.frame_inbound_header(
                their_role, opcode, rsv_bits(True, False, False), len(payload)
            )
            out = theirs.frame_inbound_payload_data(their_role, payload)
            out += theirs.frame_inbound_complete(their_role, True) or b""
            assert out == message

    @staticmethod
    def _header(params: list[Param]) -> str:
        return "; ".join([EXTENSION_NAME] + [n if v is None else f"{n}={v}" for n, v in params])

    @pytest.mark.parametrize("no_context", [False, True])
    def test_our_server_their_client(self, no_context: bool) -> None:
        theirs = self.wsproto_ext.PerMessageDeflate(
            client_no_context_takeover=no_context,
            server_no_context_takeover=no_context,
            client_max_window_bits=12,
            server_max_window_bits=11,
        )
        offer = [
            tuple(p.split("=")) if "=" in p else (p, None) for p in str(theirs.offer()).split("; ")
        ]
        result = negotiate_deflate([offer])  # type: ignore[list-item]
        assert result is not None
        response, ours = result
        theirs.finalize(self._header(response))
        self._exchange(ours, theirs, _WsprotoRole(client=True))

    @pytest.mark.parametrize("no_context", [False, True])
    def test_our_client_their_server(self, no_context: bool) -> None:
        theirs = self.wsproto_ext.PerMessageDeflate(
            client_no_context_takeover=no_context, server_no_context_takeover=no_context
        )
        offer = DeflateParameters(client_max_window_bits=10, server_max_window_bits=12)
        answer = theirs.accept(self._header(offer.to_params()))
        params = [
            tuple(p.split("=")) if "=" in p else (p, None) for p in str(answer).split("; ") if p
        ]
        ours = accept_deflate_response(offer, params)  # type: ignore[arg-type]
        self._exchange(ours, theirs, _WsprotoRole(client=False))


@pytest.mark.parametrize("fragment", [256, 4096])
def test_budget_is_per_message_with_small_final_fragments(fragment: int) -> None:
    # Regression: the fast path for a small final frame did not reset the
    # budget, so fragmented messages added up until a legal one was refused.
    params = DeflateParameters()
    sender = PerMessageDeflate(params, is_server=False, max_message_size=None)
    receiver = PerMessageDeflate(params, is_server=True, max_message_size=300_000)
    message = bytes(range(100)) * 1300  # 130 kB: three of them exceed the limit
    for _ in range(10):
        compressed = sender.compress(message)
        pieces = [compressed[i : i + fragment] for i in range(0, len(compressed), fragment)]
        last = len(pieces) - 1
        inflated = b"".join(receiver.decompress(p, i == last) for i, p in enumerate(pieces))
        assert inflated == message
