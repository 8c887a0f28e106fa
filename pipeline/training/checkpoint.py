"""Generic training utilities shared by the trainers (proposer, CLIP finetuning, prompt tuning).

- :func:`warmup_cosine_schedule`: per-step linear warm-up then cosine decay.
- :func:`epoch_batches`: the batches of an epoch, a pure function of (seed, epoch), so
  a resumed epoch sees exactly the batches an uninterrupted run would.
- :class:`Checkpointer`: end-of-epoch checkpoints (model, optimizer, scheduler, epoch,
  step, every RNG state, caller extras) written temp-then-rename and resumed from the
  last complete one; checkpoints of a different run (``run_key``) are never resumed.
- :class:`LossLog`: rows of (step, epoch, lr, loss terms) written as CSV/TSV for ``dvc plots``.
- :func:`progress`: a tqdm bar, shown on terminals only.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import random
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from pipeline.io import atomic_write_text

T = TypeVar("T")

CHECKPOINT_FORMAT = "ovseg-checkpoint/1"
_CHECKPOINT_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


# ----------------------------------------------------------------------------- schedule
class WarmupCosine:
    """LR multiplier for step ``s``: ``(s+1)/warmup`` during warm-up, then cosine to ``min_ratio``.

    A plain object (not a lambda) so ``LambdaLR.state_dict()`` records its settings.
    Steps past ``total_steps`` stay at ``min_ratio``.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError(f"need warmup_steps >= 0 and total_steps >= 1, got {warmup_steps}, {total_steps}")
        if not 0.0 <= min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
        self.warmup_steps, self.total_steps, self.min_ratio = warmup_steps, total_steps, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to ``step()`` once per optimizer step (not per epoch)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio))


# ----------------------------------------------------------------------------- params
def config_from_params(cls: type[T], params: Mapping[str, Any], *, what: str = "training", **overrides: Any) -> T:
    """A (frozen) dataclass built from a params section: unknown keys are an error, lists become tuples."""
    unknown = sorted(set(params) - set(cls.__dataclass_fields__))
    if unknown:
        raise KeyError(f"unknown {what} params: {', '.join(unknown)}")
    values = {**params, **overrides}
    return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})


# ----------------------------------------------------------------------------- data order
def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed derived from ``(seed, epoch)`` alone."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, drop_last: bool = True) -> list[list[int]]:
    """The epoch's batches: a permutation of ``range(num_items)`` seeded by ``(seed, epoch)``, chunked.

    Independent of any global RNG, so the order survives a resume unchanged.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    order = torch.randperm(num_items, generator=generator).tolist()
    stop = num_items - num_items % batch_size if drop_last else num_items
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


# ----------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (global), torch CPU and every CUDA device's RNG state, as plain types and tensors."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`. CUDA states are restored when the device count matches."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            warnings.warn(
                f"checkpoint holds {len(cuda)} CUDA RNG states but {torch.cuda.device_count()} devices are "
                "visible; CUDA RNG not restored, the resumed run will not be bit-identical",
                stacklevel=2,
            )


# ----------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class ResumeState:
    """Where a resumed run continues: ``epoch`` epochs and ``step`` optimizer steps are done."""

    epoch: int
    step: int
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)


class Checkpointer:
    """End-of-epoch checkpoints in ``directory`` named ``epoch-NNNN.pt``.

    Each file holds the model, optimizer and scheduler state dicts, the number of
    completed epochs and steps, all RNG states and the caller's ``extra`` (tensors
    and plain Python values only), saved with ``torch.save`` and read back with
    ``weights_only=True``. A file is written under a temporary name, fsynced and
    renamed, so a kill mid-save leaves the previous checkpoint intact. ``run_key``
    identifies the run's settings (e.g. a hash of its params): checkpoints with
    another key are not resumed and are deleted by the next save. The newest
    ``keep`` checkpoints are kept.
    """

    def __init__(self, directory: str | os.PathLike, *, run_key: str = "", keep: int = 1):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.run_key = run_key
        self.keep = keep

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints as ``(epoch, path)``, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _CHECKPOINT_NAME.match(path.name)
            if match and path.is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def save(
        self,
        *,
        epoch: int,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Checkpoint the state after ``epoch`` completed epochs and ``step`` steps; returns its path."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "run_key": self.run_key,
            "epoch": int(epoch),
            "step": int(step),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": capture_rng_state(),
            "extra": dict(extra or {}),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch-{epoch:04d}.pt"
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._prune(final)
        return final

    def clear(self) -> None:
        """Delete every checkpoint (and leftover temporary file) in the directory, then the directory if empty."""
        if not self.directory.is_dir():
            return
        for path in [p for _, p in self.checkpoints()] + list(self.directory.glob(".epoch-*.tmp-*")):
            path.unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def _prune(self, newest: Path) -> None:
        for leftover in self.directory.glob(".epoch-*.tmp-*"):  # from saves that were killed
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        mine = []
        for _, path in self.checkpoints():
            if path != newest and self._read(path, quiet=True) is None:
                path.unlink()  # another run's or unreadable
            else:
                mine.append(path)
        for path in mine[: -self.keep]:
            path.unlink()

    def _read(self, path: Path, quiet: bool = False) -> dict[str, Any] | None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file is skipped, never fatal
            if not quiet:
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                warnings.warn(f"{path}: unreadable checkpoint skipped ({reason})", stacklevel=3)
            return None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            if not quiet:
                warnings.warn(f"{path}: not an ovseg checkpoint, skipped", stacklevel=3)
            return None
        if payload.get("run_key") != self.run_key:
            if not quiet:
                warnings.warn(f"{path}: checkpoint of another run (run_key differs), not resumed", stacklevel=3)
            return None
        return payload

    def resume(
        self,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
    ) -> ResumeState | None:
        """Load the newest usable checkpoint into the given objects and restore every RNG.

        Returns ``None`` (nothing loaded) when there is none. Call after building
        the model, optimizer and scheduler and before the first epoch.
        """
        for _, path in reversed(self.checkpoints()):
            payload = self._read(path)
            if payload is None:
                continue
            model.load_state_dict(payload["model"])
            for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
                if obj is not None:
                    if payload[name] is None:
                        raise ValueError(f"{path}: checkpoint holds no {name} state")
                    obj.load_state_dict(payload[name])
            restore_rng_state(payload["rng"])
            return ResumeState(epoch=payload["epoch"], step=payload["step"], path=path, extra=payload["extra"])
        return None


# ----------------------------------------------------------------------------- loss log
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

    def append(self, *, step: int, epoch: int, lr: float, **terms: float | torch.Tensor) -> None:
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


# ----------------------------------------------------------------------------- progress
def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, enabled: bool | None = None) -> tqdm:
    """A tqdm bar over ``iterable``; by default shown only when stderr is a terminal.

    ``OVSEG_PROGRESS=0``/``1`` forces it off/on. Use ``bar.set_postfix(loss=...)`` to show values.
    """
    if enabled is None:
        env = os.environ.get("OVSEG_PROGRESS")
        enabled = env == "1" if env in ("0", "1") else sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, dynamic_ncols=True, mininterval=1.0)
