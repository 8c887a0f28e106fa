"""The `ovseg` command: one subcommand per tool, each a module with `main(argv) -> int`.

Only the chosen command's module is imported, so `ovseg --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    # the DVC stages
    "world": ("stages.world", "generate the demo world or validate real data (the `world` stage)"),
    "base-clip": ("stages.base_clip", "pretrain (demo) or materialise (real) the base CLIP (the `base_clip` stage)"),
    "proposer": (
        "stages.proposer",
        "train the mask proposer on the seen classes and benchmark it (the `proposer` stage)",
    ),
    "mine": (
        "stages.mine",
        "mine (mask, noun) pairs with the proposer and CLIP, an Apache Beam job (the `mine` stage)",
    ),
    "gt-gauge": (
        "stages.gt_gauge",
        "zero-shot accuracy of CLIP folders on masked crops of ground-truth segments (the `crops` stage)",
    ),
    "evaluate": (
        "stages.evaluate",
        "mIoU (all/seen/unseen) and pictures of variants on a benchmark (the `evaluate` stage)",
    ),
    "report": ("stages.report", "the results table reports/results.md from every evaluation (the `report` stage)"),
    # tools, each beside its concern
    "proposer-bench": (
        "pipeline.evaluation.proposal_quality",
        "proposal recall (seen/unseen, things/stuff) and oracle mIoU of a proposer",
    ),
    "propose": ("pipeline.mining.proposal_export", "mask proposals for a folder of images, as one Parquet file"),
    "mine-quality": (
        "pipeline.mining.quality",
        "precision and class recall of mined pairs against the demo world's truth",
    ),
    "predict": ("pipeline.evaluation.prediction", "segment one image among class names given on the command line"),
    "demo": (
        "pipeline.demo.app",
        "a local web app: segment your images with your words, variants side by side; browse the mined pairs",
    ),
    "params-apply": (
        "pipeline.project.params_apply",
        "merge a params override (e.g. configs/real-coco-vit-b16.yaml) into params.yaml",
    ),
}
#: Former names of commands, still accepted.
ALIASES: dict[str, str] = {"crop-bench": "gt-gauge"}
#: One example per command, printed under its ``--help`` (``predict``'s parser prints its own).
EXAMPLES: dict[str, str] = {
    "world": "ovseg world --out /tmp/world            # the world of params.yaml's data section, elsewhere",
    "base-clip": "ovseg base-clip --out /tmp/clip_base  # the base CLIP of params.yaml's clip section",
    "proposer": "ovseg proposer --clip artifacts/clip_base --out /tmp/proposer",
    "mine": "ovseg mine --out /tmp/pairs --rejects /tmp/rejects --metrics /tmp/mine.json --plots /tmp/mine",
    "gt-gauge": "ovseg gt-gauge artifacts/clip_base artifacts/clip_ft_mpt --per-class",
    "evaluate": "ovseg evaluate --variant base ft_mpt --benchmark demo --out /tmp/eval",
    "report": "ovseg report --out /tmp/results.md",
    "proposer-bench": "ovseg proposer-bench --benchmark demo --per-class",
    "propose": "ovseg propose --images photos/ --out proposals.parquet --classes 'cat, dog'",
    "mine-quality": "ovseg mine-quality --per-class",
    "predict": "ovseg predict photo.jpg --classes 'sky, grass|lawn, dog' -o out.png --json",
    "demo": "ovseg demo --port 8080 --short-side 256",
    "params-apply": "ovseg params-apply configs/real-coco-vit-b16.yaml --dry",
}
HELP_FLAGS = frozenset({"-h", "--help"})
PARSER_EXAMPLES = frozenset({"predict"})

USAGE = """usage: ovseg COMMAND [options]

Open-vocabulary semantic segmentation with mask-adapted CLIP. The whole pipeline runs
with `dvc repro`; these commands run its tools one at a time.

commands:
{commands}

{aliases}

Run `ovseg COMMAND --help` for a command's options."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, COMMANDS))
        aliases = ", ".join(f"{old} = {new}" for old, new in ALIASES.items())
        print(
            USAGE.format(
                commands="\n".join(f"  {n:<{width}}  {h}" for n, (_, h) in COMMANDS.items()),
                aliases=f"aliases: {aliases}",
            )
        )
        return 0
    name, rest = ALIASES.get(argv[0], argv[0]), argv[1:]
    if name not in COMMANDS:
        print(f"ovseg: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    if name in PARSER_EXAMPLES or not HELP_FLAGS & set(rest):
        return int(module.main(rest) or 0)
    try:
        return int(module.main(rest) or 0)
    except SystemExit as stop:
        if stop.code in (0, None):  # argparse printed the help: the example goes under it
            print(f"\nexample:\n  {EXAMPLES[name]}")
        raise


if __name__ == "__main__":
    sys.exit(main())
