"""The Beam stages' common run: metrics and summary on success, exit codes and no metrics on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.beam.reconcile import ReconciliationError
from pipeline.beam.stage import BAD_INPUT, UNACCOUNTED, rejects_summary, run_beam_stage


class CustomInputError(Exception):
    pass


def test_success_writes_the_metrics_and_prints_the_summary(tmp_path: Path, capsys) -> None:
    metrics = tmp_path / "metrics/job.json"
    code = run_beam_stage(
        "job",
        lambda: {"rows": 3, "rejects": {}},
        metrics,
        lambda m: f"job: {m['rows']} rows, rejects: {rejects_summary(m['rejects'])}",
    )
    assert code == 0 and json.loads(metrics.read_text()) == {"rows": 3, "rejects": {}}
    assert capsys.readouterr().out == "job: 3 rows, rejects: none\n"


def fail(error: Exception):
    def job() -> dict:
        raise error

    return job


@pytest.mark.parametrize(
    "error, code, message",
    [
        (FileNotFoundError("manifest.json: file not found"), BAD_INPUT, "job: error: manifest.json: file not found"),
        (ValueError("bad value"), BAD_INPUT, "job: error: bad value"),
        (CustomInputError("no model"), BAD_INPUT, "job: error: no model"),
        (
            ReconciliationError("2 ids lost"),
            UNACCOUNTED,
            "job: outputs do not account for the inputs, nothing written: 2 ids lost",
        ),
    ],
)
def test_failures_exit_with_their_code_and_write_nothing(tmp_path: Path, capsys, error, code, message) -> None:
    metrics = tmp_path / "job.json"
    assert run_beam_stage("job", fail(error), metrics, str, input_errors=(CustomInputError,)) == code
    assert capsys.readouterr().err.strip() == message and not metrics.exists()


def test_other_errors_are_not_swallowed(tmp_path: Path) -> None:
    with pytest.raises(CustomInputError):
        run_beam_stage("job", fail(CustomInputError("boom")), tmp_path / "job.json", str)


def test_rejects_summary() -> None:
    assert rejects_summary({"no_caption": 2, "decode": 1}) == "no_caption 2, decode 1"
