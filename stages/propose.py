"""Stage ``propose``: the proposer's outputs on one benchmark, once, for every evaluation.

    python -m stages.propose --benchmark demo

Runs ``artifacts/proposer`` over the images ``evaluate`` covers, in its batches and at its
size (the ``evaluate`` settings ``short_side``, ``max_images``, ``mask_threshold``,
``batch_size``, ``device``, ``threads``), scoring the benchmark's class names embedded by
``artifacts/clip_base``'s text tower with the templates (what every variant's proposer gets),
and writes ``data/proposals/<benchmark>.parquet`` atomically (format:
:mod:`pipeline.evaluation.stored_proposals`), and its wall time, rows and bytes to
``metrics/timings/propose_<benchmark>.json``. ``evaluate --stored-proposals FILE`` reads it.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from core.cli import command, parser
from core.device import pick_device, set_threads
from core.params import load_params
from core.timing import StageTimer
from model.proposer import load_proposer
from pipeline.datasets.manifest import load_world
from pipeline.datasets.proposal_table import write_table
from pipeline.evaluation.segmentation import EvalConfig
from pipeline.evaluation.segmenters import build_segmenter
from pipeline.evaluation.stored_proposals import propose_benchmark, read_stored_proposals

WORLD = Path("data/world/manifest.json")
ARTIFACTS = Path("artifacts")
OUT_DIR = Path("data/proposals")


def run(benchmark: str, params: dict[str, Any], *, world_path: Path = WORLD, artifacts: Path = ARTIFACTS,
        out: Path | None = None) -> Path:
    """Propose for ``benchmark`` and write the file (default ``data/proposals/<benchmark>.parquet``)."""
    params = dict(params)
    device = pick_device(params.pop("device", "auto"))
    set_threads(params.pop("threads", None), "evaluate.threads")
    settings = EvalConfig.from_params(params)
    dataset = load_world(world_path).benchmark(benchmark)
    out = OUT_DIR / f"{benchmark}.parquet" if out is None else out
    for folder in (artifacts / "proposer", artifacts / "clip_base"):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    timer = StageTimer(f"propose_{benchmark}")
    segmenter = build_segmenter("crops", load_proposer(artifacts / "proposer", device), artifacts / "clip_base",
                                settings=settings, device=device)
    print(f"propose {benchmark}: {len(dataset)} images, {len(dataset.class_names)} classes, on {device} "
          f"({torch.get_num_threads()} CPU threads)")
    table = propose_benchmark(segmenter, dataset, settings)
    write_table(table, out)
    stored = read_stored_proposals(out, dataset)  # the written file, read back and counted
    size = out.stat().st_size
    timing = timer.write(images=stored.info.images, rows=table.num_rows, bytes=size)
    print(f"propose {benchmark}: {stored.info.images} images × {stored.info.queries} queries = {table.num_rows} rows, "
          f"{size / 2**20:.1f} MiB -> {out} ({timing['seconds']:.1f} s)")
    return out


@command("propose-benchmark")
def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m stages.propose", __doc__)
    cli.add_argument("--benchmark", required=True, help="a benchmark of the world manifest (e.g. demo)")
    cli.add_argument("--params", type=Path, default=None, help="params file (default: params.yaml)")
    cli.add_argument("--world", type=Path, default=WORLD, help=f"world manifest (default: {WORLD})")
    cli.add_argument("--artifacts", type=Path, default=ARTIFACTS,
                     help="folder holding proposer/ and clip_base/ (default: artifacts)")
    cli.add_argument("--out", type=Path, default=None, help=f"file to write (default: {OUT_DIR}/<benchmark>.parquet)")
    args = cli.parse_args(argv)
    run(args.benchmark, load_params("evaluate", args.params), world_path=args.world, artifacts=args.artifacts,
        out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
