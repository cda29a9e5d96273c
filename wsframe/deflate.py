"""permessage-deflate (RFC 7692): parameters, negotiation and the per-message codec.

Three layers, all free of I/O:

* :class:`DeflateParameters` — the four extension parameters, parsed from and
  formatted to the ``(name, value)`` pairs of a ``Sec-WebSocket-Extensions``
  item (see :func:`wsframe.headers.parse_extensions`).
* Negotiation — the client builds an offer with :func:`deflate_offer` (or
  ``DeflateParameters(...).to_params()``) and checks the server's answer with
  :func:`accept_deflate_response`; the server picks the first acceptable offer
  with :func:`negotiate_deflate`.
* :class:`PerMessageDeflate` — the compression state of one connection after
  negotiation: :meth:`~PerMessageDeflate.compress` /
  :meth:`~PerMessageDeflate.compress_fragment` on send,
  :meth:`~PerMessageDeflate.decompress` on receive, with context takeover,
  window sizes and the inflated-size limit applied as agreed.

Only the standard library's :mod:`zlib` is used.

About window size 8: zlib refuses to *compress* with a 256-byte window
(``compressobj(wbits=-8)`` raises, and older zlib silently used 512 bytes), so
a wsframe endpoint never promises to compress with 8 bits: the server declines
an offer that would force ``server_max_window_bits=8`` on it, and the client
rejects a response carrying ``client_max_window_bits=8``. *Decompressing* a
peer's 8-bit stream is fine: the decompressor always uses at least 9 bits,
which also tolerates peers whose zlib silently used 512 bytes.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable
from typing import Literal, NoReturn, Optional, Union

from .counters import Counters, payload_size
from .errors import InvalidHandshake, MessageTooBig, ProtocolError, drop_traceback
from .typing import BytesLike

__all__ = [
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MEMORY_LEVEL",
    "EXTENSION_NAME",
    "DeflateParameters",
    "PerMessageDeflate",
    "accept_deflate_response",
    "deflate_offer",
    "negotiate_deflate",
]

#: The extension token in ``Sec-WebSocket-Extensions``.
EXTENSION_NAME = "permessage-deflate"

#: Default limit on the inflated size of one message (1 MiB).
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

#: Default zlib compression level. Measured on chat/feed-like JSON messages of
#: 0.2-30 KB with context takeover: level 5 costs about half the CPU time of
#: zlib's default 6 for output only 3-7 % larger; level 1 is faster still but
#: about 35 % larger. Servers compress on every send, so 5 is the balance.
DEFAULT_COMPRESS_LEVEL = 5

#: Default zlib ``memLevel`` (zlib's own default). A compressor with a 15-bit
#: window takes about 256 KiB at 8 and about 144 KiB at 5; pass a lower
#: ``memory_level`` to trade a little speed/ratio for memory per connection.
DEFAULT_MEMORY_LEVEL = 8

Param = tuple[str, Optional[str]]
"""One extension parameter as it appears in the header: ``(name, value or None)``."""


_TAIL = b"\x00\x00\xff\xff"
_TAIL_LEN = len(_TAIL)
# Below this size, a final fragment is joined with the tail and inflated in one
# call; above it, two calls are cheaper than copying the payload.
_JOIN_TAIL_BELOW = 4096
_SYNC_FLUSH = zlib.Z_SYNC_FLUSH
_DEFLATED = zlib.DEFLATED
# The most zlib is asked to inflate in one call when more may come out (and the
# input is smaller). zlib's output grows through buffers of 32 KiB, 64 KiB, 256
# KiB, 1, 4, 8, 16 and 32 MiB before they are copied into the result; freeing
# buffers that large raises glibc's mmap and trim thresholds to tens of
# megabytes, and that much freed heap then stays in the process. A compression
# bomb makes zlib produce the whole limit (64 MiB on the echo server) from a
# few kilobytes: asked for 1 MiB at a time, the buffers stay small.
_STEP = 1 << 20

# The only accepted spellings of a window size: RFC 7692's ABNF
# ``%x38-39 / "1" %x30-35`` — no sign, no leading zero, no whitespace.
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}

_SERVER_NO_CONTEXT_TAKEOVER = "server_no_context_takeover"
_CLIENT_NO_CONTEXT_TAKEOVER = "client_no_context_takeover"
_SERVER_MAX_WINDOW_BITS = "server_max_window_bits"
_CLIENT_MAX_WINDOW_BITS = "client_max_window_bits"


def _check_bits(name: str, value: object, *, allow_bare: bool = False) -> None:
    if value is None or (allow_bare and value is True):
        return
    if type(value) is not int or not 8 <= value <= 15:
        raise ValueError(f"{name} must be an integer from 8 to 15, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DeflateParameters:
    """The permessage-deflate parameters of one offer, response or agreement.

    ``server_max_window_bits`` / ``client_max_window_bits`` are 8-15, or
    ``None`` when the parameter is absent; ``client_max_window_bits=True``
    stands for the bare parameter without a value, which only a client's offer
    may carry ("I support the parameter, choose a value"). Construction
    validates the types and ranges and raises :class:`ValueError`.

    Equality and hashing are by value (``True`` is distinct from ``1`` only in
    that ``1`` is out of range and rejected).
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: Optional[int] = None
    client_max_window_bits: Union[int, Literal[True], None] = None

    def __post_init__(self) -> None:
        if type(self.server_no_context_takeover) is not bool:
            raise ValueError("server_no_context_takeover must be a bool")
        if type(self.client_no_context_takeover) is not bool:
            raise ValueError("client_no_context_takeover must be a bool")
        _check_bits(_SERVER_MAX_WINDOW_BITS, self.server_max_window_bits)
        _check_bits(_CLIENT_MAX_WINDOW_BITS, self.client_max_window_bits, allow_bare=True)

    def to_params(self) -> list[Param]:
        """The parameters as ``(name, value)`` pairs for the header, in a fixed order.

        Order: ``server_no_context_takeover``, ``client_no_context_takeover``,
        ``server_max_window_bits``, ``client_max_window_bits``; absent ones are
        omitted, flags and the bare ``client_max_window_bits`` have value ``None``.
        """
        params: list[Param] = []
        if self.server_no_context_takeover:
            params.append((_SERVER_NO_CONTEXT_TAKEOVER, None))
        if self.client_no_context_takeover:
            params.append((_CLIENT_NO_CONTEXT_TAKEOVER, None))
        if self.server_max_window_bits is not None:
            params.append((_SERVER_MAX_WINDOW_BITS, str(self.server_max_window_bits)))
        cmwb = self.client_max_window_bits
        if cmwb is True:
            params.append((_CLIENT_MAX_WINDOW_BITS, None))
        elif cmwb is not None:
            params.append((_CLIENT_MAX_WINDOW_BITS, str(cmwb)))
        return params

    @classmethod
    def from_params(cls, params: Iterable[Param], *, is_offer: bool) -> DeflateParameters:
        """Parse the parameters of one ``permessage-deflate`` item.

        ``params`` are ``(name, value)`` pairs as produced by
        :func:`wsframe.headers.parse_extensions` (quoted-string values already
        unquoted; names compared ASCII-case-insensitively). ``is_offer``
        selects the client-offer rules (bare ``client_max_window_bits``
        allowed) over the server-response rules.

        Raises :class:`ValueError` — and nothing else, whatever the input — on
        an unknown or duplicated parameter, a value on a
        ``*_no_context_takeover`` flag, a missing value on
        ``server_max_window_bits`` (or on ``client_max_window_bits`` in a
        response), or a window size that is not exactly one of ``8`` ... ``15``
        (no sign, leading zero, whitespace or non-ASCII digit).
        """
        try:
            items = list(params)
        except Exception as exc:  # not iterable, or an iterator that fails
            raise ValueError("parameters must be a list of (name, value) pairs") from exc
        snct = cnct = False
        smwb: Optional[int] = None
        cmwb: Union[int, Literal[True], None] = None
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValueError(f"invalid parameter {item!r}: expected a (name, value) pair")
            name, value = item
            if not isinstance(name, str):
                raise ValueError(f"invalid parameter name {name!r}")
            if value is not None and not isinstance(value, str):
                raise ValueError(f"invalid value {value!r} for parameter {name!r}")
            if name.isascii():
                name = name.lower()
            if name in seen:
                raise ValueError(f"duplicate parameter {name}")
            seen.add(name)
            if name in (_SERVER_NO_CONTEXT_TAKEOVER, _CLIENT_NO_CONTEXT_TAKEOVER):
                if value is not None:
                    raise ValueError(f"parameter {name} takes no value, got {value!r}")
                if name == _SERVER_NO_CONTEXT_TAKEOVER:
                    snct = True
                else:
                    cnct = True
            elif name == _SERVER_MAX_WINDOW_BITS:
                smwb = _parse_bits(name, value)
            elif name == _CLIENT_MAX_WINDOW_BITS:
                if value is None:
                    if not is_offer:
                        raise ValueError(f"parameter {name} needs a value in a response")
                    cmwb = True
                else:
                    cmwb = _parse_bits(name, value)
            else:
                raise ValueError(f"unknown parameter {name!r}")
        return cls(snct, cnct, smwb, cmwb)


def _parse_bits(name: str, value: Optional[str]) -> int:
    if value is None:
        raise ValueError(f"parameter {name} needs a value from 8 to 15")
    bits = _WINDOW_BITS.get(value)
    if bits is None:
        raise ValueError(f"invalid value {value!r} for {name}: expected 8 to 15")
    return bits


class PerMessageDeflate:
    """Compression state of one connection after negotiation.

    ``params`` is the agreement (see :func:`negotiate_deflate` and
    :func:`accept_deflate_response`); ``is_server`` tells which side we are:
    the server compresses under the ``server_*`` parameters and decompresses
    under the ``client_*`` ones, the client the other way round. A bare
    ``client_max_window_bits=True`` is treated as absent (15 bits).

    * Our compressor uses our side's ``*_max_window_bits`` (default 15) and is
      reset after every message if our side's ``*_no_context_takeover`` was
      agreed (it is then dropped between messages, so an idle connection holds
      no compressor memory).
    * Our decompressor uses the peer's ``*_max_window_bits`` (default 15;
      never below 9, see the module docstring) and is reset after every
      message if the peer's ``*_no_context_takeover`` was agreed.
    * ``max_message_size`` bounds the inflated size of one message across its
      fragments (``None``: unlimited); inflation stops at the limit, so the
      excess is never produced.

    Raises :class:`ValueError` for an agreement that makes us compress with
    8 bits, a negative ``max_message_size``, a ``compress_level`` outside
    -1..9 or a ``memory_level`` outside 1..9.

    The RSV1 bit is the connection's business: set it on the first frame of a
    message whose payload came from :meth:`compress` (or the first
    :meth:`compress_fragment` call), and pass every frame of a message received
    with RSV1 on its first frame to :meth:`decompress`.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "_remaining",
        "_wbits",
        "compress_level",
        "counters",
        "is_server",
        "local_max_window_bits",
        "local_no_context_takeover",
        "max_message_size",
        "memory_level",
        "params",
        "remote_max_window_bits",
        "remote_no_context_takeover",
    )

    def __init__(
        self,
        params: DeflateParameters,
        *,
        is_server: bool,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
        memory_level: int = DEFAULT_MEMORY_LEVEL,
    ) -> None:
        if not isinstance(params, DeflateParameters):
            raise TypeError("params must be a DeflateParameters")
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 or None")
        if not -1 <= compress_level <= 9:
            raise ValueError("compress_level must be from -1 to 9")
        if not 1 <= memory_level <= 9:
            raise ValueError("memory_level must be from 1 to 9")
        server_bits = params.server_max_window_bits or 15
        cmwb = params.client_max_window_bits
        client_bits = 15 if cmwb is None or cmwb is True else cmwb
        if is_server:
            local_bits, remote_bits = server_bits, client_bits
            local_nct = params.server_no_context_takeover
            remote_nct = params.client_no_context_takeover
        else:
            local_bits, remote_bits = client_bits, server_bits
            local_nct = params.client_no_context_takeover
            remote_nct = params.server_no_context_takeover
        if local_bits < 9:
            raise ValueError("zlib cannot compress with an 8-bit window (256 bytes)")
        #: The agreed parameters.
        self.params: DeflateParameters = params
        self.is_server: bool = is_server
        self.max_message_size: Optional[int] = max_message_size
        self.compress_level: int = compress_level
        self.memory_level: int = memory_level
        #: Window bits of our compressor.
        self.local_max_window_bits: int = local_bits
        #: Window bits the peer compresses with (our decompressor uses at least 9).
        self.remote_max_window_bits: int = remote_bits
        #: Whether our compressor is reset after each message.
        self.local_no_context_takeover: bool = local_nct
        #: Whether our decompressor is reset after each message.
        self.remote_no_context_takeover: bool = remote_nct
        self._compressor: Optional[zlib._Compress] = None
        self._decompressor: Optional[zlib._Decompress] = None
        self._wbits = -max(remote_bits, 9)
        # Inflated bytes still allowed in the message being received.
        self._remaining: Optional[int] = max_message_size
        #: Where the bytes compressed and inflated are counted (the
        #: connection's :class:`~wsframe.stats.Counters`), or None.
        self.counters: Optional[Counters] = None

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate({self.params!r}, is_server={self.is_server}, "
            f"max_message_size={self.max_message_size})"
        )

    # -- send ---------------------------------------------------------------

    def compress(self, data: BytesLike) -> bytes:
        """Compress a whole message; the payload of a frame with RSV1 set.

        Deflate with ``Z_SYNC_FLUSH``, then the trailing ``00 00 ff ff`` is
        removed (RFC 7692 §7.2.1). An empty message gives ``b"\\x00"``.
        """
        return self.compress_fragment(data, True)

    def compress_fragment(self, data: BytesLike, final: bool) -> bytes:
        """Compress one fragment of a message sent in pieces.

        Call it for every fragment in order, with ``final=True`` for the last
        one; only the first frame gets RSV1. Every fragment is sync-flushed, so
        the peer can inflate it as soon as it arrives; the ``00 00 ff ff`` tail
        is removed only from the final fragment (which may then be empty).
        After the final fragment the compressor is reset if our side agreed to
        no context takeover. Do not interleave two messages.
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.compress_level, _DEFLATED, -self.local_max_window_bits, self.memory_level
            )
        out = compressor.compress(data) + compressor.flush(_SYNC_FLUSH)
        counters = self.counters
        if counters is not None:
            counters.uncompressed_bytes_sent += payload_size(data)
            counters.compressed_bytes_sent += len(out) - (_TAIL_LEN if final else 0)
        if final:
            if self.local_no_context_takeover:
                self._compressor = None
            if not out.endswith(_TAIL):  # a sync flush always ends with it
                raise RuntimeError("zlib sync flush did not end with 00 00 ff ff")
            return out[:-_TAIL_LEN]
        return out

    # -- receive ------------------------------------------------------------

    def decompress(self, data: BytesLike, final: bool) -> bytes:
        """Inflate one received frame's payload of a compressed message.

        Pass the payload of every frame of the message (the continuation
        frames carry no RSV1 but belong to it), with ``final=True`` for the
        frame with FIN; ``00 00 ff ff`` is appended on final (RFC 7692 §7.2.2).
        Returns the bytes inflated so far (possibly empty for a non-final frame).

        Raises :class:`~wsframe.errors.MessageTooBig` (1009) as soon as the
        message would inflate past ``max_message_size`` — zlib is never asked
        for more than the remaining budget plus one byte — and
        :class:`~wsframe.errors.ProtocolError` (1002) for corrupt deflate data.
        After either error the state of the message is dropped; the
        connection is expected to fail. The error's traceback starts in this
        method: keeping the error does not keep the output inflated so far.

        A peer may end its data with a DEFLATE block with BFINAL set
        (RFC 7692 §7.2.3.3); whatever follows the end of that stream is
        inflated by a fresh decompressor, and the next message starts fresh
        too (data from zlib-based peers doing this never refers back across
        the end of a stream).
        """
        out = self._decompress(data, final)
        counters = self.counters
        if counters is not None:
            counters.compressed_bytes_received += len(data)
            counters.decompressed_bytes_received += len(out)
        return out

    def _decompress(self, data: BytesLike, final: bool) -> bytes:
        try:
            if final and len(data) < _JOIN_TAIL_BELOW:
                # Fast path, most messages: one zlib call.
                decompressor = self._decompressor
                if decompressor is None:
                    decompressor = self._decompressor = zlib.decompressobj(self._wbits)
                remaining = self._remaining
                try:
                    if remaining is None:
                        out: bytes = decompressor.decompress(bytes(data) + _TAIL)
                    else:
                        if remaining < _STEP:
                            out = decompressor.decompress(bytes(data) + _TAIL, remaining + 1)
                        else:
                            out = decompressor.decompress(bytes(data) + _TAIL, _STEP)
                            if len(out) == _STEP:
                                out = _inflate_on(decompressor, out, _STEP, remaining + 1)
                        if len(out) > remaining:
                            self._too_big()
                except zlib.error as exc:
                    self._corrupt(exc)
                if decompressor.eof:
                    if remaining is not None:
                        self._remaining = remaining - len(out)
                    out = self._after_end_of_stream(decompressor, out)
                # The message is complete: the next one has the whole budget (the
                # frames before this one, if any, used part of it).
                self._remaining = self.max_message_size
                if self.remote_no_context_takeover:
                    self._decompressor = None
                return out
            out = self._inflate(data)
            if final:
                more = self._inflate(_TAIL)
                if more:
                    out += more
                self._remaining = self.max_message_size
                if self.remote_no_context_takeover:
                    self._decompressor = None
            return out
        except ProtocolError as exc:
            # Raised again with a traceback that starts here: the frames it
            # went through hold what was inflated (up to the limit: the
            # megabytes of a compression bomb), and whoever keeps the error
            # (e.g. as a connection's failure) would keep them too. Its cause,
            # if any (the zlib error), stays.
            out = b""
            raise drop_traceback(exc) from exc.__cause__

    def _inflate(self, data: BytesLike) -> bytes:
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(self._wbits)
        remaining = self._remaining
        try:
            if remaining is None:
                out: bytes = decompressor.decompress(data)
            else:
                step = max(_STEP, len(data))
                if remaining < step:
                    out = decompressor.decompress(data, remaining + 1)
                else:
                    out = decompressor.decompress(data, step)
                    if len(out) == step:
                        out = _inflate_on(decompressor, out, step, remaining + 1)
                if len(out) > remaining:
                    self._too_big()
                self._remaining = remaining - len(out)
        except zlib.error as exc:
            self._corrupt(exc)
        if decompressor.eof:
            out = self._after_end_of_stream(decompressor, out)
        return out

    def _after_end_of_stream(self, decompressor: zlib._Decompress, out: bytes) -> bytes:
        # The peer ended a DEFLATE stream (BFINAL); zlib cannot go on with it.
        rest = decompressor.unused_data
        self._decompressor = None
        if rest:
            more = self._inflate(rest)
            if more:
                out += more
        return out

    def _corrupt(self, exc: zlib.error) -> NoReturn:
        self._decompressor = None
        self._remaining = self.max_message_size
        raise ProtocolError(f"invalid permessage-deflate data: {exc}") from exc

    def _too_big(self) -> NoReturn:
        limit = self.max_message_size
        self._decompressor = None
        self._remaining = limit
        raise MessageTooBig(f"compressed message inflates to more than {limit} bytes")


def _inflate_on(decompressor: zlib._Decompress, first: bytes, step: int, limit: int) -> bytes:
    """Go on inflating after ``first`` (``step`` bytes: all that was asked), ``step``
    bytes at a time, up to ``limit`` bytes in all, the end of the input or the
    end of the stream; return everything (``first`` included).

    What is left then is where a single call asking for ``limit`` bytes would
    have left it: in ``unconsumed_tail``, in ``unused_data`` after the end of
    the stream, or pending in zlib's state.
    """
    pieces = [first]
    left = limit - step
    got = asked = step
    while got == asked and left > 0 and not decompressor.eof:
        asked = min(left, step)
        piece = decompressor.decompress(decompressor.unconsumed_tail, asked)
        got = len(piece)
        if got:
            pieces.append(piece)
            left -= got
    return b"".join(pieces)


# -- negotiation -----------------------------------------------------------------


def deflate_offer(
    *,
    client_max_window_bits: Union[int, Literal[True], None] = True,
    server_max_window_bits: Optional[int] = None,
    client_no_context_takeover: bool = False,
    server_no_context_takeover: bool = False,
) -> tuple[str, list[Param]]:
    """The client's offer: ``("permessage-deflate", params)`` for ``Sec-WebSocket-Extensions``.

    By default a bare ``client_max_window_bits`` ("the server may choose our
    window"). ``client_max_window_bits`` must be 9-15, ``True`` or ``None``
    (we cannot compress with 8 bits); ``server_max_window_bits`` 8-15 or
    ``None``. Raises :class:`ValueError` otherwise. Keep
    ``DeflateParameters.from_params(params, is_offer=True)`` (or build the
    :class:`DeflateParameters` yourself and call ``to_params()``) to pass to
    :func:`accept_deflate_response`.
    """
    offer = DeflateParameters(
        server_no_context_takeover=server_no_context_takeover,
        client_no_context_takeover=client_no_context_takeover,
        server_max_window_bits=server_max_window_bits,
        client_max_window_bits=client_max_window_bits,
    )
    if client_max_window_bits == 8:
        raise ValueError("client_max_window_bits=8: zlib cannot compress with an 8-bit window")
    return EXTENSION_NAME, offer.to_params()


def accept_deflate_response(
    offer: DeflateParameters,
    params: Iterable[Param],
    *,
    max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
    memory_level: int = DEFAULT_MEMORY_LEVEL,
) -> PerMessageDeflate:
    """Client side: check the server's ``permessage-deflate`` response, return the engine.

    Raises :class:`~wsframe.errors.InvalidHandshake` (no status: the caller
    may re-raise with the response's status/headers/body) if the response
    does not parse (unknown, duplicate or malformed parameter, bare
    ``client_max_window_bits``) or does not fit the offer (RFC 7692 §7.1):
    ``server_no_context_takeover`` offered but missing;
    ``server_max_window_bits`` offered but missing or larger than offered;
    ``client_max_window_bits`` present but not offered, larger than the
    offered value, or 8 (we cannot compress with 8 bits).

    The engine's ``params`` are the agreement, which is the response except
    that what the client announced in its offer still binds it:
    ``client_no_context_takeover`` offered → kept, ``client_max_window_bits=N``
    offered and absent from the response → ``N``.
    """
    try:
        resp = DeflateParameters.from_params(params, is_offer=False)
    except ValueError as exc:
        raise InvalidHandshake(f"invalid permessage-deflate response: {exc}") from exc
    if offer.server_no_context_takeover and not resp.server_no_context_takeover:
        raise InvalidHandshake(
            "permessage-deflate response lacks the server_no_context_takeover we offered"
        )
    offered_smwb = offer.server_max_window_bits
    if offered_smwb is not None:
        if resp.server_max_window_bits is None:
            raise InvalidHandshake(
                "permessage-deflate response lacks the server_max_window_bits we offered"
            )
        if resp.server_max_window_bits > offered_smwb:
            raise InvalidHandshake(
                f"permessage-deflate response has server_max_window_bits="
                f"{resp.server_max_window_bits}, more than the {offered_smwb} we offered"
            )
    offered_cmwb = offer.client_max_window_bits
    cmwb = resp.client_max_window_bits
    if cmwb is not None:
        if offered_cmwb is None:
            raise InvalidHandshake(
                "permessage-deflate response has client_max_window_bits, which we did not offer"
            )
        if offered_cmwb is not True and cmwb > offered_cmwb:
            raise InvalidHandshake(
                f"permessage-deflate response has client_max_window_bits={cmwb}, "
                f"more than the {offered_cmwb} we offered"
            )
        if cmwb == 8:
            raise InvalidHandshake(
                "permessage-deflate response has client_max_window_bits=8, "
                "but zlib cannot compress with an 8-bit window"
            )
    elif offered_cmwb is not True:
        cmwb = offered_cmwb
    agreed = DeflateParameters(
        server_no_context_takeover=resp.server_no_context_takeover,
        client_no_context_takeover=(
            resp.client_no_context_takeover or offer.client_no_context_takeover
        ),
        server_max_window_bits=resp.server_max_window_bits,
        client_max_window_bits=cmwb,
    )
    return PerMessageDeflate(
        agreed,
        is_server=False,
        max_message_size=max_message_size,
        compress_level=compress_level,
        memory_level=memory_level,
    )


def negotiate_deflate(
    offers: Iterable[Iterable[Param]],
    *,
    server_no_context_takeover: bool = False,
    client_no_context_takeover: bool = False,
    server_max_window_bits: Optional[int] = None,
    client_max_window_bits: Optional[int] = None,
    max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
    memory_level: int = DEFAULT_MEMORY_LEVEL,
) -> Optional[tuple[list[Param], PerMessageDeflate]]:
    """Server side: accept the first acceptable offer, in the client's order.

    ``offers`` are the parameter lists of every ``permessage-deflate`` item of
    the request, in order. An offer that does not parse (see
    :meth:`DeflateParameters.from_params`) or would force us to compress with
    an 8-bit window is declined and the next one tried (RFC 7692 §5). Returns
    ``(response_params, engine)``, or ``None`` when no offer is acceptable
    (then answer without the extension: no compression).

    The keyword arguments are the server's preferences; they are applied
    where the RFC lets the server apply them and are never a reason to decline:

    * ``server_no_context_takeover`` — included if wanted or offered.
    * ``client_no_context_takeover`` — included if wanted or offered (taking
      the client's hint lets us drop the decompressor between messages).
    * ``server_max_window_bits`` (9-15) — our compression window; the response
      carries ``min(preference, offered)`` when the client offered a limit,
      the preference otherwise.
    * ``client_max_window_bits`` (9-15) — asked of the client only if it
      offered the parameter: ``min(preference, offered value)``, or the
      preference for a bare offer; an offered value is echoed even without a
      preference (so our decompressor can use the smaller window).

    Raises :class:`ValueError` for invalid preferences (8 bits included: a
    zlib peer cannot honour it and we cannot compress with it).
    """
    for name, bits in (
        (_SERVER_MAX_WINDOW_BITS, server_max_window_bits),
        (_CLIENT_MAX_WINDOW_BITS, client_max_window_bits),
    ):
        if bits is not None and (type(bits) is not int or not 9 <= bits <= 15):
            raise ValueError(f"{name} must be from 9 to 15 or None, got {bits!r}")
    for params in offers:
        try:
            offer = DeflateParameters.from_params(params, is_offer=True)
        except ValueError:
            continue
        smwb = offer.server_max_window_bits
        if smwb is None:
            smwb = server_max_window_bits
        elif server_max_window_bits is not None:
            smwb = min(smwb, server_max_window_bits)
        if smwb == 8:
            continue  # we would have to compress with 256 bytes of window
        offered_cmwb = offer.client_max_window_bits
        cmwb: Optional[int]
        if offered_cmwb is None:
            cmwb = None
        elif offered_cmwb is True:
            cmwb = client_max_window_bits
        elif client_max_window_bits is None:
            cmwb = offered_cmwb
        else:
            cmwb = min(offered_cmwb, client_max_window_bits)
        response = DeflateParameters(
            server_no_context_takeover=(
                server_no_context_takeover or offer.server_no_context_takeover
            ),
            client_no_context_takeover=(
                client_no_context_takeover or offer.client_no_context_takeover
            ),
            server_max_window_bits=smwb,
            client_max_window_bits=cmwb,
        )
        engine = PerMessageDeflate(
            response,
            is_server=True,
            max_message_size=max_message_size,
            compress_level=compress_level,
            memory_level=memory_level,
        )
        return response.to_params(), engine
    return None
