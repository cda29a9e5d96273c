"""Interoperability of the sans-I/O connection with two other sans-I/O stacks.

wsframe's :class:`~wsframe.connection.ServerConnection` and
:class:`~wsframe.connection.ClientConnection` talk, in memory, to the
protocols of websockets (``websockets.client.ClientProtocol``,
``websockets.server.ServerProtocol``) and wsproto (``wsproto.WSConnection``),
in both directions: their client against our server, our client against
their server. Every test runs with both codecs: the ``conn_codec`` fixture
points the connection module at ``wsframe._codec_c`` or ``wsframe._codec_py``.

The other libraries differ from ours in what they leave to the application,
and the adapters below play that application's part, no more:

* websockets' protocols report *frames* (decompressed, not reassembled) and
  answer pings and close frames by themselves; the adapter reassembles
  messages. ``data_to_send()`` returns a list whose empty item means "half-close
  the TCP connection" (``SEND_EOF``).
* wsproto reports message pieces (``message_finished``) and leaves answering
  pings and close frames to the application (``event.response()``); the
  adapter does that as soon as it reads the event, as an application would.
  It has no notion of the TCP connection and no message-size limit.
"""

from __future__ import annotations

import codecs
import random
from typing import Any, NamedTuple, Optional, Union

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from wsframe.connection import ClientConnection, ServerConnection, State
from wsframe.events import (
    Accepted,
    BinaryFragment,
    BinaryMessage,
    CloseReceived,
    Ping,
    Pong,
    Request,
    TextFragment,
    TextMessage,
)

pytest.importorskip("websockets", minversion="13.0")
pytest.importorskip("wsproto", minversion="1.2")

import wsproto
import wsproto.events as wp_events
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate as WsPerMessageDeflate,
)
from websockets.frames import Close, Opcode
from websockets.protocol import Side
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto.connection import ConnectionState as WpState
from wsproto.extensions import PerMessageDeflate as WpPerMessageDeflate
from wsproto.frame_protocol import CloseReason

URI = "ws://example.com/chat"
#: The message-size limit set explicitly on every side that has one (ours:
#: 1 MiB by default; websockets: 1 MiB by default; wsproto: none).
LIMIT = 4 << 20
#: Enough for "large" messages: over 1 MiB, past both defaults.
BIG = (1 << 20) + 4093

PEERS = ["websockets-client", "websockets-server", "wsproto-client", "wsproto-server"]
WEBSOCKETS_PEERS = ["websockets-client", "websockets-server"]

Normalized = tuple  # ("text", str) | ("binary", bytes) | ("ping", bytes) | ...


@pytest.fixture
def conn_codec(active_codec):
    """The codec of this run (the connection's)."""
    return active_codec


# ------------------------------------------------------------------ the wire


class WireFrame(NamedTuple):
    fin: bool
    rsv1: bool
    opcode: int
    masked: bool
    length: int


def wire_frames(data: bytes) -> list[WireFrame]:
    """Split a byte stream into frame headers; written here, independent of wsframe."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        masked = bool(b1 & 0x80)
        pos += 4 if masked else 0
        frames.append(WireFrame(bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, masked, length))
        pos += length
    assert pos == len(data), "the stream ends inside a frame"
    return frames


def data_frames(data: bytes) -> list[WireFrame]:
    return [frame for frame in wire_frames(data) if frame.opcode < 8]


# ---------------------------------------------------------------- endpoints


class Ours:
    """A wsframe connection, with the same small interface as the adapters."""

    library = "wsframe"

    def __init__(self, conn: Union[ClientConnection, ServerConnection]) -> None:
        self.conn = conn
        self.role = "server" if conn.is_server else "client"

    def feed(self, data: bytes) -> None:
        self.conn.receive_data(data)

    def feed_eof(self) -> None:
        self.conn.receive_eof()

    def flush(self) -> bytes:
        return self.conn.data_to_send()

    def take(self) -> list[Normalized]:
        out: list[Normalized] = []
        for event in self.conn.events():
            if isinstance(event, TextMessage):
                out.append(("text", event.data))
            elif isinstance(event, BinaryMessage):
                out.append(("binary", bytes(event.data)))
            elif isinstance(event, TextFragment):
                out.append(("text-fragment", event.data, event.final))
            elif isinstance(event, BinaryFragment):
                out.append(("binary-fragment", bytes(event.data), event.final))
            elif isinstance(event, Ping):
                out.append(("ping", bytes(event.payload)))
            elif isinstance(event, Pong):
                out.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseReceived):
                out.append(("close", 1005 if event.code is None else event.code, event.reason))
            else:  # pragma: no cover - the handshake is over
                raise AssertionError(f"unexpected event {event!r}")
        return out

    def send_text(self, data: Union[str, bytes], fin: bool = True) -> None:
        self.conn.send_text(data, fin)

    def send_binary(self, data: bytes, fin: bool = True) -> None:
        self.conn.send_binary(data, fin)

    def send_continuation(self, data: Union[str, bytes], fin: bool) -> None:
        self.conn.send_continuation(data, fin)

    def send_ping(self, payload: bytes) -> None:
        self.conn.send_ping(payload)

    def close(self, code: Optional[int], reason: str = "") -> None:
        self.conn.close(code, reason)

    def deflate_view(self) -> Optional[dict[str, Any]]:
        engine = self.conn.deflate
        if engine is None:
            return None
        local = (engine.local_no_context_takeover, engine.local_max_window_bits)
        remote = (engine.remote_no_context_takeover, engine.remote_max_window_bits)
        server, client = (local, remote) if self.role == "server" else (remote, local)
        return view(server[0], client[0], server[1], client[1])


def view(snct: bool, cnct: bool, smwb: int, cmwb: int) -> dict[str, Any]:
    """What one side believes was agreed, window sizes made explicit."""
    return {
        "server_no_context_takeover": snct,
        "client_no_context_takeover": cnct,
        "server_max_window_bits": smwb,
        "client_max_window_bits": cmwb,
    }


class Reassembler:
    """Collects the pieces of one message at a time."""

    def __init__(self) -> None:
        self.kind: Optional[str] = None
        self.parts: list[Any] = []

    def add(self, kind: Optional[str], data: Any, fin: bool) -> Optional[Normalized]:
        if kind is not None:
            assert self.kind is None, "a new message started inside a fragmented one"
            self.kind = kind
        else:
            assert self.kind is not None, "a continuation without a message"
        self.parts.append(data)
        if not fin:
            return None
        if self.kind == "text":
            if self.parts and isinstance(self.parts[0], str):
                message: Any = "".join(self.parts)
            else:
                message = b"".join(self.parts).decode()  # strict: invalid UTF-8 fails
        else:
            message = b"".join(bytes(part) for part in self.parts)
        result = (self.kind, message)
        self.kind, self.parts = None, []
        return result


class Websockets:
    """A websockets ``ClientProtocol`` or ``ServerProtocol``."""

    library = "websockets"

    def __init__(self, proto: Union[ClientProtocol, ServerProtocol]) -> None:
        self.proto = proto
        self.role = "client" if proto.side is Side.CLIENT else "server"
        #: Whether it asked for the TCP connection to be half-closed (SEND_EOF).
        self.eof_sent = False
        #: The handshake request (server) or response (client), once received.
        self.handshake: Any = None
        self._message = Reassembler()

    def feed(self, data: bytes) -> None:
        self.proto.receive_data(data)

    def feed_eof(self) -> None:
        self.proto.receive_eof()

    def flush(self) -> bytes:
        out = []
        for chunk in self.proto.data_to_send():
            if chunk == b"":
                self.eof_sent = True
            else:
                assert not self.eof_sent, "data after the end of the stream"
                out.append(chunk)
        return b"".join(out)

    def take(self) -> list[Normalized]:
        out: list[Normalized] = []
        for event in self.proto.events_received():
            opcode = getattr(event, "opcode", None)
            if opcode is None:  # the handshake Request or Response
                self.handshake = event
            elif opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                kind = "text" if opcode is Opcode.TEXT else "binary"
                message = self._message.add(kind, event.data, event.fin)
                if message is not None:
                    out.append(message)
            elif opcode is Opcode.CONT:
                message = self._message.add(None, event.data, event.fin)
                if message is not None:
                    out.append(message)
            elif opcode is Opcode.PING:
                out.append(("ping", bytes(event.data)))
            elif opcode is Opcode.PONG:
                out.append(("pong", bytes(event.data)))
            else:
                close = Close.parse(event.data)
                out.append(("close", int(close.code), close.reason))
        return out

    def send_text(self, data: Union[str, bytes], fin: bool = True) -> None:
        self.proto.send_text(data.encode() if isinstance(data, str) else data, fin)

    def send_binary(self, data: bytes, fin: bool = True) -> None:
        self.proto.send_binary(data, fin)

    def send_continuation(self, data: Union[str, bytes], fin: bool) -> None:
        self.proto.send_continuation(data.encode() if isinstance(data, str) else data, fin)

    def send_ping(self, payload: bytes) -> None:
        self.proto.send_ping(payload)

    def close(self, code: Optional[int], reason: str = "") -> None:
        self.proto.send_close(code, reason)

    def deflate_view(self) -> Optional[dict[str, Any]]:
        found = [ext for ext in self.proto.extensions if isinstance(ext, WsPerMessageDeflate)]
        if not found:
            return None
        [ext] = found
        local = (ext.local_no_context_takeover, ext.local_max_window_bits)
        remote = (ext.remote_no_context_takeover, ext.remote_max_window_bits)
        server, client = (local, remote) if self.role == "server" else (remote, local)
        return view(server[0], client[0], server[1], client[1])


class Wsproto:
    """A ``wsproto.WSConnection``; answers pings and close frames on reading them."""

    library = "wsproto"

    def __init__(self, ws: wsproto.WSConnection, role: str) -> None:
        self.ws = ws
        self.role = role
        self.out = bytearray()
        #: wsproto leaves the TCP connection to the application entirely.
        self.eof_sent = False
        #: The handshake Request (server) or AcceptConnection (client).
        self.handshake: Any = None
        #: The permessage-deflate extension object, if negotiated.
        self.extension: Optional[WpPerMessageDeflate] = None
        self._message = Reassembler()
        self._tx_kind: Optional[str] = None
        self._tx_decoder: Any = None

    def feed(self, data: bytes) -> None:
        self.ws.receive_data(data)

    def feed_eof(self) -> None:
        self.ws.receive_data(None)

    def flush(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data

    def take(self) -> list[Normalized]:
        out: list[Normalized] = []
        for event in self.ws.events():
            if isinstance(event, (wp_events.Request, wp_events.AcceptConnection)):
                self.handshake = event
                if isinstance(event, wp_events.AcceptConnection):
                    for ext in event.extensions:
                        if isinstance(ext, WpPerMessageDeflate):
                            self.extension = ext
            elif isinstance(event, (wp_events.TextMessage, wp_events.BytesMessage)):
                kind = "text" if isinstance(event, wp_events.TextMessage) else "binary"
                first = self._message.kind is None
                message = self._message.add(
                    kind if first else None, event.data, event.message_finished
                )
                if message is not None:
                    out.append(message)
            elif isinstance(event, wp_events.Ping):
                out.append(("ping", bytes(event.payload)))
                self.out += self.ws.send(event.response())  # the application answers
            elif isinstance(event, wp_events.Pong):
                out.append(("pong", bytes(event.payload)))
            elif isinstance(event, wp_events.CloseConnection):
                out.append(("close", int(event.code), event.reason or ""))
                if self.ws.state is WpState.REMOTE_CLOSING:
                    self.out += self.ws.send(event.response())  # the application answers
            else:  # pragma: no cover
                raise AssertionError(f"unexpected wsproto event {event!r}")
        return out

    def _send(self, kind: str, data: Any, fin: bool) -> None:
        if kind == "text":
            if isinstance(data, (bytes, bytearray)):
                # wsproto takes a text fragment as str: a character split
                # across our pieces moves whole to the next fragment.
                data = self._tx_decoder.decode(data, fin)
            self.out += self.ws.send(wp_events.TextMessage(data=data, message_finished=fin))
        else:
            self.out += self.ws.send(wp_events.BytesMessage(data=data, message_finished=fin))
        self._tx_kind = None if fin else kind

    def send_text(self, data: Union[str, bytes], fin: bool = True) -> None:
        self._tx_decoder = codecs.getincrementaldecoder("utf-8")()
        self._send("text", data, fin)

    def send_binary(self, data: bytes, fin: bool = True) -> None:
        self._send("binary", data, fin)

    def send_continuation(self, data: Union[str, bytes], fin: bool) -> None:
        assert self._tx_kind is not None
        self._send(self._tx_kind, data, fin)

    def send_ping(self, payload: bytes) -> None:
        self.out += self.ws.send(wp_events.Ping(payload=payload))

    def close(self, code: Optional[int], reason: str = "") -> None:
        # wsproto sends a close frame without a code for CloseReason.NO_STATUS_RCVD
        # (the enum member, not the int 1005, which it would turn into 1000).
        wire_code = CloseReason.NO_STATUS_RCVD if code is None else code
        self.out += self.ws.send(wp_events.CloseConnection(code=wire_code, reason=reason))

    def deflate_view(self) -> Optional[dict[str, Any]]:
        ext = self.extension
        if ext is None or not ext.enabled():
            return None
        return view(
            ext.server_no_context_takeover,
            ext.client_no_context_takeover,
            ext.server_max_window_bits,
            ext.client_max_window_bits,
        )


Peer = Union[Websockets, Wsproto]


class Link:
    """Our connection and theirs, joined by an in-memory "TCP connection"."""

    def __init__(self, ours: Ours, theirs: Peer, request: bytes, response: bytes) -> None:
        self.ours = ours
        self.theirs = theirs
        #: The opening handshake's request and response heads, as sent.
        self.request = request
        self.response = response
        #: Every byte each side sent once the handshake was over.
        self.from_ours = bytearray()
        self.from_theirs = bytearray()

    @property
    def conn(self) -> Union[ClientConnection, ServerConnection]:
        return self.ours.conn

    def pump(self, chunk: Optional[int] = None) -> tuple[list[Normalized], list[Normalized]]:
        """Move bytes both ways until neither side has more to send.

        Returns the events read by ours and by theirs. With ``chunk``, bytes
        are delivered ``chunk`` at a time.
        """
        at_ours: list[Normalized] = []
        at_theirs: list[Normalized] = []
        for _ in range(1000):
            moved = False
            data = self.ours.flush()
            if data:
                self.from_ours += data
                deliver(self.theirs, data, chunk)
                moved = True
            at_theirs += self.theirs.take()
            data = self.theirs.flush()
            if data:
                self.from_theirs += data
                deliver(self.ours, data, chunk)
                moved = True
            at_ours += self.ours.take()
            if not moved:
                return at_ours, at_theirs
        raise AssertionError("the two sides never stopped talking")  # pragma: no cover


def deliver(endpoint: Any, data: bytes, chunk: Optional[int]) -> None:
    step = chunk or len(data)
    for i in range(0, len(data), step):
        endpoint.feed(data[i : i + step])


def wsproto_deflate(options: dict[str, Any]) -> WpPerMessageDeflate:
    """wsproto's extension object for our option names (the same names).

    wsproto cannot offer a bare ``client_max_window_bits``: it always offers
    ``client_max_window_bits=15; server_max_window_bits=15`` unless told a size.
    """
    options = dict(options)
    if options.get("client_max_window_bits") is True:
        del options["client_max_window_bits"]
    return WpPerMessageDeflate(**options)


def open_link(
    peer: str,
    *,
    compression: Union[bool, str] = True,
    client_deflate: Optional[dict[str, Any]] = None,
    server_deflate: Optional[dict[str, Any]] = None,
    offered: Optional[list[str]] = None,
    supported: Optional[list[str]] = None,
    fragments: bool = False,
) -> Link:
    """Run the opening handshake between ours and ``peer`` ("library-role").

    ``compression``: True (the client offers permessage-deflate and the
    server accepts it), False, "client-only" (offered, the server has it
    off) or "server-only" (not offered). ``client_deflate`` are the
    permessage-deflate parameters the client offers, ``server_deflate`` the
    server's preferences, with the same names on every
    side (ours: ``deflate_options``; websockets: its factories' arguments;
    wsproto: its ``PerMessageDeflate`` arguments). ``offered`` are the client's
    subprotocols, ``supported`` the server's.
    """
    library, role = peer.split("-")
    client_deflate = client_deflate or {}
    server_deflate = server_deflate or {}
    offer = compression in (True, "client-only")
    accept = compression in (True, "server-only")
    theirs: Peer
    if role == "client":
        conn = ServerConnection(
            subprotocols=supported,
            compression="deflate" if accept else None,
            deflate_options=server_deflate,
            max_message_size=LIMIT,
            fragments=fragments,
        )
        if library == "websockets":
            proto = ClientProtocol(
                parse_uri(URI),
                extensions=[ClientPerMessageDeflateFactory(**client_deflate)] if offer else None,
                subprotocols=offered,
                max_size=LIMIT,
            )
            proto.send_request(proto.connect())
            theirs = Websockets(proto)
        else:
            ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
            theirs = Wsproto(ws, "client")
            request = wp_events.Request(
                host="example.com",
                target="/chat",
                extensions=[wsproto_deflate(client_deflate)] if offer else [],
                subprotocols=offered or [],
            )
            theirs.out += ws.send(request)
        request_bytes = theirs.flush()
        conn.receive_data(request_bytes)
        [event] = conn.events()
        assert isinstance(event, Request)
        conn.accept()
        response_bytes = conn.data_to_send()
        theirs.feed(response_bytes)
        assert theirs.take() == []
        assert theirs.handshake is not None
        if library == "websockets":
            assert theirs.proto.handshake_exc is None
            assert theirs.proto.state is WsState.OPEN
        else:
            assert isinstance(theirs.handshake, wp_events.AcceptConnection)
            assert theirs.ws.state is WpState.OPEN
    else:
        conn = ClientConnection(
            URI,
            subprotocols=offered,
            compression="deflate" if offer else None,
            deflate_options=client_deflate,
            max_message_size=LIMIT,
            fragments=fragments,
        )
        if library == "websockets":
            proto = ServerProtocol(
                extensions=[ServerPerMessageDeflateFactory(**server_deflate)] if accept else None,
                subprotocols=supported,
                max_size=LIMIT,
            )
            theirs = Websockets(proto)
            request_bytes = conn.data_to_send()
            theirs.feed(request_bytes)
            assert theirs.take() == []
            response = proto.accept(theirs.handshake)
            assert response.status_code == 101, response.body
            proto.send_response(response)
        else:
            ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
            theirs = Wsproto(ws, "server")
            request_bytes = conn.data_to_send()
            theirs.feed(request_bytes)
            assert theirs.take() == []
            request = theirs.handshake
            assert isinstance(request, wp_events.Request)
            # wsproto leaves choosing the subprotocol to the application: ours
            # picks the first of the server's, in its order, that was offered.
            chosen = next((p for p in supported or [] if p in request.subprotocols), None)
            extensions = []
            if accept:
                theirs.extension = wsproto_deflate(server_deflate)
                extensions.append(theirs.extension)
            theirs.out += ws.send(
                wp_events.AcceptConnection(subprotocol=chosen, extensions=extensions)
            )
        response_bytes = theirs.flush()
        conn.receive_data(response_bytes)
        [event] = conn.events()
        assert isinstance(event, Accepted), event
    assert conn.state is State.OPEN
    return Link(Ours(conn), theirs, request_bytes, response_bytes)


def header_values(head: bytes, name: str) -> list[str]:
    """The values of the header ``name`` in a raw HTTP head (comma lists split)."""
    values = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        field, _, value = line.partition(":")
        if field.strip().lower() == name.lower():
            values += [item.strip() for item in value.split(",") if item.strip()]
    return values


def send_message(endpoint: Any, kind: str, pieces: list[bytes]) -> None:
    """Send one message as ``len(pieces)`` frames (text pieces: UTF-8 bytes)."""
    first = endpoint.send_text if kind == "text" else endpoint.send_binary
    first(pieces[0], fin=len(pieces) == 1)
    for index, piece in enumerate(pieces[1:], 2):
        endpoint.send_continuation(piece, fin=index == len(pieces))


def encoded(kind: str, message: Union[str, bytes]) -> bytes:
    return message.encode() if isinstance(message, str) else message


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def big_text() -> str:
    unit = "wsframe ünïcødé € 日本語 🎉 "
    text = unit * (BIG // len(unit.encode()) + 1)
    assert len(text.encode()) >= BIG
    return text


def big_binary() -> bytes:
    return random.Random(6455).randbytes(BIG)


def check_masking(link: Link) -> None:
    """Client frames are masked and server frames are not (RFC 6455 §5.1)."""
    ours_masked = link.ours.role == "client"
    assert all(frame.masked is ours_masked for frame in wire_frames(bytes(link.from_ours)))
    assert all(frame.masked is not ours_masked for frame in wire_frames(bytes(link.from_theirs)))


# ---------------------------------------------------------------- messages

MESSAGES = [
    ("text", "hello"),
    ("text", "héllo wörld — ¿qué tal? 日本語 🎉"),
    ("text", ""),
    ("binary", b""),
    ("binary", bytes(range(256))),
    ("text", "x" * 126),  # 16-bit length
    ("binary", b"\x00\xff" * 40000),  # 64-bit length
]


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("peer", PEERS)
def test_messages_both_ways(peer: str, compression: bool) -> None:
    link = open_link(peer, compression=compression)
    for kind, message in MESSAGES:
        (link.ours.send_text if kind == "text" else link.ours.send_binary)(message)
        (link.theirs.send_text if kind == "text" else link.theirs.send_binary)(message)
    at_ours, at_theirs = link.pump()
    assert at_ours == MESSAGES
    assert at_theirs == MESSAGES
    check_masking(link)
    assert (link.ours.deflate_view() is not None) is compression
    assert (link.theirs.deflate_view() is not None) is compression
    for data in (link.from_ours, link.from_theirs):
        assert [frame.rsv1 for frame in data_frames(bytes(data))] == [compression] * len(MESSAGES)


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("peer", PEERS)
def test_large_messages_both_ways(peer: str, compression: bool) -> None:
    link = open_link(peer, compression=compression)
    large = [("text", big_text()), ("binary", big_binary())]
    for kind, message in large:
        (link.ours.send_text if kind == "text" else link.ours.send_binary)(message)
        (link.theirs.send_text if kind == "text" else link.theirs.send_binary)(message)
    at_ours, at_theirs = link.pump(chunk=65536)
    assert at_ours == large  # compared in full, not just by length
    assert at_theirs == large


def test_default_limits_refuse_what_the_explicit_ones_allow(conn_codec) -> None:
    """The explicit LIMIT matters: at the defaults (1 MiB) a BIG message is refused."""
    for server_options in ({}, {"max_message_size": LIMIT}):
        proto = ClientProtocol(parse_uri(URI))  # max_size: 1 MiB
        proto.send_request(proto.connect())
        conn = ServerConnection(compression=None, **server_options)
        conn.receive_data(b"".join(proto.data_to_send()))
        conn.events()
        conn.accept()
        proto.receive_data(conn.data_to_send())
        assert [event.status_code for event in proto.events_received()] == [101]
        proto.send_binary(b"\x00" * BIG)
        conn.receive_data(b"".join(proto.data_to_send()))
        if server_options:
            assert conn.events() == [BinaryMessage(b"\x00" * BIG)]
        else:
            assert conn.events() == []
            assert conn.error is not None and conn.error.close_code == 1009
            proto.receive_data(conn.data_to_send())
            [close] = proto.events_received()
            assert Close.parse(close.data).code == 1009


# --------------------------------------------------------------- fragments

FRAGMENTED = [
    # "€" (3 bytes) and "🎉" (4 bytes) are split across fragments where the
    # sender can (wsproto moves a split character whole to the next one).
    ("text", [b"Hel", "lo w€".encode()[:-1], "€".encode()[-1:] + "örld 🎉".encode()[:-2],
              "🎉".encode()[-2:]]),
    ("binary", [b"\x00\x01", b"", b"\x02" * 300, b"\x03" * 70000]),
    ("text", [b"", b"", b""]),
]  # fmt: skip


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("peer", PEERS)
def test_fragmented_messages_both_ways(peer: str, compression: bool) -> None:
    link = open_link(peer, compression=compression)
    expected = []
    for kind, pieces in FRAGMENTED:
        data = b"".join(pieces)
        expected.append((kind, data.decode() if kind == "text" else data))
    for sender in (link.ours, link.theirs):
        # A ping between the fragments of a message (RFC 6455 §5.4), except
        # to wsproto in a compressed message: see test_ping_inside_a_compressed_
        # fragmented_message.
        interleave = not (compression and sender is link.ours and peer.startswith("wsproto"))
        if not interleave:
            sender.send_ping(b"between fragments")
        for index, (kind, pieces) in enumerate(FRAGMENTED):
            first = sender.send_text if kind == "text" else sender.send_binary
            first(pieces[0], fin=False)
            if index == 0 and interleave:
                sender.send_ping(b"between fragments")
            for position, piece in enumerate(pieces[1:], 2):
                sender.send_continuation(piece, fin=position == len(pieces))
    at_ours, at_theirs = link.pump()
    expected_at_each = [("ping", b"between fragments"), *expected, ("pong", b"between fragments")]
    assert sorted_pong_last(at_ours) == expected_at_each
    assert sorted_pong_last(at_theirs) == expected_at_each
    # Each side really sent fragment by fragment, RSV1 on first frames only.
    sizes = [len(pieces) for _, pieces in FRAGMENTED]
    starts = {sum(sizes[:i]) for i in range(len(sizes))}
    for data in (link.from_ours, link.from_theirs):
        frames = data_frames(bytes(data))
        assert len(frames) == sum(sizes)
        for index, frame in enumerate(frames):
            assert (frame.opcode != 0) is (index in starts)
            assert frame.rsv1 is (compression and index in starts)  # RFC 7692 §6.1
            assert frame.fin is (index + 1 in starts or index == len(frames) - 1)


def sorted_pong_last(events: list[Normalized]) -> list[Normalized]:
    """The pong answering our ping arrives whenever the peer answered it."""
    return [e for e in events if e[0] != "pong"] + [e for e in events if e[0] == "pong"]


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("peer", PEERS)
def test_our_fragments_mode_receives_their_fragments(peer: str, compression: bool) -> None:
    link = open_link(peer, compression=compression, fragments=True)
    for kind, pieces in FRAGMENTED:
        send_message(link.theirs, kind, pieces)
    at_ours, _ = link.pump()
    frames = data_frames(bytes(link.from_theirs))
    assert len(at_ours) == len(frames)
    position = 0
    for kind, pieces in FRAGMENTED:
        received = at_ours[position : position + len(pieces)]
        position += len(pieces)
        assert [event[0] for event in received] == [f"{kind}-fragment"] * len(pieces)
        assert [event[2] for event in received] == [False] * (len(pieces) - 1) + [True]
        data = b"".join(pieces)
        if kind == "text":
            assert "".join(event[1] for event in received) == data.decode()
        elif compression:
            # Inflated bytes need not follow the compressed frames' boundaries
            # (wsproto, for one, does not flush the deflate stream per frame).
            assert b"".join(event[1] for event in received) == data
        else:
            assert [event[1] for event in received] == pieces


WSPROTO_VERSION = tuple(int(part) for part in wsproto.__version__.split(".")[:3] if part.isdigit())
WSPROTO_PING_BUG = pytest.mark.xfail(
    WSPROTO_VERSION <= (1, 3, 2),
    strict=True,
    raises=AssertionError,
    reason=(
        "wsproto <= 1.3.2 bug: a control frame between the frames of a compressed "
        "fragmented message makes PerMessageDeflate.frame_inbound_complete() forget that "
        "the message is compressed, so the continuation frames' deflate data is delivered "
        "as is. RFC 6455 §5.4 allows control frames in the middle of a fragmented message "
        "and RFC 7692 §6.1 makes RSV1 of the first frame cover the whole message."
    ),
)


@pytest.mark.parametrize(
    "peer",
    [
        pytest.param(peer, marks=WSPROTO_PING_BUG if peer.startswith("wsproto") else ())
        for peer in PEERS
    ],
)
def test_ping_inside_a_compressed_fragmented_message(peer: str) -> None:
    # Their fragmented message with a ping inside: we inflate it whole.
    link = open_link(peer)
    link.theirs.send_binary(b"abc", fin=False)
    link.theirs.send_ping(b"p")
    link.theirs.send_continuation(b"def", fin=True)
    at_ours, at_theirs = link.pump()
    assert at_ours == [("ping", b"p"), ("binary", b"abcdef")]
    assert at_theirs == [("pong", b"p")]
    # Ours, the same way: websockets inflates it whole, wsproto (the bug)
    # hands over the deflate data of "def" (b"JIM\x03\x00") instead.
    link.ours.send_binary(b"abc", fin=False)
    link.ours.send_ping(b"p")
    link.ours.send_continuation(b"def", fin=True)
    at_ours, at_theirs = link.pump()
    assert at_ours == [("pong", b"p")]
    assert at_theirs == [("ping", b"p"), ("binary", b"abcdef")]


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("peer", ["websockets-server", "wsproto-server"])
def test_frames_right_behind_the_101(peer: str, compression: bool) -> None:
    """A server may send frames at once: they arrive in the same read as its 101."""
    conn = ClientConnection(URI, compression="deflate" if compression else None)
    if peer == "websockets-server":
        proto = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory()] if compression else None
        )
        proto.receive_data(conn.data_to_send())
        [request] = proto.events_received()
        proto.send_response(proto.accept(request))
        proto.send_text("früh".encode())
        proto.send_ping(b"early")
        data = b"".join(proto.data_to_send())
    else:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        ws.receive_data(conn.data_to_send())
        [request] = ws.events()
        extensions = [WpPerMessageDeflate()] if compression else []
        data = ws.send(wp_events.AcceptConnection(extensions=extensions))
        data += ws.send(wp_events.TextMessage(data="früh"))
        data += ws.send(wp_events.Ping(payload=b"early"))
    conn.receive_data(data)
    events = conn.events()
    assert isinstance(events[0], Accepted)
    assert (events[0].extensions is not None) is compression
    assert events[1:] == [TextMessage("früh"), Ping(b"early")]
    assert wire_frames(conn.data_to_send())[0].opcode == 10  # the pong


# -------------------------------------------------------------- ping / pong


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("payload", [b"", b"ping!", bytes(range(125))], ids=["0", "5", "125"])
def test_pings_are_answered_both_ways(peer: str, payload: bytes) -> None:
    link = open_link(peer)
    link.ours.send_ping(payload)
    at_ours, at_theirs = link.pump()
    assert at_theirs == [("ping", payload)]
    assert at_ours == [("pong", payload)]
    link.theirs.send_ping(payload[::-1])
    at_ours, at_theirs = link.pump()
    assert at_ours == [("ping", payload[::-1])]
    assert at_theirs == [("pong", payload[::-1])]
    assert link.conn.state is State.OPEN


# ------------------------------------------------------------------ closing

CLOSES = [
    (1000, ""),
    (1001, "going away"),
    (4000, "app: ünïcødé ✓"),
    (3000, "é" * 61 + "!"),  # the longest reason: 123 bytes
    (None, ""),
]
CLOSE_IDS = ["1000", "1001-reason", "4000-unicode", "3000-123-bytes", "no-code"]


@pytest.mark.parametrize(("code", "reason"), CLOSES, ids=CLOSE_IDS)
@pytest.mark.parametrize("peer", PEERS)
def test_close_started_by_ours(peer: str, code: Optional[int], reason: str) -> None:
    link = open_link(peer)
    conn, theirs = link.conn, link.theirs
    conn.close(code, reason)
    assert conn.state is State.CLOSING
    at_ours, at_theirs = link.pump()
    wire_code = 1005 if code is None else code
    assert at_theirs == [("close", wire_code, reason)]
    [(_, echoed_code, echoed_reason)] = at_ours
    assert echoed_code == wire_code and echoed_reason in ("", reason)
    assert conn.state is State.CLOSED
    assert conn.was_clean and conn.closed_by == "local" and conn.close_code == wire_code
    finish_tcp_close(link)
    if theirs.library == "websockets":
        assert theirs.proto.close_code == wire_code and theirs.proto.close_reason == reason
    check_closed(link)


@pytest.mark.parametrize(("code", "reason"), CLOSES, ids=CLOSE_IDS)
@pytest.mark.parametrize("peer", PEERS)
def test_close_started_by_peer(peer: str, code: Optional[int], reason: str) -> None:
    link = open_link(peer)
    conn, theirs = link.conn, link.theirs
    theirs.close(code, reason)
    at_ours, at_theirs = link.pump()
    wire_code = 1005 if code is None else code
    assert at_ours == [("close", wire_code, reason)]
    assert at_theirs == [("close", wire_code, "")]  # we echo the code (RFC 6455 §5.5.1)
    assert conn.state is State.CLOSED
    assert conn.was_clean and conn.closed_by == "remote"
    assert conn.close_code == wire_code and conn.close_reason == reason
    finish_tcp_close(link)
    if theirs.library == "websockets":
        assert theirs.proto.close_code == wire_code and theirs.proto.close_reason == ""
    check_closed(link)


def finish_tcp_close(link: Link) -> None:
    """After the closing handshake, the server closes TCP first (RFC 6455 §7.1.1)."""
    conn, theirs = link.conn, link.theirs
    if theirs.library == "wsproto":
        # wsproto leaves the TCP connection to its application: here, one
        # that closes it once the closing handshake is over.
        assert conn.close_transport is (link.ours.role == "server")
        if link.ours.role == "client":
            conn.receive_eof()
        return
    proto = theirs.proto
    if link.ours.role == "server":
        # Our server asks the driver to close the TCP connection; the client
        # expects that and waits for it.
        assert conn.close_transport
        assert proto.state is WsState.CLOSING and proto.close_expected()
        assert not theirs.eof_sent
        theirs.feed_eof()
        theirs.flush()
        assert theirs.eof_sent  # their client closes its side in turn
        conn.receive_eof()
    else:
        # Their server half-closes right after the closing handshake; our
        # client waits for that before closing the TCP connection.
        assert theirs.eof_sent
        assert proto.close_expected()
        assert not conn.close_transport
        conn.receive_eof()
        assert conn.close_transport
        theirs.feed_eof()
        assert theirs.flush() == b""
    assert proto.state is WsState.CLOSED
    assert not proto.close_expected()
    assert theirs.take() == []


def check_closed(link: Link) -> None:
    conn, theirs = link.conn, link.theirs
    assert conn.state is State.CLOSED and conn.was_clean and conn.error is None
    assert conn.close_transport
    if theirs.library == "websockets":
        assert theirs.proto.state is WsState.CLOSED
        assert theirs.proto.close_sent is not None and theirs.proto.close_rcvd is not None
    else:
        assert theirs.ws.state is WpState.CLOSED


# ------------------------------------------------------------- subprotocols

SUBPROTOCOL_CASES = [
    # offered by the client, supported by the server (in preference order), chosen
    (["v2.chat", "chat"], ["superchat", "chat"], "chat"),
    (["chat", "superchat"], ["superchat", "chat"], "superchat"),
    (["chat"], None, None),
    (None, None, None),
]


@pytest.mark.parametrize(("offered", "supported", "chosen"), SUBPROTOCOL_CASES)
@pytest.mark.parametrize("peer", PEERS)
def test_subprotocol_negotiation(
    peer: str, offered: Optional[list[str]], supported: Optional[list[str]], chosen: Optional[str]
) -> None:
    link = open_link(peer, offered=offered, supported=supported)
    theirs = link.theirs
    assert link.conn.subprotocol == chosen
    if theirs.library == "websockets":
        assert theirs.proto.subprotocol == chosen
    elif theirs.role == "client":
        assert theirs.handshake.subprotocol == chosen
    assert header_values(link.request, "Sec-WebSocket-Protocol") == (offered or [])
    assert header_values(link.response, "Sec-WebSocket-Protocol") == ([chosen] if chosen else [])
    link.ours.send_text("after the handshake")
    assert link.pump()[1] == [("text", "after the handshake")]


# ------------------------------------------------------- permessage-deflate

DEFLATE_VARIANTS = {
    "default": {},
    "server_no_context_takeover": {"server_no_context_takeover": True},
    "client_no_context_takeover": {"client_no_context_takeover": True},
    "server_max_window_bits=10": {"server_max_window_bits": 10},
    "client_max_window_bits=9": {"client_max_window_bits": 9},
    "client_max_window_bits": {"client_max_window_bits": True},  # bare: offer only
}

DEFLATE_CASES = [
    pytest.param(peer, who, name, id=f"{peer}-{who}-{name}")
    for peer in PEERS
    for who in ("client-offers", "server-asks")
    for name in DEFLATE_VARIANTS
    # A bare client_max_window_bits only exists in an offer, and wsproto can
    # only offer it with a value.
    if not (name == "client_max_window_bits" and (who == "server-asks" or peer == "wsproto-client"))
]

#: 150 bytes without repetition: the second copy of it is a back-reference
#: within even a 9-bit window (zlib reaches 2**bits - 262 bytes back).
_rng = random.Random(7692)
SAMPLE = "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(150))


@pytest.mark.parametrize(("peer", "who", "name"), DEFLATE_CASES)
def test_deflate_negotiated_and_used(peer: str, who: str, name: str) -> None:
    variant = DEFLATE_VARIANTS[name]
    if who == "client-offers":
        link = open_link(peer, client_deflate=variant)
    else:
        link = open_link(peer, server_deflate=variant)
    ours, theirs = link.ours, link.theirs
    mine, their_view = ours.deflate_view(), theirs.deflate_view()
    assert mine is not None, "wsframe did not negotiate permessage-deflate"
    assert their_view is not None, f"{theirs.library} did not negotiate permessage-deflate"
    client, server = (mine, their_view) if ours.role == "client" else (their_view, mine)

    # Each compressor stays within what the other side's decompressor expects.
    assert client["client_max_window_bits"] <= server["client_max_window_bits"]
    assert server["server_max_window_bits"] <= client["server_max_window_bits"]
    # A decompressor resets between messages only if the compressor does.
    assert client["client_no_context_takeover"] or not server["client_no_context_takeover"]
    assert server["server_no_context_takeover"] or not client["server_no_context_takeover"]

    # What was asked for was granted (RFC 7692 §7.1.1, §7.1.2).
    if "server_no_context_takeover" in variant:
        assert client["server_no_context_takeover"] and server["server_no_context_takeover"]
    if "client_no_context_takeover" in variant:
        assert client["client_no_context_takeover"]
        if who == "server-asks":
            assert server["client_no_context_takeover"]
    if "server_max_window_bits" in variant:
        assert server["server_max_window_bits"] <= 10
        if who == "client-offers":
            assert client["server_max_window_bits"] <= 10
    if variant.get("client_max_window_bits") == 9 and not (
        who == "server-asks" and peer == "wsproto-server"
    ):
        # (wsproto's server only echoes the client's offer, 15 for our bare
        # client_max_window_bits: it cannot ask for a smaller window.)
        assert client["client_max_window_bits"] <= 9

    # Compressed traffic both ways: whole, empty, fragmented, repeated.
    messages: list[tuple[str, list[bytes]]] = [
        ("text", [("hello " * 200).encode()]),
        ("text", ["héllo wörld — 日本語 🎉 ".encode() * 30]),
        ("binary", [bytes(range(256)) * 16]),
        ("text", [b""]),
        ("binary", [b""]),
        ("text", [b"abc" * 100, b"", "dé".encode() * 100, b"xyz"]),
        ("binary", [b"\x01" * 5000, b"\x02" * 5000]),
        ("text", [SAMPLE.encode()]),
        ("text", [SAMPLE.encode()]),
    ]
    expected = []
    for kind, pieces in messages:
        data = b"".join(pieces)
        expected.append((kind, data.decode() if kind == "text" else data))
    for _ in range(2):  # twice: the context carries over (or not) across messages
        for kind, pieces in messages:
            send_message(ours, kind, pieces)
            send_message(theirs, kind, pieces)
    at_ours, at_theirs = link.pump()
    assert at_ours == expected * 2
    assert at_theirs == expected * 2
    check_masking(link)

    sizes = [len(pieces) for _, pieces in messages] * 2
    starts = {sum(sizes[:i]) for i in range(len(sizes))}
    for data, sender_view, sender_role in (
        (link.from_ours, mine, ours.role),
        (link.from_theirs, their_view, theirs.role),
    ):
        frames = data_frames(bytes(data))
        assert len(frames) == sum(sizes)
        # RSV1 on the first frame of each message only (RFC 7692 §6.1).
        assert [frame.rsv1 for frame in frames] == [i in starts for i in range(len(frames))]
        # The repeated SAMPLE: a back-reference if the context is kept,
        # the very same deflate stream if it is reset.
        first, second = frames[sum(sizes[:8]) - 1], frames[sum(sizes[:9]) - 1]
        assert first.length > 100
        if sender_view[f"{sender_role}_no_context_takeover"]:
            assert second.length == first.length
        else:
            assert second.length < 20
    assert link.conn.state is State.OPEN


@pytest.mark.parametrize("compression", [False, "client-only", "server-only"])
@pytest.mark.parametrize("peer", PEERS)
def test_no_deflate_unless_both_sides_want_it(peer: str, compression: str) -> None:
    link = open_link(peer, compression=compression)
    assert link.ours.deflate_view() is None and link.theirs.deflate_view() is None
    offers = header_values(link.request, "Sec-WebSocket-Extensions")
    assert bool(offers) is (compression == "client-only")
    assert header_values(link.response, "Sec-WebSocket-Extensions") == []
    link.ours.send_text("plain")
    link.theirs.send_text("plain")
    assert link.pump() == ([("text", "plain")], [("text", "plain")])
    assert not any(frame.rsv1 for frame in wire_frames(bytes(link.from_ours + link.from_theirs)))


# ---------------------------------------------------------- random traffic

piece_cuts = st.lists(st.integers(0, 3000), max_size=4)
random_message = st.one_of(
    st.tuples(
        st.just("text"), st.text(max_size=500), piece_cuts, st.none() | st.binary(max_size=20)
    ),
    st.tuples(
        st.just("binary"),
        st.binary(max_size=5000),
        piece_cuts,
        st.none() | st.binary(max_size=20),
    ),
)


def collapse_fragments(events: list[Normalized]) -> list[Normalized]:
    """Our ``fragments=True`` events, reassembled into messages."""
    out: list[Normalized] = []
    parts: list[Any] = []
    for event in events:
        if event[0].endswith("-fragment"):
            parts.append(event[1])
            if event[2]:
                kind = event[0].split("-")[0]
                out.append((kind, "".join(parts) if kind == "text" else b"".join(parts)))
                parts = []
        else:
            out.append(event)
    assert not parts
    return out


@pytest.mark.parametrize("peer", WEBSOCKETS_PEERS)
@settings(
    max_examples=150,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    from_ours=st.lists(random_message, max_size=8),
    from_theirs=st.lists(random_message, max_size=8),
    deflate=st.none() | st.sampled_from(sorted(DEFLATE_VARIANTS)),
    server_deflate=st.sampled_from(sorted(set(DEFLATE_VARIANTS) - {"client_max_window_bits"})),
    fragments=st.booleans(),
    chunk=st.none() | st.integers(1, 2000),
)
def test_random_traffic_with_websockets(
    peer: str,
    from_ours: list[tuple[str, Any, list[int], Optional[bytes]]],
    from_theirs: list[tuple[str, Any, list[int], Optional[bytes]]],
    deflate: Optional[str],
    server_deflate: str,
    fragments: bool,
    chunk: Optional[int],
) -> None:
    """Random messages, random fragmentation, a ping after the first fragment
    now and then, compressed (with what the client offers and the server
    prefers drawn from DEFLATE_VARIANTS) or not, both ways at once, delivered
    intact and in order (ours with or without ``fragments=True``)."""
    compression = deflate is not None
    client_deflate = DEFLATE_VARIANTS[deflate] if deflate is not None else None
    link = open_link(
        peer,
        compression=compression,
        client_deflate=client_deflate,
        server_deflate=DEFLATE_VARIANTS[server_deflate],
        fragments=fragments,
    )
    expected: dict[str, list[Normalized]] = {"ours": [], "theirs": []}
    frame_counts = {"ours": 0, "theirs": 0}
    for name, sender, messages in (
        ("ours", link.ours, from_ours),
        ("theirs", link.theirs, from_theirs),
    ):
        for kind, message, cuts, ping in messages:
            pieces = split(encoded(kind, message), cuts)
            frame_counts[name] += len(pieces)
            (sender.send_text if kind == "text" else sender.send_binary)(
                pieces[0], fin=len(pieces) == 1
            )
            if ping is not None:
                sender.send_ping(ping)
            if ping is not None and len(pieces) > 1:
                expected[name].append(("ping", ping))  # between the fragments
            for index, piece in enumerate(pieces[1:], 2):
                sender.send_continuation(piece, fin=index == len(pieces))
            expected[name].append((kind, message))
            if ping is not None and len(pieces) == 1:
                expected[name].append(("ping", ping))  # after the message
    at_ours, at_theirs = link.pump(chunk=chunk)
    pings = {
        name: [("pong", event[1]) for event in expected[name] if event[0] == "ping"]
        for name in expected
    }
    assert [e for e in at_ours if e[0] == "pong"] == pings["ours"]
    assert [e for e in at_theirs if e[0] == "pong"] == pings["theirs"]
    assert collapse_fragments([e for e in at_ours if e[0] != "pong"]) == expected["theirs"]
    assert [e for e in at_theirs if e[0] != "pong"] == expected["ours"]
    assert link.conn.state is State.OPEN and link.conn.error is None
    for name, data in (("ours", link.from_ours), ("theirs", link.from_theirs)):
        frames = data_frames(bytes(data))
        assert len(frames) == frame_counts[name]
        assert all(frame.rsv1 is (compression and frame.opcode != 0) for frame in frames)
