"""Results: the cells, the derived numbers and ratios, the table and the JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from .cases import REFERENCES, WSFRAME, Case, Group
from .timing import Timing

#: A JSON object of the report (values of any JSON type).
JSONObject = dict[str, Any]

__all__ = ["LABELS", "Cell", "GroupResult", "baseline", "print_group", "to_json"]

#: Column key -> header shown in the table.
LABELS = {
    "wsframe-c": "wsframe-C",
    "wsframe-py": "wsframe-py",
    "copy": "bytes copy",
    "decode": "bytes.decode",
}


def label(column: str) -> str:
    """The header of a column."""
    return LABELS.get(column, column)


@dataclass
class Cell:
    """One implementation on one row: a timing, or why there is none."""

    column: str
    status: str  # "ok", "n/a" or "error"
    reason: str = ""
    timing: Optional[Timing] = None

    @property
    def ns(self) -> Optional[float]:
        """Best nanoseconds per operation, if measured."""
        return self.timing.best_ns if self.timing is not None else None


@dataclass
class GroupResult:
    """A table's worth of cells: ``cells[case.key][column]``."""

    group: Group
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)


# ------------------------------------------------------------------ numbers


def baseline(group: Group, result: GroupResult) -> Optional[str]:
    """The column ratios are computed against: wsframe-C, else wsframe-py."""
    for column in WSFRAME:
        if column in group.columns and any(
            row.get(column) is not None and row[column].ns for row in result.cells.values()
        ):
            return column
    return None


def ratios(group: Group, row: dict[str, Cell], base: Optional[str]) -> JSONObject:
    """Other column's time / baseline's time (> 1: the baseline is faster)."""
    out: JSONObject = {"baseline": base, "speedup": {}, "best_peer": None}
    base_ns = row[base].ns if base is not None and base in row else None
    if not base_ns:
        return out
    best: Optional[tuple[float, str]] = None
    for column in group.columns:
        ns = row[column].ns if column in row else None
        if column == base or not ns:
            continue
        out["speedup"][column] = ns / base_ns
        if column not in WSFRAME and column not in REFERENCES and (best is None or ns < best[0]):
            best = (ns, column)
    if best is not None:
        out["best_peer"] = best[1]
        out["best_peer_speedup"] = best[0] / base_ns
    if "copy" in row and row["copy"].ns and group.name == "apply_mask":
        out["percent_of_copy"] = 100.0 * base_ns / row["copy"].ns
    return out


def derived(group: Group, case: Case, ns: float) -> dict[str, float]:
    """Throughputs derived from nanoseconds per operation."""
    out = {"bytes_per_op": float(case.bytes_per_op), "frames_per_op": float(case.frames)}
    out["gb_per_s"] = case.bytes_per_op / ns if ns else 0.0
    out["ns_per_frame"] = ns / case.frames
    out["frames_per_s"] = case.frames / ns * 1e9 if ns else 0.0
    return out


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _duration(ns: float) -> str:
    for scale, suffix in ((1e6, "ms"), (1e3, "us")):
        if ns >= scale:
            return f"{ns / scale:.3g} {suffix}"
    return f"{ns:.3g} ns"


def row_unit(group: Group, case: Case) -> str:
    """What the cells of this row show."""
    if group.unit == "frames":
        return "frames/s"
    if group.unit == "ns_frame":
        return "time/frame"
    return "time/op" if case.size < 1024 else "GB/s"


def show(group: Group, case: Case, cell: Optional[Cell]) -> str:
    """A cell as printed in the table."""
    if cell is None:
        return ""
    if cell.status != "ok" or cell.ns is None:
        return cell.status
    unit = row_unit(group, case)
    if unit == "frames/s":
        return _si(case.frames / cell.ns * 1e9)
    if unit == "GB/s":
        return f"{case.bytes_per_op / cell.ns:.3g}"
    return _duration(cell.ns / case.frames)


# -------------------------------------------------------------------- table


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        print("  " + "  ".join(cells).rstrip(), file=out)
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths), file=out)


def print_group(result: GroupResult, out: TextIO) -> None:
    """Print one group: numbers, then ratios, then notes."""
    group = result.group
    base = baseline(group, result)
    print(f"\n== {group.title} ==", file=out)
    header = ["row", "unit", *(label(c) for c in group.columns)]
    rows = [header]
    for case in group.cases:
        row = result.cells.get(case.key, {})
        rows.append(
            [case.label, row_unit(group, case)]
            + [show(group, case, row.get(c)) for c in group.columns]
        )
    _table(rows, out)

    if base is None:
        print("  (no wsframe timing: no ratios)", file=out)
    else:
        others = [c for c in group.columns if c != base]
        extra = [f"{label(base)} % of copy"] if group.name == "apply_mask" else []
        header = [f"{label(base)} speedup", *(f"vs {label(c)}" for c in others)]
        peers = any(c not in WSFRAME and c not in REFERENCES for c in group.columns)
        header += ["vs best peer"] * peers + extra
        rows = [header]
        for case in group.cases:
            row = result.cells.get(case.key, {})
            r = ratios(group, row, base)
            cells = [case.label]
            cells += [f"x{r['speedup'][c]:.2f}" if c in r["speedup"] else "-" for c in others]
            if r["best_peer"]:
                cells.append(f"x{r['best_peer_speedup']:.2f} ({label(r['best_peer'])})")
            elif peers:
                cells.append("-")
            if extra:
                pct = r.get("percent_of_copy")
                cells.append(f"{pct:.0f}%" if pct is not None else "-")
            rows.append(cells)
        print("", file=out)
        _table(rows, out)
        print(
            f"  (speedup = other's time / {label(base)}'s time: above 1, {label(base)} is faster)",
            file=out,
        )

    reasons: dict[str, list[str]] = {}
    for row in result.cells.values():
        for column, cell in row.items():
            if cell.status != "ok" and cell.reason not in reasons.setdefault(column, []):
                reasons[column].append(cell.reason)
    for column in group.columns:
        parts = []
        if column in group.notes:
            parts.append(group.notes[column])
        for reason in reasons.get(column, []):
            parts.append(f"n/a: {reason}")
        if parts:
            print(f"  {label(column)}: " + "; ".join(parts), file=out)


# --------------------------------------------------------------------- JSON


def group_json(result: GroupResult) -> JSONObject:
    """Every number of one group."""
    group = result.group
    base = baseline(group, result)
    rows = []
    for case in group.cases:
        row = result.cells.get(case.key, {})
        columns: JSONObject = {}
        for column in group.columns:
            cell = row.get(column)
            if cell is None:
                continue
            entry: JSONObject = {"status": cell.status}
            if cell.reason:
                entry["reason"] = cell.reason
            if cell.timing is not None:
                entry.update(cell.timing.as_dict())
                entry.update(derived(group, case, cell.timing.best_ns))
            columns[column] = entry
        rows.append(
            {
                "key": case.key,
                "label": case.label,
                "payload_size": case.size,
                "masked": case.masked,
                "frames_per_op": case.frames,
                "results": columns,
                "ratios": ratios(group, row, base),
            }
        )
    return {
        "name": group.name,
        "title": group.title,
        "columns": list(group.columns),
        "notes": group.notes,
        "rows": rows,
    }


def to_json(meta: JSONObject, results: list[GroupResult], path: str) -> None:
    """Write the metadata and every group to ``path``."""
    document = {"meta": meta, "groups": [group_json(r) for r in results]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
