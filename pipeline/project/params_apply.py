"""Apply a params override: merge a YAML file of changed keys into params.yaml, in place.

    ovseg params-apply configs/real-coco-vit-b16.yaml [--params params.yaml] [--dry]

Mappings merge key by key; any other value (lists included) replaces the old one. Every
key of the override must already exist in params.yaml: a misspelt key would otherwise
be written and silently ignored. Only the changed values are rewritten, in place: the
rest of the file (comments, layout, number formats) stays byte for byte, and a value
keeps the spelling it has in the override (``5.0e-6`` stays ``5.0e-6``). A value that
spans several lines in params.yaml cannot be replaced this way and is refused.
``--dry`` prints the changes and writes nothing; otherwise the file is replaced atomically.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from core.cli import parser
from core.io import atomic_write_text

PARAMS = Path("params.yaml")


@dataclass(frozen=True)
class Edit:
    line: int  # 0-based line of params.yaml
    column: int  # where the old value starts
    end: int  # where it ends (before any comment)
    text: str  # the new value, one line of YAML flow text


def _positions(text: str) -> Any:
    """The text parsed by ruamel.yaml, only for the line/column of each value (``.lc``) and the
    flow style of mappings (``.fa``); values themselves are read with PyYAML, as the stages do."""
    return YAML().load(text)


def _flow_text(value: Any) -> str:
    """``value`` as one line of YAML flow text (``5e-06``, ``[a, b]``, ``{k: 1}``, ``null``)."""
    text = yaml.safe_dump([value], default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text[1:-1]  # drop the list brackets around the single item


def _value_span(line: str, column: int, value: Any) -> int | None:
    """End column of the YAML text of ``value`` starting at ``column`` of ``line``, before any
    comment; None when it does not end on this line."""
    rest = line[column:].rstrip("\n")
    candidates = [i for i, ch in enumerate(rest) if ch == "#" and (i == 0 or rest[i - 1] in " \t")]
    for end in [*candidates, len(rest)]:
        piece = rest[:end].rstrip()
        try:
            if piece and yaml.safe_load(piece) == value:
                return column + len(piece)
        except yaml.YAMLError:
            continue
    return None


def _spelling(node: CommentedMap, key: Any, lines: list[str], value: Any) -> str | None:
    """How the override file writes ``value`` (None if over several lines)."""
    line, column = node.lc.value(key)
    end = _value_span(lines[line], column, value)
    return None if end is None else lines[line][column:end]


def plan_edits(params_text: str, override_text: str) -> tuple[list[Edit], list[str]]:
    """The edits that apply the override to the params text, and ``key: old -> new`` lines."""
    base, base_nodes = yaml.safe_load(params_text), _positions(params_text)
    patch, patch_nodes = yaml.safe_load(override_text), _positions(override_text)
    if not isinstance(base, dict) or not isinstance(patch, (dict, type(None))):
        raise ValueError("both files must hold a YAML mapping")
    lines = params_text.splitlines(keepends=True)
    patch_lines = override_text.splitlines(keepends=True)
    edits: list[Edit] = []
    changes: list[str] = []

    def replace(node: CommentedMap, key: Any, dotted: str, old: Any, new: Any, spelling: str | None) -> None:
        if old == new:
            return
        line, column = node.lc.value(key)
        end = _value_span(lines[line], column, old)
        if end is None:
            raise ValueError(f"{dotted}: its value spans several lines of the params file; change it by hand")
        edits.append(Edit(line, column, end, spelling or _flow_text(new)))
        changes.append(f"{dotted}: {_flow_text(old)} -> {_flow_text(new)}")

    def merge(old_map: dict, nodes: CommentedMap, new_map: dict, new_nodes: CommentedMap, path: str) -> None:
        for key, value in new_map.items():
            dotted = f"{path}.{key}" if path else str(key)
            if key not in old_map:
                raise KeyError(f"{dotted}: not a key of the params file (known there: {', '.join(map(str, old_map))})")
            old = old_map[key]
            if isinstance(value, dict) and isinstance(old, dict):
                if nodes[key].fa.flow_style():  # a one-line {k: v} mapping: rewritten whole
                    replace(nodes, key, dotted, old, {**old, **value}, None)
                else:
                    merge(old, nodes[key], value, new_nodes[key], dotted)
            else:
                replace(nodes, key, dotted, old, value, _spelling(new_nodes, key, patch_lines, value))

    merge(base, base_nodes, patch or {}, patch_nodes, "")
    return edits, changes


def apply_edits(params_text: str, edits: list[Edit]) -> str:
    """The text with each value replaced; a comment after it keeps its column where there is room."""
    lines = params_text.splitlines(keepends=True)
    for edit in edits:
        line = lines[edit.line]
        head, tail = line[: edit.column], line[edit.end :]
        gap = len(tail) - len(tail.lstrip(" \t"))
        rest = tail.lstrip(" \t")
        if rest.startswith("#"):
            width = max(1, gap + (edit.end - edit.column) - len(edit.text))
            lines[edit.line] = head + edit.text + " " * width + rest
        else:
            lines[edit.line] = head + edit.text + tail
    return "".join(lines)


def apply_override(params_text: str, override_text: str) -> tuple[str, list[str]]:
    """The new params text and the list of changes (``KeyError``/``ValueError`` naming the key)."""
    edits, changes = plan_edits(params_text, override_text)
    return apply_edits(params_text, edits), changes


def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg params-apply", __doc__)
    cli.add_argument("override", type=Path, help="YAML file of the keys to change")
    cli.add_argument("--params", type=Path, default=PARAMS, help=f"params file to rewrite (default: {PARAMS})")
    cli.add_argument("--dry", action="store_true", help="print the changes, write nothing")
    args = cli.parse_args(argv)
    try:
        for path in (args.override, args.params):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: file not found")
        text, changes = apply_override(
            args.params.read_text(encoding="utf-8"), args.override.read_text(encoding="utf-8")
        )
    except (FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"params-apply: {args.override}: {message}", file=sys.stderr)
        return 2
    except (YAMLError, yaml.YAMLError) as exc:
        print(f"params-apply: not valid YAML: {exc}", file=sys.stderr)
        return 2
    for line in changes:
        print(f"  {line}")
    if args.dry:
        print(f"params-apply: {len(changes)} changes to {args.params} (dry run, nothing written)")
        return 0
    atomic_write_text(args.params, text)
    print(f"params-apply: {len(changes)} changes written to {args.params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
