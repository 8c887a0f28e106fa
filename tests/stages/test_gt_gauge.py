"""Stage `crops` (`ovseg gt-gauge`): several CLIP folders in one process, one JSON each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.clip import load_clip_folder
from model.mask_adapter import MaskAdapter, MaskAdapterConfig, save_mask_adapter
from stages.gt_gauge import adapter_result_name, main, maskpool_result_name, result_name

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")


def test_several_folders_write_one_json_each(eval_inputs, capsys) -> None:
    clips = [str(eval_inputs.artifacts / "clip_base"), str(eval_inputs.artifacts / "clip_mpt")]
    assert main([*clips, "--world", str(eval_inputs.manifest), "--benchmark", "demo", "--json-dir", "out"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[0].startswith(f"{clips[0]} on demo: mean ")
    base, mpt = (json.loads(Path(f"out/{name}.json").read_text()) for name in ("base", "mpt"))
    assert set(base) == set(mpt) == {"demo"}
    assert base["demo"]["mask_prompts"] is False and mpt["demo"]["mask_prompts"] is True
    assert base["demo"]["segments"] == mpt["demo"]["segments"] > 0
    assert 0 <= base["demo"]["mean"] <= 100 and set(base["demo"]) >= {"seen", "unseen", "things", "stuff"}
    timing = json.loads(Path("metrics/timings/crops.json").read_text())
    assert timing["stage"] == "crops" and timing["clips"] == 2


def test_single_json_and_errors(eval_inputs, capsys) -> None:
    clip = str(eval_inputs.artifacts / "clip_base")
    assert (
        main([clip, "--world", str(eval_inputs.manifest), "--benchmark", "demo", "--json", "one.json", "--no-prompts"])
        == 0
    )
    assert set(json.loads(Path("one.json").read_text())) == {"demo"}
    assert not Path("metrics/timings/crops.json").exists()  # only the stage (--json-dir) records its time
    with pytest.raises(SystemExit):
        main([clip, clip, "--json", "two.json"])
    assert "--json takes one CLIP folder" in capsys.readouterr().err
    assert main([clip, "nowhere/clip_x", "--world", str(eval_inputs.manifest), "--json-dir", "out"]) == 2
    assert "nowhere/clip_x: CLIP folder not found" in capsys.readouterr().err
    assert not Path("out").exists()


def test_result_name() -> None:
    assert result_name(Path("artifacts/clip_ft_mpt")) == "ft_mpt"
    assert result_name(Path("models/my_clip")) == "my_clip"


def test_one_pass_gauges_are_named_after_their_classifier(eval_inputs, tmp_path, capsys) -> None:
    clip_folder = eval_inputs.artifacts / "clip_base"
    torch.manual_seed(0)
    adapter = MaskAdapter(MaskAdapterConfig(clip_dim=128, num_maps=2, hidden=8, blocks=1, mask_prior=4.0))
    folder = save_mask_adapter(
        adapter,
        tmp_path / "adapter_ft",
        clip_model=load_clip_folder(clip_folder, "cpu").model,
        extra={"clip": str(clip_folder)},
    )
    assert (
        main(
            [
                "--maskpool",
                str(clip_folder),
                "--adapter",
                str(folder),
                "--pooling",
                "mean",
                "--attention-depth",
                "None",
                "--world",
                str(eval_inputs.manifest),
                "--json-dir",
                "out",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "maskpool on demo: mean " in printed and "ft_adapter on demo: mean " in printed
    maskpool, ft_adapter = (
        json.loads(Path(f"out/{name}.json").read_text())["demo"] for name in ("maskpool", "ft_adapter")
    )
    assert maskpool["segments"] == ft_adapter["segments"] > 0 and 0 <= ft_adapter["mean"] <= 100
    assert adapter_result_name(Path("artifacts/adapter_base")) == "adapter"
    assert maskpool_result_name(Path("artifacts/clip_ft")) == "ft_maskpool"


def test_bf16_gauges_the_same_segments(eval_inputs) -> None:
    clip = str(eval_inputs.artifacts / "clip_base")
    args = [clip, "--world", str(eval_inputs.manifest), "--benchmark", "demo", "--maskpool", clip]
    assert main([*args, "--json-dir", "fp32"]) == 0
    assert main([*args, "--json-dir", "bf16", "--precision", "bf16"]) == 0
    for name in ("base", "maskpool"):
        fp32, bf16 = (json.loads(Path(f"{run}/{name}.json").read_text())["demo"] for run in ("fp32", "bf16"))
        assert fp32["segments"] == bf16["segments"] > 0
        assert 0 <= bf16["mean"] <= 100, name
