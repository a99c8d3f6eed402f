"""Which option each answer chose: rules first, then the optional LLM choice extractor.

VLMEvalKit's ``extract_answer_from_item`` (``vlmeval/dataset/utils/multiple_choice.py``, e8e78f0):
rule matching (:func:`can_infer`); if that fails and a judge is configured, up to three judge
calls whose replies are parsed with the same rules; if none parses, a random choice among the
options and ``Z``. Without a judge (``exact_matching``) an unmatched answer is simply wrong.

Where we differ, on purpose:

- the random choice is seeded by the pass's own seed (``random.Random(seed)``), so a rescore
  gives the same number twice; it is flagged (``method="fallback"``) and counted. With
  ``judge_fallback="fail"`` an exhausted pass is a judge failure instead.
- a judge call that fails (``ChatReply.error`` after the judge's own retries) makes the pass a
  judge failure, excluded from the scores; upstream spends one of its three attempts on it and,
  after three, falls back to the random choice.
- each pass is judged on its own (so judgements cache per pass); upstream stops asking the judge
  for a question once one of its passes is wrong. The question's hit is the same either way.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from benchmarks.mmbench.extract import RuleVersion, can_infer
from benchmarks.mmbench.prompts import judge_prompt
from harness.errors import HarnessError, InputError
from harness.judges.base import ChatJudge, ChatPrompt

MAX_JUDGE_ATTEMPTS = 3
FALLBACK_MODES = ("seeded", "fail")


@dataclass(frozen=True)
class ChoiceItem:
    """One answer to read: the question and options it answered, and the pass's seed."""

    question: str
    options: Mapping[str, str]
    prediction: str
    seed: int


@dataclass
class Choice:
    """The letter an answer chose (None: no rule matched and no judge, or the judge failed)."""

    letter: str | None
    method: str  # "rule", "llm", "fallback", "none"; "" when the judge failed
    attempts: int = 0  # judge calls made for this answer
    replies: list[str] = field(default_factory=list)
    judge_model: str | None = None
    failure: str | None = None  # set when the judge failed: the pass is not scored

    @property
    def judge_failed(self) -> bool:
        return self.failure is not None


def check_fallback_mode(mode: str) -> str:
    if mode not in FALLBACK_MODES:
        raise InputError(f"mmbench: judge_fallback must be one of {FALLBACK_MODES}, got {mode!r}")
    return mode


def seeded_fallback(options: Mapping[str, str], seed: int) -> str:
    """A reproducible stand-in for upstream's ``random.choice(options + ['Z'])``."""
    return random.Random(seed).choice([*options, "Z"])


def extract_choices(items: Sequence[ChoiceItem], get_judge: Callable[[], ChatJudge] | None,
                    rules: RuleVersion, judge_fallback: str = "seeded") -> list[Choice]:
    """The choice of every item; judge calls are batched, one ``ask`` per attempt round.

    ``get_judge`` (None: exact matching) is called only if some answer needs the judge, so a
    batch the rules settle never builds it."""
    choices: list[Choice] = []
    pending: list[int] = []
    for position, item in enumerate(items):
        letter = can_infer(item.prediction, item.options, rules)
        if letter is not None:
            choices.append(Choice(letter, "rule"))
        elif get_judge is None:
            choices.append(Choice(None, "none"))
        else:
            choices.append(Choice(None, ""))
            pending.append(position)
    prompts = {p: ChatPrompt(judge_prompt(items[p].question, items[p].options, items[p].prediction),
                             accept=lambda text, options=items[p].options: can_infer(text, options, rules) is not None)
               for p in pending}  # a reply with no readable letter is never kept: asked again next time
    judge = get_judge() if pending else None
    for attempt in range(1, MAX_JUDGE_ATTEMPTS + 1):
        if not pending:
            break
        replies = judge.ask([prompts[p] for p in pending])
        if len(replies) != len(pending):
            raise HarnessError(f"the choice extractor returned {len(replies)} replies for {len(pending)} prompts")
        unparsed = []
        for position, reply in zip(pending, replies):
            choice = choices[position]
            choice.attempts = attempt
            choice.judge_model = reply.model or choice.judge_model
            if reply.error is not None or reply.text is None:
                choice.failure = f"choice extractor failed: {reply.error or 'no reply text'}"
                continue
            choice.replies.append(reply.text)
            letter = can_infer(reply.text, items[position].options, rules)
            if letter is not None:
                choice.letter, choice.method = letter, "llm"
            else:
                unparsed.append(position)
        pending = unparsed
    for position in pending:  # three replies, none readable
        choice = choices[position]
        if judge_fallback == "fail":
            choice.failure = (f"choice extractor gave no readable letter in {MAX_JUDGE_ATTEMPTS} attempts "
                              "(judge_fallback=fail)")
        else:
            choice.letter = seeded_fallback(items[position].options, items[position].seed)
            choice.method = "fallback"
    return choices
