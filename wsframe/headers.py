"""HTTP header fields for the opening handshake.

:class:`Headers` is an ordered, case-insensitive multi-dict of ``str -> str``.
The parsers turn header *values* into Python structures:

* :func:`parse_tokens` for comma-separated token lists (``Upgrade``,
  ``Connection``, ``Sec-WebSocket-Protocol``);
* :func:`parse_extensions` / :func:`format_extensions` for
  ``Sec-WebSocket-Extensions`` (RFC 6455 §9.1 with the RFC 7230 list and
  quoted-string rules).

On malformed input the parsers raise :class:`ValueError` and nothing else.

Header values are ``str`` holding the raw octets decoded as ISO-8859-1
(latin-1), so that every octet an HTTP peer may send (including ``obs-text``)
round-trips; :meth:`Headers.serialize` encodes them back the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from sys import intern
from typing import Optional, Union

__all__ = [
    "ExtensionList",
    "ExtensionParams",
    "Headers",
    "HeadersLike",
    "format_extensions",
    "is_token",
    "parse_extensions",
    "parse_tokens",
]

#: Parameters of one extension: ``(name, value or None)`` pairs.
ExtensionParams = list[tuple[str, Optional[str]]]
#: Parsed ``Sec-WebSocket-Extensions``: ``(extension name, parameters)`` pairs.
ExtensionList = list[tuple[str, ExtensionParams]]
#: Anything :class:`Headers` can be built from.
HeadersLike = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]]]

# tchar (RFC 9110 §5.6.2)
_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN_RE = re.compile(f"[{_TCHARS}]+")
# quoted-string (RFC 9110 §5.6.4): qdtext and quoted-pair
_QDTEXT = r"[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]"
_QUOTED_PAIR = r"\\[\t\x20-\x7e\x80-\xff]"
_QUOTED_RE = re.compile(f'"((?:{_QDTEXT}|{_QUOTED_PAIR})*)"')
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
# characters that must never appear in a header value we send
_BAD_VALUE_RE = re.compile(r"[\x00\r\n]")
_OWS = " \t"


def is_token(value: str) -> bool:
    """Return whether ``value`` is an HTTP ``token`` (RFC 9110 §5.6.2)."""
    return _TOKEN_RE.fullmatch(value) is not None


class Headers:
    """Ordered, case-insensitive multi-dict of HTTP header fields (``str -> str``).

    ``Headers([("Host", "x"), ...])``, ``Headers({"Host": "x"})`` or
    ``Headers(other_headers)``. Names keep their original case and order;
    lookups ignore case.

    * ``h[name]`` is the value if there is exactly one field with that name,
      the values joined with ``", "`` if there are several (RFC 9110 list
      semantics), and raises :class:`KeyError` if there is none;
    * ``h[name] = value`` replaces every field with that name (the new field
      takes the place of the first one); ``del h[name]`` removes them all
      (:class:`KeyError` if there is none);
    * ``len(h)`` is the number of fields; iterating over ``h`` (like
      :meth:`items`) yields ``(name, value)`` pairs.

    Names must be tokens and values must not contain CR, LF or NUL, and must
    be encodable as latin-1 (:class:`ValueError` otherwise), so a
    :class:`Headers` can always be serialized without header injection.
    """

    __slots__ = ("_fields",)

    def __init__(self, headers: Optional[HeadersLike] = None) -> None:
        # (name, value, lower-case name)
        self._fields: list[tuple[str, str, str]] = []
        if headers is not None:
            self.extend(headers)

    @classmethod
    def from_parsed(cls, fields: list[tuple[str, str]]) -> Headers:
        """Build from ``(name, value)`` fields a parser has already validated.

        Skips the checks of :meth:`add` (the parser made them); names are
        interned, since the same few recur in every request.
        """
        h = cls()
        # Names are interned: the same few recur in every request, and a
        # server keeps each connection's request.
        h._fields = [(intern(n), v, intern(n.lower())) for n, v in fields]
        return h

    @staticmethod
    def _check(name: str, value: str) -> None:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, not {name!r}: {value!r}")
        if not is_token(name):
            raise ValueError(f"invalid header name {name!r}")
        if _BAD_VALUE_RE.search(value):
            raise ValueError(f"invalid character in the value of header {name!r}: {value!r}")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"the value of header {name!r} is not encodable as latin-1: {value!r}"
            ) from None

    def extend(self, headers: HeadersLike) -> None:
        """Append every field of ``headers`` (a :class:`Headers`, mapping or pairs)."""
        if isinstance(headers, Headers):
            self._fields.extend(headers._fields)
            return
        pairs: Iterable[tuple[str, str]]
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for pair in pairs:
            name, value = pair
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping the fields already present with that name."""
        self._check(name, value)
        self._fields.append((name, value, name.lower()))

    def get_all(self, name: str) -> list[str]:
        """Return the values of every field called ``name``, in order (maybe empty)."""
        key = name.lower()
        return [v for _, v, k in self._fields if k == key]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Return ``self[name]``, or ``default`` if there is no such field."""
        values = self.get_all(name)
        if not values:
            return default
        return ", ".join(values)

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        self._check(name, value)
        key = name.lower()
        new: list[tuple[str, str, str]] = []
        placed = False
        for field in self._fields:
            if field[2] == key:
                if not placed:
                    new.append((name, value, key))
                    placed = True
            else:
                new.append(field)
        if not placed:
            new.append((name, value, key))
        self._fields = new

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [f for f in self._fields if f[2] != key]
        if len(kept) == len(self._fields):
            raise KeyError(name)
        self._fields = kept

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(k == key for _, _, k in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def items(self) -> list[tuple[str, str]]:
        """Return every field as a ``(name, value)`` pair, original case and order."""
        return [(n, v) for n, v, _ in self._fields]

    def raw_items(self) -> list[tuple[str, str]]:
        """Same as :meth:`items`."""
        return self.items()

    def names(self) -> list[str]:
        """Return the distinct field names (lower case) in order of first appearance."""
        seen: dict[str, None] = {}
        for _, _, k in self._fields:
            seen.setdefault(k, None)
        return list(seen)

    def copy(self) -> Headers:
        """Return a shallow copy."""
        h = Headers()
        h._fields = list(self._fields)
        return h

    def _grouped(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for _, v, k in self._fields:
            groups.setdefault(k, []).append(v)
        return groups

    def __eq__(self, other: object) -> bool:
        """Equal if the same names (ignoring case) have the same values in the same order."""
        if not isinstance(other, Headers):
            return NotImplemented
        return self._grouped() == other._grouped()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    def serialize(self) -> bytes:
        """Return the fields as ``b"Name: value\\r\\n"`` lines (latin-1)."""
        return "".join(f"{n}: {v}\r\n" for n, v, _ in self._fields).encode("latin-1")


def parse_tokens(values: Iterable[str]) -> list[str]:
    """Return the tokens of comma-separated header values, in order.

    ``values`` are the values of every field with that name (e.g.
    ``headers.get_all("Connection")``); a single ``str`` is accepted too.
    Whitespace around tokens is stripped and empty list elements are dropped
    (RFC 9110 §5.6.1); the original case is kept (compare with ``.lower()``
    where the header is case-insensitive). An element that is not a token
    raises :class:`ValueError`.
    """
    if isinstance(values, str):
        values = [values]
    tokens: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip(_OWS)
            if not item:
                continue
            if not is_token(item):
                raise ValueError(f"invalid token {item!r} in header value {value!r}")
            tokens.append(item)
    return tokens


def _skip_ows(value: str, pos: int) -> int:
    n = len(value)
    while pos < n and value[pos] in _OWS:
        pos += 1
    return pos


def _expect_token(value: str, pos: int, what: str) -> tuple[str, int]:
    m = _TOKEN_RE.match(value, pos)
    if m is None:
        found = repr(value[pos]) if pos < len(value) else "end of value"
        raise ValueError(f"expected {what} at position {pos}, found {found}, in {value!r}")
    return m.group(), m.end()


def _parse_extension_value(value: str, out: ExtensionList) -> None:
    n = len(value)
    pos = 0
    while True:
        pos = _skip_ows(value, pos)
        if pos == n:
            return
        if value[pos] == ",":  # empty list element (RFC 9110 §5.6.1)
            pos += 1
            continue
        name, pos = _expect_token(value, pos, "an extension name")
        params: ExtensionParams = []
        pos = _skip_ows(value, pos)
        while pos < n and value[pos] == ";":
            pos = _skip_ows(value, pos + 1)
            pname, pos = _expect_token(value, pos, "a parameter name")
            pvalue: Optional[str] = None
            after = _skip_ows(value, pos)
            if after < n and value[after] == "=":
                pos = _skip_ows(value, after + 1)
                if pos < n and value[pos] == '"':
                    m = _QUOTED_RE.match(value, pos)
                    if m is None:
                        raise ValueError(f"invalid quoted string at position {pos} in {value!r}")
                    pvalue = _QUOTED_PAIR_RE.sub(r"\1", m.group(1))
                    if not is_token(pvalue):
                        # RFC 6455 §9.1: the unescaped value must be a token
                        raise ValueError(
                            f"quoted value {m.group()} of parameter {pname!r} is not a "
                            f"token after unquoting, in {value!r}"
                        )
                    pos = m.end()
                else:
                    pvalue, pos = _expect_token(value, pos, f"a value for parameter {pname!r}")
            params.append((pname.lower(), pvalue))
            pos = _skip_ows(value, pos)
        out.append((name.lower(), params))
        if pos == n:
            return
        if value[pos] != ",":
            raise ValueError(
                f"expected ',' or ';' at position {pos}, found {value[pos]!r}, in {value!r}"
            )
        pos += 1


def parse_extensions(values: Iterable[str]) -> ExtensionList:
    """Parse ``Sec-WebSocket-Extensions`` values (RFC 6455 §9.1, RFC 7230 lists).

    Grammar, per header value::

        extension-list = #( ext-name *( OWS ";" OWS param ) )
        param          = token [ OWS "=" OWS ( token / quoted-string ) ]

    ``values`` are the values of every ``Sec-WebSocket-Extensions`` field, in
    order (a single ``str`` is accepted too); the result is the extensions of
    all of them, in order, as ``[(name, [(param, value or None), ...]), ...]``.
    Extension and parameter names are lower-cased; values keep their case and
    quoted-string values are unquoted (and must then be tokens, RFC 6455
    §9.1). Empty list elements are ignored. Duplicate names or parameters are
    kept (their meaning is the extension's business). Anything malformed
    raises :class:`ValueError` -- never any other exception.
    """
    if isinstance(values, str):
        values = [values]
    out: ExtensionList = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"header values must be str, not {type(value).__name__}")
        _parse_extension_value(value, out)
    return out


def format_extensions(extensions: Iterable[tuple[str, Iterable[tuple[str, Optional[str]]]]]) -> str:
    """Format ``[(name, [(param, value or None), ...]), ...]`` for ``Sec-WebSocket-Extensions``.

    E.g. ``[("permessage-deflate", [("client_max_window_bits", None)])]`` →
    ``"permessage-deflate; client_max_window_bits"``. Names, parameter names
    and values must be tokens (RFC 6455 §9.1 allows only token values, so
    they are written unquoted); anything else raises :class:`ValueError`.
    """
    items: list[str] = []
    for name, params in extensions:
        if not isinstance(name, str) or not is_token(name):
            raise ValueError(f"invalid extension name {name!r}")
        parts = [name]
        for pname, pvalue in params:
            if not isinstance(pname, str) or not is_token(pname):
                raise ValueError(f"invalid parameter name {pname!r} for extension {name!r}")
            if pvalue is None:
                parts.append(pname)
            elif isinstance(pvalue, str) and is_token(pvalue):
                parts.append(f"{pname}={pvalue}")
            else:
                raise ValueError(
                    f"invalid value {pvalue!r} for parameter {pname!r} of extension {name!r}"
                )
        items.append("; ".join(parts))
    return ", ".join(items)
