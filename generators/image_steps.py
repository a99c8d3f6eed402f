"""Image-model steps: render a prompt (``render-image``) and edit an image (``edit-image``)."""
from __future__ import annotations

from typing import Any, Sequence

from generators.base import ImageStep
from harness.recipe import Failure, StepContext
from harness.registry import register


@register("generator", "render-image")
class RenderImage(ImageStep):
    """``images.generate`` on a text field; the image goes into ``output`` (default ``output_image``).

    Params: ``client`` (role, default ``image_model``), ``prompt_field``, ``output``, ``size``,
    ``quality`` (sent to the API when set).
    """

    def __init__(self, prompt_field: str = "input_prompt", output: str = "output_image", **params: Any):
        super().__init__(**params)
        self.prompt_field, self.output = prompt_field, output
        self.inputs, self.outputs = (prompt_field,), (output,)

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        results = ctx.client(self.client_role).images_generate(
            [row[self.prompt_field] for row in rows], [ctx.seed(row) for row in rows], **self._params())
        return self._stored(results, ctx, self.output)


@register("generator", "edit-image")
class EditImage(ImageStep):
    """``images.edit`` of the first image in ``image_field`` with the instruction in ``prompt_field``.

    ``image_field`` holds one image path or a list (ShareGPT-4o-Image's ``input_image``); the edited
    image goes into ``output`` (default ``output_image``).
    """

    def __init__(self, prompt_field: str = "input_prompt", image_field: str = "input_image",
                 output: str = "output_image", **params: Any):
        super().__init__(**params)
        self.prompt_field, self.image_field, self.output = prompt_field, image_field, output
        self.inputs, self.outputs = (prompt_field, image_field), (output,)

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        usable = [row for row in rows if row[self.image_field]]
        sources = []
        for row in usable:
            value = row[self.image_field]
            sources.append(ctx.image_bytes(value[0] if isinstance(value, list) else value))
        results = ctx.client(self.client_role).images_edit(
            sources, [row[self.prompt_field] for row in usable], [ctx.seed(row) for row in usable], **self._params())
        stored = iter(self._stored(results, ctx, self.output))
        return [next(stored) if row[self.image_field] else Failure(f"row {row['id']!r} has no {self.image_field}")
                for row in rows]
