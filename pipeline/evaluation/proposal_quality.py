"""How good are a proposer's masks? Segment recall and oracle-classifier mIoU on a benchmark.

A ground-truth *segment* is all pixels of one class in one image (as in semantic
benchmarks; two zebras in one image form one segment). Each proposal is binarised
at ``mask_threshold``.

* **Recall**: the share of segments matched by some binarised proposal with
  IoU ≥ ``iou_threshold`` (pixels the benchmark ignores count for neither side).
  Reported twice: over *all* queries (``recall``; the proposer's full output, what
  the two-stage segmenter and the oracle use) and over the queries whose objectness
  ``1 − p(no object)`` is at least ``score_threshold`` (``recall_scored``). The
  objectness is scored against the proposer's stored training vocabulary (the seen
  classes), so it measures "looks like a seen class"; a low ``recall_scored`` on
  unseen classes with a high ``recall`` means the masks exist but a score filter
  would drop them. Recall is pooled over segments (micro average) for all classes
  and for the seen / unseen / thing / stuff subsets.
* **Oracle mIoU**: each proposal takes the ground-truth class it overlaps most
  (:func:`model.oracle.oracle_proposal_labels`), the semantic map is
  ``Σ_q onehot_q · mask_prob_q`` and its argmax is scored with the usual
  confusion-matrix mIoU (percent). ``oracle_scored`` does the same with the scored
  queries only.

Every figure is deterministic for given weights; the inference time is returned
beside the figures, never inside them.

The command:

    ovseg proposer-bench [--proposer artifacts/proposer] [--benchmark demo] [--json [FILE]]

Recall is the share of ground-truth segments (all pixels of one class in an image)
that some binarised proposal covers with IoU ≥ ``--iou``, counted over all queries
and over the queries with objectness ≥ ``--score-threshold``, for all classes and
the seen / unseen / thing / stuff subsets (from the world's class list). The oracle
mIoU labels each proposal with its best-overlapping ground-truth class. The
thresholds default to those the proposer stage benchmarked with. ``--json`` prints
the full result (per class too) as JSON, or writes it to FILE.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import paths
from core.cli import command, parser
from core.device import add_device_arguments, pick_device, set_threads
from core.io import dumps_json, write_json
from core.params import check_fractions
from core.progress import progress
from model.masks import mask_iou
from model.metrics import ConfusionMatrix
from model.oracle import as_label_tensor, gt_segments, oracle_semantic_map
from model.proposer import MaskProposer, propose
from model.proposer.io import load_trained_proposer, stored_mask_threshold
from model.scoring import scores_to_labels
from pipeline.datasets.manifest import load_world
from pipeline.datasets.segmentation import SegmentationDataset
from pipeline.evaluation.gt_gauge import class_subsets

SUBSETS = ("seen", "unseen", "things", "stuff")
ORACLE_KEYS = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "pACC")


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the benchmark: mask binarisation, match IoU and objectness score."""

    mask_threshold: float = 0.4
    iou_threshold: float = 0.5
    score_threshold: float = 0.5
    batch_size: int = 16

    def __post_init__(self) -> None:
        check_fractions((name, getattr(self, name)) for name in ("mask_threshold", "iou_threshold", "score_threshold"))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


# ----------------------------------------------------------------------------- per image
def segment_ious(
    binary_masks: torch.Tensor, gt: np.ndarray | torch.Tensor, ignore_index: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU of every ground-truth segment with every proposal: ``(classes [K], iou [K, Q])``.

    ``binary_masks [Q,H,W]`` bool; ``gt [H,W]`` integer labels. Pixels equal to
    ``ignore_index`` are removed from the proposals before counting, so a proposal
    spilling onto unlabelled pixels is not penalised. Classes come out sorted.
    """
    if binary_masks.ndim != 3 or binary_masks.dtype != torch.bool:
        raise ValueError(
            f"binary_masks must be a bool [Q, H, W] tensor, got {binary_masks.dtype} {list(binary_masks.shape)}"
        )
    gt = as_label_tensor(gt, binary_masks.device)
    if gt.shape != binary_masks.shape[-2:]:
        raise ValueError(f"masks of size {tuple(binary_masks.shape[-2:])} do not match gt of size {tuple(gt.shape)}")
    classes, segments = gt_segments(gt, ignore_index)
    valid = (gt != ignore_index).flatten()
    proposals = binary_masks.flatten(1) & valid
    return classes, mask_iou(segments, proposals, dtype=torch.float64)  # float64 keeps pixel counts exact


def best_ious(
    binary_masks: torch.Tensor, gt: np.ndarray | torch.Tensor, keep: torch.Tensor | None = None, ignore_index: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ground-truth segment, the best IoU over the proposals where ``keep [Q]`` is True (all if None).

    Returns ``(classes [K] int64, best [K] float64)``; ``best`` is 0 when no proposal is kept.
    """
    classes, iou = segment_ious(binary_masks, gt, ignore_index)
    if keep is not None:
        iou = iou[:, keep.to(iou.device)]
    if iou.shape[1] == 0:
        return classes, torch.zeros(len(classes), dtype=torch.float64, device=iou.device)
    return classes, iou.max(dim=1).values


# ----------------------------------------------------------------------------- accumulation
@dataclass
class RecallCounter:
    """Per class: number of segments and how many were recalled (IoU ≥ threshold)."""

    num_classes: int
    iou_threshold: float
    segments: np.ndarray = field(init=False)
    recalled: np.ndarray = field(init=False)
    iou_sum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.segments = np.zeros(self.num_classes, np.int64)
        self.recalled = np.zeros(self.num_classes, np.int64)
        self.iou_sum = np.zeros(self.num_classes, np.float64)

    def update(self, classes: torch.Tensor, best: torch.Tensor) -> None:
        c = classes.cpu().numpy()
        b = best.cpu().numpy()
        np.add.at(self.segments, c, 1)
        np.add.at(self.recalled, c, (b >= self.iou_threshold).astype(np.int64))
        np.add.at(self.iou_sum, c, b)

    def recall(self, subset: np.ndarray | None = None) -> float:
        """Pooled recall in percent over the classes in ``subset`` (bool ``[C]``); NaN without segments."""
        sel = np.ones(self.num_classes, bool) if subset is None else subset
        total = int(self.segments[sel].sum())
        return 100.0 * int(self.recalled[sel].sum()) / total if total else math.nan

    def mean_best_iou(self, subset: np.ndarray | None = None) -> float:
        sel = np.ones(self.num_classes, bool) if subset is None else subset
        total = int(self.segments[sel].sum())
        return 100.0 * float(self.iou_sum[sel].sum()) / total if total else math.nan


class QualityAccumulator:
    """Recall counters and oracle confusion matrices, fed one image's proposals at a time."""

    def __init__(self, num_classes: int, settings: QualityConfig):
        self.num_classes = num_classes
        self.settings = settings
        self.recall = {
            "all": RecallCounter(num_classes, settings.iou_threshold),
            "scored": RecallCounter(num_classes, settings.iou_threshold),
        }
        self.oracle = {"all": ConfusionMatrix(num_classes), "scored": ConfusionMatrix(num_classes)}
        self.images = 0
        self.proposals = {"all": 0, "scored": 0}

    def add(
        self, masks: torch.Tensor, mask_probs: torch.Tensor, scores: torch.Tensor, gt: np.ndarray | torch.Tensor
    ) -> None:
        """One image: bool ``masks [Q,H,W]``, soft ``mask_probs [Q,H,W]``, objectness ``scores [Q]``, ``gt [H,W]``."""
        gt = as_label_tensor(gt, masks.device)
        keep = scores.to(masks.device) >= self.settings.score_threshold
        non_empty = masks.flatten(1).any(1)
        self.images += 1
        self.proposals["all"] += int(non_empty.sum())
        self.proposals["scored"] += int((non_empty & keep).sum())
        for name, selection in (("all", None), ("scored", keep)):
            self.recall[name].update(*best_ious(masks, gt, selection))
            chosen = slice(None) if selection is None else selection
            semantic = oracle_semantic_map(masks[chosen], gt, self.num_classes, mask_probs=mask_probs[chosen])
            self.oracle[name].update(scores_to_labels(semantic), gt)

    def metrics(self, class_names: Sequence[str], subsets: dict[str, np.ndarray]) -> dict[str, Any]:
        """The report's figures (percent, two decimals, ``None`` where undefined)."""
        if self.images == 0:
            raise ValueError("no image was added")
        settings, every = self.settings, self.recall["all"]
        metrics: dict[str, Any] = {
            "images": self.images,
            "settings": {
                "mask_threshold": settings.mask_threshold,
                "iou_threshold": settings.iou_threshold,
                "score_threshold": settings.score_threshold,
            },
            "proposals_per_image": round(self.proposals["all"] / self.images, 3),
            "scored_proposals_per_image": round(self.proposals["scored"] / self.images, 3),
            "segments": {
                "all": int(every.segments.sum()),
                **{k: int(every.segments[m].sum()) for k, m in subsets.items()},
            },
        }
        for name, counter in (("recall", every), ("recall_scored", self.recall["scored"])):
            metrics[name] = _rounded({"all": counter.recall(), **{k: counter.recall(m) for k, m in subsets.items()}})
        metrics["mean_best_iou"] = _rounded(
            {"all": every.mean_best_iou(), **{k: every.mean_best_iou(m) for k, m in subsets.items()}}
        )
        seen = subsets.get("seen")
        for name, key in (("oracle", "all"), ("oracle_scored", "scored")):
            summary = self.oracle[key].summary(seen=seen)
            metrics[name] = _rounded({k: summary[k] for k in ORACLE_KEYS if k in summary})
        scored = self.recall["scored"]
        metrics["per_class"] = {
            class_names[c]: {
                "segments": int(every.segments[c]),
                "recall": _round(100.0 * every.recalled[c] / every.segments[c]),
                "recall_scored": _round(100.0 * scored.recalled[c] / every.segments[c]),
            }
            for c in range(self.num_classes)
            if every.segments[c] > 0
        }
        return metrics


@dataclass(frozen=True)
class QualityReport:
    """The deterministic ``metrics`` and the measured inference speed (kept apart from them)."""

    metrics: dict[str, Any]
    images: int
    inference_seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.inference_seconds if self.inference_seconds > 0 else math.nan


def _batches(dataset: SegmentationDataset, keys: Sequence[str], batch_size: int) -> Iterator[list]:
    """Samples in key order, grouped into runs of equal image size of at most ``batch_size``."""
    run: list = []
    for key in keys:
        sample = dataset.load(key)
        if run and (len(run) == batch_size or run[0].image.shape != sample.image.shape):
            yield run
            run = []
        run.append(sample)
    if run:
        yield run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate_proposals(
    model: MaskProposer,
    dataset: SegmentationDataset,
    settings: QualityConfig = QualityConfig(),
    *,
    subsets: dict[str, np.ndarray] | None = None,
    limit: int | None = None,
    desc: str = "proposer-bench",
) -> QualityReport:
    """Recall and oracle mIoU of ``model``'s proposals on ``dataset`` (see the module docstring).

    ``subsets`` maps ``seen``/``unseen``/``things``/``stuff`` to bool masks over the
    dataset's classes (:func:`pipeline.evaluation.gt_gauge.class_subsets`); missing ones are
    left out of the report. Runs on the model's device, in eval mode, in float32.
    """
    if model.vocabulary is None:
        raise ValueError("the proposer stores no vocabulary; its objectness scores need one")
    names = list(dataset.class_names)
    subsets = {k: np.asarray(v, bool) for k, v in (subsets or {}).items() if k in SUBSETS}
    for key, mask in subsets.items():
        if mask.shape != (len(names),):
            raise ValueError(f"subset {key!r} has {mask.shape[0]} entries for {len(names)} classes")
    keys = dataset.keys()[:limit] if limit is not None else dataset.keys()
    if not keys:
        raise ValueError(f"{dataset.name}: no images to evaluate")
    model.eval()
    device = next(model.parameters()).device
    text = model.vocabulary.embeddings.to(device)
    accumulator = QualityAccumulator(len(names), settings)
    seconds = 0.0
    bar = progress(
        _batches(dataset, keys, settings.batch_size), desc=desc, total=math.ceil(len(keys) / settings.batch_size)
    )
    for samples in bar:
        images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).to(device)
        _sync(device)
        started = time.perf_counter()
        proposals = propose(model, images, text, mask_threshold=settings.mask_threshold)
        _sync(device)
        seconds += time.perf_counter() - started
        for i, sample in enumerate(samples):
            accumulator.add(proposals.binary_masks()[i], proposals.mask_probs[i], proposals.scores[i], sample.label)
    metrics = {"benchmark": dataset.name, "queries": model.num_queries, **accumulator.metrics(names, subsets)}
    return QualityReport(metrics=metrics, images=len(keys), inference_seconds=seconds)


def _round(value: float) -> float | None:
    """Two decimals; NaN (undefined) becomes ``None`` so the JSON stays standard."""
    return None if value is None or math.isnan(value) else round(float(value), 2)


def _rounded(values: dict[str, float]) -> dict[str, float | None]:
    return {k: _round(v) for k, v in values.items()}


def format_report(report: QualityReport) -> str:
    """A few human-readable lines: recall (all/scored) per subset, oracle mIoU, speed."""
    m = report.metrics

    def line(title: str, values: dict[str, float | None]) -> str:
        parts = [f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in values.items()]
        return f"  {title:<22} " + ", ".join(parts)

    s = m["settings"]
    return "\n".join(
        [
            f"{m['benchmark']}: {m['images']} images, {m['segments']['all']} segments, {m['queries']} queries "
            f"(mask > {s['mask_threshold']}, IoU >= {s['iou_threshold']}, score >= {s['score_threshold']})",
            line("recall (all queries)", m["recall"]),
            line("recall (scored)", m["recall_scored"]),
            line("mean best IoU", m["mean_best_iou"]),
            line("oracle mIoU", m["oracle"]),
            line("oracle mIoU (scored)", m["oracle_scored"]),
            f"  proposals/image {m['proposals_per_image']:.1f} non-empty, "
            f"{m['scored_proposals_per_image']:.1f} scored; "
            f"{report.images_per_s:.1f} images/s",
        ]
    )


# ----------------------------------------------------------------------------- `ovseg proposer-bench`


@command("proposer-bench")
def main(argv: list[str] | None = None) -> int:
    cli = parser(
        "ovseg proposer-bench", "proposal quality of a trained proposer on a benchmark: segment recall and oracle mIoU"
    )
    cli.add_argument("--proposer", type=Path, default=paths.PROPOSER, help="trained proposer folder")
    cli.add_argument("--world", type=Path, default=paths.WORLD_MANIFEST, help="world manifest")
    cli.add_argument("--benchmark", default="demo", help="benchmark name in the world (default: demo)")
    cli.add_argument("--threshold", type=float, default=None, help="mask threshold (default: the proposer's)")
    cli.add_argument("--iou", type=float, default=None, help="IoU for a segment to count as recalled")
    cli.add_argument("--score-threshold", type=float, default=None, help="objectness for 'scored' queries")
    cli.add_argument("--limit", type=int, default=None, help="only the first N images")
    cli.add_argument("--batch-size", type=int, default=16)
    add_device_arguments(cli)
    cli.add_argument("--per-class", action="store_true", help="also print every class's recall")
    cli.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="print the full result as JSON (or write it to FILE)",
    )
    args = cli.parse_args(argv)
    set_threads(args.threads, "--threads")
    model, extra = load_trained_proposer(args.proposer, pick_device(args.device))
    stored = extra.get("quality_settings") or {}
    settings = QualityConfig(
        mask_threshold=stored_mask_threshold(extra) if args.threshold is None else args.threshold,
        iou_threshold=float(stored.get("iou_threshold", 0.5)) if args.iou is None else args.iou,
        score_threshold=(
            float(stored.get("score_threshold", 0.5)) if args.score_threshold is None else args.score_threshold
        ),
        batch_size=args.batch_size,
    )
    world = load_world(args.world)
    dataset = world.benchmark(args.benchmark)
    report = evaluate_proposals(
        model, dataset, settings, limit=args.limit, subsets=class_subsets(dataset.class_names, world.classes)
    )
    if args.json == "-":
        print(dumps_json({**report.metrics, "images_per_s": round(report.images_per_s, 1)}), end="")
        return 0
    print(format_report(report))
    if args.per_class:
        for name, row in report.metrics["per_class"].items():
            print(
                f"  {name:<28} {row['segments']:4d} segments  recall {row['recall']:5.1f}  "
                f"scored {row['recall_scored']:5.1f}"
            )
    if args.json:
        write_json(args.json, report.metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
