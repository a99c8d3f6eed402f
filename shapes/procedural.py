"""The base of the shapes world's procedural models (answerer, editor): no weights, outputs computed
from the request and the pixels, so the digest is the plugin's name and version."""
from __future__ import annotations

from typing import ClassVar

from harness.hashing import hash_value
from harness.models.base import ModelAdapter
from shapes.detector import ShapesDetector
from shapes.profiles import PROFILES, get_profile


class ProceduralShapesModel(ModelAdapter):
    version: ClassVar[str] = "1"

    def __init__(self, size: int | None = None, profile: str = "full"):
        """``size``: the resolution the model reads or writes at (None: the input image's).
        ``profile``: the world profile it reads (its detector chooses among the profile's shapes and
        colours) and, for the editor, places added objects in (on the grid, if the profile has one)."""
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
        self.size = None if size is None else int(size)
        self.profile = get_profile(profile)
        self.detector = ShapesDetector(profile=self.profile)

    def _world(self) -> dict:
        """The profile, named only when it is not the full world (full-world hashes stay as they were)."""
        return {"profile": self.profile.name} if self.profile.name != "full" else {}

    @property
    def model_digest(self) -> str:
        return hash_value({"model": self.plugin_name, "version": self.version, **self._world()})

    @property
    def protocol(self) -> dict:
        return {"kind": "procedural", "image_size": self.size, "adapter_version": self.version, **self._world()}
