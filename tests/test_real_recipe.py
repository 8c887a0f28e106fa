"""The real-data recipe (configs/real-coco-vit-b16.yaml) on a fixture tree in the real layouts:
the `world` stage validates it, and `dvc repro --dry --force` lists every stage with its command
(without --force, DVC's dry run stops at the first stage whose inputs do not exist yet:
treeverse/dvc#9021)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from pipeline.project.params_apply import apply_override

BENCHMARKS = ["ade847", "pc459", "ade150", "pc59", "voc20"]
VARIANTS = ["base", "mpt", "ft", "ft_mpt", "ft_gt"]


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(path)


def _label(path: Path, value: int, dtype=np.uint8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 8), value, dtype)).save(path)  # uint16 arrays are written as 16-bit TIFF


def real_tree(root: Path) -> dict[str, Path]:
    """COCO 2017 captions + images + COCO-Stuff labels and the five benchmarks, one image each."""
    coco = root / "coco"
    _image(coco / "train2017/000000000009.jpg")
    _label(coco / "stuffthingmaps/train2017/000000000009.png", 0)
    (coco / "annotations").mkdir(parents=True)
    (coco / "annotations/captions_train2017.json").write_text(json.dumps({
        "images": [{"id": 9, "file_name": "000000000009.jpg", "height": 6, "width": 8}],
        "annotations": [{"id": 1, "image_id": 9, "caption": "A person on a wooden floor."}]}))
    ade150, ade847 = root / "ADEChallengeData2016", root / "ADE20K_2021_17_01"
    voc2010, voc2012 = root / "VOCdevkit/VOC2010", root / "VOCdevkit/VOC2012"
    _image(ade150 / "images/validation/ADE_val_00000001.jpg")
    _label(ade150 / "annotations/validation/ADE_val_00000001.png", 3)
    _image(ade847 / "images_detectron2/validation/ADE_frame_1.jpg")
    _label(ade847 / "annotations_detectron2/validation/ADE_frame_1.tif", 846, np.uint16)
    _image(voc2010 / "JPEGImages/2008_000002.jpg")
    _label(voc2010 / "annotations_detectron2/pc459_val/2008_000002.tif", 458, np.uint16)
    _label(voc2010 / "annotations_detectron2/pc59_val/2008_000002.png", 58)
    _image(voc2012 / "JPEGImages/2007_000033.jpg")
    _label(voc2012 / "SegmentationClass/2007_000033.png", 15)
    (voc2012 / "ImageSets/Segmentation").mkdir(parents=True)
    (voc2012 / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n")
    return {"coco": coco, "ade150": ade150, "ade847": ade847, "pc59": voc2010, "pc459": voc2010, "voc20": voc2012}


def test_real_recipe_validates_the_folders_and_plans_every_stage(repo_copy, dvc, tmp_path) -> None:
    repo = repo_copy()
    roots = real_tree(tmp_path / "datasets")
    recipe = yaml.safe_load((repo / "configs/real-coco-vit-b16.yaml").read_text())
    recipe["data"]["real"]["coco_root"] = str(roots["coco"])
    recipe["data"]["real"]["benchmarks"] = {name: str(roots[name]) for name in BENCHMARKS}
    params = repo / "params.yaml"
    params.write_text(apply_override(params.read_text(), yaml.safe_dump(recipe))[0])

    dvc("repro", "world", cwd=repo)
    manifest = json.loads((repo / "data/world/manifest.json").read_text())
    assert manifest["source"] == "coco" and sorted(manifest["benchmarks"]) == sorted(BENCHMARKS)
    assert json.loads((repo / "data/world/world.json").read_text())["benchmarks"] == {
        name: {"images": 1} for name in sorted(BENCHMARKS)}

    planned = dvc("repro", "--dry", "--force", cwd=repo)
    stages = re.findall(r"Running stage '([^']+)'", planned)
    expected = {"world", "base_clip", "proposer", "nouns", "mine", "finetune", "finetune_gt", "prompt_tune@base",
                "prompt_tune@ft", "mask_adapter@base", "mask_adapter@ft", "crops", "report",
                *(f"evaluate@{v}-{b}" for v in VARIANTS for b in BENCHMARKS),
                *(f"evaluate_references@{b}" for b in BENCHMARKS),
                *(f"evaluate_one_pass@{b}" for b in BENCHMARKS)}
    assert set(stages) == expected and len(stages) == len(expected) == 48
    assert "python -m stages.evaluate --variant ft_mpt --benchmark ade847" in planned
    assert stages[0] == "world" and stages.index("mine") > stages.index("nouns") and stages[-1] == "report"
