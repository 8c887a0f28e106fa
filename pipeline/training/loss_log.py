"""Per-step loss terms, kept through resumes and written as CSV for ``dvc plots``."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from core.io import atomic_write_text


class LossLog:
    """Rows of ``step, epoch, lr`` and loss terms, written as CSV (``.csv``) or TSV (``.tsv``).

    Every row must carry the same terms as the first. ``state_dict``/``load_state_dict``
    let a checkpoint carry the log, so a resumed run writes the full history.
    """

    FIXED = ("step", "epoch", "lr")

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else list(self.FIXED)

    def append(self, *, step: int, epoch: int, lr: float | torch.Tensor, **terms: float | torch.Tensor) -> None:
        row: dict[str, float] = {"step": int(step), "epoch": int(epoch), "lr": float(lr)}
        for name in sorted(terms):
            value = terms[name]
            row[name] = float(value.item() if isinstance(value, torch.Tensor) else value)
        if self.rows and list(row) != self.columns:
            raise ValueError(f"loss log row has columns {list(row)}, expected {self.columns}")
        self.rows.append(row)

    def epoch_means(self, epoch: int) -> dict[str, float]:
        """Mean of every loss term (and lr) over the rows of ``epoch``."""
        rows = [r for r in self.rows if r["epoch"] == epoch]
        if not rows:
            raise KeyError(f"no loss log rows for epoch {epoch}")
        return {k: sum(r[k] for r in rows) / len(rows) for k in self.columns if k not in ("step", "epoch")}

    def to_text(self, delimiter: str = ",") -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([row["step"], row["epoch"], *(format(row[k], ".6g") for k in self.columns[2:])])
        return buffer.getvalue()

    def write(self, path: str | os.PathLike) -> Path:
        """Write atomically; the delimiter follows the suffix (``.tsv`` tab, otherwise comma)."""
        path = Path(path)
        atomic_write_text(path, self.to_text("\t" if path.suffix == ".tsv" else ","))
        return path

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]
