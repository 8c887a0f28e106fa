"""Stage `report`: fixture evaluation and crop-benchmark JSONs → the exact Markdown table."""
from __future__ import annotations

import json
from pathlib import Path

from stages.report import main


def write_eval(variant: str, benchmark: str, m: float | None, seen: float | None, unseen: float | None,
               images: int = 200, classes: int = 44, classes_seen: int = 31) -> None:
    path = Path(f"metrics/eval/{variant}/{benchmark}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "variant": variant, "benchmark": benchmark, "mIoU": m, "mIoU_seen": seen, "mIoU_unseen": unseen,
        "images": images, "classes": classes, "classes_seen": classes_seen,
        "classes_unseen": classes - classes_seen, "per_class": {},
    }))


EXPECTED = """\
# Results

Open-vocabulary semantic segmentation, mIoU in percent (`all` classes of the benchmark, its `seen` and `unseen` classes). Written by `python -m stages.report` from `metrics/eval/`; `–` = not evaluated or undefined.

## Two-stage variants

| variant | ade150 all | ade150 seen | ade150 unseen | demo all | demo seen | demo unseen |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| `base` | 9.0 | 10.0 | 8.0 | 12.0 | 15.6 | 4.4 |
| `ft_mpt` | – | – | – | 41.2 | 50.0 | 20.0 |

## Diagnostics

| diagnostic | ade150 all | ade150 seen | ade150 unseen | demo all | demo seen | demo unseen |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| `oracle` | – | – | – | 80.0 | 81.0 | 77.8 |
| `gt_masks_base` | – | – | – | 30.0 | 35.0 | – |

## Ground-truth mask classification

Top-1 accuracy (%) of classifying ground-truth segments, averaged over classes (`ovseg crop-bench`): each CLIP on masked crops, and the one-pass classifiers (`maskpool`, `adapter`: base CLIP; `ft_adapter`: finetuned CLIP) from one CLIP pass per image.

| classifier | all | seen | unseen | chance |
| --- | ---: | ---: | ---: | ---: |
| `base` | 33.3 | 40.0 | 20.0 | 2.3 |

## Legend

- `base`: proposals + base CLIP, not adapted to masked crops.
- `ft_mpt`: proposals + finetuned CLIP + mask prompt tuning.
- `oracle`: proposals labelled by the ground truth (a perfect classifier).
- `gt_masks_base`: ground-truth masks classified by the base CLIP (crops).
- `seen`: a benchmark class whose name or a synonym names a training class with labels (the proposer and the adaptation stages saw it); `unseen`: every other class.
- mIoU: per-class IoU = TP / (TP + FP + FN) accumulated over the whole benchmark, averaged over the classes present in the ground truth or the predictions.
- The oracle bounds what the proposals allow; the ground-truth-mask rows bound what the classifier allows. A large gap between a variant and its ground-truth-mask row points at the masks, a large gap to the oracle at the classifier.

Benchmarks:

- `ade150`: 2000 images, 150 classes (120 seen, 30 unseen).
- `demo`: 100/200 images, 44 classes (31 seen, 13 unseen).
"""

EXPECTED_CSV = """\
run,variant,benchmark,mIoU,mIoU_seen,mIoU_unseen
base / ade150,base,ade150,9.00,10.00,8.00
base / demo,base,demo,12.00,15.55,4.44
ft_mpt / demo,ft_mpt,demo,41.25,50.00,20.04
oracle / demo,oracle,demo,80.00,81.00,77.75
gt_masks_base / demo,gt_masks_base,demo,30.00,35.00,
"""


def test_report_renders_the_ablation_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_eval("ft_mpt", "demo", 41.25, 50.0, 20.04)
    write_eval("base", "demo", 12.0, 15.55, 4.44)
    write_eval("oracle", "demo", 80.0, 81.0, 77.75, images=100)
    write_eval("gt_masks_base", "demo", 30.0, 35.0, None)
    write_eval("base", "ade150", 9.0, 10.0, 8.0, images=2000, classes=150, classes_seen=120)
    Path("metrics/crops").mkdir(parents=True)
    Path("metrics/crops/base.json").write_text(json.dumps({"demo": {"mean": 33.333, "seen": 40.0,
                                                                    "unseen": 20.0, "chance": 2.27}}))
    assert main([]) == 0
    assert "5 evaluations, 1 crop benchmarks" in capsys.readouterr().out
    assert Path("reports/results.md").read_text(encoding="utf-8") == EXPECTED
    assert Path("reports/miou.csv").read_text() == EXPECTED_CSV


def test_report_without_results_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--out", "out/results.md"]) == 0
    text = Path("out/results.md").read_text(encoding="utf-8")
    assert "No evaluation results yet" in text and "## Two-stage variants" not in text


def test_report_refuses_a_misplaced_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_eval("base", "demo", 1.0, 1.0, 1.0)
    Path("metrics/eval/base/demo.json").rename(Path("metrics/eval/base/ade150.json"))
    assert main([]) == 2
    assert "ade150.json: the record is for base/demo, not base/ade150" in capsys.readouterr().err
    assert not Path("reports").exists()
