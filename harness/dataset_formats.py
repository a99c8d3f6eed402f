"""Dataset layouts: the exports a recipe writes and the readers trainers use.

- ``sharegpt4o``: ShareGPT-4o-Image / Janus-4o ``train_janus.py`` layout. One JSON file holding a
  list of ``{"input_prompt", "output_image", "input_image"?: [...]}``; image paths are relative to
  the JSON file's folder; ``input_image`` present and non-empty means an edit sample.
- ``llava``: the LLaVA / ShareGPT4V conversation layout, ``{"id", "image", "conversations":
  [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": ...}]}``.
- ``parquet``: the same records in ``data/train-00000-of-00001.parquet`` with images embedded, so
  ``datasets.load_dataset("parquet", data_files=...)`` gives PIL images (see
  ``harness.dataset_parquet``).

Readers check every record and name the file and the record at fault.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.dataset_parquet import write_parquet
from harness.dataset_records import (DEFAULT_CAPTION_QUESTION, LLAVA_FILE, SHAREGPT4O_FILE,  # noqa: F401
                                     llava_record, sharegpt4o_record)
from harness.errors import HarnessError, InputError
from harness.fileio import atomic_write_text


@dataclass(frozen=True)
class Export:
    """A dataset layout: the row fields it needs and a writer returning the files it wrote."""

    required_fields: tuple[str, ...]
    write: Callable[[Sequence[dict], Path], list[str]]


# ----------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class ImageSample:
    """One Janus-4o training record: text-to-image when ``input_images`` is empty, else an edit."""

    prompt: str
    output_image: Path
    input_images: tuple[Path, ...] = ()
    id: str = ""

    @property
    def is_edit(self) -> bool:
        return bool(self.input_images)


@dataclass(frozen=True)
class Conversation:
    """One LLaVA-layout record: an optional image and alternating human / gpt turns."""

    id: str
    image: Path | None
    turns: tuple[tuple[str, str], ...]  # (from, value)


def _write_json(name: str, make: Callable[[dict], dict]) -> Callable[[Sequence[dict], Path], list[str]]:
    def write(rows: Sequence[dict], folder: Path) -> list[str]:
        atomic_write_text(folder / name, json.dumps([make(row) for row in rows], ensure_ascii=False, indent=1) + "\n")
        return [name]
    return write


EXPORTS: dict[str, Export] = {
    "sharegpt4o": Export(("input_prompt", "output_image"), _write_json(SHAREGPT4O_FILE, sharegpt4o_record)),
    "llava": Export(("image", "caption"), _write_json(LLAVA_FILE, llava_record)),
    "parquet": Export((), write_parquet),
}


# ----------------------------------------------------------------------------------------------
# readers


def _load_list(path: Path) -> list:
    if not path.is_file():
        raise InputError("dataset file not found", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path, exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc})", path) from None
    if not isinstance(data, list):
        raise InputError("expected a JSON list of records", path)
    return data


def _image(path: Path, index: int, value: Any, field: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(f"record {index}: {field} must be a non-empty path string, got {value!r}", path)
    image = path.parent / value  # read only; an absolute path is allowed (a dataset listing its images)
    if not image.is_file():
        raise InputError(f"record {index}: {field} {value!r} does not exist ({image})", path)
    return image


def read_sharegpt4o(path: str | Path) -> list[ImageSample]:
    """Read a ShareGPT-4o-Image layout JSON file; image paths resolve against its folder."""
    path = Path(path)
    samples = []
    for index, record in enumerate(_load_list(path)):
        if not isinstance(record, dict):
            raise InputError(f"record {index}: expected an object, got {type(record).__name__}", path)
        prompt = record.get("input_prompt")
        if not isinstance(prompt, str):
            raise InputError(f"record {index}: input_prompt must be a string, got {prompt!r}", path)
        inputs = record.get("input_image") or []
        if not isinstance(inputs, list):
            raise InputError(f"record {index}: input_image must be a list of paths, got {inputs!r}", path)
        samples.append(ImageSample(
            prompt=prompt, output_image=_image(path, index, record.get("output_image"), "output_image"),
            input_images=tuple(_image(path, index, v, "input_image") for v in inputs),
            id=str(record.get("id", index))))
    return samples


def read_llava(path: str | Path) -> list[Conversation]:
    """Read a LLaVA conversation layout JSON file (records without ``image`` are text-only)."""
    path = Path(path)
    records = []
    for index, record in enumerate(_load_list(path)):
        if not isinstance(record, dict):
            raise InputError(f"record {index}: expected an object, got {type(record).__name__}", path)
        turns = record.get("conversations")
        if not isinstance(turns, list) or not turns or not all(
                isinstance(t, dict) and t.get("from") in ("human", "gpt") and isinstance(t.get("value"), str)
                for t in turns):
            raise InputError(f"record {index}: conversations must be a non-empty list of "
                             f"{{from: human|gpt, value: str}}", path)
        image = _image(path, index, record["image"], "image") if record.get("image") is not None else None
        records.append(Conversation(str(record.get("id", index)), image,
                                    tuple((t["from"], t["value"]) for t in turns)))
    return records


def prompt_words(dataset: Path) -> list[str]:
    """The words of a dataset's texts, as the tiny Janus's word-level tokenizer splits them (lowercase
    runs of letters and digits): the prompts of its ShareGPT-4o-Image export and the turns of its
    LLaVA export, whichever it has."""
    texts: list[str] = []
    if (dataset / LLAVA_FILE).is_file():
        texts += [value for conversation in read_llava(dataset / LLAVA_FILE) for _, value in conversation.turns]
    if (dataset / SHAREGPT4O_FILE).is_file() or not texts:
        texts += [sample.prompt for sample in read_sharegpt4o(dataset_json(dataset))]
    return sorted({word for text in texts for word in re.findall(r"\w+", text.lower())})


def dataset_json(folder: Path) -> Path:
    path = folder / SHAREGPT4O_FILE
    if not path.is_file():
        raise HarnessError(f"{folder} has no {SHAREGPT4O_FILE}: add sharegpt4o to the recipe's export list"
                           " (or llava, for the words of a tiny Janus)")
    return path
