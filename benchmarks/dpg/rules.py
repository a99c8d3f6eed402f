"""DPG-Bench scoring, the arithmetic of the official ``compute_dpg_bench.py`` (PROTOCOLS.md 2.3, 2.5).

Per tile: every question of the item is answered; a question scores 1.0 iff its answer is exactly
``"yes"``. Dependency zeroing then walks the questions in CSV order and each question's parents in
listed order (0 skipped): a parent whose *current* score is 0 zeroes the question. Updates happen in
place, so zeroing cascades forward only; a parent listed later in the CSV is read before its own
parents could zero it. A parent id the item does not have raises (upstream: KeyError), unless an
earlier parent already zeroed the question. Tile score = mean over all questions after zeroing;
image score = mean of the tile scores, summed left to right as upstream.

Two modes (``MODES``): ``official`` reproduces every quirk; ``fixed`` keeps the first CSV row,
scores skipped images 0 instead of leaving them out, and pools categories over all tiles after
zeroing. Numbers from ``fixed`` are never comparable with published tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from benchmarks.dpg.data import DPGItem


@dataclass(frozen=True)
class ModeRules:
    drop_first_csv_row: bool
    skipped_images_score_zero: bool
    categories_from_all_tiles: bool

    def to_protocol(self) -> dict:
        return {
            "drop_first_csv_row": self.drop_first_csv_row,
            "failed_images": "scored 0" if self.skipped_images_score_zero else "skipped (not averaged)",
            "categories": ("all tiles, after dependency zeroing" if self.categories_from_all_tiles
                           else "last tile only, raw answers before zeroing"),
        }


MODES = {
    "official": ModeRules(drop_first_csv_row=True, skipped_images_score_zero=False,
                          categories_from_all_tiles=False),
    "fixed": ModeRules(drop_first_csv_row=False, skipped_images_score_zero=True,
                       categories_from_all_tiles=True),
}

#: why an image got no score, in the order a tile-by-tile replay meets them
SKIP_REASONS = ("not_in_csv", "missing_parent", "judge_failed", "missing_tiles")


class MissingParentError(Exception):
    """A dependency names a proposition the item does not have (upstream: KeyError)."""


def answer_score(answer: str) -> float:
    """Quirk 5: exact string match, so "Yes", "yes." and " yes" score 0."""
    return 1.0 if answer == "yes" else 0.0


def zero_out(item: DPGItem, raw: Sequence[float]) -> list[float]:
    """Dependency zeroing in the official order; raises ``MissingParentError``."""
    scores = dict(zip(item.qids, raw, strict=True))
    for qid, proposition in item.propositions.items():
        for parent in proposition.dependency:
            if parent == 0:
                continue
            if parent not in scores:
                raise MissingParentError(f"item {item.item_id}: proposition {qid} depends on "
                                         f"{parent}, which the item does not have")
            if scores[parent] == 0:
                scores[qid] = 0.0
                break
    return [scores[qid] for qid in item.qids]


@dataclass
class TileOutcome:
    """One tile's answers (one per question, item order), raw and zeroed scores, tile score."""

    answers: list[str]
    raw: list[float]
    zeroed: list[float] | None
    score: float | None
    error: str | None = None


def score_tile(item: DPGItem, answers: Sequence[str]) -> TileOutcome:
    if len(answers) != len(item.qids):
        raise ValueError(f"item {item.item_id}: {len(answers)} answers for {len(item.qids)} questions")
    raw = [answer_score(answer) for answer in answers]
    try:
        zeroed = zero_out(item, raw)
    except MissingParentError as exc:
        return TileOutcome(list(answers), raw, None, None, f"missing_parent: {exc}")
    return TileOutcome(list(answers), raw, zeroed, sum(zeroed) / len(zeroed))


@dataclass
class ImageOutcome:
    """One grid: its tile scores and image score, or why it was skipped; its category entries."""

    item_id: str
    path: str
    tile_scores: list[float] = field(default_factory=list)
    score: float | None = None
    skip_reason: str | None = None
    detail: str = ""
    categories: list[tuple[str, float]] = field(default_factory=list)  # (L2, question score)


def score_image(item_id: str, path: str, l2: Sequence[str] | None, tiles: Sequence[TileOutcome | str],
                mode: ModeRules) -> ImageOutcome:
    """Combine an image's tiles (in tile order). ``l2`` holds the L2 category of each question
    (None: the item is not in the CSV); a tile is an outcome or the reason it has none
    ("judge_failed", "missing_tiles"). The first problem met, tile by tile, names the skip."""
    outcome = ImageOutcome(item_id, path)
    if l2 is None:
        outcome.skip_reason, outcome.detail = "not_in_csv", f"item {item_id} is not in the CSV"
    elif not tiles:
        outcome.skip_reason, outcome.detail = "missing_tiles", "no tiles"
    else:
        for index, tile in enumerate(tiles):
            if isinstance(tile, str):
                outcome.skip_reason, outcome.detail = tile, f"tile {index}: {tile}"
                break
            if tile.error is not None:
                outcome.skip_reason, outcome.detail = "missing_parent", f"tile {index}: {tile.error}"
                break
            outcome.tile_scores.append(tile.score)
    if outcome.skip_reason is not None:
        outcome.tile_scores = []
        # a CSV mismatch is the user's data and a judge failure the judge's, not the model's: never
        # zeroed (a judge failure is retried on the next run instead)
        if mode.skipped_images_score_zero and outcome.skip_reason not in ("not_in_csv", "judge_failed"):
            outcome.score = 0.0
        return outcome
    outcome.score = sum(outcome.tile_scores) / len(outcome.tile_scores)
    if mode.categories_from_all_tiles:
        outcome.categories = [pair for tile in tiles for pair in zip(l2, tile.zeroed, strict=True)]
    else:  # quirk 4: the copy taken before zeroing, of the last tile processed
        outcome.categories = list(zip(l2, tiles[-1].raw, strict=True))
    return outcome


def l1_of(l2: str) -> str:
    return l2.split("-")[0].strip()


def _percent(values: Sequence[float]) -> float:
    return float(np.mean(np.asarray(values, dtype=np.float64)) * 100)


def aggregate(images: Sequence[ImageOutcome], mode: ModeRules) -> dict:
    """``{"overall", "l1", "l2", "images", "counts"}`` on the 0-100 scale, as the official summary.

    ``overall`` = 100 x mean of the image scores in the given order (numpy's mean; order can move
    the last bit); None when no image has a score. Category scores pool question scores per L2
    (sorted) and per L1 (the pooled L2 lists; sorted: upstream prints L1 in set order).
    """
    values = [image.score for image in images if image.score is not None]
    by_l2: dict[str, list[float]] = {}
    for image in images:
        for l2, value in image.categories:
            by_l2.setdefault(l2, []).append(value)
    by_l1: dict[str, list[float]] = {}
    for l2 in sorted(by_l2):
        by_l1.setdefault(l1_of(l2), []).extend(by_l2[l2])
    counts = {"images_seen": len(images),
              "images_scored": sum(image.skip_reason is None for image in images),
              "images_skipped": sum(image.skip_reason is not None and image.score is None for image in images),
              "images_zeroed": sum(image.skip_reason is not None and image.score is not None for image in images)}
    for reason in SKIP_REASONS:
        counts[f"images_{reason}"] = sum(image.skip_reason == reason for image in images)
    return {"overall": _percent(values) if values else None,
            "l1": {name: _percent(by_l1[name]) for name in sorted(by_l1)},
            "l2": {name: _percent(by_l2[name]) for name in sorted(by_l2)},
            "images": len(values), "counts": counts}
