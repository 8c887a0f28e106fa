"""Stage ``propose``: the proposer's outputs on each benchmark, once, for every evaluation.

    python -m stages.propose                      # every benchmark of the params' data.benchmarks
    python -m stages.propose --benchmark demo --out /tmp/proposals

Runs ``artifacts/proposer`` over the images ``evaluate`` covers, in its batches and at its
size (the ``evaluate`` settings ``short_side``, ``max_images``, ``mask_threshold``, ``precision``,
``batch_size``, ``device``, ``threads``), scoring each benchmark's class names embedded by
``artifacts/clip_base``'s text tower with the templates (what every variant's proposer gets),
and writes the folder ``data/proposals/`` atomically, one ``<benchmark>.parquet`` each (format:
:mod:`pipeline.evaluation.stored_proposals`), and the wall time, rows and bytes of each to
``metrics/timings/propose_<benchmark>.json``. ``evaluate --stored-proposals data/proposals`` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core import paths
from core.cli import add_benchmark_options, add_path_options, chosen_benchmarks, command, exit_process, parser
from core.device import pick_device, set_threads
from core.io import atomic_dir
from core.params import load_params
from core.timing import StageTimer
from model.proposer import load_proposer
from pipeline.datasets.manifest import load_world
from pipeline.datasets.proposal_table import write_table
from pipeline.evaluation.miou import EvalConfig
from pipeline.evaluation.segmenters import build_segmenter
from pipeline.evaluation.stored_proposals import propose_benchmark, read_stored_proposals


def run(
    benchmarks: Sequence[str],
    params: dict[str, Any],
    *,
    world_path: Path = paths.WORLD_MANIFEST,
    artifacts: Path = paths.ARTIFACTS,
    out: Path = paths.PROPOSALS,
) -> list[Path]:
    """Propose for each benchmark and write the folder ``out`` (every file, or none); the files written."""
    params = dict(params)
    device = pick_device(params.pop("device", "auto"))
    set_threads(params.pop("threads", None), "evaluate.threads")
    settings = EvalConfig.from_params(params).resolved(device)
    world = load_world(world_path)
    datasets = [world.benchmark(name) for name in benchmarks]
    for folder in (artifacts / "proposer", artifacts / "clip_base"):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    segmenter = build_segmenter(
        "crops",
        load_proposer(artifacts / "proposer", device),
        artifacts / "clip_base",
        settings=settings,
        device=device,
    )
    written = []
    with atomic_dir(out) as tmp:
        for dataset in datasets:
            timer = StageTimer(f"propose_{dataset.name}")
            print(
                f"propose {dataset.name}: {len(dataset)} images, {len(dataset.class_names)} classes, on {device} "
                f"({torch.get_num_threads()} CPU threads)"
            )
            table = propose_benchmark(segmenter, dataset, settings)
            path = tmp / f"{dataset.name}.parquet"
            write_table(table, path)
            stored = read_stored_proposals(path, dataset)  # the written file, read back and counted
            size = path.stat().st_size
            timing = timer.write(images=stored.info.images, rows=table.num_rows, bytes=size)
            print(
                f"propose {dataset.name}: {stored.info.images} images × {stored.info.queries} queries = "
                f"{table.num_rows} rows, {size / 2**20:.1f} MiB ({timing['seconds']:.1f} s)"
            )
            written.append(out / path.name)
    return written


@command("propose-benchmark")
def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m stages.propose", __doc__)
    add_benchmark_options(cli)
    add_path_options(cli, ("out", paths.PROPOSALS, "folder to write, one <benchmark>.parquet each"))
    args = cli.parse_args(argv)
    benchmarks = chosen_benchmarks(args)
    run(benchmarks, load_params("evaluate", args.params), world_path=args.world, artifacts=args.artifacts, out=args.out)
    return 0


if __name__ == "__main__":
    exit_process(main())
