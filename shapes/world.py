"""The shapes world: flat coloured shapes on plain backgrounds, with a scene graph and a renderer.

It is the harness's offline stand-in for photographs: a closed vocabulary that a pixel-only
detector (``shapes.detector``) reads back almost perfectly, so the GenEval protocol can be
exercised end to end with no downloads. Coordinates are normalised to [0, 1], y pointing down.

Design choices, each made so that pixels are unambiguous at 64x64:

* Shapes differ in coarse geometry the detector measures: how much of the bounding box they fill
  (square 1.0, circle 0.79, cross 0.56, triangle/diamond 0.5, star 0.38), how convex they are
  (cross and star are not) and where their mass sits (a triangle is bottom-heavy, a diamond is not).
  Triangles and stars always point up; nothing is rotated.
* The ten GenEval colours are saturated, well separated RGB points (pairwise distance >= 90), so the
  nearest palette colour of an object's interior is never in doubt.
* Backgrounds are greys and a beige at RGB distance >= 90 from every palette colour, with texture
  of at most +-10 per channel, so foreground/background separation needs no learning.

A ``WorldProfile`` names a sub-world: the shapes, colours and backgrounds it holds, its image size,
object sizes and placement (free, or every box on a grid of cells). Every function that draws a
scene, a prompt, a question or an edit takes one explicitly (``profile=``; None is ``FULL``, the
whole world, with exactly the outputs these functions had before profiles existed). ``PROFILES``
holds the named ones: ``full`` and ``grid`` (three shapes on an 8x8 grid of 4 px cells at 32 px,
the world a CPU-trained tokenizer and tiny Janus can learn in minutes; docs/TRAINING.md).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "star")
PLURALS: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles",
                           "diamond": "diamonds", "cross": "crosses", "star": "stars"}

COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
                           "black", "white")
#: RGB of each colour. Hues are spread round the wheel at full saturation; brown is dark orange,
#: pink is light magenta, so each pair stays >= 90 apart in RGB and the nearest one is never in doubt.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "orange": (255, 140, 0), "yellow": (250, 225, 30),
    "green": (40, 170, 60), "blue": (30, 80, 220), "purple": (140, 50, 180),
    "pink": (255, 105, 180), "brown": (125, 75, 35), "black": (20, 20, 20),
    "white": (250, 250, 250),
}


@dataclass(frozen=True)
class Background:
    """A background: base colour plus a texture ("plain", "gradient" or "speckle")."""

    rgb: tuple[int, int, int]
    texture: str = "plain"


#: Neutral tones whose distance to every palette colour is >= 90 (checked in the tests), so no
#: background pixel, texture included, can pass for an object colour.
BACKGROUNDS: dict[str, Background] = {
    "grey": Background((150, 150, 150)),
    "light_grey": Background((185, 185, 185)),
    "beige": Background((200, 188, 160)),
    "grey_gradient": Background((150, 150, 150), "gradient"),
    "beige_speckle": Background((200, 188, 160), "speckle"),
}
TEXTURE_AMPLITUDE = 10  # max per-channel deviation of a texture from the base colour

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

# Layout constants (normalised units). Sizes were chosen so the smallest star still shows its
# points at 64 px; the gap keeps objects in separate connected components after anti-aliasing.
MIN_SIZE, MAX_SIZE = 0.2, 0.34
GAP = 0.06
BORDER = 0.05
RELATION_MARGIN = 0.15  # the required relation must hold with |d| >= 0.5 + margin


# ------------------------------------------------------------------------------------ geometry
def _star(points: int = 5, inner: float = 0.42) -> list[tuple[float, float]]:
    pts = []
    for k in range(2 * points):
        radius = 1.0 if k % 2 == 0 else inner
        angle = -math.pi / 2 + k * math.pi / points
        pts.append((radius * math.cos(angle), radius * math.sin(angle)))
    return pts


def _fit_width(poly: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Scale a polygon to width 1 and centre its bounding box on the origin."""
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    scale = 1.0 / (max(xs) - min(xs))
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [((x - mx) * scale, (y - my) * scale) for x, y in poly]


_T = 1 / 6  # half thickness of the cross's arms (arms are a third of the size)
#: outline of each shape in a unit box centred on (0, 0); None means "ellipse"
UNIT_POLYGONS: dict[str, list[tuple[float, float]] | None] = {
    "circle": None,
    "square": [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)],
    "triangle": [(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)],
    "diamond": [(0.0, -0.5), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0)],
    "cross": [(-_T, -0.5), (_T, -0.5), (_T, -_T), (0.5, -_T), (0.5, _T), (_T, _T), (_T, 0.5),
              (-_T, 0.5), (-_T, _T), (-0.5, _T), (-0.5, -_T), (-_T, -_T)],
    "star": _fit_width(_star()),
}


def unit_extent(shape: str) -> tuple[float, float]:
    """(width, height) of a shape of size 1."""
    poly = UNIT_POLYGONS[shape]
    if poly is None:
        return 1.0, 1.0
    return (max(p[0] for p in poly) - min(p[0] for p in poly),
            max(p[1] for p in poly) - min(p[1] for p in poly))


# --------------------------------------------------------------------------------- scene graph
@dataclass(frozen=True)
class ShapeObject:
    """One shape: centre (cx, cy) and size (width of its bounding box), all in [0, 1] units."""

    shape: str
    color: str
    cx: float
    cy: float
    size: float

    def __post_init__(self) -> None:
        if self.shape not in UNIT_POLYGONS:
            raise ValueError(f"unknown shape {self.shape!r}; known: {', '.join(SHAPES)}")
        if self.color not in PALETTE:
            raise ValueError(f"unknown colour {self.color!r}; known: {', '.join(COLORS)}")

    def bbox(self) -> tuple[float, float, float, float]:
        """Tight normalised box (x1, y1, x2, y2) of the drawn outline."""
        w, h = unit_extent(self.shape)
        return (self.cx - w * self.size / 2, self.cy - h * self.size / 2,
                self.cx + w * self.size / 2, self.cy + h * self.size / 2)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "color": self.color, "cx": self.cx, "cy": self.cy,
                "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShapeObject":
        return cls(str(data["shape"]), str(data["color"]), float(data["cx"]), float(data["cy"]),
                   float(data["size"]))


@dataclass(frozen=True)
class Scene:
    """Objects drawn in order on a background; ``texture_seed`` fixes a speckled texture."""

    objects: tuple[ShapeObject, ...]
    background: str = "grey"
    texture_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; known: {', '.join(BACKGROUNDS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [o.to_dict() for o in self.objects], "background": self.background,
                "texture_seed": self.texture_seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scene":
        return cls(tuple(ShapeObject.from_dict(o) for o in data["objects"]),
                   str(data.get("background", "grey")), int(data.get("texture_seed", 0)))


# ------------------------------------------------------------------------------------ rendering
def _background_array(name: str, size: int, seed: int) -> np.ndarray:
    bg = BACKGROUNDS[name]
    base = np.broadcast_to(np.array(bg.rgb, dtype=np.float32), (size, size, 3)).copy()
    if bg.texture == "gradient":  # lighter at the top, darker at the bottom
        ramp = np.linspace(TEXTURE_AMPLITUDE, -TEXTURE_AMPLITUDE, size, dtype=np.float32)
        base += ramp[:, None, None]
    elif bg.texture == "speckle":
        noise = np.random.default_rng(seed).uniform(-TEXTURE_AMPLITUDE, TEXTURE_AMPLITUDE, (size, size, 1))
        base += noise.astype(np.float32)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def render(scene: Scene, size: int = 64, supersample: int = 4) -> Image.Image:
    """Draw ``scene`` as a ``size`` x ``size`` RGB image.

    Shapes are drawn at ``supersample`` times the resolution and box-filtered down, which gives
    exact area-coverage anti-aliasing (no ringing, so edge pixels stay between the object's colour
    and the background's). The texture is made at the final resolution so downsampling keeps it.
    """
    big = size * supersample
    background = _background_array(scene.background, size, scene.texture_seed)
    canvas = Image.fromarray(background).resize((big, big), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        rgb = PALETTE[obj.color]
        poly = UNIT_POLYGONS[obj.shape]
        if poly is None:
            x1, y1, x2, y2 = (v * big for v in obj.bbox())
            draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=rgb)
        else:
            pts = [((obj.cx + px * obj.size) * big, (obj.cy + py * obj.size) * big) for px, py in poly]
            draw.polygon(pts, fill=rgb)
    return canvas.resize((size, size), Image.BOX)


# -------------------------------------------------------------------------- GenEval relation rule
def relations(box_a: Sequence[float], box_b: Sequence[float], margin: float = 0.1) -> set[str]:
    """GenEval's ``relations(A, B)``: which of left of / right of / above / below A is, seen from B.

    The benchmark's own rule, so the world and the judge can never disagree on what a relation is.
    """
    from benchmarks.geneval.rules import relations as geneval_relations

    return geneval_relations(box_a, box_b, position_threshold=margin)


def relation_vector(box_a: Sequence[float], box_b: Sequence[float],
                    margin: float = 0.1) -> tuple[float, float] | None:
    """GenEval's normalised, margin-shrunk offset (dx, dy) of A from B; None if no relation."""
    ax1, ay1, ax2, ay2 = box_a
    bx1, by1, bx2, by2 = box_b
    off = ((ax1 + ax2 - bx1 - bx2) / 2, (ay1 + ay2 - by1 - by2) / 2)
    dims = ((ax2 - ax1) + (bx2 - bx1), (ay2 - ay1) + (by2 - by1))
    revised = [max(abs(o) - margin * d, 0.0) * math.copysign(1.0, o) for o, d in zip(off, dims)]
    if abs(revised[0]) < 1e-3 and abs(revised[1]) < 1e-3:
        return None
    norm = math.hypot(*off)
    return revised[0] / norm, revised[1] / norm


def relation_holds_with_margin(box_a: Sequence[float], box_b: Sequence[float], relation: str,
                               margin: float = RELATION_MARGIN) -> bool:
    """True if ``relation`` is clearly the only GenEval relation of A to B.

    The required component must exceed the 0.5 cut by ``margin`` and the other axis must stay
    ``margin`` inside it, so pixel rounding in a detector's boxes cannot flip the verdict.
    """
    vec = relation_vector(box_a, box_b)
    if vec is None:
        return False
    axis, sign = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}[relation]
    along, across = sign * vec[axis], vec[1 - axis]
    return along >= 0.5 + margin and abs(across) <= 0.5 - margin


# -------------------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class WorldProfile:
    """A named sub-world: what scenes drawn from it may hold, and how their objects are placed.

    ``grid == 0``: free placement (sizes from ``sizes``, smaller when crowded, see ``_size_range``).
    ``grid == N``: every object's box lies on an N x N grid of cells (cell = image_size / N px, so a
    tokenizer whose patches are those cells sees each object as whole codes); box sides are
    ``grid_sides`` cells, only the smallest from ``crowded`` objects on, ``border_cells`` empty cells
    along the image's edge and at least ``gap_cells`` between any two boxes. ``max_objects`` caps
    every scene (benchmarks ask for at most that many objects).
    """

    name: str
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = COLORS
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)
    image_size: int = 64
    sizes: tuple[float, float] = (MIN_SIZE, MAX_SIZE)
    grid: int = 0
    grid_sides: tuple[int, ...] = (2, 3)
    crowded: int = 3
    border_cells: int = 1
    gap_cells: int = 1
    max_objects: int = 5

    def __post_init__(self) -> None:
        for field_name in ("shapes", "colors", "backgrounds", "sizes", "grid_sides"):
            object.__setattr__(self, field_name, tuple(getattr(self, field_name)))
        unknown = ([s for s in self.shapes if s not in UNIT_POLYGONS] + [c for c in self.colors if c not in PALETTE]
                   + [b for b in self.backgrounds if b not in BACKGROUNDS])
        if unknown or not (self.shapes and self.colors and self.backgrounds):
            raise ValueError(f"profile {self.name!r}: shapes, colours and backgrounds must be non-empty "
                             f"and from the world's ({', '.join(SHAPES)}; {', '.join(COLORS)}; "
                             f"{', '.join(BACKGROUNDS)})" + (f"; unknown: {unknown}" if unknown else ""))
        if self.max_objects < 2 or self.image_size < 8:
            raise ValueError(f"profile {self.name!r}: max_objects must be >= 2 and image_size >= 8")
        if self.grid:
            usable = self.grid - 2 * self.border_cells
            if (self.image_size % self.grid or not self.grid_sides or min(self.grid_sides) < 1
                    or max(self.grid_sides) > usable):
                raise ValueError(f"profile {self.name!r}: the grid must divide the image size and every box "
                                 f"side fit inside the border ({usable} cells)")

    def sides_for(self, n_objects: int) -> tuple[int, ...]:
        """Box sides (cells) allowed in a scene of ``n_objects`` objects."""
        return (min(self.grid_sides),) if n_objects >= self.crowded else self.grid_sides

    def describe(self) -> dict[str, Any]:
        """Everything the profile fixes, for protocol cards and manifests."""
        return {"name": self.name, "shapes": list(self.shapes), "colors": list(self.colors),
                "backgrounds": list(self.backgrounds), "image_size": self.image_size,
                "sizes": list(self.sizes), "grid": self.grid, "grid_sides": list(self.grid_sides),
                "crowded": self.crowded, "border_cells": self.border_cells, "gap_cells": self.gap_cells,
                "max_objects": self.max_objects}


#: the whole world (the tour's and the tests' default)
FULL = WorldProfile("full")
#: the demo's world: three shapes in every colour on grey, each box 2 or 3 cells of an 8x8 grid at
#: 32 px (one 4 px tokenizer patch per cell); measured in docs/TRAINING.md
GRID = WorldProfile("grid", shapes=("circle", "square", "triangle"), backgrounds=("grey",), image_size=32,
                    grid=8, grid_sides=(2, 3), crowded=3, border_cells=1, gap_cells=1, max_objects=4)
PROFILES: dict[str, WorldProfile] = {profile.name: profile for profile in (FULL, GRID)}


def get_profile(profile: "WorldProfile | str | None" = None) -> WorldProfile:
    """A profile given as itself, by name (``PROFILES``), or None (``FULL``)."""
    if profile is None:
        return FULL
    if isinstance(profile, WorldProfile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    raise ValueError(f"unknown shapes-world profile {profile!r} (known: {', '.join(PROFILES)})")


def scene_outside_profile(scene: "Scene", profile: "WorldProfile | str | None" = None) -> list[str]:
    """What in ``scene`` the profile does not allow (empty: nothing): shapes, colours, the
    background, too many objects, and, on a grid, boxes off the grid, of another side, on the
    border or closer than the gap."""
    profile = get_profile(profile)
    problems = [f"shape {o.shape}" for o in scene.objects if o.shape not in profile.shapes]
    problems += [f"colour {o.color}" for o in scene.objects if o.color not in profile.colors]
    if scene.background not in profile.backgrounds:
        problems.append(f"background {scene.background}")
    if len(scene.objects) > profile.max_objects:
        problems.append(f"{len(scene.objects)} objects (at most {profile.max_objects})")
    if not profile.grid:
        return problems
    cells = []
    for o in scene.objects:
        side, x0, y0 = o.size * profile.grid, o.cx * profile.grid - o.size * profile.grid / 2, \
            o.cy * profile.grid - o.size * profile.grid / 2
        if any(abs(v - round(v)) > 1e-6 for v in (side, x0, y0)):
            problems.append(f"{o.color} {o.shape} off the grid")
            continue
        side, x0, y0 = round(side), round(x0), round(y0)
        if side not in profile.grid_sides:
            problems.append(f"{o.color} {o.shape} of side {side} cells")
        lo, hi = profile.border_cells, profile.grid - profile.border_cells
        if x0 < lo or y0 < lo or x0 + side > hi or y0 + side > hi:
            problems.append(f"{o.color} {o.shape} on the border")
        cells.append((x0, y0, x0 + side, y0 + side))
    if len(scene.objects) >= profile.crowded and any(round(o.size * profile.grid) != min(profile.grid_sides)
                                                     for o in scene.objects):
        problems.append(f"boxes larger than {min(profile.grid_sides)} cells among {len(scene.objects)} objects")
    for i, a in enumerate(cells):
        for b in cells[:i]:
            if not _cells_apart(a, b, profile.gap_cells):
                problems.append("two boxes closer than the gap")
    return problems


# ------------------------------------------------------------------------------------ placement
def _boxes_apart(a: tuple[float, ...], b: tuple[float, ...], gap: float) -> bool:
    return (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


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


def _cells_apart(a: Sequence[int], b: Sequence[int], gap: int) -> bool:
    """Cell boxes (x0, y0, x1, y1) with at least ``gap`` empty cells between them on one axis."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def grid_object(shape: str, color: str, x0: int, y0: int, side: int, profile: WorldProfile) -> ShapeObject:
    """The object whose box is cells [x0, x0 + side) x [y0, y0 + side) of the profile's grid."""
    return ShapeObject(shape, color, (x0 + side / 2) / profile.grid, (y0 + side / 2) / profile.grid,
                       side / profile.grid)


def object_cells(obj: ShapeObject, profile: WorldProfile) -> tuple[int, int, int, int]:
    """The cell box (x0, y0, x1, y1) of an object placed on the profile's grid."""
    side = round(obj.size * profile.grid)
    x0, y0 = round(obj.cx * profile.grid - side / 2), round(obj.cy * profile.grid - side / 2)
    return x0, y0, x0 + side, y0 + side


def grid_spots(profile: WorldProfile, taken: Sequence[ShapeObject], shape: str, color: str,
               sides: Sequence[int]) -> list[ShapeObject]:
    """Every grid placement of (shape, colour) with a side from ``sides`` that keeps the gap to
    ``taken`` and stays inside the border, in a fixed order."""
    lo, hi = profile.border_cells, profile.grid - profile.border_cells
    occupied = [object_cells(o, profile) for o in taken]
    spots = []
    for side in sides:
        for y0 in range(lo, hi - side + 1):
            for x0 in range(lo, hi - side + 1):
                cell_box = (x0, y0, x0 + side, y0 + side)
                if all(_cells_apart(cell_box, other, profile.gap_cells) for other in occupied):
                    spots.append(grid_object(shape, color, x0, y0, side, profile))
    return spots


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
            if not all(_cells_apart(box, other, profile.gap_cells) for other in cells):
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
                if not _inside(box, BORDER) or not all(_boxes_apart(box, p.bbox(), GAP) for p in placed):
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


def template_pattern(template: str, fields: dict[str, str]) -> re.Pattern:
    """A case-insensitive regex for a text template such as "Is there {article} {shape}?": each
    ``{name}`` becomes the named group ``fields[name]`` (an alternation), the rest matches literally.
    The writers fill the templates; the parsers (answerer, editor, judges) read them back."""
    escaped = re.escape(template)
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>{fields[m.group(1)]})", escaped),
                      re.IGNORECASE)
