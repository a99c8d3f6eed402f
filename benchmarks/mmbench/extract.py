"""Rule-based answer extraction: which option letter a free-text answer names (PROTOCOLS.md 5.4).

The rules are VLMEvalKit's ``can_infer`` (``vlmeval/utils/matching_util.py``), which changed twice;
each state is a row of :data:`RULE_VERSIONS`, named by the date of the upstream commit that made it:

=============  ==========  ===========================  =====================  ==================
version        commit      lone option letter            text match              "answer is X"
=============  ==========  ===========================  =====================  ==================
2024-02-04     98e3733f    anywhere in the answer        any answer length       no
2025-08-04     c3371551    first occurrence among the    answer at most 2x the   no
                           last 4 tokens                 option texts' length
2026-06-17     a67ace50    as 2025-08-04                 as 2025-08-04           yes (default)
=============  ==========  ===========================  =====================  ==================

``None`` means "no rule matched" (upstream returns ``False``); the caller then asks the LLM judge
or, under exact matching, counts the pass wrong. Upstream's ``VERBOSE`` switch (a debug log that
also rejects answers containing the token ``A``) is not reproduced: it is off unless set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from harness.errors import InputError


@dataclass(frozen=True)
class RuleVersion:
    name: str
    commit: str
    #: a lone letter counts only if its first occurrence is among the last N tokens (None: anywhere)
    letter_in_last_tokens: int | None
    #: option-text matching rejects answers longer than twice the summed option-text lengths
    text_length_limit: bool
    #: try the "(correct) answer is X" pattern when the token rules fail
    answer_is_pattern: bool


RULE_VERSIONS: dict[str, RuleVersion] = {v.name: v for v in (
    RuleVersion("2024-02-04", "98e3733f", None, False, False),
    RuleVersion("2025-08-04", "c3371551", 4, True, False),
    RuleVersion("2026-06-17", "a67ace50", 4, True, True),
)}
DEFAULT_RULE_VERSION = "2026-06-17"

#: an API wrapper's failure text: never read as an answer (option-letter rules only, as upstream)
API_FAILURE = "Failed to obtain answer via API"
#: refusals read as "none of the options" (Z)
REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_PUNCTUATION_TO_SPACE = str.maketrans({c: " " for c in ".()[],:;!*#{}"})
# only A-D, case-insensitive, optional markdown bold around the letter (upstream a67ace50)
_ANSWER_IS = re.compile(r"(?:correct\s+)?answer\s+is\s+\**([ABCD])\**", re.IGNORECASE)


def rules_for(name: str) -> RuleVersion:
    try:
        return RULE_VERSIONS[name]
    except KeyError:
        raise InputError(f"mmbench: unknown rule_version {name!r}; known: {', '.join(RULE_VERSIONS)}") from None


def can_infer_option(answer: str, letters: Sequence[str], rules: RuleVersion) -> str | None:
    """The option letter the answer names as a token, ``"Z"`` for a refusal, or None."""
    if API_FAILURE in answer:
        return None
    if any(refusal in answer for refusal in REFUSALS):
        return "Z"
    tokens = answer.translate(_PUNCTUATION_TO_SPACE).split()
    named = [letter for letter in letters if letter in tokens]
    if len(named) == 1:
        last = rules.letter_in_last_tokens
        if last is None or tokens.index(named[0]) >= len(tokens) - last:
            return named[0]
    elif not named and "Z" in tokens:
        return "Z"
    if rules.answer_is_pattern:
        match = _ANSWER_IS.search(answer)
        if match and match.group(1).upper() in letters:
            return match.group(1).upper()
    return None


def can_infer_text(answer: str, options: Mapping[str, str], rules: RuleVersion) -> str | None:
    """The letter of the only option whose text occurs in the answer (case-insensitive), or None."""
    lowered = answer.lower()
    if rules.text_length_limit and len(lowered) > 2 * sum(len(text) for text in options.values()):
        return None
    found = [letter for letter, text in options.items() if text.lower() in lowered]
    return found[0] if len(found) == 1 else None


def can_infer(answer: str, options: Mapping[str, str], version: str | RuleVersion = DEFAULT_RULE_VERSION) -> str | None:
    """Option letters first, then option texts. ``options`` maps letter -> text, present ones only."""
    rules = version if isinstance(version, RuleVersion) else rules_for(version)
    answer = str(answer)
    return can_infer_option(answer, list(options), rules) or can_infer_text(answer, options, rules)
