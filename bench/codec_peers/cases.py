"""The peer libraries' columns of the codec benchmark tables.

:mod:`wsframe.benchmarks.cases` defines the rows and runs wsframe's own
columns; this module adds, to the same groups, a column per peer library
(picows, aiohttp, websockets, wsproto, wsaccel) and says how each peer does
each job. It drives the peers through whatever API gets closest to the codec,
private members included, which is why it lives in ``bench/`` and never in
the installed package: a peer upgrade may break it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
from collections import deque
from functools import partial
from itertools import repeat
from typing import Any, Callable, Optional

from wsframe.benchmarks import Suite
from wsframe.benchmarks import cases as own
from wsframe.benchmarks.cases import (
    Case,
    CheckFailed,
    Group,
    NotAvailable,
    Runner,
    checked_apply_mask,
    frame_checker,
    frame_stream,
    payload,
    reference_mask,
    utf8_text,
)

from .peers import PEERS, load, submodule

__all__ = ["SUITE", "groups", "libraries", "make_runner", "unavailable"]

_KEY = b"\x37\xfa\x21\x3d"
_BINARY = 2

#: Group -> the peer columns shown, between wsframe's and the references.
PEER_COLUMNS: dict[str, tuple[str, ...]] = {
    "mask_inplace": ("aiohttp", "wsaccel"),
    "apply_mask": ("websockets", "wsaccel"),
    "decode_server": ("picows", "aiohttp", "websockets", "wsproto"),
    "decode_client": ("picows", "aiohttp", "websockets", "wsproto"),
    "encode": ("picows", "aiohttp", "websockets", "wsproto"),
    "utf8": ("wsaccel",),
}

_DECODE_NOTES = {
    "picows": "WSProtocol get_buffer/buffer_updated after a fake handshake; "
    "listener counts frames, payload not copied (a view)",
    "aiohttp": "aiohttp._websocket.reader_c.WebSocketReader.feed_data into a "
    "WebSocketDataQueue (new reader per stream, queue cleared per chunk)",
    "websockets": "Frame.parse generator over websockets.streams.StreamReader",
    "wsproto": "FrameProtocol.receive_bytes + received_frames()",
}

#: Group -> peer column -> how that peer does the job (shown under the table).
PEER_NOTES: dict[str, dict[str, str]] = {
    "mask_inplace": {
        "aiohttp": "aiohttp._websocket.mask._websocket_mask_cython(key, bytearray)",
    },
    "apply_mask": {
        "websockets": "websockets.speedups.apply_mask(bytes, key) (C)",
        "wsaccel": "wsaccel.xormask.XorMaskerSimple(key).process(bytes), masker reused",
    },
    "decode_server": _DECODE_NOTES,
    "decode_client": _DECODE_NOTES,
    "encode": {
        "picows": "WSTransport.send(BINARY, payload) to a transport whose write() "
        "keeps nothing; masked = client side, key from C rand(); unmasked "
        "> 8 KiB uses writelines([header, payload]) (no payload copy)",
        "aiohttp": "WebSocketWriter._write_websocket_frame (the sync part of the "
        "async send_frame); masked: key from random.getrandbits",
        "websockets": "Frame(BINARY, payload).serialize(mask=..., extensions=[]); "
        "masked: key from secrets.token_bytes",
        "wsproto": "FrameProtocol(client=masked).send_data(payload); masked: key from os.urandom",
    },
    "utf8": {
        "wsaccel": "wsaccel.utf8validator.Utf8Validator: reset() + validate(bytes)",
    },
}


def groups(quick: bool = False) -> list[Group]:
    """wsframe's tables with the peer columns added."""
    result = []
    for group in own.groups(quick):
        mine = tuple(c for c in group.columns if c in own.WSFRAME)
        references = tuple(c for c in group.columns if c not in own.WSFRAME)
        result.append(
            dataclasses.replace(
                group,
                columns=(*mine, *PEER_COLUMNS[group.name], *references),
                notes={**group.notes, **PEER_NOTES[group.name]},
            )
        )
    return result


def libraries() -> dict[str, dict[str, str]]:
    """wsframe's codecs and every peer: its version, or why it is not available."""
    result = own.libraries()
    for key in PEERS:
        loaded = load(key)
        result[key] = {"version": loaded.version} if loaded.ok else {"unavailable": loaded.reason}
    return result


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


class _FakeSocket:
    """What picows asks of a socket before it starts: options and a file number."""

    def setsockopt(self, *args: object) -> None:
        """Accept and ignore a socket option."""

    def getsockopt(self, *args: object) -> int:
        """Every option reads as 0."""
        return 0

    def fileno(self) -> int:
        """No real descriptor."""
        return -1


class _SinkTransport:
    """A stand-in asyncio transport that keeps only the last few writes.

    ``write``/``writelines`` are bound C methods of a bounded deque, so the cost
    of "sending" is as small as it can be and memory stays constant.
    ``get_write_buffer_size`` reports 1 so that picows never calls send(2).
    """

    def __init__(self) -> None:
        self.sink: deque[Any] = deque(maxlen=4)
        self.write = self.sink.append
        self.writelines = self.sink.append
        self.get_write_buffer_size = partial(int, 1)
        self.is_closing = bool  # bool() is False
        self._socket = _FakeSocket()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Only the socket is known."""
        return self._socket if name == "socket" else default

    def taken(self) -> bytes:
        """Everything still in the sink, as one bytes object; empties it."""
        parts: list[bytes] = []
        for item in self.sink:
            if isinstance(item, (list, tuple)):
                parts.extend(bytes(x) for x in item)
            else:
                parts.append(bytes(item))
        self.sink.clear()
        return b"".join(parts)

    def close(self) -> None:
        """Nothing to close."""

    def abort(self) -> None:
        """Nothing to abort."""


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _picows_connected(client: bool) -> tuple[Any, Any, _SinkTransport]:
    """A picows WSProtocol past its opening handshake, with no socket.

    Returns (protocol, listener, transport stub). The listener counts frames.
    """
    import asyncio

    pp = submodule("picows", "picows.picows")

    class CountingListener(pp.WSListener):  # type: ignore[misc,name-defined]
        count = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            self.count += 1

    listener = CountingListener()
    logger = logging.getLogger("codec_peers.picows")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())

    async def create() -> Any:
        return pp.WSProtocol(
            "localhost:9" if client else None,  # host:port
            "/" if client else None,  # path
            client,
            lambda *args: listener,  # listener factory
            logger,
            True,  # disconnect_on_exception
            None,  # handshake timeout
            False,
            10.0,
            10.0,
            pp.WSAutoPingStrategy.PING_WHEN_IDLE,  # no auto-ping
            False,  # no auto-pong
            1 << 30,  # max_frame_size
            None,  # extra headers
            256 * 1024,  # initial read buffer
        )

    loop = asyncio.new_event_loop()
    try:
        protocol = loop.run_until_complete(create())
        transport = _SinkTransport()
        protocol.connection_made(transport)
        if client:
            request = transport.taken()
            key = request.split(b"Sec-WebSocket-Key:", 1)[1].split(b"\r\n", 1)[0].strip()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            _picows_feed(
                protocol,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n",
            )
        else:
            _picows_feed(
                protocol,
                b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: "
                + base64.b64encode(os.urandom(16))
                + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
        reply = transport.taken()
        if not client:
            _check(reply.startswith(b"HTTP/1.1 101"), f"picows handshake failed: {reply[:60]!r}")
    finally:
        loop.close()
    _check(protocol.listener is listener, "picows handshake did not complete")
    return protocol, listener, transport


def _picows_feed(protocol: Any, data: bytes) -> None:
    """Copy ``data`` into picows's read buffer the way asyncio would."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(-1)
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


# ------------------------------------------------------------------- masking


def _mask_inplace(case: Case, column: str) -> Runner:
    key = _KEY
    buf = bytearray(payload(case.size))
    aiohttp_mask = submodule("aiohttp", "aiohttp._websocket.mask")._websocket_mask_cython
    aiohttp_mask(key, buf)
    _check(buf == reference_mask(payload(case.size), key), "wrong masked bytes")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            aiohttp_mask(key, buf)

    return run


def _apply_mask(case: Case, column: str) -> Runner:
    if column == "websockets":
        return checked_apply_mask(case, submodule("websockets", "websockets.speedups").apply_mask)
    key = _KEY
    data = payload(case.size)
    masker_class = submodule("wsaccel", "wsaccel.xormask").XorMaskerSimple
    _check(bytes(masker_class(key).process(data)) == reference_mask(data, key), "wrong bytes")
    # The masker carries the key phase from call to call: reuse one, as a
    # connection would; the work per call is the same whatever the phase.
    process = masker_class(key).process

    def run(n: int) -> None:
        for _ in repeat(None, n):
            process(data)

    return run


# ------------------------------------------------------------------- decoding


def _decode(case: Case, column: str) -> Runner:
    role = "server" if case.masked else "client"
    chunks = frame_stream(case.size, case.frames, case.masked)
    expected_frames = case.frames
    if column == "picows":
        protocol, listener, _ = _picows_connected(client=role == "client")

        for chunk in chunks:
            _picows_feed(protocol, chunk)
        _check(listener.count == expected_frames, f"{listener.count} frames")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                for chunk in chunks:
                    _picows_feed(protocol, chunk)

        return run
    if column == "aiohttp":
        reader_c = submodule("aiohttp", "aiohttp._websocket.reader_c")

        class _Protocol:
            _reading_paused = False

            def pause_reading(self) -> None:
                self._reading_paused = True

            def resume_reading(self) -> None:
                self._reading_paused = False

        proto = _Protocol()
        queue_class, reader_class = reader_c.WebSocketDataQueue, reader_c.WebSocketReader

        def one_stream() -> int:
            queue = queue_class(proto, 1 << 30, loop=None)
            reader = reader_class(queue, 1 << 24, False, False)
            feed, messages = reader.feed_data, queue._buffer
            count = 0
            for chunk in chunks:
                feed(chunk)
                count += len(messages)
                messages.clear()
            return count

        got = one_stream()
        _check(got == expected_frames, f"{got} messages, not {expected_frames}")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                one_stream()

        return run
    if column == "websockets":
        frames_mod = submodule("websockets", "websockets.frames")
        streams = submodule("websockets", "websockets.streams")
        stream = streams.StreamReader()
        parse = frames_mod.Frame.parse
        read_exact = stream.read_exact
        mask = case.masked
        parsed = [0]

        def parser() -> Any:
            while True:
                yield from parse(read_exact, mask=mask, max_size=None)
                parsed[0] += 1

        gen = parser()
        next(gen)
        feed_data = stream.feed_data
        for chunk in chunks:
            feed_data(chunk)
            next(gen)
        _check(parsed[0] == expected_frames, f"{parsed[0]} frames, not {expected_frames}")
        _check(not stream.buffer, "websockets left bytes unparsed")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                for chunk in chunks:
                    feed_data(chunk)
                    next(gen)

        return run
    if column == "wsproto":
        fp_mod = submodule("wsproto", "wsproto.frame_protocol")
        protocol = fp_mod.FrameProtocol(client=role == "client", extensions=[])
        receive, received = protocol.receive_bytes, protocol.received_frames

        def wsproto_pass() -> int:
            count = 0
            for chunk in chunks:
                receive(chunk)
                for frame in received():
                    if frame.frame_finished:
                        count += 1
            return count

        got_frames = wsproto_pass()
        _check(got_frames == expected_frames, f"{got_frames} frames, not {expected_frames}")

        def run(n: int) -> None:
            for _ in repeat(None, n):
                wsproto_pass()

        return run
    raise NotAvailable("cannot do this job")


# ------------------------------------------------------------------- encoding


def _encode(case: Case, column: str) -> Runner:
    data = payload(case.size)
    masked = case.masked
    check = frame_checker(case)
    if column == "picows":
        pp = submodule("picows", "picows.picows")
        protocol, _, transport = _picows_connected(client=masked)
        send, binary = protocol.transport.send, pp.WSMsgType.BINARY
        transport.taken()
        send(binary, data)
        check(transport.taken())

        def run(n: int) -> None:
            for _ in repeat(None, n):
                send(binary, data)

        return run
    if column == "aiohttp":
        writer_mod = submodule("aiohttp", "aiohttp._websocket.writer")
        transport = _SinkTransport()
        writer = writer_mod.WebSocketWriter(object(), transport, use_mask=masked)
        write = writer._write_websocket_frame
        write(data, _BINARY, 0)
        check(transport.taken())

        def run(n: int) -> None:
            for _ in repeat(None, n):
                write(data, _BINARY, 0)

        return run
    if column == "websockets":
        frames_mod = submodule("websockets", "websockets.frames")
        frame_class, binary = frames_mod.Frame, frames_mod.Opcode.BINARY
        no_extensions: list[Any] = []
        check(frame_class(binary, data).serialize(mask=masked, extensions=no_extensions))

        def run(n: int) -> None:
            for _ in repeat(None, n):
                frame_class(binary, data).serialize(mask=masked, extensions=no_extensions)

        return run
    if column == "wsproto":
        fp_mod = submodule("wsproto", "wsproto.frame_protocol")
        send_data = fp_mod.FrameProtocol(client=masked, extensions=[]).send_data
        check(bytes(send_data(data)))

        def run(n: int) -> None:
            for _ in repeat(None, n):
                send_data(data)

        return run
    raise NotAvailable("cannot do this job")


# ----------------------------------------------------------------------- UTF-8


def _utf8(case: Case, column: str) -> Runner:
    data = utf8_text(case.text, case.size)
    validator = submodule("wsaccel", "wsaccel.utf8validator").Utf8Validator()
    reset, check = validator.reset, validator.validate
    result = check(data)
    _check(bool(result[0] and result[1]), "valid UTF-8 rejected")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            reset()
            check(data)

    return run


_FACTORIES: dict[str, Callable[[Case, str], Runner]] = {
    "mask_inplace": _mask_inplace,
    "apply_mask": _apply_mask,
    "decode_server": _decode,
    "decode_client": _decode,
    "encode": _encode,
    "utf8": _utf8,
}


#: (group, peer column) -> the submodule the job needs, or why the peer cannot
#: do that job at all. A peer missing here cannot do the group's job.
_NEEDS: dict[tuple[str, str], str] = {
    ("mask_inplace", "aiohttp"): "aiohttp._websocket.mask",
    ("mask_inplace", "wsaccel"): "!no in-place API: XorMaskerSimple.process returns new bytes",
    ("apply_mask", "websockets"): "websockets.speedups",
    ("apply_mask", "wsaccel"): "wsaccel.xormask",
    ("decode_server", "picows"): "picows.picows",
    ("decode_server", "aiohttp"): "aiohttp._websocket.reader_c",
    ("decode_server", "websockets"): "websockets.frames",
    ("decode_server", "wsproto"): "wsproto.frame_protocol",
    ("decode_client", "picows"): "picows.picows",
    ("decode_client", "aiohttp"): "aiohttp._websocket.reader_c",
    ("decode_client", "websockets"): "websockets.frames",
    ("decode_client", "wsproto"): "wsproto.frame_protocol",
    ("encode", "picows"): "picows.picows",
    ("encode", "aiohttp"): "aiohttp._websocket.writer",
    ("encode", "websockets"): "websockets.frames",
    ("encode", "wsproto"): "wsproto.frame_protocol",
    ("utf8", "wsaccel"): "wsaccel.utf8validator",
}


def unavailable(case: Case, column: str) -> Optional[str]:
    """Why ``column`` cannot run ``case`` here, or None if it can.

    Cheap (imports only, no input data built) and deterministic, so that the
    pyperf script decides the same in every worker process.
    """
    if column not in PEERS:
        return own.unavailable(case, column)
    loaded = load(column)
    if not loaded.ok:
        return loaded.reason
    need = _NEEDS.get((case.group, column))
    if need is None:
        return "cannot do this job"
    if need.startswith("!"):
        return need[1:]
    try:
        submodule(column, need)
    except NotAvailable as exc:
        return str(exc)
    return None


def make_runner(case: Case, column: str) -> Runner:
    """A checked runner ``run(n)`` for ``column`` (wsframe's or a peer) doing ``case``'s job.

    Raises :class:`NotAvailable` (the column cannot do it here: not installed,
    not built, no such API) or :class:`CheckFailed` (it gave a wrong result).
    """
    if column not in PEERS:
        return own.make_runner(case, column)
    reason = unavailable(case, column)
    if reason is not None:
        raise NotAvailable(reason)
    return _FACTORIES[case.group](case, column)


#: The peer tables, for :func:`wsframe.benchmarks.run`.
SUITE = Suite(groups, make_runner, libraries)
