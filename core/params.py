"""params.yaml: one section per stage, parsed strictly (an unknown key is an error, never dropped)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

PARAMS_FILE = Path(os.environ.get("OVSEG_PARAMS", "params.yaml"))


def load_params(section: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return one top-level section of params.yaml (each stage reads only its own)."""
    path = Path(path) if path is not None else PARAMS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found (run from the repository root)")
    with open(path, encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if section not in params:
        raise KeyError(f"{path}: no '{section}' section")
    return params[section]


def check_keys(params: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """The one rule for every params section: a key the code does not know is an error, never ignored."""
    known = set(known)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")


def check_fractions(values: Iterable[tuple[str, Any]], where: str = "") -> None:
    """Every named value lies in [0, 1] (``None``: not set, not checked), else ``ValueError``:
    ``<where><name> must lie in [0, 1], got <value>``."""
    for name, value in values:
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{where}{name} must lie in [0, 1], got {value}")


def config_from_params(cls: type[T], params: Mapping[str, Any], *, what: str, **overrides: Any) -> T:
    """A (frozen) dataclass built from a params section: unknown keys are an error, lists become tuples."""
    check_keys(params, cls.__dataclass_fields__, what)
    values = {**params, **overrides}
    return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})
