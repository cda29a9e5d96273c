"""What the installed package holds: the library, the echo server and the chat demo.

DESIGN.md's rule: nothing in the wheel imports a peer library (the benchmarks
that drive them live in ``bench/``), and ``python -m wsframe bench`` works
with the standard library alone.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "wsframe"

#: The other WebSocket libraries (and wsaccel, a speed-up of some of them).
PEERS = {"picows", "aiohttp", "websockets", "wsproto", "websocket", "wsaccel"}


def _imported_roots(source: str) -> set[str]:
    """The top-level names a module imports, statically or through importlib by a literal."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "path",
    sorted(PACKAGE.rglob("*.py")) + sorted(PACKAGE.rglob("*.pyx")),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_module_imports_a_peer(path: pathlib.Path) -> None:
    if path.suffix == ".pyx":  # not Python syntax: look for the import lines
        lines = path.read_text(encoding="utf-8").splitlines()
        words = {
            line.split()[1].split(".")[0] for line in lines if line.startswith(("import ", "from "))
        }
        assert not words & PEERS
        return
    assert not _imported_roots(path.read_text(encoding="utf-8")) & PEERS


def test_the_scan_finds_a_peer_import() -> None:
    source = "import os\nfrom websockets.frames import Frame\nimportlib.import_module('picows')\n"
    assert _imported_roots(source) & PEERS == {"websockets", "picows"}


def test_bench_runs_with_the_standard_library_alone(tmp_path: pathlib.Path) -> None:
    """``python -m wsframe bench``: every row, both codecs, a few ms per cell."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    options = ["--quick", "--seconds-per-cell", "0.002", "--json", str(out)]
    # -S -s: no site-packages at all, so no peer (nor anything else) can be imported.
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-m", "wsframe", "bench", *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "== mask in place ==" in result.stdout
    document = json.loads(out.read_text(encoding="utf-8"))
    assert set(document["meta"]["libraries"]) == {"wsframe-c", "wsframe-py"}
    columns = {column for group in document["groups"] for column in group["columns"]}
    assert not columns & PEERS
    statuses = {
        entry["status"]
        for group in document["groups"]
        for row in group["rows"]
        for entry in row["results"].values()
    }
    assert "error" not in statuses
