"""GenEval-style prompts over the shapes vocabulary.

Same six tags, in GenEval's order, and metadata in exactly the official format (keys ``tag``,
``include``, ``exclude`` for counting only, ``prompt``; clause keys ``class``, ``count``, then
``color`` or ``position``), so the GenEval rules and the official ``summary_scores.py`` run on them
unchanged. Wording follows the official prompt templates.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

from benchmarks.geneval.data import PROMPT_SET
from harness.registry import register
from shapes.world import COLORS, PLURALS, RELATIONS, SHAPES

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
NUMBER_WORDS: dict[int, str] = {2: "two", 3: "three", 4: "four"}


def with_article(phrase: str) -> str:
    """"a circle", "an orange star": the article GenEval's templates put before a noun phrase."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _single(shape: str) -> dict[str, Any]:
    return {"tag": "single_object", "include": [{"class": shape, "count": 1}],
            "prompt": f"a photo of {with_article(shape)}"}


def _two(a: str, b: str) -> dict[str, Any]:
    return {"tag": "two_object", "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
            "prompt": f"a photo of {with_article(a)} and {with_article(b)}"}


def _counting(shape: str, n: int) -> dict[str, Any]:
    return {"tag": "counting", "include": [{"class": shape, "count": n}],
            "exclude": [{"class": shape, "count": n + 1}],
            "prompt": f"a photo of {NUMBER_WORDS[n]} {PLURALS[shape]}"}


def _colors(shape: str, color: str) -> dict[str, Any]:
    return {"tag": "colors", "include": [{"class": shape, "count": 1, "color": color}],
            "prompt": f"a photo of {with_article(f'{color} {shape}')}"}


def _position(a: str, relation: str, b: str) -> dict[str, Any]:
    """Object A stands in ``relation`` to the reference B; B is clause 0 as in GenEval."""
    return {"tag": "position",
            "include": [{"class": b, "count": 1},
                        {"class": a, "count": 1, "position": [relation, 0]}],
            "prompt": f"a photo of {with_article(a)} {relation} {with_article(b)}"}


def _color_attr(a: str, color_a: str, b: str, color_b: str) -> dict[str, Any]:
    return {"tag": "color_attr",
            "include": [{"class": a, "count": 1, "color": color_a},
                        {"class": b, "count": 1, "color": color_b}],
            "prompt": f"a photo of {with_article(f'{color_a} {a}')} and {with_article(f'{color_b} {b}')}"}


def _candidates() -> dict[str, tuple[list[tuple], Callable[..., dict[str, Any]]]]:
    """Every distinct prompt of each tag, as argument tuples for its builder."""
    pairs = [(a, b) for a, b in itertools.permutations(SHAPES, 2)]
    return {
        "single_object": ([(s,) for s in SHAPES], _single),
        "two_object": (pairs, _two),
        "counting": ([(s, n) for s in SHAPES for n in NUMBER_WORDS], _counting),
        "colors": ([(s, c) for s in SHAPES for c in COLORS], _colors),
        "position": ([(a, r, b) for a, b in pairs for r in RELATIONS], _position),
        "color_attr": ([(a, ca, b, cb) for a, b in pairs
                        for ca, cb in itertools.permutations(COLORS, 2)], _color_attr),
    }


@register(PROMPT_SET, "shapes")
def geneval_prompts(per_tag: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """``per_tag`` prompts for each of the six tags, in GenEval's tag order.

    Prompts of a tag are drawn without replacement from all distinct ones (a seeded permutation);
    only when ``per_tag`` exceeds that number (e.g. 6 single-object prompts) does the list repeat,
    cycling through the same permutation. The same (per_tag, seed) always gives the same list.
    """
    if per_tag < 0:
        raise ValueError("per_tag must be >= 0")
    rng = np.random.default_rng(seed)
    prompts: list[dict[str, Any]] = []
    candidates = _candidates()
    for tag in TAGS:
        options, build = candidates[tag]
        order = rng.permutation(len(options))
        prompts += [build(*options[order[i % len(options)]]) for i in range(per_tag)]
    return prompts


def random_geneval_prompt(rng: np.random.Generator, tags: tuple[str, ...] = TAGS) -> dict[str, Any]:
    """One prompt's metadata: a tag drawn uniformly from ``tags``, then one of its prompts uniformly."""
    options, build = _candidates()[str(tags[int(rng.integers(len(tags)))])]
    return build(*options[int(rng.integers(len(options)))])
