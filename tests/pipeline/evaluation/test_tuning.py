"""Choosing values on the validation benchmark: the grid, the choice, the report, and params that follow it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.params import load_params
from pipeline.evaluation.tuning import Sweep, markdown, run_sweep, sweeps_from_params

REPO = Path(__file__).resolve().parents[3]


def test_the_best_candidate_wins_and_a_tie_goes_to_the_earlier_one():
    sweep = Sweep("evaluate.x", {"lam": [0.5, 0.7], "mask_threshold": [0.4, 0.5]})
    assert [tuple(c.values()) for c in sweep.candidates()] == [(0.5, 0.4), (0.5, 0.5), (0.7, 0.4), (0.7, 0.5)]
    scores = {(0.5, 0.4): 20.0, (0.5, 0.5): 22.0, (0.7, 0.4): 22.0, (0.7, 0.5): 21.0}
    record = run_sweep(sweep, lambda candidates: [scores[(c["lam"], c["mask_threshold"])] for c in candidates], "val")
    assert record["chosen"] == {"lam": 0.5, "mask_threshold": 0.5} and record["val_mIoU"] == 22.0
    assert record["benchmark"] == "val" and len(record["candidates"]) == 4
    table = markdown({"s": record})
    assert "| 0.5 | 0.5 | 22.00 | chosen |" in table and table.count("chosen |") == 1


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"zsseg_cross_dataset": {"lam": [], "mask_threshold": [0.4]}}, "non-empty list of numbers"),
        ({"zsseg_cross_dataset": {"lam": [0.5]}}, "non-empty list"),
        ({"zsseg_cross_dataset": {"lam": [0.5], "mask_threshold": [0.4], "beta": [1]}}, "unknown keys"),
        ({"alpha": {"alpha": [0.5]}}, "unknown keys"),
    ],
)
def test_a_bad_grid_is_refused(section, message):
    with pytest.raises(ValueError, match=message):
        sweeps_from_params({"benchmark": "val", **section})


def test_params_hold_the_values_the_committed_tuning_chose():
    """params.yaml must carry what `dvc repro tune` chose on val (metrics/tuning.json): a value changed by hand,
    or a grid changed without rerunning the stage, fails here."""
    tuning = json.loads((REPO / "metrics/tuning.json").read_text())
    grid = sweeps_from_params(load_params("tune", REPO / "params.yaml"))["zsseg_cross_dataset"]
    record = tuning["zsseg_cross_dataset"]
    assert [{k: row[k] for k in grid.axes} for row in record["candidates"]] == grid.candidates()
    assert record["benchmark"] == load_params("tune", REPO / "params.yaml")["benchmark"] == "val"
    default = load_params("evaluate", REPO / "params.yaml")["zsseg"]["cross_dataset"]["default"]
    assert {k: float(v) for k, v in default.items()} == record["chosen"]
