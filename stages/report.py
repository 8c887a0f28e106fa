"""Stage ``report``: every evaluation (and crop-benchmark) JSON → ``reports/results.md``.

    python -m stages.report [--eval metrics/eval] [--crops metrics/crops] [--out reports/results.md]

Also writes ``reports/miou.csv`` (one row per variant and benchmark) for ``dvc plots``.
The output depends only on the JSON files read; see :mod:`pipeline.evaluation.report`.
"""

from __future__ import annotations

from core import paths
from core.cli import add_path_options, command, exit_process, parser
from core.io import atomic_write_text
from pipeline.evaluation.report import miou_csv, read_crop_metrics, read_eval_metrics, render_results


@command("report")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg report", __doc__)
    add_path_options(
        cli,
        ("eval", paths.EVAL_METRICS, "evaluation JSONs"),
        ("crops", paths.CROP_METRICS, "crop-benchmark JSONs, optional"),
        ("out", paths.RESULTS_REPORT, "Markdown report"),
    )
    args = cli.parse_args(argv)
    records = read_eval_metrics(args.eval)
    crops = read_crop_metrics(args.crops)
    atomic_write_text(args.out, render_results(records, crops))
    atomic_write_text(args.out.with_name("miou.csv"), miou_csv(records))
    print(f"report: {len(records)} evaluations, {len(crops)} crop benchmarks -> {args.out}")
    return 0


if __name__ == "__main__":
    exit_process(main())
