"""Latency of ``ovseg demo`` per variant: from a request's inputs to its pictures, models loaded.

Measures what the page's *Segment* button runs on the server
(:func:`pipeline.demo.page.segment_answer`: the upload decoded and checked, the class list
checked, the segmentation, the picture, the shares), one variant per request, on a
``--size`` × ``--size`` PNG (a demo benchmark image scaled up, or random pixels without a
world). For each variant: the first request with a new class list (*cold*: its text
embeddings are computed, then cached) and the median of ``--repeats`` requests with the same
list (*warm*), without and with *why*; for each ``--short-side`` given, warm requests at that
working size too. Warm cells give the median and, in brackets, the best of the repeats (on a
machine shared with other jobs, the best is the closest to a quiet machine).
The browser adds the upload and the page update on top (``tests/pipeline/demo/test_browser.py``
prints its click-to-result times).

    python benchmarks/demo_latency.py [--root .] [--size 512] [--repeats 5] [--threads 2] [--short-side 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.datasets.manifest import load_world
from pipeline.demo.models import DEFAULT_VARIANTS, DemoModels
from pipeline.demo.page import segment_answer

CLASSES = ["sky, grass|lawn, zebra, water|sea, sand", "road|street, tiger, wall, snow, pizza"]


def test_image(root: Path, size: int, folder: Path) -> Path:
    """A ``size``-px square PNG: the first demo benchmark image scaled (bicubic), or random pixels."""
    images = sorted((root / "data/world/benchmarks/demo/images/validation").glob("*.jpg"))
    if images:
        with Image.open(images[0]) as source:
            image = source.convert("RGB").resize((size, size), Image.BICUBIC)
    else:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    path = folder / f"photo_{size}.png"
    image.save(path)
    return path


def seconds(models: DemoModels, path: Path, classes: str, variant: str, why: bool, short_side: int | None) -> float:
    """Wall seconds of one request."""
    start = time.perf_counter()
    answer = segment_answer(
        models, None, str(path), None, classes, [variant], why, max_side=4096, short_side=short_side
    )
    elapsed = time.perf_counter() - start
    if not answer.ok:
        raise SystemExit(f"demo_latency: {answer.message}")
    return elapsed


def summary(runs: list[float]) -> str:
    """``median s (best s)``: on a machine shared with other jobs the best run is the closest to a quiet one."""
    return f"{statistics.median(runs):.2f} s ({min(runs):.2f})"


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--root", type=Path, default=Path("."), help="project folder with artifacts/ and data/world")
    cli.add_argument("--size", type=int, default=512, help="side of the square test image (default: 512)")
    cli.add_argument("--repeats", type=int, default=5, help="warm requests per variant (default: 5)")
    cli.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    cli.add_argument("--short-side", type=int, action="append", default=[], help="also time at this working size")
    cli.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    args = cli.parse_args()
    torch.set_num_threads(args.threads)
    manifest = args.root / "data/world/manifest.json"
    world = load_world(manifest) if manifest.is_file() else None
    start = time.perf_counter()
    models = DemoModels.load(
        args.root / "artifacts", variants=args.variants, world_classes=world.classes if world else None
    )
    print(
        f"models loaded in {time.perf_counter() - start:.1f} s; {args.threads} threads; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.size}×{args.size} image"
    )
    columns = ["cold", "warm", "warm + why", *(f"warm, short side {s}" for s in args.short_side)]
    print(f"| variant | {' | '.join(columns)} |\n| --- |{' ---: |' * len(columns)}")
    with tempfile.TemporaryDirectory() as folder:
        path = test_image(args.root, args.size, Path(folder))
        for index, variant in enumerate(args.variants):
            classes = f"{CLASSES[0]}, thing{index}"  # a new name: the first request embeds it
            cells = [f"{seconds(models, path, classes, variant, False, None):.2f} s"]
            for why, short_side in [(False, None), (True, None), *((False, s) for s in args.short_side)]:
                cells.append(
                    summary([seconds(models, path, classes, variant, why, short_side) for _ in range(args.repeats)])
                )
            print(f"| {variant} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
