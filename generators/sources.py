"""Sources that read existing data: a folder of images, and a ShareGPT-4o-Image layout JSON file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.dataset_formats import read_sharegpt4o
from harness.errors import InputError
from harness.hashing import hash_file, hash_value
from harness.recipe import Source, StepContext
from harness.registry import register

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@register("generator", "image-folder")
class ImageFolder(Source):
    """Every image under ``path`` (sorted, recursive), as rows ``{id, image, source_file, source_type}``.

    ``id`` is the file's path relative to ``path``; ``source_type`` labels the whole folder (ShareGPT4V
    picks its caption prompt by it: natural, art, landmark, celebrity, text-rich). ``limit`` keeps the
    first N files. A file that does not decode stops the run with its name.
    """

    outputs = ("image", "source_file", "source_type")

    def __init__(self, path: str, source_type: str = "natural", limit: int | None = None):
        self.path = Path(path)
        self.source_type = source_type
        self.limit = limit

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            raise InputError("image folder not found", self.path)
        files = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        return files[: self.limit] if self.limit is not None else files

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"id": p.relative_to(self.path).as_posix(), "image": ctx.import_image(p),
                 "source_file": p.relative_to(self.path).as_posix(), "source_type": self.source_type}
                for p in self._files()]

    def input_hashes(self) -> dict[str, str]:
        return {"images": hash_value({p.relative_to(self.path).as_posix(): hash_file(p) for p in self._files()})}


@register("generator", "sharegpt4o-json")
class ShareGPT4oJson(Source):
    """Records of a ShareGPT-4o-Image layout file as rows: ``input_prompt``, ``input_image`` (a list,
    empty for text-to-image) and the existing output as ``original_output_image``.

    Used to refine existing triplets (GPT-Image-Edit): later steps write a new ``output_image``.
    """

    outputs = ("input_prompt", "input_image", "original_output_image")

    def __init__(self, path: str, limit: int | None = None, edits_only: bool = True):
        self.path = Path(path)
        self.limit = limit
        self.edits_only = edits_only

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        samples = read_sharegpt4o(self.path)
        if self.edits_only:
            samples = [s for s in samples if s.is_edit]
        samples = samples[: self.limit] if self.limit is not None else samples
        return [{"id": sample.id, "input_prompt": sample.prompt,
                 "input_image": [ctx.import_image(p) for p in sample.input_images],
                 "original_output_image": ctx.import_image(sample.output_image)} for sample in samples]

    def input_hashes(self) -> dict[str, str]:
        """The triplet file and every image it names (an image replaced in place changes the hash)."""
        images = {}
        for sample in read_sharegpt4o(self.path):
            for path in (*sample.input_images, sample.output_image):
                images[str(path)] = hash_file(path)
        return {"triplets": hash_value({"file": hash_file(self.path), "images": images})}
