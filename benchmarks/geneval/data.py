"""GenEval data: the 553-prompt evaluation metadata and the 80 detector class names.

The packaged copies (``data/``) are byte-identical to the upstream files (djghosh13/geneval,
commit af4902f, MIT); a user may point at their own copy instead.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from harness.errors import InputError
from harness.fileio import read_jsonl
from harness.registry import declare_kind

#: plugin kind of a named prompt set (``prompts: NAME`` in a spec): a function (per_tag, seed) -> the
#: metadata rows, as ``evaluation_metadata.jsonl`` holds them (the shapes world registers ``shapes``)
PROMPT_SET = declare_kind("geneval-prompt-set")

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
RELATIONS = ("left of", "right of", "above", "below")


def packaged_file(name: str) -> Path:
    return Path(str(resources.files("benchmarks.geneval") / "data" / name))


def load_metadata(path: str | Path | None = None) -> list[dict]:
    """Read an ``evaluation_metadata.jsonl``: one prompt's metadata per line, key order kept.

    Key order matters: the official results store ``json.dumps(metadata)`` as the prompt identity.
    """
    path = Path(path) if path is not None else packaged_file("evaluation_metadata.jsonl")
    if not path.is_file():
        raise InputError("GenEval metadata file not found", path)
    prompts = []
    for number, entry in read_jsonl(path):
        validate_metadata(entry, path, number)
        prompts.append(entry)
    if not prompts:
        raise InputError("no prompts in file", path)
    return prompts


def validate_metadata(entry: object, path: str | Path | None = None, line: int | None = None) -> None:
    """Check one metadata object has the fields the rules read; raise InputError otherwise."""
    def fail(message: str) -> None:
        raise InputError(message, path, line)

    if not isinstance(entry, dict):
        fail("expected a JSON object")
    for key, kind in (("tag", str), ("prompt", str), ("include", list)):
        if not isinstance(entry.get(key), kind):
            fail(f"field {key!r} missing or not a {kind.__name__}")
    for index, clause in enumerate(entry["include"] + entry.get("exclude", [])):
        if not isinstance(clause, dict) or not isinstance(clause.get("class"), str) \
                or not isinstance(clause.get("count"), int):
            fail(f"bad clause {clause!r}: needs 'class' (str) and 'count' (int)")
        if "position" in clause:
            position = clause["position"]
            if (not isinstance(position, list) or len(position) != 2 or position[0] not in RELATIONS
                    or not isinstance(position[1], int) or not 0 <= position[1] < index):
                fail(f"bad position {position!r}: expected [relation, index of an earlier include clause]")


def load_class_names(path: str | Path | None = None) -> list[str]:
    path = Path(path) if path is not None else packaged_file("object_names.txt")
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]
