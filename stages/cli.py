"""The `ovseg` command: one subcommand per tool, each a module with `main(argv) -> int`.

Only the chosen command's module is imported, so `ovseg --help` stays fast.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "world": ("stages.world", "generate the demo world or validate real data (the `world` stage)"),
    "base-clip": ("stages.base_clip", "pretrain (demo) or materialise (real) the base CLIP (the `base_clip` stage)"),
    "crop-bench": ("stages.crop_bench", "zero-shot accuracy of a CLIP folder on masked crops of ground-truth segments"),
    "proposer": ("stages.proposer", "train the mask proposer on the seen classes and benchmark it (the `proposer` stage)"),
    "proposer-bench": ("stages.proposer_bench", "proposal recall (seen/unseen, things/stuff) and oracle mIoU of a proposer"),
    "propose": ("stages.propose", "mask proposals for a folder of images, as one Parquet file"),
    "evaluate": ("stages.evaluate", "mIoU (all/seen/unseen) and pictures of variants on a benchmark (the `evaluate` stage)"),
    "report": ("stages.report", "the results table reports/results.md from every evaluation (the `report` stage)"),
    "predict": ("stages.predict", "segment one image among class names given on the command line"),
    "mine": ("stages.mine", "mine (mask, noun) pairs with the proposer and CLIP, an Apache Beam job (the `mine` stage)"),
    "params-apply": ("stages.params_apply", "merge a params override (e.g. configs/real-coco-vit-b16.yaml) into params.yaml"),
    "mine-quality": ("stages.mine_quality", "precision and class recall of mined pairs against the demo world's truth"),
}

USAGE = """usage: ovseg COMMAND [options]

Open-vocabulary semantic segmentation with mask-adapted CLIP. The whole pipeline runs
with `dvc repro`; these commands run its tools one at a time.

commands:
{commands}

Run `ovseg COMMAND --help` for a command's options."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, COMMANDS))
        print(USAGE.format(commands="\n".join(f"  {n:<{width}}  {h}" for n, (_, h) in COMMANDS.items())))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ovseg: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
