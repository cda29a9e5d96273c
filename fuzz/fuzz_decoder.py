"""Differential fuzzing of the frame decoder: C codec vs pure-Python codec.

Both decoders get the same bytes in the same random chunks; every ``feed()``
must return the same frames, or raise the same exception class with the same
message, close code and ``frames``. After an error, the next ``feed()`` must
fail identically again (the decoder stays failed).

    python fuzz/fuzz_decoder.py -runs=20000            # a short run (CI)
    python fuzz/fuzz_decoder.py -max_total_time=3600 corpus/decoder   # a long one
"""

from __future__ import annotations

import sys
from typing import Any

import atheris

with atheris.instrument_imports():
    from wsframe import _codec_py

from wsframe import _codec_c
from wsframe.errors import ProtocolError

MAX_FRAME_SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, None]


def outcome(decoder: Any, data: bytes) -> tuple[Any, ...]:
    try:
        frames = decoder.feed(data)
    except Exception as exc:
        return (
            "raise",
            type(exc),
            str(exc),
            getattr(exc, "close_code", None),
            [_frame(f) for f in getattr(exc, "frames", [])],
        )
    return ("frames", [_frame(f) for f in frames], decoder.buffered)


def _frame(frame: Any) -> tuple[Any, ...]:
    payload = frame.payload
    assert type(payload) is bytes, type(payload)
    return (frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, payload)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    role = "server" if fdp.ConsumeBool() else "client"
    max_frame_size = MAX_FRAME_SIZES[fdp.ConsumeIntInRange(0, len(MAX_FRAME_SIZES) - 1)]
    allow_rsv1 = fdp.ConsumeBool()
    c = _codec_c.FrameDecoder(role, max_frame_size=max_frame_size, allow_rsv1=allow_rsv1)
    py = _codec_py.FrameDecoder(role, max_frame_size=max_frame_size, allow_rsv1=allow_rsv1)
    failed = 0
    while fdp.remaining_bytes() and failed < 2:
        size = fdp.ConsumeIntInRange(0, 300)
        chunk = fdp.ConsumeBytes(size)
        got_c, got_py = outcome(c, chunk), outcome(py, chunk)
        if got_c != got_py:
            raise AssertionError(f"codecs differ on {chunk!r}:\nC:  {got_c!r}\nPy: {got_py!r}")
        if got_c[0] == "raise":
            assert issubclass(got_c[1], ProtocolError), got_c
            failed += 1


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
