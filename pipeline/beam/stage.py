"""What every Beam stage does around its job: its command line, quiet logs, exit codes for bad inputs and
unaccounted outputs, metrics."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.cli import Command, add_params_option, add_path_options, parser
from core.io import write_json
from pipeline.beam.reconcile import ReconciliationError

#: Exit codes: inputs or params the stage refuses, outputs that do not account for the inputs.
BAD_INPUT, UNACCOUNTED = 2, 1


def quiet_beam_logging() -> None:
    """INFO logs with times, without the chatter of Beam and the Dask dashboard."""
    # force: importing Beam has already given the root logger a WARNING-level handler.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    for noisy in ("apache_beam", "bokeh", "tornado"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Relays the SDK worker processes' start-up warnings about options Beam itself passes.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)


def rejects_summary(rejects: Mapping[str, int]) -> str:
    """``reason count, …`` of a job's rejects, ``none`` without any."""
    return ", ".join(f"{reason} {n}" for reason, n in rejects.items()) or "none"


def run_beam_stage(
    stage: str,
    job: Callable[[], dict[str, Any]],
    metrics_path: Path,
    summary: Callable[[dict[str, Any]], str],
    input_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run ``job`` (params to metrics) with :func:`quiet_beam_logging`; write its metrics and print ``summary``.

    Returns the exit code: 0, or :data:`BAD_INPUT` for a missing file, a bad value or one of
    ``input_errors``, or :data:`UNACCOUNTED` when the outputs do not account for the inputs
    (nothing is written then); both print ``stage: …`` on stderr.
    """
    bad_input: tuple[type[Exception], ...] = (FileNotFoundError, KeyError, ValueError, *input_errors)
    quiet_beam_logging()
    try:
        metrics = job()
    except bad_input as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except ReconciliationError as exc:
        print(f"{stage}: outputs do not account for the inputs, nothing written: {exc}", file=sys.stderr)
        return UNACCOUNTED
    write_json(metrics_path, metrics)
    print(summary(metrics))
    return 0


def beam_stage_main(
    stage: str,
    doc: str | None,
    options: Sequence[tuple[str, Path, str]],
    job: Callable[[argparse.Namespace], dict[str, Any]],
    summary: Callable[[dict[str, Any], argparse.Namespace], str],
    input_errors: tuple[type[Exception], ...] = (),
) -> Command:
    """The ``main(argv)`` of ``python -m stages.<stage>``: ``--params`` and the path ``options`` (``(name, default,
    what)``, one of them ``metrics``), then :func:`run_beam_stage` of ``job(args)`` and ``summary(metrics, args)``."""

    def main(argv: list[str] | None = None) -> int:
        cli = parser(f"python -m stages.{stage}", doc)
        add_params_option(cli)
        add_path_options(cli, *options)
        args = cli.parse_args(argv)
        return run_beam_stage(
            stage, lambda: job(args), args.metrics, lambda metrics: summary(metrics, args), input_errors
        )

    return main
