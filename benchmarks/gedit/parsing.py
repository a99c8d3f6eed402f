"""VIEScore reply parsing, as GEdit-Bench's ``viescore/utils.py`` (``mllm_output_to_dict``) does it.

Read at stepfun-ai/Step1X-Edit e78b811 (``GEdit-Bench/viescore/utils.py``, ``__init__.py``); the copy
in wyhlovecpp/GPT-Image-Edit 60eb6c8 (``univa/eval/gedit/viescore``) is identical. The rules, in order:

1. The reply ``"rate_limit_exceeded"`` (exactly) is returned as such; the caller raises on it.
2. If the reply holds the delimiter ``||V^=^V||`` exactly twice, the JSON is what lies between the
   first and the last delimiter.
3. Otherwise it is the text from the first ``{`` to the last ``}``. Without both:

   - on a re-ask (``give_up``), upstream *guesses* ``random.randint(0, 10)`` as the score. We never
     do: :data:`GUESS` is returned and the caller records a judge failure;
   - the text from the first ``[`` to the last ``]``, if it matches ``^\\[\\d+, ?\\d+\\]$`` (two
     numbers), becomes ``{"score": [a, b]}``;
   - the whole reply, if ``int(reply)`` is in 0..10, becomes ``{"score": [n]}``;
   - else the reply is unparsed (:data:`UNPARSED`, upstream ``False``).
4. The JSON text is stripped, ``"\\n"`` removed (not ``"\\r"``), and ``json.loads``-ed; a ``score``
   that is not a list is wrapped in one. If that raises (bad JSON, no ``score`` key, not an
   object), the text goes through ``fix_json`` and ``json.loads`` again; that result is returned
   as it is (no ``score`` check, no wrapping), and a second failure is :data:`UNPARSED`.

The value returned may therefore be any JSON value (a dict without ``score``, a number); what the
score step makes of it is :func:`benchmarks.gedit.rules.item_scores`' business.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DELIMITER = "||V^=^V||"
RATE_LIMIT = "rate_limit_exceeded"
_TWO_NUMBERS = re.compile(r"^\[\d+, ?\d+\]$")
_KEY = re.compile(r"(\w+):")
_PAIR = re.compile(r'(".*?"):(.*?)(,|})')
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_LITERAL = re.compile(r"^(true|false|null)$", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """One reply, parsed: ``kind`` is "value" (``value`` holds the JSON value), "unparsed" (upstream
    ``False``: the reply is asked again), "guess" (upstream would guess a random score),
    "rate_limit" (the literal reply ``rate_limit_exceeded``) or "crash" (upstream's parser raises,
    so ``evaluate`` fails and the item is evaluated again from scratch)."""

    kind: str
    value: Any = None
    how: str = ""  # which path parsed it: delimiters, braces, list, number, fix_json


UNPARSED = Parsed("unparsed")
GUESS = Parsed("guess")
CRASH = Parsed("crash")  # upstream raises inside the parser: the whole evaluation is tried again


def fix_json(text: str) -> str:
    """``fix_json`` of ``viescore/utils.py``: quote bare keys, wrap numbers in a list, quote other
    values (patterns applied as upstream applies them, with the ``regex`` module's semantics, which
    equal ``re``'s for these patterns)."""
    fixed = _KEY.sub(r'"\1":', text)

    def value_of(match: re.Match) -> str:
        key, value, comma = match.groups()
        value = value.strip()
        if _NUMBER.match(value):
            value = f"[{value}]"
        elif _LITERAL.match(value):
            pass
        else:
            value = f'"{value}"'
        return f"{key}: {value}{comma}"

    return _PAIR.sub(value_of, fixed)


def _int_between_0_and_10(text: str) -> bool:
    try:
        return 0 <= int(text) <= 10
    except ValueError:
        return False


def parse_reply(text: str, give_up: bool = False) -> Parsed:
    """``mllm_output_to_dict(text, give_up_parsing=give_up)``, except that a guess is never made."""
    if text == RATE_LIMIT:
        return Parsed("rate_limit")
    how = "delimiters"
    if text.count(DELIMITER) == 2:
        start = text.find(DELIMITER) + len(DELIMITER)
        end = text.rfind(DELIMITER)
    else:
        how = "braces"
        start = text.find("{")
        end = text.rfind("}") + 1
        if start == -1 or end == 0:
            start = text.find("[")
            end = text.rfind("]") + 1
            if give_up:
                return GUESS
            if _TWO_NUMBERS.match(text[start:end]):
                try:
                    scores = json.loads(text[start:end])
                except ValueError:  # "[٣, 4]": \d matches any Unicode digit, json does not
                    return CRASH
                text, how = json.dumps({"score": scores, "reasoning": "System: output is simply a list of scores"}), "list"
            elif _int_between_0_and_10(text):
                text = json.dumps({"score": [int(text)], "reasoning": "System: output is simply a number"})
                how = "number"
            else:
                return UNPARSED
            start, end = 0, len(text)
    if start == -1 or end == -1 or start == end:
        return UNPARSED
    json_text = text[start:end].strip().replace("\n", "")
    try:
        value = json.loads(json_text)
        if not isinstance(value["score"], list):
            value["score"] = [value["score"]]
    except Exception:  # noqa: BLE001 - upstream's bare except: bad JSON, no 'score', not an object
        try:
            return Parsed("value", json.loads(fix_json(json_text)), "fix_json")
        except Exception:  # noqa: BLE001
            return UNPARSED
    return Parsed("value", value, how)
