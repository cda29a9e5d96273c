"""The sans-I/O connection: a client and a server connection feeding each other.

Every test runs on the compiled connection and on its twin (see conftest.py).
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsframe import InvalidHandshake, ProtocolError
from wsframe.connection import ClientConnection, ServerConnection, State
from wsframe.errors import InvalidState
from wsframe.events import (
    Accepted,
    BinaryFragment,
    BinaryMessage,
    CloseReceived,
    Ping,
    Pong,
    Rejected,
    Request,
    TextFragment,
    TextMessage,
)

KEY = b"\x01\x02\x03\x04"


@pytest.fixture
def conn_codec(active_codec):
    """The codec of this run (the connection's)."""
    return active_codec


def handshake(
    server_options: Any = None, client_options: Any = None, uri: str = "ws://example.com/chat"
):
    client = ClientConnection(uri, **(client_options or {}))
    server = ServerConnection(**(server_options or {}))
    server.receive_data(client.data_to_send())
    [event] = server.events()
    assert isinstance(event, Request)
    server.accept()
    client.receive_data(server.data_to_send())
    [event] = client.events()
    assert isinstance(event, Accepted)
    assert client.state is State.OPEN and server.state is State.OPEN
    return client, server


def transfer(src, dst) -> list:
    dst.receive_data(src.data_to_send())
    return dst.events()


def frame(codec, opcode: int, payload: bytes = b"", *, fin=True, rsv1=False, masked=True) -> bytes:
    return codec.encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=KEY if masked else None)


def close_frame_code(data: bytes, codec) -> int:
    [close] = codec.FrameDecoder("client", max_frame_size=None).feed(data)
    assert close.opcode == 8
    return int.from_bytes(close.payload[:2], "big")


# ------------------------------------------------------------------- messages


def test_text_and_binary_both_ways() -> None:
    client, server = handshake()
    client.send_text("héllo")
    client.send_binary(b"\x00\xff")
    assert transfer(client, server) == [TextMessage("héllo"), BinaryMessage(b"\x00\xff")]
    server.send_text("ok")
    server.send_binary(bytearray(b"bin"))
    assert transfer(server, client) == [TextMessage("ok"), BinaryMessage(b"bin")]


def test_empty_messages() -> None:
    client, server = handshake()
    client.send_text("")
    client.send_binary(b"")
    assert transfer(client, server) == [TextMessage(""), BinaryMessage(b"")]


def test_fragmented_send_is_reassembled() -> None:
    client, server = handshake()
    client.send_text("Hel", fin=False)
    client.send_ping(b"in between")
    client.send_continuation("lo ", fin=False)
    client.send_continuation("wörld", fin=True)
    events = transfer(client, server)
    assert events == [Ping(b"in between"), TextMessage("Hello wörld")]


def test_fragments_delivered_one_by_one() -> None:
    client, server = handshake(server_options={"fragments": True})
    text = "€uro"  # "€" is 3 bytes: split it across frames
    encoded = text.encode()
    client.send_text(encoded[:1], fin=False)
    client.send_continuation(encoded[1:4], fin=False)
    client.send_continuation(encoded[4:], fin=True)
    client.send_binary(b"ab", fin=False)
    client.send_continuation(b"cd", fin=True)
    assert transfer(client, server) == [
        TextFragment("", False),
        TextFragment("€u", False),
        TextFragment("ro", True),
        BinaryFragment(b"ab", False),
        BinaryFragment(b"cd", True),
    ]


def test_one_byte_at_a_time(conn_codec) -> None:
    client, server = handshake()
    client.send_text("x" * 300)
    client.send_binary(b"y" * 70000)
    client.send_ping(b"p")
    data = client.data_to_send()
    events = []
    for i in range(len(data)):
        server.receive_data(data[i : i + 1])
        events += server.events()
    assert events == [TextMessage("x" * 300), BinaryMessage(b"y" * 70000), Ping(b"p")]


def test_sending_a_new_message_during_a_fragmented_one_is_refused() -> None:
    client, _ = handshake()
    client.send_binary(b"a", fin=False)
    with pytest.raises(InvalidState):
        client.send_text("b")
    with pytest.raises(InvalidState):
        handshake()[0].send_continuation(b"x", fin=True)


def test_client_frames_are_masked_and_server_frames_not(conn_codec) -> None:
    client, server = handshake()
    client.send_text("hi")
    server.send_text("hi")
    assert client.data_to_send()[1] & 0x80
    assert not server.data_to_send()[1] & 0x80


def test_masking_keys_differ() -> None:
    client, _ = handshake()
    for _ in range(5):
        client.send_binary(b"\x00" * 8)
    data = client.data_to_send()
    keys = {data[i * 14 + 2 : i * 14 + 6] for i in range(5)}
    assert len(keys) == 5


@pytest.mark.parametrize("opcode", [1, 2])
def test_continuation_over_the_limit_is_refused_from_its_header(conn_codec, opcode) -> None:
    """A continuation that would take the message past max_message_size fails
    with 1009 as soon as its header arrives, before its payload (so the
    payload is not buffered) and before its text is checked: the same close
    code whether the frame arrives whole or in pieces (found by
    fuzz/fuzz_state_machine.py: split reads of invalid text gave 1007)."""
    first = frame(conn_codec, opcode, b"abcdefgh", fin=False)  # 8 of 10 bytes
    cont = frame(conn_codec, 0, b"\xff" + b"x" * 7)  # 8 more, and not UTF-8
    header = len(cont) - 8
    for cut in range(len(cont) + 1):
        _, server = handshake(server_options={"max_message_size": 10, "compression": None})
        server.receive_data(first + cont[:cut])
        if cut < header:
            assert server.error is None
            server.receive_data(cont[cut:])
        assert isinstance(server.error, ProtocolError)
        assert server.error.close_code == 1009, (cut, server.error)
        assert close_frame_code(server.data_to_send(), conn_codec) == 1009
    # Exactly at the limit is fine, and invalid text is still found as it arrives.
    _, server = handshake(server_options={"max_message_size": 10, "compression": None})
    last = frame(conn_codec, 0, b"\xc3\xa9")
    server.receive_data(first + last[:-1])
    assert server.error is None
    server.receive_data(last[-1:])
    message = b"abcdefgh\xc3\xa9"
    expected = TextMessage(message.decode()) if opcode == 1 else BinaryMessage(message)
    assert server.events() == [expected]
    if opcode == 1:
        _, server = handshake(server_options={"max_message_size": 10, "compression": None})
        server.receive_data(first + frame(conn_codec, 0, b"\xff\xff")[:-1])
        assert server.error is not None and server.error.close_code == 1007


# --------------------------------------------------------------- ping / pong


def test_auto_pong() -> None:
    client, server = handshake()
    client.send_ping(b"abc")
    assert transfer(client, server) == [Ping(b"abc")]
    assert transfer(server, client) == [Pong(b"abc")]


def test_auto_pong_off() -> None:
    client, server = handshake(server_options={"auto_pong": False})
    client.send_ping(b"abc")
    assert transfer(client, server) == [Ping(b"abc")]
    assert server.data_to_send() == b""
    server.send_pong(b"manual")
    assert transfer(server, client) == [Pong(b"manual")]


def test_pings_are_answered_after_our_close_until_the_peers(conn_codec) -> None:
    """RFC 6455 §5.5.2: a ping gets a pong "unless it already received a Close
    frame": also while our own close frame waits for the peer's (found by
    fuzz/fuzz_state_machine.py; websockets answers them too)."""
    _, server = handshake()
    server.close(1001)
    assert server.state is State.CLOSING
    server.receive_data(frame(conn_codec, 9, b"still there?"))
    assert server.events() == [Ping(b"still there?")]
    close, pong = conn_codec.FrameDecoder("client").feed(server.data_to_send())
    assert (close.opcode, pong.opcode, pong.payload) == (8, 10, b"still there?")
    # Held pongs are released in the same state.
    server.hold_pongs = True
    server.receive_data(frame(conn_codec, 9, b"held"))
    assert server.data_to_send() == b""
    server.release_pong()
    [pong] = conn_codec.FrameDecoder("client").feed(server.data_to_send())
    assert (pong.opcode, pong.payload) == (10, b"held")
    # Once the peer's close frame arrived, or after a failure, no more pongs.
    server.receive_data(frame(conn_codec, 8, b"\x03\xe9") + frame(conn_codec, 9, b"late"))
    assert server.state is State.CLOSED and server.data_to_send() == b""
    _, server = handshake()
    server.close(1000)
    server.data_to_send()
    reserved_opcode = b"\x83\x80" + KEY
    server.receive_data(reserved_opcode + frame(conn_codec, 9, b"after failure"))
    assert server.error is not None and server.data_to_send() == b""


def test_ping_payload_limit() -> None:
    client, _ = handshake()
    with pytest.raises(ValueError):
        client.send_ping(b"x" * 126)


# -------------------------------------------------------------------- closing


def test_client_closes_first() -> None:
    client, server = handshake()
    client.close(1000, "bye")
    assert client.state is State.CLOSING
    assert transfer(client, server) == [CloseReceived(1000, "bye")]
    assert server.state is State.CLOSED and server.close_transport
    assert server.closed_by == "remote" and server.was_clean
    assert transfer(server, client) == [CloseReceived(1000, "")]
    assert client.state is State.CLOSED and client.closed_by == "local" and client.was_clean
    # The client waits for the server to close the TCP connection.
    assert not client.close_transport
    client.receive_eof()
    assert client.close_transport and client.close_code == 1000


def test_server_closes_first() -> None:
    client, server = handshake()
    server.close(4000, "app reason")
    assert transfer(server, client) == [CloseReceived(4000, "app reason")]
    assert client.state is State.CLOSED and client.closed_by == "remote"
    assert transfer(client, server) == [CloseReceived(4000, "")]
    assert server.state is State.CLOSED and server.close_transport and server.was_clean
    assert server.close_code == 4000 and client.close_reason == "app reason"


def test_simultaneous_close() -> None:
    client, server = handshake()
    client.close(1000)
    server.close(1001)
    to_server, to_client = client.data_to_send(), server.data_to_send()
    server.receive_data(to_server)
    client.receive_data(to_client)
    assert server.events() == [CloseReceived(1000, "")]
    assert client.events() == [CloseReceived(1001, "")]
    assert server.state is State.CLOSED and client.state is State.CLOSED
    assert server.data_to_send() == b"" and client.data_to_send() == b""
    assert server.was_clean and client.was_clean


def test_close_without_code() -> None:
    client, server = handshake()
    client.close(None)
    assert transfer(client, server) == [CloseReceived(None, "")]
    assert server.close_code == 1005
    assert transfer(server, client) == [CloseReceived(None, "")]


def test_no_data_after_close_sent() -> None:
    client, server = handshake()
    client.close()
    with pytest.raises(InvalidState):
        client.send_text("late")
    client.close()  # idempotent
    assert transfer(client, server) == [CloseReceived(1000, "")]


def test_data_after_peer_close_is_ignored(conn_codec) -> None:
    _, server = handshake()
    server.receive_data(frame(conn_codec, 8, b"\x03\xe8") + frame(conn_codec, 1, b"late"))
    assert server.events() == [CloseReceived(1000, "")]


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 4999])
def test_valid_close_codes(conn_codec, code: int) -> None:
    _, server = handshake()
    server.receive_data(frame(conn_codec, 8, code.to_bytes(2, "big") + b"r"))
    assert server.events() == [CloseReceived(code, "r")]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes(conn_codec, code: int) -> None:
    _, server = handshake()
    server.receive_data(frame(conn_codec, 8, code.to_bytes(2, "big")))
    assert server.events() == []
    assert close_frame_code(server.data_to_send(), conn_codec) == 1002
    assert isinstance(server.error, ProtocolError)
    with pytest.raises(ValueError):
        handshake()[0].close(code)


def test_close_payload_of_one_byte(conn_codec) -> None:
    _, server = handshake()
    server.receive_data(frame(conn_codec, 8, b"\x03"))
    assert close_frame_code(server.data_to_send(), conn_codec) == 1002


def test_close_reason_invalid_utf8(conn_codec) -> None:
    _, server = handshake()
    server.receive_data(frame(conn_codec, 8, b"\x03\xe8\xff"))
    assert close_frame_code(server.data_to_send(), conn_codec) == 1007


def test_close_reason_too_long() -> None:
    client, _ = handshake()
    with pytest.raises(ValueError):
        client.close(1000, "é" * 62)
    client.close(1000, "x" * 123)


def test_eof_without_close_is_abnormal() -> None:
    _, server = handshake()
    server.receive_eof()
    assert server.state is State.CLOSED and server.close_code == 1006
    assert not server.was_clean and server.close_transport


# ------------------------------------------------------------ failing (peer)


def failed(server, codec, data: bytes, code: int):
    server.receive_data(data)
    assert close_frame_code(server.data_to_send(), codec) == code
    assert server.state is State.CLOSING and server.close_transport
    assert server.error.close_code == code
    # Nothing more is processed.
    server.receive_data(frame(codec, 1, b"more"))
    assert server.data_to_send() == b""
    return server.events()


def test_unmasked_frame_from_client(conn_codec) -> None:
    _, server = handshake()
    assert failed(server, conn_codec, frame(conn_codec, 1, b"x", masked=False), 1002) == []


def test_frames_before_a_violation_are_delivered(conn_codec) -> None:
    _, server = handshake()
    data = frame(conn_codec, 1, b"first") + b"\x83\x80" + KEY
    assert failed(server, conn_codec, data, 1002) == [TextMessage("first")]


def test_invalid_utf8_single_frame(conn_codec) -> None:
    _, server = handshake()
    failed(server, conn_codec, frame(conn_codec, 1, b"\xff"), 1007)


def test_invalid_utf8_fails_at_the_first_bad_fragment(conn_codec) -> None:
    _, server = handshake()
    server.receive_data(frame(conn_codec, 1, b"ok", fin=False))
    assert server.state is State.OPEN
    # A surrogate start: invalid whatever follows, so fail now, before the end.
    failed(server, conn_codec, frame(conn_codec, 0, b"\xed\xa0", fin=False), 1007)


def test_utf8_split_across_fragments_is_fine(conn_codec) -> None:
    _, server = handshake()
    euro = "€".encode()
    server.receive_data(frame(conn_codec, 1, euro[:2], fin=False) + frame(conn_codec, 0, euro[2:]))
    assert server.events() == [TextMessage("€")]


def test_continuation_without_message(conn_codec) -> None:
    _, server = handshake()
    failed(server, conn_codec, frame(conn_codec, 0, b"x"), 1002)


def test_new_message_inside_fragmented_one(conn_codec) -> None:
    _, server = handshake()
    server.receive_data(frame(conn_codec, 2, b"a", fin=False))
    failed(server, conn_codec, frame(conn_codec, 2, b"b"), 1002)


def test_rsv1_without_deflate(conn_codec) -> None:
    _, server = handshake(server_options={"compression": None})
    failed(server, conn_codec, frame(conn_codec, 1, b"x", rsv1=True), 1002)


def test_message_too_big_single_frame(conn_codec) -> None:
    _, server = handshake(server_options={"max_message_size": 100})
    # Decided from the header alone.
    header = conn_codec.encode_frame(2, b"x" * 101, mask=KEY)[:8]
    failed(server, conn_codec, header, 1009)


def test_message_too_big_fragmented(conn_codec) -> None:
    _, server = handshake(server_options={"max_message_size": 100})
    server.receive_data(frame(conn_codec, 2, b"x" * 60, fin=False))
    failed(server, conn_codec, frame(conn_codec, 0, b"x" * 41), 1009)


def test_message_at_the_limit(conn_codec) -> None:
    _, server = handshake(server_options={"max_message_size": 100})
    data = frame(conn_codec, 2, b"x" * 60, fin=False) + frame(conn_codec, 0, b"x" * 40)
    server.receive_data(data)
    assert server.events() == [BinaryMessage(b"x" * 100)]


def test_client_fails_on_masked_frame_from_server(conn_codec) -> None:
    client, _ = handshake()
    client.receive_data(frame(conn_codec, 1, b"x", masked=True))
    data = client.data_to_send()
    [close] = conn_codec.FrameDecoder("server").feed(data)
    assert int.from_bytes(close.payload[:2], "big") == 1002
    assert client.close_transport


# ------------------------------------------------------- permessage-deflate


DEFLATE_VARIANTS = [
    {},
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True},
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 10},
    {"client_max_window_bits": 9},
    {
        "server_max_window_bits": 12,
        "client_max_window_bits": 11,
        "client_no_context_takeover": True,
    },
]


@pytest.mark.parametrize("options", DEFLATE_VARIANTS)
def test_deflate_round_trip(options) -> None:
    client, server = handshake(server_options={"deflate_options": options})
    assert client.deflate is not None and server.deflate is not None
    messages = ["hello " * 50, b"\x00" * 5000, "é" * 300, b"", "tiny"]
    for message in messages * 3:
        for a, b in ((client, server), (server, client)):
            if isinstance(message, str):
                a.send_text(message)
                expected = TextMessage(message)
            else:
                a.send_binary(message)
                expected = BinaryMessage(message)
            data = a.data_to_send()
            assert data[0] & 0x40  # RSV1
            b.receive_data(data)
            assert b.events() == [expected]


def test_deflate_fragmented_rsv1_on_first_frame_only(conn_codec) -> None:
    client, server = handshake()
    client.send_text("aaa" * 100, fin=False)
    client.send_continuation("bbb" * 100, fin=False)
    client.send_continuation("ccc", fin=True)
    data = client.data_to_send()
    frames = conn_codec.FrameDecoder("server", allow_rsv1=True).feed(data)
    assert [f.rsv1 for f in frames] == [True, False, False]
    server.receive_data(data)
    assert server.events() == [TextMessage("aaa" * 100 + "bbb" * 100 + "ccc")]


def test_deflate_declined_when_off() -> None:
    client, server = handshake(server_options={"compression": None})
    assert client.deflate is None and server.deflate is None
    client.send_text("x" * 100)
    assert not client.data_to_send()[0] & 0x40


def test_no_deflate_offer() -> None:
    client, server = handshake(client_options={"compression": None})
    assert "Sec-WebSocket-Extensions" not in client.request.headers
    assert server.deflate is None


def test_decompression_bomb_closes_with_1009(conn_codec) -> None:
    _, server = handshake(server_options={"max_message_size": 1 << 20})
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * (64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert bomb.endswith(b"\x00\x00\xff\xff") and len(bomb) < 100_000
    failed(server, conn_codec, frame(conn_codec, 2, bomb[:-4], rsv1=True), 1009)


def test_corrupt_deflate_data(conn_codec) -> None:
    _, server = handshake()
    failed(server, conn_codec, frame(conn_codec, 2, b"\xff\xff\xff\xff", rsv1=True), 1002)


# ------------------------------------------------------------------ handshake


def test_subprotocol_negotiation() -> None:
    client, server = handshake(
        server_options={"subprotocols": ["v2", "v1"]},
        client_options={"subprotocols": ["v1", "v2"]},
    )
    assert client.subprotocol == server.subprotocol == "v2"


def test_subprotocol_callback() -> None:
    client, _ = handshake(
        server_options={"select_subprotocol": lambda request, offered: offered[-1]},
        client_options={"subprotocols": ["a", "b"]},
    )
    assert client.subprotocol == "b"


def test_reject() -> None:
    client = ClientConnection("ws://example.com/")
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    [event] = server.events()
    assert event.request.path == "/"
    server.reject(403, "go away")
    assert server.state is State.CLOSED and server.close_transport
    client.receive_data(server.data_to_send())
    client.receive_eof()
    [event] = client.events()
    assert isinstance(event, Rejected) and event.error.status == 403
    assert client.state is State.CLOSED


def test_respond_to_plain_http() -> None:
    server = ServerConnection()
    server.receive_data(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    [event] = server.events()
    assert not event.request.is_websocket
    server.respond(200, b"<p>hi</p>", {"Content-Type": "text/html"})
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"<p>hi</p>")


def test_accept_of_invalid_request_answers_with_error() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.events()
    server.accept()
    [event] = server.events()
    assert isinstance(event, Rejected)
    assert server.data_to_send().startswith(b"HTTP/1.1 4")
    assert server.state is State.CLOSED


def test_bad_request_gets_400() -> None:
    server = ServerConnection()
    server.receive_data(b"NONSENSE\r\n\r\n")
    [event] = server.events()
    assert isinstance(event, Rejected) and event.error.status == 400
    assert server.data_to_send().startswith(b"HTTP/1.1 400 ")


def test_frames_sent_with_the_request_are_kept(conn_codec) -> None:
    client = ClientConnection("ws://example.com/", compression=None)
    request = client.data_to_send()
    server = ServerConnection()
    server.receive_data(request + frame(conn_codec, 1, b"eager"))
    server.events()
    server.accept()
    assert server.events() == [TextMessage("eager")]


def test_frames_sent_with_the_response_are_kept() -> None:
    client = ClientConnection("ws://example.com/")
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    server.events()
    server.accept()
    server.send_text("welcome")
    client.receive_data(server.data_to_send())
    events = client.events()
    assert isinstance(events[0], Accepted) and events[1:] == [TextMessage("welcome")]


def test_client_rejects_bad_accept_key() -> None:
    client = ClientConnection("ws://example.com/", compression=None)
    client.data_to_send()
    client.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
    )
    [event] = client.events()
    assert isinstance(event, Rejected) and isinstance(event.error, InvalidHandshake)
    assert event.error.status == 101 and client.state is State.CLOSED


def test_send_before_open_is_refused() -> None:
    client = ClientConnection("ws://example.com/")
    with pytest.raises(InvalidState):
        client.send_text("too early")
    with pytest.raises(InvalidState):
        client.close()


def test_eof_during_handshake() -> None:
    client = ClientConnection("ws://example.com/")
    client.receive_eof()
    [event] = client.events()
    assert isinstance(event, Rejected)


# ------------------------------------------------------------ random traffic


messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=3000)), min_size=1, max_size=8
)


@given(messages=messages, fragment=st.integers(1, 500), compression=st.booleans())
def test_random_messages_random_fragmentation(messages, fragment, compression) -> None:
    options = {"compression": "deflate" if compression else None}
    client, server = handshake(server_options=options, client_options=options)
    expected = []
    for message in messages:
        data = message.encode() if isinstance(message, str) else message
        pieces = [data[i : i + fragment] for i in range(0, len(data), fragment)] or [b""]
        send = client.send_text if isinstance(message, str) else client.send_binary
        send(pieces[0], fin=len(pieces) == 1)
        for index, piece in enumerate(pieces[1:], 2):
            client.send_continuation(piece, fin=index == len(pieces))
        is_text = isinstance(message, str)
        expected.append(TextMessage(message) if is_text else BinaryMessage(message))
    data = client.data_to_send()
    events = []
    cut = len(data) // 3
    for chunk in (data[:cut], data[cut:]):
        server.receive_data(chunk)
        events += server.events()
    assert events == expected


# ------------------------------------------- UTF-8 checked as a frame arrives


def test_invalid_utf8_fails_before_the_frame_is_complete(conn_codec) -> None:
    _, server = handshake(server_options={"compression": None})
    data = frame(conn_codec, 1, b"ok" * 20 + b"\xff" + b"x" * 200)
    server.receive_data(data[:60])  # the bad byte is in, the frame is not
    assert close_frame_code(server.data_to_send(), conn_codec) == 1007
    assert server.state is State.CLOSING


def test_invalid_utf8_in_an_arriving_continuation_fails_early(conn_codec) -> None:
    _, server = handshake(server_options={"compression": None})
    server.receive_data(frame(conn_codec, 1, b"abc", fin=False))
    data = frame(conn_codec, 0, b"d\xed\xa0" + b"y" * 300)  # a surrogate
    server.receive_data(data[:12])
    assert close_frame_code(server.data_to_send(), conn_codec) == 1007


@pytest.mark.parametrize("cut", [1, 7, 50, 299])
def test_text_checked_as_it_arrives_is_delivered_whole(conn_codec, cut: int) -> None:
    _, server = handshake(server_options={"compression": None})
    text = "é€😀" * 60
    data = frame(conn_codec, 1, text.encode())
    events = []
    for start in range(0, len(data), cut):
        server.receive_data(data[start : start + cut])
        events += server.events()
    assert events == [TextMessage(text)]
    # and a following message on the same connection is unaffected
    server.receive_data(frame(conn_codec, 1, b"next"))
    assert server.events() == [TextMessage("next")]


def test_data_before_the_answer_is_bounded(conn_codec) -> None:
    client = ClientConnection("ws://example.com/", compression=None)
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    [event] = server.events()
    assert isinstance(event, Request)  # the application has not answered yet
    server.receive_data(frame(conn_codec, 2, b"x" * 60_000))
    assert server.state is State.CONNECTING
    server.receive_data(frame(conn_codec, 2, b"y" * 10_000))  # past 64 KiB
    [event] = server.events()
    assert isinstance(event, Rejected) and event.error.status == 400
    assert server.state is State.CLOSED and server.close_transport


@pytest.mark.parametrize("second", [1, 2])
def test_new_message_inside_a_fragmented_one_in_the_same_read(conn_codec, second: int) -> None:
    """The fast path (on_message) sees the message begun by a frame of the same read."""
    _, server = handshake()
    delivered: list[Any] = []
    server.on_message = delivered.append
    server.receive_data(frame(conn_codec, 1, b"a", fin=False) + frame(conn_codec, second, b"b"))
    assert delivered == []
    assert server.error is not None and server.close_sent is not None
    assert server.close_sent[0] == 1002


def test_whole_messages_between_fragments_in_one_read_are_delivered_in_order(conn_codec) -> None:
    _, server = handshake()
    delivered: list[Any] = []
    server.on_message = delivered.append
    server.receive_data(
        frame(conn_codec, 2, b"one")
        + frame(conn_codec, 1, b"tw", fin=False)
        + frame(conn_codec, 9, b"ping")
        + frame(conn_codec, 0, b"o")
        + frame(conn_codec, 1, b"three")
    )
    events = server.events()
    # A ping event waits to be read: what follows it stays an event, in order.
    assert delivered == [b"one"]
    assert events == [Ping(b"ping"), TextMessage("two"), TextMessage("three")]


def test_pongs_are_held_while_the_peer_does_not_read(conn_codec) -> None:
    """hold_pongs keeps only the latest ping's pong (RFC 6455 §5.5.3), bounded."""
    client, server = handshake(server_options={"max_ping_rate": None})
    server.hold_pongs = True
    for index in range(1000):
        client.send_ping(b"%d" % index)
    server.receive_data(client.data_to_send())
    assert len(server.events()) == 1000  # every ping is reported
    assert server.data_to_send() == b""  # no pong queued while held
    server.release_pong()
    server.hold_pongs = False
    client.receive_data(server.data_to_send())
    assert client.events() == [Pong(b"999")]  # one pong, for the latest ping
    server.release_pong()
    assert server.data_to_send() == b""  # released once
    client.send_ping(b"again")
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    assert Pong(b"again") in client.events()
