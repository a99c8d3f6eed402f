"""Complex-Edit data: the Hugging Face dataset ``UCSC-VLAA/Complex-Edit``, read from a local copy.

Two splits, ``test_real`` and ``test_syn`` (about 500 rows each), one row per source image:
``image`` (a ``datasets`` Image) and ``edit``, whose ``compound`` list holds eight entries; entry
``c - 1`` is the instruction of complexity level ``c`` (``compound_instruction``), the level-c
integration of the first ``c`` atomic edits of ``sequence``. ``eval.py`` reads
``dataset[f"test_{image_type}"]`` in order and pairs row ``i`` with the ``i``-th output image in
sorted name order (GPT-Image-Edit names them ``{i:05}.png``).

The copy is a folder of ``*.parquet`` (or ``*.arrow``) shards whose file names (or folders) start
with the split name, as ``huggingface-cli download UCSC-VLAA/Complex-Edit --repo-type dataset``
gives them; ``edit`` may be a struct column or a JSON string. Images are read when needed.
"""
from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from PIL import Image

from harness.errors import InputError
from harness.hashing import hash_bytes, hash_value

IMAGE_TYPES = ("real", "syn")
LEVELS = tuple(range(1, 9))
#: rows per split are not stated upstream; the dataset card says about 500 of each
COLUMNS = ("image", "edit")


@dataclass(frozen=True)
class ComplexEditItem:
    """Row ``index`` of the split: ``sample_id`` is ``{index:05d}`` (eval.py's output name)."""

    sample_id: str
    index: int
    instructions: tuple[str, ...]  # level 1..8


class _Shard:
    """One parquet or arrow file: text cells at once, image cells one row group at a time."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._groups: OrderedDict[int, Any] = OrderedDict()
        try:
            if path.suffix == ".arrow":
                import pyarrow as pa

                source = pa.memory_map(str(path))
                try:
                    self._table = pa.ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    self._table = pa.ipc.open_file(source).read_all()
                self.columns, self.rows, self._starts = self._table.schema.names, self._table.num_rows, [0]
            else:
                import pyarrow.parquet as pq

                self._file = pq.ParquetFile(path)
                self.columns, self.rows = self._file.schema_arrow.names, self._file.metadata.num_rows
                sizes = [self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)]
                self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
            raise InputError(f"not a readable {path.suffix.lstrip('.')} file ({exc})", path) from None

    def edits(self) -> list[Any]:
        if hasattr(self, "_table"):
            return self._table.column("edit").to_pylist()
        values: list[Any] = []
        for batch in self._file.iter_batches(batch_size=256, columns=["edit"]):
            values.extend(batch.column(0).to_pylist())
        return values

    def image_cell(self, index: int) -> Any:
        if hasattr(self, "_table"):
            return self._table.column("image")[index].as_py()
        group = max(i for i, start in enumerate(self._starts) if start <= index)
        with self._lock:
            if group not in self._groups:
                self._groups[group] = self._file.read_row_group(group, columns=["image"]).column(0)
                while len(self._groups) > 2:
                    self._groups.popitem(last=False)
            values = self._groups[group]
        return values[index - self._starts[group]].as_py()


def find_shards(path: Path, split: str) -> list[Path]:
    if path.is_file():
        if path.suffix not in (".parquet", ".arrow"):
            raise InputError("expected a .parquet or .arrow file, or a folder of them", path)
        return [path]
    if not path.is_dir():
        raise InputError("dataset not found (download UCSC-VLAA/Complex-Edit first; see docs/COMPLEX_EDIT.md)", path)
    for suffix in ("*.parquet", "*.arrow"):
        shards = sorted(p for p in path.rglob(suffix) if not any(part.startswith(".") for part in p.parts)
                        and (p.name.startswith(split) or p.parent.name == split))
        if shards:
            return shards
    raise InputError(f"no .parquet or .arrow files of split {split!r} under the folder", path)


def instructions_of(edit: Any, where: str, path: Path) -> tuple[str, ...]:
    if isinstance(edit, str):
        try:
            edit = json.loads(edit)
        except json.JSONDecodeError:
            raise InputError(f"{where}: 'edit' is text but not JSON", path) from None
    compound = edit.get("compound") if isinstance(edit, dict) else None
    if not isinstance(compound, list) or len(compound) != len(LEVELS):
        raise InputError(f"{where}: edit.compound must list {len(LEVELS)} levels", path)
    found = []
    for level, entry in zip(LEVELS, compound):
        text = entry.get("compound_instruction") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: level {level} has no compound_instruction", path)
        found.append(text)
    return tuple(found)


class ComplexEditData:
    """The rows of one split of a local copy; images on demand."""

    def __init__(self, path: str | Path, image_type: str):
        if image_type not in IMAGE_TYPES:
            raise InputError(f"image_type {image_type!r}: expected 'real' or 'syn'")
        self.path, self.image_type = Path(path), image_type
        self.split = f"test_{image_type}"
        self.shards = [_Shard(p) for p in find_shards(self.path, self.split)]
        self.items: list[ComplexEditItem] = []
        self._where: list[tuple[_Shard, int]] = []
        for shard in self.shards:
            lacking = [c for c in COLUMNS if c not in shard.columns]
            if lacking:
                raise InputError(f"lacks column(s) {lacking} (has {shard.columns}); is this UCSC-VLAA/Complex-Edit?",
                                 shard.path)
            for index, edit in enumerate(shard.edits()):
                number = len(self.items)
                self.items.append(ComplexEditItem(f"{number:05d}", number,
                                                  instructions_of(edit, f"row {index + 1}", shard.path)))
                self._where.append((shard, index))
        if not self.items:
            raise InputError(f"no rows in split {self.split}", self.path)
        self._digests: dict[int, str] = {}

    def image_data(self, item: ComplexEditItem) -> bytes:
        shard, index = self._where[item.index]
        value = shard.image_cell(index)
        data, name = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
        if isinstance(data, (bytes, bytearray)) and data:
            return bytes(data)
        if isinstance(name, str) and name:
            candidate = Path(name) if Path(name).is_absolute() else shard.path.parent / name
            if candidate.is_file():
                return candidate.read_bytes()
        raise InputError(f"row {index + 1}: the image has no embedded bytes and no readable file", shard.path)

    def image(self, item: ComplexEditItem) -> Image.Image:
        data = self.image_data(item)
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"row {item.index + 1}: not a readable image ({exc})", self.path) from None
        return image

    def digest(self, item: ComplexEditItem) -> str:
        if item.index not in self._digests:
            self._digests[item.index] = hash_bytes(self.image_data(item))
        return self._digests[item.index]

    @cached_property
    def content_hash(self) -> str:
        return hash_value([list(item.instructions) for item in self.items])
