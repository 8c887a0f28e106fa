"""Stage `propose` on a tiny world, and `evaluate --stored-proposals` giving the live proposer's figures."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from core import paths
from stages.evaluate import main as evaluate_main
from stages.propose import main as propose_main

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

VARIANTS = "base mpt oracle gt_masks_base"


def inputs_args(inputs, params: Path | None = None) -> list[str]:
    """The options naming the ``eval_inputs`` (``params``: another params file)."""
    return [
        "--benchmark",
        "demo",
        "--world",
        str(inputs.manifest),
        "--artifacts",
        str(inputs.artifacts),
        "--params",
        str(params or inputs.params),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stored_proposals_give_the_figures_of_the_live_proposer(eval_inputs, tmp_path, capsys, make_params, precision):
    if precision != "fp32":
        eval_inputs = SimpleNamespace(**{**vars(eval_inputs), "params": make_params(precision=precision)})
    assert propose_main(inputs_args(eval_inputs)) == 0
    path = paths.PROPOSALS / "demo.parquet"
    assert "4 images × 6 queries = 24 rows" in capsys.readouterr().out
    assert pq.read_table(path).num_rows == 24
    timing = json.loads((paths.TIMINGS / "propose_demo.json").read_text())
    assert timing["bytes"] == path.stat().st_size and timing["rows"] == 24
    assert evaluate_main(["--variant", *VARIANTS.split(), *inputs_args(eval_inputs)]) == 0
    live = {v: Path(f"metrics/eval/{v}/demo.json").read_bytes() for v in VARIANTS.split()}
    assert (
        evaluate_main(
            ["--variant", *VARIANTS.split(), *inputs_args(eval_inputs), "--stored-proposals", str(paths.PROPOSALS)]
        )
        == 0
    )
    for name, before in live.items():
        assert Path(f"metrics/eval/{name}/demo.json").read_bytes() == before, name
    # the file doubles as an external proposals file (`--proposals`): its extra columns are not read
    assert evaluate_main(["--variant", "base", *inputs_args(eval_inputs), "--proposals", str(path)]) == 0


@pytest.mark.slow
def test_a_file_of_other_settings_or_both_options_are_refused(eval_inputs, tmp_path, capsys, make_params):
    assert propose_main(inputs_args(eval_inputs)) == 0
    args = [
        "--variant",
        "base",
        "--benchmark",
        "demo",
        "--world",
        str(eval_inputs.manifest),
        "--artifacts",
        str(eval_inputs.artifacts),
        "--stored-proposals",
        str(paths.PROPOSALS),
    ]
    capsys.readouterr()
    assert evaluate_main([*args, "--params", str(make_params(mask_threshold=0.5))]) == 2
    assert "proposals made with mask_threshold 0.4, the evaluation uses 0.5" in capsys.readouterr().err
    assert evaluate_main([*args, "--params", str(eval_inputs.params), "--proposals", "x.parquet"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert evaluate_main([*args[:-1], "missing", "--params", str(eval_inputs.params)]) == 2
    assert "stored proposals not found" in capsys.readouterr().err
