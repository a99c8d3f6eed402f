"""ImgEdit-Bench Basic data: the edit list (``basic_edit.json``), the judge prompts (``prompts.json``)
and the source images (``Benchmark.tar`` from the Hugging Face dataset ``sysuyy/ImgEdit``).

None of these is vendored (the upstream repository states no license); the spec names the files.
Upstream reads them with ``json.load`` and no checks; we check what the official scripts would trip
over later (an edit type without a judge prompt is a ``KeyError`` there) and stop with an
``InputError`` that names the file, the line and the key.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from PIL import Image

from harness.errors import InputError
from harness.fileio import read_text
from harness.hashing import hash_file, hash_value
from harness.images import load_image
from harness.safety import safe_name

#: the nine Basic edit types, in the order of the paper's table (compose is printed "Hybrid")
EDIT_TYPES = ("add", "adjust", "extract", "replace", "remove", "background", "style", "compose", "action")
PAPER_COLUMNS = {"add": "Add", "adjust": "Adjust", "extract": "Extract", "replace": "Replace",
                 "remove": "Remove", "background": "Background", "style": "Style", "compose": "Hybrid",
                 "action": "Action"}
#: the literal the official script replaces with the instruction (``str.replace``, every occurrence)
PLACEHOLDER = "<edit_prompt>"

#: content hashes (``edits_content_hash``, ``prompts_content_hash``) of the upstream files, so the
#: protocol card can say which release a run used; line endings and JSON spacing do not change them
KNOWN_EDIT_FILES = {
    "d4425d3ae204b70c": "PKU-YuanGroup/ImgEdit b3eb8e7 (2025-06-16, current)",
}
OLD_EDIT_FILE = "b74595fa1fbec98e"  # c14480a (2025-05-27): 'alter' for adjust, 57 other instructions
KNOWN_PROMPT_FILES = {
    "9edc442f0f5e8156": "PKU-YuanGroup/ImgEdit c14480a (2025-05-27, unchanged since)",
}
_REQUIRED_FIELDS = ("id", "prompt", "edit_type")


@dataclass(frozen=True)
class EditItem:
    """One Basic edit: ``key`` names the output (``<key>.png``), ``image_id`` is the source image
    path relative to the image root (``"animal/000342021.jpg"``)."""

    key: str
    image_id: str
    instruction: str
    edit_type: str


@dataclass(frozen=True)
class EditSet:
    path: Path
    items: tuple[EditItem, ...]

    @cached_property
    def content_hash(self) -> str:
        return edits_content_hash(self.items)

    @property
    def release(self) -> str:
        return KNOWN_EDIT_FILES.get(self.content_hash, "unknown (not an upstream release)")

    @property
    def per_type(self) -> dict[str, int]:
        counts = {name: 0 for name in EDIT_TYPES}
        for item in self.items:
            counts[item.edit_type] += 1
        return {name: count for name, count in counts.items() if count}


def edits_content_hash(items: tuple[EditItem, ...] | list[EditItem]) -> str:
    return hash_value([[i.key, i.image_id, i.instruction, i.edit_type] for i in items])


class _Pairs(list):
    """A JSON object as its (key, value) pairs in file order (so duplicate keys can be seen)."""


def read_json_pairs(path: Path, what: str) -> tuple[str, list[tuple[str, Any]], dict[str, int]]:
    """The file's text, its top-level (key, value) pairs as ``json.load`` keeps them (one per key:
    the last value, at the place of the first; nested objects plain dicts), and the keys given
    more than once with their counts. Bad bytes, bad JSON and a top level that is not an object
    raise ``InputError`` naming the line."""
    if not path.is_file():
        raise InputError(f"{what} not found", path)
    text = read_text(path, "utf-8-sig")
    try:
        pairs = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path, exc.lineno) from None
    if not isinstance(pairs, _Pairs):
        raise InputError(f"expected a JSON object {{key: ...}} at the top of the {what}", path, 1)
    values: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for key, value in pairs:
        values[key] = _as_dict(value)
        counts[key] = counts.get(key, 0) + 1
    return text, list(values.items()), {key: count for key, count in counts.items() if count > 1}


def read_json_object(path: Path, what: str) -> tuple[str, list[tuple[str, Any]]]:
    """``read_json_pairs``, refusing a key given twice (``json.load`` would keep the last silently:
    two edits would share one output)."""
    text, pairs, repeated = read_json_pairs(path, what)
    if repeated:
        key = next(iter(repeated))
        raise InputError(f"key {key!r} appears twice", path, line_of_key(text, key))
    return text, pairs


def lines_of_key(text: str, key: str) -> list[int | None]:
    """Every line where ``"key":`` opens an entry (``[None]`` if none). Inside a JSON string a quote
    is escaped, so a match right after the start of a line, a ``{`` or a ``,`` is a real key."""
    pattern = re.compile(r"(?:^|[{,])\s*(" + re.escape(json.dumps(key)) + r")\s*:", re.MULTILINE)
    return [text.count("\n", 0, match.start(1)) + 1 for match in pattern.finditer(text)] or [None]


def line_of_key(text: str, key: str) -> int | None:
    """The line where ``"key":`` first opens an entry."""
    return lines_of_key(text, key)[0]


def _as_dict(value: Any) -> Any:
    """Undo ``object_pairs_hook`` for a nested value (the last of duplicate keys wins, as json.load)."""
    if isinstance(value, _Pairs):
        return {k: _as_dict(v) for k, v in value}
    if isinstance(value, list):
        return [_as_dict(v) for v in value]
    return value


def load_edits(path: str | Path) -> EditSet:
    """Read ``basic_edit.json``: ``{key: {"id", "prompt", "edit_type"}}``, in file order.

    An unknown edit type stops with the key and its line. The pre-2025-06-16 file, whose adjust
    items say ``alter``, is refused: upstream renamed the type and rewrote 57 instructions in
    b3eb8e7, so mapping the name would still not give the benchmark everyone reports on.
    """
    path = Path(path)
    text, pairs = read_json_object(path, "ImgEdit edit list (basic_edit.json)")
    items = []
    for key, entry in pairs:
        line = line_of_key(text, key)
        if not isinstance(entry, dict):
            raise InputError(f"item {key!r}: expected an object with 'id', 'prompt', 'edit_type'", path, line)
        for field in _REQUIRED_FIELDS:
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise InputError(f"item {key!r}: field {field!r} missing, empty or not a string", path, line)
        edit_type = entry["edit_type"]
        if edit_type == "alter":
            raise InputError(
                f"item {key!r} has edit_type 'alter': this is the edit list from before 2025-06-16 "
                "(ImgEdit c14480a), where the judge prompts had no 'alter' and every adjust item failed "
                "upstream. ImgEdit b3eb8e7 renamed it 'adjust' and rewrote 57 instructions; use the "
                "current Benchmark/Basic/basic_edit.json", path, line)
        if edit_type not in EDIT_TYPES:
            raise InputError(f"item {key!r}: unknown edit_type {edit_type!r} (known: {', '.join(EDIT_TYPES)})",
                             path, line)
        safe_name(key, "edit key", path, line)  # names the output file
        safe_name(entry["id"], f"item {key!r}: image id", path, line)  # names the source image
        items.append(EditItem(key, entry["id"], entry["prompt"], edit_type))
    if not items:
        raise InputError("no edits in file", path)
    return EditSet(path, tuple(items))


def load_judge_prompts(path: str | Path, needed: set[str] | frozenset[str] = frozenset(EDIT_TYPES)) -> dict[str, str]:
    """Read ``prompts.json``: one judge prompt per edit type, each holding ``<edit_prompt>``.

    Every type in ``needed`` must have a prompt (upstream: a ``KeyError`` on each such item, caught
    and stored as an error reply); extra types are kept and unused.
    """
    path = Path(path)
    text, pairs = read_json_object(path, "ImgEdit judge prompts (prompts.json)")
    prompts = {}
    for edit_type, prompt in pairs:
        line = line_of_key(text, edit_type)
        if not isinstance(prompt, str):
            raise InputError(f"prompt {edit_type!r} is not a string", path, line)
        if PLACEHOLDER not in prompt:  # the judge would never see the instruction
            raise InputError(f"prompt {edit_type!r} has no {PLACEHOLDER} placeholder", path, line)
        prompts[edit_type] = prompt
    missing = sorted(set(needed) - set(prompts), key=EDIT_TYPES.index)
    if missing:
        raise InputError(f"no judge prompt for edit type(s) {', '.join(missing)}", path)
    return prompts


def prompts_content_hash(prompts: dict[str, str]) -> str:
    return hash_value(prompts)


def fill_prompt(template: str, instruction: str) -> str:
    """The judge text: the type's prompt with the placeholder replaced (as ``str.replace``)."""
    return template.replace(PLACEHOLDER, instruction)


class SourceImages:
    """Source images under the image root (the unpacked ``Benchmark.tar``), read only when needed.

    ``digest`` hashes the file's bytes (cached), so a replaced image changes generation cache keys.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError("ImgEdit source image folder not found (unpack Benchmark.tar from the "
                             "Hugging Face dataset sysuyy/ImgEdit and point 'images' at it)", self.root)
        self._digests: dict[str, str] = {}

    def path(self, item: EditItem) -> Path:
        return self.root / item.image_id

    def digest(self, item: EditItem) -> str:
        if item.image_id not in self._digests:
            path = self.path(item)
            if not path.is_file():
                raise InputError(f"source image of item {item.key!r} not found", path)
            self._digests[item.image_id] = hash_file(path)
        return self._digests[item.image_id]

    def load(self, item: EditItem) -> Image.Image:
        return load_image(self.path(item))
