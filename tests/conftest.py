"""What every test shares: one torch thread, the root logger as it was, the tiny CLIP, and running DVC on a copy
of the repository."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from core.numerics import MODE_VARIABLE, Numerics, numerics_environment

# The suite, and every process it starts, runs under portable numerics with one thread (core/numerics.py): the
# libraries read the pins when they load, so they are set before torch is imported. Among others, MKL outside
# its Conditional Numerical Reproducibility mode picks sgemm code by memory alignment, so the same product can
# differ in its last bit between two equal models (seen on an AMD EPYC with AVX512-BF16).
os.environ.update(numerics_environment(Numerics("portable", threads=1)))

import pytest
import torch

from model.clip import ClipBundle, build_clip
from model.text import CACHE_ENV

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("metrics/", "plots/", "reports/", "dvc.lock")  # what a copy must produce itself


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """CPU float sums depend on the thread count: every test, and every fixture it sets up, starts with
    one torch thread, so expected values hold on any machine (a stage under test may set its own)."""
    torch.set_num_threads(1)


@pytest.fixture
def native_numerics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Native numerics for a test of low precision (portable numerics refuse bf16 and resolve ``auto`` to fp32);
    the ISA pins stay, as torch has read them."""
    monkeypatch.setenv(MODE_VARIABLE, "native")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A stage run in-process (``mine``, ``nouns``, ``prepare``) points the root logger at the test's captured
    stderr (``logging.basicConfig(force=True)``), which pytest closes after the test: later tests' log
    records would hit a closed file. The handlers it added go, and the level comes back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if type(h) is logging.StreamHandler and h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session", autouse=True)
def _text_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The on-disk text-embedding cache (:func:`model.text.cache_dir`) of the session: a temporary folder,
    never the user's ``~/.cache``, shared by the tests and the DVC runs they start."""
    folder = tmp_path_factory.mktemp("text_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def tiny_clip() -> ClipBundle:
    """The demo's tiny CLIP (``model/configs/ovseg-tiny-vit.json``) with random weights, seed 0, on the CPU;
    one per test module."""
    return build_clip("ovseg-tiny-vit", device=torch.device("cpu"), seed=0)


def run_dvc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """``dvc ARGS`` in ``cwd`` (this interpreter's DVC); its stdout, or a failed assertion with its output.
    ``env`` adds to (or overrides) the few variables the command gets."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={
            "OVSEG_PROGRESS": "0",
            CACHE_ENV: os.environ.get(CACHE_ENV, "off"),
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            **(env or {}),
        },
    )
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture
def dvc() -> Callable[..., str]:
    """:func:`run_dvc`: ``dvc("repro", cwd=repo)``."""
    return run_dvc


@pytest.fixture
def repo_copy(tmp_path: Path) -> Callable[[], Path]:
    """A function making ``tmp_path/repo``: the repository's files (tracked and untracked, not ignored)
    without the pipeline's outputs, a DVC project without git (``core.no_scm``)."""

    def make() -> Path:
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        repo = tmp_path / "repo"
        for name in files:
            if name.startswith(OUTPUTS) or not (ROOT / name).is_file():
                continue
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
        run_dvc("config", "core.no_scm", "true", cwd=repo)
        return repo

    return make
