"""Rescore DPG-Bench from a ``_detail.txt`` file and the question CSV (PROTOCOLS.md 2.4).

The detail file holds every (image, tile, question, answer) the official script (or our run) asked;
replaying it through the official arithmetic gives the official numbers without the VQA model.

Lines are grouped by image path (first-appearance order, which is the order image scores are
averaged in) and by tile (the crop's index among the four official crops of its size). A line is
split at the item's known question text (from the CSV): the rest is the answer, so an answer that
holds ", " ("no, yes", which upstream writes raw) stays whole. Each tile's answers are matched to
the item's questions by text, in order, so a file written with another CSV row set (fixed vs
official mode) still lines up; lines matching no question are counted. A tile missing any answer
makes the image incomplete (official: skipped, as the exception path does).

A question answered more often in one tile than the item asks it (the same line twice, e.g. two
runs appended to one file) is a duplicate: with the same answer it is ignored with a warning
(``strict`` refuses it); with different answers there is no telling which one the official run
scored, so it is refused, naming both lines.
"""
from __future__ import annotations

import posixpath
from collections import Counter, deque
from pathlib import Path
from typing import Iterable, Sequence

from benchmarks.dpg.data import DPGItem, load_question_graph
from benchmarks.dpg.results_io import DetailLine, crop_boxes, read_detail, summary_block
from benchmarks.dpg.rules import MODES, SKIP_REASONS, TileOutcome, aggregate, score_image, score_tile
from harness.errors import InputError


def _key(image_path: str) -> str:
    """The official key of an image: its file name up to the first dot."""
    return posixpath.basename(image_path.replace("\\", "/")).split(".")[0]


def _tile_index(line: DetailLine, detail: Path) -> int:
    boxes = crop_boxes(line.crop[2] - line.crop[0])
    if line.crop not in boxes:
        raise InputError(f"crop {line.crop} is not one of the four official 2x2 crops", detail, line.line)
    return boxes.index(line.crop)


def _duplicates(item: DPGItem, lines: Sequence[DetailLine], detail: Path, strict: bool) -> list[DetailLine]:
    """The tile's lines less its duplicates (see the module notes): a question answered more often
    than the item asks it keeps its first answers; different answers, or ``strict``, stop."""
    asked = Counter(item.questions)
    by_question: dict[str, list[DetailLine]] = {}
    for line in lines:
        by_question.setdefault(line.question, []).append(line)
    dropped: set[int] = set()
    for question, group in by_question.items():
        slots = asked.get(question, 0)
        if not slots or len(group) <= slots:
            continue
        answers = {line.answer for line in group}
        if len(answers) > 1:
            first, other = group[0], next(line for line in group if line.answer != group[0].answer)
            raise InputError(f"question {question!r} of this tile is answered {len(group)} times (the item asks it "
                             f"{slots} time(s)) with different answers: {first.answer!r} on line {first.line}, "
                             f"{other.answer!r} on line {other.line}; which one the official run scored cannot "
                             "be told", detail, other.line)
        if strict:
            raise InputError(f"question {question!r} of this tile is answered {len(group)} times (the item asks it "
                             f"{slots} time(s)), the first time on line {group[0].line}: a duplicate line",
                             detail, group[slots].line)
        dropped.update(id(line) for line in group[slots:])
    return [line for line in lines if id(line) not in dropped]


def _match(item: DPGItem, lines: Sequence[DetailLine]) -> tuple[list[str] | None, int]:
    """(answers in question order, or None if a question has none; lines left unmatched)."""
    queues: dict[str, deque[str]] = {}
    for line in lines:
        queues.setdefault(line.question, deque()).append(line.answer)
    answers: list[str] | None = []
    for question in item.questions:
        queue = queues.get(question)
        if not queue:
            answers = None
            break
        answers.append(queue.popleft())
    if answers is None:
        return None, len(lines)
    return answers, sum(len(queue) for queue in queues.values())


def rescore_detail(detail_txt: str | Path, csv: str | Path, mode: str = "official",
                   pic_num: int | None = None, expected_items: Iterable[str] | None = None,
                   strict: bool = False) -> dict:
    """Official numbers from a detail file.

    ``pic_num``: tiles per image (default: the most tiles any image has). ``expected_items``
    (fixed mode only): the items that should have images, each absent one scored 0 (default: every
    item of the CSV). ``strict`` refuses duplicate lines instead of ignoring them with a warning.
    Returns ``{"overall", "l1", "l2", "images", <counts>, "mode", "pic_num", "model", "image_root",
    "results_path", "image_lines", "duplicate_lines", "warnings"}`` (scores on the 0-100 scale,
    ``images`` = how many image scores were averaged).
    """
    if mode not in MODES:
        raise InputError(f"dpg rescore: mode must be one of {sorted(MODES)}, got {mode!r}")
    rules = MODES[mode]
    detail = Path(detail_txt)
    graph = load_question_graph(csv, rules.drop_first_csv_row)
    lines = read_detail(detail)
    by_image: dict[str, dict[int, list[DetailLine]]] = {}
    for line in lines:
        item = graph.get(_key(line.image_path))
        if item is not None:
            line = line.split_at(item.questions)
        by_image.setdefault(line.image_path, {}).setdefault(_tile_index(line, detail), []).append(line)
    duplicates = 0
    for path, tiles in by_image.items():
        item = graph.get(_key(path))
        if item is None:
            continue
        for index, group in tiles.items():
            kept = _duplicates(item, group, detail, strict)
            duplicates += len(group) - len(kept)
            tiles[index] = kept
    if pic_num is None:
        pic_num = max(max(tiles) for tiles in by_image.values()) + 1
    if not 1 <= int(pic_num) <= 4:
        raise InputError(f"pic_num must be 1 to 4, got {pic_num}")
    pic_num = int(pic_num)

    outcomes, unmatched = [], 0
    for path, tiles in by_image.items():
        key = _key(path)
        item = graph.get(key)
        if item is None:
            outcomes.append(score_image(key, path, None, [], rules))
            unmatched += sum(len(group) for group in tiles.values())
            continue
        unmatched += sum(len(group) for index, group in tiles.items() if index >= pic_num)
        tile_outcomes: list[TileOutcome | str] = []
        for index in range(pic_num):
            answers, left = _match(item, tiles.get(index, []))
            unmatched += left
            tile_outcomes.append("missing_tiles" if answers is None else score_tile(item, answers))
        l2 = [proposition.l2 for proposition in item.propositions.values()]
        outcomes.append(score_image(key, path, l2, tile_outcomes, rules))
    if rules.skipped_images_score_zero:
        seen = {outcome.item_id for outcome in outcomes}
        for item_id in (graph if expected_items is None else expected_items):
            if item_id not in seen:
                l2 = [p.l2 for p in graph[item_id].propositions.values()] if item_id in graph else None
                outcomes.append(score_image(item_id, "", l2, ["missing_tiles"], rules))

    result = aggregate(outcomes, rules)
    image_root = posixpath.dirname(lines[0].image_path)
    results_path = str(detail)
    if results_path.endswith("_detail.txt"):
        results_path = results_path[:-len("_detail.txt")] + ".txt"
    warnings = []
    if duplicates:
        warnings.append(f"{detail}: {duplicates} duplicate line(s) (a question answered again in the same tile, "
                        "with the same answer) ignored; --strict refuses such a file")
    return {"overall": result["overall"], "l1": result["l1"], "l2": result["l2"], "images": result["images"],
            **result["counts"], "detail_lines": len(lines), "unmatched_lines": unmatched,
            "duplicate_lines": duplicates, "warnings": warnings,
            "mode": mode, "pic_num": pic_num, "model": posixpath.basename(image_root),
            "image_root": image_root, "results_path": results_path,
            "image_lines": [[o.path, o.tile_scores, o.score] for o in outcomes if o.skip_reason is None]}


def format_summary(summary: dict) -> str:
    """The official summary block, then what was skipped (or zeroed) and why."""
    block = summary_block(summary["model"], summary["l1"], summary["l2"], summary["image_root"],
                          summary["results_path"], summary["overall"])
    treated = "scored 0" if MODES[summary["mode"]].skipped_images_score_zero else "skipped"
    reasons = ", ".join(f"{reason.replace('_', ' ')} {summary[f'images_{reason}']}" for reason in SKIP_REASONS)
    extra = [
        "",
        f"mode {summary['mode']}, pic_num {summary['pic_num']}: {summary['images']} image score(s) averaged, "
        f"{summary['images_scored']} image(s) with answers for every tile",
        f"images {treated}: {summary['images_skipped'] + summary['images_zeroed']} ({reasons})",
        f"detail lines: {summary['detail_lines']}, matching no question: {summary['unmatched_lines']}"
        + (f", duplicates ignored: {summary['duplicate_lines']}" if summary.get("duplicate_lines") else ""),
    ]
    return block + "\n" + "\n".join(extra)
