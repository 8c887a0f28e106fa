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

``--classifier`` chooses how masks are classified: ``crops`` (OVSeg, default, with
``artifacts/clip_ft_mpt``), ``maskpool`` or ``adapter`` (one CLIP pass per image, with
``artifacts/clip_base`` and, for ``adapter``, the Mask-Adapter of ``--adapter``).
``--proposals FILE.parquet`` classifies the masks another generator wrote for this image
(the ``ovseg propose`` format, see :mod:`pipeline.evaluation.external_proposals`; the
image's ``file_name`` is its path relative to ``--proposals-root``, by default its own
folder) instead of running the proposer:

    ovseg predict photo.jpg --classes "cat, dog" -o out.png --proposals sam.parquet --classifier maskpool
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import paths
from core.classnames import parse_class_list
from core.cli import command
from core.device import pick_device
from core.io import write_json
from core.params import check_fractions
from model.proposal_segmenter import ProposalSegmenter
from model.proposer import load_proposer
from model.scoring import resize_labels
from pipeline.datasets.files import read_rgb
from pipeline.evaluation import segmenters
from pipeline.evaluation.external_proposals import read_proposals
from pipeline.evaluation.label_overlay import LEGEND_WIDTH, blend, with_legend
from pipeline.evaluation.miou import EvalConfig, resize_label, resize_short_side


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
#: The one-pass classifiers' CLIP: the Mask-Adapter is trained on the base CLIP.
CLASSIFIERS = ("crops", "maskpool", "adapter")


def image_name(image: Path, root: Path) -> str:
    """``image``'s path relative to ``root`` with POSIX separators (its ``file_name`` in a proposals file)."""
    absolute, absolute_root = Path(os.path.abspath(image)), Path(os.path.abspath(root))
    if absolute_root not in absolute.parents:
        raise ValueError(f"{image}: the image is not inside --proposals-root {root}")
    return absolute.relative_to(absolute_root).as_posix()


def build_segmenter(args: argparse.Namespace) -> ProposalSegmenter:
    """The segmenter the arguments ask for; without ``--proposals``, with the proposer. Folders are checked first."""
    folders = [(args.clip, "CLIP", "clip")]
    if args.proposals is None:
        folders.append((args.proposer, "proposer", "proposer"))
    if args.classifier == "adapter":
        folders.append((args.adapter, "Mask-Adapter", "adapter"))
    for folder, what, flag in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: {what} folder not found (give one with --{flag})")
    settings = prediction_settings(args)
    device = pick_device(args.device)
    proposer = load_proposer(args.proposer, device) if args.proposals is None else None
    adapter = args.adapter if args.classifier == "adapter" else None
    return segmenters.build_segmenter(
        args.classifier, proposer, args.clip, adapter_folder=adapter, settings=settings, device=device
    )


def prediction_settings(args: argparse.Namespace) -> EvalConfig:
    """The segmenter settings of the arguments (the rest as in the ``evaluate`` defaults); bad values name the flag."""
    check_fractions((("--lam", args.lam), ("--alpha", args.alpha), ("--beta", args.beta)))
    if not 0.0 <= args.mask_threshold < 1.0:
        raise ValueError(f"--mask-threshold must lie in [0, 1), got {args.mask_threshold}")
    return EvalConfig(lam=args.lam, alpha=args.alpha, beta=args.beta, mask_threshold=args.mask_threshold)


def segment_with_proposals(
    segmenter: ProposalSegmenter, image: np.ndarray, resized: np.ndarray, classes: list[str], args: argparse.Namespace
) -> tuple[np.ndarray, int]:
    """Labels of ``resized`` from the image's masks in ``--proposals`` (at ``image``'s size), and their count.

    An image the file has no row for is all unlabelled (a warning says so).
    """
    root = args.image.parent if args.proposals_root is None else args.proposals_root
    name = image_name(args.image, root)
    entry = read_proposals(args.proposals, root).masks(name)
    if entry is None:
        print(f"predict: warning: {args.proposals} has no masks for {name!r}; nothing is labelled", file=sys.stderr)
        return np.full(resized.shape[:2], -1, np.int32), 0
    masks, scores = entry
    if tuple(masks.shape[1:]) != image.shape[:2]:
        raise ValueError(
            f"{args.proposals}: the masks of {name!r} are {masks.shape[1]}×{masks.shape[2]}, "
            f"the image is {image.shape[0]}×{image.shape[1]}"
        )
    masks = resize_labels(masks, resized.shape[:2])
    return segmenter.segment_with_masks(resized, masks, scores, classes), int(masks.shape[0])


def settings_record(args: argparse.Namespace, masks: int | None) -> dict[str, Any]:
    """The settings part of the JSON record; what it was before the one-pass classifiers and
    ``--proposals`` when neither is used."""
    record: dict[str, Any] = {"clip": str(args.clip)}
    if args.proposals is None:
        record.update(proposer=str(args.proposer), mask_threshold=args.mask_threshold)
        record.update({"lam": args.lam} if args.classifier == "crops" else {"alpha": args.alpha, "beta": args.beta})
    else:
        record.update(proposals=str(args.proposals), masks=masks)
    if args.classifier != "crops":
        record["classifier"] = args.classifier
    if args.classifier == "adapter":
        record["adapter"] = str(args.adapter)
    return record


def predict(args: argparse.Namespace) -> dict[str, Any]:
    """Run the segmenter as the parsed arguments say, write the picture (and JSON); return the JSON record."""
    classes = parse_class_list(args.classes)
    image = read_rgb(args.image)
    if args.clip is None:
        args.clip = paths.CLIP_FT_MPT if args.classifier == "crops" else paths.CLIP_BASE
    segmenter = build_segmenter(args)
    resized = resize_short_side(image, args.short_side)
    masks = None
    if args.proposals is None:
        labels = segmenter.segment(resized, classes)
    else:
        labels, masks = segment_with_proposals(segmenter, image, resized, classes, args)
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
        **settings_record(args, masks),
    }
    if args.json is not None:
        write_json(args.json, record)
    return record


def predict_parser() -> argparse.ArgumentParser:
    """The ``ovseg predict`` command line."""
    cli = argparse.ArgumentParser(
        prog="ovseg predict",
        description="segment one image among any class names",
        epilog="Example: ovseg predict photo.jpg --classes 'sky, grass|lawn, dog' -o out.png --json",
    )
    cli.add_argument("image", type=Path, help="an image file (any format Pillow reads)")
    cli.add_argument(
        "--classes", required=True, help="class names separated by commas; synonyms of one class separated by '|'"
    )
    cli.add_argument("-o", "--out", type=Path, required=True, help="output picture (PNG)")
    cli.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=Path(""),
        default=None,
        metavar="PATH",
        help="also write the per-class pixel shares (default path: the picture's, with .json)",
    )
    add_model_arguments(cli)
    add_setting_arguments(cli)
    return cli


def add_model_arguments(cli: argparse.ArgumentParser) -> None:
    """Which models classify, and where the masks come from."""
    cli.add_argument(
        "--clip",
        type=Path,
        default=None,
        help=f"CLIP folder (default: {paths.CLIP_FT_MPT} for crops, {paths.CLIP_BASE} for maskpool and adapter)",
    )
    cli.add_argument(
        "--proposer",
        type=Path,
        default=paths.PROPOSER,
        help=f"proposer folder (default: {paths.PROPOSER}; not used with --proposals)",
    )
    cli.add_argument(
        "--classifier",
        choices=CLASSIFIERS,
        default="crops",
        help="crops: CLIP on each masked crop (OVSeg, default); maskpool, adapter: one CLIP pass "
        "per image, masks pooled from it plainly or by the Mask-Adapter",
    )
    cli.add_argument(
        "--adapter",
        type=Path,
        default=paths.adapter("base"),
        help=f"Mask-Adapter folder for --classifier adapter (default: {paths.adapter('base')})",
    )
    cli.add_argument(
        "--proposals",
        type=Path,
        default=None,
        metavar="FILE.parquet",
        help="classify this image's masks from this file (the `ovseg propose` format, e.g. SAM's "
        "masks) instead of running the proposer",
    )
    cli.add_argument(
        "--proposals-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder the file_name column is relative to (default: the image's folder)",
    )


def add_setting_arguments(cli: argparse.ArgumentParser) -> None:
    """The ensemble weights, the mask threshold, the image size and the device."""
    cli.add_argument("--lam", type=float, default=0.7, help="CLIP's weight in the ensemble, 0..1 (default: 0.7)")
    cli.add_argument(
        "--alpha",
        type=float,
        default=0.7,
        help="maskpool/adapter: CLIP's weight for seen classes in the ensemble (default: 0.7)",
    )
    cli.add_argument(
        "--beta",
        type=float,
        default=0.9,
        help="maskpool/adapter: CLIP's weight for unseen classes in the ensemble (default: 0.9)",
    )
    cli.add_argument("--mask-threshold", type=float, default=0.4, help="proposal binarisation (default: 0.4)")
    cli.add_argument(
        "--short-side",
        type=int,
        default=None,
        help="resize the image's shorter side to this many pixels before segmenting",
    )
    cli.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default: auto)")


@command("predict")
def main(argv: list[str] | None = None) -> int:
    args = predict_parser().parse_args(argv)
    if args.json is not None and str(args.json) in ("", "."):
        args.json = args.out.with_suffix(".json")
    record = predict(args)
    top = sorted(record["shares"].items(), key=lambda item: (-item[1], item[0]))
    print(f"predict: wrote {args.out}; " + ", ".join(f"{name} {share:.1f}%" for name, share in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
