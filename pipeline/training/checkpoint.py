"""End-of-epoch checkpoints: save, resume, and the run key that says which run a checkpoint belongs to.

- :class:`Checkpointer`: checkpoints (model, optimizer, scheduler, epoch, step, every
  RNG state, caller extras) written temp-then-rename and resumed from the last complete
  one; checkpoints of a different run (``run_key``) are never resumed.
- :func:`resume_run`: the trainers' common resume step (weights, optimizer, scheduler,
  RNG and loss log), announcing where it continues.
- :func:`run_key`: a short hash of a run's settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.io import atomic_file
from pipeline.training.distributed import barrier, current
from pipeline.training.loss_log import LossLog
from pipeline.training.rng import capture_rng_state, restore_rng_state

CHECKPOINT_FORMAT = "ovseg-checkpoint/1"
_CHECKPOINT_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


def run_key(settings: Any) -> str:
    """A 16-hex-digit hash of ``settings`` (JSON-serialisable, key order irrelevant)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


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
    renamed, so a kill mid-save leaves the previous checkpoint intact. Under several
    processes (:mod:`pipeline.training.distributed`) only rank 0 writes, every process
    waits for it, and every process resumes from the same file. ``run_key``
    identifies the run's settings (e.g. a hash of its params): checkpoints with
    another key are not resumed and are deleted by the next save. The newest
    ``keep`` checkpoints are kept.

    With ``epochs`` (the run's length) the last epoch is not checkpointed: the trainer's
    caller writes the trained state as its output next, and a checkpoint of it (weights
    plus the optimizer's moments, 1.7 GB for a ViT-B/16 under AdamW) would be written only
    to be deleted. A run killed between its last epoch and that output resumes from the
    epoch before.
    """

    def __init__(self, directory: str | os.PathLike, *, run_key: str = "", keep: int = 1, epochs: int | None = None):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.run_key = run_key
        self.keep = keep
        self.epochs = epochs

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
    ) -> Path | None:
        """Checkpoint the state after ``epoch`` completed epochs and ``step`` steps; returns its path
        (``None`` for the run's last epoch, which is not checkpointed)."""
        if self.epochs is not None and epoch >= self.epochs:
            return None
        final = self.directory / f"epoch-{epoch:04d}.pt"
        if current().is_main:
            self._write(
                final, epoch=epoch, step=step, model=model, optimizer=optimizer, scheduler=scheduler, extra=extra
            )
        barrier()
        return final

    def _write(
        self,
        final: Path,
        *,
        epoch: int,
        step: int,
        model: torch.nn.Module,
        optimizer: Any,
        scheduler: Any,
        extra: Mapping[str, Any] | None,
    ) -> None:
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
        with atomic_file(final, fsync=True) as fh:  # temporaries are named .<name>.tmp-*, which _prune sweeps
            torch.save(payload, fh)
        self._prune(final)

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


def resume_run(
    checkpointer: Checkpointer,
    log: LossLog,
    *,
    desc: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> tuple[int, int, ResumeState | None]:
    """``(start_epoch, step, resumed)``: the newest checkpoint of this run loaded into the objects and
    ``log`` (which the trainers keep in ``extra["log"]``), or ``(0, 0, None)`` for a fresh start."""
    resumed = checkpointer.resume(model=model, optimizer=optimizer, scheduler=scheduler)
    if resumed is None:
        return 0, 0, None
    log.load_state_dict(resumed.extra["log"])
    print(f"{desc}: resumed from {resumed.path} after epoch {resumed.epoch}")
    return resumed.epoch, resumed.step, resumed
