"""The training-seed study: every trained stage rerun under other seeds as DVC experiments, the world fixed.

    python -m pipeline.project.seeds run [--seeds 1 2]      # queue one experiment per seed, run them, then report
    python -m pipeline.project.seeds report [--seeds 1 2]   # only the report, from experiments already run

An experiment ``seed-S`` sets every training seed of params.yaml (:data:`SEED_KEYS`) to S; ``data.seed``
stays, so the world, the nouns and the benchmarks are the same bytes in every run and only training varies.
The workspace's own results (the committed run) are seed 0. The report reads each experiment's evaluation
metrics from its git ref and writes ``reports/seeds.json`` and ``reports/seeds.md``: per variant and
benchmark, the mIoU's mean ± std over the seeds; and for each claim the results make (:data:`CLAIMS`), the
difference, paired by seed, with its mean ± std and whether the mean exceeds twice the std.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from core.cli import parser
from core.io import atomic_write_text, write_json
from pipeline.evaluation.report import BENCHMARK_ORDER, EvalRecords, heading, read_eval_metrics, report_order

#: The seed of every trained stage; ``data.seed`` (the world) is left out on purpose.
SEED_KEYS = (
    "clip.seed",
    "proposer.seed",
    "finetune.seed",
    "base_clip_longer.seed",
    "prompt_tune.seed",
    "text_prompts.seed",
    "mask_adapter.seed",
)
EVAL_ROOT = Path("metrics/eval")
REPORT_JSON = Path("reports/seeds.json")
REPORT_MD = Path("reports/seeds.md")
DEFAULT_SEEDS = (1, 2)


@dataclass(frozen=True)
class Claim:
    """``better`` beats ``worse`` on ``metric``, averaged over the benchmarks (or on ``benchmark`` alone)."""

    better: str
    worse: str
    metric: str = "mIoU"
    what: str = ""
    benchmark: str | None = None


#: The comparisons README's analysis and reports/results.md draw.
CLAIMS = (
    Claim("ft", "base", what="finetuning on mined pairs beats the pretrained CLIP"),
    Claim("ft_mpt", "ft", what="mask prompt tuning adds to finetuning"),
    Claim("mpt", "base", what="mask prompt tuning alone beats the pretrained CLIP"),
    Claim("ft", "longer", what="mined pairs beat as many more steps of pretraining (equal compute)"),
    Claim("ft", "ft_gt", "mIoU_unseen", "mined pairs beat seen ground truth on unseen classes"),
    Claim("adapter_ens", "maskpool", what="the trained Mask-Adapter beats plain mask pooling"),
    Claim("maskpool", "base", what="one-pass mask pooling beats the crop path"),
    Claim("adapter_ens", "base", what="the Mask-Adapter's ensemble beats the crop path with the same base CLIP"),
    Claim("base", "zsseg", what="the templates with OVSeg's exponent beat zsseg's row under its own protocols"),
    *(
        Claim(
            "zsseg", "base", metric, "zsseg's zero-shot protocol against base on the benchmark with the split", "demo"
        )
        for metric in ("mIoU_seen", "mIoU_unseen", "hIoU")
    ),
    Claim(
        "gt_masks_adapter", "gt_masks_maskpool", what="the paper's adapter classifies true masks better than pooling"
    ),
    Claim(
        "gt_masks_adapter",
        "gt_masks_maskpool_mean",
        what="the adapter against the paper's baseline, a weighted mean of one CLIP pass",
    ),
    Claim("prompts", "base", what="learned text prompts beat the templates"),
    Claim("ft_prompts", "ft", what="learned text prompts beat the templates on the finetuned CLIP"),
)


def experiment_name(seed: int) -> str:
    return f"seed-{seed}"


def queue_command(seed: int) -> list[str]:
    """``dvc exp run --queue`` of the experiment that trains every stage with ``seed``."""
    sets = [arg for key in SEED_KEYS for arg in ("-S", f"{key}={seed}")]
    return ["dvc", "exp", "run", "--queue", "--name", experiment_name(seed), *sets]


def run_experiments(seeds: Sequence[int]) -> None:
    """Queue one experiment per seed and run the queue, one experiment at a time (they share the cores)."""
    for seed in seeds:
        subprocess.run(queue_command(seed), check=True)
    subprocess.run(["dvc", "queue", "start", "--jobs", "1"], check=True)
    while _queue_busy():
        time.sleep(30)
    subprocess.run(["dvc", "queue", "status"], check=True)


def _queue_busy() -> bool:
    status = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True, check=True).stdout
    return any(word in status for word in ("Queued", "Running"))


def experiment_ref(name: str, root: Path = Path()) -> str:
    """The newest git ref of the DVC experiment called ``name`` (``refs/exps/<baseline>/<name>``)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--sort=-committerdate", "--format=%(refname)", "refs/exps"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    matches = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    if not matches:
        raise LookupError(f"no DVC experiment named {name!r} (run: python -m pipeline.project.seeds run)")
    return matches[0]


def experiment_metrics(ref: str, root: Path = Path()) -> EvalRecords:
    """The evaluation metrics committed in experiment ``ref``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, str(EVAL_ROOT)], cwd=root, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        return read_eval_metrics(Path(folder) / EVAL_ROOT)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value), rounded to 2 decimals."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 2), "std": round(std, 2)}


def benchmark_mean(records: EvalRecords, variant: str, metric: str, benchmark: str | None = None) -> float | None:
    """``metric`` of ``variant`` averaged over the benchmarks it was evaluated on, or on ``benchmark`` alone
    (None if it was not)."""
    values = [
        r[metric]
        for (v, b), r in records.items()
        if v == variant and (benchmark is None or b == benchmark) and r.get(metric) is not None
    ]
    return statistics.fmean(values) if values else None


def summarise(runs: dict[int, EvalRecords]) -> dict[str, Any]:
    """Per variant and benchmark: each seed's mIoU, mean and std; per claim: the paired differences."""
    cells: dict[str, dict[str, Any]] = {}
    for variant, benchmark in sorted({key for records in runs.values() for key in records}):
        values = {
            seed: records[variant, benchmark]["mIoU"]
            for seed, records in runs.items()
            if (variant, benchmark) in records
        }
        cells.setdefault(variant, {})[benchmark] = {"seeds": values, **mean_std(list(values.values()))}
    claims = [claim_record(claim, runs) for claim in CLAIMS]
    return {"seeds": sorted(runs), "miou": cells, "claims": [c for c in claims if c is not None]}


def claim_record(claim: Claim, runs: dict[int, EvalRecords]) -> dict[str, Any] | None:
    """The differences ``better - worse`` of each seed, and whether their mean exceeds twice their std."""
    differences = {}
    for seed, records in runs.items():
        better, worse = (
            benchmark_mean(records, claim.better, claim.metric, claim.benchmark),
            benchmark_mean(records, claim.worse, claim.metric, claim.benchmark),
        )
        if better is not None and worse is not None:
            differences[seed] = round(better - worse, 2)
    if not differences:
        return None
    stats = mean_std(list(differences.values()))
    holds = len(differences) > 1 and stats["mean"] > 2 * stats["std"]
    return {**vars(claim), "differences": differences, **stats, "holds": holds}


def render(summary: dict[str, Any]) -> str:
    """The text of ``reports/seeds.md``."""
    seeds = ", ".join(str(s) for s in summary["seeds"])
    benchmarks = sorted({b for cells in summary["miou"].values() for b in cells}, key=_benchmark_key)
    lines = [
        "# Seed study",
        "",
        f"Every trained stage rerun with training seeds {seeds} (`python -m pipeline.project.seeds run`; "
        "seed 0 is the committed run), the world fixed. mIoU in percent, mean ± sample std over the seeds.",
        "",
        "## Claims",
        "",
        "Each claim's difference `better − worse` of the five-benchmark mean (or of one benchmark's figure, "
        "named beside the metric), paired by seed. It holds when the mean difference exceeds twice its std.",
        "",
        "| claim | metric | per seed | mean ± std | holds |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for c in summary["claims"]:
        per_seed = " / ".join(f"{d:+.1f}" for d in c["differences"].values())
        verdict = "yes" if c["holds"] else "**no**"
        difference = f"{c['mean']:+.1f} ± {c['std']:.1f}"
        metric = c["metric"] if c.get("benchmark") is None else f"{c['metric']} ({heading(c['benchmark'], benchmarks)})"
        lines.append(f"| `{c['better']}` > `{c['worse']}` | {metric} | {per_seed} | {difference} | {verdict} |")
    lines += [
        "",
        "## mIoU per variant",
        "",
        "| variant | " + " | ".join(heading(b, benchmarks) for b in benchmarks) + " |",
    ]
    lines.append("| --- |" + " ---: |" * len(benchmarks))
    for variant in report_order(set(summary["miou"])):
        cells = summary["miou"][variant]
        row = [f"{cells[b]['mean']:.1f} ± {cells[b]['std']:.1f}" if b in cells else "–" for b in benchmarks]
        lines.append(f"| `{variant}` | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _benchmark_key(name: str) -> int:
    return BENCHMARK_ORDER.index(name) if name in BENCHMARK_ORDER else len(BENCHMARK_ORDER)


def report(seeds: Sequence[int], root: Path = Path()) -> dict[str, Any]:
    """Seed 0 from the workspace, the others from their experiments; writes the JSON and the page."""
    runs: dict[int, EvalRecords] = {0: read_eval_metrics(root / EVAL_ROOT)}
    for seed in seeds:
        runs[seed] = experiment_metrics(experiment_ref(experiment_name(seed), root), root)
    summary = summarise(runs)
    write_json(root / REPORT_JSON, summary)
    atomic_write_text(root / REPORT_MD, render(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m pipeline.project.seeds", __doc__)
    cli.add_argument("action", choices=("run", "report"))
    cli.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), help="training seeds besides 0")
    args = cli.parse_args(argv)
    if 0 in args.seeds:
        cli.error("seed 0 is the workspace's own run")
    if args.action == "run":
        run_experiments(args.seeds)
    summary = report(args.seeds)
    for c in summary["claims"]:
        print(f"{c['better']} > {c['worse']} ({c['metric']}): {c['mean']:+.2f} ± {c['std']:.2f}  holds: {c['holds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
