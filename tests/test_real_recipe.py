"""The real-data recipe (configs/real-coco-vit-b16.yaml) on a fixture tree of the official downloads:
`dvc repro --dry --force` lists every stage, `prepare` first, with its command (without --force, DVC's
dry run stops at the first stage whose inputs do not exist yet: treeverse/dvc#9021), and `dvc repro
world` prepares the benchmarks from the raw downloads, then validates them."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.project.params_apply import apply_override
from tests.pipeline.prepare.raw_formats import RawTree, write_raw_downloads

BENCHMARKS = ["ade847", "pc459", "ade150", "pc59", "voc20"]
VARIANTS = ["base", "mpt", "ft", "ft_mpt", "ft_gt", "prompts", "ft_prompts", "longer", "zsseg"]


def apply_recipe(repo: Path, tree: RawTree) -> dict:
    """The recipe with the fixture's download folders (ADE-150 is validated where it lies), applied to
    the copy's params.yaml; partial downloads accepted (two images per benchmark)."""
    recipe = yaml.safe_load((repo / "configs/real-coco-vit-b16.yaml").read_text())
    recipe["data"]["real"]["coco_root"] = str(tree.coco_root)
    recipe["data"]["real"]["benchmarks"]["ade150"] = str(tree.raw["ade150"])
    recipe["prepare"]["raw"] = {name: str(path) for name, path in tree.raw.items()}
    recipe["prepare"].update(allow_partial=True, num_shards=2, runner={"runner": "direct-inmemory"})
    params = repo / "params.yaml"
    params.write_text(apply_override(params.read_text(), yaml.safe_dump(recipe))[0])
    return recipe


def test_real_recipe_plans_every_stage_prepare_first(repo_copy, dvc, tmp_path) -> None:
    repo = repo_copy()
    apply_recipe(repo, write_raw_downloads(tmp_path / "downloads"))
    planned = dvc("repro", "--dry", "--force", cwd=repo)
    stages = re.findall(r"Running stage '([^']+)'", planned)
    expected = {"prepare", "world", "base_clip", "proposer", "nouns", "mine", "finetune", "finetune_gt",
                "prompt_tune@base", "prompt_tune@ft", "mask_adapter@base", "mask_adapter@ft", "crops", "report",
                "base_clip_longer", "text_prompts@base", "text_prompts@ft", "propose",
                *(f"evaluate@{v}" for v in VARIANTS), "evaluate_references", "evaluate_one_pass"}
    assert set(stages) == expected and len(stages) == len(expected) == 29
    assert "python -m stages.evaluate --variant ft_mpt --stored-proposals data/proposals" in planned
    assert stages[:2] == ["prepare", "world"]
    assert stages.index("mine") > stages.index("nouns") and stages[-1] == "report"


@pytest.mark.slow
def test_real_recipe_prepares_the_raw_downloads_and_runs_through_world(repo_copy, dvc, tmp_path) -> None:
    repo = repo_copy()
    tree = write_raw_downloads(tmp_path / "downloads", bad=True)
    recipe = apply_recipe(repo, tree)

    ran = dvc("repro", "world", cwd=repo)
    assert ran.index("Running stage 'prepare'") < ran.index("Running stage 'world'")
    manifest = json.loads((repo / "data/world/manifest.json").read_text())
    assert manifest["source"] == "coco" and sorted(manifest["benchmarks"]) == sorted(BENCHMARKS)
    for name in ("ade847", "pc59", "pc459", "voc20"):  # the recipe points them at the prepared layouts
        root = Path(manifest["benchmarks"][name]["root"]).resolve()
        assert root == (repo / recipe["data"]["real"]["benchmarks"][name]).resolve()
    assert json.loads((repo / "data/world/world.json").read_text())["benchmarks"] == {
        name: {"images": 2} for name in sorted(BENCHMARKS)}
    for name in [*BENCHMARKS, "coco_stuff171"]:
        metrics = json.loads((repo / f"metrics/prepare/{name}.json").read_text())
        assert metrics["images"] == 2 and metrics["partial"] and sum(metrics["rejects"].values()) >= 1, name
    assert "Data and pipelines are up to date" in dvc("status", "prepare", "world", cwd=repo)
