"""The layers of docs/architecture.md, read from the imports: core ← model ← pipeline ← stages,
and inside pipeline/ each concern imports only the concerns it is built on."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What each package may import from the project (itself excepted), as in docs/architecture.md.
ALLOWED = {
    "core": set(),
    "model": {"core"},
    "pipeline/beam": {"core"},
    "pipeline/datasets": {"core"},
    "pipeline/nouns": {"core", "pipeline/beam", "pipeline/datasets"},
    "pipeline/mining": {"core", "model", "pipeline/beam", "pipeline/datasets"},
    "pipeline/training": {"core", "model", "pipeline/datasets"},
    "pipeline/evaluation": {"core", "model", "pipeline/datasets"},
    "pipeline/world": {"core", "pipeline/datasets"},
    "pipeline/prepare": {"core", "pipeline/beam", "pipeline/datasets"},
    "pipeline/demo": {"core", "model", "pipeline/beam", "pipeline/datasets", "pipeline/evaluation", "pipeline/mining"},
    "pipeline/project": {"core", "pipeline/evaluation"},
    "stages": {"core", "model", "pipeline"},
}


def package_of(path: str) -> str | None:
    """The package of ``ALLOWED`` holding a module path such as ``pipeline/mining/job`` (or a top-level one)."""
    for package in sorted(ALLOWED, key=len, reverse=True):
        if path == package or path.startswith(package + "/"):
            return package
    top = path.split("/")[0]
    return top if top in ("core", "model", "pipeline", "stages") else None


def project_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports, anywhere in the file, as slash paths (relative imports stay inside)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.replace(".", "/") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.replace(".", "/"))
    return found


def violations(root: Path) -> list[str]:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for imported in sorted(project_imports(path)):
                target = package_of(imported)
                if target is None or target == package:
                    continue
                if not any(target == a or target.startswith(a + "/") for a in allowed):
                    problems.append(f"{path.relative_to(root)} imports {imported.replace('/', '.')}")
    return problems


def test_every_package_imports_only_what_it_is_built_on() -> None:
    assert violations(ROOT) == []


def test_every_package_is_in_the_table() -> None:
    packages = {p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("*/__init__.py")}
    packages |= {p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("pipeline/*/__init__.py")}
    assert packages - {"pipeline", "tests"} <= set(ALLOWED)


def test_a_model_module_importing_pipeline_is_reported(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "bad.py").write_text("import os\n\n\ndef f():\n    from pipeline.training import rng\n")
    (tmp_path / "pipeline" / "datasets").mkdir(parents=True)
    (tmp_path / "pipeline" / "datasets" / "bad.py").write_text("from pipeline.mining.job import run\n")
    (tmp_path / "pipeline" / "mining").mkdir()
    (tmp_path / "pipeline" / "mining" / "ok.py").write_text("from pipeline.beam.shards import read_shards\n")
    assert violations(tmp_path) == [
        "model/bad.py imports pipeline.training",
        "pipeline/datasets/bad.py imports pipeline.mining.job",
    ]
