"""The shapes world: flat coloured shapes on plain backgrounds, with a scene graph and a renderer.

It is the harness's offline stand-in for photographs (``shapes.scene``: the vocabulary, scene
graph, renderer and GenEval's relation rule), in named sub-worlds (``shapes.profiles``: world
profiles, ``FULL`` and ``GRID``). This module places objects: random scenes and scenes that satisfy
GenEval metadata, freely or on a profile's grid, and judges a scene against metadata on its graph.
It also gathers the names of those two modules, so the rest of the project imports the shapes
world from here.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# the vocabulary, scene graph, renderer and world profiles, importable from here (one place to import from)
from shapes.profiles import (FULL, GRID, PROFILES, WorldProfile, get_profile, grid_object,  # noqa: F401
                             grid_spots, object_cells, scene_outside_profile)
from shapes.scene import (BACKGROUNDS, BORDER, COLORS, GAP, MAX_SIZE, MIN_SIZE, PALETTE,  # noqa: F401
                          PLURALS, RELATION_MARGIN, RELATIONS, SHAPES, TEXTURE_AMPLITUDE, UNIT_POLYGONS,
                          Background, Scene, ShapeObject, boxes_apart, relation_holds_with_margin,
                          relation_vector, relations, render, template_pattern, unit_extent)


# ------------------------------------------------------------------------------------ placement
def _inside(box: tuple[float, ...], border: float) -> bool:
    return box[0] >= border and box[1] >= border and box[2] <= 1 - border and box[3] <= 1 - border


def _size_range(n_objects: int, profile: WorldProfile | None = None) -> tuple[float, float]:
    """Smaller objects when there are many, so rejection sampling finds room quickly."""
    low, high = (profile or FULL).sizes
    if n_objects <= 2:
        return low + 0.02, high
    if n_objects <= 4:
        return low, min(high, 0.28)
    return low, min(high, 0.24)


def _place_on_grid(rng: np.random.Generator, specs: Sequence[tuple[str, str]],
                   constraints: Sequence[tuple[int, str, int]], profile: WorldProfile,
                   crowd: int | None = None, max_nodes: int = 20_000) -> list[ShapeObject]:
    """Objects placed one at a time, each at a random grid spot that keeps the gap and the
    relations with the objects before it, backtracking from dead ends (a depth-first search over
    shuffled spots, so every layout that exists is found). ``crowd`` (default: the number of
    objects) picks the allowed sides."""
    sides = profile.sides_for(len(specs) if crowd is None else crowd)
    lo, hi = profile.border_cells, profile.grid - profile.border_cells
    boxes = [(x0, y0, x0 + side, y0 + side) for side in sides
             for y0 in range(lo, hi - side + 1) for x0 in range(lo, hi - side + 1)]
    placed: list[ShapeObject] = []
    cells: list[tuple[int, int, int, int]] = []
    nodes = 0

    def fits(i: int, obj: ShapeObject) -> bool:
        return (all(relation_holds_with_margin(obj.bbox(), placed[b].bbox(), rel)
                    for a, rel, b in constraints if a == i and b < i)
                and all(relation_holds_with_margin(placed[a].bbox(), obj.bbox(), rel)
                        for a, rel, b in constraints if b == i and a < i))

    def search(i: int) -> bool:
        nonlocal nodes
        if i == len(specs):
            return True
        shape, color = specs[i]
        for k in rng.permutation(len(boxes)):
            box = boxes[int(k)]
            if not all(boxes_apart(box, other, profile.gap_cells) for other in cells):
                continue
            nodes += 1
            if nodes > max_nodes:
                return False
            obj = grid_object(shape, color, box[0], box[1], box[2] - box[0], profile)
            if not fits(i, obj):
                continue
            placed.append(obj)
            cells.append(box)
            if search(i + 1):
                return True
            placed.pop()
            cells.pop()
        return False

    if search(0):
        return placed
    raise RuntimeError(f"could not place {len(specs)} objects on the {profile.name!r} grid "
                       f"with constraints {list(constraints)}")


def _place(rng: np.random.Generator, specs: Sequence[tuple[str, str]],
           constraints: Iterable[tuple[int, str, int]] = (), tries: int = 300,
           restarts: int = 50, profile: WorldProfile | None = None,
           crowd: int | None = None) -> list[ShapeObject]:
    """Place objects (shape, colour) at random, non-overlapping, inside the border.

    ``constraints`` are (i, relation, j): object i must stand in ``relation`` to object j with
    margin. Objects are placed one at a time by rejection sampling; a dead end restarts the scene.
    A grid profile places them on its grid (``_place_on_grid``).
    """
    constraints = list(constraints)
    profile = profile or FULL
    if profile.grid:
        if len(specs) > profile.max_objects:
            raise RuntimeError(f"{len(specs)} objects: the {profile.name!r} world holds at most {profile.max_objects}")
        return _place_on_grid(rng, specs, constraints, profile, crowd=crowd)
    lo, hi = _size_range(len(specs), profile)
    for _ in range(restarts):
        placed: list[ShapeObject] = []
        for i, (shape, color) in enumerate(specs):
            for _ in range(tries):
                size = float(rng.uniform(lo, hi))
                cx, cy = (float(v) for v in rng.uniform(size / 2 + BORDER, 1 - size / 2 - BORDER, 2))
                cand = ShapeObject(shape, color, round(cx, 4), round(cy, 4), round(size, 4))
                box = cand.bbox()
                if not _inside(box, BORDER) or not all(boxes_apart(box, p.bbox(), GAP) for p in placed):
                    continue
                ok = all(relation_holds_with_margin(box, placed[b].bbox(), rel)
                         for a, rel, b in constraints if a == i and b < i)
                ok = ok and all(relation_holds_with_margin(placed[a].bbox(), box, rel)
                                for a, rel, b in constraints if b == i and a < i)
                if ok:
                    placed.append(cand)
                    break
            else:
                break
        if len(placed) == len(specs):
            return placed
    raise RuntimeError(f"could not place {len(specs)} objects with constraints {constraints}")


def random_scene(rng: np.random.Generator, n_objects: int | None = None,
                 shapes: Sequence[str] | None = None, colors: Sequence[str] | None = None,
                 backgrounds: Sequence[str] | None = None, profile: WorldProfile | str | None = None) -> Scene:
    """A scene of 1 to ``max_objects`` (or ``n_objects``) random, separated shapes on a random
    background; ``shapes``, ``colors`` and ``backgrounds`` default to the profile's."""
    profile = get_profile(profile)
    shapes = profile.shapes if shapes is None else shapes
    colors = profile.colors if colors is None else colors
    backgrounds = profile.backgrounds if backgrounds is None else backgrounds
    n = int(rng.integers(1, profile.max_objects + 1)) if n_objects is None else n_objects
    specs = [(str(rng.choice(shapes)), str(rng.choice(colors))) for _ in range(n)]
    return Scene(tuple(_place(rng, specs, profile=profile)), str(rng.choice(backgrounds)), int(rng.integers(2**31)))


def scene_for_metadata(metadata: dict, rng: np.random.Generator, distractors: int = 0,
                       backgrounds: Sequence[str] | None = None,
                       profile: WorldProfile | str | None = None, crowd: int | None = None) -> Scene:
    """A scene that satisfies a GenEval metadata dict (include / exclude / color / position).

    Each include clause gets exactly ``count`` objects of its class (its colour if given, else a
    random one); a clause ``position: [relation, j]`` makes every object of it stand in that
    relation, with margin, to every object of clause j. ``distractors`` adds objects of classes no
    clause names, so they can never change a count. Shapes, colours, backgrounds and placement come
    from the profile (``backgrounds`` narrows its backgrounds); a clause naming a shape or colour
    the profile lacks is an error. ``crowd``: on a grid, the object count the box sides are chosen
    for (default: this scene's; an edit's source that will gain an object passes one more).
    """
    profile = get_profile(profile)
    backgrounds = profile.backgrounds if backgrounds is None else backgrounds
    include = metadata.get("include", [])
    specs: list[tuple[str, str]] = []
    clause_of: list[int] = []
    for idx, clause in enumerate(include):
        if clause["class"] not in profile.shapes:
            raise ValueError(f"class {clause['class']!r} is not in the shapes vocabulary {profile.shapes}")
        if clause.get("color") and clause["color"] not in profile.colors:
            raise ValueError(f"colour {clause['color']!r} is not in the {profile.name!r} world's {profile.colors}")
        for _ in range(int(clause.get("count", 1))):
            specs.append((clause["class"], clause.get("color") or str(rng.choice(profile.colors))))
            clause_of.append(idx)
    named = {c["class"] for c in include} | {c["class"] for c in metadata.get("exclude", [])}
    others = [s for s in profile.shapes if s not in named]
    for _ in range(min(distractors, profile.max_objects - len(specs)) if others else 0):
        specs.append((str(rng.choice(others)), str(rng.choice(profile.colors))))
        clause_of.append(-1)
    constraints = []
    for idx, clause in enumerate(include):
        if clause.get("position"):
            relation, target = clause["position"][0], int(clause["position"][1])
            constraints += [(i, relation, j) for i, ci in enumerate(clause_of) if ci == idx
                            for j, cj in enumerate(clause_of) if cj == target]
    objects = _place(rng, specs, constraints, profile=profile, crowd=crowd)
    scene = Scene(tuple(objects), str(rng.choice(list(backgrounds))), int(rng.integers(2**31)))
    failures = scene_failures(scene, metadata)
    if failures:  # cannot happen for well-formed metadata; guards against contradictory input
        raise ValueError(f"no scene satisfies {metadata.get('prompt', metadata)!r}: {failures}")
    return scene


def scene_failures(scene: Scene, metadata: dict) -> list[str]:
    """Failure reasons (empty if none) of ``scene`` against ``metadata``, judged on the scene graph."""
    reasons = []
    groups = []
    for clause in metadata.get("include", []):
        group = [o for o in scene.objects if o.shape == clause["class"]
                 and (clause.get("color") is None or o.color == clause["color"])]
        groups.append(group)
        if len(group) < clause.get("count", 1):
            reasons.append(f"expected {clause['class']}>={clause.get('count', 1)}, found {len(group)}")
    for clause, group in zip(metadata.get("include", []), groups):
        if clause.get("position"):
            relation, target = clause["position"]
            if not all(relation in relations(a.bbox(), b.bbox()) for a in group for b in groups[target]):
                reasons.append(f"expected {clause['class']} {relation} target")
    for clause in metadata.get("exclude", []):
        found = sum(o.shape == clause["class"] for o in scene.objects)
        if found >= clause["count"]:
            reasons.append(f"expected {clause['class']}<{clause['count']}, found {found}")
    return reasons

