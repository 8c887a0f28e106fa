"""How torch computes on the CPU: pinned so that a run gives the same bits on any x86-64 machine, or native.

Four things decide the bits of a CPU float computation besides the code and the seed, and each differs
from machine to machine unless pinned:

- the instruction set of ATen's vectorised kernels (``ATEN_CPU_CAPABILITY``), of oneDNN's JIT kernels
  (``ONEDNN_MAX_CPU_ISA``: convolutions) and of MKL's BLAS (``MKL_CBWR``: its Conditional Numerical
  Reproducibility branch, which also makes sgemm independent of memory alignment; see :data:`INTEL_MKL_CBWR`);
- the intra-op thread count, which sets how float sums are split;
- the precision: ``auto`` means bf16 only where the CPU has it natively;
- the algorithms torch may pick (:func:`torch.use_deterministic_algorithms`).

``portable`` (params ``numerics.mode``) pins all four: AVX2, the widest ISA every supported x86-64 machine
has; ``numerics.threads`` threads whatever the core count; fp32; deterministic algorithms. ``native``
leaves them to the machine, for real data on big machines. The libraries read the variables once, when
they load, so :func:`pin_environment` runs before torch is imported: ``stages/__init__.py`` calls
:func:`pin_from_params` for every ``python -m stages.<name>`` and ``ovseg`` command, and the processes a
stage starts (torchrun children, Beam and Dask workers, data-loader workers) inherit the variables.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from core.params import PARAMS_FILE, check_keys

NumericsMode = Literal["portable", "native"]

#: The variable that tells a process, and the processes it starts, which mode its environment was pinned for.
MODE_VARIABLE = "OVSEG_NUMERICS"

#: What ``portable`` sets before torch loads.
PORTABLE_PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # an inherited AVX512 overrides the CBWR branch on an Intel CPU
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # what deterministic cuBLAS needs on CUDA
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: ``MKL_CBWR`` on an Intel CPU. MKL has branches other than AUTO and COMPATIBLE on Intel CPUs only; elsewhere it
#: silently takes AUTO, so ``AVX2`` means AUTO on an AMD EPYC. On an Intel Xeon, the AVX2 branch without STRICT
#: computes a product of 8 or 32 rows with kernels whose bits depend on a row's place in the batch, so one class
#: name got other text-embedding bits in the ``propose`` stage than in the ``zsseg`` row; STRICT removes that
#: (tests/core/test_numerics.py). It is not set on other CPUs because the lock was made under AUTO there and
#: STRICT has not yet been run on one. No branch makes an Intel CPU give an AMD CPU's bits (docs/reproducibility.md).
INTEL_MKL_CBWR = "AVX2,STRICT"

#: The CPU flags that choose kernels, kept in a stage's record of its numerics.
_KERNEL_FLAGS = re.compile(r"^(avx\S*|amx\S*|fma|f16c|sse4_2)$")


@dataclass(frozen=True)
class Numerics:
    """The params section ``numerics``: the mode, and the intra-op threads of a portable process."""

    mode: NumericsMode = "portable"
    threads: int = 2

    @classmethod
    def from_params(cls, section: Mapping[str, Any], where: str = "numerics") -> Numerics:
        check_keys(section, cls.__dataclass_fields__, where)
        mode, threads = section.get("mode", cls.mode), section.get("threads", cls.threads)
        if mode not in get_args(NumericsMode):
            raise ValueError(f"{where}.mode must be one of {', '.join(get_args(NumericsMode))}, got {mode!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"{where}.threads must be an integer >= 1, got {threads!r}")
        return cls(mode=mode, threads=threads)


def numerics_environment(numerics: Numerics, vendor: str | None = None) -> dict[str, str]:
    """The variables a process pinned for ``numerics`` runs under on a CPU of ``vendor`` (``/proc/cpuinfo``'s
    ``vendor_id``; None: this machine's)."""
    if numerics.mode == "native":
        return {MODE_VARIABLE: "native"}
    threads = {name: str(numerics.threads) for name in THREAD_VARIABLES}
    pins = dict(PORTABLE_PINS)
    if (vendor if vendor is not None else cpu_description()["vendor"]) == "GenuineIntel":
        pins["MKL_CBWR"] = INTEL_MKL_CBWR
    return {**pins, **threads, MODE_VARIABLE: "portable"}


def pin_environment(numerics: Numerics, environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the variables of ``numerics`` in ``environ`` (this process and those it starts).

    Raises ``RuntimeError`` when torch is already loaded in this process with other values: it has read them.
    """
    wanted = numerics_environment(numerics)
    stale = sorted(name for name, value in wanted.items() if environ.get(name) != value)
    if stale and environ is os.environ and "torch" in sys.modules and numerics.mode == "portable":
        raise RuntimeError(f"numerics: torch was imported before {', '.join(stale)} were pinned")
    environ.update(wanted)


def pin_from_params(params_file: str | os.PathLike | None = None) -> Numerics | None:
    """Pin this process for params' ``numerics`` section (absent: the defaults), before torch loads.

    A process that already runs torch (a test session, a notebook importing a stage) keeps its own settings,
    as does one started outside a project (no params file): both return ``None``.
    """
    path = Path(params_file) if params_file is not None else PARAMS_FILE
    if "torch" in sys.modules or not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        section = (yaml.safe_load(fh) or {}).get("numerics") or {}
    numerics = Numerics.from_params(section, f"{path}: numerics")
    pin_environment(numerics)
    return numerics


def portable() -> bool:
    """Whether this process runs under portable numerics."""
    return os.environ.get(MODE_VARIABLE) == "portable"


@functools.cache
def pin_torch() -> None:
    """The in-process part of portable numerics, once per process after torch loads: deterministic algorithms,
    and ``numerics.threads`` intra-op threads (torch caps the count it reads from ``OMP_NUM_THREADS`` at the
    number of cores, so the variable alone would give a 1-core machine other sums than a 2-core one).

    ``warn_only``: an operation without a deterministic implementation (some CUDA kernels) warns instead of failing.
    """
    if not portable():
        return
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(int(os.environ[THREAD_VARIABLES[0]]))


def cpu_description() -> dict[str, Any]:
    """The CPU's vendor, model and the flags that choose kernels (Linux ``/proc/cpuinfo``; elsewhere the
    platform's name and no vendor)."""
    vendor, model, flags = "", platform.processor() or platform.machine(), []
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        info = ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            vendor = value.strip()
        elif key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = sorted(flag for flag in value.split() if _KERNEL_FLAGS.match(flag))
            break
    return {"vendor": vendor, "model": model, "kernel_flags": flags, "cores": os.cpu_count()}


def library_versions() -> dict[str, str | None]:
    """torch, and the MKL and oneDNN it was built with (from ``torch.__config__.show()``)."""
    import torch

    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    onednn = re.search(r"(?:oneDNN|MKL-DNN) v([\w.]+)", config)
    return {
        "torch": torch.__version__,
        "mkl": mkl.group(1) if mkl else None,
        "onednn": onednn.group(1) if onednn else None,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def numerics_record() -> dict[str, Any]:
    """What a stage ran under, for its timings JSON: the mode, the pinned variables, the CPU, the libraries."""
    names = [*PORTABLE_PINS, *THREAD_VARIABLES]
    record: dict[str, Any] = {
        "mode": os.environ.get(MODE_VARIABLE, "unpinned"),
        "environment": {name: os.environ.get(name) for name in names},
        "cpu": cpu_description(),
    }
    if "torch" in sys.modules:
        import torch

        record["threads"] = torch.get_num_threads()
        record["libraries"] = library_versions()
    return record
