"""``ovseg predict``: segment one image among any class names; pixel shares and the output picture.

Class lists: commas separate classes, ``|`` separates synonyms of one class
(``"cat, dog|puppy, grass"`` → three classes, the second named "dog" or "puppy").
Internally a class is the project's ``"dog, puppy"`` string (first synonym = display name).

The command:

    ovseg predict photo.jpg --classes "cat, dog|puppy, grass" -o out.png --json

Commas separate classes, ``|`` separates synonyms of one class. The picture is the
image with each pixel's class colour blended in and a legend (220 px wide) listing
every class with its share of the image; ``--json`` also writes the shares (percent,
adding up to 100 with ``unlabelled``), next to the picture unless a path is given.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.classnames import parse_class_list
from core.cli import command
from core.device import pick_device
from core.io import write_json
from model.clip import load_clip_folder
from model.proposer import load_proposer
from model.two_stage import TwoStageSegmenter
from pipeline.datasets.files import read_rgb
from pipeline.evaluation.label_overlay import LEGEND_WIDTH, blend, with_legend
from pipeline.evaluation.segmentation import resize_label, resize_short_side


def percentages(counts: Sequence[int]) -> list[float]:
    """Shares of ``counts`` in percent with 2 decimals that add up to exactly 100.00.

    Largest-remainder rounding on hundredths of a percent (ties go to the earlier
    entry); all zeros when the total is zero.
    """
    total = int(sum(counts))
    if total == 0:
        return [0.0] * len(counts)
    exact = [10_000 * int(c) / total for c in counts]
    floors = [int(e) for e in exact]
    short = 10_000 - sum(floors)
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:short]:
        floors[i] += 1
    return [f / 100 for f in floors]


def pixel_shares(labels: np.ndarray, class_names: Sequence[str]) -> tuple[dict[str, float], float]:
    """``({display name: percent of the image}, percent without a label)``, summing to 100."""
    counts = np.bincount(labels.ravel() + 1, minlength=len(class_names) + 1)
    shares = percentages([int(c) for c in counts])
    names = [name.split(",")[0].strip() for name in class_names]
    return dict(zip(names, shares[1:])), shares[0]


def prediction_picture(image: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> Image.Image:
    """The image with its labels blended in and a legend (every class, with its pixel share) to the right.

    Size: ``(W + LEGEND_WIDTH) × max(H, legend height)`` with ``LEGEND_WIDTH`` =
    :data:`pipeline.evaluation.label_overlay.LEGEND_WIDTH` pixels (220).
    """
    shares, _ = pixel_shares(labels, class_names)
    entries = [(i, f"{name} {share:.1f}%") for i, (name, share) in enumerate(shares.items())]
    return with_legend(blend(image, labels, len(class_names)), entries, LEGEND_WIDTH)


# ----------------------------------------------------------------------------- `ovseg predict`
DEFAULT_CLIP = Path("artifacts/clip_ft_mpt")


DEFAULT_PROPOSER = Path("artifacts/proposer")


def predict(args: argparse.Namespace) -> dict[str, Any]:
    """Run the segmenter as the parsed arguments say, write the picture (and JSON); return the JSON record."""
    classes = parse_class_list(args.classes)
    image = read_rgb(args.image)
    for folder, what in ((args.clip, "CLIP"), (args.proposer, "proposer")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: {what} folder not found (give one with --{what.lower()})")
    device = pick_device(args.device)
    segmenter = TwoStageSegmenter(
        load_proposer(args.proposer, device),
        load_clip_folder(args.clip, device),
        lam=args.lam,
        mask_threshold=args.mask_threshold,
    )
    resized = resize_short_side(image, args.short_side)
    labels = segmenter.segment(resized, classes)
    if resized.shape != image.shape:
        labels = resize_label(labels, image.shape[:2])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    prediction_picture(image, labels, classes).save(args.out, format="PNG")
    shares, unlabelled = pixel_shares(labels, classes)
    record = {
        "image": str(args.image),
        "size": [int(image.shape[0]), int(image.shape[1])],
        "classes": classes,
        "shares": shares,
        "unlabelled": unlabelled,
        "clip": str(args.clip),
        "proposer": str(args.proposer),
        "lam": args.lam,
        "mask_threshold": args.mask_threshold,
    }
    if args.json is not None:
        write_json(args.json, record)
    return record


@command("predict")
def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="ovseg predict",
        description="segment one image among any class names",
        epilog="Example: ovseg predict photo.jpg --classes 'sky, grass|lawn, dog' -o out.png --json",
    )
    cli.add_argument("image", type=Path, help="an image file (any format Pillow reads)")
    cli.add_argument("--classes", required=True,
                        help="class names separated by commas; synonyms of one class separated by '|'")
    cli.add_argument("-o", "--out", type=Path, required=True, help="output picture (PNG)")
    cli.add_argument("--json", type=Path, nargs="?", const=Path(""), default=None, metavar="PATH",
                        help="also write the per-class pixel shares (default path: the picture's, with .json)")
    cli.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help=f"CLIP folder (default: {DEFAULT_CLIP})")
    cli.add_argument("--proposer", type=Path, default=DEFAULT_PROPOSER,
                        help=f"proposer folder (default: {DEFAULT_PROPOSER})")
    cli.add_argument("--lam", type=float, default=0.7, help="CLIP's weight in the ensemble, 0..1 (default: 0.7)")
    cli.add_argument("--mask-threshold", type=float, default=0.4, help="proposal binarisation (default: 0.4)")
    cli.add_argument("--short-side", type=int, default=None,
                        help="resize the image's shorter side to this many pixels before segmenting")
    cli.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default: auto)")
    args = cli.parse_args(argv)
    if args.json is not None and str(args.json) in ("", "."):
        args.json = args.out.with_suffix(".json")
    record = predict(args)
    top = sorted(record["shares"].items(), key=lambda item: (-item[1], item[0]))
    print(f"predict: wrote {args.out}; " + ", ".join(f"{name} {share:.1f}%" for name, share in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
