from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.numerics import (
    MODE_VARIABLE,
    PORTABLE_PINS,
    THREAD_VARIABLES,
    Numerics,
    cpu_description,
    numerics_environment,
    numerics_record,
    pin_environment,
    pin_from_params,
)

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("numerics_probe.py")

#: Environments a stage may inherit on different machines: ISAs, MKL's instruction set, thread counts.
MACHINES: dict[str, dict[str, str]] = {
    "no vector ISA": {"ATEN_CPU_CAPABILITY": "default"},
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "AVX-512": {
        "ATEN_CPU_CAPABILITY": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
    },
    "1 thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "2 threads": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
    "4 threads": {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"},
}


def unpinned_environment() -> dict[str, str]:
    """This process's environment without the suite's numerics pins (tests/conftest.py)."""
    pinned = {*PORTABLE_PINS, *THREAD_VARIABLES, MODE_VARIABLE}
    env = {k: v for k, v in os.environ.items() if k not in pinned}
    return {**env, "PYTHONPATH": str(ROOT)}


def runnable_machines(mode: str) -> dict[str, dict[str, str]]:
    """The imitated machines this CPU can run in ``mode``. Native numerics take an inherited AVX-512 setting at
    its word, which is an illegal instruction (SIGILL) on a CPU without AVX-512; portable numerics override it."""
    if mode == "portable" or "avx512f" in cpu_description()["kernel_flags"]:
        return MACHINES
    return {name: env for name, env in MACHINES.items() if env.get("ATEN_CPU_CAPABILITY") != "avx512"}


def probe_digests(mode: str) -> dict[str, str]:
    """The probe's weight digest in each imitated machine's environment this CPU can run."""
    machines = runnable_machines(mode)

    def run(machine: dict[str, str]) -> str:
        done = subprocess.run(
            [sys.executable, str(PROBE), mode],
            env={**unpinned_environment(), **machine},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(machines, pool.map(run, machines.values()), strict=True))


def test_portable_numerics_give_the_same_bits_in_every_imitated_machine() -> None:
    digests = probe_digests("portable")
    assert len(set(digests.values())) == 1, digests


def test_native_numerics_give_different_bits_across_the_same_machines() -> None:
    """The control: without the pins the imitated machines do differ, so the portable test cannot pass vacuously."""
    digests = probe_digests("native")
    assert len(set(digests.values())) > 1, digests


def test_portable_environment_pins_isa_mkl_threads_and_mode() -> None:
    env = numerics_environment(Numerics("portable", threads=3), vendor="AuthenticAMD")
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["MKL_CBWR"] == env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert numerics_environment(Numerics("portable", threads=3), vendor="GenuineIntel")["MKL_CBWR"] == "AVX2,STRICT"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert env[MODE_VARIABLE] == "portable"
    assert numerics_environment(Numerics("native", threads=3)) == {MODE_VARIABLE: "native"}


def test_pin_environment_overrides_what_the_machine_set() -> None:
    environ = {"ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "64", "HOME": "/home/x"}
    pin_environment(Numerics("portable", threads=2), environ)
    assert environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert environ["OMP_NUM_THREADS"] == "2"
    assert environ["HOME"] == "/home/x"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"mode": "fast"}, "numerics.mode must be one of portable, native"),
        ({"threads": 0}, "numerics.threads must be an integer >= 1"),
        ({"threads": "2"}, "numerics.threads must be an integer >= 1"),
        ({"thread": 2}, "unknown keys ['thread']"),
    ],
)
def test_numerics_params_are_checked(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Numerics.from_params(section)


def test_a_stage_process_pins_params_numerics_before_torch_loads(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("numerics: {mode: portable, threads: 3}\n", encoding="utf-8")
    code = (
        "import os, stages, torch, core.device as d; d.set_threads(None); "
        "print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())"
    )
    env = {**unpinned_environment(), "ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["3", "3", "AVX2"]


def test_a_process_already_running_torch_keeps_its_settings(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("numerics: {mode: native}\n", encoding="utf-8")
    assert pin_from_params(tmp_path / "params.yaml") is None  # the suite imported torch
    assert os.environ[MODE_VARIABLE] == "portable"


def test_a_matmul_row_does_not_depend_on_its_place_in_the_batch() -> None:
    """A row's product must not change when the rows beside it do: the text tower embeds names in chunks of
    :data:`CHUNK_ROWS` rows whose neighbours differ from call to call. On an Intel Xeon, MKL's AVX2 branch without
    STRICT broke this (the propose stage and the zsseg row then scored one class name with different bits)."""
    import torch

    from model.text_tower import CHUNK_ROWS

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(512, 512, generator=generator)
    x = torch.randn(CHUNK_ROWS, 512, generator=generator)
    order = torch.randperm(CHUNK_ROWS, generator=generator)
    assert torch.equal((x[order] @ weight)[torch.argsort(order)], x @ weight)


def test_the_record_names_the_pins_the_cpu_and_the_libraries() -> None:
    record = numerics_record()
    assert record["mode"] == "portable"
    assert record["environment"]["MKL_CBWR"] == numerics_environment(Numerics("portable"))["MKL_CBWR"]
    assert record["cpu"]["model"] and "vendor" in record["cpu"]
    assert record["libraries"]["aten_cpu_capability"] == "AVX2"
    assert record["libraries"]["torch"]
