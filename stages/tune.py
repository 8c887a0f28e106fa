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
from model.two_stage import TwoStageSegmenter
from pipeline.datasets.manifest import load_world
from pipeline.evaluation.miou import EvalConfig, class_is_seen
from pipeline.evaluation.segmenters import build_variant_segmenter
from pipeline.evaluation.tuning import ensemble_sweep, markdown, run_sweep, sweeps_from_params
from pipeline.evaluation.zsseg import CROSS_DATASET, Protocol

METRICS = Path("metrics/tuning.json")
REPORT = Path("reports/tuning.md")


def run(tune: dict[str, Any], evaluate: dict[str, Any], *, artifacts: Path = paths.ARTIFACTS) -> dict[str, Any]:
    """Every sweep of ``tune`` scored on its benchmark; the records by sweep name."""
    sweeps = sweeps_from_params(tune)
    evaluate = dict(evaluate)
    device = pick_device(evaluate.pop("device", "auto"))
    set_threads(evaluate.pop("threads", None), "evaluate.threads")
    settings = EvalConfig.from_params(evaluate).resolved(device)
    world = load_world(paths.WORLD_MANIFEST)
    name = tune.get("benchmark", "val")
    if name not in world.benchmark_names:
        print(f"tune: the world has no benchmark {name!r} (a real world without a validation split): nothing swept")
        return {}
    dataset = world.benchmark(name)
    seen = class_is_seen(dataset.class_names, world.classes)
    proposer = load_proposer(artifacts / "proposer", device)
    records = {}
    if "zsseg_cross_dataset" in sweeps:

        def zsseg_scores(candidates: list[dict[str, float]]) -> list[float]:
            """One proposer and CLIP pass per mask threshold; every λ from it."""
            scores: dict[tuple[float, float], float] = {}
            for threshold in dict.fromkeys(c["mask_threshold"] for c in candidates):
                lams = [c["lam"] for c in candidates if c["mask_threshold"] == threshold]
                protocol = Protocol(name, CROSS_DATASET, lams[0], threshold, "tune")
                each = protocol.settings(settings)
                segmenter = build_variant_segmenter(protocol.variant(), proposer, artifacts, each, device)
                assert isinstance(segmenter, TwoStageSegmenter)  # the cross-dataset protocol classifies crops
                for lam, miou in ensemble_sweep(segmenter, dataset, each, seen, lams).items():
                    scores[lam, threshold] = miou
            return [scores[c["lam"], c["mask_threshold"]] for c in candidates]

        records["zsseg_cross_dataset"] = run_sweep(sweeps["zsseg_cross_dataset"], zsseg_scores, name)
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
