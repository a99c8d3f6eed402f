"""The shapes world's vocabulary, scene graph and renderer: flat coloured shapes on plain backgrounds.

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

What a scene may hold in a sub-world and how its objects are placed are ``shapes.profiles`` and
``shapes.world`` (which gathers all three modules' names: import them from there).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

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


def boxes_apart(a: Sequence[float], b: Sequence[float], gap: float) -> bool:
    """Boxes (x1, y1, x2, y2), normalised or in grid cells, at least ``gap`` apart on one axis."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


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


def template_pattern(template: str, fields: dict[str, str]) -> re.Pattern:
    """A case-insensitive regex for a text template such as "Is there {article} {shape}?": each
    ``{name}`` becomes the named group ``fields[name]`` (an alternation), the rest matches literally.
    The writers fill the templates; the parsers (answerer, editor, judges) read them back."""
    escaped = re.escape(template)
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>{fields[m.group(1)]})", escaped),
                      re.IGNORECASE)
