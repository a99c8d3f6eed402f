"""DPG-Bench-style dense prompts over the shapes world, with their question graphs.

``write_dpg_shapes`` writes the official DPG-Bench layout (PROTOCOLS.md 2.1): one
``prompts/<item_id>.txt`` per item and ``dpg_bench.csv`` with the official columns. Each item comes
from a random scene graph of 2-3 *groups* (a shape, a colour, a count; shapes differ between
groups, so "the circle" is never ambiguous), one or two spatial relations between groups (the
second group always relates to the first; see ``_random_spec``) and a background. Propositions,
in CSV order (``keywords`` holds the tuple's arguments, ``category_broad`` / ``category_detailed``
the words of its category):

==========================================  ==========================================  ==========
tuple                                       question                                    depends on
==========================================  ==========================================  ==========
entity - whole (circle) / (squares)         Is there a circle? / Are there squares?     0
other - count (squares, ==3)  (count > 1)   Are there three squares?                    entity
attribute - color (circle, red)             Is the circle red? / Are the squares red?   entity
relation - spatial (star, circle, left of)  Is the star to the left of the circle?      both
global - (plain beige background)           Does the image have a plain beige           0
                                            background?
==========================================  ==========================================  ==========

All questions are true for their item's scene. Semantics (the VQA judge and the tests use them):
"a circle" = at least one, "squares" = at least two, "three squares" = exactly three, "the
squares are red" = there are some and all are red, a relation holds between every pair (GenEval's
relation rule), the background is named by its colour and texture words.

Official quirk 1 (PROTOCOLS.md 2.5) is left to show: the first CSV row is the entity of the first
item's first group, which its count/colour/relation propositions depend on, so the official loader
drops it and then fails on that item. The ``dependency`` column always holds a multi-parent entry
("1,4"), so pandas reads it as text, as the official loader's ``.split(',')`` needs.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.fileio import atomic_write_text
from shapes.understanding import NUMBER_WORDS, RELATION_PHRASES, question_fields
from shapes.world import (COLORS, PLURALS, RELATIONS, SHAPES, Scene, WorldProfile, get_profile,
                          scene_for_metadata, template_pattern)

CSV_COLUMNS: tuple[str, ...] = ("item_id", "text", "keywords", "proposition_id", "dependency",
                                "category_broad", "category_detailed", "tuple",
                                "question_natural_language")
#: background name (world.BACKGROUNDS) -> how prompts, questions and edit instructions name it
BACKGROUND_PHRASES: dict[str, str] = {"grey": "plain grey", "light_grey": "plain light grey",
                                      "beige": "plain beige", "grey_gradient": "grey gradient",
                                      "beige_speckle": "speckled beige"}
MAX_OBJECTS = 5  # per scene in the full world; more would need objects too small for the detector at 64 px

QUESTION_TEMPLATES: dict[str, str] = {
    "entity_one": "Is there {article} {shape}?",
    "entity_many": "Are there {plural}?",
    "count": "Are there {number} {plural}?",
    "color_one": "Is the {shape} {color}?",
    "color_many": "Are the {plural} {color}?",
    "relation_one": "Is the {shape} {relation} the {other}?",
    "relation_many": "Are the {plural} {relation} the {other}?",
    "background": "Does the image have {article} {background} background?",
}

_SINGULAR = {plural: shape for shape, plural in PLURALS.items()}
_NUMBER_OF = {word: n for n, word in NUMBER_WORDS.items()}
_RELATION_OF = {phrase: rel for rel, phrase in RELATION_PHRASES.items()}
_BACKGROUND_OF = {phrase: name for name, phrase in BACKGROUND_PHRASES.items()}


def _alternatives(words: object) -> str:
    return "|".join(sorted((re.escape(str(w)) for w in words), key=len, reverse=True))


_FIELDS = {"article": "an?", "shape": _alternatives(SHAPES), "plural": _alternatives(PLURALS.values()),
           "other": _alternatives([*SHAPES, *PLURALS.values()]), "color": _alternatives(COLORS),
           "number": _alternatives(NUMBER_WORDS.values()),
           "relation": _alternatives(RELATION_PHRASES.values()),
           "background": _alternatives(BACKGROUND_PHRASES.values())}
_QUESTION_REGEXES = {
    name: template_pattern(template, _FIELDS) for name, template in QUESTION_TEMPLATES.items()}


# ------------------------------------------------------------------------------- scene graph
@dataclass(frozen=True)
class Group:
    """``count`` objects of one shape and one colour."""

    shape: str
    color: str
    count: int


@dataclass(frozen=True)
class GroupRelation:
    """Every object of group ``subject`` stands in ``relation`` to every object of ``reference``."""

    subject: int
    relation: str
    reference: int


@dataclass(frozen=True)
class DenseSpec:
    """What a dense prompt says: groups, relations (reference always an earlier group), background."""

    groups: tuple[Group, ...]
    relations: tuple[GroupRelation, ...]
    background: str

    def metadata(self) -> dict:
        """GenEval-style include clauses for ``scene_for_metadata`` (one position clause per group)."""
        include = []
        for index, group in enumerate(self.groups):
            clause: dict = {"class": group.shape, "count": group.count, "color": group.color}
            for rel in self.relations:
                if rel.subject == index:
                    clause["position"] = [rel.relation, rel.reference]
            include.append(clause)
        return {"include": include}


@dataclass(frozen=True)
class Proposition:
    """One row of ``dpg_bench.csv`` (less the item's columns)."""

    proposition_id: int
    dependency: tuple[int, ...]
    category_broad: str
    category_detailed: str
    tuple_text: str
    question: str
    keywords: str


@dataclass(frozen=True)
class DenseItem:
    item_id: str
    prompt: str
    spec: DenseSpec
    scene: Scene
    propositions: tuple[Proposition, ...]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _noun(group: Group) -> str:
    return group.shape if group.count == 1 else PLURALS[group.shape]


def _phrase(group: Group) -> str:
    number = _article(group.color) if group.count == 1 else NUMBER_WORDS[group.count]
    return f"{number} {group.color} {_noun(group)}"


# ------------------------------------------------------------------------------------ prompts
def describe(spec: DenseSpec) -> str:
    """The dense prompt for ``spec``; ``parse_dense_prompt`` reads it back."""
    phrases = [_phrase(g) for g in spec.groups]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    sentences = [f"A flat illustration of simple shapes on {_article(BACKGROUND_PHRASES[spec.background])} "
                 f"{BACKGROUND_PHRASES[spec.background]} background.", f"It shows {listed}."]
    for rel in spec.relations:
        subject, reference = spec.groups[rel.subject], spec.groups[rel.reference]
        verb = "is" if subject.count == 1 else "are"
        sentences.append(f"The {subject.color} {_noun(subject)} {verb} {RELATION_PHRASES[rel.relation]} "
                         f"the {reference.color} {_noun(reference)}.")
    sentences.append("Every shape is drawn flat, without outlines or shadows, and no two shapes touch.")
    return " ".join(sentences)


_OBJECT_PHRASE = re.compile(rf"^(?P<n>an?|{_FIELDS['number']}) (?P<color>{_FIELDS['color']}) "
                            rf"(?P<noun>{_FIELDS['other']})$")
_OPENING = re.compile(rf"simple shapes on an? (?P<bg>{_FIELDS['background']}) background\.", re.I)
_LIST = re.compile(r"It shows (?P<list>[^.]+)\.", re.I)
_RELATION_SENTENCE = re.compile(
    rf"The (?P<c1>{_FIELDS['color']}) (?P<s1>{_FIELDS['other']}) (?:is|are) "
    rf"(?P<rel>{_FIELDS['relation']}) the (?P<c2>{_FIELDS['color']}) (?P<s2>{_FIELDS['other']})\.")


def parse_dense_prompt(prompt: str) -> DenseSpec | None:
    """The ``DenseSpec`` a prompt written by ``describe`` asks for, or None if it is not one."""
    opening, listing = _OPENING.search(prompt), _LIST.search(prompt)
    if opening is None or listing is None:
        return None
    groups: list[Group] = []
    for part in re.split(r", | and ", listing.group("list")):
        match = _OBJECT_PHRASE.match(part.strip().lower())
        if match is None:
            return None
        noun = match.group("noun")
        count = 1 if match.group("n") in ("a", "an") else _NUMBER_OF[match.group("n")]
        groups.append(Group(_SINGULAR.get(noun, noun), match.group("color"), count))
    index = {g.shape: i for i, g in enumerate(groups)}
    if len(index) != len(groups):
        return None
    relations = []
    for match in _RELATION_SENTENCE.finditer(prompt):
        a, b = (_SINGULAR.get(match.group(k), match.group(k)) for k in ("s1", "s2"))
        if a not in index or b not in index or index[b] >= index[a]:
            return None  # only relations to an earlier group fit GenEval-style placement
        relations.append(GroupRelation(index[a], _RELATION_OF[match.group("rel")], index[b]))
    return DenseSpec(tuple(groups), tuple(relations), _BACKGROUND_OF[opening.group("bg").lower()])


def scene_for_spec(spec: DenseSpec, rng: np.random.Generator, profile: WorldProfile | str | None = None) -> Scene:
    """A scene with exactly the spec's objects, relations (with margin) and background."""
    scene = scene_for_metadata(spec.metadata(), rng, profile=profile)
    return replace(scene, background=spec.background)


# ------------------------------------------------------------------------------ propositions
def propositions(spec: DenseSpec) -> tuple[Proposition, ...]:
    """The question graph of ``spec`` in CSV order (see the module docstring)."""
    rows: list[Proposition] = []
    entity_id: dict[int, int] = {}

    def add(dependency: tuple[int, ...], broad: str, detailed: str, args: str, question: str) -> int:
        # DSG writes global tuples with an empty detail ("global - (photo)"), so their L2 is "global -"
        l2 = f"{broad} -" if broad == "global" else f"{broad} - {detailed}"
        rows.append(Proposition(len(rows) + 1, dependency, broad, detailed, f"{l2} ({args})",
                                question, args))
        return len(rows)

    for index, group in enumerate(spec.groups):
        noun = _noun(group)
        many = group.count > 1
        question = (QUESTION_TEMPLATES["entity_many"].format(plural=noun) if many else
                    QUESTION_TEMPLATES["entity_one"].format(article=_article(noun), shape=noun))
        entity_id[index] = add((0,), "entity", "whole", noun, question)
        if many:
            add((entity_id[index],), "other", "count", f"{noun}, =={group.count}",
                QUESTION_TEMPLATES["count"].format(number=NUMBER_WORDS[group.count], plural=noun))
        template = QUESTION_TEMPLATES["color_many" if many else "color_one"]
        add((entity_id[index],), "attribute", "color", f"{noun}, {group.color}",
            template.format(shape=noun, plural=noun, color=group.color))
    for rel in spec.relations:
        subject, reference = spec.groups[rel.subject], spec.groups[rel.reference]
        template = QUESTION_TEMPLATES["relation_many" if subject.count > 1 else "relation_one"]
        add((entity_id[rel.subject], entity_id[rel.reference]), "relation", "spatial",
            f"{_noun(subject)}, {_noun(reference)}, {rel.relation}",
            template.format(shape=_noun(subject), plural=_noun(subject),
                            relation=RELATION_PHRASES[rel.relation], other=_noun(reference)))
    phrase = BACKGROUND_PHRASES[spec.background]
    add((0,), "global", "background", f"{phrase} background",
        QUESTION_TEMPLATES["background"].format(article=_article(phrase), background=phrase))
    return tuple(rows)


def parse_dense_question(question: str) -> tuple[str, dict] | None:
    """(template name, fields) of a question written by ``propositions``, or None.

    Fields are normalised: ``shape``/``other`` singular shape names (plurals become ``shape``),
    ``number`` an int, ``relation`` a GenEval relation, ``background`` a background name.
    """
    text = question.strip()
    for name, regex in _QUESTION_REGEXES.items():
        match = regex.fullmatch(text)
        if match is None:
            continue
        fields = question_fields(match)
        if "background" in fields:
            fields["background"] = _BACKGROUND_OF[fields["background"]]
        return name, fields
    return None


# ---------------------------------------------------------------------------------- the items
def _random_spec(rng: np.random.Generator, profile: WorldProfile | None = None) -> DenseSpec:
    """Two or three groups (at most as many as the profile has shapes), at most five objects (the
    profile's ``max_objects``), one or two relations; shapes, colours and background from the profile.

    Only layouts the rejection placer meets reliably are drawn (measured: none failed in 300
    specs x 3 seeds): the second group always stands in a relation to the first, and their counts
    multiply to at most 2 (each pair must hold with margin); a third group gets a relation only
    when every group is a single object, and never one that continues a chain in the same
    direction (C left of B left of A leaves no room unless A happens to sit far right). On a grid
    profile (a 6x6-cell field) the related pair is one object each and the third group's relation
    is across the first one's axis: every other layout has no room for the margins.
    """
    profile = get_profile(profile)
    pair_limit = 1 if profile.grid else 2
    n_groups = int(rng.integers(2, min(3, len(profile.shapes)) + 1))
    shapes = [str(s) for s in rng.choice(profile.shapes, n_groups, replace=False)]
    counts = [1] * n_groups
    for _ in range(int(rng.integers(0, min(MAX_OBJECTS, profile.max_objects) - n_groups + 1))):
        group = int(rng.integers(n_groups))
        if group < 2 and counts[0] * counts[1] >= pair_limit:  # the related pair is full:
            if n_groups < 3:
                continue  # drop the extra object ...
            group = 2  # ... or give it to the third group
        counts[group] += 1
    groups = tuple(Group(s, str(rng.choice(profile.colors)), c) for s, c in zip(shapes, counts))
    relations = [GroupRelation(1, str(rng.choice(RELATIONS)), 0)]
    if n_groups == 3 and sum(counts) == 3 and rng.random() < 0.6:
        reference = int(rng.integers(2))
        taken = relations[0].relation if reference == 1 else None
        options = [r for r in RELATIONS if r != taken]
        if profile.grid:  # across the first relation's axis
            axis = relations[0].relation in ("above", "below")
            options = [r for r in RELATIONS if (r in ("above", "below")) != axis]
        relations.append(GroupRelation(2, str(rng.choice(options)), reference))
    return DenseSpec(groups, tuple(relations), str(rng.choice(sorted(profile.backgrounds))))


def dpg_shapes_items(items: int = 20, seed: int = 0, profile: WorldProfile | str | None = None) -> list[DenseItem]:
    """The dense items; item i depends only on (seed, i, profile). A spec whose constraints the
    placer cannot meet (rare: crowded relations) is drawn again from the same stream."""
    profile = get_profile(profile)
    out = []
    for i in range(items):
        rng = np.random.default_rng([seed, i])
        while True:
            spec = _random_spec(rng, profile)
            try:
                scene = scene_for_spec(spec, rng, profile)
            except (RuntimeError, ValueError):
                continue
            break
        out.append(DenseItem(f"shapes{i}", describe(spec), spec, scene, propositions(spec)))
    return out


def write_dpg_shapes(folder: str | Path, items: int = 20, seed: int = 0,
                     profile: WorldProfile | str | None = None) -> Path:
    """Write ``<folder>/prompts/<item_id>.txt`` and ``<folder>/dpg_bench.csv``; returns ``folder``."""
    folder = Path(folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in dpg_shapes_items(items, seed, profile):
        atomic_write_text(folder / "prompts" / f"{item.item_id}.txt", item.prompt)
        for p in item.propositions:
            writer.writerow([item.item_id, item.prompt, p.keywords, p.proposition_id,
                             ",".join(str(d) for d in p.dependency), p.category_broad,
                             p.category_detailed, p.tuple_text, p.question])
    atomic_write_text(folder / "dpg_bench.csv", buffer.getvalue())
    return folder
