"""The state-machine fuzzer (fuzz/fuzz_state_machine.py) and its known differences.

A fixed-seed batch runs with the suite (on the implementation of this run:
compiled, or the twins with ``WSFRAME_NO_EXTENSIONS=1``), and every known
difference between wsframe and websockets that the fuzzer normalises is pinned
here by a minimal case: what wsframe does, what websockets does, and that the
fuzzer's model flags that frame (so that the normalisation applies to exactly
that case). The table in fuzz/README.md lists the same differences.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import zlib
from typing import Any, Optional

import pytest

pytest.importorskip("websockets", minversion="13.0")


ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = b"\x37\xfa\x21\x3d"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fuzz_state_machine", ROOT / "fuzz" / "fuzz_state_machine.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fsm = _load()
F = fsm.Frame


def test_fixed_seed_batch() -> None:
    """2,000 random sequences: wsframe matches the model, websockets too
    (but for the known differences), on this run's implementation."""
    stats = fsm.run(seed=13, sequences=2000, time_limit=None, max_reports=3)
    assert stats.sequences == 2000
    assert stats.disagreements == 0, "\n\n".join(r.render() for r in stats.reports)
    # The batch reaches every kind of ending and every known difference.
    for outcome in ("open", "closed", "failed 1002", "failed 1007", "failed 1009"):
        assert stats.outcomes[outcome] > 20, stats.outcomes
    # ... and nearly every known difference (one is a 1-in-1000 sequence).
    assert len(stats.differences) >= len(fsm.KNOWN_DIFFERENCES) - 1, stats.differences


def test_known_differences_are_documented() -> None:
    readme = (ROOT / "fuzz" / "README.md").read_text()
    for key in fsm.KNOWN_DIFFERENCES:
        assert f"`{key}`" in readme, key


# --------------------------------------------------------------------------
# One case per known difference


def compressor(bits: int = 15) -> Any:
    return zlib.compressobj(6, zlib.DEFLATED, -bits)


def deflate_setup(role: str = "server") -> dict[str, Any]:
    """permessage-deflate agreed with every default (context takeover, 15 bits)."""
    offer = {
        "server_no_context_takeover": False,
        "client_no_context_takeover": False,
        "server_max_window_bits": None,
        "client_max_window_bits": None,
    }
    if role == "server":
        return {"offer": offer, "server_deflate": dict(offer)}
    return {"offer": offer, "response": []}


def play(
    frames: list[Any],
    *,
    role: str = "server",
    max_size: Optional[int] = None,
    offer: Optional[dict[str, Any]] = None,
    server_deflate: Optional[dict[str, Any]] = None,
    response: Optional[list[Any]] = None,
    cut: Optional[int] = None,
) -> tuple[Any, Any, Any, list[Optional[str]]]:
    """Feed ``frames`` from the peer to wsframe, websockets and the model.

    Returns wsframe's outcome, websockets' (fed every frame: the known
    difference is observed, not skipped), the model's, and the known
    difference the model flags at each frame. ``cut``: the last frame stops
    after that many payload bytes.
    """
    setup = fsm.Setup(
        role=role,
        max_size=max_size,
        fragments=False,
        on_message=False,
        chunking="frame",
        early=False,
        offer=offer,
        server_deflate=server_deflate,
        response=response,
    )
    theirs = fsm.WebsocketsSide(setup)
    agreement, opened = theirs.open()
    assert opened
    peer_bits, peer_nct = 15, False
    if agreement is not None:
        peer_bits = agreement.client_max_window_bits
        if role == "client":
            peer_bits = agreement.server_max_window_bits
    model = fsm.Receiver(role == "server", max_size, agreement is not None, peer_nct, peer_bits)
    steps, flagged = [], []
    for index, frame in enumerate(frames):
        frame.masked = role == "server"
        wire, header = fsm.encode(frame, KEY)
        if cut is not None and index == len(frames) - 1:
            model.receive_partial(frame, cut)
            steps.append(fsm.Step("cut", frame, wire[: header + cut], truncated=True))
            flagged.append("truncated-frame")
        else:
            flagged.append(model.receive(frame))
            steps.append(fsm.Step("frame", frame, wire))
    ours, our_agreement, _ = fsm.WsframeSide(setup).run(fsm.RandomChoices(0), steps)
    assert our_agreement == agreement
    for step in steps:  # websockets gets everything, cut frame included
        theirs.proto.receive_data(step.wire)
        theirs._take()
        theirs._flush()
    return ours, theirs.outcome(), model.outcome, flagged


def test_close_inside_fragmented_message() -> None:
    # RFC 6455 §5.4: control frames may come between fragments; §5.5.1: a
    # close frame is answered. wsframe echoes it and drops the unfinished
    # message; websockets fails with 1002 ("incomplete fragmented message").
    frames = [F(fsm.TEXT, b"hel", fin=False), F(fsm.CLOSE, b"\x03\xe8")]
    ours, theirs, model, flagged = play(frames)
    assert ours == model
    assert (ours.sent, ours.close_received, ours.failure) == ([("close", 1000)], 1000, None)
    assert (theirs.sent, theirs.close_received, theirs.failure) == ([("close", 1002)], 1000, 1002)
    assert flagged == [None, "close-inside-fragmented-message"]


def test_wire_budget() -> None:
    # wsframe: the limit is on each frame and on the message; a control frame
    # is not part of the message (§5.4). websockets limits every frame read
    # inside a fragmented message to what is left of the message's budget.
    frames = [
        F(fsm.BINARY, b"12345678", fin=False),
        F(fsm.PING, b"ping!"),
        F(fsm.CONT, b"90"),
    ]
    ours, theirs, model, flagged = play(frames, max_size=10)
    assert ours == model
    assert ours.messages == [("binary", b"1234567890")] and ours.failure is None
    assert ours.sent == [("pong", b"ping!")]
    assert (theirs.messages, theirs.sent, theirs.failure) == ([], [("close", 1009)], 1009)
    assert flagged == [None, "wire-budget", None]


def test_length_checked_first() -> None:
    # A frame with two violations: RSV2 set (§5.2) and over the limit.
    # wsframe reports the first in the header's order (1002); websockets
    # checks the length first (1009).
    ours, theirs, model, flagged = play([F(fsm.PONG, b"x" * 20, rsv2=True)], max_size=10)
    assert ours == model and ours.failure == 1002
    assert theirs.failure == 1009
    assert flagged == ["length-checked-first"]


def test_close_reason_checked_first() -> None:
    # A close frame with an invalid code (§7.4) and a reason that is not UTF-8.
    ours, theirs, model, flagged = play([F(fsm.CLOSE, (999).to_bytes(2, "big") + b"\xff")])
    assert ours == model and (ours.failure, ours.sent) == (1002, [("close", 1002)])
    assert (theirs.failure, theirs.sent) == (1007, [("close", 1007)])
    assert flagged == ["close-reason-checked-first"]


def test_nonminimal_length() -> None:
    # §5.2: "the minimal number of bytes MUST be used to encode the length".
    ours, theirs, model, flagged = play([F(fsm.PING, b"abc", length="wide")])
    assert ours == model and ours.failure == 1002
    assert theirs.failure is None and theirs.sent == [("pong", b"abc")]
    assert flagged == ["nonminimal-length"]


@pytest.mark.parametrize("max_size", [1000, None])
def test_msb_length(max_size: Optional[int]) -> None:
    # §5.2: the most significant bit of a 64-bit length MUST be 0.
    ours, theirs, model, flagged = play([F(fsm.BINARY, b"abc", length="msb")], max_size=max_size)
    assert ours == model and ours.failure == 1002
    assert theirs.failure == (1009 if max_size is not None else None)
    assert flagged == ["msb-length"]


@pytest.mark.parametrize("role", ["server", "client"])
def test_data_after_bfinal(role: str) -> None:
    # RFC 7692 §7.2.3.3: a message may end with a DEFLATE block with BFINAL
    # set. The next message (context takeover) then starts a new stream:
    # wsframe inflates it; websockets' ended decompressor yields nothing.
    first = compressor()
    hello = first.compress(b"hello") + first.flush(zlib.Z_FINISH) + b"\x00"
    second = compressor()
    world = (second.compress(b"world") + second.flush(zlib.Z_SYNC_FLUSH))[:-4]
    frames = [F(fsm.TEXT, hello, rsv1=True), F(fsm.TEXT, world, rsv1=True)]
    ours, theirs, model, flagged = play(frames, role=role, **deflate_setup(role))
    assert ours == model and ours.messages == [("text", "hello"), ("text", "world")]
    assert theirs.messages == [("text", "hello"), ("text", "")]  # "world" is lost
    assert flagged == [None, "data-after-bfinal"]


def test_inflate_stops_at_budget() -> None:
    # RFC 7692 §8.1: the limit is on the inflated size. These 4 bytes start
    # a stream inflating to 20 bytes (b"a" * 20), over the limit of 4.
    # websockets asks zlib for 4 bytes; zlib consumed all the input and holds
    # the rest, so websockets sees nothing wrong and accepts the frame.
    payload = bytes.fromhex("4a4cc404")
    assert zlib.decompressobj(-15).decompress(payload) == b"a" * 20
    frames = [F(fsm.BINARY, payload, fin=False, rsv1=True)]
    ours, theirs, model, flagged = play(frames, max_size=4, **deflate_setup())
    assert ours == model and ours.failure == 1009
    assert theirs.failure is None
    assert flagged == ["inflate-stops-at-budget"]


@pytest.mark.parametrize("max_size", [None, 1000])
def test_context_takeover_is_not_flagged(max_size: Optional[int]) -> None:
    # The second message refers back to the first (context takeover): both
    # libraries inflate it alike, and the model must not flag a difference
    # there (it once emulated websockets with a fresh decompressor).
    sender = compressor()
    one = (sender.compress(b"hello hello") + sender.flush(zlib.Z_SYNC_FLUSH))[:-4]
    two = (sender.compress(b"hello hello") + sender.flush(zlib.Z_SYNC_FLUSH))[:-4]
    frames = [F(fsm.TEXT, one, rsv1=True), F(fsm.TEXT, two[:2], fin=False, rsv1=True)]
    frames.append(F(fsm.CONT, two[2:]))
    ours, theirs, model, flagged = play(frames, max_size=max_size, **deflate_setup())
    assert ours == model == theirs
    assert ours.messages == [("text", "hello hello")] * 2
    assert flagged == [None, None, None]


def test_truncated_frame() -> None:
    # §8.1: invalid UTF-8 fails the connection as soon as it arrives; wsframe
    # checks a text frame while its payload arrives. websockets reports whole
    # frames only, so its application (the adapter) cannot see it yet.
    frames = [F(fsm.TEXT, b"ab\xffcd")]
    ours, theirs, model, flagged = play(frames, cut=3)
    assert ours == model and ours.failure == 1007
    assert theirs.failure is None and theirs.messages == []
    assert flagged == ["truncated-frame"]
