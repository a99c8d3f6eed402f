"""World profiles: named sub-worlds of the shapes world, and the grid their objects may sit on.

A ``WorldProfile`` names a sub-world: the shapes, colours and backgrounds it holds, its image size,
object sizes and placement (free, or every box on a grid of cells). Every function that draws a
scene, a prompt, a question or an edit takes one explicitly (``profile=``; None is ``FULL``, the
whole world, with exactly the outputs these functions had before profiles existed). ``PROFILES``
holds the named ones: ``full`` and ``grid`` (three shapes on an 8x8 grid of 4 px cells at 32 px,
the world a CPU-trained tokenizer and tiny Janus can learn in minutes; docs/TRAINING.md).
``scene_outside_profile`` says what in a scene a profile does not allow; the grid helpers place
one object on a profile's grid (``shapes.world`` places whole scenes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from shapes.scene import (BACKGROUNDS, COLORS, MAX_SIZE, MIN_SIZE, PALETTE, SHAPES, UNIT_POLYGONS, Scene,
                          ShapeObject, boxes_apart)


@dataclass(frozen=True)
class WorldProfile:
    """A named sub-world: what scenes drawn from it may hold, and how their objects are placed.

    ``grid == 0``: free placement (sizes from ``sizes``, smaller when crowded, see ``shapes.world``).
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
            if not boxes_apart(a, b, profile.gap_cells):
                problems.append("two boxes closer than the gap")
    return problems


# ------------------------------------------------------------------------------- the grid
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
                if all(boxes_apart(cell_box, other, profile.gap_cells) for other in occupied):
                    spots.append(grid_object(shape, color, x0, y0, side, profile))
    return spots

