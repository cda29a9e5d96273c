"""The sans-I/O WebSocket connection: a state machine with no I/O in it.

A driver (an asyncio protocol, a thread with a socket, a test) feeds received
bytes to :meth:`Connection.receive_data` and the end of the stream to
:meth:`~Connection.receive_eof`, takes the resulting :mod:`events
<wsframe.events>` from :meth:`~Connection.events`, writes
:meth:`~Connection.data_to_send` to the peer, and closes the transport once
:attr:`~Connection.close_transport` is true::

    conn = ServerConnection(subprotocols=["chat"])
    conn.receive_data(sock.recv(65536))
    for event in conn.events():
        if isinstance(event, Request):
            conn.accept()
        elif isinstance(event, TextMessage):
            conn.send_text(event.data)
    sock.sendall(conn.data_to_send())

:class:`ServerConnection` and :class:`ClientConnection` include the opening
handshake; the state then follows the browser's ``readyState``:
CONNECTING (0), OPEN (1), CLOSING (2), CLOSED (3). Their settings are an
:class:`~wsframe.options.Options` record, or its fields as keyword arguments.

The connection is made of parts with one job each: the frame codec
(:mod:`wsframe.codec`), the message assembler (:mod:`wsframe.assembler`),
the rules of close frames (:mod:`wsframe.closing`), a token bucket for the
peer's pings (:mod:`wsframe.ratelimit`) and the opening handshake
(:mod:`wsframe.handshake`). Its frame layer, :class:`Connection`, is
compiled like the codec, with a pure-Python twin (``wsframe._connection_py``)
selected by ``WSFRAME_NO_EXTENSIONS=1``. ``docs/protocol.md`` lists the
public members a driver may use; nothing else is part of the boundary.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import _implementation
from .closing import is_valid_close_code
from .deflate import (
    DeflateParameters,
    PerMessageDeflate,
    accept_deflate_response,
    deflate_offer,
    negotiate_deflate,
)
from .errors import InvalidHandshake, InvalidState, drop_traceback
from .events import Accepted, Rejected, Request
from .handshake import (
    OriginPolicy,
    OriginsLike,
    RequestParser,
    Response,
    ResponseParser,
    accept_response,
    build_request,
    generate_key,
    reject_response,
    select_subprotocol,
    validate_request,
    validate_response,
)
from .handshake import Request as HttpRequest
from .headers import HeadersLike, format_extensions, parse_extensions
from .options import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_PING_BURST,
    DEFAULT_MAX_PING_RATE,
    Options,
)
from .state import State
from .typing import BytesLike
from .uri import WebSocketURI

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._connection_py import Connection
    from .options import OptionsDict
else:
    Connection = _implementation.load("_connection").Connection

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_PING_BURST",
    "DEFAULT_MAX_PING_RATE",
    "ClientConnection",
    "Connection",
    "ServerConnection",
    "State",
    "is_valid_close_code",
]

# Bytes a client may send after its request and before our 101 (see
# ServerConnection._receive_handshake).
_MAX_EARLY_DATA = 64 * 1024

SubprotocolSelector = Callable[[HttpRequest, list[str]], Optional[str]]

_AUTO: Any = object()


class ServerConnection(Connection):
    """The server side of one connection, opening handshake included.

    A :class:`~wsframe.events.Request` event hands the request to the
    application, which answers with :meth:`accept`, :meth:`reject` or
    :meth:`respond`.

    ``options`` (an :class:`~wsframe.options.Options`, or its fields as
    keyword arguments) sets the limits, ``compression`` (accept
    permessage-deflate offers, with ``deflate_options`` as keyword arguments
    of :func:`wsframe.deflate.negotiate_deflate`) and ``subprotocols``
    (supported, in preference order); ``select_subprotocol(request, offered)
    -> str | None`` chooses one instead; ``clock`` measures time for the
    ping rate limit (:func:`time.monotonic` by default).

    ``origins`` (an :class:`~wsframe.handshake.OriginPolicy`, or the
    collection of allowed origins it is built from) refuses WebSocket
    requests from other origins: they are answered 403 and reported as a
    :class:`~wsframe.events.Rejected` event, without a
    :class:`~wsframe.events.Request` event, so the application never sees
    them. Requests that are not WebSocket upgrades (no ``Upgrade:
    websocket``: a page the application serves) are not checked. None (the
    default): no check.
    """

    __slots__ = ("_early", "_parser", "origins", "request", "response", "select_subprotocol")

    def __init__(
        self,
        options: Optional[Options] = None,
        *,
        select_subprotocol: Optional[SubprotocolSelector] = None,
        origins: Optional[OriginsLike] = None,
        clock: Callable[[], float] = time.monotonic,
        **overrides: Unpack[OptionsDict],
    ) -> None:
        options = Options.build(options, **overrides)
        super().__init__(True, options, clock)
        self.select_subprotocol = select_subprotocol
        #: The origin policy (None: every origin is accepted).
        self.origins: Optional[OriginPolicy] = OriginPolicy.build(origins)
        self._parser: Optional[RequestParser] = RequestParser(**options.head_limits(client=False))
        #: The request, once received.
        self.request: Optional[HttpRequest] = None
        #: The response sent, when it refused the upgrade or answered plain
        #: HTTP (a 101 is not kept).
        self.response: Optional[Response] = None
        self._early = bytearray()

    def _receive_handshake(self, data: BytesLike) -> None:
        if self.request is not None:
            # Bytes sent before our answer (RFC 6455 §4.1 says a client waits
            # for it): kept as frames for after the 101, up to a limit.
            if len(self._early) + len(data) > _MAX_EARLY_DATA:
                self._handshake_failed(
                    InvalidHandshake("too much data sent before the handshake completed", 400)
                )
                return
            self._early += data
            return
        assert self._parser is not None
        try:
            request = self._parser.feed(bytes(data))
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        if request is None:
            return
        self.request = request
        self._early += self._parser.leftover
        self._parser = None
        policy = self.origins
        if policy is not None and request.is_websocket:
            # Before the application sees the request (RFC 6455 §4.2.2 item
            # 4, §10.2): another site's page gets a 403, nothing else.
            try:
                policy.check(request)
            except InvalidHandshake as exc:
                self._early = bytearray()
                self._handshake_failed(exc)
                return
        self._emit(Request(request))

    def _handshake_eof(self) -> None:
        self._parser = None

    def _handshake_failed(self, error: InvalidHandshake) -> None:
        status = error.status or 400
        body = error.body or str(error).encode()
        self._answer(reject_response(status, body, error.headers or None))
        self.error = drop_traceback(error)
        self._emit(Rejected(error))

    def _answer(self, response: Response) -> None:
        self.response = response
        self._write(response.serialize())
        self._parser = None
        self.state = State.CLOSED
        self.close_transport = True

    def _pending_request(self) -> HttpRequest:
        if self.state is not State.CONNECTING or self.request is None:
            raise InvalidState("there is no request waiting for an answer")
        return self.request

    def accept(
        self,
        subprotocol: Optional[str] = _AUTO,
        extra_headers: Optional[HeadersLike] = None,
    ) -> None:
        """Accept the WebSocket upgrade: send 101 and open the connection.

        The request is validated first; an invalid one is answered with the
        right error status (and a :class:`~wsframe.events.Rejected` event)
        instead. ``subprotocol`` overrides the automatic choice (it must be one
        the client offered, or None).
        """
        request = self._pending_request()
        try:
            validate_request(request)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        offered = request.subprotocols
        if subprotocol is _AUTO:
            if self.select_subprotocol is not None:
                subprotocol = self.select_subprotocol(request, offered)
            else:
                subprotocol = select_subprotocol(offered, list(self.options.subprotocols))
        if subprotocol is not None and subprotocol not in offered:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
        deflate: Optional[PerMessageDeflate] = None
        extensions: Optional[str] = None
        if self.options.compression == "deflate":
            offers = [params for name, params in request.extensions if name == "permessage-deflate"]
            if offers:
                settings = dict(self.options.deflate_options)
                settings.setdefault("max_message_size", self.max_message_size)
                result = negotiate_deflate(offers, **settings)
                if result is not None:
                    params, deflate = result
                    extensions = format_extensions([("permessage-deflate", params)])
        response = accept_response(
            request, subprotocol=subprotocol, extensions=extensions, extra_headers=extra_headers
        )
        # The 101 response is not kept: a server holds many connections.
        self.subprotocol = subprotocol
        self._write(response.serialize())
        self._open(deflate)
        early = bytes(self._early)
        self._early = bytearray()
        if early:
            self.receive_data(early)

    def reject(
        self, status: int = 403, body: Union[str, bytes] = "", headers: Optional[HeadersLike] = None
    ) -> None:
        """Refuse the request with an HTTP error ``status`` and close."""
        self._pending_request()
        self._answer(reject_response(status, body or _status_text(status), headers))

    def respond(
        self, status: int, body: Union[str, bytes] = b"", headers: Optional[HeadersLike] = None
    ) -> None:
        """Answer a plain HTTP request (e.g. serve a page), then close."""
        self._pending_request()
        self._answer(reject_response(status, body, headers))


def _status_text(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}\n"
    except ValueError:
        return f"{status}\n"


class ClientConnection(Connection):
    """The client side of one connection, opening handshake included.

    The request is ready in :meth:`data_to_send` from the start; an
    :class:`~wsframe.events.Accepted` or :class:`~wsframe.events.Rejected`
    event tells how the server answered.

    ``options`` (an :class:`~wsframe.options.Options`, or its fields as
    keyword arguments) sets the limits, ``compression`` (offer
    permessage-deflate, with ``deflate_options`` as keyword arguments of
    :func:`wsframe.deflate.deflate_offer`) and ``subprotocols`` (offered);
    ``origin`` and ``extra_headers`` go into the request; ``clock`` as for
    :class:`ServerConnection`.
    """

    __slots__ = ("_offer", "_parser", "request", "response")

    def __init__(
        self,
        uri: Union[str, WebSocketURI],
        options: Optional[Options] = None,
        *,
        origin: Optional[str] = None,
        extra_headers: Optional[HeadersLike] = None,
        clock: Callable[[], float] = time.monotonic,
        **overrides: Unpack[OptionsDict],
    ) -> None:
        options = Options.build(options, **overrides)
        super().__init__(False, options, clock)
        self._offer: Optional[DeflateParameters] = None
        extensions: Optional[str] = None
        if options.compression == "deflate":
            name, params = deflate_offer(**options.deflate_options)
            self._offer = DeflateParameters.from_params(params, is_offer=True)
            extensions = format_extensions([(name, params)])
        #: The request sent.
        self.request = build_request(
            uri,
            key=generate_key(),
            origin=origin,
            subprotocols=list(options.subprotocols) or None,
            extensions=extensions,
            extra_headers=extra_headers,
        )
        #: The server's response, once received.
        self.response: Optional[Response] = None
        self._parser: Optional[ResponseParser] = ResponseParser(**options.head_limits(client=True))
        self._write(self.request.serialize())

    def _receive_handshake(self, data: BytesLike) -> None:
        assert self._parser is not None
        try:
            response = self._parser.feed(bytes(data))
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        if response is not None:
            self._handshake_complete(response)

    def _handshake_eof(self) -> None:
        parser = self._parser
        if parser is None:
            return
        try:
            response = parser.feed_eof()
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self._handshake_complete(response)

    def _handshake_complete(self, response: Response) -> None:
        parser = self._parser
        assert parser is not None
        self._parser = None
        self.response = response
        offered = ["permessage-deflate"] if self._offer is not None else []
        try:
            subprotocol = validate_response(
                self.request,
                response,
                subprotocols=list(self.options.subprotocols),
                offered_extensions=offered,
            )
            deflate: Optional[PerMessageDeflate] = None
            try:
                agreed = parse_extensions(response.headers.get_all("Sec-WebSocket-Extensions"))
            except ValueError as exc:
                raise InvalidHandshake(
                    f"invalid Sec-WebSocket-Extensions: {exc}",
                    response.status,
                    response.headers,
                    response.body,
                ) from None
            for name, params in agreed:
                if name != "permessage-deflate" or self._offer is None or deflate is not None:
                    raise InvalidHandshake(
                        f"the server agreed to an extension not offered: {name}",
                        response.status,
                        response.headers,
                        response.body,
                    )
                try:
                    deflate = accept_deflate_response(
                        self._offer, params, max_message_size=self.max_message_size
                    )
                except InvalidHandshake as exc:
                    raise InvalidHandshake(
                        str(exc), response.status, response.headers, response.body
                    ) from None
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self.subprotocol = subprotocol
        self._open(deflate)
        self._emit(Accepted(response, subprotocol, deflate))
        leftover = parser.leftover
        if leftover:
            self.receive_data(leftover)

    def _handshake_failed(self, error: InvalidHandshake) -> None:
        self._parser = None
        self.error = drop_traceback(error)
        self.state = State.CLOSED
        self.close_transport = True
        self._emit(Rejected(error))
