from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.evaluation.variants import variant_names
from pipeline.project.seeds import (
    CLAIMS,
    SEED_KEYS,
    Claim,
    claim_record,
    experiment_metrics,
    experiment_ref,
    queue_command,
    render,
    summarise,
)

ROOT = Path(__file__).resolve().parents[3]


def records(**miou: float) -> dict:
    """Two benchmarks per variant, the second 2 points above the first."""
    return {
        (variant, bench): {"mIoU": value + offset, "mIoU_unseen": value}
        for variant, value in miou.items()
        for bench, offset in (("demo", 0.0), ("pc59", 2.0))
    }


def test_every_seed_key_is_a_training_seed_of_params_and_the_world_stays_fixed() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for key in SEED_KEYS:
        section, name = key.split(".")
        assert name in params[section], key
    command = queue_command(3)
    assert command[:5] == ["dvc", "exp", "run", "--queue", "--name"]
    assert command.count("-S") == len(SEED_KEYS)
    assert "data.seed=3" not in command and "clip.seed=3" in command


def test_a_claim_holds_only_when_its_mean_difference_exceeds_twice_its_std() -> None:
    steady = {0: records(ft=30, base=20), 1: records(ft=31, base=20), 2: records(ft=29, base=20)}
    noisy = {0: records(ft=30, base=20), 1: records(ft=15, base=20), 2: records(ft=27, base=20)}
    held = claim_record(Claim("ft", "base"), steady)
    assert held is not None
    assert held["differences"] == {0: 10.0, 1: 11.0, 2: 9.0}
    assert (held["mean"], held["std"], held["holds"]) == (10.0, 1.0, True)
    failed = claim_record(Claim("ft", "base"), noisy)
    assert failed is not None and failed["holds"] is False
    assert claim_record(Claim("ft", "missing"), steady) is None


def test_summary_and_page_give_mean_and_std_per_variant_and_benchmark() -> None:
    runs = {0: records(ft=30, base=20), 1: records(ft=32, base=22)}
    summary = summarise(runs)
    assert summary["miou"]["ft"]["demo"] == {"seeds": {0: 30, 1: 32}, "mean": 31.0, "std": 1.41}
    assert [c["better"] for c in summary["claims"]] == ["ft"]  # the other claims' variants are missing
    page = render(summary)
    assert "| `ft` | 31.0 ± 1.4 | 33.0 ± 1.4 |" in page
    assert "| `ft` > `base` | mIoU | +10.0 / +10.0 | +10.0 ± 0.0 | yes |" in page
    assert {name for c in CLAIMS for name in (c.better, c.worse)} <= set(variant_names())


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_an_experiments_metrics_are_read_from_its_git_ref(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    metrics = tmp_path / "metrics/eval/ft/demo.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(
        json.dumps({"mIoU": 12.5, "mIoU_seen": 14.0, "mIoU_unseen": 9.0, "images": 3, "classes": 5}), encoding="utf-8"
    )
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "exp")
    git(tmp_path, "update-ref", "refs/exps/ab/cdef/seed-1", "HEAD")
    ref = experiment_ref("seed-1", tmp_path)
    assert ref == "refs/exps/ab/cdef/seed-1"
    assert experiment_metrics(ref, tmp_path)["ft", "demo"]["mIoU"] == 12.5
    with pytest.raises(LookupError, match="seed-2"):
        experiment_ref("seed-2", tmp_path)
