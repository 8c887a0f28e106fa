"""The results report: evaluation and ground-truth gauge JSONs → a Markdown ablation table.

Inputs are the files the ``evaluate`` stage writes (``<eval root>/<variant>/<benchmark>.json``)
and, when present, the ground-truth gauge's (``<crops root>/<variant>.json``, as written by
``ovseg gt-gauge --json``). The output depends only on their contents: the papers' table
(one row per variant, one mIoU column per benchmark headed A-847, PC-459, A-150, PC-59,
PAS-20, and their mean), the diagnostics in the same shape, and seen / unseen / hIoU per
benchmark. Rows follow :func:`pipeline.evaluation.variants.variant_names` (any variant with
records appears, with its description; unregistered names last), columns the papers' order
(others after them, sorted); figures have one decimal and ``–`` marks a missing or undefined figure.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.io import read_json
from pipeline.evaluation.variants import variant, variant_names

MISSING = "–"
#: Benchmarks in the column order of the papers' tables (``demo``: the demo world's A-150); others follow, sorted.
BENCHMARK_ORDER = ("ade847", "pc459", "ade150", "demo", "pc59", "voc20")
#: Column headings: the papers' names of the benchmarks.
PAPER_NAMES = {
    "ade847": "A-847",
    "pc459": "PC-459",
    "ade150": "A-150",
    "demo": "A-150",
    "pc59": "PC-59",
    "voc20": "PAS-20",
}
EVAL_KEYS = ("mIoU", "mIoU_seen", "mIoU_unseen", "images", "classes")
CROP_KEYS = ("mean", "seen", "unseen", "chance")

EvalRecords = Mapping[tuple[str, str], Mapping[str, Any]]
CropRecords = Mapping[str, Mapping[str, Any]]


def read_eval_metrics(root: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(variant, benchmark): record}`` from ``root/<variant>/<benchmark>.json`` (empty if ``root`` is missing).

    A file without the figures, or whose ``variant``/``benchmark`` disagree with
    its path, is a ``ValueError`` naming it.
    """
    root = Path(root)
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(root.glob("*/*.json")):
        record = read_json(path)
        missing = [key for key in EVAL_KEYS if not isinstance(record, dict) or key not in record]
        if missing:
            raise ValueError(f"{path}: not an evaluation record (missing {', '.join(missing)})")
        where = (path.parent.name, path.stem)
        claimed = (record.get("variant", where[0]), record.get("benchmark", where[1]))
        if claimed != where:
            raise ValueError(f"{path}: the record is for {claimed[0]}/{claimed[1]}, not {where[0]}/{where[1]}")
        records[where] = record
    return records


def read_crop_metrics(root: str | Path) -> dict[str, dict[str, Any]]:
    """``{row name: record}`` from ``root/<variant>.json`` (empty if ``root`` is missing).

    Each file maps benchmark names to ground-truth gauge records (``ovseg gt-gauge --json``);
    the row is named after the variant, with the benchmark added when there are several.
    """
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(root).glob("*.json")):
        by_benchmark = read_json(path)
        if (
            not isinstance(by_benchmark, dict)
            or not by_benchmark
            or not all(isinstance(r, dict) and "mean" in r for r in by_benchmark.values())
        ):
            raise ValueError(f"{path}: not a ground-truth gauge record ({{benchmark: {{mean, ...}}}})")
        for benchmark, record in sorted(by_benchmark.items()):
            name = path.stem if len(by_benchmark) == 1 else f"{path.stem} ({benchmark})"
            records[name] = record
    return records


def _fmt(value: Any) -> str:
    return MISSING if value is None else f"{float(value):.1f}"


def benchmark_names(records: EvalRecords) -> list[str]:
    """The benchmarks of ``records`` in the papers' column order, others after them, sorted."""
    names = {b for _, b in records}
    known = [name for name in BENCHMARK_ORDER if name in names]
    return known + sorted(names - set(known))


def heading(benchmark: str, benchmarks: list[str]) -> str:
    """The column heading of ``benchmark``: the papers' name (``demo`` is the demo world's A-150, named
    so unless a real ``ade150`` column is there too), else the name itself."""
    if benchmark == "demo" and "ade150" in benchmarks:
        return "A-150 (demo)"
    return PAPER_NAMES.get(benchmark, f"`{benchmark}`")


def report_order(names: set[str]) -> list[str]:
    """Registered variants in report order, then any others sorted."""
    known = [name for name in variant_names() if name in names]
    return known + sorted(names - set(known))


def _is_diagnostic(name: str) -> bool:
    try:
        return variant(name).is_diagnostic
    except ValueError:
        return False


def _describe(name: str) -> str:
    try:
        return variant(name).description
    except ValueError:
        return "not a registered variant (a stale or hand-made record)"


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(cells) + " |" for cells in (header, align, *rows)]


def row_mean(records: EvalRecords, name: str, benchmarks: list[str]) -> float | None:
    """The mean mIoU of row ``name`` over ``benchmarks``; ``None`` unless it has a figure for each."""
    figures = [records.get((name, b), {}).get("mIoU") for b in benchmarks]
    present = [f for f in figures if f is not None]
    if not figures or len(present) < len(figures):
        return None
    return sum(float(f) for f in present) / len(present)


def miou_table(records: EvalRecords, rows: list[str], benchmarks: list[str], first: str) -> list[str]:
    """Markdown lines of the papers' table: one row per name, its mIoU on each benchmark (a column headed
    by the papers' name) and, with several benchmarks, their mean."""
    with_mean = len(benchmarks) > 1
    header = [first] + [heading(b, benchmarks) for b in benchmarks] + (["mean"] if with_mean else [])
    lines = []
    for name in rows:
        cells = [f"`{name}`"] + [_fmt(records.get((name, b), {}).get("mIoU")) for b in benchmarks]
        if with_mean:
            cells.append(_fmt(row_mean(records, name, benchmarks)))
        lines.append(cells)
    return _table(header, lines)


def split_table(records: EvalRecords, rows: list[str], benchmarks: list[str]) -> list[str]:
    """Markdown lines: per benchmark, ``seen / unseen / hIoU`` mIoU of each row."""
    header = ["row"] + [heading(b, benchmarks) for b in benchmarks]
    lines = []
    for name in rows:
        cells = [f"`{name}`"]
        for benchmark in benchmarks:
            record = records.get((name, benchmark))
            cells.append(
                MISSING
                if record is None
                else " / ".join(_fmt(record.get(key)) for key in ("mIoU_seen", "mIoU_unseen", "hIoU"))
            )
        lines.append(cells)
    return _table(header, lines)


def crop_table(crops: CropRecords) -> list[str]:
    header = ["classifier", "all", "seen", "unseen", "chance"]
    rows = [[f"`{name}`", *(_fmt(crops[name].get(key)) for key in CROP_KEYS)] for name in report_order(set(crops))]
    return _table(header, rows)


def benchmark_lines(records: EvalRecords, benchmarks: list[str]) -> list[str]:
    """One legend line per benchmark: images evaluated (every distinct count), classes, seen split."""
    lines = []
    for benchmark in benchmarks:
        group = [r for (_, b), r in sorted(records.items()) if b == benchmark]
        images = "/".join(str(n) for n in sorted({int(r["images"]) for r in group}))
        first = group[0]
        split = ""
        if first.get("classes_seen") is not None:
            parts = [f"{first['classes_seen']} seen", f"{first['classes_unseen']} unseen"]
            if first.get("classes_outside_world"):
                parts.append(f"{first['classes_outside_world']} outside the world")
            split = f" ({', '.join(parts)})"
        name = heading(benchmark, benchmarks)
        label = f"`{benchmark}`" if name == f"`{benchmark}`" else f"{name} (`{benchmark}`)"
        lines.append(f"- {label}: {images} images, {first['classes']} classes{split}.")
    return lines


def protocol_lines(records: EvalRecords, benchmarks: list[str]) -> list[str]:
    """One line per row evaluated under zsseg.baseline's protocols (the ``zsseg`` record key): each
    benchmark's protocol, λ, mask threshold and the params entry they come from."""
    lines = []
    for name in report_order({v for v, _ in records}):
        cells = [
            f"{heading(b, benchmarks)} {p['protocol']} (λ {p['lam']:g}, mask threshold {p['mask_threshold']:g}; "
            f"`evaluate.zsseg.{p['from']}`)"
            for b in benchmarks
            if (p := records.get((name, b), {}).get("zsseg"))
        ]
        if cells:
            lines.append(f"`{name}` runs each benchmark under zsseg.baseline's protocol for it: {'; '.join(cells)}.")
    return lines


def render_results(records: EvalRecords, crops: CropRecords | None = None) -> str:
    """The whole ``reports/results.md`` text (ends with a newline)."""
    crops = crops or {}
    benchmarks = benchmark_names(records)
    ordered = report_order({v for v, _ in records})
    variants = [name for name in ordered if not _is_diagnostic(name)]
    diagnostics = [name for name in ordered if _is_diagnostic(name)]
    out = [
        "# Results",
        "",
        "Open-vocabulary semantic segmentation, mIoU in percent on the papers' benchmarks (A-847, PC-459, "
        "A-150, PC-59, PAS-20; the demo world's `demo` benchmark stands for A-150), all classes of each "
        "benchmark's vocabulary; `mean` is over the benchmark columns, for a row that has them all. Written by "
        f"`python -m stages.report` from `metrics/eval/`; `{MISSING}` = not evaluated or undefined.",
        "",
    ]
    if not records:
        out += ["No evaluation results yet: run `dvc repro` (or `python -m stages.evaluate`).", ""]
    if variants:
        out += ["## Variants", "", *miou_table(records, variants, benchmarks, "variant"), ""]
        protocols = protocol_lines(records, benchmarks)
        out += [*protocols, ""] if protocols else []
    if diagnostics:
        out += ["## Diagnostics", "", *miou_table(records, diagnostics, benchmarks, "diagnostic"), ""]
    if records:
        out += [
            "## Seen and unseen classes",
            "",
            "`seen / unseen / hIoU`: the mIoU over the benchmark's seen classes, over its unseen classes, and "
            "their harmonic mean.",
            "",
            *split_table(records, [*variants, *diagnostics], benchmarks),
            "",
        ]
    if crops:
        out += [
            "## Ground-truth mask classification",
            "",
            "Top-1 accuracy (%) of classifying ground-truth segments, averaged over classes (`ovseg gt-gauge`): "
            "each CLIP on masked crops, and the one-pass classifiers (`maskpool`, `adapter`: base CLIP; "
            "`ft_adapter`: finetuned CLIP) from one CLIP pass per image.",
            "",
            *crop_table(crops),
            "",
        ]
    legend = [f"- `{name}`: {_describe(name)}." for name in [*variants, *diagnostics]]
    out += ["## Legend", "", *legend]
    out += [
        "- `seen`: a benchmark class whose name or a synonym names a training class with labels "
        "(the proposer and the adaptation stages saw it); `unseen`: a class of the world without labels "
        "(with real data: every other class). In the demo world, a name of a wide vocabulary that is no class "
        "of the world (a distractor) is neither: it counts in the mIoU only, when predicted.",
        "- mIoU: per-class IoU = TP / (TP + FP + FN) accumulated over the whole benchmark, averaged "
        "over the classes present in the ground truth or the predictions.",
        "- The oracle bounds what the proposals allow; the ground-truth-mask rows bound what the "
        "classifier allows. A large gap between a variant and its ground-truth-mask row points at the masks, "
        "a large gap to the oracle at the classifier.",
    ]
    if benchmarks:
        out += ["", "Benchmarks:", "", *benchmark_lines(records, benchmarks)]
    return "\n".join(out) + "\n"


def miou_csv(records: EvalRecords) -> str:
    """``run,variant,benchmark,mIoU,mIoU_seen,mIoU_unseen`` rows for ``dvc plots`` (report order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run", "variant", "benchmark", "mIoU", "mIoU_seen", "mIoU_unseen"])
    benchmarks = benchmark_names(records)
    for name in report_order({v for v, _ in records}):
        for benchmark in benchmarks:
            record = records.get((name, benchmark))
            if record is None:
                continue
            figures = [
                "" if record.get(k) is None else f"{float(record[k]):.2f}" for k in ("mIoU", "mIoU_seen", "mIoU_unseen")
            ]
            writer.writerow([f"{name} / {benchmark}", name, benchmark, *figures])
    return buffer.getvalue()
