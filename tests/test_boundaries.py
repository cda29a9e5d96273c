"""The package's modules touch no other module's private members.

DESIGN.md's rule: if a layer needs something of another, the other grows a
public, documented member for it. This test walks the AST of every module of
``wsframe`` and fails on ``obj._name`` where ``obj`` is not ``self``/``cls``
and ``_name`` is not defined in that same module (a class's attribute or
method, a slot, a module-level name). The twins (``_X_py.py``) and their
selectors count as one module family, as do ``connection.py`` and the
``Connection`` it extends.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "wsframe"

#: Modules whose private names are shared: a twin and the public module built on it.
FAMILIES = [
    {"_connection_py.py", "connection.py"},
]


def _modules() -> list[pathlib.Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _defined_names(tree: ast.AST) -> set[str]:
    """Every name a module defines for its own objects: attributes, methods, slots."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "__slots__":
                    value = node.value
                    if isinstance(value, (ast.Tuple, ast.List)):
                        names.update(
                            elt.value
                            for elt in value.elts
                            if isinstance(elt, ast.Constant) and isinstance(elt.value, str)
                        )
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _is_own(value: ast.expr) -> bool:
    if isinstance(value, ast.Name) and value.id in ("self", "cls"):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """The nodes inside annotations (``zlib._Compress`` there is a type, not an access)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.AST] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            annotations.append(node.returns)
        elif isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation is not None:
            annotations.append(node.annotation)
        for annotation in annotations:
            inside.update(id(sub) for sub in ast.walk(annotation))
    return inside


def _private_accesses(path: pathlib.Path, root: pathlib.Path = PACKAGE.parent) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    defined = _defined_names(tree)
    annotations = _annotation_nodes(tree)
    for family in FAMILIES:
        if path.name in family and path.parent == PACKAGE:
            for other in family - {path.name}:
                defined |= _defined_names(ast.parse((PACKAGE / other).read_text("utf-8")))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in annotations:
            continue
        attr = node.attr
        if not attr.startswith("_") or attr.startswith("__"):
            continue
        if _is_own(node.value) or attr in defined:
            continue
        found.append(f"{path.relative_to(root)}:{node.lineno}: .{attr}")
    return found


def test_the_walk_sees_every_module() -> None:
    names = {p.name for p in _modules()}
    assert {"_connection_py.py", "_driver_py.py", "connection.py", "uvicorn.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_member_of_another_module(path: pathlib.Path) -> None:
    assert _private_accesses(path) == []


def test_the_check_finds_a_violation(tmp_path: pathlib.Path) -> None:
    """The walk does flag what it is meant to (it is not vacuously green)."""
    bad = tmp_path / "probe.py"
    bad.write_text(
        "class A:\n    def f(self, ws) -> zlib._Compress:\n"
        "        self._mine = ws.conn._decoder\n        return self._mine\n",
        encoding="utf-8",
    )
    assert _private_accesses(bad, tmp_path) == ["probe.py:3: ._decoder"]
