"""Deterministic sharded Parquet output for Beam jobs, correct on every runner.

:class:`WriteParquetShards` keys each row by ``crc32(its shard-by values) %
num_shards`` (never Python's salted ``hash()``), groups by shard, and writes
each shard inside ``process()``: its rows sorted, one file
``part-00003-of-00008.parquet`` with a fixed schema and fixed writer options.
Nothing is emitted from ``finish_bundle`` (Beam's DaskRunner drops such
output), and every shard index is written even when no row falls into it, so
the set of files and their bytes depend only on the rows and the parameters —
not on the runner, the number of workers or the arrival order.

The transform writes into a staging directory that must be reachable by every
worker (a local path for local runners, a shared filesystem for a remote Dask
cluster). Replacing the final directory by the staging one is the driver's
job once the pipeline has finished (:func:`core.io.atomic_dir`), followed
by :func:`read_shards`, which refuses an incomplete shard set.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from core.io import atomic_file

SHARD_PATTERN = re.compile(r"^part-(\d{5})-of-(\d{5})\.parquet$")
# Fixed writer options: same rows, same bytes (pyarrow writes no timestamps;
# `created_by` names the pyarrow version, which the environment pins).
WRITE_OPTIONS: Mapping[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
    "store_schema": True,
}


class ShardWritten(NamedTuple):
    """What the writer emits per shard (small, so a job can count without re-reading)."""

    shard: int
    file_name: str
    num_rows: int


def shard_name(index: int, num_shards: int) -> str:
    """``part-{index:05d}-of-{num_shards:05d}.parquet``."""
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} outside 0..{num_shards - 1}")
    return f"part-{index:05d}-of-{num_shards:05d}.parquet"


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the stable byte form hashed and used as a tie-breaker."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def shard_of(values: Sequence[Any], num_shards: int) -> int:
    """Shard of a row from its shard-by values: CRC-32 of their canonical JSON, mod ``num_shards``."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be positive, got {num_shards}")
    return zlib.crc32(canonical_json(list(values)).encode("utf-8")) % num_shards


def row_sort_key(row: Mapping[str, Any], sort_by: Sequence[str]) -> tuple:
    """Sort key of a row: ``sort_by`` columns (nulls first), then the whole row as a tie-breaker,
    so that the order is total and never depends on arrival order."""
    columns = tuple((0,) if row[name] is None else (1, row[name]) for name in sort_by)
    return columns + (canonical_json(row),)


def rows_to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema, sort_by: Sequence[str], where: str) -> pa.Table:
    """Sort ``rows`` and convert them to a table of exactly ``schema``.

    Each row must have exactly the schema's columns; nulls in a non-nullable
    column and values of the wrong type raise ``ValueError`` naming ``where``.
    """
    names = set(schema.names)
    rows = list(rows)
    for row in rows:
        if set(row) != names:
            raise ValueError(f"{where}: row columns {sorted(row)} differ from the schema's {sorted(names)}")
    rows.sort(key=lambda row: row_sort_key(row, sort_by))
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"{where}: rows do not fit the schema: {exc}") from None
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise ValueError(f"{where}: null values in non-nullable column '{field.name}'")
    return table


def write_shard(
    rows: Iterable[Mapping[str, Any]],
    directory: str | os.PathLike,
    index: int,
    num_shards: int,
    schema: pa.Schema,
    sort_by: Sequence[str],
) -> ShardWritten:
    """Write one shard file (sorted rows, fixed options); replaces an earlier attempt atomically."""
    directory = Path(directory)
    name = shard_name(index, num_shards)
    table = rows_to_table(rows, schema, sort_by, where=str(directory / name))
    with atomic_file(directory / name) as fh:
        pq.write_table(
            table,
            fh,
            sorting_columns=[pq.SortingColumn(schema.get_field_index(name_), nulls_first=True) for name_ in sort_by],
            **WRITE_OPTIONS,
        )
    return ShardWritten(index, name, table.num_rows)


def _key_by_shard(row: Mapping[str, Any], shard_by: Sequence[str], num_shards: int) -> tuple[int, Mapping[str, Any]]:
    return shard_of([row[name] for name in shard_by], num_shards), row


class _WriteShardFn(beam.DoFn):
    """Writes one grouped shard in ``process()``; ``None`` values are the every-shard markers."""

    def __init__(self, directory: str, num_shards: int, schema: pa.Schema, sort_by: Sequence[str]):
        self._directory = directory
        self._num_shards = num_shards
        self._schema = schema
        self._sort_by = tuple(sort_by)

    def process(self, element: tuple[int, Iterable[Any]]) -> Iterable[ShardWritten]:
        index, values = element
        rows = [value for value in values if value is not None]
        yield write_shard(rows, self._directory, index, self._num_shards, self._schema, self._sort_by)


class WriteParquetShards(beam.PTransform):
    """Rows (dicts of the schema's columns) → ``num_shards`` sorted Parquet files in ``directory``.

    Emits one :class:`ShardWritten` per shard, every shard included. ``shard_by``
    (default ``sort_by``) picks the columns whose values choose the shard; rows
    sharing them share a file.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        schema: pa.Schema,
        num_shards: int,
        sort_by: Sequence[str],
        shard_by: Sequence[str] | None = None,
    ):
        super().__init__()
        if num_shards < 1:
            raise ValueError(f"num_shards must be positive, got {num_shards}")
        for name in list(sort_by) + list(shard_by or ()):
            if name not in schema.names:
                raise ValueError(f"column '{name}' is not in the schema {schema.names}")
        self._directory = str(directory)
        self._schema = schema
        self._num_shards = num_shards
        self._sort_by = tuple(sort_by)
        self._shard_by = tuple(shard_by) if shard_by else self._sort_by

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        keyed = rows | "KeyByShard" >> beam.Map(_key_by_shard, self._shard_by, self._num_shards)
        markers = rows.pipeline | "EveryShard" >> beam.Create([(index, None) for index in range(self._num_shards)])
        return (
            (keyed, markers)
            | "WithEveryShard" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShardFn(self._directory, self._num_shards, self._schema, self._sort_by))
        )


def shard_paths(directory: str | os.PathLike) -> list[Path]:
    """The shard files of ``directory`` in index order; raises ``ValueError`` naming the
    directory when the set is empty, incomplete or mixes shard counts, and
    ``FileNotFoundError`` when the directory is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: shard directory not found")
    found: dict[int, Path] = {}
    counts: set[int] = set()
    for path in directory.iterdir():
        if path.name.startswith("."):
            continue
        match = SHARD_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"{directory}: unexpected file '{path.name}' among the shards")
        found[int(match.group(1))] = path
        counts.add(int(match.group(2)))
    if not found:
        raise ValueError(f"{directory}: no shard files")
    if len(counts) != 1:
        raise ValueError(f"{directory}: shards of different counts {sorted(counts)}")
    (num_shards,) = counts
    missing = sorted(set(range(num_shards)) - set(found))
    if missing or len(found) != num_shards:
        raise ValueError(f"{directory}: incomplete shard set, missing {missing} of {num_shards}")
    return [found[index] for index in range(num_shards)]


def read_shards(directory: str | os.PathLike, schema: pa.Schema | None = None) -> pa.Table:
    """All shards of ``directory`` as one table, in shard order; with ``schema``, every
    shard must have exactly that schema (``ValueError`` naming the file otherwise)."""
    tables = []
    for path in shard_paths(directory):
        table = pq.read_table(path)
        if schema is not None and not table.schema.equals(schema, check_metadata=False):
            raise ValueError(f"{path}: schema {table.schema} differs from the expected {schema}")
        tables.append(table)
    return pa.concat_tables(tables)
