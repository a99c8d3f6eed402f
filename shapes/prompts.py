"""GenEval-style prompts over the shapes vocabulary.

Same six tags, in GenEval's order, and metadata in exactly the official format (keys ``tag``,
``include``, ``exclude`` for counting only, ``prompt``; clause keys ``class``, ``count``, then
``color`` or ``position``), so the GenEval rules and the official ``summary_scores.py`` run on them
unchanged. Wording follows the official prompt templates. Prompts name only what the world
profile (``shapes.world.WorldProfile``) holds: the prompt set ``shapes`` is the full world's, and
each other profile has its own, ``shapes-<profile>`` (``shapes-grid``).
"""
from __future__ import annotations

import functools
import itertools
from typing import Any, Callable

import numpy as np

from benchmarks.geneval.data import PROMPT_SET
from harness.registry import register
from shapes.world import PLURALS, PROFILES, RELATIONS, WorldProfile, get_profile

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


def max_count(profile: WorldProfile) -> int:
    """The largest count a counting prompt asks for: its scene holds that many objects."""
    return min(max(NUMBER_WORDS), profile.max_objects)


@functools.lru_cache(maxsize=None)
def _candidates(profile: WorldProfile | None = None) -> dict[str, tuple[list[tuple], Callable[..., dict[str, Any]]]]:
    """Every distinct prompt of each tag over the profile's shapes and colours, as argument
    tuples for its builder."""
    profile = get_profile(profile)
    shapes, colors = profile.shapes, profile.colors
    pairs = [(a, b) for a, b in itertools.permutations(shapes, 2)]
    counts = [n for n in NUMBER_WORDS if n <= max_count(profile)]
    return {
        "single_object": ([(s,) for s in shapes], _single),
        "two_object": (pairs, _two),
        "counting": ([(s, n) for s in shapes for n in counts], _counting),
        "colors": ([(s, c) for s in shapes for c in colors], _colors),
        "position": ([(a, r, b) for a, b in pairs for r in RELATIONS], _position),
        "color_attr": ([(a, ca, b, cb) for a, b in pairs
                        for ca, cb in itertools.permutations(colors, 2)], _color_attr),
    }


@register(PROMPT_SET, "shapes")
def geneval_prompts(per_tag: int = 10, seed: int = 0, profile: WorldProfile | str | None = None) -> list[dict[str, Any]]:
    """``per_tag`` prompts for each of the six tags, in GenEval's tag order.

    Prompts of a tag are drawn without replacement from all distinct ones (a seeded permutation);
    only when ``per_tag`` exceeds that number (e.g. 6 single-object prompts) does the list repeat,
    cycling through the same permutation. The same (per_tag, seed, profile) always gives the same list.
    """
    if per_tag < 0:
        raise ValueError("per_tag must be >= 0")
    rng = np.random.default_rng(seed)
    prompts: list[dict[str, Any]] = []
    candidates = _candidates(get_profile(profile))
    for tag in TAGS:
        options, build = candidates[tag]
        order = rng.permutation(len(options))
        prompts += [build(*options[order[i % len(options)]]) for i in range(per_tag)]
    return prompts


def random_geneval_prompt(rng: np.random.Generator, tags: tuple[str, ...] = TAGS,
                          profile: WorldProfile | str | None = None) -> dict[str, Any]:
    """One prompt's metadata: a tag drawn uniformly from ``tags``, then one of its prompts uniformly."""
    options, build = _candidates(get_profile(profile))[str(tags[int(rng.integers(len(tags)))])]
    return build(*options[int(rng.integers(len(options)))])


def prompt_set_name(profile: WorldProfile | str | None = None) -> str:
    """The GenEval prompt set of a profile: ``shapes`` for the full world, ``shapes-<name>`` else."""
    profile = get_profile(profile)
    return "shapes" if profile.name == "full" else f"shapes-{profile.name}"


for _name, _profile in PROFILES.items():  # one registered prompt set per named profile
    if _name != "full":
        register(PROMPT_SET, prompt_set_name(_profile))(functools.partial(geneval_prompts, profile=_profile))
