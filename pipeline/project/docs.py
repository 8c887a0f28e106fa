"""The figures of README.md and docs/*.md, filled in from committed files so that none goes stale unnoticed.

    python -m pipeline.project.docs render   # rewrite every marked block from its source
    python -m pipeline.project.docs check    # exit 1 naming each block that differs from its source

A marked block is ``<!-- insert: SPEC -->…<!-- /insert -->``, inline or over several lines; the text between
the markers is what SPEC gives (:func:`insert`):

- ``md:FILE#Heading [rows=a,b]``: a section of a Markdown file (``reports/results.md``), optionally only the
  table rows of the named variants;
- ``json:FILE#a.b.c [fmt=.1f] [scale=100]``: one number of a JSON or YAML file (``metrics/``, ``metrics/timings/``,
  ``params.yaml``);
- ``seeds:claims``, ``seeds:summary``: the seed study's claims, from ``reports/seeds.json``;
- ``exp:KEY``: the stages ``dvc exp run -S KEY=…`` can rerun, from ``dvc.yaml``;
- ``dag:mermaid``: the DAG of ``dvc.yaml``;
- ``timings:stages``: the stage timers of ``metrics/timings/``, headed by their commit and CPU model;
- ``lock:size``: the size of every output ``dvc.lock`` records;
- ``cli:commands``: the ``ovseg`` commands with their purpose and example, from ``stages/cli.py``;
- ``count:GLOB``, ``count:STAGE#deps=GLOB``: how many stages, or deps of a stage, ``dvc.yaml`` has;
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from core.cli import parser
from pipeline.evaluation.summary import TRAINING_STAGES
from pipeline.project.dag import downstream_of_param, load_stages, mermaid

MARKED = re.compile(r"<!-- insert: (?P<spec>[^>]*?) -->(?P<body>.*?)<!-- /insert -->", re.DOTALL)
SEEDS = Path("reports/seeds.json")
EVAL = Path("metrics/eval")
TIMINGS = Path("metrics/timings")
#: The stage timers of the performance page, in DAG order (evaluations summed per file prefix).
TIMED_STAGES = (
    "world",
    *TRAINING_STAGES[:2],
    "nouns",
    "mine",
    *TRAINING_STAGES[2:],
    "crops",
    "propose_*",
    "evaluate_*",
    "tune",
)


def doc_files(root: Path) -> list[Path]:
    """The pages whose blocks are filled: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``kind:argument key=value ...`` → ``(kind, argument, options)``; the argument may hold spaces (a heading)."""
    words = spec.split()
    options = [word for word in words[1:] if "=" in word]
    kind, _, argument = " ".join(word for word in words if word not in options).partition(":")
    return kind, argument, dict(option.split("=", 1) for option in options)


def insert(spec: str, root: Path) -> str:
    """The text SPEC stands for (see the module docstring)."""
    kind, argument, options = parse_spec(spec)
    if kind not in SOURCES:
        raise ValueError(f"unknown insert kind {kind!r} in {spec!r} (known: {', '.join(SOURCES)})")
    return SOURCES[kind](argument, options, root)


def _markdown_section(argument: str, options: dict[str, str], root: Path) -> str:
    file, _, heading = argument.partition("#")
    lines = (root / file).read_text(encoding="utf-8").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.lstrip("#").strip() == heading and line.startswith("#")), None
    )
    if start is None:
        raise ValueError(f"{file}: no heading {heading!r}")
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].startswith("#" * level) and not lines[i].startswith("#" * (level + 1))
        ),
        len(lines),
    )
    body = lines[start + 1 : end]
    if "rows" in options:  # the table alone: its header, its separator and the rows named, in the file's order
        wanted = set(options["rows"].split(","))
        body = [line for line in body if line.startswith("|") and _row_name(line) in (wanted | {None})]
    return "\n" + "\n".join(body).strip("\n") + "\n"


def _row_name(line: str) -> str | None:
    """The backticked name in a table row's first cell (None for the header and the separator)."""
    match = re.match(r"\| `([^`]+)` \|", line)
    return match.group(1) if match else None


def _json_number(argument: str, options: dict[str, str], root: Path) -> str:
    file, _, key = argument.partition("#")
    value: Any = yaml.safe_load((root / file).read_text(encoding="utf-8"))  # JSON is YAML: params.yaml too
    for part in key.split("."):
        value = value[part]
    if "scale" in options:
        value = value * float(options["scale"])
    return format(value, options.get("fmt", ",")) if isinstance(value, int | float) else str(value)


def seed_study(root: Path) -> dict[str, Any]:
    return json.loads((root / SEEDS).read_text(encoding="utf-8"))


def stale_seed_cells(summary: dict[str, Any], root: Path) -> tuple[int, int]:
    """How many of the study's seed-0 mIoU cells differ from the committed ``metrics/eval``, and how many there are.

    Seed 0 is the workspace's run, so a difference means the study is of another lock."""
    differ = total = 0
    for variant, cells in summary["miou"].items():
        for benchmark, cell in cells.items():
            path = root / EVAL / variant / f"{benchmark}.json"
            seed0 = cell["seeds"].get("0")
            if seed0 is None:
                continue
            total += 1
            committed = json.loads(path.read_text(encoding="utf-8"))["mIoU"] if path.is_file() else None
            differ += committed is None or round(committed, 2) != round(seed0, 2)
    return differ, total


def _claim_line(claim: dict[str, Any]) -> str:
    metric = claim["metric"] + (f" on `{claim['benchmark']}`" if claim.get("benchmark") else "")
    per_seed = " / ".join(f"{d:+.1f}" for d in claim["differences"].values())
    return (
        f"{claim['what']}: `{claim['better']}` − `{claim['worse']}` {claim['mean']:+.1f} ± {claim['std']:.1f} "
        f"{metric} (seeds: {per_seed})"
    )


def _claim_name(claim: dict[str, Any]) -> str:
    where = [claim["metric"]] if claim["metric"] != "mIoU" else []
    where += [claim["benchmark"]] if claim.get("benchmark") else []
    metric = f" ({', '.join(where)})" if where else ""
    return f"`{claim['better']}` > `{claim['worse']}`{metric}"


def _staleness(summary: dict[str, Any], root: Path) -> list[str]:
    differ, total = stale_seed_cells(summary, root)
    if not differ:
        return []
    return [
        f"**Stale:** seed 0 of this study differs from the committed `metrics/eval` in {differ} of {total} cells, "
        "so it is a study of an older lock and says nothing yet about the tables above. "
        "Regenerate: `python -m pipeline.project.seeds run`, then `python -m pipeline.project.docs render`.",
        "",
    ]


def _seeds(argument: str, options: dict[str, str], root: Path) -> str:
    summary = seed_study(root)
    seeds = ", ".join(str(s) for s in summary["seeds"])
    claims = summary["claims"]
    if argument == "claims":
        lines = [
            f"Seeds {seeds}; each claim is the difference `better − worse` of the five-benchmark mean (or of the "
            "one benchmark named), paired by seed; it holds when the mean exceeds twice the std.",
            "",
            *_staleness(summary, root),
            "| claim | difference, mean ± std | per seed | > 2 std |",
            "| --- | ---: | --- | --- |",
        ]
        for c in claims:
            metric = c["metric"] + (f" ({c['benchmark']})" if c.get("benchmark") else "")
            per_seed = " / ".join(f"{d:+.1f}" for d in c["differences"].values())
            lines.append(
                f"| {c['what']}: `{c['better']}` − `{c['worse']}`, {metric} | {c['mean']:+.1f} ± {c['std']:.1f} "
                f"| {per_seed} | {'yes' if c['holds'] else '**no**'} |"
            )
    elif argument == "summary":  # the claims that hold, the first `top` in full; the others by name
        top = int(options.get("top", len(claims)))
        held = [c for c in claims if c["holds"]]
        lines = [*_staleness(summary, root), *(f"- {_claim_line(c)}." for c in held[:top])]
        if held[top:]:
            lines.append("- Also over 2 std: " + "; ".join(_claim_name(c) for c in held[top:]) + ".")
        lines.append(
            "- Within 2 std, so not claimed: " + "; ".join(_claim_name(c) for c in claims if not c["holds"]) + "."
        )
    else:
        raise ValueError(f"seeds:{argument}: choose seeds:claims or seeds:summary")
    return "\n" + "\n".join(lines) + "\n"


def _rerun(argument: str, options: dict[str, str], root: Path) -> str:
    stages = downstream_of_param(argument, load_stages(root / "dvc.yaml"))
    if not stages:
        raise ValueError(f"exp:{argument}: no stage of dvc.yaml reads this key")
    return ", ".join(f"`{name}`" for name in stages) + f" ({len(stages)} stages)"


def _dag(argument: str, options: dict[str, str], root: Path) -> str:
    return "\n" + mermaid(load_stages(root / "dvc.yaml")) + "\n"


def _lock_size(argument: str, options: dict[str, str], root: Path) -> str:
    """The bytes of every output ``dvc.lock`` records (each path once), in MiB."""
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    sizes = {out["path"]: out.get("size", 0) for stage in lock["stages"].values() for out in stage.get("outs", [])}
    return f"{sum(sizes.values()) / 2**20:,.0f} MiB"


def _commands(argument: str, options: dict[str, str], root: Path) -> str:
    """The ``ovseg`` commands, their purpose and example, read from ``stages/cli.py`` (pipeline/ never imports
    stages/, so its tables are read as literals)."""
    tables = {}
    for node in ast.parse((root / "stages" / "cli.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            tables[node.target.id] = ast.literal_eval(node.value)
    lines = ["| command | what it does | example |", "| --- | --- | --- |"]
    for name, (_, purpose) in tables["COMMANDS"].items():
        example = tables["EXAMPLES"].get(name, "").split("  #")[0].strip()
        lines.append(f"| `ovseg {name}` | {purpose} | {f'`{example}`' if example else ''} |")
    aliases = ", ".join(f"`{old}` for `{new}`" for old, new in tables["ALIASES"].items())
    return "\n" + "\n".join(lines) + f"\n\nFormer names, still accepted: {aliases}.\n"


def _count(argument: str, options: dict[str, str], root: Path) -> str:
    """``count:PATTERN``: how many stages of dvc.yaml match the glob; ``count:STAGE#deps=PATTERN``: how many of
    that stage's deps match it."""
    stages = load_stages(root / "dvc.yaml")
    name, _, deps = argument.partition("#deps=")
    if deps:
        (stage,) = (s for s in stages if s.name == name)
        return str(sum(fnmatch.fnmatchcase(dep, deps) for dep in stage.deps))
    return str(sum(fnmatch.fnmatchcase(s.name, name) for s in stages))


def last_commit(paths: Iterable[Path], root: Path) -> str:
    """The short hash and date of the last commit touching ``paths`` ('uncommitted' outside git or if none)."""
    result = subprocess.run(
        ["git", "log", "-1", "--format=%h %ad", "--date=short", "--", *map(str, paths)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "uncommitted"


def _timings(argument: str, options: dict[str, str], root: Path) -> str:
    lines = [
        "| stage timer (`metrics/timings/`) | seconds | commit | CPU, numerics, threads |",
        "| --- | ---: | --- | --- |",
    ]
    for name in TIMED_STAGES:
        files = sorted((root / TIMINGS).glob(f"{name}.json"))
        if not files:
            continue
        records = [json.loads(f.read_text(encoding="utf-8")) for f in files]
        numerics = records[0].get("numerics", {})
        machine = ", ".join(
            str(v) for v in (numerics.get("cpu", {}).get("model"), numerics.get("mode"), numerics.get("threads")) if v
        )
        label = name if len(files) == 1 else f"{name} ({len(files)} files, summed)"
        seconds = sum(r["seconds"] for r in records)
        commit = last_commit([f.relative_to(root) for f in files], root)
        lines.append(f"| `{label}` | {seconds:,.1f} | {commit} | {machine} |")
    return "\n" + "\n".join(lines) + "\n"


SOURCES: dict[str, Callable[[str, dict[str, str], Path], str]] = {
    "md": _markdown_section,
    "json": _json_number,
    "seeds": _seeds,
    "exp": _rerun,
    "dag": _dag,
    "timings": _timings,
    "lock": _lock_size,
    "cli": _commands,
    "count": _count,
}


def render_text(text: str, root: Path) -> str:
    """``text`` with every marked block filled from its source."""
    return MARKED.sub(lambda m: f"<!-- insert: {m['spec']} -->{insert(m['spec'], root)}<!-- /insert -->", text)


def full_history(root: Path) -> bool:
    """Whether ``root`` is a git repository with its whole history (a shallow clone cannot date a file)."""
    result = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=root, capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "false"


#: Kinds whose text depends on the git history (the commit that last changed a file).
NEEDS_HISTORY = ("timings",)


def differences(text: str, root: Path) -> Iterator[tuple[str, str, str]]:
    """``(spec, written, source)`` for each marked block of ``text`` whose text differs from its source (the blocks
    dated by git are not compared without the full history)."""
    history = None
    for match in MARKED.finditer(text):
        if parse_spec(match["spec"])[0] in NEEDS_HISTORY:
            history = full_history(root) if history is None else history
            if not history:
                continue
        expected = insert(match["spec"], root)
        if match["body"] != expected:
            yield match["spec"], match["body"], expected


def stale_blocks(root: Path) -> list[str]:
    """One line per marked block of the docs that differs from its source."""
    found = []
    for path in doc_files(root):
        for spec, whole_written, whole_expected in differences(path.read_text(encoding="utf-8"), root):
            written, expected = _first_difference(whole_written, whole_expected)
            found.append(
                f"{path.relative_to(root)}: {spec}: written {_short(written)!r}, source gives {_short(expected)!r}"
            )
    return found


def _first_difference(written: str, expected: str) -> tuple[str, str]:
    """The first line where two texts differ (the whole texts when they differ only in their line count)."""
    for a, b in zip(written.splitlines(), expected.splitlines()):
        if a != b:
            return a, b
    return written, expected


def _short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render(root: Path) -> list[Path]:
    """Rewrite every page whose blocks changed; the pages rewritten."""
    changed = []
    for path in doc_files(root):
        text = path.read_text(encoding="utf-8")
        new = render_text(text, root)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m pipeline.project.docs", __doc__)
    cli.epilog = "example: python -m pipeline.project.docs check"
    cli.add_argument("action", choices=("render", "check"), help="render: rewrite the blocks; check: report stale ones")
    cli.add_argument("--root", type=Path, default=Path(), help="the repository (default: the current folder)")
    args = cli.parse_args(argv)
    if args.action == "render":
        for path in render(args.root):
            print(f"docs: rewrote {path}")
        return 0
    stale = stale_blocks(args.root)
    for line in stale:
        print(line)
    if stale:
        print("docs: stale blocks; run python -m pipeline.project.docs render", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
