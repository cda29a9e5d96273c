"""One exception hierarchy: every exception class of the package is in ``wsframe.errors``."""

from __future__ import annotations

import ast
import pathlib

import wsframe
import wsframe.asyncio
import wsframe.errors
import wsframe.sync

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "wsframe"

#: (module, class) defined outside errors.py on purpose; see errors.py's docstring.
ELSEWHERE = {
    ("_codec_py.py", "_DecodeError"),
    ("chat/protocol.py", "ProtocolViolation"),
    ("benchmarks/cases.py", "NotAvailable"),
    ("benchmarks/cases.py", "CheckFailed"),
}


def _exception_classes() -> set[tuple[str, str]]:
    exceptions = {"Exception", "BaseException", "RuntimeError", "ValueError", "OSError"}
    exceptions |= set(wsframe.errors.__all__)
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id in exceptions for base in node.bases
            ):
                found.add((path.relative_to(PACKAGE).as_posix(), node.name))
    return found


def test_every_exception_lives_in_errors() -> None:
    assert _exception_classes() == ELSEWHERE


def test_every_exception_is_exported_and_drawn() -> None:
    doc = wsframe.errors.__doc__ or ""
    for name, value in vars(wsframe.errors).items():
        if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_"):
            assert name in wsframe.errors.__all__
            assert name in doc, f"{name} is missing from the hierarchy in the docstring"
            assert getattr(wsframe, name) is value


def test_reexported_where_users_import_them() -> None:
    for module in (wsframe.asyncio, wsframe.sync):
        for name in ("ConnectionClosed", "ConnectionClosedOK", "ConnectionClosedError"):
            assert getattr(module, name) is getattr(wsframe.errors, name)
        for name in ("InvalidHandshake", "InvalidProxy", "InvalidState"):
            assert getattr(module, name) is getattr(wsframe.errors, name)
    assert "InvalidState" in wsframe.errors.__all__
