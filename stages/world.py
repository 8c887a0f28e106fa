"""Stage ``world``: make ``data/world/`` from params ``data``.

``data.source: demo`` generates the synthetic world with the benchmarks of
``data.benchmarks`` (``demo`` always; see :mod:`pipeline.world.benchmarks`; docs/architecture.md);
``data.source: coco`` validates the real COCO and benchmark folders and writes
``manifest.json``, ``classes.json`` and ``world.json`` only. Either way the
output replaces ``data/world`` atomically and downstream stages read
``data/world/manifest.json`` (``pipeline.datasets.manifest.load_world``).

    python -m stages.world [--params params.yaml] [--out data/world]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core import paths
from core.cli import add_params_option, add_path_options, command, exit_process, parser
from core.io import atomic_dir, write_json
from core.params import load_params
from core.timing import StageTimer
from pipeline.datasets.manifest import MANIFEST_NAME, write_manifest
from pipeline.world.benchmarks import VAL_BENCHMARK, WORLD_BENCHMARKS
from pipeline.world.config import WorldConfig
from pipeline.world.generate import generate_world
from pipeline.world.real import coco_classes, describe_real_world, real_split

TIME_BUDGET_S = 60.0


def _wanted_benchmarks(data: Mapping[str, Any]) -> list[str]:
    wanted = data.get("benchmarks") or []
    if not isinstance(wanted, list) or not all(isinstance(name, str) for name in wanted):
        raise ValueError(f"data.benchmarks: expected a list of benchmark names, got {wanted!r}")
    return wanted


def build_world(data: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Write the world described by the ``data`` params into ``out`` atomically; return its statistics."""
    source = data.get("source")
    wanted = _wanted_benchmarks(data)
    if source == "demo":
        config = WorldConfig.from_params(data)
        unknown = [name for name in wanted if name not in WORLD_BENCHMARKS]
        if unknown:
            raise ValueError(
                f"data.benchmarks: {unknown} need data.source 'coco'; the demo world has {list(WORLD_BENCHMARKS)}"
            )
        with atomic_dir(out) as tmp:
            return generate_world(config, tmp, wanted)
    if source == "coco":
        real = data.get("real") or {}
        manifest, statistics = describe_real_world(real, wanted)
        with atomic_dir(out) as tmp:
            write_json(tmp / "classes.json", coco_classes(real_split(real)))
            write_json(tmp / "world.json", statistics)
            write_manifest(tmp / MANIFEST_NAME, manifest)
        return statistics
    raise ValueError(f"data.source must be 'demo' or 'coco', got {source!r}")


@command("world")
def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m stages.world", __doc__)
    add_params_option(cli)
    add_path_options(cli, ("out", paths.WORLD, "output folder"))
    args = cli.parse_args(argv)
    timer = StageTimer("world")
    statistics = build_world(load_params("data", args.params), args.out)
    seconds = timer.write()["seconds"]
    classes = statistics["classes"]
    print(
        f"world: source {statistics['source']}, {statistics['train']['images']} training images, "
        f"{classes['total']} classes ({classes['stuff']} stuff, {classes['things']} things, "
        f"{classes['unseen']} unseen) -> {args.out}"
    )
    if statistics["source"] == "demo":
        benchmark = statistics["benchmark"]
        print(
            f"world: {benchmark['images']} demo benchmark images, at least {benchmark['min_segments_per_class']} "
            f"segments per class; {statistics['train']['captions']} captions"
        )
        for name in (n for n in (*WORLD_BENCHMARKS, VAL_BENCHMARK) if n in statistics["benchmarks"]):
            entry = statistics["benchmarks"][name]
            print(
                f"world: benchmark {name}: {entry['images']} images, {entry['vocabulary']} class names "
                f"({entry['world_classes']} of the world, {entry['distractors']} distractors), "
                f"{entry['classes_present']} present ({entry['seen_present']} seen, "
                f"{entry['unseen_present']} unseen)"
            )
        print(f"world: generated in {seconds:.1f} s (budget {TIME_BUDGET_S:.0f} s)")
    else:
        print(f"world: validated in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    exit_process(main())
