"""pipeline.beam.shards: stable sharding, sorted deterministic files, complete shard sets."""

from __future__ import annotations

import random
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.beam.runner import run_pipeline
from pipeline.beam.shards import (
    WriteParquetShards,
    read_shards,
    row_sort_key,
    rows_to_table,
    shard_name,
    shard_of,
    shard_paths,
    write_shard,
)

SCHEMA = pa.schema(
    [
        pa.field("key", pa.int64(), nullable=False),
        pa.field("name", pa.string(), nullable=True),
        pa.field("ids", pa.list_(pa.field("item", pa.int64(), nullable=False)), nullable=False),
    ]
)


def rows(n: int, seed: int) -> list[dict]:
    out = [{"key": i % 7, "name": None if i % 5 == 0 else f"n{i}", "ids": [i, i + 1]} for i in range(n)]
    random.Random(seed).shuffle(out)
    return out


def test_shard_name_and_range():
    assert shard_name(3, 8) == "part-00003-of-00008.parquet"
    with pytest.raises(ValueError):
        shard_name(8, 8)


def test_shard_of_is_crc32_of_canonical_json():
    assert shard_of([12, "dog"], 1000) == zlib.crc32(b'[12,"dog"]') % 1000
    assert shard_of([12, "dog"], 4) == shard_of((12, "dog"), 4)
    with pytest.raises(ValueError):
        shard_of([1], 0)


def test_sort_key_puts_nulls_first_and_is_total():
    a = {"key": 1, "name": None, "ids": [2]}
    b = {"key": 1, "name": "x", "ids": [1]}
    c = {"key": 1, "name": None, "ids": [1]}
    ordered = sorted([b, a, c], key=lambda row: row_sort_key(row, ["key", "name"]))
    assert ordered == [c, a, b]


def test_rows_to_table_checks_columns_types_and_nulls():
    with pytest.raises(ValueError, match="where.*differ from the schema"):
        rows_to_table([{"key": 1, "name": "a"}], SCHEMA, ["key"], "where")
    with pytest.raises(ValueError, match="non-nullable column 'key'"):
        rows_to_table([{"key": None, "name": "a", "ids": []}], SCHEMA, ["name"], "where")
    with pytest.raises(ValueError, match="do not fit the schema"):
        rows_to_table([{"key": "one", "name": "a", "ids": []}], SCHEMA, ["key"], "where")


def test_write_shard_is_byte_identical_whatever_the_row_order(tmp_path):
    first = write_shard(rows(50, 0), tmp_path / "a", 1, 3, SCHEMA, ["key", "name"])
    write_shard(rows(50, 1), tmp_path / "b", 1, 3, SCHEMA, ["key", "name"])
    assert first.file_name == "part-00001-of-00003.parquet" and first.num_rows == 50
    assert (tmp_path / "a" / first.file_name).read_bytes() == (tmp_path / "b" / first.file_name).read_bytes()
    table = pq.read_table(tmp_path / "a" / first.file_name)
    keys = list(zip(table["key"].to_pylist(), table["name"].to_pylist()))
    assert keys == sorted(keys, key=lambda k: (k[0], (0,) if k[1] is None else (1, k[1])))
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]


def test_empty_shard_has_the_schema(tmp_path):
    write_shard([], tmp_path, 0, 1, SCHEMA, ["key"])
    table = read_shards(tmp_path, SCHEMA)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)


def test_shard_paths_refuses_incomplete_or_foreign_sets(tmp_path):
    with pytest.raises(FileNotFoundError):
        shard_paths(tmp_path / "missing")
    with pytest.raises(ValueError, match="no shard files"):
        shard_paths(tmp_path)
    write_shard([], tmp_path, 0, 2, SCHEMA, ["key"])
    with pytest.raises(ValueError, match="incomplete shard set, missing \\[1\\]"):
        shard_paths(tmp_path)
    write_shard([], tmp_path, 1, 2, SCHEMA, ["key"])
    assert [p.name for p in shard_paths(tmp_path)] == ["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="unexpected file 'notes.txt'"):
        shard_paths(tmp_path)


def test_read_shards_checks_the_schema(tmp_path):
    write_shard([], tmp_path, 0, 1, SCHEMA, ["key"])
    other = pa.schema([pa.field("key", pa.int32())])
    with pytest.raises(ValueError, match="differs from the expected"):
        read_shards(tmp_path, other)


def test_transform_writes_every_shard_sorted_and_sharded_by_key(tmp_path):
    data = rows(40, 0)  # keys 0..6: at most 7 non-empty shards of 10

    def build(pipeline):
        import apache_beam as beam

        (
            pipeline
            | beam.Create(data)
            | WriteParquetShards(tmp_path / "out", SCHEMA, 10, sort_by=["key", "name"], shard_by=["key"])
        )

    run_pipeline(build, {"runner": "direct-inmemory"})
    paths = shard_paths(tmp_path / "out")
    assert len(paths) == 10
    total = 0
    for index, path in enumerate(paths):
        table = pq.read_table(path)
        total += table.num_rows
        assert all(shard_of([key], 10) == index for key in table["key"].to_pylist())
        expected = sorted(table.to_pylist(), key=lambda row: row_sort_key(row, ["key", "name"]))
        assert table.to_pylist() == expected
    assert total == len(data)
    assert sorted(read_shards(tmp_path / "out", SCHEMA).to_pylist(), key=str) == sorted(data, key=str)


def test_transform_refuses_unknown_columns(tmp_path):
    with pytest.raises(ValueError, match="column 'nope'"):
        WriteParquetShards(tmp_path, SCHEMA, 2, sort_by=["nope"])
    with pytest.raises(ValueError, match="num_shards"):
        WriteParquetShards(tmp_path, SCHEMA, 0, sort_by=["key"])
