"""The demo world's five benchmarks: vocabularies, on-disk layouts read back by the real readers, independence."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.io import read_json
from pipeline.datasets.benchmarks import LAYOUTS, FolderBenchmark
from pipeline.datasets.manifest import load_world
from pipeline.world.benchmark_files import voc_palette
from pipeline.world.benchmarks import (
    PC59_LEFT_OUT_THINGS,
    VAL_BENCHMARK,
    WORLD_BENCHMARKS,
    _words,
    entry_of,
    world_benchmarks,
    world_words,
)
from pipeline.world.catalogue import CATALOGUE, choose_unseen
from pipeline.world.config import WorldConfig
from pipeline.world.generate import generate_world

CONFIG = WorldConfig(
    seed=5,
    train_images=8,
    benchmark_images=4,
    extra_benchmark_images=4,
    val_images=3,
    image_size=64,
    preview_images=2,
    workers=1,
)
UNSEEN_NAMES = choose_unseen(CATALOGUE, CONFIG.unseen_fraction, CONFIG.seed)
UNSEEN = frozenset(i for i, spec in enumerate(CATALOGUE) if spec.name in UNSEEN_NAMES)
WORLD_ENTRIES = {entry_of(spec) for spec in CATALOGUE}
SIZES = {"ade847": 847, "pc459": 459, "demo": len(CATALOGUE), "pc59": 59, "voc20": 20}


@pytest.fixture(scope="module")
def five(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("five")
    return out, generate_world(CONFIG, out, WORLD_BENCHMARKS)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_vocabularies_have_the_real_sizes_and_mixes() -> None:
    specs = {b.name: b for b in world_benchmarks(list(WORLD_BENCHMARKS), CONFIG, UNSEEN)}
    assert list(specs) == list(WORLD_BENCHMARKS)
    banned = world_words()
    for name, spec in specs.items():
        names = spec.class_names
        assert len(names) == SIZES[name] and len(set(names)) == len(names), name
        listed = [c for c in range(len(CATALOGUE)) if spec.label_of[c] >= 0]
        assert sorted(names[spec.label_of[c]] for c in listed) == sorted(entry_of(CATALOGUE[c]) for c in listed)
        distractors = [n for n in names if n not in WORLD_ENTRIES]
        assert spec.distractors == len(distractors)
        assert all(not _words(n) & banned for n in distractors), name  # no word shared with a world class
        if name != "demo":
            assert list(names) == sorted(names, key=lambda n: (n.lower(), n))
    assert specs["ade847"].distractors == 847 - len(CATALOGUE) and specs["pc459"].distractors == 459 - len(CATALOGUE)
    things = {c for c, spec in enumerate(CATALOGUE) if spec.isthing}
    pc59 = {c for c in range(len(CATALOGUE)) if specs["pc59"].label_of[c] >= 0}
    assert pc59 >= set(range(len(CATALOGUE))) - things and len(things - pc59) == PC59_LEFT_OUT_THINGS
    voc = {c for c in range(len(CATALOGUE)) if specs["voc20"].label_of[c] >= 0}
    assert voc <= things and len(voc) == 20 and set(specs["voc20"].things) == voc
    assert 4 <= len(voc & UNSEEN) <= 8  # the world's unseen share (~30%), stratified
    assert specs["voc20"].scene_config(CONFIG).thing_scale[0] > CONFIG.thing_scale[0]
    again = world_benchmarks(["voc20", "pc59"], CONFIG, UNSEEN)
    assert [b.class_names for b in again] == [specs["pc59"].class_names, specs["voc20"].class_names]
    with pytest.raises(ValueError, match=r"no benchmark \['ade150'\]"):
        world_benchmarks(["ade150"], CONFIG, UNSEEN)


def test_five_layouts_are_read_back_by_the_real_readers(five) -> None:
    out, stats = five
    world = load_world(out / "manifest.json")
    assert world.benchmark_names == sorted([*WORLD_BENCHMARKS, VAL_BENCHMARK])
    for name in WORLD_BENCHMARKS:
        bench = world.benchmark(name)
        assert isinstance(bench, FolderBenchmark) and bench.layout is LAYOUTS[name]
        assert len(bench.class_names) == SIZES[name] == stats["benchmarks"][name]["vocabulary"]
        assert len(bench) == 4 and bench.class_names == read_json(out / f"benchmarks/{name}/classes.json")
        present = set()
        for key in bench.keys():  # noqa: SIM118 (a dataset, not a dict)
            label = bench.load(key).label
            present |= set(np.unique(label).tolist()) - {-1}
            if name in ("ade847", "pc459", "demo"):
                assert (label >= 0).all(), name  # every world class is in the list: nothing is ignored
        assert all(bench.class_names[c] in WORLD_ENTRIES for c in present), name  # distractors never occur
        assert len(present) == stats["benchmarks"][name]["classes_present"], name


def test_label_files_have_each_layouts_format(five) -> None:
    out, _ = five
    tif = Image.open(next((out / "benchmarks/ade847/annotations_detectron2/validation").glob("*.tif")))
    assert tif.format == "TIFF" and tif.mode == "I;16"
    assert np.asarray(tif).max() < 847
    assert Image.open(next((out / "benchmarks/pc459/annotations_detectron2/pc459_val").glob("*.tif"))).mode == "I;16"
    pc59 = np.concatenate(
        [
            np.asarray(Image.open(p)).ravel()
            for p in sorted((out / "benchmarks/pc59/annotations_detectron2/pc59_val").glob("*.png"))
        ]
    )
    assert set(np.unique(pc59).tolist()) <= set(range(59)) | {255}
    voc = Image.open(next((out / "benchmarks/voc20/SegmentationClass").glob("*.png")))
    assert voc.mode == "P" and voc.getpalette()[: 3 * 256] == voc_palette()
    values = np.asarray(voc)
    assert {0, 255} <= set(np.unique(values).tolist()) and values.max() <= 255
    assert ((values == 0) | (values == 255) | ((values >= 1) & (values <= 20))).all()
    keys = (out / "benchmarks/voc20/ImageSets/Segmentation/val.txt").read_text().split()
    assert keys == sorted(p.stem for p in (out / "benchmarks/voc20/JPEGImages").glob("*.jpg")) and len(keys) == 4


def test_voc_shows_few_large_things_only_and_pc59_ignores_left_out_classes(five) -> None:
    _, stats = five
    entry = stats["benchmarks"]["voc20"]
    assert entry["world_classes"] == 20 and entry["distractors"] == 0
    assert len(entry["world_classes_ignored"]) == len(CATALOGUE) - 20
    assert len(stats["benchmarks"]["pc59"]["world_classes_ignored"]) == PC59_LEFT_OUT_THINGS
    assert stats["benchmarks"]["ade847"]["distractors"] == 803 and stats["benchmarks"]["ade847"]["world_classes"] == 44
    for name in WORLD_BENCHMARKS:
        e = stats["benchmarks"][name]
        assert e["seen_present"] + e["unseen_present"] == e["classes_present"] <= e["world_classes"]
        assert e["seen_classes"] + e["unseen_classes"] == e["world_classes"]


def test_train_split_and_demo_bytes_do_not_depend_on_the_other_benchmarks(five, tmp_path: Path) -> None:
    out, _ = five
    alone = tmp_path / "alone"
    alone.mkdir()
    generate_world(replace(CONFIG, val_images=0), alone, ["demo"])
    kept = {k: v for k, v in _digests(alone).items() if k not in ("manifest.json", "world.json")}
    assert kept and all(_digests(out)[k] == v for k, v in kept.items())
    assert not (alone / "benchmarks/ade847").exists() and not (alone / "benchmarks/val").exists()
    other = tmp_path / "fewer_extra"
    other.mkdir()
    generate_world(WorldConfig(**{**CONFIG.__dict__, "extra_benchmark_images": 2}), other, ["voc20"])
    assert all(_digests(other)[k] == v for k, v in kept.items())
    assert (
        _digests(other)["benchmarks/voc20/JPEGImages/2012_000001.jpg"]
        == _digests(out)["benchmarks/voc20/JPEGImages/2012_000001.jpg"]
    )


def test_val_is_a_split_of_its_own_with_demos_classes(five) -> None:
    """The validation benchmark: demo's class list and layout, images that no test benchmark holds."""
    out, stats = five
    world = load_world(out / "manifest.json")
    val, demo = world.benchmark(VAL_BENCHMARK), world.benchmark("demo")
    assert isinstance(val, FolderBenchmark) and val.layout is LAYOUTS[VAL_BENCHMARK]
    assert val.class_names == demo.class_names and len(val) == 3 == stats["benchmarks"][VAL_BENCHMARK]["images"]
    val_images = {h for k, h in _digests(out).items() if k.startswith("benchmarks/val/images/")}
    test_images = {h for k, h in _digests(out).items() if k.startswith("benchmarks/") and "/val/" not in k}
    assert len(val_images) == 3 and not val_images & test_images
