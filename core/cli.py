"""What every command shares: its parser, and one rule for bad input (a clear message, exit 2)."""

from __future__ import annotations

import argparse
import atexit
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, Protocol

from core import paths
from core.params import load_params

#: Errors that mean "bad input" (a missing file, an unknown key, a bad value), not a bug.
USER_ERRORS = (FileNotFoundError, KeyError, ValueError)

Main = Callable[[list[str] | None], int | None]


class Command(Protocol):
    """A decorated ``main``: ``argv`` defaults to the process's arguments."""

    def __call__(self, argv: list[str] | None = None) -> int: ...


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose description is the first paragraph of the command's docstring."""
    return argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])


def add_params_option(cli: argparse.ArgumentParser) -> None:
    """``--params``: the params file a command reads (default: params.yaml, see :mod:`core.params`)."""
    cli.add_argument("--params", type=Path, default=None, help="params file (default: params.yaml)")


def add_path_options(cli: argparse.ArgumentParser, *options: tuple[str, Path, str]) -> None:
    """A path option ``--<name>`` for each ``(name, default, what)``, its help ``what (default: <default>)``."""
    for name, default, what in options:
        cli.add_argument(f"--{name}", type=Path, default=default, help=f"{what} (default: {default})")


def add_benchmark_options(cli: argparse.ArgumentParser) -> None:
    """The options of a stage that runs the trained models on benchmarks of the world: ``--benchmark``
    (read with :func:`chosen_benchmarks`), ``--params``, ``--world`` and ``--artifacts``."""
    cli.add_argument(
        "--benchmark",
        nargs="+",
        default=None,
        metavar="BENCHMARK",
        help="benchmarks of the world manifest (e.g. demo voc20; default: every one of the params' data.benchmarks)",
    )
    add_params_option(cli)
    add_path_options(
        cli,
        ("world", paths.WORLD_MANIFEST, "world manifest"),
        ("artifacts", paths.ARTIFACTS, "folder holding the trained models: clip_<name>/ and proposer/"),
    )


def chosen_benchmarks(args: argparse.Namespace) -> list[str]:
    """The benchmarks named by ``--benchmark``, else the params' ``data.benchmarks``."""
    return args.benchmark or load_params("data", args.params)["benchmarks"]


def run_command(name: str, body: Callable[[], int | None]) -> int:
    """``body()``'s exit code (0 for None); bad input is printed as ``name: message`` and gives 2."""
    try:
        return int(body() or 0)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{name}: {message}", file=sys.stderr)
        return 2


def command(name: str) -> Callable[[Main], Command]:
    """Decorate a ``main(argv)`` so that it runs under :func:`run_command`."""

    def wrap(main: Main) -> Command:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            return run_command(name, lambda: main(argv))

        return run

    return wrap


def exit_process(code: int | None) -> NoReturn:
    """End a stage's process with ``code`` after its exit handlers, skipping the interpreter's teardown.

    Tearing down torch, torchvision and open_clip's modules takes 1.0-1.5 s, and the DAG starts ~29
    stage processes. A stage's ``main`` has written and closed its outputs when it returns, and the
    exit handlers still run (logging, temporary folders, worker processes); only the garbage
    collection of modules that the process is about to drop anyway is skipped.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))
