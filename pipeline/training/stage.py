"""What the training stages share around their trainer: the processes with the CLIP they train, their last
steps, and the command line of a stage run once per CLIP (``python -m stages.<name> <clip> [--params FILE]``)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from core import paths
from core.cli import Command, add_params_option, command, parser
from core.io import write_json
from core.launch import relaunch_under_torchrun
from core.params import load_params
from core.timing import StageTimer
from model.clip import ClipBundle, load_clip_folder
from pipeline.training.distributed import DistributedConfig, Ranks, process_group


@contextmanager
def clip_process_group(
    distributed: DistributedConfig, device: torch.device, folder: Path
) -> Iterator[tuple[Ranks, ClipBundle]]:
    """The training processes (:func:`~pipeline.training.distributed.process_group`) and the CLIP of ``folder``
    on this process's device."""
    with process_group(distributed, device) as ranks:
        yield ranks, load_clip_folder(folder, ranks.device(device))


def run_here_or_under_torchrun(
    module: str, argv: Sequence[str] | None, nproc_per_node: int, run: Callable[[], object]
) -> int:
    """A training stage's exit status: ``module`` relaunched as ``nproc_per_node`` processes
    (:func:`~core.launch.relaunch_under_torchrun`, with ``argv``, or the process's own arguments when ``None``),
    else ``run()`` in this process and 0."""
    status = relaunch_under_torchrun(module, sys.argv[1:] if argv is None else argv, nproc_per_node)
    if status is not None:  # the processes torchrun started did the work
        return status
    run()
    return 0


def finish_training_stage(
    name: str, summary: dict[str, Any], timer: StageTimer, checkpoints: Path, **rates: float
) -> dict[str, Any]:
    """A training stage's last steps: ``summary`` written as its metrics (``metrics/<name>.json``), its wall time
    and ``rates`` recorded (:meth:`StageTimer.write`, kept out of those metrics) and added to ``summary``, its
    ``checkpoints`` folder deleted. Returns ``summary``."""
    write_json(paths.stage_metrics(name), summary)
    summary.update(timer.write(**rates))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return summary


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
