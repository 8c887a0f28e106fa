"""Tiny raw benchmark downloads in their official formats, written by the tests themselves
(import as ``tests.pipeline.prepare.raw_formats``).

Each writer takes the *truth* of an image (``int32`` class indices of the benchmark, -1 = ignore)
and encodes it the way the official download does, so a test can compare what the readers give
after preparation with the truth, pixel for pixel:

* ADE20K_2021_17_01: ``index_ade20k.pkl`` (lists and NumPy arrays, as the real index) and
  ``*_seg.png`` with the object class in R/10*256 + G;
* VOC2010 + PASCAL-Context: ``trainval/*.mat`` (``LabelMap``), ``labels.txt``,
  ``trainval_merged.json`` (the Detail API's format: COCO RLE per category and image);
* VOC2012: palette PNGs; ADEChallengeData2016 and COCO-Stuff: 8-bit PNGs.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from core.rle import encode_rle
from pipeline.datasets.vocab import class_names, coco_stuff_categories
from pipeline.prepare.ade847 import category_ids
from pipeline.prepare.pascal_context import PC59_CATEGORY_IDS

#: ADE object classes in the fixture index (the real one has 3,688): above the largest id of the 847.
ADE_OBJECTS = 3700
#: An ADE object class that is not among the 847 (it must come out as ignore).
ADE_OTHER_ID = next(i for i in range(1, ADE_OBJECTS) if i not in set(category_ids()))


def truth(shape: tuple[int, int], classes: list[int], seed: int, block: int = 4) -> np.ndarray:
    """A random label of ``block``-pixel squares of ``classes`` (class indices, -1 = ignore)."""
    rng = np.random.default_rng(seed)
    size = ((shape[0] + block - 1) // block, (shape[1] + block - 1) // block)
    blocks = rng.choice(np.array(classes, dtype=np.int32), size=size)
    return np.kron(blocks, np.ones((block, block), dtype=np.int32))[: shape[0], : shape[1]]


def write_image(path: Path, shape: tuple[int, int], seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(path, quality=95)


def write_png(path: Path, values: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.ascontiguousarray(values.astype(np.uint8))
    if palette:  # the values are the palette indices
        image = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
        image.putpalette(voc_palette())
    else:
        image = Image.fromarray(values)
    image.save(path)


def voc_palette() -> list[int]:
    """PASCAL VOC's colour map (bit-interleaved), 256 entries."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


# --- ADE20K_2021_17_01 ------------------------------------------------------------------------------


def ade_object_ids(label: np.ndarray, seed: int = 0) -> np.ndarray:
    """ADE object class ids of an ADE-847 truth: the class's id, ignore as 0 or :data:`ADE_OTHER_ID`."""
    ids = np.asarray(category_ids(), dtype=np.int32)[np.maximum(label, 0)]
    other = np.random.default_rng(seed).random(label.shape) < 0.5
    return np.where(label < 0, np.where(other, ADE_OTHER_ID, 0), ids)


def encode_ade_seg(object_ids: np.ndarray) -> np.ndarray:
    """``*_seg.png`` colours: R = class // 256 * 10, G = class % 256, B = an instance mask (ignored)."""
    seg = np.zeros((*object_ids.shape, 3), dtype=np.uint8)
    seg[..., 0] = (object_ids // 256) * 10
    seg[..., 1] = object_ids % 256
    seg[..., 2] = (object_ids > 0) * 7
    return seg


def write_ade_index(root: Path, entries: list[tuple[str, str]]) -> None:
    """``index_ade20k.pkl``: ``entries`` are ``(file name, scene)``; the folders start with the dataset's name."""
    names = [f"object {i}" for i in range(1, ADE_OBJECTS + 1)]
    for class_id, name in zip(category_ids(), class_names("ade847")):
        names[class_id - 1] = name
    split = {True: "validation", False: "training"}
    index = {
        "filename": [name for name, _ in entries],
        "folder": [f"ADE20K_2021_17_01/images/ADE/{split['_val_' in name]}/{scene}" for name, scene in entries],
        "scene": [scene for _, scene in entries],
        "objectnames": names,
        "objectPresence": np.zeros((ADE_OBJECTS, len(entries)), dtype=np.uint8),
        "objectIsPart": np.zeros((ADE_OBJECTS, len(entries)), dtype=np.uint8),
        "wordnet_found": np.ones(ADE_OBJECTS, dtype=bool),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "index_ade20k.pkl").write_bytes(pickle.dumps(index, protocol=4))


def ade_image_dir(root: Path, file_name: str, scene: str) -> Path:
    split = "validation" if "_val_" in file_name else "training"
    return root / "images" / "ADE" / split / scene


# --- VOC2010 + PASCAL-Context ----------------------------------------------------------------------


def write_labels_txt(root: Path) -> None:
    lines = [f"{i}: {name.split(',')[0]}" for i, name in enumerate(class_names("pc459"), 1)]
    (root / "labels.txt").write_text("\n".join(lines) + "\n")


def write_label_map(path: Path, pc459_truth: np.ndarray) -> None:
    """``trainval/<key>.mat`` with ``LabelMap`` = class + 1 (0 unlabelled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"LabelMap": (pc459_truth + 1).astype(np.uint16)})


def pc59_truth(pc459_truth: np.ndarray) -> np.ndarray:
    """The PC-59 truth of a PC-459 one: the 59 classes by id, everything else ignore."""
    table = np.full(461, -1, dtype=np.int32)
    for index, category_id in enumerate(PC59_CATEGORY_IDS):
        table[category_id] = index
    return table[pc459_truth + 1]


def detail_json(images: dict[str, np.ndarray], phase: str = "val") -> dict:
    """``trainval_merged.json`` for ``images`` (key → PC-459 truth): one RLE segment per category present."""
    categories = [
        {"category_id": i, "name": name.split(",")[0], "supercategory": "object", "parts": [], "onlysemantic": 1}
        for i, name in enumerate(class_names("pc459"), 1)
    ]
    entries, segments = [], []
    for key, label in sorted(images.items()):
        image_id = int(key.replace("_", ""))
        entries.append(
            {
                "image_id": image_id,
                "file_name": f"{key}.jpg",
                "height": int(label.shape[0]),
                "width": int(label.shape[1]),
                "phase": phase,
                "date_captured": "31-May-2015 17:44:04",
            }
        )
        for category_id in sorted(set((label + 1).ravel().tolist()) - {0}):
            mask = (label + 1) == category_id
            segments.append(
                {
                    "id": len(segments) + 1,
                    "image_id": image_id,
                    "category_id": int(category_id),
                    "segmentation": encode_rle(mask),
                    "area": int(mask.sum()),
                    "iscrowd": 0,
                    "parts": [],
                }
            )
    return {
        "info": {"description": "fixture"},
        "images": entries,
        "annos_segmentation": segments,
        "categories": categories,
        "annos_occlusion": [],
        "annos_boundary": [],
        "annos_joints": [],
        "parts": [],
    }


def write_detail(root: Path, images: dict[str, np.ndarray]) -> None:
    (root / "trainval_merged.json").write_text(json.dumps(detail_json(images)))


# --- COCO-Stuff ---------------------------------------------------------------------------------------

CAPTIONS = [
    "A person on a wooden floor.",
    "A dog runs across the grass next to a fence.",
    "Two cars parked on a street in front of a building.",
    "A cat sleeping on a bed near the window.",
]


def coco_stuff_values(label: np.ndarray) -> np.ndarray:
    """COCO-Stuff label values of a truth over the 171 categories: id - 1, 255 ignore."""
    ids = np.array([c["id"] for c in coco_stuff_categories()], dtype=np.int32)
    return np.where(label < 0, 255, ids[np.maximum(label, 0)] - 1)


# --- a whole tree of downloads -------------------------------------------------------------------------


@dataclass
class RawTree:
    """Where :func:`write_raw_downloads` put each download, the truth of every good item
    (benchmark → key → class indices) and the reason each bad item must be rejected for."""

    root: Path
    raw: dict[str, Path]
    coco_root: Path
    truths: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    rejects: dict[str, dict[str, str]] = field(default_factory=dict)
    scale: int = 1
    coco_images: int = 2

    def px(self, height: int, width: int) -> tuple[int, int]:
        """A good item's image size: the fixture's ``(height, width)`` times :attr:`scale`."""
        return height * self.scale, width * self.scale

    def truth(self, shape: tuple[int, int], classes: list[int], seed: int) -> np.ndarray:
        return truth(shape, classes, seed, block=4 * self.scale)

    def params(self, **prepare: object) -> dict:
        """A params file's ``data`` and ``prepare`` sections for this tree (``prepare`` overrides)."""
        return {
            "data": {
                "source": "coco",
                "benchmarks": ["ade150", "ade847", "pc459", "pc59", "voc20"],
                "real": {"coco_root": str(self.coco_root), "images": "train2017", "labels": "stuffthingmaps/train2017"},
            },
            "prepare": {
                "raw": {name: str(path) for name, path in self.raw.items()},
                "allow_partial": True,
                "ade847_max_short_side": 20,
                "num_shards": 2,
                "runner": {"runner": "direct-inmemory"},
                **prepare,
            },
        }


def _garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an image, not a .mat file")


def _ade847(tree: RawTree, bad: bool, out_of_range: bool) -> None:
    root = tree.root / "ADE20K_2021_17_01"
    tree.raw["ade847"] = root
    good = {"ADE_val_00000001": (tree.px(12, 16), "abbey"), "ADE_val_00000002": (tree.px(30, 40), "zoo/outdoor")}
    entries = [("ADE_train_00000001.jpg", "abbey")] + [(f"{key}.jpg", scene) for key, (_, scene) in good.items()]
    truths = tree.truths.setdefault("ade847", {})
    for seed, (key, (shape, scene)) in enumerate(good.items()):
        truths[key] = tree.truth(shape, [-1, 0, 1, 5, 846], seed)
        folder = ade_image_dir(root, key, scene)
        write_image(folder / f"{key}.jpg", shape, seed)
        write_png_rgb(folder / f"{key}_seg.png", encode_ade_seg(ade_object_ids(truths[key], seed)))
    train = ade_image_dir(root, "ADE_train_00000001.jpg", "abbey")
    write_image(train / "ADE_train_00000001.jpg", (12, 16))
    write_png_rgb(train / "ADE_train_00000001_seg.png", encode_ade_seg(np.full((12, 16), 2978)))
    rejects = tree.rejects.setdefault("ade847", {})
    folder = ade_image_dir(root, "ADE_val_00000003.jpg", "bad")
    label = encode_ade_seg(ade_object_ids(truth((12, 16), [0, 1], 9)))
    if bad:
        for key, reason in (
            ("ADE_val_00000003", "size_mismatch"),
            ("ADE_val_00000004", "label_without_image"),
            ("ADE_val_00000005", "image_without_label"),
            ("ADE_val_00000006", "unreadable"),
        ):
            entries.append((f"{key}.jpg", "bad"))
            rejects[key] = reason
        write_image(folder / "ADE_val_00000003.jpg", (12, 16))
        write_png_rgb(folder / "ADE_val_00000003_seg.png", label[:, :15])
        write_png_rgb(folder / "ADE_val_00000004_seg.png", label)
        write_image(folder / "ADE_val_00000005.jpg", (12, 16))
        _garbage(folder / "ADE_val_00000006.jpg")
        write_png_rgb(folder / "ADE_val_00000006_seg.png", label)
        write_png_rgb(folder / "ADE_val_00000007_seg.png", label)  # not in the index
        rejects["ADE_val_00000007"] = "label_without_image"
    if out_of_range:
        entries.append(("ADE_val_00000008.jpg", "bad"))
        write_image(folder / "ADE_val_00000008.jpg", (12, 16))
        write_png_rgb(folder / "ADE_val_00000008_seg.png", encode_ade_seg(np.full((12, 16), 6400)))
        rejects["ADE_val_00000008"] = "out_of_range"
    write_ade_index(root, entries)


def write_png_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(path)


def _pascal_context(tree: RawTree, bad: bool, out_of_range: bool) -> None:
    root = tree.root / "VOCdevkit" / "VOC2010"
    tree.raw["pascal_context"] = root
    shapes = (("2008_000002", tree.px(12, 16)), ("2008_000003", tree.px(16, 12)))
    labels459 = {key: tree.truth(shape, [-1, 0, 1, 8, 396, 458], seed) for seed, (key, shape) in enumerate(shapes)}
    keys = list(labels459)
    for seed, (key, label) in enumerate(labels459.items()):
        write_image(root / "JPEGImages" / f"{key}.jpg", label.shape, seed)
        write_label_map(root / "trainval" / f"{key}.mat", label)
    tree.truths["pc459"] = dict(labels459)
    tree.truths["pc59"] = {key: pc59_truth(label) for key, label in labels459.items()}
    write_image(root / "JPEGImages" / "2008_000004.jpg", (12, 16))  # a training image: not an input
    detail = detail_json(labels459)
    rejects459, rejects59 = tree.rejects.setdefault("pc459", {}), tree.rejects.setdefault("pc59", {})
    if bad:
        write_image(root / "JPEGImages" / "2008_000009.jpg", (12, 16))
        rejects459["2008_000009"] = rejects59["2008_000009"] = "image_without_label"
        write_image(root / "JPEGImages" / "2008_000010.jpg", (12, 16))
        _garbage(root / "trainval" / "2008_000010.mat")
        rejects459["2008_000010"] = "unreadable"
        wrong = detail_json({"2008_000010": np.zeros((13, 16), dtype=np.int32)})
        detail["images"] += wrong["images"]
        detail["annos_segmentation"] += [dict(s, id=1000 + s["id"]) for s in wrong["annos_segmentation"]]
        rejects59["2008_000010"] = "size_mismatch"
        keys += ["2008_000009", "2008_000010"]
    if out_of_range:
        label = np.zeros((12, 16), dtype=np.int32)
        write_image(root / "JPEGImages" / "2008_000011.jpg", (12, 16))
        scipy.io.savemat(root / "trainval" / "2008_000011.mat", {"LabelMap": np.full((12, 16), 470, np.uint16)})
        extra = detail_json({"2008_000011": label})
        extra["annos_segmentation"][0]["category_id"] = 999
        detail["images"] += extra["images"]
        detail["annos_segmentation"] += [dict(s, id=2000 + s["id"]) for s in extra["annos_segmentation"]]
        rejects459["2008_000011"] = rejects59["2008_000011"] = "out_of_range"
        keys.append("2008_000011")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("".join(f"{key}\n" for key in keys))
    (root / "trainval_merged.json").write_text(json.dumps(detail))
    write_labels_txt(root)


def _voc20(tree: RawTree, bad: bool, out_of_range: bool) -> None:
    root = tree.root / "VOCdevkit" / "VOC2012"
    tree.raw["voc20"] = root
    truths = tree.truths.setdefault("voc20", {})
    keys = ["2007_000033", "2007_000042"]
    for seed, key in enumerate(keys):
        truths[key] = tree.truth(tree.px(12, 16), [-1, 0, 14, 19], seed)
        border = np.random.default_rng(seed).random(tree.px(12, 16)) < 0.3
        write_image(root / "JPEGImages" / f"{key}.jpg", tree.px(12, 16), seed)
        write_png(
            root / "SegmentationClass" / f"{key}.png",
            np.where(truths[key] < 0, np.where(border, 255, 0), truths[key] + 1),
            palette=True,
        )
    rejects = tree.rejects.setdefault("voc20", {})
    if bad:
        write_png(root / "SegmentationClass" / "2007_000099.png", np.zeros((12, 16)), palette=True)
        write_image(root / "JPEGImages" / "2007_000100.jpg", (12, 16))
        write_png(root / "SegmentationClass" / "2007_000100.png", np.zeros((12, 15)), palette=True)
        rejects.update({"2007_000099": "label_without_image", "2007_000100": "size_mismatch"})
        keys += ["2007_000099", "2007_000100"]
    if out_of_range:
        write_image(root / "JPEGImages" / "2007_000101.jpg", (12, 16))
        write_png(root / "SegmentationClass" / "2007_000101.png", np.full((12, 16), 21), palette=True)
        rejects["2007_000101"] = "out_of_range"
        keys.append("2007_000101")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("".join(f"{key}\n" for key in keys))


def _ade150(tree: RawTree, bad: bool, out_of_range: bool) -> None:
    root = tree.root / "ADEChallengeData2016"
    tree.raw["ade150"] = root
    truths = tree.truths.setdefault("ade150", {})
    for seed, key in enumerate(["ADE_val_00000001", "ADE_val_00000002"]):
        truths[key] = tree.truth(tree.px(12, 16), [-1, 0, 149], seed)
        write_image(root / "images" / "validation" / f"{key}.jpg", tree.px(12, 16), seed)
        write_png(root / "annotations" / "validation" / f"{key}.png", truths[key] + 1)
    rejects = tree.rejects.setdefault("ade150", {})
    if bad:
        write_png(root / "annotations" / "validation" / "ADE_val_00000009.png", np.zeros((12, 16)))
        rejects["ADE_val_00000009"] = "label_without_image"
    if out_of_range:
        write_image(root / "images" / "validation" / "ADE_val_00000010.jpg", (12, 16))
        write_png(root / "annotations" / "validation" / "ADE_val_00000010.png", np.full((12, 16), 151))
        rejects["ADE_val_00000010"] = "out_of_range"


def _coco_stuff(tree: RawTree, bad: bool, out_of_range: bool) -> None:
    root = tree.coco_root
    truths = tree.truths.setdefault("coco_stuff171", {})
    keys = ["000000000009", "000000000025"] + [f"{1000 + i:012d}" for i in range(tree.coco_images - 2)]
    for seed, key in enumerate(keys[: tree.coco_images]):
        truths[key] = tree.truth(tree.px(12, 16), [-1, 0, 80, 170], seed)
        write_image(root / "train2017" / f"{key}.jpg", tree.px(12, 16), seed)
        write_png(root / "stuffthingmaps" / "train2017" / f"{key}.png", coco_stuff_values(truths[key]))
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "captions_train2017.json").write_text(
        json.dumps(
            {
                "images": [
                    {"id": int(key), "file_name": f"{key}.jpg", "height": label.shape[0], "width": label.shape[1]}
                    for key, label in truths.items()
                ],
                "annotations": [
                    {"id": i, "image_id": int(key), "caption": CAPTIONS[(i - 1) % len(CAPTIONS)]}
                    for i, key in enumerate(truths, 1)
                ],
            }
        )
    )
    rejects = tree.rejects.setdefault("coco_stuff171", {})
    if bad:
        write_image(root / "train2017" / "000000000099.jpg", (12, 16))
        rejects["000000000099"] = "image_without_label"
    if out_of_range:
        write_image(root / "train2017" / "000000000100.jpg", (12, 16))
        write_png(root / "stuffthingmaps" / "train2017" / "000000000100.png", np.full((12, 16), 11))
        rejects["000000000100"] = "out_of_range"


def write_raw_downloads(
    root: Path, *, bad: bool = False, out_of_range: bool = False, scale: int = 1, coco_images: int = 2
) -> RawTree:
    """The raw downloads of the five benchmarks and COCO under ``root``: two good images each
    (``coco_images`` for COCO), plus with ``bad`` one of every reject reason but ``out_of_range``, and with
    ``out_of_range`` one of those per set. ``scale`` multiplies the good images' sides (1: 12 x 16 pixels
    and the like; 30: 360 x 480, COCO's size)."""
    tree = RawTree(root=root, raw={}, coco_root=root / "coco", scale=scale, coco_images=coco_images)
    for write in (_ade847, _pascal_context, _voc20, _ade150, _coco_stuff):
        write(tree, bad, out_of_range)
    return tree
