"""The shared Parquet column shapes."""

from __future__ import annotations

import pyarrow as pa

from core.columns import MASK_FIELDS, required, required_list


def test_required_columns_and_lists_hold_no_nulls() -> None:
    assert required("area", pa.int64()) == pa.field("area", pa.int64(), nullable=False)
    field = required_list("bbox", pa.float32())
    assert not field.nullable and not field.type.value_field.nullable and field.type.value_type == pa.float32()
    assert field.type.value_field.name == "item"  # pyarrow's default item name: files keep their bytes


def test_mask_fields() -> None:
    assert [f.name for f in MASK_FIELDS] == ["mask_rle", "height", "width", "bbox", "area"]
    assert (
        pa.table(
            {"mask_rle": ["2"], "height": [1], "width": [2], "bbox": [[0.0, 0.0, 2.0, 1.0]], "area": [2]},
            schema=pa.schema(MASK_FIELDS),
        ).num_rows
        == 1
    )
