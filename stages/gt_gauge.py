"""The ground-truth gauge: how well CLIP folders classify masked crops of ground-truth segments.

    ovseg gt-gauge artifacts/clip_base [--benchmark demo ...] [--json out.json]
    ovseg gt-gauge --maskpool artifacts/clip_base --adapter artifacts/adapter_base [--pooling attention]
    python -m stages.gt_gauge artifacts/clip_base artifacts/clip_ft ... --json-dir metrics/crops

Prints, for each CLIP folder and benchmark, the mean of per-class top-1 accuracies over
all classes and over the seen, unseen, thing and stuff classes (from the world's class
list), then per class with ``--per-class``. ``--json`` writes one folder's result;
``--json-dir`` writes ``DIR/<name>.json`` for each folder, ``<name>`` being the folder's
name without its ``clip_`` prefix, and (as the DVC stage ``crops``) the wall time to
``metrics/timings/crops.json``. Several folders share one process: one import, one world.
``--precision bf16`` runs every model call under bf16 autocast (the stage passes ``evaluate.precision``).

The same gauge for Mask-Adapter's one-pass classifiers: ``--maskpool CLIP`` pools the
segments from one pass of that CLIP over each image (``--pooling``, ``--attention-depth``),
``--adapter FOLDER`` classifies them with a trained Mask-Adapter (on the CLIP folder it
records, or its own). Their results are named ``maskpool`` for ``artifacts/clip_base``
(``<clip>_maskpool`` otherwise) and, from the adapter folder's name, ``adapter`` for
``adapter_base`` and ``<clip>_adapter`` for ``adapter_<clip>``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core import paths
from core.cli import command, exit_process, parser
from core.device import pick_device
from core.io import write_json
from core.timing import StageTimer
from model.clip import load_clip_folder
from model.dense_clip import POOLINGS
from model.mask_adapter import adapter_clip_folder, load_mask_adapter
from model.one_pass import OnePassSegmenter
from model.precision import PRECISION_SETTINGS, inference_autocast
from pipeline.datasets.manifest import World, load_world
from pipeline.evaluation.gt_gauge import class_subsets, crop_accuracy, one_pass_accuracy

SUMMARY_KEYS = ("mean", "seen", "unseen", "things", "stuff")


def format_summary(name: str, result: dict) -> str:
    parts = [f"{key} {result[key]:.1f}" for key in SUMMARY_KEYS if result.get(key) is not None]
    return f"{name}: " + ", ".join(parts) + f" (chance {result['chance']:.1f}, {result['segments']} segments)"


def result_name(folder: Path) -> str:
    """``artifacts/clip_ft_mpt`` → ``ft_mpt``: the file name under ``--json-dir``."""
    name = folder.resolve().name
    return name.removeprefix("clip_") or name


def optional_int(text: str) -> int | None:
    """An integer, or ``None`` for ``None``/``null`` (as DVC writes a null param into a command)."""
    return None if text in ("None", "null") else int(text)


def maskpool_result_name(clip_folder: Path) -> str:
    """``maskpool`` on the base CLIP (``artifacts/clip_base``), ``<clip>_maskpool`` on another."""
    clip_name = result_name(clip_folder)
    return "maskpool" if clip_name == "base" else f"{clip_name}_maskpool"


def adapter_result_name(folder: Path) -> str:
    """``artifacts/adapter_base`` → ``adapter``, ``artifacts/adapter_ft`` → ``ft_adapter``."""
    clip_name = folder.resolve().name.removeprefix("adapter_")
    return "adapter" if clip_name in ("base", "") else f"{clip_name}_adapter"


def maskpool_builder(folder: Path, args: argparse.Namespace, device: torch.device) -> Callable[[], OnePassSegmenter]:
    """Builds maskpool's classifier: segments pooled from one pass of the CLIP in ``folder``."""

    def build() -> OnePassSegmenter:
        bundle = load_clip_folder(folder, device)
        return OnePassSegmenter(None, bundle, pooling=args.pooling, attention_depth=args.attention_depth)

    return build


def adapter_builder(folder: Path, clip_folder: Path, device: torch.device) -> Callable[[], OnePassSegmenter]:
    """Builds the classifier of the Mask-Adapter in ``folder`` on the CLIP in ``clip_folder``."""

    def build() -> OnePassSegmenter:
        bundle = load_clip_folder(clip_folder, device)
        return OnePassSegmenter(None, bundle, adapter=load_mask_adapter(folder, bundle.model, device))

    return build


def one_pass_segmenters(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], OnePassSegmenter]]:
    """Builders of the requested one-pass classifiers, by result name (each folder checked first)."""
    builders: dict[str, Callable[[], OnePassSegmenter]] = {}
    for folder in args.maskpool:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: CLIP folder not found")
        builders[maskpool_result_name(folder)] = maskpool_builder(folder, args, device)
    for folder in args.adapter:
        clip_folder = adapter_clip_folder(folder)
        if not clip_folder.is_dir():
            raise FileNotFoundError(f"{folder}: the CLIP folder it records, {clip_folder}, is not found")
        builders[adapter_result_name(folder)] = adapter_builder(folder, clip_folder, device)
    return builders


def gauge_parser() -> argparse.ArgumentParser:
    """The command line of ``ovseg gt-gauge`` (see the module docstring)."""
    cli = parser("ovseg gt-gauge", __doc__)
    cli.add_argument(
        "clips",
        type=Path,
        nargs="*",
        metavar="CLIP",
        help="open_clip local folders (with mask_prompts.safetensors for MPT)",
    )
    cli.add_argument(
        "--maskpool",
        type=Path,
        action="append",
        default=[],
        metavar="CLIP",
        help="also pool the segments from one pass of this CLIP over each image; repeatable",
    )
    cli.add_argument(
        "--adapter",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="also classify the segments with this Mask-Adapter folder; repeatable",
    )
    cli.add_argument("--pooling", choices=POOLINGS, default="attention", help="maskpool's pooling (ViT)")
    cli.add_argument(
        "--attention-depth",
        type=optional_int,
        default=None,
        help="maskpool: the last N blocks the queries pass through (None: all)",
    )
    cli.add_argument("--world", type=Path, default=paths.WORLD_MANIFEST, help="world manifest")
    cli.add_argument(
        "--benchmark",
        action="append",
        dest="benchmarks",
        help="benchmark name in the world; repeatable (default: every benchmark of the world)",
    )
    cli.add_argument("--device", default="auto")
    cli.add_argument(
        "--precision",
        choices=PRECISION_SETTINGS,
        default="fp32",
        help="bf16: autocast around every model call, as evaluate.precision (scores stay float32); "
        "auto: bf16 where the device computes it natively",
    )
    cli.add_argument("--no-prompts", action="store_true", help="ignore mask prompts in the folders")
    cli.add_argument("--per-class", action="store_true", help="also print every class's accuracy")
    output = cli.add_mutually_exclusive_group()
    output.add_argument("--json", type=Path, help="write the full result of the single CLIP folder here")
    output.add_argument("--json-dir", type=Path, help="write DIR/<name>.json for each folder (see above)")
    return cli


def print_per_class(result: dict[str, Any]) -> None:
    for class_name, value in result["per_class"].items():
        print(f"  {class_name:<20} {'-' if value is None else f'{value:5.1f}'}")


def gauge_clip_folders(
    args: argparse.Namespace, names: list[str], world: World, device: torch.device
) -> dict[str, dict]:
    """The crop gauge of each CLIP folder of ``args.clips`` (result name from ``names``) on each benchmark,
    printed as it comes: ``{name: {benchmark: result}}``."""
    results: dict[str, dict] = {}
    for folder, name in zip(args.clips, names):
        bundle = load_clip_folder(folder, device)
        if args.no_prompts:
            bundle.prompts = None
        results[name] = {}
        for benchmark in args.benchmarks or world.benchmark_names:
            dataset = world.benchmark(benchmark)
            result = crop_accuracy(bundle, dataset, subsets=class_subsets(dataset.class_names, world.classes))
            results[name][benchmark] = result
            print(format_summary(f"{folder} on {benchmark}", result))
            if args.per_class:
                print_per_class(result)
    return results


def gauge_one_pass(
    args: argparse.Namespace, one_pass: dict[str, Callable[[], OnePassSegmenter]], world: World
) -> dict[str, dict]:
    """The gauge of each one-pass classifier (built in turn) on each benchmark, printed as it comes."""
    results: dict[str, dict] = {}
    for name, build in one_pass.items():
        segmenter = build()
        results[name] = {}
        for benchmark in args.benchmarks or world.benchmark_names:
            dataset = world.benchmark(benchmark)
            subsets = class_subsets(dataset.class_names, world.classes)
            result = one_pass_accuracy(segmenter, dataset, subsets=subsets)
            results[name][benchmark] = result
            print(format_summary(f"{name} on {benchmark}", result))
    return results


@command("gt-gauge")
def main(argv: list[str] | None = None) -> int:
    cli = gauge_parser()
    args = cli.parse_args(argv)
    if args.json and len(args.clips) + len(args.maskpool) + len(args.adapter) != 1:
        cli.error("--json takes one CLIP folder; use --json-dir for several")
    if not (args.clips or args.maskpool or args.adapter):
        cli.error("give at least one CLIP folder, --maskpool or --adapter")
    names = [result_name(folder) for folder in args.clips]
    timer = StageTimer("crops")
    for folder in args.clips:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: CLIP folder not found")
    world = load_world(args.world)
    device = pick_device(args.device)
    one_pass = one_pass_segmenters(args, device)
    all_names = names + list(one_pass)
    if len(set(all_names)) != len(all_names):
        cli.error(f"two classifiers share a result name: {', '.join(all_names)}")
    with inference_autocast(args.precision, device):
        results = gauge_clip_folders(args, names, world, device)
        results.update(gauge_one_pass(args, one_pass, world))
    if args.json:
        write_json(args.json, next(iter(results.values())))
    if args.json_dir:
        for name, by_benchmark in results.items():
            write_json(args.json_dir / f"{name}.json", by_benchmark)
        timer.write(clips=len(results))
    return 0


if __name__ == "__main__":
    exit_process(main())
