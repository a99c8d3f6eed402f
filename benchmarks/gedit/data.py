"""GEdit-Bench data: the Hugging Face dataset ``stepfun-ai/GEdit-Bench``, read from a local copy.

One row per (instruction language, item): ``task_type`` (one of the eleven :data:`TASK_TYPES`),
``key``, ``instruction``, ``instruction_language`` (``en`` or ``cn``), ``input_image`` (the image
the judge sees as the original: ``<key>_SRCIMG.png`` upstream), ``input_image_raw`` (the image the
model edits, resized first by ``generate_image_example.py``) and ``Intersection_exist`` (bool: the
item is in the "intersection" subset). 606 rows per language, 1212 in all (split ``train``).

The copy is a folder of ``*.parquet`` or ``*.arrow`` shards (a ``huggingface-cli download
stepfun-ai/GEdit-Bench --repo-type dataset --local-dir DIR`` snapshot, or ``save_to_disk``
output), or a single shard. Image columns are ``struct<bytes, path>`` as ``datasets`` writes them.
Only the text columns are read up front; images are read when a request or the judge needs them
(arrow shards are memory-mapped; parquet row groups are read one at a time and the last two kept).
"""
from __future__ import annotations

import io
import math
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from harness.errors import InputError
from harness.hashing import hash_bytes, hash_value

#: the eleven edit types, in upstream's GROUPS order (test_gedit_score.py, calculate_statistics.py)
TASK_TYPES: tuple[str, ...] = (
    "background_change", "color_alter", "material_alter", "motion_change", "ps_human", "style_change",
    "subject-add", "subject-remove", "subject-replace", "text_change", "tone_transfer")
#: column titles of the GPT-Image-Edit / Step1X-Edit tables
PAPER_COLUMNS = {"background_change": "BG Change", "color_alter": "Color Alt.", "material_alter": "Mat. Mod.",
                 "motion_change": "Motion", "ps_human": "Portrait", "style_change": "Style", "subject-add": "Add",
                 "subject-remove": "Remove", "subject-replace": "Replace", "text_change": "Text",
                 "tone_transfer": "Tone"}
LANGUAGES = ("en", "cn")
#: rows per language in the release (evalscope's statistics of the dataset: 40 40 40 40 70 60 60 57 60 99 40)
OFFICIAL_ITEMS = 606
TEXT_COLUMNS = ("task_type", "key", "instruction", "instruction_language", "Intersection_exist")
IMAGE_COLUMNS = ("input_image", "input_image_raw")


@dataclass(frozen=True)
class GEditItem:
    """One row. ``sample_id`` is upstream's output path without ``fullset/`` and ``.png``:
    ``<task_type>/<language>/<key>`` (a key repeated within a type and language gets ``__2``, ...)."""

    sample_id: str
    task_type: str
    key: str
    instruction: str
    language: str
    intersection: bool
    row: int  # 0-based row number over all shards


class _Shard:
    """One parquet or arrow file: its rows, and one image cell at a time."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._groups: OrderedDict[tuple[int, str], Any] = OrderedDict()
        if path.suffix == ".arrow":
            import pyarrow as pa

            try:
                self._source = pa.memory_map(str(path))
                try:
                    self._table = pa.ipc.open_stream(self._source).read_all()
                except pa.ArrowInvalid:
                    self._table = pa.ipc.open_file(self._source).read_all()
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
                raise InputError(f"not a readable arrow file ({exc})", path) from None
            self.columns = self._table.schema.names
            self.rows = self._table.num_rows
            self._starts = [0]
        else:
            import pyarrow.parquet as pq

            try:
                self._file = pq.ParquetFile(path)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"not a readable parquet file ({exc})", path) from None
            self.columns = self._file.schema_arrow.names
            self.rows = self._file.metadata.num_rows
            sizes = [self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)]
            self._starts = [sum(sizes[:i]) for i in range(len(sizes))]

    def text_rows(self, columns: tuple[str, ...]) -> list[dict]:
        if hasattr(self, "_table"):
            return self._table.select(list(columns)).to_pylist()
        rows: list[dict] = []
        for batch in self._file.iter_batches(batch_size=256, columns=list(columns)):
            rows.extend(batch.to_pylist())
        return rows

    def cell(self, index: int, column: str) -> Any:
        if hasattr(self, "_table"):
            return self._table.column(column)[index].as_py()
        group = max(i for i, start in enumerate(self._starts) if start <= index)
        with self._lock:
            key = (group, column)
            if key not in self._groups:
                self._groups[key] = self._file.read_row_group(group, columns=[column]).column(0)
                while len(self._groups) > 2:
                    self._groups.popitem(last=False)
            values = self._groups[key]
        return values[index - self._starts[group]].as_py()


def find_shards(path: Path, split: str | None = None) -> list[Path]:
    """The data files of a local copy: one file, or the ``*.parquet`` (else ``*.arrow``) files
    under a folder, sorted; with ``split``, only those whose name or folder starts with it."""
    if path.is_file():
        if path.suffix not in (".parquet", ".arrow"):
            raise InputError("expected a .parquet or .arrow file, or a folder of them", path)
        return [path]
    if not path.is_dir():
        raise InputError("dataset not found (download stepfun-ai/GEdit-Bench first; see docs/GEDIT.md)", path)
    for suffix in ("*.parquet", "*.arrow"):
        shards = sorted(p for p in path.rglob(suffix) if not any(part.startswith(".") for part in p.parts))
        if split is not None:
            shards = [p for p in shards if p.name.startswith(split) or p.parent.name == split]
        if shards:
            return shards
    raise InputError(f"no .parquet or .arrow files{f' of split {split!r}' if split else ''} under the folder", path)


def image_bytes(value: Any, where: str, path: Path) -> bytes:
    """The bytes of a ``datasets`` Image cell (``{"bytes", "path"}``); a cell with only a path is
    read from that path (relative paths: beside the shard)."""
    data, name = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
    if isinstance(data, (bytes, bytearray)) and data:
        return bytes(data)
    if isinstance(name, str) and name:
        candidate = Path(name) if Path(name).is_absolute() else path.parent / name
        if candidate.is_file():
            return candidate.read_bytes()
    raise InputError(f"{where}: the image has no embedded bytes and no readable file ({name!r})", path)


def decode(data: bytes, where: str, path: Path) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # noqa: BLE001 - PIL raises several types for bad images
        raise InputError(f"{where}: not a readable image ({exc})", path) from None
    return image


def calculate_dimensions(target_area: int, ratio: float) -> tuple[int, int]:
    """``calculate_dimensions`` of ``generate_image_example.py``: the width and height (multiples of
    32, Python's ``round``) nearest ``target_area`` for the aspect ``ratio`` = width / height."""
    width = math.sqrt(target_area * ratio)
    height = width / ratio
    width = round(width / 32) * 32
    height = round(height / 32) * 32
    area = width * height
    if area < target_area:
        width += 32
    elif area > target_area:
        width -= 32
    return width, height


class GEditData:
    """The rows of one local copy; images on demand."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.shards = [_Shard(p) for p in find_shards(self.path)]
        self.items: list[GEditItem] = []
        self._where: list[tuple[_Shard, int]] = []
        seen: Counter = Counter()
        for shard in self.shards:
            lacking = [c for c in TEXT_COLUMNS + IMAGE_COLUMNS if c not in shard.columns]
            if lacking:
                raise InputError(f"lacks column(s) {lacking} (has {shard.columns}); is this stepfun-ai/GEdit-Bench?",
                                 shard.path)
            for index, row in enumerate(shard.text_rows(TEXT_COLUMNS)):
                number = len(self.items)
                where = f"row {index + 1}"
                task_type, key, language = row["task_type"], row["key"], row["instruction_language"]
                if task_type not in TASK_TYPES:
                    raise InputError(f"{where}: unknown task_type {task_type!r} (known: {', '.join(TASK_TYPES)})",
                                     shard.path, index + 1)
                if language not in LANGUAGES:
                    raise InputError(f"{where}: instruction_language {language!r} is neither 'en' nor 'cn'",
                                     shard.path, index + 1)
                if not isinstance(key, str) or not key or "/" in key or not isinstance(row["instruction"], str):
                    raise InputError(f"{where}: key {key!r} or instruction is not usable", shard.path, index + 1)
                if not isinstance(row["Intersection_exist"], bool):
                    raise InputError(f"{where}: Intersection_exist must be a bool, got {row['Intersection_exist']!r}",
                                     shard.path, index + 1)
                base = f"{task_type}/{language}/{key}"
                seen[base] += 1
                sample_id = base if seen[base] == 1 else f"{base}__{seen[base]}"
                self.items.append(GEditItem(sample_id, task_type, key, row["instruction"], language,
                                            row["Intersection_exist"], number))
                self._where.append((shard, index))
        if not self.items:
            raise InputError("no rows in the dataset", self.path)
        self.duplicates = sum(count - 1 for count in seen.values())
        self._digests: dict[tuple[int, str], str] = {}

    def select(self, language: str, subset: str) -> list[GEditItem]:
        return [item for item in self.items
                if item.language == language and (subset == "full" or item.intersection)]

    def image_data(self, item: GEditItem, column: str) -> bytes:
        shard, index = self._where[item.row]
        return image_bytes(shard.cell(index, column), f"row {index + 1} column {column}", shard.path)

    def image(self, item: GEditItem, column: str) -> Image.Image:
        shard, index = self._where[item.row]
        return decode(self.image_data(item, column), f"row {index + 1} column {column}", shard.path)

    def digest(self, item: GEditItem, column: str) -> str:
        key = (item.row, column)
        if key not in self._digests:
            self._digests[key] = hash_bytes(self.image_data(item, column))
        return self._digests[key]

    @cached_property
    def content_hash(self) -> str:
        """Of the text columns of every row (images are identified per request by their bytes)."""
        return hash_value([[i.task_type, i.key, i.instruction, i.language, i.intersection] for i in self.items])

    def counts(self, items: list[GEditItem]) -> dict[str, int]:
        per_type = Counter(item.task_type for item in items)
        return {name: per_type[name] for name in TASK_TYPES if per_type[name]}


def model_input(raw: Image.Image, mode: str) -> Image.Image:
    """The image the model edits: ``example_512`` resizes ``input_image_raw`` to about 512 x 512
    pixels at its aspect ratio (``generate_image_example.py``; PIL's default filter), ``raw`` keeps it."""
    if mode == "raw":
        return raw
    width, height = calculate_dimensions(512 * 512, raw.width / raw.height)
    return raw.resize((width, height))


MODEL_INPUTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "example_512": lambda raw: model_input(raw, "example_512"), "raw": lambda raw: model_input(raw, "raw")}
