"""What every command shares: its parser, and one rule for bad input (a clear message, exit 2)."""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable

#: Errors that mean "bad input" (a missing file, an unknown key, a bad value), not a bug.
USER_ERRORS = (FileNotFoundError, KeyError, ValueError)

Main = Callable[[list[str] | None], int | None]


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


def command(name: str) -> Callable[[Main], Callable[[list[str] | None], int]]:
    """Decorate a ``main(argv)`` so that it runs under :func:`run_command`."""

    def wrap(main: Main) -> Callable[[list[str] | None], int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            return run_command(name, lambda: main(argv))

        return run

    return wrap
