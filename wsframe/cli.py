"""The ``python -m wsframe`` command line: ``info``, ``echo``, ``chat`` and ``bench``."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from wsframe.benchmarks import Suite


def _info(_: argparse.Namespace) -> int:
    import wsframe
    from wsframe import codec

    print(f"wsframe {wsframe.__version__}")
    note = ""
    if codec.IS_PYPY and codec.implementation == "python":
        note = " (PyPy's default; WSFRAME_USE_CEXT=1 selects the C extension if it is built)"
    print(f"implementation: {codec.implementation}{note}")
    print(f"simd path: {codec.SIMD_PATH}")
    for key, value in codec.BUILD_INFO.items():
        print(f"build {key}: {value}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"platform: {platform.platform()} ({platform.machine()})")
    return 0


def _peer_suite() -> Optional[Suite]:
    """``bench/codec_peers``'s suite, when wsframe runs from a source checkout."""
    import importlib
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench"
    if (bench / "codec_peers" / "__init__.py").is_file() and str(bench) not in sys.path:
        sys.path.insert(0, str(bench))
    try:
        suite: Suite = importlib.import_module("codec_peers").SUITE
    except ImportError:
        return None
    return suite


def _bench(args: argparse.Namespace) -> int:
    from wsframe.benchmarks import SUITE, run

    if args.plot is not None or args.from_json is not None:
        return _bench_plot(args)

    suite = _peer_suite() if args.peers else SUITE
    if suite is None:
        print(
            "bench: --peers needs a source checkout (bench/codec_peers/ next to wsframe/)",
            file=sys.stderr,
        )
        return 2
    return run(
        quick=args.quick, json_path=args.json, seconds_per_cell=args.seconds_per_cell, suite=suite
    )


def _bench_plot(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from wsframe.benchmarks import SUITE, run
    from wsframe.benchmarks.plot import plot_codec, require_matplotlib

    if args.plot is None:
        print("bench: --from-json only goes with --plot FILE", file=sys.stderr)
        return 2
    try:
        require_matplotlib()
    except ImportError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    status = 0
    json_path = args.from_json
    if json_path is None:
        suite = _peer_suite() if args.peers else SUITE
        if suite is None:
            print("bench: --peers needs a source checkout", file=sys.stderr)
            return 2
        json_path = args.json or tempfile.mkstemp(prefix="wsframe-bench-", suffix=".json")[1]
        status = run(
            quick=args.quick,
            json_path=json_path,
            seconds_per_cell=args.seconds_per_cell,
            suite=suite,
        )
    with open(json_path, encoding="utf-8") as f:
        document = json.load(f)
    plot_codec(document, args.plot)
    print(f"wrote {args.plot}")
    return status


def _echo(args: argparse.Namespace) -> int:
    from wsframe.echo import run_echo, run_sync_echo

    return (run_sync_echo if args.api == "sync" else run_echo)(
        args.host,
        args.port,
        compression=None if args.no_compression else "deflate",
        ping_interval=args.ping_interval or None,
    )


def _chat(args: argparse.Namespace) -> int:
    from wsframe.chat import run_chat

    if args.workers < 1:
        print("chat: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and args.redis is None:
        print(
            "chat: --workers > 1 needs --redis redis://HOST:PORT/DB to share rooms between"
            " the worker processes",
            file=sys.stderr,
        )
        return 2
    try:
        return run_chat(
            args.host,
            args.port,
            args.db,
            workers=args.workers,
            redis=args.redis,
            origins=args.origin or (),
            ping_interval=args.ping_interval or None,
        )
    except ValueError as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m wsframe``."""
    parser = argparse.ArgumentParser(prog="python -m wsframe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="version, implementation and SIMD path in use")
    info.set_defaults(func=_info)

    echo = commands.add_parser("echo", help="an echo server (text as text, binary as binary)")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9001)
    echo.add_argument("--no-compression", action="store_true", help="refuse permessage-deflate")
    echo.add_argument(
        "--ping-interval", type=float, default=20.0, help="seconds between pings (0: none)"
    )
    echo.add_argument(
        "--api",
        choices=("asyncio", "sync"),
        default="asyncio",
        help="the asyncio server (a Listener, uvloop if installed; the default) or the "
        "threaded one of wsframe.sync",
    )
    echo.set_defaults(func=_echo)

    chat = commands.add_parser(
        "chat", help="the chat demo: a page at http://HOST:PORT/, the WebSocket at /ws"
    )
    chat.add_argument("--host", default="127.0.0.1")
    chat.add_argument("--port", type=int, default=8765)
    chat.add_argument(
        "--db",
        metavar="PATH",
        help="SQLite file of the history, or :memory: (default: in the user's data directory)",
    )
    chat.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (SO_REUSEPORT); more than 1 needs --redis",
    )
    chat.add_argument(
        "--redis",
        metavar="URL",
        help="share rooms and presence through Redis pub/sub, e.g. redis://127.0.0.1:6379/0",
    )
    chat.add_argument(
        "--origin",
        action="append",
        metavar="URL",
        help="another origin whose pages may open the WebSocket, e.g. https://chat.example.com"
        " behind a proxy (repeatable; the chat's own page and clients sending no Origin are"
        " always accepted, other pages get 403)",
    )
    chat.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        help="seconds between the server's heartbeat pings, whose round trips /stats plots"
        " (0: none)",
    )
    chat.set_defaults(func=_chat)

    bench = commands.add_parser(
        "bench", help="benchmark table: wsframe's C codec vs its pure-Python twin"
    )
    bench.add_argument("--quick", action="store_true", help="fewer sizes and shorter runs")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument(
        "--seconds-per-cell",
        type=float,
        metavar="S",
        help="cap the time spent measuring one cell (e.g. 0.005 for a smoke test)",
    )
    bench.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the results as a chart (PNG or SVG; needs matplotlib: wsframe[plot])",
    )
    bench.add_argument(
        "--from-json",
        metavar="PATH",
        help="with --plot: draw the results of an earlier --json run instead of measuring",
    )
    bench.add_argument(
        "--peers",
        action="store_true",
        help="from a source checkout: add the installed peer libraries' columns (bench/)",
    )
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m wsframe`` and the ``wsframe`` script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
