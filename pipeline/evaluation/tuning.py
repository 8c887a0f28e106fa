"""Values chosen by measurement on the validation benchmark (the ``tune`` stage; docs/tuning.md).

Each :class:`Sweep` names a params key and its candidates, scored on ``val``: the demo world's
validation split (``pipeline.world.benchmarks.VAL_BENCHMARK``), which no result row reads. The best
candidate wins; a tie goes to the earlier one in the grid's order, so the choice is a pure function
of the scores. :func:`ensemble_sweep` scores every exponent of a crop-path ensemble from one pass of
the proposer and CLIP: only the ensemble differs between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.params import check_keys
from model.metrics import ConfusionMatrix
from model.precision import inference_autocast
from model.proposal_segmenter import image_to_tensor
from model.scoring import ensemble, predict_labels
from model.two_stage import TwoStageSegmenter
from pipeline.datasets.segmentation import IGNORE, SegmentationDataset
from pipeline.evaluation.miou import EvalConfig, benchmark_keys, resize_label, segmented_batches


@dataclass(frozen=True)
class Sweep:
    """A grid over ``axes`` (name -> candidates) for the params entry ``key``."""

    key: str
    axes: Mapping[str, Sequence[float]]

    def candidates(self) -> list[dict[str, float]]:
        names = list(self.axes)
        return [dict(zip(names, values)) for values in itertools.product(*(self.axes[n] for n in names))]


def run_sweep(sweep: Sweep, scores: Callable[[list[dict[str, float]]], list[float]], on: str) -> dict[str, Any]:
    """Score every candidate of ``sweep`` on benchmark ``on`` (``scores``: all of them at once, in order); the
    record of ``metrics/tuning.json``."""
    candidates = sweep.candidates()
    rows = [{**c, "val_mIoU": round(float(s), 4)} for c, s in zip(candidates, scores(candidates), strict=True)]
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
    if not records:
        lines += ["Nothing was swept: the world has no validation benchmark.", ""]
    for record in records.values():
        axes = list(record["chosen"])
        lines += [f"## `{record['key']}` (on `{record['benchmark']}`)", ""]
        lines += ["| " + " | ".join([*axes, "val mIoU", ""]) + " |", "|" + " --- |" * (len(axes) + 2)]
        for row in record["candidates"]:
            mark = "chosen" if all(row[a] == record["chosen"][a] for a in axes) else ""
            lines.append("| " + " | ".join([*(f"{row[a]:g}" for a in axes), f"{row['val_mIoU']:.2f}", mark]) + " |")
        lines.append("")
    return "\n".join(lines)


@torch.no_grad()
def ensemble_sweep(
    segmenter: TwoStageSegmenter,
    dataset: SegmentationDataset,
    settings: EvalConfig,
    seen: np.ndarray | None,
    lams: list[float],
) -> dict[float, float]:
    """The mIoU of the crop path on ``dataset`` with CLIP's exponent ``lam`` on every class, for each of ``lams``:
    what :func:`~pipeline.evaluation.miou.evaluate_benchmark` gives for each, from one proposer and CLIP pass."""
    names = list(dataset.class_names)
    confusions = {lam: ConfusionMatrix(len(names), ignore_index=IGNORE) for lam in lams}
    with inference_autocast(settings.precision, segmenter.device):
        text = segmenter.text_embeddings(names)
        batches = segmented_batches(dataset, benchmark_keys(dataset, settings), settings, f"sweep {dataset.name}")
        for samples, images in batches:
            proposals = segmenter.propose_images(images, names, text)
            tensors = [image_to_tensor(image, segmenter.device) for image in images]
            p_clip = segmenter.clip_probs(tensors, [segmenter.clip_masks(p) for p in proposals], text)
            for lam, confusion in confusions.items():
                for sample, props, clip_probs in zip(samples, proposals, p_clip):
                    labels = predict_labels(ensemble(props.class_probs[0], clip_probs, lam), props.mask_probs[0])
                    prediction = resize_label(labels.to("cpu", torch.int32).numpy(), sample.label.shape)
                    confusion.update(prediction, sample.label)
    return {lam: float(confusion.summary(seen)["mIoU"]) for lam, confusion in confusions.items()}
