"""Running a stage as several processes: the stage relaunches itself under ``torchrun --standalone``.

A training stage whose params ask for ``distributed.nproc_per_node: N > 1`` calls
:func:`relaunch_under_torchrun` first: when it was not started by torchrun, it runs
``python -m torch.distributed.run --standalone --nproc_per_node N -m <module> <argv>`` and
exits with its status; under torchrun (which sets ``WORLD_SIZE``), or with N = 1, it does
nothing and the stage runs in this process. ``dvc.yaml`` thus keeps its plain
``python -m stages.<name>`` commands, and a multi-node run is torchrun started by hand
with its rendezvous flags (see the README).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence


def torchrun_command(module: str, argv: Sequence[str], nproc_per_node: int) -> list[str]:
    """The command that runs ``python -m module argv`` as ``nproc_per_node`` processes on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc_per_node),
        "-m",
        module,
        *argv,
    ]


def relaunch_under_torchrun(module: str, argv: Sequence[str], nproc_per_node: int) -> int | None:
    """The exit status of ``module`` run under torchrun, or ``None`` when this process should run it itself
    (one process asked for, or already started by torchrun)."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    if nproc_per_node == 1 or "WORLD_SIZE" in os.environ:
        return None
    command = torchrun_command(module, argv, nproc_per_node)
    print(f"{module}: {nproc_per_node} processes: {' '.join(command[1:])}", flush=True)
    # One intra-op thread per process unless asked otherwise: the processes share the cores.
    env = {"OMP_NUM_THREADS": "1", **os.environ}
    return subprocess.run(command, env=env).returncode
