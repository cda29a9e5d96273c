"""Run the Autobahn TestSuite (with ``kosoku``) against wsframe and summarize the reports.

    python tests/autobahn/run.py server|client [--codec c|python|both]
        [--api asyncio|sync] [--cases PATTERN ...] [--exclude PATTERN ...]
        [--parallel N] [--outdir DIR] [--strict] [--timeout SECONDS]
        [--python INTERPRETER]

* ``server``: starts ``python -m wsframe echo`` on a free loopback port
  (``WSFRAME_NO_EXTENSIONS=1`` for the python codec), runs
  ``kosoku -m fuzzingclient`` against it, then stops the echo server with
  SIGTERM and checks that it exits with status 0.
* ``client``: starts ``kosoku -m fuzzingserver`` on a free loopback port and
  runs ``tests/autobahn/client.py`` (the client under test) against it.

``--api sync`` tests the threaded API instead of asyncio's: the server is
``python -m wsframe echo --api sync`` (``wsframe.sync.serve``), the client
``client.py --api sync`` (``wsframe.sync.connect``); the reports then go to
``OUTDIR/<mode>-sync-<codec>/``.

``--python`` runs the wsframe side (the echo server, the client under test)
on another interpreter than the one running this script, e.g. PyPy while
kosoku (Python 3.10+) runs on CPython::

    python tests/autobahn/run.py server --codec python --python pypy3

kosoku is the one next to this script's interpreter (its venv), else the one
on ``PATH``; the list of case ids comes from the interpreter kosoku runs on.
With ``--codec c`` on PyPy, ``WSFRAME_USE_CEXT=1`` is set for the wsframe side.

The reports of each run go to ``OUTDIR/<mode>-<codec>/`` (``index.json``,
one JSON and one HTML file per case). Every report is then read and a summary
printed: counts per behaviour, and the cases that are not strictly OK.

Exit status: 0 if every selected case passed; 1 if a case FAILED (or could
not be run: ERROR), its closing behaviour is not OK/INFORMATIONAL (FAILED,
WRONG CODE, UNCLEAN, FAILED BY CLIENT...), a case is missing from the reports,
or the echo server did not exit cleanly; with ``--strict`` NON-STRICT and
UNIMPLEMENTED count as failures too; 2 if the run itself could not be carried
out (kosoku missing, a process that does not start or times out...).

Every subprocess is bounded in time, listens on 127.0.0.1 only, and is
stopped (by its PID) on the way out, errors and Ctrl-C included.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLIENT = HERE / "client.py"
HOST = "127.0.0.1"
AGENT = "wsframe"

PASSING_BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL")
PASSING_CLOSE = ("OK", "INFORMATIONAL")
BEHAVIOR_ORDER = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR")
CLOSE_ORDER = (
    "OK",
    "INFORMATIONAL",
    "WRONG CODE",
    "UNCLEAN",
    "FAILED BY CLIENT",
    "FAILED",
    "NO_CLOSE",
)

#: Seconds for a helper process to print that it listens.
START_TIMEOUT = 30.0
#: Seconds for a process to exit after SIGTERM (then SIGKILL).
STOP_TIMEOUT = 15.0


class RunError(Exception):
    """The run could not be carried out (as opposed to a case failing)."""


class Terminated(BaseException):
    """SIGTERM received: unwind like Ctrl-C so that the children are stopped."""


# ------------------------------------------------------------------ processes


class Processes:
    """The subprocesses started by this run; each is stopped by its PID."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: Sequence[str], *, log: Path, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(ROOT),
                # Its own session: Ctrl-C in the terminal reaches us only, and
                # we stop the children in order.
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGTERM ``proc``, SIGKILL it after ``timeout``; return its status (None: killed)."""
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    return proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT)
                    return None
            return proc.returncode
        finally:
            if proc in self._procs:
                self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            try:
                self.stop(proc, timeout=5.0)
            except Exception as exc:  # keep stopping the others
                print(f"could not stop PID {proc.pid}: {exc}", file=sys.stderr)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_line(
    proc: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float = START_TIMEOUT
) -> re.Match[str]:
    """Wait until ``log`` has a line matching ``pattern`` (the process says it listens)."""
    regex = re.compile(pattern, re.MULTILINE)
    deadline = time.monotonic() + timeout
    while True:
        try:
            match = regex.search(log.read_text(errors="replace"))
        except OSError:
            match = None
        if match:
            return match
        if proc.poll() is not None:
            raise RunError(
                f"{proc.args[0]} exited with status {proc.returncode} before listening:\n"
                + tail(log)
            )
        if time.monotonic() > deadline:
            raise RunError(f"{proc.args!r} did not start within {timeout:.0f} s:\n" + tail(log))
        time.sleep(0.05)


def wait(proc: subprocess.Popen[bytes], timeout: float, what: str, log: Path) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"{what} did not finish within {timeout:.0f} s:\n" + tail(log)) from None


def codec_env(codec: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WSFRAME_NO_EXTENSIONS", None)
    env.pop("WSFRAME_USE_CEXT", None)
    if codec == "python":
        env["WSFRAME_NO_EXTENSIONS"] = "1"
    else:  # PyPy uses the pure-Python codec unless asked (no effect on CPython)
        env["WSFRAME_USE_CEXT"] = "1"
    # The project's own wsframe, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: How to build the extension, on CPython or PyPy.
_BUILD_HINT = "pip install -e . (on PyPy: WSFRAME_USE_CEXT=1 pip install -e .)"


def check_codec(codec: str, env: dict[str, str], python: str) -> str:
    """Make sure the processes will really use ``codec``; return the interpreter's name."""
    code = (
        "import platform, wsframe; print(wsframe.implementation); "
        "print(platform.python_implementation(), platform.python_version())"
    )
    try:
        out = subprocess.run(
            [python, "-c", code],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        raise RunError("importing wsframe took more than 60 s") from None
    lines = out.stdout.strip().splitlines()
    implementation = lines[0] if lines else ""
    if out.returncode != 0 or implementation != codec:
        raise RunError(
            f"the {codec} codec was asked for, but wsframe.implementation is "
            f"{implementation or '?'}"
            + (f":\n{out.stderr}" if out.stderr else "")
            + (f"\n(is the C extension built? {_BUILD_HINT})" if codec == "c" else "")
        )
    return lines[1] if len(lines) > 1 else python


#: ``python -m wsframe`` with uvloop made unimportable (the stdlib event loop).
_WITHOUT_UVLOOP = (
    "import runpy, sys; sys.modules['uvloop'] = None; "
    "runpy.run_module('wsframe', run_name='__main__', alter_sys=True)"
)


def echo_command(loop: str, python: str) -> list[str]:
    """``python -m wsframe`` on the event loop asked for."""
    if loop == "asyncio":
        return [python, "-c", _WITHOUT_UVLOOP]
    return [python, "-m", "wsframe"]  # uvloop if it is installed


def find_kosoku() -> Optional[str]:
    """The kosoku next to this script's interpreter, else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "kosoku"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("kosoku")


def require_kosoku() -> str:
    kosoku = find_kosoku()
    if kosoku is None:
        raise RunError("kosoku is not installed (pip install kosoku, on Python 3.10+)")
    return kosoku


def kosoku_python(kosoku: Optional[str]) -> str:
    """The interpreter kosoku runs on: its script's ``#!`` line, else this one."""
    if kosoku is not None:
        try:
            with open(kosoku, "rb") as script:
                first = script.readline(4096)
        except OSError:
            first = b""
        if first.startswith(b"#!"):
            interpreter = first[2:].strip().decode(errors="replace")
            if " " not in interpreter and os.access(interpreter, os.X_OK):
                return interpreter
    return sys.executable


def all_case_ids() -> Optional[list[str]]:
    """Every case id kosoku knows, in order (None if its package cannot be imported)."""
    code = "import json, kosoku.cases as c; print(json.dumps(list(c.CASES)))"
    try:
        out = subprocess.run(
            [kosoku_python(find_kosoku()), "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode == 0:
            ids = json.loads(out.stdout.strip().splitlines()[-1])
            return [str(i) for i in ids]
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        pass
    return None


def select(ids: Iterable[str], include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """The ids kosoku runs for ``-i include... -x exclude...`` (shell-style globs)."""
    chosen = [i for i in ids if not include or any(fnmatch.fnmatchcase(i, p) for p in include)]
    return [i for i in chosen if not any(fnmatch.fnmatchcase(i, p) for p in exclude)]


def selection_args(include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    argv: list[str] = []
    for pattern in include:
        argv += ["-i", pattern]
    for pattern in exclude:
        argv += ["-x", pattern]
    return argv


def prepare_outdir(outdir: Path) -> None:
    """Create ``outdir``, removing the reports of an earlier run (and only those)."""
    outdir.mkdir(parents=True, exist_ok=True)
    for path in outdir.iterdir():
        if path.is_file() and (path.suffix in (".json", ".html") or path.name.endswith(".log")):
            path.unlink()


# --------------------------------------------------------------------- modes


class Outcome:
    def __init__(self, mode: str, codec: str, outdir: Path) -> None:
        self.mode = mode
        self.codec = codec
        self.outdir = outdir
        self.duration = 0.0
        self.interpreter = ""  # what runs wsframe, e.g. "PyPy 3.9.16"
        self.problems: list[str] = []  # not case verdicts: echo exit status...


def run_server_mode(
    codec: str, outdir: Path, args: argparse.Namespace, procs: Processes
) -> Outcome:
    outcome = Outcome("server", codec, outdir)
    env = codec_env(codec)
    outcome.interpreter = check_codec(codec, env, args.python)
    kosoku = require_kosoku()
    echo_log = outdir / "echo-server.log"
    echo = procs.start(
        [
            *echo_command(args.loop, args.python),
            "echo",
            "--host",
            HOST,
            "--port",
            "0",
            "--ping-interval",
            "0",
            "--api",
            args.api,
        ],  # no heartbeat pings in the middle of a case
        log=echo_log,
        env=env,
    )
    match = wait_for_line(echo, echo_log, r"listening on ws://[^\s:]+:(\d+)")
    port = int(match.group(1))
    print(f"[server/{codec}] echo server PID {echo.pid} on ws://{HOST}:{port}", flush=True)
    kosoku_log = outdir / "kosoku.log"
    started = time.monotonic()
    fuzzer = procs.start(
        [
            kosoku,
            "-m",
            "fuzzingclient",
            f"{HOST}:{port}",
            "-p",
            str(args.parallel),
            "-o",
            str(outdir),
            *selection_args(args.cases, args.exclude),
        ],
        log=kosoku_log,
        env=codec_env(codec),
    )
    status = wait(fuzzer, args.timeout, "kosoku fuzzingclient", kosoku_log)
    outcome.duration = time.monotonic() - started
    procs.stop(fuzzer)
    if status not in (0, 1):  # 1: some case did not pass; the reports say which
        raise RunError(f"kosoku fuzzingclient exited with status {status}:\n" + tail(kosoku_log))
    if echo.poll() is not None:
        outcome.problems.append(
            f"the echo server died during the run (status {echo.returncode}):\n" + tail(echo_log)
        )
    else:
        echo_status = procs.stop(echo)
        if echo_status != 0:
            outcome.problems.append(
                "the echo server "
                + (
                    "did not exit on SIGTERM"
                    if echo_status is None
                    else f"exited with {echo_status}"
                )
                + " (expected 0):\n"
                + tail(echo_log)
            )
    return outcome


def run_client_mode(
    codec: str, outdir: Path, args: argparse.Namespace, procs: Processes
) -> Outcome:
    outcome = Outcome("client", codec, outdir)
    env = codec_env(codec)
    outcome.interpreter = check_codec(codec, env, args.python)
    kosoku = require_kosoku()
    kosoku_log = outdir / "kosoku.log"
    fuzzer = procs.start(
        [
            kosoku,
            "-m",
            "fuzzingserver",
            f"{HOST}:0",
            "-o",
            str(outdir),
            *selection_args(args.cases, args.exclude),
        ],
        log=kosoku_log,
        env=codec_env(codec),
    )
    match = wait_for_line(fuzzer, kosoku_log, r"listening on ws://[^\s:]+:(\d+)")
    port = int(match.group(1))
    print(f"[client/{codec}] kosoku fuzzingserver PID {fuzzer.pid} on ws://{HOST}:{port}")
    client_log = outdir / "client.log"
    started = time.monotonic()
    client = procs.start(
        [
            args.python,
            str(CLIENT),
            f"ws://{HOST}:{port}",
            "--agent",
            AGENT,
            "--style",
            args.client_style,
            "--offer",
            args.client_offer,
            "--api",
            args.api,
        ],
        log=client_log,
        env=env,
    )
    client_status = wait(client, args.timeout, "the client under test", client_log)
    procs.stop(client)
    if client_status != 0:
        outcome.problems.append(
            f"the client under test exited with status {client_status}:\n" + tail(client_log)
        )
    # kosoku writes the reports and exits after /updateReports.
    try:
        status = fuzzer.wait(120 if client_status == 0 else 10)
    except subprocess.TimeoutExpired:
        status = procs.stop(fuzzer)
        outcome.problems.append("kosoku fuzzingserver did not exit after the run")
    outcome.duration = time.monotonic() - started
    procs.stop(fuzzer)
    if status not in (0, 1, None, -signal.SIGTERM):
        outcome.problems.append(
            f"kosoku fuzzingserver exited with status {status}:\n" + tail(kosoku_log)
        )
    return outcome


# ------------------------------------------------------------------ reports


def load_reports(outdir: Path) -> dict[str, dict[str, Any]]:
    """case id -> the case's JSON report (the index entry if the file is missing)."""
    index_path = outdir / "index.json"
    if not index_path.exists():
        return {}
    index = json.loads(index_path.read_text())
    cases: dict[str, dict[str, Any]] = {}
    for agent, entries in index.items():
        for case_id, entry in entries.items():
            report: dict[str, Any] = dict(entry)
            path = outdir / entry.get("reportfile", "")
            if path.is_file():
                report = json.loads(path.read_text())
            report.setdefault("agent", agent)
            cases[case_id] = report
    return cases


def _key(case_id: str) -> list[int]:
    return [int(p) if p.isdigit() else 0 for p in case_id.split(".")]


def _counts(values: Iterable[str], order: Sequence[str]) -> str:
    counter = collections.Counter(values)
    names = [n for n in order if n in counter] + sorted(set(counter) - set(order))
    return ", ".join(f"{name} {counter[name]}" for name in names) or "none"


def _describe(report: dict[str, Any]) -> str:
    parts = [f"behavior {report.get('behavior')}", f"close {report.get('behaviorClose')}"]
    if report.get("remoteCloseCode") is not None or "remoteCloseCode" in report:
        parts.append(f"remote close code {report.get('remoteCloseCode')}")
    expected = (report.get("expectedClose") or {}).get("closeCode")
    if expected:
        parts.append(f"expected {expected}")
    text = ", ".join(parts)
    for field in ("result", "resultClose"):
        value = report.get(field)
        if value and value not in ("Actual events match at least one expected.",):
            text += f"\n      {field}: {value}"
    return text


def summarize(
    outcome: Outcome, expected_ids: Optional[list[str]], strict: bool
) -> tuple[bool, str]:
    """The summary text, and whether the run passed."""
    reports = load_reports(outcome.outdir)
    ids = sorted(reports, key=_key)
    lines = [
        f"== {outcome.mode} mode, {outcome.codec} codec"
        + (f" on {outcome.interpreter}" if outcome.interpreter else "")
        + f": {len(ids)} cases reported "
        f"in {outcome.duration:.1f} s ({outcome.outdir}) =="
    ]
    lines.append(
        "  behavior:      "
        + _counts((reports[i].get("behavior", "?") for i in ids), BEHAVIOR_ORDER)
    )
    lines.append(
        "  behaviorClose: "
        + _counts((reports[i].get("behaviorClose", "?") for i in ids), CLOSE_ORDER)
    )
    passed = True

    def section(title: str, chosen: list[str], fails: bool) -> None:
        nonlocal passed
        if not chosen:
            return
        if fails:
            passed = False
        lines.append(f"  {title} ({len(chosen)}):")
        for case_id in chosen:
            lines.append(f"    {case_id}: {_describe(reports[case_id])}")

    failed = [
        i
        for i in ids
        if reports[i].get("behavior") not in (*PASSING_BEHAVIORS, "UNIMPLEMENTED")
        or reports[i].get("behaviorClose") not in PASSING_CLOSE
    ]
    non_strict = [i for i in ids if reports[i].get("behavior") == "NON-STRICT" and i not in failed]
    unimplemented = [
        i for i in ids if reports[i].get("behavior") == "UNIMPLEMENTED" and i not in failed
    ]
    informational = [
        i
        for i in ids
        if i not in failed
        and "INFORMATIONAL" in (reports[i].get("behavior"), reports[i].get("behaviorClose"))
    ]
    section("FAILED (behavior or closing behaviour)", failed, True)
    section("NON-STRICT", non_strict, strict)
    section("UNIMPLEMENTED", unimplemented, strict)
    if informational:
        lines.append(f"  INFORMATIONAL ({len(informational)}): " + " ".join(informational))
    if expected_ids is not None:
        missing = [i for i in expected_ids if i not in reports]
        extra = [i for i in ids if i not in expected_ids]
        if missing:
            passed = False
            shown = " ".join(missing[:50]) + (" ..." if len(missing) > 50 else "")
            lines.append(f"  MISSING ({len(missing)} of {len(expected_ids)}): {shown}")
        if extra:
            lines.append(f"  unexpected cases in the reports: {' '.join(extra)}")
    elif not ids:
        passed = False
        lines.append("  MISSING: no report at all")
    for problem in outcome.problems:
        passed = False
        lines.append("  PROBLEM: " + problem.replace("\n", "\n    "))
    lines.append("  => " + ("PASSED" if passed else "FAILED"))
    return passed, "\n".join(lines)


# ---------------------------------------------------------------------- main


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the Autobahn TestSuite (kosoku) against wsframe's server or client."
    )
    parser.add_argument("mode", choices=("server", "client"), help="what is under test")
    parser.add_argument("--codec", choices=("c", "python", "both"), default="both")
    parser.add_argument(
        "--api",
        choices=("asyncio", "sync"),
        default="asyncio",
        help="the API under test: wsframe.asyncio (default) or the threaded wsframe.sync",
    )
    parser.add_argument(
        "--cases", nargs="+", default=[], metavar="PATTERN", help="case ids or globs (default: all)"
    )
    parser.add_argument(
        "--exclude", nargs="+", default=[], metavar="PATTERN", help="case ids or globs to leave out"
    )
    parser.add_argument(
        "--parallel", type=int, default=2, help="cases in parallel (server mode; default 2)"
    )
    parser.add_argument(
        "--outdir",
        type=Path,
        default=HERE / "reports",
        help="reports go to OUTDIR/<mode>-<codec>/ (default: tests/autobahn/reports)",
    )
    parser.add_argument(
        "--loop",
        choices=("default", "asyncio"),
        default="default",
        help="the echo server's event loop: default (uvloop when installed, as "
        "python -m wsframe echo does) or asyncio (uvloop hidden)",
    )
    parser.add_argument(
        "--client-style",
        choices=("recv", "listener"),
        default="recv",
        help="client mode: echo from an async for loop (recv) or a Listener",
    )
    parser.add_argument(
        "--client-offer",
        choices=("conformance", "default"),
        default="conformance",
        help="client mode: permessage-deflate offer (see tests/autobahn/client.py --help)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        metavar="INTERPRETER",
        help="the interpreter that runs wsframe (echo server, client under test), e.g. "
        "pypy3; kosoku keeps running on its own (default: this script's, %(default)s)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="NON-STRICT and UNIMPLEMENTED cases fail the run too"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds one run (one mode, one codec) may take (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    python = shutil.which(args.python)
    if python is None:
        parser.error(f"--python {args.python}: no such interpreter")
    args.python = python
    return args


def _sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    codecs = ("c", "python") if args.codec == "both" else (args.codec,)
    runner = run_server_mode if args.mode == "server" else run_client_mode
    procs = Processes()
    previous = signal.signal(signal.SIGTERM, _sigterm)
    summaries: list[str] = []
    all_passed = True
    try:
        known = all_case_ids()
        expected = select(known, args.cases, args.exclude) if known is not None else None
        if expected is not None and not expected:
            raise RunError(f"no case matches --cases {args.cases} --exclude {args.exclude}")
        for codec in codecs:
            api = "-sync" if args.api == "sync" else ""
            outdir = (args.outdir / f"{args.mode}{api}-{codec}").resolve()
            prepare_outdir(outdir)
            count = f"{len(expected)} cases" if expected is not None else "the cases"
            print(f"[{args.mode}/{codec}] running {count}, reports in {outdir}", flush=True)
            outcome = runner(codec, outdir, args, procs)
            passed, summary = summarize(outcome, expected, args.strict)
            (outdir / "summary.txt").write_text(summary + "\n")
            print(summary, flush=True)
            summaries.append(summary)
            all_passed = all_passed and passed
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated):
        print("interrupted: stopping the subprocesses", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
