"""What every command shares: its parser, and one rule for bad input (a clear message, exit 2)."""

from __future__ import annotations

import argparse
import atexit
import functools
import os
import sys
from collections.abc import Callable
from typing import NoReturn, Protocol

#: Errors that mean "bad input" (a missing file, an unknown key, a bad value), not a bug.
USER_ERRORS = (FileNotFoundError, KeyError, ValueError)

Main = Callable[[list[str] | None], int | None]


class Command(Protocol):
    """A decorated ``main``: ``argv`` defaults to the process's arguments."""

    def __call__(self, argv: list[str] | None = None) -> int: ...


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose description is the first paragraph of the command's docstring."""
    return argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])


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
