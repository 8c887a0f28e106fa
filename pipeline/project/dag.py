"""The DVC pipeline as data, read from ``dvc.yaml``: each stage's deps, outs and params, ``foreach`` expanded.

The docs derive from it what a params change reruns (:func:`downstream_of_param`) and draw the DAG
(:func:`mermaid`), so neither is written by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DVC_YAML = Path("dvc.yaml")
_TEMPLATE = re.compile(r"\$\{(key|item(?:\.[A-Za-z0-9_]+)?)\}")


@dataclass(frozen=True)
class Stage:
    """One stage of ``dvc.yaml`` (a ``foreach`` entry is ``name@key``): what it reads and writes."""

    name: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]  # outs, metrics and plots alike
    params: tuple[str, ...]


def load_stages(path: Path = DVC_YAML) -> list[Stage]:
    """Every stage of ``path``, in file order."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))["stages"]
    stages = []
    for name, body in spec.items():
        if "foreach" in body:
            for key, item in body["foreach"].items():
                stages.append(_stage(f"{name}@{key}", _expand(body["do"], key, item)))
        else:
            stages.append(_stage(name, body))
    return stages


def _expand(value: Any, key: str, item: Any) -> Any:
    """``value`` with ``${key}`` and ``${item.x}`` filled in (other ``${...}``, params, are left alone)."""
    if isinstance(value, str):

        def fill(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref == "key":
                return key
            found = item
            for part in ref.split(".")[1:]:
                found = found[part]
            return str(found)

        return _TEMPLATE.sub(fill, value)
    if isinstance(value, list):
        return [_expand(v, key, item) for v in value]
    if isinstance(value, dict):
        return {_expand(k, key, item): _expand(v, key, item) for k, v in value.items()}
    return value


def _paths(entries: Iterable[Any]) -> tuple[str, ...]:
    """The paths of a deps/outs/metrics/plots list, whose entries are a path or ``{path: options}``."""
    found: list[str] = []
    for entry in entries:
        found.extend(entry if isinstance(entry, dict) else [entry])
    return tuple(str(p).rstrip("/") for p in found)


def _stage(name: str, body: Mapping[str, Any]) -> Stage:
    outs = _paths([*body.get("outs", []), *body.get("metrics", []), *body.get("plots", [])])
    params: list[str] = []
    for entry in body.get("params", []):
        params.extend(entry if isinstance(entry, dict) else [entry])  # a {file: [keys]} entry: its keys' file
    return Stage(name, _paths(body.get("deps", [])), outs, tuple(params))


def _overlap(a: str, b: str) -> bool:
    """Whether two paths are the same or one holds the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _param_overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def upstream(stage: Stage, stages: Iterable[Stage]) -> list[Stage]:
    """The stages whose outputs ``stage`` reads."""
    return [s for s in stages if s is not stage and any(_overlap(d, o) for d in stage.deps for o in s.outs)]


def downstream_of_param(key: str, stages: list[Stage]) -> list[str]:
    """The stages a change of params key ``key`` (e.g. ``finetune.max_pairs``) can rerun, in dvc.yaml order:
    those that declare it (or its section), and every stage reading what they write. DVC skips a stage whose
    inputs come out bitwise unchanged, so this is what ``dvc exp run -S key=...`` reruns at most."""
    reached = {s.name for s in stages if any(_param_overlap(key, p) for p in s.params)}
    grew = True
    while grew:
        grew = False
        for stage in stages:
            if stage.name not in reached and any(u.name in reached for u in upstream(stage, stages)):
                reached.add(stage.name)
                grew = True
    return [s.name for s in stages if s.name in reached]


def edges(stages: list[Stage]) -> list[tuple[str, str]]:
    """``(upstream, downstream)`` for every stage reading another's output, less the edges a longer path implies
    (world → evaluate when world → propose → evaluate), so that the picture stays readable."""
    direct = {s.name: {u.name for u in upstream(s, stages)} for s in stages}

    def ancestors(name: str) -> set[str]:
        found, todo = set(), list(direct[name])
        while todo:
            if (node := todo.pop()) not in found:
                found.add(node)
                todo.extend(direct[node])
        return found

    kept = []
    for stage in stages:
        implied = set().union(*(ancestors(u) for u in direct[stage.name]))
        kept += [(u, stage.name) for s in stages if (u := s.name) in direct[stage.name] - implied]
    return kept


def mermaid(stages: list[Stage]) -> str:
    """A Mermaid flowchart of the stages and what each reads (edges implied by a longer path left out)."""
    ids = {s.name: re.sub(r"\W", "_", s.name) for s in stages}
    lines = ["```mermaid", "flowchart LR"]
    lines += [f'  {ids[s.name]}["{s.name}"]' for s in stages]
    lines += [f"  {ids[u]} --> {ids[v]}" for u, v in edges(stages)]
    lines.append("```")
    return "\n".join(lines)
