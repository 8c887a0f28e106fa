"""Reproduction check: rerun the DAG (or part of it) from scratch in a clean clone and compare with what is committed.

    python -m pipeline.project.reproduce [--targets STAGE ...] [--params params.yaml] [--keep DIR] [--json result.json]

1. ``git clone`` the repository (HEAD, committed files only) into a temporary folder and
   run ``dvc repro --force`` there: every stage runs, including those whose outputs are
   committed to git (metrics, reports), which a plain ``dvc repro`` would skip when their
   inputs come out identical. ``--targets``: only these stages and those they depend on.
2. The outputs of the stages in ``reproduce.exact_stages`` (``all``: every stage that ran, the
   default under portable numerics; or a list, e.g. the stages without floating-point training
   under native numerics) must have the same hashes in the new ``dvc.lock`` as in the committed one.
3. Every number in the committed metrics (``metrics/**.json`` except ``metrics/timings/``
   and the ``per_class`` breakdowns) must be reproduced within
   ``abs_tolerance + rel_tolerance × |committed|``; with ``--targets``, the metrics of the
   stages that ran.

Prints a table of expected vs reproduced values and exits 1 on any breach. Also prints,
for information, the wall time of every stage of the reproduction (DVC's own work included)
and which stages' outputs are bitwise identical to the committed ones (the determinism
finding: training on CPU threads is not guaranteed bitwise stable across runs), and with
``--json`` writes all of it to a file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from core.cli import parser
from core.io import write_json
from core.params import load_params

SKIPPED_KEYS = ("per_class",)


def lock_outs(lock: dict, stage: str) -> dict[str, str]:
    """``{path: md5}`` of a stage's outs in a parsed dvc.lock (foreach entries are ``name@key``)."""
    entry = lock.get("stages", {}).get(stage)
    if entry is None:
        raise KeyError(f"dvc.lock has no stage {stage!r}")
    return {out["path"]: out.get("md5", "") for out in entry.get("outs", [])}


def numeric_leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(dotted.key, value)`` for every number in a JSON value, skipping :data:`SKIPPED_KEYS`."""
    if isinstance(obj, dict):
        for key in sorted(obj):
            if key in SKIPPED_KEYS:
                continue
            yield from numeric_leaves(obj[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from numeric_leaves(value, f"{prefix}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def metric_files(root: Path) -> list[Path]:
    metrics = root / "metrics"
    return sorted(p.relative_to(root) for p in metrics.rglob("*.json") if "timings" not in p.relative_to(metrics).parts)


def compare_metrics(
    expected_root: Path, actual_root: Path, abs_tol: float, rel_tol: float, only_under: list[str] | None = None
) -> list[dict]:
    """One row per committed metric; ``only_under``: just the files under these paths (None: all)."""
    rows = []
    for rel in metric_files(expected_root):
        if only_under is not None and not any(rel == Path(p) or Path(p) in rel.parents for p in only_under):
            continue
        expected = dict(numeric_leaves(json.loads((expected_root / rel).read_text())))
        actual_path = actual_root / rel
        actual = dict(numeric_leaves(json.loads(actual_path.read_text()))) if actual_path.exists() else {}
        for key, value in expected.items():
            got = actual.get(key)
            ok = got is not None and (
                (math.isnan(value) and math.isnan(got)) or abs(got - value) <= abs_tol + rel_tol * abs(value)
            )
            rows.append({"what": f"{rel}:{key}", "expected": value, "reproduced": got, "ok": ok})
    return rows


def compare_hashes(expected_lock: dict, actual_lock: dict, stages: list[str]) -> list[dict]:
    rows = []
    for stage in stages:
        expected, actual = lock_outs(expected_lock, stage), lock_outs(actual_lock, stage)
        for path, md5 in sorted(expected.items()):
            rows.append(
                {
                    "what": f"{stage}:{path}",
                    "expected": md5,
                    "reproduced": actual.get(path),
                    "ok": actual.get(path) == md5,
                }
            )
    return rows


def format_table(rows: list[dict]) -> str:
    def fmt(value: Any) -> str:
        if value is None:
            return "missing"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    width = max([len(r["what"]) for r in rows] + [4])
    lines = [f"{'what':<{width}}  {'expected':>34}  {'reproduced':>34}  ok"]
    lines += [
        f"{r['what']:<{width}}  {fmt(r['expected']):>34}  {fmt(r['reproduced']):>34}  {'yes' if r['ok'] else 'NO'}"
        for r in rows
    ]
    return "\n".join(lines)


STAGE_LINE = re.compile(r"^Running stage '([^']+)':")


def timed_repro(cwd: Path, env: dict[str, str], targets: list[str] | None = None) -> list[tuple[str, float]]:
    """Run ``dvc repro --force [targets]`` in ``cwd``, echoing its output; ``(stage, seconds)`` for every stage
    it ran, from its "Running stage" line to the next one (or the end), so DVC's hashing and caching count."""
    timings: list[tuple[str, float]] = []
    current, since = None, time.perf_counter()
    command = [sys.executable, "-m", "dvc", "repro", "--force", *(targets or [])]
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            match = STAGE_LINE.match(line)
            if match:
                now = time.perf_counter()
                if current is not None:
                    timings.append((current, now - since))
                current, since = match.group(1), now
    if current is not None:
        timings.append((current, time.perf_counter() - since))
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, " ".join(command[1:]))
    return timings


def reproduce(repo: Path, workdir: Path, targets: list[str] | None = None) -> tuple[Path, list[tuple[str, float]]]:
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(clone)], check=True)
    env = {**os.environ, "OVSEG_PROGRESS": "0"}
    return clone, timed_repro(clone, env, targets)


def format_timings(timings: list[tuple[str, float]]) -> str:
    width = max([len(stage) for stage, _ in timings] + [5])
    lines = [f"{'stage':<{width}}  seconds"] + [f"{stage:<{width}}  {seconds:7.1f}" for stage, seconds in timings]
    lines.append(f"{'total':<{width}}  {sum(seconds for _, seconds in timings):7.1f}")
    return "\n".join(lines)


def determinism(expected_lock: dict, actual_lock: dict, stages: set[str] | None = None) -> list[dict]:
    """For every stage with outputs (of ``stages``, None: all): are they bitwise identical to the committed ones?"""
    rows = []
    for stage in sorted(actual_lock.get("stages", {})):
        if stages is not None and stage not in stages:
            continue
        if stage not in expected_lock.get("stages", {}) or not lock_outs(actual_lock, stage):
            continue
        expected, actual = lock_outs(expected_lock, stage), lock_outs(actual_lock, stage)
        rows.append(
            {
                "stage": stage,
                "identical": expected == actual,
                "differ": sorted(path for path in actual if expected.get(path) != actual[path]),
            }
        )
    return rows


def format_determinism(same: list[dict]) -> str:
    """Two lines: the stages whose outputs are bitwise identical, and the others (rows of :func:`determinism`)."""
    identical = ", ".join(r["stage"] for r in same if r["identical"]) or "none"
    different = ", ".join(r["stage"] for r in same if not r["identical"]) or "none"
    return f"Bitwise identical to the committed outputs: {identical}\nDifferent: {different}"


def exact_stages(setting: str | list[str], ran: set[str], committed_lock: dict) -> list[str]:
    """The stages whose output hashes must match: ``all`` of those that ran (and have committed outputs), or
    those of the list that ran."""
    if setting == "all":
        committed = committed_lock.get("stages", {})
        return sorted(stage for stage in ran if stage in committed and lock_outs(committed_lock, stage))
    if isinstance(setting, str):
        raise ValueError(f"reproduce.exact_stages must be 'all' or a list of stages, got {setting!r}")
    return [stage for stage in setting if stage in ran]


def reproduce_parser() -> argparse.ArgumentParser:
    cli = parser("python -m pipeline.project.reproduce", __doc__)
    cli.add_argument(
        "--targets",
        nargs="+",
        metavar="STAGE",
        help="reproduce only these stages and those they depend on (default: the whole DAG)",
    )
    cli.add_argument("--params", type=Path, default=None)
    cli.add_argument("--keep", type=Path, help="reproduce in this folder and keep it (default: a temp folder)")
    cli.add_argument("--json", type=Path, help="also write the timings, determinism and checks here")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = reproduce_parser().parse_args(argv)
    cfg = load_params("reproduce", args.params)
    repo = Path.cwd()
    committed_lock = yaml.safe_load(
        subprocess.run(["git", "show", "HEAD:dvc.lock"], capture_output=True, text=True, check=True).stdout
    )
    with tempfile.TemporaryDirectory(prefix="ovseg-reproduce-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        clone, timings = reproduce(repo, workdir, args.targets)
        wall = time.perf_counter() - start
        new_lock = yaml.safe_load((clone / "dvc.lock").read_text())
        ran = {stage for stage, _ in timings}
        exact = exact_stages(cfg["exact_stages"], ran, committed_lock)
        # A partial run leaves the other stages' committed metrics in the clone: compare only what ran.
        only_under = (
            None if args.targets is None else sorted(path for stage in ran for path in lock_outs(new_lock, stage))
        )
        # The committed metrics are those of the clone's checkout, before dvc repro rewrote them.
        expected_root = workdir / "expected"
        subprocess.run(
            ["git", "worktree", "add", "--quiet", "--detach", str(expected_root), "HEAD"], cwd=clone, check=True
        )
        rows = compare_hashes(committed_lock, new_lock, exact)
        rows += compare_metrics(
            expected_root, clone, float(cfg["abs_tolerance"]), float(cfg["rel_tolerance"]), only_under
        )
    same = determinism(committed_lock, new_lock, None if args.targets is None else ran)
    print(f"\nWall time of each stage (clone, git clone to last stage: {wall:.0f} s):\n{format_timings(timings)}")
    print("\n" + format_determinism(same))
    print()
    print(format_table(rows))
    failed = [r for r in rows if not r["ok"]]
    print(
        f"\nreproduction check: {len(rows) - len(failed)} of {len(rows)} within tolerance "
        f"(abs {cfg['abs_tolerance']}, rel {cfg['rel_tolerance']}; exact hashes for {', '.join(exact) or 'none'}"
        + (f"; stages run: {', '.join(sorted(ran))})" if args.targets else ")")
    )
    if args.json:
        write_json(
            args.json,
            {
                "passed": not failed,
                "wall_seconds": round(wall, 1),
                "stage_seconds": {stage: round(sec, 1) for stage, sec in timings},
                "determinism": same,
                "checks": rows,
            },
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
