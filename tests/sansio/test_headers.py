"""wsframe.headers: Headers, token lists, Sec-WebSocket-Extensions."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsframe.headers import (
    Headers,
    format_extensions,
    is_token,
    parse_extensions,
    parse_tokens,
)

# -- Headers ------------------------------------------------------------------


def test_headers_construction_forms() -> None:
    pairs = [("Host", "example.com"), ("X-A", "1"), ("x-a", "2")]
    h = Headers(pairs)
    assert h.items() == pairs
    assert h.raw_items() == pairs
    assert list(h) == pairs
    assert Headers({"Host": "example.com"}).items() == [("Host", "example.com")]
    assert Headers(h) == h and Headers(h) is not h
    assert len(Headers()) == 0


def test_headers_lookup_case_insensitive() -> None:
    h = Headers([("Host", "x"), ("X-A", "1"), ("x-a", "2")])
    assert h["HOST"] == "x" and h["host"] == "x"
    assert h["X-a"] == "1, 2"  # several values joined (RFC 9110 lists)
    assert h.get_all("X-A") == ["1", "2"]
    assert h.get_all("missing") == []
    assert h.get("missing") is None and h.get("missing", "d") == "d"
    assert h.get("x-A") == "1, 2"
    with pytest.raises(KeyError):
        h["missing"]
    assert "hOsT" in h and "missing" not in h and 3 not in h
    assert len(h) == 3
    assert h.names() == ["host", "x-a"]


def test_headers_set_and_delete() -> None:
    h = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    h["a"] = "9"
    assert h.items() == [("a", "9"), ("B", "2")]
    h["C"] = "4"
    assert h.items() == [("a", "9"), ("B", "2"), ("C", "4")]
    h.add("c", "5")
    assert h.get_all("C") == ["4", "5"]
    del h["C"]
    assert h.items() == [("a", "9"), ("B", "2")]
    with pytest.raises(KeyError):
        del h["C"]


def test_headers_equality_and_repr() -> None:
    a = Headers([("Host", "x"), ("A", "1"), ("A", "2")])
    b = Headers([("a", "1"), ("HOST", "x"), ("a", "2")])
    c = Headers([("a", "2"), ("HOST", "x"), ("a", "1")])
    assert a == b
    assert a != c  # order of same-name values matters
    assert a != [("Host", "x")]
    assert repr(a) == "Headers([('Host', 'x'), ('A', '1'), ('A', '2')])"
    with pytest.raises(TypeError):
        hash(a)
    d = a.copy()
    d.add("Z", "z")
    assert "Z" not in a


def test_headers_serialize() -> None:
    h = Headers([("Host", "x"), ("X-Latin", "caf\xe9")])
    assert h.serialize() == b"Host: x\r\nX-Latin: caf\xe9\r\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Bad Name", "v"),
        ("", "v"),
        ("X:Y", "v"),
        ("X", "a\r\nInjected: yes"),
        ("X", "a\nb"),
        ("X", "a\x00b"),
        ("X", "snowman \u2603"),
    ],
)
def test_headers_reject_unsafe(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers([(name, value)])
    h = Headers()
    with pytest.raises(ValueError):
        h[name] = value


def test_headers_reject_non_str() -> None:
    with pytest.raises(TypeError):
        Headers([("X", 1)])  # type: ignore[list-item]


# -- tokens -------------------------------------------------------------------


def test_parse_tokens() -> None:
    assert parse_tokens(["keep-alive, Upgrade"]) == ["keep-alive", "Upgrade"]
    assert parse_tokens(["a ,, b", " c\t", ""]) == ["a", "b", "c"]
    assert parse_tokens("x, y") == ["x", "y"]
    assert parse_tokens([]) == []
    for bad in (["a b"], ["a, b c"], ['"quoted"'], ["a;b"], ["caf\xe9"]):
        with pytest.raises(ValueError, match="invalid token"):
            parse_tokens(bad)


def test_is_token() -> None:
    assert is_token("permessage-deflate") and is_token("!#$%&'*+-.^_`|~09azAZ")
    assert not is_token("") and not is_token("a b") and not is_token("a\n")


# -- extensions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["permessage-deflate"], [("permessage-deflate", [])]),
        (
            ["permessage-deflate; client_max_window_bits"],
            [("permessage-deflate", [("client_max_window_bits", None)])],
        ),
        (
            ['permessage-deflate; client_max_window_bits="10"'],
            [("permessage-deflate", [("client_max_window_bits", "10")])],
        ),
        (
            ["Permessage-Deflate ;Server_No_Context_Takeover ; Client_Max_Window_Bits = 10"],
            [
                (
                    "permessage-deflate",
                    [("server_no_context_takeover", None), ("client_max_window_bits", "10")],
                )
            ],
        ),
        (
            ["permessage-deflate; client_max_window_bits, permessage-deflate", "x-foo; a=B"],
            [
                ("permessage-deflate", [("client_max_window_bits", None)]),
                ("permessage-deflate", []),
                ("x-foo", [("a", "B")]),
            ],
        ),
        ([" , a ,\t, b ,"], [("a", []), ("b", [])]),
        (['a; p="x\\yz"'], [("a", [("p", "xyz")])]),  # quoted-pair unescaped
        (["a; p=1; p=2"], [("a", [("p", "1"), ("p", "2")])]),  # duplicates kept
        ([""], []),
        ([], []),
        ("mux; max-channels=4", [("mux", [("max-channels", "4")])]),
    ],
)
def test_parse_extensions(values: list[str], expected: object) -> None:
    assert parse_extensions(values) == expected


@pytest.mark.parametrize(
    "value",
    [
        "a b",
        "a;",
        "a; ",
        "a;=1",
        "a; p=",
        "a; p= ;",
        "a; p=1 2",
        'a; p="unterminated',
        'a; p="two words"',  # not a token once unquoted (RFC 6455 §9.1)
        'a; p=""',
        'a; p="x"y',
        "a; p=(1)",
        ";a",
        "a,;b",
        "caf\xe9",
        "a; p=\u2603",
        'a; p="\u2603"',
        "a\x00",
        "a; p\n",
    ],
)
def test_parse_extensions_malformed(value: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_extensions([value])
    assert repr(value) in str(info.value) or "header values" in str(info.value)


def test_parse_extensions_non_str_value() -> None:
    with pytest.raises(ValueError):
        parse_extensions([b"a"])  # type: ignore[list-item]


@given(st.lists(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=40), max_size=3))
def test_parse_extensions_only_raises_value_error(values: list[str]) -> None:
    with contextlib.suppress(ValueError):
        parse_extensions(values)


_ext_alphabet = st.sampled_from([*'a=;," \t\\x-1', "\x7f", "\xe9"])


@given(st.lists(st.text(alphabet=_ext_alphabet, max_size=30), max_size=3))
def test_parse_extensions_grammar_chars_only_raise_value_error(values: list[str]) -> None:
    with contextlib.suppress(ValueError):
        parse_extensions(values)


_token = st.text(alphabet="!#$%&'*+-.^_`|~abcXYZ019", min_size=1, max_size=8)
_extensions = st.lists(
    st.tuples(_token, st.lists(st.tuples(_token, st.one_of(st.none(), _token)), max_size=3)),
    max_size=4,
)


@given(_extensions)
def test_format_parse_round_trip(
    extensions: list[tuple[str, list[tuple[str, str | None]]]],
) -> None:
    lowered = [(n.lower(), [(p.lower(), v) for p, v in ps]) for n, ps in extensions]
    assert parse_extensions([format_extensions(extensions)]) == lowered


def test_format_extensions() -> None:
    assert format_extensions([]) == ""
    assert (
        format_extensions(
            [
                ("permessage-deflate", [("client_max_window_bits", None)]),
                ("permessage-deflate", [("server_max_window_bits", "10")]),
            ]
        )
        == "permessage-deflate; client_max_window_bits, "
        "permessage-deflate; server_max_window_bits=10"
    )


@pytest.mark.parametrize(
    "extensions",
    [
        [("bad name", [])],
        [("a", [("p q", None)])],
        [("a", [("p", "two words")])],
        [("a", [("p", "")])],
        [("a", [("p", 'x"')])],
    ],
)
def test_format_extensions_invalid(
    extensions: list[tuple[str, list[tuple[str, str | None]]]],
) -> None:
    with pytest.raises(ValueError):
        format_extensions(extensions)
