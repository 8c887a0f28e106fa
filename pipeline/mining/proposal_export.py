"""A proposer's masks for a folder of images, as one Parquet table (``ovseg propose``).

One row per non-empty binarised proposal, sorted by ``(file_name, proposal_id)``, in the
proposals table format of :mod:`pipeline.datasets.proposal_table` (defined there so that the
evaluation reads what this writes).

The command:

    ovseg propose --images DIR --out FILE.parquet [--proposer artifacts/proposer] [--threshold T]
                  [--classes "cat, dog"] [--clip artifacts/clip_base] [--min-score S]

It covers every image directly inside DIR and writes the table atomically. Scores and class names refer to the
proposer's training vocabulary, or
to ``--classes`` (comma-separated names, embedded with the CLIP of ``--clip``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from core import paths
from core.cli import command, parser
from core.device import add_device_arguments, pick_device, set_threads
from core.io import safe_join
from core.progress import progress
from model.proposer import MaskProposer, propose
from model.proposer.io import load_trained_proposer, stored_mask_threshold
from pipeline.datasets.files import read_rgb
from pipeline.datasets.proposal_table import PROPOSALS, PROPOSALS_SORT_BY, mask_bbox, proposal_rows, write_table

__all__ = [
    "PROPOSALS",
    "PROPOSALS_SORT_BY",
    "list_images",
    "main",
    "mask_bbox",
    "proposal_rows",
    "propose_folder",
    "write_table",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files directly inside ``folder`` (by suffix, case-insensitive), as sorted relative names.

    Raises ``FileNotFoundError`` for a missing folder and ``ValueError`` when it holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise ValueError(f"{folder}: no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return names


def _equal_size_runs(folder: Path, names: Sequence[str], batch_size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    run: list[tuple[str, np.ndarray]] = []
    for name in names:
        image = read_rgb(safe_join(folder, name))
        if run and (len(run) == batch_size or run[0][1].shape != image.shape):
            yield run
            run = []
        run.append((name, image))
    if run:
        yield run


@torch.no_grad()
def propose_folder(
    model: MaskProposer,
    folder: str | os.PathLike,
    text_embeddings: torch.Tensor,
    class_names: Sequence[str],
    *,
    mask_threshold: float = 0.4,
    min_score: float = 0.0,
    batch_size: int = 16,
) -> tuple[pa.Table, int]:
    """Propose for every image of ``folder``; returns the sorted table and the number of images.

    ``text_embeddings [C,D]`` are the rows of ``class_names``. An unreadable image
    raises ``ValueError`` naming it.
    """
    if text_embeddings.shape[0] != len(class_names):
        raise ValueError(f"{text_embeddings.shape[0]} text embeddings for {len(class_names)} class names")
    folder = Path(folder)
    names = list_images(folder)
    model.eval()
    device = next(model.parameters()).device
    text = text_embeddings.to(device)
    rows: list[dict[str, Any]] = []
    runs = progress(_equal_size_runs(folder, names, batch_size), desc="propose", total=-(-len(names) // batch_size))
    for run in runs:
        images = torch.from_numpy(np.stack([image for _, image in run])).permute(0, 3, 1, 2).to(device)
        proposals = propose(model, images, text, mask_threshold=mask_threshold)
        masks = proposals.binary_masks()
        for i, (name, _) in enumerate(run):
            rows.extend(
                proposal_rows(name, masks[i], proposals.scores[i], proposals.class_probs[i], class_names, min_score)
            )
    rows.sort(key=lambda r: (r["file_name"], r["proposal_id"]))
    return pa.Table.from_pylist(rows, schema=PROPOSALS), len(names)


# ----------------------------------------------------------------------------- `ovseg propose`


def parse_classes(text: str) -> list[str]:
    """``"cat, dog ,bird"`` → ``["cat", "dog", "bird"]``; empty or repeated names are an error."""
    names = [part.strip() for part in text.split(",")]
    if not names or any(not n for n in names):
        raise ValueError(f"--classes {text!r}: give comma-separated, non-empty class names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"--classes {text!r}: repeated names {repeated}")
    return names


@command("propose")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg propose", "mask proposals for a folder of images, as one Parquet file")
    cli.add_argument("--images", type=Path, required=True, help="folder of images (not searched recursively)")
    cli.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    cli.add_argument("--proposer", type=Path, default=paths.PROPOSER, help="trained proposer folder")
    cli.add_argument(
        "--threshold", type=float, default=None, help="mask binarisation threshold (default: the proposer's, 0.4)"
    )
    cli.add_argument("--min-score", type=float, default=0.0, help="drop proposals with a lower objectness")
    cli.add_argument("--classes", default=None, help='comma-separated class names to score against, e.g. "cat, dog"')
    cli.add_argument("--clip", type=Path, default=paths.CLIP_BASE, help="CLIP folder embedding --classes")
    cli.add_argument("--batch-size", type=int, default=16)
    add_device_arguments(cli)
    args = cli.parse_args(argv)
    started = time.perf_counter()
    set_threads(args.threads, "--threads")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must lie in [0, 1], got {args.threshold}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = pick_device(args.device)
    model, extra = load_trained_proposer(args.proposer, device)
    threshold = stored_mask_threshold(extra) if args.threshold is None else args.threshold
    if args.classes is not None:
        from model.clip import load_clip_folder
        from model.text import TextClassifier

        names = parse_classes(args.classes)
        text = TextClassifier(load_clip_folder(args.clip, device))(names)
        if text.shape[1] != model.config.text_dim:
            raise ValueError(
                f"{args.clip}: the CLIP's embeddings have D={text.shape[1]}, the proposer "
                f"expects {model.config.text_dim} (use the CLIP it was trained with)"
            )
    else:
        vocabulary = model.vocabulary
        assert vocabulary is not None  # load_trained_proposer refuses a proposer without one
        names = [name.split(",")[0].strip() for name in vocabulary.names]
        text = vocabulary.embeddings
    table, images = propose_folder(
        model, args.images, text, names, mask_threshold=threshold, min_score=args.min_score, batch_size=args.batch_size
    )
    write_table(table, args.out)
    print(
        f"propose: {table.num_rows} proposals of {images} images -> {args.out} ({time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
