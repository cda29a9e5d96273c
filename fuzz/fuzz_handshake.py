"""Fuzzing of the opening handshake: parsers, validation, the sans-I/O server.

Whatever the bytes, in whatever chunks:

* ``RequestParser.feed`` then ``validate_request`` (and the request's
  ``subprotocols``/``extensions`` once valid) raise nothing but
  ``InvalidHandshake``;
* ``ResponseParser.feed``/``feed_eof`` then ``validate_response`` against a
  real request raise nothing but ``InvalidHandshake``;
* a ``ServerConnection`` fed the bytes (and accepting the request if one
  arrives) raises nothing at all: it answers an HTTP error instead, with an
  origin policy too;
* ``parse_origin`` raises nothing but ``ValueError``, and an
  ``OriginPolicy`` decides about any ``Origin`` and ``Host`` without raising.

    python fuzz/fuzz_handshake.py -runs=20000
    python fuzz/fuzz_handshake.py -max_total_time=3600 -dict=fuzz/http.dict corpus/handshake
"""

from __future__ import annotations

import contextlib
import re
import sys

import atheris

with atheris.instrument_imports():
    from wsframe.connection import ServerConnection
    from wsframe.errors import InvalidHandshake
    from wsframe.events import Request
    from wsframe.handshake import (
        OriginPolicy,
        RequestParser,
        ResponseParser,
        build_request,
        parse_origin,
        validate_request,
        validate_response,
    )

REQUEST = build_request(
    "ws://example.com/chat",
    key="dGhlIHNhbXBsZSBub25jZQ==",
    subprotocols=["chat", "superchat"],
    extensions="permessage-deflate; client_max_window_bits",
)


POLICY = OriginPolicy(
    ["https://example.com", "http://[::1]:8080", re.compile(r"https://[a-z]+\.example\.org"), None],
    same_host=True,
)


def chunks(fdp: atheris.FuzzedDataProvider, data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        size = fdp.ConsumeIntInRange(1, 512) if fdp.remaining_bytes() else len(data)
        out.append(data[pos : pos + size])
        pos += size
    return out


def check_request(pieces: list[bytes]) -> None:
    parser = RequestParser(max_request_line=1024, max_header_line=1024, max_headers=32)
    try:
        for piece in pieces:
            request = parser.feed(piece)
            if request is not None:
                validate_request(request)
                _ = request.subprotocols, request.extensions, request.path, request.query
                return
    except InvalidHandshake:
        pass


def check_response(pieces: list[bytes]) -> None:
    parser = ResponseParser(max_body=1024)
    try:
        response = None
        for piece in pieces:
            response = parser.feed(piece)
            if response is not None:
                break
        if response is None:
            response = parser.feed_eof()
        validate_response(REQUEST, response)
    except InvalidHandshake:
        pass


def check_origin(origin: str, host: str) -> None:
    with contextlib.suppress(ValueError):
        parse_origin(origin)
    assert POLICY.allows(origin, host) in (True, False)
    scope = {"headers": [(b"origin", origin.encode()), (b"host", host.encode())]}
    assert POLICY.allows_scope(scope) in (True, False)


def check_server(pieces: list[bytes], accept: bool, policy: bool) -> None:
    server = ServerConnection(max_header_line=1024, origins=POLICY if policy else None)
    for piece in pieces:
        server.receive_data(piece)
        for event in server.events():
            if isinstance(event, Request):
                if accept:
                    server.accept()
                else:
                    server.reject(403)
        server.data_to_send()
        if server.close_transport:
            break


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
    if mode == 1:
        # Start from a real request, so the fuzzer explores past the head.
        body = REQUEST.serialize()[: fdp.ConsumeIntInRange(0, 300)] + body
    pieces = chunks(fdp, body)
    check_request(pieces)
    check_response(pieces)
    check_server(pieces, accept=mode != 3, policy=fdp.ConsumeBool())
    text = body.decode("latin-1")
    check_origin(text[:200], text[200:260])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
