"""The real-data recipe (configs/real-coco-vit-b16.yaml) on a fixture tree of the official downloads:
`dvc repro --dry --force` lists every stage, `prepare` first, with its command (without --force, DVC's
dry run stops at the first stage whose inputs do not exist yet: treeverse/dvc#9021), and `dvc repro
world` prepares the benchmarks from the raw downloads, then validates them."""

from __future__ import annotations

import json
import re
import resource
import time
from pathlib import Path

import pytest
import yaml

from pipeline.project.dag import load_stages
from pipeline.project.params_apply import apply_override
from tests.pipeline.prepare.raw_formats import RawTree, write_raw_downloads

BENCHMARKS = ["ade847", "pc459", "ade150", "pc59", "voc20"]
VARIANTS = ["base", "mpt", "ft", "ft_mpt", "ft_gt", "prompts", "ft_prompts", "longer", "zsseg"]


def point_at_fixture(override: dict, tree: RawTree) -> dict:
    """``override`` (a params override file's keys) with the fixture's download folders in place of its paths."""
    override["data"]["real"]["coco_root"] = str(tree.coco_root)
    override["data"]["real"]["benchmarks"]["ade150"] = str(tree.raw["ade150"])  # validated where it lies
    override["prepare"]["raw"] = {name: str(path) for name, path in tree.raw.items()}
    return override


def apply(repo: Path, override: dict) -> None:
    params = repo / "params.yaml"
    params.write_text(apply_override(params.read_text(), yaml.safe_dump(override))[0])


def apply_recipe(repo: Path, tree: RawTree) -> dict:
    """The recipe with the fixture's download folders, applied to the copy's params.yaml; partial downloads
    accepted (two images per benchmark)."""
    recipe = point_at_fixture(yaml.safe_load((repo / "configs/real-coco-vit-b16.yaml").read_text()), tree)
    recipe["prepare"].update(allow_partial=True, num_shards=2, runner={"runner": "direct-inmemory"})
    apply(repo, recipe)
    return recipe


def test_real_recipe_plans_every_stage_prepare_first(repo_copy, dvc, tmp_path) -> None:
    repo = repo_copy()
    apply_recipe(repo, write_raw_downloads(tmp_path / "downloads"))
    planned = dvc("repro", "--dry", "--force", cwd=repo)
    stages = re.findall(r"Running stage '([^']+)'", planned)
    expected = {stage.name for stage in load_stages(repo / "dvc.yaml")}
    assert set(stages) == expected and len(stages) == len(expected) == 31
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
        name: {"images": 2} for name in sorted(BENCHMARKS)
    }
    for name in [*BENCHMARKS, "coco_stuff171"]:
        metrics = json.loads((repo / f"metrics/prepare/{name}.json").read_text())
        assert metrics["images"] == 2 and metrics["partial"] and sum(metrics["rejects"].values()) >= 1, name
    assert "Data and pipelines are up to date" in dvc("status", "prepare", "world", cwd=repo)


def write_random_checkpoints(folder: Path) -> dict[str, Path]:
    """A random-init ViT-B/16 (open_clip's state dict) and ResNet-50 (torchvision's), as safetensors files."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    from torchvision.models import resnet50

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    paths = {"clip": folder / "vit-b-16-random.safetensors", "backbone": folder / "resnet50-random.safetensors"}
    clip = open_clip.create_model("ViT-B-16", pretrained=None)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, paths["clip"])
    save_file({k: v.contiguous() for k, v in resnet50(weights=None).state_dict().items()}, paths["backbone"])
    return paths


def apply_smoke(repo: Path, tree: RawTree, checkpoints: dict[str, Path]) -> None:
    """The recipe, then configs/smoke-real-size.yaml with the fixture's paths in place of /fixture/..."""
    apply_recipe(repo, tree)
    smoke = point_at_fixture(yaml.safe_load((repo / "configs/smoke-real-size.yaml").read_text()), tree)
    smoke["clip"]["pretrained"] = str(checkpoints["clip"])
    smoke["proposer"]["backbone_weights"] = str(checkpoints["backbone"])
    apply(repo, smoke)


@pytest.mark.slow
def test_real_recipe_runs_every_stage_at_real_size(repo_copy, dvc, tmp_path) -> None:
    """Every stage of the real recipe, `prepare` to `report`, at real size (ViT-B/16, proposer-r50, 640-pixel
    evaluation, the five benchmarks' real class lists) on a fixture tree: configs/smoke-real-size.yaml."""
    repo = repo_copy()
    tree = write_raw_downloads(tmp_path / "downloads", scale=30, coco_images=8)
    apply_smoke(repo, tree, write_random_checkpoints(tmp_path / "models"))

    start = time.perf_counter()
    ran = dvc("repro", cwd=repo, env={"OVSEG_TEXT_CACHE": str(tmp_path / "text_cache")})
    seconds = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux -> GiB

    stages = re.findall(r"Running stage '([^']+)'", ran)
    assert len(stages) == 31 and stages[-1] == "report"
    assert "the world has no benchmark 'val'" in ran  # a real world without a validation split: skipped, said
    assert "Data and pipelines are up to date" in dvc("status", cwd=repo)
    manifest = json.loads((repo / "data/world/manifest.json").read_text())
    assert sorted(manifest["benchmarks"]) == sorted(BENCHMARKS)
    clip = json.loads((repo / "artifacts/clip_base/open_clip_config.json").read_text())["model_cfg"]
    assert clip["embed_dim"] == 512 and clip["vision_cfg"]["image_size"] == 224
    assert json.loads((repo / "metrics/mine.json").read_text())["pairs"] > 0
    results = (repo / "reports/results.md").read_text()
    for variant in VARIANTS:
        for benchmark in BENCHMARKS:
            metrics = json.loads((repo / f"metrics/eval/{variant}/{benchmark}.json").read_text())
            assert metrics["images"] == 1 and 0 <= metrics["mIoU"] <= 100, (variant, benchmark)
        assert f"| `{variant}` |" in results
    timings = {p.stem: json.loads(p.read_text())["seconds"] for p in sorted((repo / "metrics/timings").glob("*.json"))}
    print(f"\nreal-size smoke run: {seconds:.0f} s wall, peak RSS {peak_rss:.2f} GiB (largest stage process)")
    for name, stage_seconds in sorted(timings.items(), key=lambda item: -item[1]):
        print(f"  {name:40s} {stage_seconds:8.1f} s")
