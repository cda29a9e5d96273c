"""Fuzzing of permessage-deflate negotiation parameters.

Whatever the ``Sec-WebSocket-Extensions`` values or parameter pairs:
``parse_extensions`` raises only ``ValueError``; ``DeflateParameters.from_params``
(offer and response rules) only ``ValueError``; ``negotiate_deflate`` returns
a result or ``None`` and never raises; ``accept_deflate_response`` only
``InvalidHandshake``.

    python fuzz/fuzz_deflate_params.py -runs=20000
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from wsframe.deflate import (
        DeflateParameters,
        accept_deflate_response,
        deflate_offer,
        negotiate_deflate,
    )
    from wsframe.errors import InvalidHandshake
    from wsframe.headers import parse_extensions

NAMES = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
]
OFFER = DeflateParameters.from_params(deflate_offer()[1], is_offer=True)


def params_from(fdp: atheris.FuzzedDataProvider) -> list[tuple[str, object]]:
    params: list[tuple[str, object]] = []
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        kind = fdp.ConsumeIntInRange(0, 3)
        if kind == 0:
            name = fdp.ConsumeUnicodeNoSurrogates(24)
        else:
            name = NAMES[fdp.ConsumeIntInRange(0, 3)]
            if fdp.ConsumeBool():
                name = name.upper()
        choice = fdp.ConsumeIntInRange(0, 3)
        value: object
        if choice == 0:
            value = None
        elif choice == 1:
            value = str(fdp.ConsumeIntInRange(-2, 20))
        elif choice == 2:
            value = fdp.ConsumeUnicode(6)
        else:
            value = fdp.ConsumeInt(2)  # not a str: still only ValueError
        params.append((name, value))
    return params


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    offers = []
    if fdp.ConsumeBool():
        header = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 300))
        try:
            items = parse_extensions([header])
        except ValueError:
            items = []
        offers = [params for name, params in items if name == "permessage-deflate"]
    else:
        offers = [params_from(fdp) for _ in range(fdp.ConsumeIntInRange(1, 3))]
    for params in offers:
        for is_offer in (True, False):
            try:
                result = DeflateParameters.from_params(params, is_offer=is_offer)
            except ValueError:
                continue
            assert isinstance(result, DeflateParameters)
    result = negotiate_deflate(offers, server_no_context_takeover=fdp.ConsumeBool())
    assert result is None or isinstance(result, tuple)
    if offers:
        with contextlib.suppress(InvalidHandshake):
            accept_deflate_response(OFFER, offers[0])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
