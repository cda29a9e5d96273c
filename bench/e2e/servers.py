"""The servers of the end-to-end benchmarks, one per process.

    python bench/e2e/servers.py KIND [--loop asyncio|uvloop] [--mode echo|broadcast]
                                     [--defaults] [--port 0] [--tls CERT,KEY] [--aiofastnet]

KIND is ``wsframe``, ``picows``, ``aiohttp``, ``websockets`` or ``raw`` (an
asyncio Protocol echoing raw TCP bytes back: the ceiling, and the "bare TCP"
row of the memory benchmark). Every server listens on 127.0.0.1 only, prints
``READY <port>`` on stdout once it accepts connections, and exits on SIGTERM
or SIGINT.

``--mode echo`` echoes every message (binary as binary, text as text).
``--mode broadcast`` (wsframe, picows, websockets): a binary message from a
client is sent to every *other* connection, then the sender gets a text reply
``"<t0> <t1> <sent>"``: ``time.monotonic_ns()`` just before and just after the
broadcast call, and how many connections it was sent to.

``--tls CERT,KEY`` serves TLS (wss://) with that certificate chain and key
(``raw``, ``wsframe`` and ``picows``); ``--aiofastnet`` creates the listening
server with aiofastnet's transports instead of the event loop's (picows'
``use_aiofastnet``, wsframe's ``serve(create_server=...)``).

Without ``--defaults`` the servers run as the echo benchmark wants them:
compression refused and no heartbeat pings. With ``--defaults`` each library
keeps its own defaults (the memory benchmark), apart from message size limits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
import time
from typing import Any

HOST = "127.0.0.1"
MAX_MESSAGE = 64 << 20


def raise_nofile() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (1000+ sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def server_ssl(args: argparse.Namespace) -> Any:
    """The server's SSLContext from ``--tls CERT,KEY``, or None."""
    if not args.tls:
        return None
    import ssl

    cert, key = args.tls.split(",")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


# ----------------------------------------------------------------- servers


async def start_raw(args: argparse.Namespace) -> Any:
    class RawEcho(asyncio.Protocol):
        __slots__ = ("transport",)

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    loop = asyncio.get_running_loop()
    if args.aiofastnet:
        import aiofastnet

        server = await aiofastnet.create_server(
            loop, RawEcho, HOST, args.port, backlog=4096, ssl=server_ssl(args)
        )
    else:
        server = await loop.create_server(
            RawEcho, HOST, args.port, backlog=4096, ssl=server_ssl(args)
        )
    return server, server.sockets[0].getsockname()[1]


async def start_wsframe(args: argparse.Namespace) -> Any:
    from wsframe.asyncio import Listener, broadcast, serve
    from wsframe.echo import ECHO_MAX_MESSAGE_SIZE, EchoListener

    options: dict[str, Any] = {
        "max_message_size": ECHO_MAX_MESSAGE_SIZE,
        "backlog": 4096,
        "ssl": server_ssl(args),
    }
    if args.aiofastnet:
        import aiofastnet

        options["create_server"] = aiofastnet.create_server
    if not args.defaults:
        options.update(compression=None, ping_interval=None)
    holder: dict[str, Any] = {}

    class BroadcastListener(Listener):
        def on_message(self, ws: Any, message: Any) -> None:
            targets = [other for other in holder["server"].websockets if other is not ws]
            t0 = time.monotonic_ns()
            result = broadcast(targets, message)
            t1 = time.monotonic_ns()
            ws.send_nowait(f"{t0} {t1} {result.sent}")

    listener = BroadcastListener if args.mode == "broadcast" else EchoListener
    server = await serve(listener, HOST, args.port, **options)
    holder["server"] = server
    return server, server.port


async def start_picows(args: argparse.Namespace) -> Any:
    from picows import WSListener, WSMsgType, ws_create_server

    connected: set[Any] = set()

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind in (WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION):
                transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)
            elif kind == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    class Broadcast(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            connected.add(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            connected.discard(transport)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.BINARY:
                payload = frame.get_payload_as_bytes()
                targets = [other for other in connected if other is not transport]
                t0 = time.monotonic_ns()
                # picows has no broadcast helper: one send (one frame) per connection.
                for other in targets:
                    other.send(WSMsgType.BINARY, payload)
                t1 = time.monotonic_ns()
                transport.send(WSMsgType.TEXT, f"{t0} {t1} {len(targets)}".encode())
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    listener = Broadcast if args.mode == "broadcast" else Echo
    server = await ws_create_server(
        lambda request: listener(),
        HOST,
        args.port,
        max_frame_size=MAX_MESSAGE,
        backlog=4096,
        ssl=server_ssl(args),
        use_aiofastnet=args.aiofastnet,
    )
    return server, server.sockets[0].getsockname()[1]


async def start_aiohttp(args: argparse.Namespace) -> Any:
    from aiohttp import WSMsgType, web

    compress = bool(args.defaults)

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=compress)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def start_websockets(args: argparse.Namespace) -> Any:
    import websockets
    from websockets.asyncio.server import serve

    options: dict[str, Any] = {"max_size": MAX_MESSAGE, "backlog": 4096}
    if not args.defaults:
        options.update(compression=None, ping_interval=None)

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def relay(ws: Any) -> None:
        async for message in ws:
            targets = [other for other in server.connections if other is not ws]
            t0 = time.monotonic_ns()
            websockets.broadcast(targets, message)
            t1 = time.monotonic_ns()
            await ws.send(f"{t0} {t1} {len(targets)}")

    handler = relay if args.mode == "broadcast" else echo
    server = await serve(handler, HOST, args.port, **options)
    return server, server.sockets[0].getsockname()[1]


STARTERS = {
    "raw": start_raw,
    "wsframe": start_wsframe,
    "picows": start_picows,
    "aiohttp": start_aiohttp,
    "websockets": start_websockets,
}


async def main_async(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    server, port = await STARTERS[args.kind](args)
    print(f"READY {port}", flush=True)
    await stop
    # Leave without a graceful shutdown: the runner only needs the process gone.
    if hasattr(server, "close"):
        result = server.close()
        if asyncio.iscoroutine(result):
            await asyncio.wait_for(result, 2)
    elif hasattr(server, "cleanup"):
        await asyncio.wait_for(server.cleanup(), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(STARTERS))
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--mode", choices=("echo", "broadcast"), default="echo")
    parser.add_argument("--defaults", action="store_true", help="the library's own defaults")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", metavar="CERT,KEY", help="serve wss:// with this certificate")
    parser.add_argument("--aiofastnet", action="store_true", help="aiofastnet's transports")
    args = parser.parse_args()
    if args.mode == "broadcast" and args.kind not in ("wsframe", "picows", "websockets"):
        parser.error(f"no broadcast mode for {args.kind}")
    raise_nofile()
    loop = new_loop(args.loop)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main_async(args))
    except (asyncio.TimeoutError, OSError) as exc:  # shutting down
        print(f"shutdown: {exc!r}", file=sys.stderr)
    finally:
        os._exit(0)  # no lingering close handshakes with 1000 peers


if __name__ == "__main__":
    sys.exit(main())
