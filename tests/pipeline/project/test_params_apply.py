"""`ovseg params-apply`: an override merged into params.yaml in place, nothing else touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.evaluation.miou import EvalConfig
from pipeline.project.params_apply import apply_override, main
from pipeline.training.clip_adaptation import AdaptConfig
from stages.mine import MineStageConfig
from stages.nouns import NounsConfig
from stages.proposer import ProposerStageConfig

REPO = Path(__file__).resolve().parents[3]

PARAMS = """\
# top comment
data:
  source: demo            # demo or coco
  benchmarks: [demo]      # evaluated
  stoplist: [             # several lines
    a, b,
    c]
train:
  lr: 1.4e-3              # tuned
  workers: null
  runner: {runner: direct, workers: 2}   # runner
"""


def test_only_changed_values_are_rewritten_and_comments_stay_in_place() -> None:
    override = "data:\n  benchmarks: [ade150, voc20]\ntrain:\n  lr: 5.0e-6\n  runner: {workers: 16}\n  workers: 4\n"
    text, changes = apply_override(PARAMS, override)
    assert text == PARAMS.replace("[demo]      #", "[ade150, voc20] #").replace(
        "lr: 1.4e-3              #", "lr: 5.0e-6              #"
    ).replace("workers: null", "workers: 4").replace(
        "{runner: direct, workers: 2}   #", "{runner: direct, workers: 16}  #"
    )
    assert yaml.safe_load(text)["train"] == {"lr": 5e-6, "workers": 4, "runner": {"runner": "direct", "workers": 16}}
    assert changes == [
        "data.benchmarks: [demo] -> [ade150, voc20]",
        "train.lr: 0.0014 -> 5.0e-06",
        "train.runner: {runner: direct, workers: 2} -> {runner: direct, workers: 16}",
        "train.workers: null -> 4",
    ]


def test_unchanged_values_make_no_change() -> None:
    assert apply_override(PARAMS, "data:\n  source: demo\n") == (PARAMS, [])


@pytest.mark.parametrize(
    "override, error, message",
    [
        ("data:\n  sorce: coco\n", KeyError, "data.sorce: not a key of the params file"),
        ("data:\n  stoplist: [x]\n", ValueError, "data.stoplist: its value spans several lines"),
        ("- a\n", ValueError, "must hold a YAML mapping"),
    ],
)
def test_refusals_name_the_key(override: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        apply_override(PARAMS, override)


def test_cli_dry_run_and_write(tmp_path: Path, capsys) -> None:
    params, override = tmp_path / "params.yaml", tmp_path / "override.yaml"
    params.write_text(PARAMS)
    override.write_text("data:\n  source: coco\n")
    assert main([str(override), "--params", str(params), "--dry"]) == 0
    assert "data.source: demo -> coco" in capsys.readouterr().out and params.read_text() == PARAMS
    assert main([str(override), "--params", str(params)]) == 0
    assert yaml.safe_load(params.read_text())["data"]["source"] == "coco"
    override.write_text("data:\n  source: [unclosed\n")
    assert main([str(override), "--params", str(params)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main([str(tmp_path / "none.yaml"), "--params", str(params)]) == 2
    assert "none.yaml: file not found" in capsys.readouterr().err


def test_the_real_data_recipe_applies_to_the_repository_params() -> None:
    text, changes = apply_override(
        (REPO / "params.yaml").read_text(), (REPO / "configs/real-coco-vit-b16.yaml").read_text()
    )
    params = yaml.safe_load(text)
    assert params["data"]["source"] == "coco" and params["clip"]["model"] == "ViT-B-16"
    assert params["data"]["benchmarks"] == ["ade847", "pc459", "ade150", "pc59", "voc20"]
    assert set(params["data"]["benchmarks"]) <= set(params["data"]["real"]["benchmarks"])
    assert params["proposer"]["config"] == "proposer-r50" and params["finetune"]["lr"] == 5e-6
    assert len(changes) > 20
    # every section still passes its stage's checks
    NounsConfig.from_params(params["nouns"])
    MineStageConfig.from_params(params["mine"], device="cuda")
    assert ProposerStageConfig.from_params(params["proposer"]).num_threads is None
    for section, mode in (("finetune", "image"), ("prompt_tune", "prompts")):
        adapt = {k: v for k, v in params[section].items() if k not in ("device", "max_pairs", "distributed")}
        assert AdaptConfig.from_params(adapt, mode=mode).epochs == 5
    evaluate = {k: v for k, v in params["evaluate"].items() if k not in ("device", "threads")}
    assert EvalConfig.from_params(evaluate).short_side == 640
