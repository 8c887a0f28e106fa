"""What the docs quote that must exist: commands (``ovseg …``, ``python -m …``), their flags, and params keys.

Pure text functions; ``tests/pipeline/project/test_docs.py`` checks each quote against the code and params.yaml.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

FENCE = re.compile(r"^```[^\n]*\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
COMMAND_START = re.compile(r"(?:^|\s)(ovseg\b|python3? -m [\w.]+)")
FLAG = re.compile(r"^--?[A-Za-z][\w-]*")
PARAM_KEY = re.compile(r"^[a-z][a-z0-9_]*(?:\.[A-Za-z0-9_]+)+$")
FILE_SUFFIXES = (".json", ".py", ".md", ".csv", ".png", ".yaml", ".parquet", ".safetensors", ".txt", ".tif", ".lock")


@dataclass(frozen=True)
class Quote:
    """A quoted command line: ``program`` is ``ovseg`` or a module run with ``python -m``."""

    program: str
    args: tuple[str, ...]
    text: str

    @property
    def command(self) -> str | None:
        """The ``ovseg`` subcommand (None for ``ovseg --help`` and for modules)."""
        if self.program != "ovseg" or not self.args or self.args[0].startswith("-"):
            return None
        return self.args[0]

    @property
    def flags(self) -> list[str]:
        """The options the line passes (``--out``, ``-o``), without their values."""
        return [match.group(0) for arg in self.args if (match := FLAG.match(arg))]


def code_lines(text: str) -> Iterator[str]:
    """The lines of the fenced blocks (continuations joined) and the inline code spans outside them."""
    for block in FENCE.finditer(text):
        yield from block["body"].replace("\\\n", " ").splitlines()
    outside = FENCE.sub("", text)
    yield from (match.group(1) for match in INLINE.finditer(outside))


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in prose: words are enough to find flags
        return line.split()


def quoted_commands(text: str) -> list[Quote]:
    """Every ``ovseg …`` and ``python -m …`` command line in ``text``'s code (one per ``&&``, ``|`` or ``;`` part)."""
    found = []
    for line in code_lines(text):
        for part in re.split(r"&&|\|\||;|\s\|\s", line):
            match = COMMAND_START.search(part)
            if match is None:
                continue
            words = _split(part[match.start(1) :])
            if not words:
                continue
            if words[0] == "ovseg":
                program, args = "ovseg", words[1:]
            else:
                program, args = words[2], words[3:]
            if any(ch in program + " ".join(args[:1]) for ch in "<>[]{}") or program.endswith("."):
                continue  # a placeholder such as `python -m stages.<name>`
            found.append(Quote(program, tuple(args), part.strip()))
    return found


def quoted_param_keys(text: str, sections: Iterable[str]) -> set[str]:
    """The dotted params keys ``text`` quotes: inline code such as ``finetune.max_pairs`` whose first part is a
    params section, and every ``-S key=value`` of a ``dvc exp run``."""
    sections = set(sections)
    keys = set()
    for span in code_lines(text):
        words = span.split()
        for i, word in enumerate(words[:-1]):
            if word == "-S" and PARAM_KEY.match(key := words[i + 1].split("=")[0]):
                keys.add(key)
        candidate = span.strip()
        if PARAM_KEY.match(candidate) and candidate.split(".")[0] in sections and not candidate.endswith(FILE_SUFFIXES):
            keys.add(candidate)
    return keys


def has_key(params: Mapping[str, Any], key: str) -> bool:
    """Whether the dotted ``key`` names a value of the nested ``params``."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
