"""The job's inputs: every item of every benchmark to prepare, after checking that the downloads are there."""

from __future__ import annotations

from pathlib import Path

from core.io import safe_join
from pipeline.datasets.benchmarks import LAYOUTS
from pipeline.prepare import ade847, in_place, pascal_context, voc
from pipeline.prepare.config import COCO_STUFF, PrepareConfig
from pipeline.prepare.records import Item


class MissingDownloadError(FileNotFoundError):
    """Raw downloads are missing; the message lists every missing file and folder."""


def _needed(config: PrepareConfig, name: str) -> list[Path]:
    if name == COCO_STUFF:
        return [path for path in (config.coco_images, config.coco_labels) if path is not None]
    root = config.raw_root(name)
    if name == "ade847":
        return [root / ade847.INDEX_NAME]
    if name == "ade150":
        return [root / LAYOUTS[name].images, root / LAYOUTS[name].labels]
    if name == "voc20":
        return [root / LAYOUTS[name].keys_from, root / LAYOUTS[name].images, root / LAYOUTS[name].labels]
    common = [safe_join(root, config.pascal_context_split), root / LAYOUTS[name].images]
    if name == "pc59":
        return common + [root / pascal_context.DETAIL_NAME]
    return common + [root / pascal_context.LABELS_NAME, root / pascal_context.MATS_DIR]


def missing_downloads(config: PrepareConfig) -> list[str]:
    """What the benchmarks to prepare need and the downloads lack (empty when all is there)."""
    missing: list[str] = []
    for name in config.prepared_sets():
        for path in _needed(config, name):
            if not path.exists() and f"{name}: {path}" not in missing:
                missing.append(f"{name}: {path}")
    return missing


def list_inputs(config: PrepareConfig) -> list[Item]:
    """Every item of the benchmarks to prepare, sorted by (benchmark, key).

    Raises :class:`MissingDownloadError` listing everything missing, and ``ValueError`` naming
    the file for an index, split list, class list or annotation file that is not as expected."""
    missing = missing_downloads(config)
    if missing:
        raise MissingDownloadError(
            "prepare: these downloads are missing (README, 'Real data'):\n  - " + "\n  - ".join(missing)
        )
    sets = config.prepared_sets()
    items: list[Item] = []
    if "ade847" in sets:
        items += ade847.list_items(config.raw_root("ade847"))
    if "ade150" in sets:
        items += in_place.ade150_items(config.raw_root("ade150"))
    context = [name for name in sets if name in (pascal_context.PC59, pascal_context.PC459)]
    if context:
        items += pascal_context.list_items(config.raw_root(context[0]), context, config.pascal_context_split)
    if "voc20" in sets:
        items += voc.list_items(config.raw_root("voc20"))
    if COCO_STUFF in sets:
        assert config.coco_images is not None and config.coco_labels is not None  # from_params sets both with it
        items += in_place.coco_stuff_items(config.coco_images, config.coco_labels)
    return sorted(items, key=lambda item: (item.benchmark, item.key))
