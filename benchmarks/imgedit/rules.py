"""ImgEdit scoring arithmetic, as ``step1_get_avgscore.py`` and ``step2_typescore.py`` do it.

Step 1 (one reply): split into lines (``str.splitlines``), strip each, split it on the two
characters ": "; a line giving exactly two parts whose second passes ``str.isdigit()`` contributes
``int(second)``. The item score is the mean of those ints, ``round(..., 2)``; a reply with none is
dropped (no score, not a zero). So "Overall: 4" or "Brief reasoning: 3" count as scores, "10" counts
though the scale ends at 5, and "4/5", "4.", "4 (good)", "**Name:** 4" and "Name:  4" do not.

Step 2: per edit type, the mean of the step-1 item scores (as rounded) of the items that the edit
list knows, ``round(..., 2)``, summed in the order the items come.

Overall: no upstream script. Published overalls equal the unweighted mean of the nine type means;
we keep that mean unrounded (papers print it to 2 decimals).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

SEPARATOR = ": "


class OfficialCrash(ValueError):
    """The official step 1 would stop on this reply (a value ``isdigit()`` accepts but ``int()``
    rejects, such as a superscript digit); we record the item as a judge failure instead."""


@dataclass(frozen=True)
class ParsedReply:
    """What step 1 keeps from one reply: the matching lines (stripped) and their ints."""

    kept_lines: tuple[str, ...]
    scores: tuple[int, ...]

    @property
    def item_score(self) -> float | None:
        return item_score(self.scores)


def parse_reply(text: str) -> ParsedReply:
    kept, scores = [], []
    for line in text.splitlines():
        parts = line.strip().split(SEPARATOR)
        if len(parts) == 2 and parts[1].isdigit():
            try:
                value = int(parts[1])
            except ValueError:
                raise OfficialCrash(f"the line {line.strip()!r} passes isdigit() but int() rejects it: "
                                    "the official step 1 stops here with a ValueError") from None
            kept.append(line.strip())
            scores.append(value)
    return ParsedReply(tuple(kept), tuple(scores))


def item_score(scores: Iterable[int]) -> float | None:
    """Mean of the kept ints, rounded to 2 decimals; None when nothing was kept."""
    scores = list(scores)
    if not scores:
        return None
    return round(sum(scores) / len(scores), 2)


def type_means(scored: Iterable[tuple[str, float]]) -> dict[str, float]:
    """(edit type, item score) pairs, in item order -> rounded mean per type, in first-seen order."""
    by_type: dict[str, list[float]] = {}
    for edit_type, score in scored:
        by_type.setdefault(edit_type, []).append(score)
    return {edit_type: round(sum(scores) / len(scores), 2) for edit_type, scores in by_type.items()}


def overall_score(means: Mapping[str, float]) -> float | None:
    """Unweighted mean of the type means (unrounded); None without any."""
    if not means:
        return None
    return sum(means.values()) / len(means)
