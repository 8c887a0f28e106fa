"""The reproduction check on a tiny git + DVC project whose stages need no ML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.project.reproduce import compare_metrics, determinism, exact_stages, main, numeric_leaves

DVC_YAML = {
    "stages": {
        "make": {
            "cmd": "mkdir -p data metrics && echo fixed > data/x.txt && "
            'echo \'{"a": 1.0, "per_class": {"cat": 3.0}, "n": [2, 4]}\' > metrics/m.json',
            "outs": ["data/x.txt"],
            "metrics": [{"metrics/m.json": {"cache": False}}],
        },
        "stamp": {"cmd": "date +%s%N > stamp.txt", "deps": ["data/x.txt"], "outs": ["stamp.txt"]},
        # only git-tracked outputs and an unchanged input: a plain `dvc repro` would skip it
        "score": {
            "cmd": "echo '{\"s\": 3}' > metrics/s.json",
            "deps": ["data/x.txt"],
            "metrics": [{"metrics/s.json": {"cache": False}}],
        },
    }
}
PARAMS = {"reproduce": {"exact_stages": ["make"], "abs_tolerance": 0.5, "rel_tolerance": 0.0}}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    git("init", "-q", cwd=root)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=root, check=True)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "results", cwd=root)
    return root


def test_a_faithful_reproduction_passes(project: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(project)
    assert main(["--json", str(project.parent / "result.json")]) == 0
    printed = capsys.readouterr().out
    assert "reproduction check: 6 of 6 within tolerance" in printed
    result = json.loads((project.parent / "result.json").read_text())
    assert result["passed"] and set(result["stage_seconds"]) == {"make", "stamp", "score"}  # every stage ran
    assert {r["stage"]: r["identical"] for r in result["determinism"]} == {"make": True, "stamp": False, "score": True}
    assert "Different: stamp" in printed


def test_a_changed_metric_fails_and_is_named(project: Path, monkeypatch, capsys) -> None:
    (project / "metrics/m.json").write_text('{"a": 2.0, "per_class": {"cat": 0.0}, "n": [2, 4]}')
    git("commit", "-qam", "claim a better figure", cwd=project)
    monkeypatch.chdir(project)
    assert main([]) == 1
    printed = capsys.readouterr().out
    assert "metrics/m.json:a" in printed and "NO" in printed
    assert "reproduction check: 5 of 6 within tolerance" in printed


def test_targets_reproduce_only_their_part_and_compare_only_its_metrics(project: Path, monkeypatch, capsys) -> None:
    (project / "metrics/s.json").write_text('{"s": 30}')  # a claim of a stage that will not run
    git("commit", "-qam", "claim", cwd=project)
    monkeypatch.chdir(project)
    assert main(["--targets", "make", "--json", str(project.parent / "result.json")]) == 0
    printed = capsys.readouterr().out
    assert "reproduction check: 5 of 5 within tolerance" in printed and "stages run: make" in printed
    result = json.loads((project.parent / "result.json").read_text())
    assert set(result["stage_seconds"]) == {"make"} and [r["stage"] for r in result["determinism"]] == ["make"]
    assert not any("s.json" in r["what"] for r in result["checks"])


def test_helpers() -> None:
    assert list(numeric_leaves({"b": [1, {"c": 2.5}], "per_class": {"x": 1}, "ok": True, "s": "t"})) == [
        ("b[0]", 1.0),
        ("b[1].c", 2.5),
    ]
    locks = (
        {"stages": {"s": {"outs": [{"path": "o", "md5": "1"}]}, "t": {"cmd": "x"}}},
        {"stages": {"s": {"outs": [{"path": "o", "md5": "2"}]}, "t": {"cmd": "x"}}},
    )
    assert determinism(*locks) == [{"stage": "s", "identical": False, "differ": ["o"]}]


def test_metric_tolerance(tmp_path: Path) -> None:
    for name, value in (("expected", 10.0), ("actual", 10.9)):
        (tmp_path / name / "metrics").mkdir(parents=True)
        (tmp_path / name / "metrics/m.json").write_text(json.dumps({"v": value, "nan": float("nan")}))
    rows = compare_metrics(tmp_path / "expected", tmp_path / "actual", abs_tol=0.5, rel_tol=0.05)
    assert [(r["what"], r["ok"]) for r in rows] == [("metrics/m.json:nan", True), ("metrics/m.json:v", True)]
    rows = compare_metrics(tmp_path / "expected", tmp_path / "actual", abs_tol=0.5, rel_tol=0.0)
    assert [r["ok"] for r in rows] == [True, False]


def test_exact_stages_all_means_every_stage_that_ran_with_committed_outputs() -> None:
    lock = {"stages": {"make": {"outs": [{"path": "a", "md5": "1"}]}, "report": {"outs": []}}}
    assert exact_stages("all", {"make", "report", "new"}, lock) == ["make"]
    assert exact_stages(["make", "other"], {"make"}, lock) == ["make"]
    with pytest.raises(ValueError, match="'all' or a list"):
        exact_stages("some", {"make"}, lock)
