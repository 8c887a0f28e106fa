"""One demo-benchmark image and its label, written in the benchmark's real on-disk layout.

The label values follow the reader's layout (:data:`pipeline.datasets.benchmarks.LAYOUTS`):
class ``i`` is written as ``offset + i`` and a pixel whose world class the list lacks as the
layout's first ignore value (ADE 0 "other", 65535 in the uint16 TIFFs, 255 in PC-59, 0
"background" in VOC). VOC labels are palette PNGs whose objects are outlined by a one-pixel
void border (255), as in VOC's own annotations. Files are written without timestamps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.io import write_json
from pipeline.datasets.benchmarks import LAYOUTS, BenchmarkLayout
from pipeline.world.benchmarks import DemoBenchmark

VOC_VOID = 255


def voc_palette() -> list[int]:
    """VOC's 256-colour label palette (the bit-interleaved colour map of the devkit), flat RGB."""
    colours = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours += [r, g, b]
    return colours


_VOC_PALETTE = voc_palette()


def encode_label(classes: np.ndarray, benchmark: DemoBenchmark, layout: BenchmarkLayout) -> np.ndarray:
    """``H×W`` catalogue indices → the raw label values of ``layout`` (int64)."""
    index = np.asarray(benchmark.label_of, dtype=np.int64)[classes]
    raw = np.where(index >= 0, index + layout.offset, layout.ignore[0])
    if layout.name == "voc20":
        border = np.zeros(raw.shape, dtype=bool)
        border[:-1, :] |= raw[:-1, :] != raw[1:, :]
        border[:, :-1] |= raw[:, :-1] != raw[:, 1:]
        raw[border] = VOC_VOID
    return raw


def save_label(raw: np.ndarray, path: Path, layout: BenchmarkLayout) -> None:
    """Write raw label values as the layout's file type (uint16 TIFF, palette PNG or 8-bit PNG)."""
    if layout.label_suffix == ".tif":
        Image.fromarray(raw.astype(np.uint16)).save(path, format="TIFF", compression="tiff_deflate")
        return
    image = Image.fromarray(raw.astype(np.uint8))
    if layout.name == "voc20":
        image = image.convert("P")
        image.putpalette(_VOC_PALETTE)
    image.save(path, format="PNG", optimize=False, compress_level=1)


def prepare_folders(out: Path, benchmark: DemoBenchmark) -> Path:
    """Make the benchmark's folders under ``out/benchmarks/<name>`` and write its ``classes.json``; return its root."""
    layout = LAYOUTS[benchmark.name]
    root = out / "benchmarks" / benchmark.name
    (root / layout.images).mkdir(parents=True, exist_ok=True)
    (root / layout.labels).mkdir(parents=True, exist_ok=True)
    write_json(root / "classes.json", list(benchmark.class_names))
    return root


def write_key_list(root: Path, benchmark: DemoBenchmark) -> None:
    """The list file of a layout that takes its keys from one (VOC's ``val.txt``), sorted."""
    layout = LAYOUTS[benchmark.name]
    if layout.keys_from in ("images", "labels"):
        return
    path = root / layout.keys_from
    path.parent.mkdir(parents=True, exist_ok=True)
    stems = sorted(benchmark.file_stem(i) for i in range(benchmark.images))
    path.write_text("".join(stem + "\n" for stem in stems), encoding="utf-8")


def write_pair(
    root: Path, benchmark: DemoBenchmark, stem: str, image: np.ndarray, classes: np.ndarray, jpeg_quality: int
) -> None:
    """The image (JPEG) and its label under ``root`` in the benchmark's layout."""
    layout = LAYOUTS[benchmark.name]
    Image.fromarray(image).save(
        root / layout.images / f"{stem}{layout.image_suffix}",
        format="JPEG",
        quality=jpeg_quality,
        subsampling=0,
        optimize=False,
    )
    save_label(encode_label(classes, benchmark, layout), root / layout.labels / f"{stem}{layout.label_suffix}", layout)
