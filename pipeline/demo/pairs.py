"""Browsing the mined pairs (``data/pairs``) and the rejects (``data/rejects/*``) page by page.

The pairs table (:data:`pipeline.beam.schemas.PAIRS`) is read once, without its masks'
decoding; a page decodes only its own masks and images. A noun's pairs sort by
``similarity``, ``softmax``, ``margin``, ``area`` or ``proposal_score``, in either order;
ties go by image id, and pairs without a margin come last whatever the order. Rejects
(:data:`pipeline.beam.schemas.REJECTS`, every stage folder under ``data/rejects``) are
grouped by ``stage/kind/reason``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from core.io import safe_join
from pipeline.beam.schemas import PAIRS, REJECTS
from pipeline.beam.shards import read_shards
from pipeline.datasets.files import read_rgb
from pipeline.mining.pair_pictures import PairJudge, pair_crop, pair_mask

SORT_KEYS = ("similarity", "softmax", "margin", "area", "proposal_score")
PAGE_SIZE = 24
#: The values of a page's table, in order (``verdict`` follows in the demo world).
TABLE_COLUMNS = ("image_id", "file_name", "similarity", "softmax", "margin", "area", "proposal_score", "proposal_id")
FRAME = 4
#: What a crop's caption lists.
CAPTION = "similarity · softmax · margin"
REJECT_COLUMNS = ("stage", "kind", "image_id", "caption_id", "file_name", "reason", "detail")


@dataclass(frozen=True)
class PairsPage:
    """One page of a noun's pairs: ``items`` are ``(crop, caption)`` (the crop framed by its verdict in the demo
    world), ``rows`` the pairs' :data:`TABLE_COLUMNS` (and ``verdict``)."""

    noun: str
    total: int
    page: int
    pages: int
    items: list[tuple[np.ndarray, str]]
    rows: list[dict[str, Any]]

    def describe(self) -> str:
        if self.total == 0:
            return f"'{self.noun}': no pairs"
        first = (self.page - 1) * PAGE_SIZE + 1
        return (
            f"'{self.noun}': {self.total} pairs; page {self.page} of {self.pages} "
            f"(pairs {first}–{first + len(self.rows) - 1})"
        )


def framed(crop: np.ndarray, colour: tuple[int, int, int], width: int = FRAME) -> np.ndarray:
    """``crop`` with a frame of ``width`` pixels in ``colour`` over its edge."""
    out = crop.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def clamp_page(page: Any, pages: int) -> int:
    """``page`` as an int within ``1..pages`` (1 for anything that is not a number)."""
    try:
        value = int(page)
    except (TypeError, ValueError):
        value = 1
    return min(max(value, 1), pages)


class PairsBrowser:
    """The pairs and rejects tables, with the images folder the pairs' ``file_name`` is relative to."""

    def __init__(
        self, pairs: pa.Table, images_dir: Path, rejects: pa.Table | None = None, judge: PairJudge | None = None
    ):
        missing = sorted(set(PAIRS.names) - set(pairs.column_names))
        if missing:
            raise ValueError(f"the pairs table lacks the columns {missing}")
        self.pairs = pairs
        self.images_dir = images_dir
        self.rejects = rejects if rejects is not None else REJECTS.empty_table()
        self.judge = judge
        nouns = pairs.column("noun").to_pylist()
        self._by_noun: dict[str, list[int]] = {}
        for index, noun in enumerate(nouns):
            self._by_noun.setdefault(noun, []).append(index)
        self._columns = {
            key: np.asarray(pairs.column(key).to_numpy(zero_copy_only=False), dtype=np.float64) for key in SORT_KEYS
        }
        self._image_ids = np.asarray(pairs.column("image_id").to_numpy(), dtype=np.int64)

    @classmethod
    def load(
        cls, pairs_dir: Path, images_dir: Path, rejects_dir: Path | None = None, judge: PairJudge | None = None
    ) -> PairsBrowser:
        """Read ``pairs_dir`` (shards of :data:`PAIRS`) and every shard folder under ``rejects_dir``."""
        if not pairs_dir.is_dir():
            raise FileNotFoundError(f"{pairs_dir}: pairs folder not found (run the mine stage, or give --pairs)")
        pairs = read_shards(pairs_dir, PAIRS)
        rejects = None
        if rejects_dir is not None and rejects_dir.is_dir():
            folders = sorted({path.parent for path in rejects_dir.rglob("part-*.parquet")})
            tables = [read_shards(folder, REJECTS) for folder in folders]
            rejects = pa.concat_tables(tables) if tables else None
        return cls(pairs, images_dir, rejects, judge)

    # ------------------------------------------------------------------ pairs
    def nouns(self, search: str = "") -> list[tuple[str, int]]:
        """``(noun, pairs)`` most pairs first (ties by noun); with ``search``, the nouns containing it
        (case-insensitive), an exact match first."""
        counts = sorted(((noun, len(rows)) for noun, rows in self._by_noun.items()), key=lambda i: (-i[1], i[0]))
        needle = search.strip().lower()
        if not needle:
            return counts
        found = [item for item in counts if needle in item[0].lower()]
        return sorted(found, key=lambda item: item[0].lower() != needle)

    def order(self, noun: str, sort: str = "similarity", descending: bool = True) -> list[int]:
        """Row indices of ``noun``'s pairs in the asked order (module docstring)."""
        if sort not in SORT_KEYS:
            raise ValueError(f"unknown sort key {sort!r}; choose from {', '.join(SORT_KEYS)}")
        rows = self._by_noun.get(noun, [])
        values = self._columns[sort]
        sign = -1.0 if descending else 1.0

        def key(i: int) -> tuple:
            value = values[i]
            missing = bool(np.isnan(value))
            return (missing, 0.0 if missing else sign * value, int(self._image_ids[i]), i)

        return sorted(rows, key=key)

    def page(
        self,
        noun: str,
        sort: str = "similarity",
        descending: bool = True,
        page: Any = 1,
        page_size: int = PAGE_SIZE,
        crop_size: int = 128,
    ) -> PairsPage:
        """Page ``page`` (1-based, clamped) of ``noun``'s pairs: crops with captions and the rows' values."""
        order = self.order(noun, sort, descending)
        pages = page_count(len(order), page_size)
        page = clamp_page(page, pages)
        chosen = order[(page - 1) * page_size : page * page_size]
        rows = self.pairs.take(pa.array(chosen, pa.int64())).to_pylist() if chosen else []
        items = []
        for row in rows:
            image = read_rgb(safe_join(self.images_dir, row["file_name"]))
            crop = pair_crop(image, pair_mask(row), size=crop_size)
            margin = "–" if row["margin"] is None else f"{row['margin']:.2f}"
            caption = f"{row['similarity']:.2f} · {row['softmax']:.2f} · {margin}"  # the order of CAPTION
            if self.judge is not None:
                verdict = self.judge.judge(row)
                row["verdict"] = verdict.describe()
                crop = framed(crop, verdict.colour)
            items.append((crop, caption))
        table = [
            {
                key: round(row[key], 4) if isinstance(row[key], float) else row[key]
                for key in TABLE_COLUMNS + ("verdict",)
                if key in row
            }
            for row in rows
        ]
        return PairsPage(noun, len(order), page, pages, items, table)

    # ------------------------------------------------------------------ rejects
    def reject_reasons(self) -> list[tuple[str, int]]:
        """``(stage/kind/reason, rows)``, most rows first (ties by name)."""
        keys = zip(*(self.rejects.column(c).to_pylist() for c in ("stage", "kind", "reason")))
        counts = Counter("/".join(key) for key in keys)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def rejects_page(self, reason: str, page: Any = 1, page_size: int = 50) -> tuple[list[dict[str, Any]], int, int]:
        """``(rows, page, pages)`` of the rejects of one ``stage/kind/reason``, in file order."""
        rows = [
            row
            for row in self.rejects.select(list(REJECT_COLUMNS)).to_pylist()
            if f"{row['stage']}/{row['kind']}/{row['reason']}" == reason
        ]
        pages = page_count(len(rows), page_size)
        page = clamp_page(page, pages)
        return rows[(page - 1) * page_size : page * page_size], page, pages
