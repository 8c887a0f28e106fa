"""What every stage script shares: its own params section, seeding, device choice, timing."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import torch

PARAMS_FILE = Path(os.environ.get("OVSEG_PARAMS", "params.yaml"))


def load_params(section: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return one top-level section of params.yaml (each stage reads only its own)."""
    path = Path(path) if path is not None else PARAMS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found (run from the repository root)")
    with open(path, encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if section not in params:
        raise KeyError(f"{path}: no '{section}' section")
    return params[section]


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def pick_device(requested: str | None = "auto") -> "torch.device":
    """'auto' → CUDA when available, else CPU; anything else is passed to torch.device."""
    import torch

    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{requested}' requested but CUDA is not available")
    return device


TIMINGS_DIR = Path("metrics/timings")


class StageTimer:
    """Measures a stage's wall time; :meth:`write` records it in ``metrics/timings/<stage>.json``.

    Timings vary from run to run, so they are kept out of the DVC-tracked metrics
    (whose hashes must be reproducible) and out of dvc.yaml.
    """

    def __init__(self, stage: str):
        self.stage = stage
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def write(self, **rates: float) -> dict[str, Any]:
        from pipeline.io import write_json

        record = {"stage": self.stage, "seconds": round(self.seconds(), 1),
                  **{k: round(float(v), 2) for k, v in rates.items()}}
        write_json(TIMINGS_DIR / f"{self.stage}.json", record)
        return record
