"""Stage ``tune``: the values chosen by measurement, each on the validation benchmark.

    python -m stages.tune [--params params.yaml]

Reads the ``tune`` params section (the grids; :mod:`pipeline.evaluation.tuning`), the ``evaluate``
section (how a benchmark is segmented), ``artifacts/proposer`` and the CLIP folders; scores every
candidate on ``tune.benchmark`` (``val``) and writes ``metrics/tuning.json`` and ``reports/tuning.md``.
The chosen values are then written into params.yaml by hand: ``tests/test_tuning.py`` fails while
params.yaml and ``metrics/tuning.json`` disagree.

Sweeps:

* ``zsseg_cross_dataset``: λ and the mask threshold of the ``zsseg`` row on a benchmark that
  zsseg.baseline has no cross-dataset config for (``evaluate.zsseg.cross_dataset.default``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import paths
from core.cli import add_params_option, command, exit_process, parser
from core.device import pick_device, set_threads
from core.io import atomic_write_bytes, write_json
from core.params import load_params
from core.timing import StageTimer
from model.proposer import load_proposer
from pipeline.datasets.manifest import load_world
from pipeline.evaluation.miou import EvalConfig, class_is_seen, evaluate_benchmark
from pipeline.evaluation.segmenters import build_variant_segmenter
from pipeline.evaluation.tuning import markdown, run_sweep, sweeps_from_params
from pipeline.evaluation.zsseg import CROSS_DATASET, Protocol

METRICS = Path("metrics/tuning.json")
REPORT = Path("reports/tuning.md")


def run(tune: dict[str, Any], evaluate: dict[str, Any], *, artifacts: Path = paths.ARTIFACTS) -> dict[str, Any]:
    """Every sweep of ``tune`` scored on its benchmark; the records by sweep name."""
    sweeps = sweeps_from_params(tune)
    evaluate = dict(evaluate)
    device = pick_device(evaluate.pop("device", "auto"))
    set_threads(evaluate.pop("threads", None), "evaluate.threads")
    evaluate.pop("zsseg", None)
    settings = EvalConfig.from_params(evaluate).resolved(device)
    world = load_world(paths.WORLD_MANIFEST)
    name = tune.get("benchmark", "val")
    dataset = world.benchmark(name)
    seen = class_is_seen(dataset.class_names, world.classes)
    proposer = load_proposer(artifacts / "proposer", device)
    records = {}
    if "zsseg_cross_dataset" in sweeps:

        def zsseg_score(candidate: dict[str, float]) -> float:
            protocol = Protocol(name, CROSS_DATASET, candidate["lam"], candidate["mask_threshold"], "tune")
            variant, each = protocol.variant(), protocol.settings(settings)
            segmenter = build_variant_segmenter(variant, proposer, artifacts, each, device)
            result = evaluate_benchmark(segmenter, dataset, variant, each, seen)
            return float(result.confusion.summary(seen, None)["mIoU"])

        records["zsseg_cross_dataset"] = run_sweep(sweeps["zsseg_cross_dataset"], zsseg_score, name)
    return records


@command("tune")
def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m stages.tune", __doc__)
    add_params_option(cli)
    args = cli.parse_args(argv)
    timer = StageTimer("tune")
    records = run(load_params("tune", args.params), load_params("evaluate", args.params))
    write_json(METRICS, records)
    atomic_write_bytes(REPORT, markdown(records).encode())
    for record in records.values():
        print(f"tune: {record['key']} = {record['chosen']} (val mIoU {record['val_mIoU']:.2f})")
    print(f"tune: {len(records)} sweep(s) in {timer.write()['seconds']:.1f} s -> {METRICS}, {REPORT}")
    return 0


if __name__ == "__main__":
    exit_process(main())
