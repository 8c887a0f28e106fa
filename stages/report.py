"""Stage ``report``: every evaluation (and ground-truth gauge) JSON → ``reports/results.md``.

    python -m stages.report [--eval metrics/eval] [--crops metrics/crops] [--val metrics/val/metrics]
        [--out reports/results.md] [--summary metrics/summary.json]

Also writes ``reports/miou.csv`` (one row per variant and benchmark) for ``dvc plots``, and the headline figures
(with each row on ``val``, the mined pairs' precision and the training stages' final figures) to
``metrics/summary.json``, the pipeline's one metrics file, for ``dvc metrics`` and ``dvc exp show``. The outputs
depend only on the JSON files read; see :mod:`pipeline.evaluation.report` and :mod:`pipeline.evaluation.summary`.
"""

from __future__ import annotations

from core import paths
from core.cli import add_path_options, command, exit_process, parser
from core.io import atomic_write_text, read_json, write_json
from pipeline.evaluation.report import miou_csv, read_crop_metrics, read_eval_metrics, render_results
from pipeline.evaluation.summary import TRAINING_STAGES, headline_metrics


@command("report")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg report", __doc__)
    add_path_options(
        cli,
        ("eval", paths.EVAL_METRICS, "evaluation JSONs"),
        ("crops", paths.CROP_METRICS, "ground-truth gauge JSONs, optional"),
        ("val", paths.VAL_METRICS, "evaluation JSONs on the validation benchmark, optional"),
        ("metrics", paths.METRICS, "folder of the mining and training stages' metrics files, optional"),
        ("out", paths.RESULTS_REPORT, "Markdown report"),
        ("summary", paths.SUMMARY_METRICS, "headline figures (JSON)"),
    )
    args = cli.parse_args(argv)
    records = read_eval_metrics(args.eval)
    crops = read_crop_metrics(args.crops)
    val = read_eval_metrics(args.val)
    found = [args.metrics / f"{name}.json" for name in ("mine", *TRAINING_STAGES)]
    stage_records = {path.stem: read_json(path) for path in found if path.is_file()}
    mining = stage_records.pop("mine", None)
    atomic_write_text(args.out, render_results(records, crops))
    atomic_write_text(args.out.with_name("miou.csv"), miou_csv(records))
    write_json(args.summary, headline_metrics(records, crops, val, mining, stage_records))
    print(f"report: {len(records)} evaluations, {len(crops)} gauges, {len(val)} on val -> {args.out}, {args.summary}")
    return 0


if __name__ == "__main__":
    exit_process(main())
