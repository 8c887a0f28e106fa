"""Zero-shot crop benchmark: how well CLIP folders classify masked crops of ground-truth segments.

    ovseg crop-bench artifacts/clip_base [--benchmark demo ...] [--json out.json]
    python -m stages.crops artifacts/clip_base artifacts/clip_ft ... --json-dir metrics/crops

Prints, for each CLIP folder and benchmark, the mean of per-class top-1 accuracies over
all classes and over the seen, unseen, thing and stuff classes (from the world's class
list), then per class with ``--per-class``. ``--json`` writes one folder's result;
``--json-dir`` writes ``DIR/<name>.json`` for each folder, ``<name>`` being the folder's
name without its ``clip_`` prefix, and (as the DVC stage ``crops``) the wall time to
``metrics/timings/crops.json``. Several folders share one process: one import, one world.
"""
from __future__ import annotations

import sys
from pathlib import Path

from core.cli import command, parser
from core.device import pick_device
from core.io import write_json
from core.timing import StageTimer
from model.clip import load_clip_folder
from pipeline.datasets.manifest import load_world
from pipeline.evaluation.crops import class_subsets, crop_accuracy

SUMMARY_KEYS = ("mean", "seen", "unseen", "things", "stuff")


def format_summary(name: str, result: dict) -> str:
    parts = [f"{key} {result[key]:.1f}" for key in SUMMARY_KEYS if result.get(key) is not None]
    return f"{name}: " + ", ".join(parts) + f" (chance {result['chance']:.1f}, {result['segments']} segments)"


def result_name(folder: Path) -> str:
    """``artifacts/clip_ft_mpt`` → ``ft_mpt``: the file name under ``--json-dir``."""
    name = folder.resolve().name
    return name.removeprefix("clip_") or name


@command("crop-bench")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg crop-bench", __doc__)
    cli.add_argument("clips", type=Path, nargs="+", metavar="CLIP",
                        help="open_clip local folders (with mask_prompts.safetensors for MPT)")
    cli.add_argument("--world", type=Path, default=Path("data/world/manifest.json"), help="world manifest")
    cli.add_argument("--benchmark", action="append", dest="benchmarks",
                        help="benchmark name in the world; repeatable (default: every benchmark of the world)")
    cli.add_argument("--device", default="auto")
    cli.add_argument("--no-prompts", action="store_true", help="ignore mask prompts in the folders")
    cli.add_argument("--per-class", action="store_true", help="also print every class's accuracy")
    output = cli.add_mutually_exclusive_group()
    output.add_argument("--json", type=Path, help="write the full result of the single CLIP folder here")
    output.add_argument("--json-dir", type=Path, help="write DIR/<name>.json for each folder (see above)")
    args = cli.parse_args(argv)
    if args.json and len(args.clips) > 1:
        cli.error("--json takes one CLIP folder; use --json-dir for several")
    names = [result_name(folder) for folder in args.clips]
    if len(set(names)) != len(names):
        cli.error(f"two CLIP folders share a result name: {', '.join(names)}")
    timer = StageTimer("crops")
    for folder in args.clips:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: CLIP folder not found")
    world = load_world(args.world)
    device = pick_device(args.device)
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
                for class_name, value in result["per_class"].items():
                    print(f"  {class_name:<20} {'-' if value is None else f'{value:5.1f}'}")
    if args.json:
        write_json(args.json, results[names[0]])
    if args.json_dir:
        for name, by_benchmark in results.items():
            write_json(args.json_dir / f"{name}.json", by_benchmark)
        timer.write(clips=len(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
