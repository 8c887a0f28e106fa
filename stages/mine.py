"""Stage ``mine``: (mask, noun) pairs from the training images and their caption nouns, by an Apache Beam job.

Reads params ``mine``, the world (``data/world/manifest.json``: captions file,
images, and in the demo world the truth), the caption nouns (``data/nouns/``),
the base CLIP (``artifacts/clip_base``) and the proposer (``artifacts/proposer``).
Writes ``data/pairs/`` (``pipeline.beam.schemas.PAIRS`` shards) and
``data/rejects/mine/`` (``pipeline.beam.schemas.REJECTS`` shards), replaced
together once every input is accounted for, then ``metrics/mine.json``
(counts, rejects by reason, score distributions and, in the demo world, the
mining quality of :mod:`pipeline.mining.quality`), ``plots/mine/nouns.csv``
(the most mined nouns), ``plots/mine/pairs.png`` (a contact sheet: a few crops of each of
the most frequent nouns, in the demo world marked right or wrong against the truth, see
:mod:`pipeline.mining.pair_pictures`) and ``metrics/timings/mine.json`` (wall time, images/s).
The job is :mod:`pipeline.mining.job`.

    python -m stages.mine [--params params.yaml] [--manifest data/world/manifest.json] [--nouns data/nouns]
                          [--clip artifacts/clip_base] [--proposer artifacts/proposer] [--out data/pairs]
                          [--rejects data/rejects/mine] [--metrics metrics/mine.json] [--plots plots/mine]
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from core import paths
from core.cli import exit_process
from core.device import pick_device
from core.io import atomic_write_bytes, atomic_write_text
from core.params import check_keys, load_params
from core.timing import StageTimer
from model.precision import resolve_inference_precision
from pipeline.beam.stage import beam_stage_main, rejects_summary
from pipeline.mining.config import MiningConfig

PLOT_NOUNS = 50
#: Without ``mine.runner``: worker threads in the stage's process (torch releases the GIL), see the README.
DEFAULT_RUNNER = {"runner": "direct-threads"}

LOG = logging.getLogger("stages.mine")

# Settings keys of the params section (every MiningConfig field but the resolved device).
_SETTINGS_KEYS = tuple(f.name for f in fields(MiningConfig) if f.name != "device")


@dataclass(frozen=True)
class MineStageConfig:
    """The ``mine`` params section, validated: the mining settings plus shards, runner and device."""

    settings: MiningConfig
    num_shards: int = 4
    device: str = "auto"
    runner: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RUNNER))

    @classmethod
    def from_params(cls, section: Mapping[str, Any], device: str | None = None) -> MineStageConfig:
        """Build from the params mapping; unknown keys and bad values raise ``ValueError`` naming the key.

        ``device`` (resolved, e.g. ``"cuda"``) goes into the settings; None resolves ``section.device``.
        """
        if not isinstance(section, Mapping):
            raise ValueError("params 'mine' must be a mapping")
        check_keys(section, set(_SETTINGS_KEYS) | {"num_shards", "device", "runner"}, "params 'mine'")
        num_shards = section.get("num_shards", 4)
        if not isinstance(num_shards, int) or isinstance(num_shards, bool) or num_shards < 1:
            raise ValueError(f"params 'mine.num_shards' must be a positive integer, got {num_shards!r}")
        runner = section.get("runner", DEFAULT_RUNNER)
        if not isinstance(runner, Mapping):
            raise ValueError("params 'mine.runner' must be a mapping (runner, workers, dask_address, options)")
        requested = section.get("device", "auto")
        if device is None:
            device = str(pick_device(requested))
        try:
            values = {key: section[key] for key in _SETTINGS_KEYS if key in section}
            values["precision"] = resolve_inference_precision(values.get("precision", "fp32"), device)
            settings = MiningConfig(**values, device=device)
        except ValueError as exc:
            raise ValueError(f"params 'mine': {exc}") from None
        return cls(settings=settings, num_shards=num_shards, device=str(requested), runner=dict(runner))


def noun_plot_csv(frequencies: list[tuple[str, int]], limit: int = PLOT_NOUNS) -> str:
    """``noun,pairs`` rows of the ``limit`` most mined nouns, for ``dvc plots``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["noun", "pairs"])
    writer.writerows(frequencies[:limit])
    return buffer.getvalue()


def build_pairs(params: MineStageConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Run the job and evaluate it; return the metrics (deterministic values only)."""
    from pipeline.beam.schemas import NOUNS
    from pipeline.beam.shards import read_shards
    from pipeline.datasets.manifest import load_world
    from pipeline.mining.job import noun_frequencies, run_mine_job
    from pipeline.mining.pair_pictures import contact_sheet, sheet_judge
    from pipeline.mining.quality import evaluate_mining

    timer = StageTimer("mine")
    world = load_world(args.manifest)
    captions = world.captions()
    outputs = run_mine_job(
        captions,
        args.nouns,
        args.out,
        args.rejects,
        proposer_dir=args.proposer,
        clip_dir=args.clip,
        settings=params.settings,
        num_shards=params.num_shards,
        runner_cfg=params.runner,
    )
    metrics = dict(outputs.counts)
    metrics["quality"] = (
        evaluate_mining(outputs.pairs, read_shards(args.nouns, NOUNS), world) if world.truth_paths else None
    )
    atomic_write_text(args.plots / "nouns.csv", noun_plot_csv(noun_frequencies(outputs.pairs)))
    buffer = io.BytesIO()
    contact_sheet(outputs.pairs, world.images_dir, sheet_judge(world)).save(buffer, format="PNG")
    atomic_write_bytes(args.plots / "pairs.png", buffer.getvalue())
    seconds = timer.seconds()
    timer.write(
        images_per_s=metrics["images"] / seconds if seconds > 0 else 0.0,
        pairs_per_s=metrics["pairs"] / seconds if seconds > 0 else 0.0,
    )
    return metrics


#: The stage's path options: (name, default, what).
OPTIONS = (
    ("manifest", paths.WORLD_MANIFEST, "world manifest"),
    ("nouns", paths.NOUNS, "nouns shards folder"),
    ("clip", paths.CLIP_BASE, "CLIP folder"),
    ("proposer", paths.PROPOSER, "proposer folder"),
    ("out", paths.PAIRS, "pairs shards folder"),
    ("rejects", paths.MINE_REJECTS, "rejects folder"),
    ("metrics", paths.stage_metrics("mine"), "metrics file"),
    ("plots", paths.MINE_PLOTS, "plots folder"),
)


def summary(metrics: dict[str, Any], args: argparse.Namespace) -> str:
    """What the stage prints: counts, rejects and, in the demo world, the mining quality."""
    lines = (
        f"mine: {metrics['images']} images -> {metrics['pairs']} pairs of {metrics['images_with_pairs']} images, "
        f"{metrics['unique_nouns']} unique nouns -> {args.out}\nmine: rejects: {rejects_summary(metrics['rejects'])} "
        f"-> {args.rejects}"
    )
    quality = metrics["quality"]
    if quality is not None:
        lines += (
            f"\nmine: precision {quality['precision']} (IoU ≥ {quality['iou_threshold']}, {quality['class_pairs']} "
            f"class pairs), non-class share {quality['non_class_share']}, class recall {quality['class_recall']} "
            f"({quality['classes_with_pairs']}/{quality['classes_in_nouns']})"
        )
    return lines


def job(args: argparse.Namespace) -> dict[str, Any]:
    return build_pairs(MineStageConfig.from_params(load_params("mine", args.params)), args)


main = beam_stage_main("mine", __doc__, OPTIONS, job, summary)


if __name__ == "__main__":
    exit_process(main())
