"""The per-class IoU bar chart of one evaluation (matplotlib, Agg backend, no timestamps)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.patches import Patch

from core.io import atomic_write_bytes

SEEN_COLOUR = "#3b7dd8"
UNSEEN_COLOUR = "#e07b39"
#: Above this many scored classes the chart shows the best and worst halves of it.
MAX_BARS = 80


def _scored(per_class: Mapping[str, float | None]) -> dict[str, float]:
    """The classes with an IoU and their IoUs, in benchmark order."""
    return {name: iou for name, iou in per_class.items() if iou is not None}


def select_bars(per_class: Mapping[str, float | None], max_bars: int = MAX_BARS) -> tuple[list[str], int]:
    """The classes to draw (benchmark order) and how many scored classes were left out.

    Classes without an IoU are never drawn. With more than ``max_bars`` scored
    classes, the ``max_bars // 2`` best and worst are kept (ties by name).
    """
    scores = _scored(per_class)
    scored = list(scores)
    if len(scored) <= max_bars:
        return scored, 0
    ranked = sorted(scored, key=lambda name: (-scores[name], name))
    half = max_bars // 2
    keep = set(ranked[:half]) | set(ranked[-half:])
    return [name for name in scored if name in keep], len(scored) - len(keep)


def per_class_iou_chart(
    per_class: Mapping[str, float | None],
    seen: Mapping[str, bool] | None,
    path: str | os.PathLike,
    *,
    title: str,
    mean: float | None = None,
) -> None:
    """Write a horizontal bar chart of the per-class IoUs (percent) as a PNG at ``path``.

    Bars are coloured by seen/unseen when ``seen`` is given; ``mean`` draws a
    dashed line (the mIoU). The file is written atomically and carries no
    software version or date, so equal inputs give equal bytes on one installation.
    """
    names, left_out = select_bars(per_class)
    height = max(2.5, 0.5 + 0.2 * len(names))
    fig, ax = plt.subplots(figsize=(6.4, height), dpi=100)
    try:
        scores = _scored(per_class)
        values = [scores[name] for name in names]
        colours = [SEEN_COLOUR if seen is None or seen.get(name, False) else UNSEEN_COLOUR for name in names]
        positions = list(range(len(names)))
        ax.barh(positions, values, color=colours)
        ax.set_yticks(positions, labels=names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("IoU (%)")
        suffix = f" ({left_out} middle classes not shown)" if left_out else ""
        ax.set_title(title + suffix, fontsize=9)
        handles: list[Artist] = []
        if mean is not None:
            ax.axvline(mean, color="black", linestyle="--", linewidth=1)
            handles.append(plt.Line2D([], [], color="black", linestyle="--", label=f"mIoU {mean:.1f}"))
        if seen is not None:
            handles += [Patch(color=SEEN_COLOUR, label="seen"), Patch(color=UNSEEN_COLOUR, label="unseen")]
        if handles:
            ax.legend(handles=handles, loc="lower right", fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
