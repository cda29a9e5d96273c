"""The Autobahn TestSuite client under test, on ``wsframe.asyncio.connect``
(or, with ``--api sync``, the threaded ``wsframe.sync.connect``).

Point it at a fuzzing server (``kosoku -m fuzzingserver`` or Autobahn's
``wstest -m fuzzingserver``)::

    python tests/autobahn/client.py ws://127.0.0.1:9002 [--agent NAME]

It follows the standard Autobahn client protocol:

1. ``GET /getCaseCount`` - the server sends the number of cases as a text
   message;
2. for each case ``N`` (1-based): ``GET /runCase?case=N&agent=AGENT`` and echo
   every message back (text as text, binary as binary) until the server
   closes the connection;
3. ``GET /updateReports?agent=AGENT`` - the server writes its reports (kosoku
   ends its run there).

permessage-deflate is offered (with ``client_no_context_takeover``, see
``--offer``), the heartbeat is off (a ping of ours would
disturb the cases' expected event sequences), and messages up to 64 MiB are
accepted (the largest cases send 16 MiB). Every step is bounded in time.
Exits 0 once every case ran (whatever the verdicts: the fuzzing server judges
them), 1 if the fuzzing server could not be reached or a case could not be
started, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import urllib.parse
from typing import Any, Optional

import wsframe
from wsframe.asyncio import ConnectionClosed, Listener, WebSocket, connect

#: Autobahn's largest messages are 16 MiB (cases 9.x); leave room.
MAX_MESSAGE_SIZE = 64 << 20

log = logging.getLogger("autobahn-client")


#: The permessage-deflate offer: ``client_max_window_bits`` and
#: ``client_no_context_takeover``, so that the fuzzing server may pick any
#: combination of RFC 7692 parameters (cases 13.x need both to be offered).
CONFORMANCE_OFFER = {"client_max_window_bits": True, "client_no_context_takeover": True}

#: ``--offer default`` leaves wsframe's default offer (a bare client_max_window_bits).
_OFFER: Optional[dict[str, Any]] = CONFORMANCE_OFFER


class EchoListener(Listener):
    """``--style listener``: echo synchronously, as data arrives."""

    def on_message(self, ws: WebSocket, message: Any) -> None:
        ws.send_nowait(message)


def _options(timeout: float) -> dict[str, Any]:
    return {
        "compression": "deflate",
        "deflate_options": _OFFER,
        "ping_interval": None,
        "max_message_size": MAX_MESSAGE_SIZE,
        "open_timeout": min(timeout, 30.0),
        "close_timeout": 10.0,
    }


def _url(base: str, path: str, **query: Any) -> str:
    url = base.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return url


async def get_case_count(base: str, timeout: float) -> int:
    async def fetch() -> int:
        async with connect(_url(base, "/getCaseCount"), **_options(timeout)) as ws:
            message = await ws.recv()
        return int(message)

    return await asyncio.wait_for(fetch(), timeout)


async def run_case(
    base: str, case: int, agent: str, timeout: float, style: str = "recv"
) -> Optional[str]:
    """Run case ``case``: echo until the server closes. Return an error, or None."""
    url = _url(base, "/runCase", case=case, agent=agent)

    async def echo() -> None:
        if style == "listener":
            ws = await connect(url, listener=EchoListener, **_options(timeout))
            await ws.wait_closed()
            return
        async with connect(url, **_options(timeout)) as ws:
            try:
                async for message in ws:
                    await ws.send(message)
            except ConnectionClosed:
                pass  # closed with an error code or abnormally: the case decides
            await ws.wait_closed()

    try:
        await asyncio.wait_for(echo(), timeout)
    except asyncio.TimeoutError:
        return f"did not finish within {timeout:.0f} s"
    except (OSError, wsframe.WebSocketError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def update_reports(base: str, agent: str, timeout: float) -> None:
    async def update() -> None:
        async with connect(_url(base, "/updateReports", agent=agent), **_options(timeout)) as ws:
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:
                pass

    try:
        await asyncio.wait_for(update(), timeout)
    except (asyncio.TimeoutError, OSError, wsframe.WebSocketError) as exc:
        # kosoku drops this connection once it has the reports: not an error.
        log.debug("updateReports: %s", exc)


async def main_async(args: argparse.Namespace) -> int:
    base = args.uri
    try:
        count = await get_case_count(base, args.timeout)
    except (asyncio.TimeoutError, OSError, ValueError, wsframe.WebSocketError) as exc:
        print(f"cannot get the case count from {base}: {exc!r}", file=sys.stderr)
        return 1
    print(
        f"wsframe {wsframe.__version__} ({wsframe.implementation} codec): "
        f"{count} cases from {base} as agent {args.agent!r}",
        flush=True,
    )
    errors = 0
    started = time.monotonic()
    for case in range(1, count + 1):
        t0 = time.monotonic()
        error = await run_case(base, case, args.agent, args.case_timeout, args.style)
        if error is not None:
            errors += 1
            print(f"case {case}/{count}: {error}", file=sys.stderr, flush=True)
        elif args.verbose:
            print(f"case {case}/{count}: {time.monotonic() - t0:.2f} s", flush=True)
    await update_reports(base, args.agent, args.timeout)
    print(
        f"ran {count} cases in {time.monotonic() - started:.1f} s"
        + (f", {errors} could not be run" if errors else ""),
        flush=True,
    )
    # A case that could not even open is a failure of the run (the server's
    # report would lack it); other verdicts are the fuzzing server's to give.
    return 1 if errors else 0


def run_sync(args: argparse.Namespace) -> int:
    """The same client on ``wsframe.sync`` (threads, blocking sockets)."""
    from wsframe.sync import connect as connect_sync

    base = args.uri
    options = _options(args.timeout)
    try:
        with connect_sync(_url(base, "/getCaseCount"), proxy=None, **options) as ws:
            count = int(ws.recv(timeout=args.timeout))
    except (OSError, ValueError, wsframe.WebSocketError) as exc:
        print(f"cannot get the case count from {base}: {exc!r}", file=sys.stderr)
        return 1
    print(
        f"wsframe {wsframe.__version__} ({wsframe.implementation} codec, sync API): "
        f"{count} cases from {base} as agent {args.agent!r}",
        flush=True,
    )
    errors = 0
    started = time.monotonic()
    case_options = _options(args.case_timeout)
    for case in range(1, count + 1):
        url = _url(base, "/runCase", case=case, agent=args.agent)
        try:
            with connect_sync(url, proxy=None, **case_options) as ws:
                try:
                    for message in ws:
                        ws.send(message)
                except ConnectionClosed:
                    pass  # closed with an error code or abnormally: the case decides
        except (OSError, wsframe.WebSocketError) as exc:
            errors += 1
            print(f"case {case}/{count}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    try:
        with connect_sync(
            _url(base, "/updateReports", agent=args.agent), proxy=None, **options
        ) as ws:
            for _ in ws:
                pass
    except (OSError, wsframe.WebSocketError) as exc:
        log.debug("updateReports: %s", exc)
    print(
        f"ran {count} cases in {time.monotonic() - started:.1f} s"
        + (f", {errors} could not be run" if errors else ""),
        flush=True,
    )
    return 1 if errors else 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("uri", help="the fuzzing server, e.g. ws://127.0.0.1:9002")
    parser.add_argument("--agent", default="wsframe", help="agent name in the reports")
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=300.0,
        help="seconds a case may take (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds for getCaseCount and updateReports (default: %(default)s)",
    )
    parser.add_argument(
        "--style",
        choices=("recv", "listener"),
        default="recv",
        help="echo with an `async for message in ws` loop (recv, the default) or "
        "synchronously from a Listener's on_message (listener)",
    )
    parser.add_argument(
        "--offer",
        choices=("conformance", "default"),
        default="conformance",
        help="permessage-deflate offer: client_max_window_bits and "
        "client_no_context_takeover (conformance, the default) or wsframe's default",
    )
    parser.add_argument(
        "--api",
        choices=("asyncio", "sync"),
        default="asyncio",
        help="the client under test: wsframe.asyncio.connect (default) or wsframe.sync.connect",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    if urllib.parse.urlsplit(args.uri).scheme not in ("ws", "wss"):
        parser.error(f"not a ws:// or wss:// URI: {args.uri!r}")
    logging.basicConfig(level=logging.WARNING)
    global _OFFER
    _OFFER = CONFORMANCE_OFFER if args.offer == "conformance" else None
    try:
        if args.api == "sync":
            return run_sync(args)
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
