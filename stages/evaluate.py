"""Stage ``evaluate``: variants on one benchmark → mIoU (all / seen / unseen) and pictures.

    python -m stages.evaluate --variant ft_mpt --benchmark demo
    python -m stages.evaluate --variant base mpt oracle --benchmark demo   # several, one process

Variants (see :mod:`pipeline.evaluation.variants`): ``base``, ``mpt``, ``ft``, ``ft_mpt``,
``ft_gt`` (the two-stage segmenter with ``artifacts/clip_<variant>``), ``oracle``
(proposals labelled by the ground truth) and ``gt_masks_<clip>`` (ground-truth
segments classified by that CLIP). Reads the ``evaluate`` params section, the world
manifest, ``artifacts/proposer`` (except ``gt_masks_*``) and the CLIP folders; writes,
for each variant,

* ``metrics/eval/<variant>/<benchmark>.json`` — figures in percent, deterministic;
* ``plots/eval/<variant>/<benchmark>_per_class.png`` — per-class IoU bars;
* ``plots/eval/<variant>/<benchmark>_overlays.png`` — image | ground truth | prediction;
* ``metrics/timings/evaluate_<variant>_<benchmark>.json`` — wall time and images/s
  (from loading the variant's CLIP to its last output; imports not included).
"""
from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.classnames import display_names
from core.cli import command, parser
from core.device import pick_device, set_threads
from core.io import atomic_write_bytes, write_json
from core.params import load_params
from core.timing import StageTimer
from model.clip import load_clip_folder
from model.proposer import load_proposer
from model.two_stage import TwoStageSegmenter
from pipeline.datasets.manifest import load_world
from pipeline.evaluation.iou_chart import per_class_iou_chart
from pipeline.evaluation.label_overlay import comparison_sheet
from pipeline.evaluation.segmentation import EvalConfig, EvaluationRun, evaluate_benchmark, metrics_record, seen_mask
from pipeline.evaluation.variants import Variant, variant, variant_names

WORLD = Path("data/world/manifest.json")
ARTIFACTS = Path("artifacts")
METRICS_DIR = Path("metrics/eval")
PLOTS_DIR = Path("plots/eval")


def output_paths(variant_name: str, benchmark: str) -> dict[str, Path]:
    """Where one evaluation writes: ``metrics``, ``per_class`` and ``overlays``."""
    return {
        "metrics": METRICS_DIR / variant_name / f"{benchmark}.json",
        "per_class": PLOTS_DIR / variant_name / f"{benchmark}_per_class.png",
        "overlays": PLOTS_DIR / variant_name / f"{benchmark}_overlays.png",
    }


def clip_folder(spec: Variant, artifacts: Path) -> Path:
    """``artifacts/clip_<clip>`` of the variant; ``FileNotFoundError`` when it is missing."""
    folder = artifacts / f"clip_{spec.clip}"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: CLIP folder of variant {spec.name!r} not found")
    return folder


def write_pictures(
    run: EvaluationRun,
    record: dict[str, Any],
    class_names: list[str],
    seen: np.ndarray | None,
    paths: dict[str, Path],
) -> None:
    """The per-class IoU chart and, when examples were kept, the overlay sheet."""
    names = display_names(class_names)
    seen_by_name = None if seen is None else {name: bool(s) for name, s in zip(names, seen)}
    title = f"{record['variant']} on {record['benchmark']}: per-class IoU ({record['images']} images)"
    per_class_iou_chart(record["per_class"], seen_by_name, paths["per_class"], title=title, mean=record["mIoU"])
    if run.examples:
        rows = [(example.key, example.image, example.label, example.prediction) for example in run.examples]
        sheet = comparison_sheet(rows, class_names, title=f"{record['variant']} on {record['benchmark']}")
        buffer = io.BytesIO()
        sheet.save(buffer, format="PNG")
        atomic_write_bytes(paths["overlays"], buffer.getvalue())


def run(
    variant_names: Sequence[str],
    benchmark: str,
    params: dict[str, Any],
    *,
    world_path: Path = WORLD,
    artifacts: Path = ARTIFACTS,
) -> list[dict[str, Any]]:
    """Evaluate each variant in turn (one process: one import, one world, one proposer); write
    the outputs listed in the module docstring for each; return their metrics records.

    Every input folder is checked before any work starts.
    """
    specs = [variant(name) for name in variant_names]
    if len({spec.name for spec in specs}) != len(specs):
        raise ValueError(f"a variant is listed twice: {', '.join(variant_names)}")
    params = dict(params)
    device = pick_device(params.pop("device", "auto"))
    set_threads(params.pop("threads", None), "evaluate.threads")
    settings = EvalConfig.from_params(params)
    world = load_world(world_path)
    dataset = world.benchmark(benchmark)
    seen = seen_mask(dataset.class_names, world.classes)
    for spec in specs:
        clip_folder(spec, artifacts)
    proposer = None
    if any(spec.needs_proposer for spec in specs):
        folder = artifacts / "proposer"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: proposer folder not found")
        proposer = load_proposer(folder, device)
    records = []
    for spec in specs:
        timer = StageTimer(f"evaluate_{spec.name}_{benchmark}")
        segmenter = TwoStageSegmenter(
            proposer if spec.needs_proposer else None,
            load_clip_folder(clip_folder(spec, artifacts), device),
            lam=settings.lam,
            lam_seen=settings.lam_seen,
            lam_unseen=settings.lam_unseen,
            mask_threshold=settings.mask_threshold,
            expand_ratio=settings.expand_ratio,
            clip_batch_size=settings.clip_batch_size,
        )
        print(f"evaluate {spec.name}/{benchmark}: {spec.description}; {len(dataset)} images, "
              f"{len(dataset.class_names)} classes, on {device} ({torch.get_num_threads()} CPU threads)")
        result = evaluate_benchmark(segmenter, dataset, spec, settings, seen)
        record = metrics_record(result, dataset.class_names, seen, variant=spec, benchmark=benchmark,
                                settings=settings)
        paths = output_paths(spec.name, benchmark)
        write_json(paths["metrics"], record)
        write_pictures(result, record, list(dataset.class_names), seen, paths)
        rate = result.images / max(timer.seconds(), 1e-9)
        timing = timer.write(images_per_s=rate, images=result.images)
        print(f"evaluate {spec.name}/{benchmark}: {format_figures(record)}; "
              f"{result.images} images in {timing['seconds']} s ({rate:.1f} images/s)")
        records.append(record)
    return records


def format_figures(record: dict[str, Any]) -> str:
    """``mIoU 12.3 (seen 14.0, unseen 9.1, hIoU 11.0)``, ``n/a`` for undefined figures."""
    def fmt(key: str) -> str:
        value = record.get(key)
        return "n/a" if value is None else f"{value:.1f}"

    return f"mIoU {fmt('mIoU')} (seen {fmt('mIoU_seen')}, unseen {fmt('mIoU_unseen')}, hIoU {fmt('hIoU')})"


@command("evaluate")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg evaluate", __doc__)
    cli.add_argument("--variant", required=True, nargs="+", choices=variant_names(), metavar="VARIANT",
                        help=f"one or more of: {', '.join(variant_names())} (several run in one process)")
    cli.add_argument("--benchmark", required=True, help="a benchmark of the world manifest (e.g. demo)")
    cli.add_argument("--params", type=Path, default=None, help="params file (default: params.yaml)")
    cli.add_argument("--world", type=Path, default=WORLD, help=f"world manifest (default: {WORLD})")
    cli.add_argument("--artifacts", type=Path, default=ARTIFACTS,
                        help="folder holding clip_<name>/ and proposer/ (default: artifacts)")
    args = cli.parse_args(argv)
    run(args.variant, args.benchmark, load_params("evaluate", args.params),
        world_path=args.world, artifacts=args.artifacts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
