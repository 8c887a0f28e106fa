"""Wall times of stages, kept in ``metrics/timings/`` apart from the tracked metrics."""

from __future__ import annotations

import time
from typing import Any

from core import paths
from core.io import write_json
from core.numerics import numerics_record


class StageTimer:
    """Measures a stage's wall time; :meth:`write` records it in ``metrics/timings/<stage>.json``, with the
    numerics it ran under (:func:`core.numerics.numerics_record`: the pins, the CPU, the library versions).

    Timings vary from run to run, so they are kept out of the DVC-tracked metrics
    (whose hashes must be reproducible) and out of dvc.yaml.
    """

    def __init__(self, stage: str):
        self.stage = stage
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def write(self, **rates: float) -> dict[str, Any]:
        record = {
            "stage": self.stage,
            "seconds": round(self.seconds(), 1),
            **{k: round(float(v), 2) for k, v in rates.items()},
            "numerics": numerics_record(),
        }
        write_json(paths.TIMINGS / f"{self.stage}.json", record)
        return record
