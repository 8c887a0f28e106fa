"""Stage `report`: fixture evaluation and ground-truth gauge JSONs → the papers' table, gaps as '–'."""

from __future__ import annotations

import json
from pathlib import Path

from core import paths
from stages.report import main


def write_eval(
    variant: str,
    benchmark: str,
    m: float | None,
    seen: float | None,
    unseen: float | None,
    images: int = 200,
    classes: int = 44,
    classes_seen: int = 31,
    classes_unseen: int = 13,
    hiou: float | None = None,
) -> None:
    path = Path(f"metrics/eval/{variant}/{benchmark}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "variant": variant,
                "benchmark": benchmark,
                "mIoU": m,
                "mIoU_seen": seen,
                "mIoU_unseen": unseen,
                "hIoU": hiou,
                "images": images,
                "classes": classes,
                "classes_seen": classes_seen,
                "classes_unseen": classes_unseen,
                "classes_outside_world": classes - classes_seen - classes_unseen,
                "per_class": {},
            }
        )
    )


def write_crops() -> None:
    paths.CROP_METRICS.mkdir(parents=True)
    (paths.CROP_METRICS / "base.json").write_text(
        json.dumps({"demo": {"mean": 33.333, "seen": 40.0, "unseen": 20.0, "chance": 2.27}})
    )


#: base on the five benchmarks of the demo world, ft_mpt on two, the references on the demo one.
FIVE = [
    ("base", "ade847", 5.0, 6.0, 4.0, 847),
    ("base", "pc459", 8.0, 9.0, 7.0, 459),
    ("base", "demo", 12.0, 15.55, 4.44, 44),
    ("base", "pc59", 20.0, 22.0, 16.0, 59),
    ("base", "voc20", 40.0, 44.0, 30.0, 20),
    ("ft_mpt", "demo", 41.25, 50.0, 20.04, 44),
    ("ft_mpt", "voc20", 50.0, 55.0, 40.0, 20),
]

EXPECTED_FIVE = """\
## Variants

| variant | A-847 | PC-459 | A-150 | PC-59 | PAS-20 | mean |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| `base` | 5.0 | 8.0 | 12.0 | 20.0 | 40.0 | 17.0 |
| `ft_mpt` | – | – | 41.2 | – | 50.0 | – |

## Diagnostics

| diagnostic | A-847 | PC-459 | A-150 | PC-59 | PAS-20 | mean |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| `oracle` | – | – | 80.0 | – | – | – |

## Seen and unseen classes

`seen / unseen / hIoU`: the mIoU over the benchmark's seen classes, over its unseen classes, and their harmonic mean.

| row | A-847 | PC-459 | A-150 | PC-59 | PAS-20 |
| --- | ---: | ---: | ---: | ---: | ---: |
| `base` | 6.0 / 4.0 / 4.8 | 9.0 / 7.0 / 7.9 | 15.6 / 4.4 / 6.9 | 22.0 / 16.0 / 18.5 | 44.0 / 30.0 / 35.7 |
| `ft_mpt` | – | – | 50.0 / 20.0 / 28.6 | – | 55.0 / 40.0 / 46.3 |
| `oracle` | – | – | 81.0 / 77.8 / 79.3 | – | – |
"""

EXPECTED_BENCHMARKS = """\
Benchmarks:

- A-847 (`ade847`): 100 images, 847 classes (31 seen, 13 unseen, 803 outside the world).
- PC-459 (`pc459`): 100 images, 459 classes (31 seen, 13 unseen, 415 outside the world).
- A-150 (`demo`): 100/200 images, 44 classes (31 seen, 13 unseen).
- PC-59 (`pc59`): 100 images, 59 classes (31 seen, 13 unseen, 15 outside the world).
- PAS-20 (`voc20`): 100 images, 20 classes (14 seen, 6 unseen).
"""


def _hiou(seen: float, unseen: float) -> float:
    return 2 * seen * unseen / (seen + unseen)


def test_report_renders_the_papers_table_with_gaps(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name, benchmark, m, seen, unseen, classes in FIVE:
        split = (14, 6) if benchmark == "voc20" else (31, 13)
        write_eval(
            name,
            benchmark,
            m,
            seen,
            unseen,
            images=200 if benchmark == "demo" else 100,
            classes=classes,
            classes_seen=split[0],
            classes_unseen=split[1],
            hiou=_hiou(seen, unseen),
        )
    write_eval("oracle", "demo", 80.0, 81.0, 77.75, images=100, hiou=_hiou(81.0, 77.75))
    write_crops()
    write_eval("base", "val", 13.0, 16.0, 5.0, images=200, hiou=_hiou(16.0, 5.0))
    (paths.VAL_METRICS / "base").mkdir(parents=True)
    (paths.EVAL_METRICS / "base/val.json").rename(paths.VAL_METRICS / "base/val.json")
    assert main([]) == 0
    assert "8 evaluations, 1 gauges, 1 on val" in capsys.readouterr().out
    text = paths.RESULTS_REPORT.read_text(encoding="utf-8")
    assert EXPECTED_FIVE in text
    assert text.endswith(EXPECTED_BENCHMARKS)
    assert "## Ground-truth mask classification" in text and "| `base` | 33.3 | 40.0 | 20.0 | 2.3 |" in text
    assert "- `ft_mpt`: proposals + finetuned CLIP + mask prompt tuning." in text
    csv_rows = Path("reports/miou.csv").read_text().splitlines()
    assert csv_rows[0] == "run,variant,benchmark,mIoU,mIoU_seen,mIoU_unseen" and len(csv_rows) == 9
    assert csv_rows[1] == "base / ade847,base,ade847,5.00,6.00,4.00"
    summary = json.loads(paths.SUMMARY_METRICS.read_text())
    assert summary["mean"] == {"base": 17.0}  # ft_mpt and oracle lack benchmarks: no mean
    assert summary["mIoU"]["ft_mpt"] == {"demo": 41.25, "voc20": 50.0}
    assert summary["split"]["oracle"] == {"demo": {"seen": 81.0, "unseen": 77.75, "hIoU": 79.34}}
    assert summary["val"] == {"base": 13.0} and summary["gauge"] == {"base": 33.33}
    assert "mining" not in summary  # no metrics/mine.json here


def test_report_renders_a_single_benchmark_and_its_missing_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_eval("base", "demo", 12.0, 15.55, 4.44)
    write_eval("gt_masks_base", "demo", 30.0, 35.0, None)
    write_eval("zzz", "demo", 1.0, None, None)
    assert main([]) == 0
    text = paths.RESULTS_REPORT.read_text(encoding="utf-8")
    assert "| variant | A-150 |\n| --- | ---: |\n| `base` | 12.0 |\n| `zzz` | 1.0 |\n" in text  # no mean of one
    assert "| `gt_masks_base` | 35.0 / – / – |" in text and "| `zzz` | – / – / – |" in text
    assert "- `zzz`: not a registered variant" in text


def test_report_without_results_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--out", "out/results.md"]) == 0
    text = Path("out/results.md").read_text(encoding="utf-8")
    assert "No evaluation results yet" in text and "## Variants" not in text


def test_report_refuses_a_misplaced_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_eval("base", "demo", 1.0, 1.0, 1.0)
    (paths.EVAL_METRICS / "base/demo.json").rename(paths.EVAL_METRICS / "base/ade150.json")
    assert main([]) == 2
    assert "ade150.json: the record is for base/demo, not base/ade150" in capsys.readouterr().err
    assert not Path("reports").exists()
