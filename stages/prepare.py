"""Stage ``prepare``: the benchmarks from their official downloads, in the layouts the readers take, verified.

Reads params ``prepare`` and ``data.source``, ``data.benchmarks``, ``data.real.coco_root``,
``data.real.images``, ``data.real.labels``. With ``data.source: coco`` an Apache Beam job
(:mod:`pipeline.prepare.job`) builds ADE20K-847, PASCAL-Context-59/459 and VOC-20 from the raw
downloads named in ``prepare.raw`` into ``data/prepared/``, validates ADE20K-150 and the
COCO-Stuff training labels where they lie, accounts for every input image (prepared or
rejected with a reason) and writes ``metrics/prepare/<benchmark>.json``. A count that differs
from the expected one or label values out of range fail the stage, listing the problems, and
nothing is replaced. With ``data.source: demo`` it only writes that it skipped (the same bytes
every time), so the demo DAG is unchanged.

    python -m stages.prepare [--params params.yaml] [--out data/prepared] [--metrics metrics/prepare]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from core import paths
from core.cli import add_params_option, add_path_options, command, exit_process, parser
from core.params import load_params
from core.timing import StageTimer
from pipeline.prepare.config import COCO_STUFF, PrepareConfig
from pipeline.prepare.outputs import PREPARED_ROOTS, write_skipped

SKIPPED = "data.source is 'demo': the world stage generates the demo benchmark, there is nothing to prepare"


def _source_folder(config: PrepareConfig, name: str) -> Path:
    """The folder prepared set ``name`` is read from (COCO-Stuff: the folder holding its images)."""
    if name == COCO_STUFF:
        assert config.coco_images is not None  # from_params sets it with coco_stuff
        return config.coco_images.parent
    return config.raw_root(name)


def build_prepared(config: PrepareConfig, out: Path, metrics_dir: Path) -> dict[str, dict[str, Any]]:
    """Prepare (or, in the demo, skip) into ``out`` and ``metrics_dir``; the metrics per benchmark."""
    if not config.active:
        write_skipped(out, metrics_dir, list(config.benchmarks), SKIPPED)
        return {}
    from pipeline.prepare.inputs import list_inputs
    from pipeline.prepare.job import run_prepare_job

    items = list_inputs(config)
    sources = {name: str(_source_folder(config, name)) for name in config.prepared_sets()}
    return run_prepare_job(items, config.prepared_sets(), out, metrics_dir, config, sources)


def _describe(name: str, metrics: dict[str, Any], out: Path) -> str:
    rejects = ", ".join(f"{reason} {count}" for reason, count in metrics["rejects"].items()) or "no rejects"
    where = out / PREPARED_ROOTS[name] if name in PREPARED_ROOTS else "validated in place"
    share = metrics["ignore_share"]
    partial = f" (partial: {metrics['missing_images']} missing, accepted)" if metrics["partial"] else ""
    return (
        f"prepare: {name}: {metrics['images']}/{metrics['expected_images']} images{partial}, {rejects}; "
        f"{metrics['classes_present']} of {metrics['classes']} classes present, ignore "
        f"{'-' if share is None else f'{100 * share:.1f}%'} -> {where}"
    )


@command("prepare")
def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m stages.prepare", __doc__)
    add_params_option(cli)
    add_path_options(
        cli,
        ("out", paths.PREPARED, "prepared layouts"),
        ("metrics", paths.PREPARE_METRICS, "metrics folder, one file per benchmark"),
    )
    args = cli.parse_args(argv)
    config = PrepareConfig.from_params(load_params("prepare", args.params), load_params("data", args.params))
    timer = StageTimer("prepare")
    if not config.active:
        build_prepared(config, args.out, args.metrics)
        timer.write()
        print(f"prepare: skipped ({SKIPPED}) -> {args.out}")
        return 0
    # force: importing Beam has already given the root logger a WARNING-level handler.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    for noisy in ("apache_beam", "bokeh", "tornado"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from pipeline.beam.reconcile import ReconciliationError
    from pipeline.prepare.job import PreparationError

    try:
        metrics = build_prepared(config, args.out, args.metrics)
    except (ReconciliationError, PreparationError) as exc:
        print(
            exc
            if isinstance(exc, PreparationError)
            else f"prepare: outputs do not account for the inputs, nothing written: {exc}",
            file=sys.stderr,
        )
        return 1
    timer.write()
    for name, values in metrics.items():
        print(_describe(name, values, args.out))
    return 0


if __name__ == "__main__":
    exit_process(main())
