"""core.paths against dvc.yaml: each path a stage names is one of that stage's deps or outputs.

A stage names a path as ``paths.NAME`` or ``paths.stage_metrics("x")`` / ``paths.loss_plot(NAME)``
/ ``paths.adapter("x")`` (arguments: string literals or module-level string constants). The
check reads the stage modules statically, so renaming a path in ``dvc.yaml`` without renaming it
in :mod:`core.paths` (or the reverse) fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from core import paths

ROOT = Path(__file__).resolve().parents[2]
#: Paths core.paths names that no stage declares, with the reason.
UNDECLARED = {paths.TIMINGS: "wall times differ run to run; core.timing keeps them out of DVC's outputs"}
_KEYS = ("deps", "outs", "metrics", "plots")
_ITEM = re.compile(r"\$\{\s*(key|item\.\w+)\s*\}")


def _entries(values: list) -> list[str]:
    """The path strings of a deps/outs/metrics/plots list (entries are strings or one-key mappings)."""
    return [next(iter(value)) if isinstance(value, dict) else value for value in values or []]


def declared_paths(dvc_yaml: Path) -> dict[str, tuple[str, set[PurePosixPath]]]:
    """Per stage (``name``, or ``name@key`` for each key of a ``foreach``): the module its command runs and its
    declared paths."""
    stages = {}
    for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
        items = stage.get("foreach", {None: {}})
        body = stage.get("do", stage)
        for key, item in items.items():

            def fill(text: str, key: str = key, item: dict = item) -> str:
                return _ITEM.sub(lambda m: str(key if m.group(1) == "key" else item[m.group(1)[5:]]), text)

            module = re.search(r"python -m ([\w.]+)", body["cmd"]).group(1)
            declared = {PurePosixPath(fill(entry)) for field in _KEYS for entry in _entries(body.get(field))}
            stages[name if key is None else f"{name}@{key}"] = (module, declared)
    return stages


def _string_constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def named_paths(module_file: Path) -> set[PurePosixPath]:
    """The core.paths paths a module names: its ``paths.NAME`` and ``paths.function(constant)``."""
    tree = ast.parse(module_file.read_text())
    constants = _string_constants(tree)
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "paths"
        ):
            args = [
                arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", None))
                for arg in node.args
            ]
            if all(isinstance(arg, str) for arg in args):
                found.add(PurePosixPath(getattr(paths, node.func.attr)(*args)))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "paths":
            value = getattr(paths, node.attr)
            if isinstance(value, Path):
                found.add(PurePosixPath(value))
    return found


def _related(path: PurePosixPath, declared: set[PurePosixPath]) -> bool:
    """``path`` is declared, lies inside a declared folder, or is a folder holding declared paths."""
    return any(path == other or other in path.parents or path in other.parents for other in declared)


def misplaced_paths(dvc_yaml: Path, root: Path = ROOT) -> list[str]:
    """Each path a stage module names that none of the stages running it declares, as ``module: path``.

    A module run by several stages (a ``foreach``, or ``stages.evaluate``) names the paths of all of them.
    """
    declared_by_module: dict[str, set[PurePosixPath]] = {}
    for module, declared in declared_paths(dvc_yaml).values():
        declared_by_module.setdefault(module, set()).update(declared)
    problems = []
    for module, declared in sorted(declared_by_module.items()):
        module_file = root / Path(*module.split(".")).with_suffix(".py")
        for path in sorted(named_paths(module_file)):
            if path not in UNDECLARED and not _related(path, declared):
                problems.append(f"{module}: {path}")
    return problems


def test_every_path_a_stage_names_is_one_of_its_deps_or_outputs() -> None:
    assert misplaced_paths(ROOT / "dvc.yaml") == []


def test_every_path_constant_is_declared_by_some_stage() -> None:
    declared = set().union(*(found for _, found in declared_paths(ROOT / "dvc.yaml").values()))
    constants = {name: PurePosixPath(value) for name, value in vars(paths).items() if isinstance(value, Path)}
    assert {
        name for name, path in constants.items() if path not in UNDECLARED and not _related(path, declared)
    } == set()


def test_stages_name_the_paths_they_use() -> None:
    """The check has something to check: the Beam and evaluation stages name their paths here."""
    stages = declared_paths(ROOT / "dvc.yaml")
    assert {
        paths.WORLD_MANIFEST,
        paths.NOUNS,
        paths.PAIRS,
        paths.MINE_REJECTS,
        paths.stage_metrics("mine"),
        paths.MINE_PLOTS,
    } <= named_paths(ROOT / "stages/mine.py")
    assert stages["mine"][0] == "stages.mine" and PurePosixPath("data/pairs") in stages["mine"][1]
    assert stages["prompt_tune@ft"][1] >= {PurePosixPath("artifacts/clip_ft"), PurePosixPath("artifacts/clip_ft_mpt")}


@pytest.mark.parametrize(
    "old, new",
    [
        ("data/pairs", "data/mined_pairs"),
        ("metrics/nouns.json", "metrics/noun.json"),
        ("plots/proposer/loss.csv", "plots/proposer/losses.csv"),
    ],
)
def test_a_path_renamed_in_dvc_yaml_alone_is_reported(tmp_path: Path, old: str, new: str) -> None:
    renamed = tmp_path / "dvc.yaml"
    renamed.write_text((ROOT / "dvc.yaml").read_text().replace(old, new))
    assert any(problem.endswith(f": {old}") for problem in misplaced_paths(renamed))
