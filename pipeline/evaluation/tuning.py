"""Values chosen by measurement on the validation benchmark (the ``tune`` stage; docs/tuning.md).

Each :class:`Sweep` names a params key, its candidates and how one candidate is scored on
``val``: the demo world's validation split (``pipeline.world.benchmarks.VAL_BENCHMARK``), which no
result row reads. The best candidate wins; a tie goes to the earlier one in the grid's order, so the
choice is a pure function of the scores.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.params import check_keys


@dataclass(frozen=True)
class Sweep:
    """A grid over ``axes`` (name -> candidates) for the params entry ``key``."""

    key: str
    axes: Mapping[str, Sequence[float]]

    def candidates(self) -> list[dict[str, float]]:
        names = list(self.axes)
        return [dict(zip(names, values)) for values in itertools.product(*(self.axes[n] for n in names))]


def run_sweep(sweep: Sweep, score: Callable[[dict[str, float]], float], on: str) -> dict[str, Any]:
    """Score every candidate of ``sweep`` on benchmark ``on``; the record of ``metrics/tuning.json``."""
    rows = [{**candidate, "val_mIoU": round(float(score(candidate)), 4)} for candidate in sweep.candidates()]
    best = max(range(len(rows)), key=lambda i: (rows[i]["val_mIoU"], -i))
    chosen = {name: rows[best][name] for name in sweep.axes}
    return {"key": sweep.key, "benchmark": on, "candidates": rows, "chosen": chosen, "val_mIoU": rows[best]["val_mIoU"]}


def sweeps_from_params(section: Mapping[str, Any]) -> dict[str, Sweep]:
    """The ``tune`` params section's grids, checked (every axis a non-empty list of numbers)."""
    known = {"zsseg_cross_dataset": ("evaluate.zsseg.cross_dataset.default", ("lam", "mask_threshold"))}
    grids = {k: v for k, v in section.items() if k != "benchmark"}
    check_keys(grids, known, "tune")
    out = {}
    for name, grid in grids.items():
        key, axes = known[name]
        if not isinstance(grid, Mapping):
            raise ValueError(f"tune.{name}: expected {{{', '.join(axes)}}} lists, got {grid!r}")
        check_keys(grid, axes, f"tune.{name}")
        for axis in axes:
            values = grid.get(axis)
            if not isinstance(values, list) or not values or not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(f"tune.{name}.{axis}: expected a non-empty list of numbers, got {values!r}")
        out[name] = Sweep(key, {axis: [float(v) for v in grid[axis]] for axis in axes})
    return out


def markdown(records: Mapping[str, Mapping[str, Any]]) -> str:
    """``reports/tuning.md``: each sweep's candidates with their val mIoU, the chosen one marked."""
    lines = ["# Values chosen on the validation benchmark", "", "Written by `dvc repro tune` (stages/tune.py).", ""]
    for record in records.values():
        axes = list(record["chosen"])
        lines += [f"## `{record['key']}` (on `{record['benchmark']}`)", ""]
        lines += ["| " + " | ".join([*axes, "val mIoU", ""]) + " |", "|" + " --- |" * (len(axes) + 2)]
        for row in record["candidates"]:
            mark = "chosen" if all(row[a] == record["chosen"][a] for a in axes) else ""
            lines.append("| " + " | ".join([*(f"{row[a]:g}" for a in axes), f"{row['val_mIoU']:.2f}", mark]) + " |")
        lines.append("")
    return "\n".join(lines)
