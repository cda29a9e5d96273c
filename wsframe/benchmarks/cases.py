"""The benchmark rows, and how wsframe's two codecs run each row.

A :class:`Group` is one table (say, "mask in place"); its :class:`Case` objects
are the rows (one payload size each) and its columns name an implementation.
:func:`make_runner` turns a (group, case, column) triple into a runner
``run(n)`` that does the job ``n`` times, after checking once that the result
is right. Input data (payloads, pre-encoded frame streams, key pools) is built
here, before timing, so that it is not part of what is measured.

The same definitions serve ``python -m wsframe bench``, ``bench/bench_codec.py``
(pyperf) and ``bench/test_bench_codec.py`` (pytest-benchmark). The peer
libraries' columns are not here: ``bench/codec_peers/`` adds them to these
groups, so that nothing in the installed package drives another library.
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass
from functools import cache
from itertools import cycle, islice, repeat
from types import ModuleType
from typing import Callable, Optional

from .timing import Runner

__all__ = [
    "CHUNK_SIZE",
    "KEY_POOL_SIZE",
    "Case",
    "CheckFailed",
    "Group",
    "NotAvailable",
    "checked_apply_mask",
    "codec",
    "frame_checker",
    "groups",
    "libraries",
    "make_runner",
    "size_label",
    "unavailable",
]


#: Decode streams are fed to the decoders in chunks of this many bytes.
CHUNK_SIZE = 64 * 1024
#: Number of pre-generated masking keys that wsframe's encoder cycles through.
KEY_POOL_SIZE = 1024

_KEY = b"\x37\xfa\x21\x3d"
_BINARY = 2
_SEED = 6455


class NotAvailable(Exception):
    """This column cannot run this case here; the message says why."""


class CheckFailed(Exception):
    """An implementation gave a wrong result in the check before timing."""


@dataclass(frozen=True)
class Case:
    """One row of a table: a job at one payload size."""

    group: str
    label: str
    size: int
    #: encode: masked (client side) or not (server side).
    masked: bool = False
    #: utf8: "ascii" or "mixed".
    text: str = ""
    #: decode: the number of frames in the stream one operation decodes.
    frames: int = 1
    #: encode: wsframe sends the header and the payload apart (writelines),
    #: without copying the payload, as picows and aiohttp do for large frames.
    zero_copy: bool = False

    @property
    def key(self) -> str:
        """A stable identifier, e.g. ``mask_inplace/64KiB``."""
        return f"{self.group}/{self.label.replace(' ', '')}"

    @property
    def bytes_per_op(self) -> int:
        """Payload bytes handled by one operation."""
        return self.size * self.frames


@dataclass(frozen=True)
class Group:
    """One table: a job, its rows and its columns."""

    name: str
    title: str
    #: How the table shows a cell: "bytes" (ns/op or GB/s), "frames"
    #: (frames/s), "ns_frame" (ns per frame).
    unit: str
    columns: tuple[str, ...]
    cases: tuple[Case, ...]
    #: Column key -> how that column does the job (shown under the table).
    notes: dict[str, str]


#: Columns that are references (not WebSocket libraries): never "best peer".
REFERENCES = {"copy": "bytes copy", "decode": "bytes.decode"}
WSFRAME = ("wsframe-c", "wsframe-py")
#: Column key -> the module behind it.
_CODECS = {"wsframe-c": "wsframe._codec_c", "wsframe-py": "wsframe._codec_py"}

_MASK_SIZES = (2, 16, 125, 1024, 64 * 1024, 1 << 20, 16 << 20)
_MASK_SIZES_QUICK = (16, 1024, 64 * 1024, 1 << 20)
_FRAME_SIZES = (16, 125, 1024, 64 * 1024)
_UTF8_SIZE = 1 << 20


def size_label(n: int) -> str:
    """``2 B``, ``125 B``, ``1 KiB``, ``64 KiB``, ``16 MiB``."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def _stream_frames(size: int, quick: bool) -> int:
    target = (256 if quick else 1024) * 1024
    return max(8 if quick else 16, target // (size + 14))


def groups(quick: bool = False) -> list[Group]:
    """Every table, with quick or full row sets: wsframe's columns and the references."""
    mask_sizes = _MASK_SIZES_QUICK if quick else _MASK_SIZES
    copy_note = {"copy": "reference: bytes(bytearray) of the same size"}
    result = [
        Group(
            "mask_inplace",
            "mask in place",
            "bytes",
            (*WSFRAME, "copy"),
            tuple(Case("mask_inplace", size_label(n), n) for n in mask_sizes),
            {"wsframe-c": "mask_inplace(bytearray, key)", **copy_note},
        ),
        Group(
            "apply_mask",
            "apply_mask (new bytes)",
            "bytes",
            (*WSFRAME, "copy"),
            tuple(Case("apply_mask", size_label(n), n) for n in mask_sizes),
            {"wsframe-c": "apply_mask(bytes, key)", **copy_note},
        ),
    ]
    for role, masked_word in (("server", "masked"), ("client", "unmasked")):
        name = f"decode_{role}"
        result.append(
            Group(
                name,
                f"decode {masked_word} frames ({role} side), "
                f"stream fed in {size_label(CHUNK_SIZE)} chunks",
                "frames",
                WSFRAME,
                tuple(
                    Case(
                        name,
                        size_label(n),
                        n,
                        masked=role == "server",
                        frames=_stream_frames(n, quick),
                    )
                    for n in _FRAME_SIZES
                ),
                {"wsframe-c": "FrameDecoder(role).feed(chunk) -> list of Frame (payload bytes)"},
            )
        )
    result.append(
        Group(
            "encode",
            "encode one binary frame",
            "ns_frame",
            WSFRAME,
            (
                *(
                    Case("encode", f"{size_label(n)} {'masked' if m else 'unmasked'}", n, masked=m)
                    for m in (True, False)
                    for n in _FRAME_SIZES
                ),
                Case("encode", "64 KiB unmasked zero-copy", 64 * 1024, zero_copy=True),
            ),
            {
                "wsframe-c": f"encode_frame(2, payload, mask=key), keys cycled from a pool "
                f"of {KEY_POOL_SIZE} pre-generated keys (key generation not measured); "
                "zero-copy row: encode_frame_header(2, len(payload)) and the "
                "[header, payload] list given to writelines (no payload copy)",
            },
        )
    )
    result.append(
        Group(
            "utf8",
            "UTF-8 validation",
            "bytes",
            (*WSFRAME, "decode"),
            (
                Case("utf8", "1 MiB ASCII", _UTF8_SIZE, text="ascii"),
                Case("utf8", "1 MiB mixed", _UTF8_SIZE, text="mixed"),
            ),
            {
                "wsframe-c": "validate_utf8(bytes)",
                "decode": "reference: bytes.decode('utf-8') (also builds the str)",
            },
        )
    )
    return result


# ---------------------------------------------------------------- input data


@cache
def payload(size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    return random.Random(_SEED + size).randbytes(size)


@cache
def key_pool() -> tuple[bytes, ...]:
    """``KEY_POOL_SIZE`` masking keys, generated once."""
    pool = random.Random(_SEED).randbytes(4 * KEY_POOL_SIZE)
    return tuple(pool[i : i + 4] for i in range(0, len(pool), 4))


def reference_mask(data: bytes, key: bytes) -> bytes:
    """``data`` XOR ``key`` computed with big integers (fast, obviously right)."""
    n = len(data)
    keys = (key * (n // 4 + 1))[:n]
    value = int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")
    return value.to_bytes(n, "little")


def reference_frame(size: int, key: Optional[bytes]) -> bytes:
    """A FIN binary frame built by hand (RFC 6455 §5.2), for checks."""
    data = payload(size)
    head = bytearray([0x80 | _BINARY])
    bit = 0x80 if key is not None else 0
    if size < 126:
        head.append(bit | size)
    elif size < 65536:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + size.to_bytes(8, "big")
    if key is None:
        return bytes(head) + data
    return bytes(head) + key + reference_mask(data, key)


@cache
def utf8_text(kind: str, size: int = _UTF8_SIZE) -> bytes:
    """``size`` bytes (cut at a character boundary) of valid UTF-8."""
    rng = random.Random(_SEED)
    if kind == "ascii":
        alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?\n"
    else:  # 1-, 2-, 3- and 4-byte sequences mixed, as in chat text with emoji
        alphabet = "abc def ghi é ü ß ñ ж д я λ π € ☃ ✓ 中 文 字 日本 😀 🎉 🚀 𝄞 "
    text = "".join(rng.choice(alphabet) for _ in range(size // 2 + 16))
    data = text.encode("utf-8")
    while len(data) < size:
        data += data
    data = data[:size]
    while True:  # drop a sequence cut in two at the end
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            data = data[:-1]


@cache
def frame_stream(size: int, frames: int, masked: bool) -> tuple[bytes, ...]:
    """``frames`` binary frames of ``size`` bytes, encoded with wsframe, in chunks."""
    from wsframe import encode_frame

    data = payload(size)
    keys = cycle(key_pool()) if masked else repeat(None)
    stream = b"".join(encode_frame(_BINARY, data, mask=k) for k in islice(keys, frames))
    return tuple(stream[i : i + CHUNK_SIZE] for i in range(0, len(stream), CHUNK_SIZE))


# ------------------------------------------------------------------- helpers


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


@cache
def _import_codec(column: str) -> tuple[Optional[ModuleType], str]:
    try:
        return importlib.import_module(_CODECS[column]), ""
    except ImportError:
        return None, "not built"


def codec(column: str) -> ModuleType:
    """The codec behind ``wsframe-c`` or ``wsframe-py``; :class:`NotAvailable` if not built."""
    module, reason = _import_codec(column)
    if module is None:
        raise NotAvailable(reason)
    return module


# ------------------------------------------------------------------- masking


def _mask_inplace(case: Case, column: str) -> Runner:
    if column == "copy":
        return _copy(case)
    key = _KEY
    buf = bytearray(payload(case.size))
    expected = reference_mask(payload(case.size), key)
    mask = codec(column).mask_inplace
    _check(mask(buf, key) == case.size % 4, "mask_inplace returned a wrong phase")
    _check(buf == expected, "wrong masked bytes")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            mask(buf, key)

    return run


def _copy(case: Case) -> Runner:
    buf = bytearray(payload(case.size))

    def run(n: int) -> None:
        for _ in repeat(None, n):
            bytes(buf)

    return run


def _apply_mask(case: Case, column: str) -> Runner:
    if column == "copy":
        return _copy(case)
    return checked_apply_mask(case, codec(column).apply_mask)


def checked_apply_mask(case: Case, apply: Callable[[bytes, bytes], bytes]) -> Runner:
    """A runner of ``apply(data, key)`` (any library's apply_mask), checked once."""
    key = _KEY
    data = payload(case.size)
    _check(apply(data, key) == reference_mask(data, key), "wrong masked bytes")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            apply(data, key)

    return run


# ------------------------------------------------------------------- decoding


def _decode(case: Case, column: str) -> Runner:
    role = "server" if case.masked else "client"
    chunks = frame_stream(case.size, case.frames, case.masked)
    decoder = codec(column).FrameDecoder(role, max_frame_size=None)
    frames = [f for chunk in chunks for f in decoder.feed(chunk)]
    _check(len(frames) == case.frames, f"{len(frames)} frames, not {case.frames}")
    _check(bytes(frames[-1].payload) == payload(case.size), "wrong payload")
    feed = decoder.feed

    def run(n: int) -> None:
        for _ in repeat(None, n):
            for chunk in chunks:
                feed(chunk)

    return run


# ------------------------------------------------------------------- encoding


def frame_checker(case: Case) -> Callable[[bytes], None]:
    """A check that an encoded frame of ``case`` has the right header and length."""
    masked = case.masked
    header = reference_frame(case.size, _KEY if masked else None)[:2]
    length = case.size + len(reference_frame(0, None)) + (4 if masked else 0)
    length += 0 if case.size < 126 else (2 if case.size < 65536 else 8)

    def check(frame: bytes) -> None:
        _check(len(frame) == length and frame[:2] == header, "wrong frame header or length")
        if not masked:
            _check(frame == reference_frame(case.size, None), "wrong frame bytes")

    return check


def _encode(case: Case, column: str) -> Runner:
    data = payload(case.size)
    check = frame_checker(case)
    module = codec(column)
    if case.zero_copy:
        encode_header = module.encode_frame_header
        check(b"".join([encode_header(_BINARY, len(data)), data]))

        def run(n: int) -> None:
            for _ in repeat(None, n):
                [encode_header(_BINARY, len(data)), data]  # what writelines gets

        return run
    encode = module.encode_frame
    keys = key_pool()
    check(encode(_BINARY, data, mask=keys[0] if case.masked else None))
    if case.masked:

        def run(n: int) -> None:
            for k in islice(cycle(keys), n):
                encode(_BINARY, data, mask=k)

    else:

        def run(n: int) -> None:
            for _ in repeat(None, n):
                encode(_BINARY, data)

    return run


# ----------------------------------------------------------------------- UTF-8


def _utf8(case: Case, column: str) -> Runner:
    data = utf8_text(case.text, case.size)
    if column == "decode":
        decode = data.decode

        def run(n: int) -> None:
            for _ in repeat(None, n):
                decode("utf-8")

        return run
    validate = codec(column).validate_utf8
    _check(validate(data) is True, "valid UTF-8 rejected")
    _check(validate(data + b"\xff") is False, "invalid UTF-8 accepted")

    def run_validate(n: int) -> None:
        for _ in repeat(None, n):
            validate(data)

    return run_validate


_FACTORIES: dict[str, Callable[[Case, str], Runner]] = {
    "mask_inplace": _mask_inplace,
    "apply_mask": _apply_mask,
    "decode_server": _decode,
    "decode_client": _decode,
    "encode": _encode,
    "utf8": _utf8,
}


def unavailable(case: Case, column: str) -> Optional[str]:
    """Why ``column`` (wsframe's or a reference) cannot run ``case`` here, or None.

    Cheap (imports only, no input data built) and deterministic, so that the
    pyperf script decides the same in every worker process.
    """
    if column in REFERENCES:
        return None
    if column not in _CODECS:
        return "not a column of wsframe's own table"
    return _import_codec(column)[1] or None


def make_runner(case: Case, column: str) -> Runner:
    """A checked runner ``run(n)`` for ``column`` doing ``case``'s job.

    Raises :class:`NotAvailable` (the column cannot do it here: not built, no
    such column) or :class:`CheckFailed` (it gave a wrong result).
    """
    reason = unavailable(case, column)
    if reason is not None:
        raise NotAvailable(reason)
    return _FACTORIES[case.group](case, column)


def libraries() -> dict[str, dict[str, str]]:
    """Column key -> ``{"version": ...}`` or ``{"unavailable": reason}``."""
    from wsframe import __version__

    return {
        column: {"unavailable": reason} if reason else {"version": __version__}
        for column, reason in ((c, _import_codec(c)[1]) for c in WSFRAME)
    }
