"""The ``parquet`` export: rows as one Hugging Face-loadable parquet file with images embedded.

Writes ``data/train-00000-of-00001.parquet`` under the dataset folder with pyarrow alone (no
``datasets`` needed to write). An image column is ``struct<bytes: binary, path: string>`` (the
bytes of the file under ``images/`` and its path relative to the dataset folder), and the schema
metadata carries the ``huggingface`` key (``{"info": {"features": {...}}}``), so::

    datasets.load_dataset("parquet", data_files="DATASET/data/*.parquet", split="train")

decodes image columns as PIL images. Feature encodings: ``{"dtype": "string", "_type": "Value"}``,
``{"_type": "Image"}``, a list of images as ``{"feature": {"_type": "Image"}, "_type": "Sequence"}``
and a list of structs as a JSON list ``[{...}]``. These are the forms ``datasets`` 2.x/3.x writes;
``datasets`` >= 4 writes ``"List"`` instead of ``"Sequence"`` but still reads both, so we write
the older forms and both generations load the file.

Columns, by the rows' fields:
- ``input_prompt`` + ``output_image`` (ShareGPT-4o-Image): ``id``, ``input_prompt``,
  ``output_image`` (Image), ``input_image`` (list of Image; empty for text-to-image);
- ``image`` + ``caption`` (LLaVA): ``id``, ``image`` (Image), ``conversations`` (list of
  ``{from, value}``, as ``llava_record`` makes them);
- otherwise every field whose values are all scalars (str / int / float / bool, or None): an
  ``images/...`` string field becomes an Image column, a field of lists of ``images/...`` strings a
  list of Image; other fields (dicts, mixed types) are left out — ``rows.jsonl`` keeps them.

Rows are written in row groups of ``ROW_GROUP_ROWS`` with only that group's images in memory,
into a temp file that replaces the target at the end (a killed run leaves the old file or none).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from harness.dataset_records import llava_record  # the same conversations as llava.json
from harness.errors import HarnessError

PARQUET_FILE = "data/train-00000-of-00001.parquet"
ROW_GROUP_ROWS = 256
IMAGE_PREFIX = "images/"

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
TURN_TYPE = pa.struct([("from", pa.string()), ("value", pa.string())])
IMAGE_FEATURE: dict = {"_type": "Image"}
IMAGE_LIST_FEATURE: dict = {"feature": IMAGE_FEATURE, "_type": "Sequence"}


def _value_feature(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


TURNS_FEATURE: list = [{"from": _value_feature("string"), "value": _value_feature("string")}]


class Column:
    """One parquet column: its arrow type, its ``datasets`` feature, and how a row fills it."""

    def __init__(self, name: str, arrow_type: pa.DataType, feature: Any, value: Callable[[dict, Path], Any]):
        self.name, self.arrow_type, self.feature, self.value = name, arrow_type, feature, value


def _image_cell(folder: Path, ref: Any) -> dict | None:
    if ref is None:
        return None
    path = folder / ref
    if not path.is_file():
        raise HarnessError(f"parquet export: image {ref!r} is missing ({path})")
    return {"bytes": path.read_bytes(), "path": ref}


def _field(name: str) -> Callable[[dict, Path], Any]:
    return lambda row, folder: row.get(name)


def _float_field(name: str) -> Callable[[dict, Path], Any]:
    """Ints in a float column: arrow will not mix them."""
    return lambda row, folder: None if row.get(name) is None else float(row[name])


def _image_field(name: str) -> Callable[[dict, Path], Any]:
    return lambda row, folder: _image_cell(folder, row.get(name))


def _image_list_field(name: str) -> Callable[[dict, Path], Any]:
    return lambda row, folder: [_image_cell(folder, ref) for ref in row.get(name) or []]


def _id_column() -> Column:
    return Column("id", pa.string(), _value_feature("string"), lambda row, folder: str(row["id"]))


def _string_column(name: str) -> Column:
    return Column(name, pa.string(), _value_feature("string"), _field(name))


def _sharegpt4o_columns() -> list[Column]:
    return [_id_column(), _string_column("input_prompt"),
            Column("output_image", IMAGE_TYPE, IMAGE_FEATURE, _image_field("output_image")),
            Column("input_image", pa.list_(IMAGE_TYPE), IMAGE_LIST_FEATURE, _image_list_field("input_image"))]


def _llava_columns() -> list[Column]:
    return [_id_column(), Column("image", IMAGE_TYPE, IMAGE_FEATURE, _image_field("image")),
            Column("conversations", pa.list_(TURN_TYPE), TURNS_FEATURE,
                   lambda row, folder: llava_record(row)["conversations"])]


_SCALAR_TYPES: dict[str, tuple[pa.DataType, str]] = {
    "str": (pa.string(), "string"), "bool": (pa.bool_(), "bool"),
    "int": (pa.int64(), "int64"), "float": (pa.float64(), "float64")}


def _kind(value: Any) -> str:
    """The column kind one value asks for ("" for values a scalar column cannot hold)."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "image" if value.startswith(IMAGE_PREFIX) else "str"
    if isinstance(value, list) and value and all(isinstance(v, str) and v.startswith(IMAGE_PREFIX) for v in value):
        return "images"
    if isinstance(value, list) and not value:
        return "empty-list"  # fits an image-list column
    return ""


def _column_kind(kinds: set[str]) -> str:
    kinds = kinds - {"none"}
    if kinds == {"int", "float"}:
        return "float"
    if kinds == {"image", "str"}:  # a text field that happens to start with images/ in some rows
        return "str"
    if kinds in ({"images"}, {"images", "empty-list"}):
        return "images"
    if len(kinds) == 1 and "" not in kinds and "empty-list" not in kinds:
        return next(iter(kinds))
    return ""


def _generic_columns(rows: Sequence[dict]) -> list[Column]:
    names: dict[str, set[str]] = {}
    for row in rows:
        for name, value in row.items():
            names.setdefault(name, set()).add("none" if value is None else _kind(value))
    columns = [_id_column()]
    for name, kinds in names.items():
        kind = _column_kind(kinds)
        if name == "id" or not kind:
            continue
        if kind == "image":
            columns.append(Column(name, IMAGE_TYPE, IMAGE_FEATURE, _image_field(name)))
        elif kind == "images":
            columns.append(Column(name, pa.list_(IMAGE_TYPE), IMAGE_LIST_FEATURE, _image_list_field(name)))
        else:
            arrow_type, dtype = _SCALAR_TYPES[kind]
            columns.append(Column(name, arrow_type, _value_feature(dtype),
                                  _float_field(name) if kind == "float" else _field(name)))
    return columns


def columns_for(rows: Sequence[dict]) -> list[Column]:
    """The columns the rows' fields call for (see the module docstring)."""
    fields = {name for row in rows for name in row}
    if {"input_prompt", "output_image"} <= fields:
        return _sharegpt4o_columns()
    if {"image", "caption"} <= fields:
        return _llava_columns()
    return _generic_columns(rows)


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    features = {column.name: column.feature for column in columns}
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema([pa.field(column.name, column.arrow_type) for column in columns], metadata=metadata)


def write_parquet(rows: Sequence[dict], folder: str | Path) -> list[str]:
    """Write ``data/train-00000-of-00001.parquet`` under ``folder``; return its relative path."""
    folder = Path(folder)
    columns = columns_for(rows)
    schema = arrow_schema(columns)
    target = folder / PARQUET_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    # a dot name: a reader globbing data/ never sees the half-written file
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, len(rows), ROW_GROUP_ROWS):
                group = rows[start:start + ROW_GROUP_ROWS]
                arrays = [pa.array([column.value(row, folder) for row in group], type=column.arrow_type)
                          for column in columns]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            if not rows:
                writer.write_table(schema.empty_table())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return [PARQUET_FILE]
