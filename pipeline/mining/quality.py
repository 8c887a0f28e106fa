"""How good the mined pairs are, measured against the demo world's full ground truth.

The nouns of a pair are free text; the truth knows classes. A noun names a
class when, normalised like the nouns (:func:`normalise_name`: NFC, lower
case, single spaces), it equals the class's name or one of its synonyms.

* **precision**: among the pairs whose noun names a class, the share whose mask
  has IoU ≥ ``iou_threshold`` (0.5) with the true segment of that class in the
  image (every pixel of the class in the truth labels; an absent class is an
  empty segment, IoU 0). A noun naming several classes counts with the one its
  mask overlaps best (ties: the lower class index). Truth pixels marked ignore
  are left out of the mask first.
* **non-class pairs**: pairs whose noun names no class ("man", "scene" …);
  they are excluded from the precision, and their share is reported.
* **class recall**: among the classes whose name or a synonym occurs as a
  caption noun (``data/nouns/``) of some image, the share with at least one pair.

Precision, pairs and recall are also given for seen and unseen classes apart,
and per class.

``ovseg mine-quality`` measures any pairs folder (the `mine` stage records the same figures):

Pair precision (mask IoU ≥ 0.5 with the true segment of the noun's class),
the share of pairs whose noun names no class, and the share of classes named
by caption nouns that got a pair, overall, for seen and unseen classes, and
per class (:mod:`pipeline.mining.quality`). The `mine` stage records the same
figures in ``metrics/mine.json``; this command evaluates any pairs folder.

    ovseg mine-quality [--manifest data/world/manifest.json] [--pairs data/pairs] [--nouns data/nouns]
                       [--iou 0.5] [--out quality.json] [--per-class]
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from core import paths
from core.cli import command, parser
from core.io import safe_join, write_json
from core.rle import decode_rle
from model.masks import mask_iou
from pipeline.beam.schemas import NOUNS, PAIRS
from pipeline.beam.shards import read_shards
from pipeline.datasets.coco import coco_stuff_table, read_coco_stuff_label
from pipeline.datasets.manifest import World, load_world

IOU_THRESHOLD = 0.5
_DIGITS = 4


def normalise_name(text: str) -> str:
    """Lower-case NFC text with single spaces, the normal form of caption nouns."""
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def class_lookup(classes: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, ...]]:
    """Normalised name or synonym → indices into ``classes`` (``{name, synonyms}`` entries).

    A ``name`` holding comma-separated synonyms ("building, edifice") contributes each of them.
    """
    lookup: dict[str, set[int]] = {}
    for index, entry in enumerate(classes):
        words = list(str(entry["name"]).split(",")) + list(entry.get("synonyms") or [])
        for word in words:
            key = normalise_name(word)
            if key:
                lookup.setdefault(key, set()).add(index)
    return {key: tuple(sorted(indices)) for key, indices in sorted(lookup.items())}


@dataclass(frozen=True)
class PairVerdict:
    """One pair checked against the truth: its class (index) or None, and the IoU with that class's segment."""

    class_index: int | None
    iou: float


class TruthLabels:
    """The truth label maps of a world (index i = ``world.classes[i]``), by image file name."""

    def __init__(self, world: World):
        truth = world.truth()
        self._labels_dir = truth.labels.labels_dir
        self._table = coco_stuff_table(truth.labels.category_ids)

    def load(self, file_name: str) -> np.ndarray:
        """``H×W int32`` class indices (-1 ignore) of the image ``file_name``."""
        path = safe_join(self._labels_dir, str(Path(file_name).with_suffix(".png")))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no truth label for the mined image {file_name!r}")
        return read_coco_stuff_label(path, self._table)


def judge_pairs(
    rows: Sequence[Mapping[str, Any]], label: np.ndarray, lookup: Mapping[str, tuple[int, ...]]
) -> list[PairVerdict]:
    """Verdicts for the pair rows of one image with truth ``label``."""
    verdicts = []
    valid = label >= 0
    for row in rows:
        classes = lookup.get(normalise_name(row["noun"]))
        if not classes:
            verdicts.append(PairVerdict(None, 0.0))
            continue
        mask = decode_rle({"size": [row["height"], row["width"]], "counts": row["mask_rle"]})
        if mask.shape != label.shape:
            raise ValueError(
                f"pair ({row['image_id']}, {row['noun']!r}): mask {mask.shape} and truth label {label.shape} "
                "differ in size"
            )
        mask &= valid
        ious = mask_iou(
            torch.from_numpy(mask)[None],
            torch.from_numpy(label[None] == np.array(classes)[:, None, None]),
            dtype=torch.float64,
        )[0].tolist()
        best = int(np.argmax(ious))
        verdicts.append(PairVerdict(classes[best], ious[best]))
    return verdicts


def _precision(ious: Sequence[float], threshold: float) -> float | None:
    return round(sum(iou >= threshold for iou in ious) / len(ious), _DIGITS) if ious else None


def judge_all_pairs(
    pairs: pa.Table, labels: TruthLabels, lookup: Mapping[str, tuple[int, ...]], num_classes: int
) -> tuple[dict[int, list[float]], int]:
    """Every pair judged, image by image (sorted by file name, then noun): ``(the IoUs of the pairs naming each
    class, the number of pairs naming none)``."""
    by_image: dict[str, list[dict[str, Any]]] = {}
    for row in pairs.select(["image_id", "file_name", "noun", "mask_rle", "height", "width"]).to_pylist():
        by_image.setdefault(row["file_name"], []).append(row)
    per_class_ious: dict[int, list[float]] = {index: [] for index in range(num_classes)}
    non_class = 0
    for file_name in sorted(by_image):
        rows = sorted(by_image[file_name], key=lambda row: row["noun"])
        for verdict in judge_pairs(rows, labels.load(file_name), lookup):
            if verdict.class_index is None:
                non_class += 1
            else:
                per_class_ious[verdict.class_index].append(verdict.iou)
    return per_class_ious, non_class


def _class_group_figures(
    indices: Sequence[int],
    per_class_ious: Mapping[int, Sequence[float]],
    named: set[int],
    with_pairs: set[int],
    iou_threshold: float,
) -> dict[str, Any]:
    """Pairs, precision, mean IoU and class recall over the classes ``indices``."""
    ious = [iou for index in indices for iou in per_class_ious[index]]
    in_nouns = [index for index in indices if index in named]
    found = [index for index in in_nouns if index in with_pairs]
    return {
        "pairs": len(ious),
        "precision": _precision(ious, iou_threshold),
        "mean_iou": round(float(np.mean(ious)), _DIGITS) if ious else None,
        "classes_in_nouns": len(in_nouns),
        "classes_with_pairs": len(found),
        "class_recall": round(len(found) / len(in_nouns), _DIGITS) if in_nouns else None,
    }


def evaluate_mining(
    pairs: pa.Table,
    nouns: pa.Table,
    world: World,
    *,
    iou_threshold: float = IOU_THRESHOLD,
) -> dict[str, Any]:
    """Pair precision, non-class share and class recall (module docstring) of ``pairs`` in ``world``.

    ``nouns`` is the ``data/nouns/`` table the pairs were mined from. Raises
    ``ValueError`` when the world has no ground truth (a real world).
    """
    classes = world.classes
    lookup = class_lookup(classes)
    per_class_ious, non_class = judge_all_pairs(pairs, TruthLabels(world), lookup, len(classes))
    named = {index for noun in set(nouns.column("noun").to_pylist()) for index in lookup.get(normalise_name(noun), ())}
    with_pairs = {index for index, ious in per_class_ious.items() if ious}

    def split(indices: Sequence[int]) -> dict[str, Any]:
        return _class_group_figures(indices, per_class_ious, named, with_pairs, iou_threshold)

    everything = split(range(len(classes)))
    return {
        "iou_threshold": iou_threshold,
        "pairs": pairs.num_rows,
        "class_pairs": everything["pairs"],
        "non_class_pairs": non_class,
        "non_class_share": round(non_class / pairs.num_rows, _DIGITS) if pairs.num_rows else None,
        "precision": everything["precision"],
        "mean_iou": everything["mean_iou"],
        "classes_in_nouns": everything["classes_in_nouns"],
        "classes_with_pairs": everything["classes_with_pairs"],
        "class_recall": everything["class_recall"],
        "seen": split([i for i, entry in enumerate(classes) if entry["seen"]]),
        "unseen": split([i for i, entry in enumerate(classes) if not entry["seen"]]),
        "per_class": {
            classes[index]["name"]: {
                "pairs": len(per_class_ious[index]),
                "precision": _precision(per_class_ious[index], iou_threshold),
                "in_nouns": index in named,
            }
            for index in range(len(classes))
        },
    }


# ----------------------------------------------------------------------------- `ovseg mine-quality`


def format_report(report: dict, per_class: bool = False) -> str:
    """A plain-text table of a :func:`pipeline.mining.quality.evaluate_mining` report."""
    lines = [
        f"pairs {report['pairs']}: {report['class_pairs']} name a class, {report['non_class_pairs']} do not "
        f"(share {report['non_class_share']})",
        f"{'classes':<8} {'pairs':>7} {'precision':>9} {'mean IoU':>8} {'recall':>7}  "
        f"(IoU ≥ {report['iou_threshold']})",
    ]
    for name, part in (("all", report), ("seen", report["seen"]), ("unseen", report["unseen"])):
        pairs = part["class_pairs"] if name == "all" else part["pairs"]
        lines.append(
            f"{name:<8} {pairs:>7} {_cell(part['precision']):>9} {_cell(part['mean_iou']):>8} "
            f"{_cell(part['class_recall']):>7}  ({part['classes_with_pairs']}/{part['classes_in_nouns']} classes)"
        )
    if per_class:
        lines.append(f"{'class':<20} {'pairs':>7} {'precision':>9} in nouns")
        for name, entry in sorted(report["per_class"].items()):
            lines.append(f"{name:<20} {entry['pairs']:>7} {_cell(entry['precision']):>9} {entry['in_nouns']}")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@command("mine-quality")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg mine-quality", "how good mined pairs are, against the demo world's ground truth")
    cli.add_argument(
        "--manifest", type=Path, default=paths.WORLD_MANIFEST, help="world manifest (default: %(default)s)"
    )
    cli.add_argument("--pairs", type=Path, default=paths.PAIRS, help="pairs shards (default: %(default)s)")
    cli.add_argument("--nouns", type=Path, default=paths.NOUNS, help="nouns shards (default: %(default)s)")
    cli.add_argument("--iou", type=float, default=0.5, help="IoU a correct pair reaches (default: 0.5)")
    cli.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    cli.add_argument("--per-class", action="store_true", help="print the per-class table too")
    args = cli.parse_args(argv)

    if not 0 < args.iou <= 1:
        print(f"mine-quality: error: --iou must lie in (0, 1], got {args.iou}", file=sys.stderr)
        return 2
    world = load_world(args.manifest)
    if world.truth_paths is None:
        raise ValueError(f"{args.manifest}: a {world.source!r} world has no ground truth to evaluate against")
    report = evaluate_mining(
        read_shards(args.pairs, PAIRS), read_shards(args.nouns, NOUNS), world, iou_threshold=args.iou
    )
    print(format_report(report, per_class=args.per_class))
    if args.out is not None:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
