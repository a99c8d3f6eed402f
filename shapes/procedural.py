"""The base of the shapes world's procedural models (answerer, editor): no weights, outputs computed
from the request and the pixels, so the digest is the plugin's name and version."""
from __future__ import annotations

from typing import ClassVar

from harness.hashing import hash_value
from harness.models.base import ModelAdapter
from shapes.detector import ShapesDetector


class ProceduralShapesModel(ModelAdapter):
    version: ClassVar[str] = "1"

    def __init__(self, size: int | None = None):
        """``size``: the resolution the model reads or writes at (None: the input image's)."""
        self.size = None if size is None else int(size)
        self.detector = ShapesDetector()

    @property
    def model_digest(self) -> str:
        return hash_value({"model": self.plugin_name, "version": self.version})

    @property
    def protocol(self) -> dict:
        return {"kind": "procedural", "image_size": self.size, "adapter_version": self.version}
