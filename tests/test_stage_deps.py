"""Deps that cannot drift: every project file a DVC stage runs is one of its declared deps.

For each stage of ``dvc.yaml`` (``foreach`` and ``matrix`` stages expanded, ``${...}`` read
from ``params.yaml``) the files its command runs are: the module after ``python -m``, every
project module it imports, transitively (read statically with ``ast``: absolute, relative and
function-level imports, the ``__init__.py`` of each package on a dotted path), and the package
data those modules read (see :func:`package_data`). A file counts as declared when a dep equals
it or is a folder containing it. A file that no dep covers means ``dvc repro`` would not rerun
the stage when that file changes.
"""

from __future__ import annotations

import ast
import itertools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = ROOT / "dvc.yaml"


# --- dvc.yaml: stages, foreach/matrix expanded, ${...} interpolated ---------------------------------

_EXPR = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def _lookup(expr: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in expr.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def interpolate(value: Any, context: dict[str, Any]) -> Any:
    """``value`` with every ``${a.b}`` replaced from ``context``; a string that is one whole
    expression becomes the object itself (a list stays a list), as DVC does."""
    if isinstance(value, str):
        whole = _EXPR.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), context)
        return _EXPR.sub(lambda m: str(_lookup(m.group(1), context)), value)
    if isinstance(value, list):
        return [interpolate(v, context) for v in value]
    if isinstance(value, dict):
        return {interpolate(k, context): interpolate(v, context) for k, v in value.items()}
    return value


def expand_stages(dvc_yaml: Path, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The stages of ``dvc_yaml`` by their DVC names (``name@key``, ``name@v1-v2`` for matrices)."""
    stages: dict[str, dict[str, Any]] = {}
    for name, stage in (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}).items():
        if "foreach" in stage:
            items = interpolate(stage["foreach"], params)
            pairs = items.items() if isinstance(items, dict) else ((i, i) for i in items)
            for key, item in pairs:
                stages[f"{name}@{key}"] = interpolate(stage["do"], {**params, "key": key, "item": item})
        elif "matrix" in stage:
            axes = {axis: interpolate(values, params) for axis, values in stage["matrix"].items()}
            body = {k: v for k, v in stage.items() if k != "matrix"}
            for combo in itertools.product(*axes.values()):
                item = dict(zip(axes, combo))
                stages[f"{name}@{'-'.join(map(str, combo))}"] = interpolate(body, {**params, "item": item})
        else:
            stages[name] = interpolate(stage, params)
    return stages


def command_modules(cmd: str | list[str]) -> list[str]:
    """The modules a stage command runs with ``python -m MODULE`` (or ``python path.py``, as a path)."""
    found = []
    for line in [cmd] if isinstance(cmd, str) else cmd:
        words = shlex.split(line)
        for i, word in enumerate(words[:-1]):
            if re.fullmatch(r"python[0-9.]*", Path(word).name):
                if words[i + 1] == "-m" and i + 2 < len(words):
                    found.append(words[i + 2])
                elif words[i + 1].endswith(".py"):
                    found.append(words[i + 1])
    return found


# --- imports: the transitive closure of project modules --------------------------------------------


def module_files(root: Path, dotted: str) -> list[Path] | None:
    """The files importing ``dotted`` runs inside ``root`` (each package's ``__init__.py`` on the
    way, then the module), or None when it is not a project module."""
    parts = dotted.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        here = root.joinpath(*parts[:i])
        if i == len(parts) and here.with_suffix(".py").is_file():
            files.append(here.with_suffix(".py"))
        elif here.is_dir():
            if (here / "__init__.py").is_file():
                files.append(here / "__init__.py")
        else:
            return None
    return files


def _package_parts(root: Path, path: Path) -> list[str]:
    return list(path.relative_to(root).parent.parts)  # a module's package (an __init__.py is its own)


def imported_names(root: Path, path: Path, tree: ast.Module) -> set[str]:
    """Dotted names ``path`` may import (``from x import y`` gives ``x`` and ``x.y``; relative
    imports resolved), anywhere in the file, ``from __future__`` left out."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            base = node.module.split(".") if node.module else []
            if node.level:
                package = _package_parts(root, path)
                if node.level - 1 > len(package):
                    continue
                base = package[: len(package) - (node.level - 1)] + base
            if not base:
                continue
            names.add(".".join(base))
            names.update(".".join(base + [alias.name]) for alias in node.names if alias.name != "*")
    return names


# --- package data: non-Python files a module reads next to itself ----------------------------------

_SAME_CALLS = {
    "Path",
    "PurePath",
    "PosixPath",
    "resolve",
    "absolute",
    "abspath",
    "realpath",
    "normpath",
    "expanduser",
    "fspath",
    "str",
}


class _PathValue:
    """A path known statically: ``base`` (absolute), optionally a glob ``pattern`` below it;
    ``named`` once a string constant (or a package's own resources) made it name data;
    ``own`` for ``resources.files(package)``: the package folder's own data files."""

    def __init__(self, base: Path, pattern: str | None = None, named: bool = False, own: bool = False):
        self.base, self.pattern, self.named, self.own = base, pattern, named, own

    def join(self, part: ast.expr) -> _PathValue | None:
        if self.pattern is not None:
            return None
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            return _PathValue(self.base / part.value, named=True)
        if isinstance(part, ast.JoinedStr):  # f"{name}.json" -> "*.json"
            glob = "".join(v.value if isinstance(v, ast.Constant) else "*" for v in part.values)
            return _PathValue(self.base, glob, named=True)
        return None


def _func_name(call: ast.Call) -> str | None:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)


class _Evaluator:
    """Follows ``__file__`` (``Path(__file__).resolve().parent / "x"``, ``os.path.dirname``,
    ``.parents[n]``, ``joinpath``, ``os.path.join``, names assigned such values) and
    ``importlib.resources.files(__name__ | "a.b")`` to the paths a module reads."""

    def __init__(self, root: Path, path: Path):
        self.root, self.path, self.env = root, path, {}

    def __call__(self, node: ast.AST) -> _PathValue | None:
        if isinstance(node, ast.Name):
            return _PathValue(self.path) if node.id == "__file__" else self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            inner = self(node.value)
            if inner is not None and inner.pattern is None and node.attr == "parent":
                return _PathValue(inner.base.parent)
            return None
        if isinstance(node, ast.Subscript):  # Path(__file__).parents[1]
            inner = self(node.value.value) if isinstance(node.value, ast.Attribute) else None
            index = node.slice.value if isinstance(node.slice, ast.Constant) else None
            if inner is not None and node.value.attr == "parents" and isinstance(index, int):
                parents = inner.base.parents
                return _PathValue(parents[index]) if index < len(parents) else None
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left = self(node.left)
            return left.join(node.right) if left is not None else None
        if isinstance(node, ast.Call):
            return self._call(node)
        return None

    def _call(self, node: ast.Call) -> _PathValue | None:
        name = _func_name(node)
        owner = self(node.func.value) if isinstance(node.func, ast.Attribute) else None
        args = node.args
        if name == "files" and len(args) == 1:  # importlib.resources.files(...)
            arg = args[0]
            if isinstance(arg, ast.Name) and arg.id in ("__name__", "__package__"):
                return _PathValue(self.path.parent, named=True, own=True)
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                folder = self.root.joinpath(*arg.value.split("."))
                return _PathValue(folder, named=True, own=True) if folder.is_dir() else None
            return None
        if owner is not None and owner.pattern is None and name in ("glob", "rglob") and len(args) == 1:
            pattern = args[0].value if isinstance(args[0], ast.Constant) else None
            if isinstance(pattern, str):
                return _PathValue(owner.base, pattern if name == "glob" else "**/" + pattern, named=True)
            return None
        if owner is not None and name == "joinpath":
            value: _PathValue | None = owner
            for arg in args:
                value = value.join(arg) if value is not None else None
            return value
        if owner is not None and name in ("resolve", "absolute", "expanduser"):
            return owner
        if name == "join" and args:  # os.path.join(HERE, "data", "x.json")
            value = self(args[0])
            for arg in args[1:]:
                value = value.join(arg) if value is not None else None
            return value
        if name == "dirname" and len(args) == 1:
            inner = self(args[0])
            return _PathValue(inner.base.parent) if inner is not None and inner.pattern is None else None
        if name in _SAME_CALLS and len(args) == 1:
            return self(args[0])
        return None


def _is_package(folder: Path) -> bool:
    return (folder / "__init__.py").is_file()


def _data_files(folder: Path, recursive: bool = True) -> set[Path]:
    """Files under ``folder`` that are data: not Python, not caches, not inside a sub-package."""
    found = set()
    for entry in folder.iterdir():
        if entry.name == "__pycache__" or entry.suffix in (".py", ".pyc"):
            continue
        if entry.is_file():
            found.add(entry)
        elif entry.is_dir() and recursive and not _is_package(entry):
            found |= _data_files(entry)
    return found


def _inside(root: Path, path: Path) -> bool:
    return path.is_relative_to(root) and not {".venv", "__pycache__"} & set(path.relative_to(root).parts)


def _clean_relative(text: str) -> bool:
    if not text or "\n" in text or len(text) > 200 or text.startswith(("/", "~")):
        return False
    return all(part not in ("", ".", "..") for part in text.split("/"))


def package_data(root: Path, path: Path, tree: ast.Module | None = None) -> set[Path]:
    """The non-Python files inside ``root`` that module ``path`` reads as package data:

    * paths built from ``__file__`` (``Path(__file__).resolve().parent.parent / "configs"``,
      ``os.path.join(os.path.dirname(__file__), "x.json")``, also through assigned names, and
      f-strings as globs: ``CONFIG_DIR / f"{name}.json"``);
    * the data files of its own folder when it calls ``importlib.resources.files(__name__)``;
    * any string constant naming an existing non-Python sibling file or data folder of the module.

    A folder counts as all its data files (recursively, sub-packages left to the imports; a
    package's own resources non-recursively)."""
    nodes = list(ast.walk(tree or ast.parse(path.read_text(encoding="utf-8"))))
    named = [
        _PathValue(path.parent / node.value, named=True)
        for node in nodes
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _clean_relative(node.value)
    ]
    anchored = any(
        (isinstance(node, ast.Name) and node.id == "__file__")
        or (isinstance(node, ast.Call) and _func_name(node) == "files")
        for node in nodes
    )
    if anchored:  # only then is following paths worth it
        evaluate = _Evaluator(root, path)
        for _ in range(2):  # names assigned from names assigned earlier
            for node in nodes:
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    value = evaluate(node.value)
                    for target in targets:
                        if isinstance(target, ast.Name) and value is not None:
                            evaluate.env[target.id] = value
        for node in nodes:
            if isinstance(node, ast.expr) and not isinstance(node, ast.Name):
                value = evaluate(node)
                if value is not None and value.named:
                    named.append(value)

    found: set[Path] = set()
    for value in named:
        base = Path(str(value.base))
        try:
            if value.pattern is not None:
                if base.is_dir():
                    found |= {p for p in base.glob(value.pattern) if p.is_file()}
                continue
            if value.own and base.is_dir():  # resources.files(__name__): the package's own data files
                found |= _data_files(base, recursive=False)
            elif base.is_file() and base.suffix not in (".py", ".pyc"):
                found.add(base)
            elif base.is_dir() and not _is_package(base):
                found |= _data_files(base)
        except OSError:  # a string constant too odd to be a path
            continue
    return {p for p in found if _inside(root, p)}


# --- the closure and the check ---------------------------------------------------------------------

_PARSED: dict[tuple[Path, int, int], tuple[set[str], set[Path]]] = {}


def _scan(root: Path, path: Path) -> tuple[set[str], set[Path]]:
    """(imported names, package data) of ``path``, cached while the file is unchanged."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _PARSED[key] = (imported_names(root, path, tree), package_data(root, path, tree))
    return _PARSED[key]


def required_files(root: Path, module: str, _resolved: dict[str, list[Path] | None] | None = None) -> set[str]:
    """The files (relative to ``root``, POSIX) that ``python -m module`` runs or reads: its
    transitive project imports with their packages' ``__init__.py`` files, and their package data."""
    resolved = {} if _resolved is None else _resolved  # dotted name -> module_files, shared by stages
    start = [root / module] if module.endswith(".py") else module_files(root, module)
    if not start or not start[-1].is_file():
        raise FileNotFoundError(f"{module}: no such project module under {root}")
    seen: set[Path] = set()
    data: set[Path] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names, files = _scan(root, path)
        data |= files
        for name in names:
            if name not in resolved:
                resolved[name] = module_files(root, name)
            todo.extend(resolved[name] or [])
    return {p.relative_to(root).as_posix() for p in seen | data}


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == dep or file.startswith(dep + "/") for dep in deps)


def _normal(dep: str) -> str:
    dep = dep.strip().rstrip("/")
    return dep[2:] if dep.startswith("./") else dep


def load_params(dvc_yaml: Path, root: Path) -> dict[str, Any]:
    """``params.yaml`` next to ``dvc_yaml``, else the one in ``root`` (what ``${...}`` reads)."""
    for candidate in (dvc_yaml.parent / "params.yaml", root / "params.yaml"):
        if candidate.is_file():
            return yaml.safe_load(candidate.read_text()) or {}
    return {}


def undeclared(dvc_yaml: Path, root: Path) -> dict[str, list[str]]:
    """Per stage of ``dvc_yaml`` (expanded), the files its command needs (:func:`required_files`)
    that no declared dep covers; stages with none are left out. Paths are relative to ``root``."""
    missing: dict[str, list[str]] = {}
    resolved: dict[str, list[Path] | None] = {}
    closures: dict[str, set[str]] = {}
    for name, stage in expand_stages(dvc_yaml, load_params(dvc_yaml, root)).items():
        deps = [_normal(d) for d in stage.get("deps") or [] if isinstance(d, str)]
        needed: set[str] = set()
        for module in command_modules(stage.get("cmd", "")):
            if module not in closures:
                closures[module] = required_files(root, module, resolved)
            needed |= closures[module]
        files = sorted(f for f in needed if not _covered(f, deps))
        if files:
            missing[name] = files
    return missing


def _message(missing: dict[str, list[str]]) -> str:
    return "\n".join(f"stage {name}: not in deps: {', '.join(files)}" for name, files in missing.items())


# --- tests -----------------------------------------------------------------------------------------

STAGES = list(expand_stages(DVC_YAML, load_params(DVC_YAML, ROOT)))


@pytest.fixture(scope="module")
def real_missing() -> dict[str, list[str]]:
    """:func:`undeclared` of the real dvc.yaml, computed once for all stages."""
    return undeclared(DVC_YAML, ROOT)


@pytest.mark.parametrize("stage", STAGES)
def test_every_file_a_stage_runs_is_a_declared_dep(stage: str, real_missing: dict[str, list[str]]) -> None:
    missing = {name: files for name, files in real_missing.items() if name == stage}
    assert not missing, _message(missing)


def test_stages_are_expanded_from_foreach_and_matrix() -> None:
    stages = expand_stages(DVC_YAML, load_params(DVC_YAML, ROOT))
    assert {"prompt_tune@base", "prompt_tune@ft"} <= stages.keys()
    assert stages["prompt_tune@ft"]["cmd"] == "python -m stages.clip_adaptation prompt_tune ft"
    assert "artifacts/clip_ft" in stages["prompt_tune@ft"]["deps"]
    assert {"evaluate@ft_mpt", "evaluate@zsseg", "evaluate_references", "propose"} <= stages.keys()
    assert "artifacts/clip_ft_mpt" in stages["evaluate@ft_mpt"]["deps"]
    assert "artifacts/clip_prompts" in stages["evaluate@zsseg"]["deps"]
    assert "metrics/eval/zsseg" in str(stages["evaluate@zsseg"]["outs"])
    assert not any("${" in str(stage) for stage in stages.values())


def _without_dep(tmp_path: Path, stage: str, dep: str) -> Path:
    """A copy of dvc.yaml with ``dep`` removed from ``stage`` (edited as text, so ``${...}`` and
    comments stay)."""
    lines = DVC_YAML.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {stage}:"))
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"  \S", lines[i])), len(lines))
    hits = [i for i in range(start, end) if re.fullmatch(rf"\s+- {re.escape(dep)}/?\s*", lines[i])]
    assert len(hits) == 1, f"{dep} is not one dep of {stage} in dvc.yaml"
    del lines[hits[0]]
    edited = tmp_path / "dvc.yaml"
    edited.write_text("".join(lines))
    return edited


@pytest.mark.parametrize(
    ("stage", "dep", "expected_stage", "expected_files"),
    [
        ("world", "stages/world.py", "world", ["stages/world.py"]),
        (
            "evaluate",
            "model",
            "evaluate@ft_mpt",
            [
                "model/clip.py",
                "model/configs/ovseg-tiny-vit.json",
                "model/templates/vild.json",
                "model/proposer/config.py",
            ],
        ),
        ("world", "pipeline/datasets", "world", ["pipeline/datasets/vocab/ade150.json"]),
    ],
)
def test_removing_a_dep_names_the_files_it_covered(
    tmp_path: Path,
    real_missing: dict[str, list[str]],
    stage: str,
    dep: str,
    expected_stage: str,
    expected_files: list[str],
) -> None:
    expected_stage = expected_stage.format(benchmark=load_params(DVC_YAML, ROOT)["data"]["benchmarks"][0])
    assert not real_missing.get(expected_stage), "the real dvc.yaml must pass first"
    missing = undeclared(_without_dep(tmp_path, stage, dep), ROOT)
    assert expected_stage in missing, missing
    for file in expected_files:
        assert file in missing[expected_stage], f"{file} not named: {missing[expected_stage]}"
    assert all(f == dep or f.startswith(dep + "/") for f in missing[expected_stage])


def test_the_real_package_data_is_found() -> None:
    def data(module: str) -> set[str]:
        path = ROOT / module
        return {p.relative_to(ROOT).as_posix() for p in package_data(ROOT, path)}

    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "model" / "configs").glob("*.json")}
    assert configs and data("model/clip.py") >= configs  # Path(__file__).resolve().parent / "configs"
    assert data("model/proposer/config.py") >= configs  # .parent.parent / "configs"
    assert "model/templates/vild.json" in data("model/text.py")  # .parent / "templates"
    vocab = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pipeline/datasets/vocab").glob("*.json")}
    assert vocab and data("pipeline/datasets/vocab/__init__.py") == vocab  # resources.files(__name__)
    # _REPO_ROOT = Path(__file__).resolve().parent.parent names no data: the repository's own
    # configs/ (not model/configs) must not be taken for model/clip.py's
    assert not any(f.startswith("configs/") for f in data("model/clip.py"))


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_closure_and_data_on_a_synthetic_package(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "params.yaml": "names: [one, two]\n",
            "dvc.yaml": (
                "stages:\n"
                "  run:\n"
                "    foreach: ${names}\n"
                "    do:\n"
                "      cmd: python -m app.main ${item}\n"
                "      deps:\n"
                "        - app/main.py\n"
                "        - data/input_${item}\n"
            ),
            "app/__init__.py": "",
            "app/main.py": "from __future__ import annotations\nimport json\nfrom lib.sub import work\n",
            "lib/__init__.py": '"""Package."""\n',
            "lib/sub/__init__.py": "from .work import work\n",
            "lib/sub/work.py": (
                "from pathlib import Path\n"
                "HERE = Path(__file__).parent\n"
                "def work(name):\n"
                "    from ..helpers import util  # relative, inside a function\n"
                "    from . import tables\n"
                "    return util(HERE / 'table.json', HERE.parent / f'shared/{name}.csv')\n"
            ),
            "lib/sub/tables.py": (
                "import os\nfrom pathlib import Path\n"
                "ROWS = os.path.join(os.path.dirname(__file__), 'rows')\n"
                "CSVS = sorted(Path(__file__).parent.glob('*.csv'))\n"
            ),
            "lib/sub/b.csv": "b",
            "lib/sub/table.json": "{}",
            "lib/sub/rows/a.txt": "a",
            "lib/sub/unused.json": "{}",
            "lib/shared/x.csv": "x",
            "lib/shared/y.txt": "y",
            "lib/helpers.py": "import numpy\nfrom importlib import resources\n"
            "def util(*a):\n    return resources.files(__name__).joinpath('lookup.txt')\n",
            "lib/lookup.txt": "l",
            "lib/untouched.py": "",
        },
    )
    expected = {
        "app/__init__.py",
        "app/main.py",
        "lib/__init__.py",
        "lib/sub/__init__.py",
        "lib/sub/work.py",
        "lib/sub/tables.py",
        "lib/helpers.py",
        "lib/sub/table.json",
        "lib/sub/rows/a.txt",
        "lib/sub/b.csv",
        "lib/shared/x.csv",
        "lib/lookup.txt",
    }
    assert required_files(tmp_path, "app.main") == expected

    missing = undeclared(tmp_path / "dvc.yaml", tmp_path)
    assert missing.keys() == {"run@one", "run@two"}
    assert missing["run@one"] == sorted(expected - {"app/main.py"})

    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text() + "        - app/__init__.py\n        - lib\n")
    assert undeclared(dvc_yaml, tmp_path) == {}
