"""End to end: the whole DVC pipeline on a tiny world, in a copy of the repository.

Runs `dvc repro` through `report` with small params, checks that the report and every
metric exist, and that a second `dvc repro` has nothing to do.
"""

import pytest
import yaml

from pipeline.project.params_apply import apply_override

TINY = {
    "data": {
        "demo": {
            "train_images": 64,
            "benchmark_images": 16,
            "extra_benchmark_images": 8,
            "image_size": 96,
            "workers": 1,
        },
        "benchmarks": ["demo", "voc20"],
    },  # two of the five: the matrices and the report's columns
    "clip": {"pretrain": {"epochs": 1, "batch_size": 32, "warmup_steps": 1}},
    "proposer": {"epochs": 1, "batch_size": 16, "warmup_steps": 1, "bench": {"limit": 4}},
    "nouns": {"runner": {"runner": "direct-inmemory"}, "num_shards": 2},
    "mine": {"runner": {"runner": "direct-inmemory"}, "num_shards": 2, "min_proposal_score": 0.0},
    "finetune": {"epochs": 1, "batch_size": 16, "warmup_steps": 1},
    "prompt_tune": {"epochs": 1, "batch_size": 16, "warmup_steps": 1},
    "mask_adapter": {"warmup_epochs": 1, "mixed_epochs": 1, "batch_size": 16, "warmup_steps": 1, "hidden": 8},
    "evaluate": {"max_images": 4, "overlay_images": 2},
}


@pytest.mark.slow
def test_the_whole_dag_runs_and_a_second_repro_is_a_no_op(repo_copy, dvc):
    repo = repo_copy()
    params = repo / "params.yaml"
    params.write_text(apply_override(params.read_text(), yaml.safe_dump(TINY))[0])

    dvc("repro", cwd=repo)

    report = (repo / "reports" / "results.md").read_text()
    assert "| `base` |" in report and "| `ft_mpt` |" in report and "| `oracle` |" in report
    assert "| `adapter_ens` |" in report and "| `ft_adapter` |" in report
    for variant in (
        "base",
        "mpt",
        "ft",
        "ft_mpt",
        "ft_gt",
        "longer",
        "oracle",
        "gt_masks_base",
        "maskpool",
        "adapter",
        "adapter_ens",
        "ft_adapter_ens",
        "gt_masks_adapter",
    ):
        for benchmark in ("demo", "voc20"):
            assert (repo / "metrics" / "eval" / variant / f"{benchmark}.json").is_file(), (variant, benchmark)
    assert "| variant | A-150 | PAS-20 | mean |" in report
    for name in (
        "proposer",
        "nouns",
        "mine",
        "base_clip",
        "base_clip_longer",
        "finetune",
        "finetune_gt",
        "mask_adapter_base",
        "mask_adapter_ft",
    ):
        assert (repo / "metrics" / f"{name}.json").is_file(), name
    assert list((repo / "data" / "pairs").glob("*.parquet"))

    second = dvc("repro", cwd=repo)
    assert "Running stage" not in second, second
    assert "Data and pipelines are up to date" in dvc("status", cwd=repo)
