"""Rescore an ImgEdit ``result.json`` (``basic_bench.py``'s output, or ``RUN/edited/result.json``).

Does step 1 and step 2 in one go and adds the overall the papers print (the unweighted mean of the
type means). Where the official scripts would crash, on an ``{"error": ...}`` entry (an API call
that failed), a ``null`` or another object, we count the item as a judge failure and leave it out,
as the official numbers are only obtainable after removing it by hand; ``strict=True`` stops
instead, naming the key, as step 1 does. Items of ``result.json`` that the edit list does not know
are left out by step 2; we count them.

Other oddities: a key given twice is read as ``json.load`` reads it (the last value wins) with a
warning naming the key and its lines, and ``strict=True`` refuses it. A value that is a number
(``NaN`` and ``Infinity`` included), a boolean or a list is never a judge reply: such a file is
refused whatever ``strict`` says (it is most likely step 1's ``average_score.json``, not
``result.json``). A byte-order mark is accepted (``json.load`` would stop on it), bytes that are
not UTF-8 are refused naming their line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from benchmarks.imgedit.data import EDIT_TYPES, PAPER_COLUMNS, lines_of_key, load_edits, read_json_pairs
from benchmarks.imgedit.rules import OfficialCrash, overall_score, parse_reply, type_means
from harness.errors import InputError


def rescore_results(result_json: str | Path, edits_json: str | Path, strict: bool = False) -> dict[str, Any]:
    """Official numbers from a result file: ``{"overall", "types", "items", "scored", "no_score",
    "judge_failed", "not_in_edits", "missing", "types_scored", "item_scores", "failed_keys",
    "duplicate_keys", "warnings"}``.

    ``types`` maps each edit type with a scored item to its mean, in the paper's column order;
    ``overall`` is their unweighted mean, unrounded (None when nothing was scored).
    """
    path = Path(result_json)
    edit_types = {item.key: item.edit_type for item in load_edits(edits_json).items}
    text, pairs, repeated = read_json_pairs(path, "ImgEdit result file (result.json)")
    warnings = _repeated_keys(path, text, repeated, strict)
    item_scores: dict[str, float] = {}
    failed: list[str] = []
    no_score = not_in_edits = 0
    for key, value in pairs:
        if isinstance(value, (bool, int, float, list)):
            raise InputError(f"item {key!r} holds {_describe(value)}, not a judge reply: result.json maps each key "
                             "to the judge's reply text (is this step 1's average_score.json?)",
                             path, lines_of_key(text, key)[-1])
        try:
            if not isinstance(value, str):
                raise OfficialCrash(f"item {key!r} holds {_describe(value)} instead of a reply text: the "
                                    "official step 1 stops here (AttributeError)")
            score = parse_reply(value).item_score
        except OfficialCrash as exc:
            if strict:
                raise InputError(str(exc), path, lines_of_key(text, key)[-1]) from None
            failed.append(key)
            continue
        if score is None:
            no_score += 1
        elif key not in edit_types:
            not_in_edits += 1
        else:
            item_scores[key] = score
    means = type_means((edit_types[key], score) for key, score in item_scores.items())
    types = {name: means[name] for name in EDIT_TYPES if name in means}
    present = {key for key, _ in pairs}
    return {"overall": overall_score(types), "types": types, "items": len(pairs), "scored": len(item_scores),
            "no_score": no_score, "judge_failed": len(failed), "not_in_edits": not_in_edits,
            "missing": sum(key not in present for key in edit_types), "types_scored": len(types),
            "item_scores": item_scores, "failed_keys": failed, "duplicate_keys": list(repeated), "warnings": warnings}


def _repeated_keys(path: Path, text: str, repeated: dict[str, int], strict: bool) -> list[str]:
    """The warning for keys given more than once (read as ``json.load`` reads them: the last value
    wins), or with ``strict`` an ``InputError``."""
    if not repeated:
        return []
    first, count = next(iter(repeated.items()))
    lines = ", ".join(str(line) for line in lines_of_key(text, first))
    if strict:
        raise InputError(f"key {first!r} appears {count} times (lines {lines}); without --strict the last value "
                         "is used, as json.load does, with a warning", path, lines_of_key(text, first)[-1])
    more = f" and {len(repeated) - 1} more key(s)" if len(repeated) > 1 else ""
    return [f"{path}: key {first!r} appears {count} times (lines {lines}){more}: the last value of each is "
            "scored, as json.load (the official step 1) keeps it; --strict refuses such a file"]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"an error entry ({value['error']!r})" if "error" in value else "an object"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({json.dumps(value)})"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short text report of :func:`rescore_results` (or a run's scores and counts merged)."""
    def number(value: float | None, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    overall = summary.get("overall")
    lines = ["ImgEdit-Bench Basic, judge scale 1-5; overall = unweighted mean of the edit-type means",
             f"items {summary.get('items', 0)}, scored {summary.get('scored', 0)}, "
             f"no score line (dropped) {summary.get('no_score', 0)}, "
             f"judge failures (excluded) {summary.get('judge_failed', 0)}"
             + (f", not in the edit list {summary['not_in_edits']}" if summary.get("not_in_edits") else "")
             + (f", edits without a reply {summary['missing']}" if summary.get("missing") else ""),
             f"Overall      {number(overall, 5)} (printed as {number(overall)})"]
    types = summary.get("types", {})
    for name, value in types.items():
        lines.append(f"{PAPER_COLUMNS.get(name, name):<12} {number(value)}")
    if len(types) < len(EDIT_TYPES):
        absent = [PAPER_COLUMNS[name] for name in EDIT_TYPES if name not in types]
        lines.append(f"only {len(types)} of {len(EDIT_TYPES)} edit types scored (none: {', '.join(absent)}): "
                     "the overall is not comparable with published numbers")
    return "\n".join(lines)
