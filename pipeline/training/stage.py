"""The command line of a training stage run once per CLIP: ``python -m stages.<name> <clip> [--params FILE]``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from core.cli import Command, add_params_option, command, parser
from core.launch import run_here_or_under_torchrun
from core.params import load_params
from pipeline.training.distributed import DistributedConfig


def clip_stage_main(
    name: str, doc: str | None, clips: Iterable[str], what: str, run: Callable[[str, Path | None], object]
) -> Command:
    """The ``main(argv)`` of stage ``name``: ``<clip>`` is one of ``clips`` (``what``: its help); the stage relaunches
    itself under torchrun as its params section's ``distributed.nproc_per_node`` processes, then each runs
    ``run(clip, params_file)``."""

    @command(name)
    def main(argv: list[str] | None = None) -> int:
        cli = parser(f"python -m stages.{name}", doc)
        cli.add_argument("clip", choices=sorted(clips), help=what)
        add_params_option(cli)
        args = cli.parse_args(argv)
        nproc = DistributedConfig.of_section(load_params(name, args.params), name).nproc_per_node
        return run_here_or_under_torchrun(f"stages.{name}", argv, nproc, lambda: run(args.clip, args.params))

    return main
