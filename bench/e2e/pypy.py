"""Echo round trips on PyPy next to CPython, measured in the same run.

    python bench/e2e/pypy.py [--pypy PYPY] [--quick] [--json PATH] [--client picows|wsframe]

Run it with CPython (its clients are picows', or wsframe's with the C codec).
Each server is ``bench/e2e/servers.py KIND`` in its own process, on the
interpreter its row names, every one on the default asyncio event loop (PyPy
has no uvloop, so the CPython rows use asyncio too: the same loop code on
both sides):

- ``wsframe-pypy``: wsframe on PyPy, the pure-Python codec run by the JIT
  (PyPy's default; checked: ``wsframe.implementation == "python"``);
- ``wsframe-cpython``: wsframe on CPython with the C codec (checked: ``"c"``);
- ``websockets-pypy`` and ``websockets-cpython``: websockets' asyncio server;
- ``raw-pypy`` and ``raw-cpython``: an asyncio Protocol echoing raw TCP bytes,
  the ceiling of each interpreter's event loop.

The client process (``clients.py echo``, on CPython) measures every server in
turn, repetition after repetition, and the median is shown. PyPy's JIT needs a
warm-up: every server first serves one untimed pass of every case, and each
measurement has its own warm-up too. Columns: ``vs wsframe-cpython`` =
round trips/s over wsframe-cpython's (above x1.00: faster), ``vs raw`` over
the raw echo on the same interpreter. Loopback only; every process is stopped
by its PID on the way out. A few seconds per row and case: about 2 minutes in
all (``--quick``: under one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, Processes, Server, client, have, log, ratio, size_label, table

#: (row, servers.py KIND, interpreter: "pypy" or "cpython", WSFRAME implementation or None)
ROWS = [
    ("wsframe-pypy", "wsframe", "pypy", "python"),
    ("wsframe-cpython", "wsframe", "cpython", "c"),
    ("websockets-pypy", "websockets", "pypy", None),
    ("websockets-cpython", "websockets", "cpython", None),
    ("raw-pypy", "raw", "pypy", None),
    ("raw-cpython", "raw", "cpython", None),
]
CASES = [(256, 1), (256, 16), (65536, 1), (65536, 16)]
REFERENCE = "wsframe-cpython"


def describe(python: str, env: dict[str, str]) -> dict[str, str]:
    """The interpreter's name and version, wsframe's implementation and websockets' version."""
    code = (
        "import json, platform, wsframe\n"
        "try:\n import websockets; ws = websockets.__version__\n"
        "except ImportError:\n ws = None\n"
        "print(json.dumps({'python': platform.python_implementation() + ' '"
        " + platform.python_version(), 'implementation': wsframe.implementation,"
        " 'websockets': ws}))"
    )
    out = subprocess.run(
        [python, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        raise RuntimeError(f"{python} cannot import wsframe:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pypy", default="pypy3", help="the PyPy interpreter (default: pypy3)")
    parser.add_argument("--quick", action="store_true", help="one repetition, shorter")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    parser.add_argument("--client", choices=("picows", "wsframe"), default="picows")
    args = parser.parse_args(argv)
    if platform.python_implementation() != "CPython":
        parser.error("run this script with CPython: it is the CPython side and the client")
    if args.client == "picows" and not have("picows"):
        parser.error("the client needs picows (pip install picows) or --client wsframe")
    pypy = shutil.which(args.pypy)
    if pypy is None:
        parser.error(f"--pypy {args.pypy}: not found")
    pythons = {"pypy": pypy, "cpython": sys.executable}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("WSFRAME_NO_EXTENSIONS", "WSFRAME_USE_CEXT"):
        env.pop(name, None)  # each interpreter's default codec
    about = {side: describe(python, env) for side, python in pythons.items()}
    for side, info in about.items():
        log(f"{side}: {pythons[side]}: {info}")
    timing = (
        ["--duration", "1.0", "--warmup", "0.5", "--reps", "1"]
        if args.quick
        else ["--duration", "1.5", "--warmup", "0.7", "--reps", "3"]
    )
    report: dict[str, Any] = {"interpreters": about, "quick": args.quick, "results": []}
    notes: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wsframe-pypy-bench-") as log_dir:
        procs = Processes(env, log_dir)
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        try:
            servers: list[Server] = []
            for row, kind, side, implementation in ROWS:
                if implementation is not None and about[side]["implementation"] != implementation:
                    notes.append(
                        f"{row}: wsframe.implementation is {about[side]['implementation']}, "
                        f"not {implementation}: skipped"
                    )
                    continue
                if kind == "websockets" and about[side]["websockets"] is None:
                    notes.append(f"{row}: websockets is not installed there: skipped")
                    continue
                server = procs.start(kind, "asyncio", name=row, python=pythons[side])
                servers.append(server)
            targets: list[str] = []
            for server in servers:
                targets += ["--target", f"{server.name}={server.kind}:{server.port}"]
            log("warm-up: one untimed pass of every case")
            for size, conns in CASES:
                client(
                    procs,
                    "echo",
                    *targets,
                    "--size",
                    str(size),
                    "--conns",
                    str(conns),
                    "--client",
                    args.client,
                    *["--duration", "0.3", "--warmup", "0.3", "--reps", "1"],
                    timeout=300,
                )
            for size, conns in CASES:
                log(f"echo: {size_label(size)}, {conns} connection(s)")
                result = client(
                    procs,
                    "echo",
                    *targets,
                    "--size",
                    str(size),
                    "--conns",
                    str(conns),
                    "--client",
                    args.client,
                    *timing,
                    timeout=600,
                )
                report["results"].append(result)
        finally:
            procs.stop_all()
            signal.signal(signal.SIGTERM, previous)
    report["notes"] = notes
    report["seconds"] = round(time.monotonic() - started, 1)
    for result in report["results"]:
        medians = {name: statistics.median(r) for name, r in result["rates"].items() if r}
        reps = max(map(len, result["rates"].values()), default=0)
        print(
            f"\nEcho round trips/s: {size_label(result['size'])} binary, "
            f"{result['conns']} connection(s), {result['client']} client on CPython "
            f"({reps} repetition(s), the median)"
        )
        rows = []
        for row, _, side, _ in ROWS:
            rates = result["rates"].get(row)
            if not rates:
                if row in result["errors"]:
                    rows.append([row, "error", "", "", result["errors"][row][:60]])
                continue
            raw = f"raw-{side}"
            rows.append(
                [
                    row,
                    f"{medians[row]:,.0f}",
                    f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else "",
                    ratio(medians[row], medians.get(REFERENCE)),
                    ratio(medians[row], medians.get(raw)) if not row.startswith("raw") else "",
                ]
            )
        print(table(["server", "median rt/s", "min-max", f"vs {REFERENCE}", "vs raw"], rows))
    for note in notes:
        print(f"  note: {note}")
    print(
        "\n"
        + "; ".join(
            f"{side}: {info['python']} (wsframe {info['implementation']}, "
            f"websockets {info['websockets']})"
            for side, info in about.items()
        )
        + f"; {platform.platform()}, {os.cpu_count()} CPUs; total {report['seconds']} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
