"""Progress bars on long work, shown on terminals only."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, enabled: bool | None = None) -> tqdm:
    """A tqdm bar over ``iterable``; by default shown only when stderr is a terminal.

    ``OVSEG_PROGRESS=0``/``1`` forces it off/on. Use ``bar.set_postfix(loss=...)`` to show values.
    """
    if enabled is None:
        env = os.environ.get("OVSEG_PROGRESS")
        enabled = env == "1" if env in ("0", "1") else sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, dynamic_ncols=True, mininterval=1.0)
