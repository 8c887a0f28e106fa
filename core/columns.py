"""Parquet columns of the pipeline's tables: the field shapes they all use and the mask columns two share."""

from __future__ import annotations

import pyarrow as pa


def required(name: str, kind: pa.DataType) -> pa.Field:
    """A column that holds no nulls."""
    return pa.field(name, kind, nullable=False)


def required_list(name: str, item: pa.DataType) -> pa.Field:
    """A list column, neither it nor its items null."""
    return required(name, pa.list_(required("item", item)))


#: A mask of an image, as ``data/pairs`` and the proposals tables store it: ``mask_rle`` the COCO
#: RLE ``counts`` string of a ``height × width`` mask, ``bbox`` COCO's ``[x, y, w, h]`` of the mask
#: and ``area`` its pixel count.
MASK_FIELDS = (
    required("mask_rle", pa.string()),
    required("height", pa.int32()),
    required("width", pa.int32()),
    required_list("bbox", pa.float32()),
    required("area", pa.int64()),
)
