"""ShareGPT-4o-Image image-first pairs: a real image -> a prompt that would regenerate it (VLM).

``image-folder`` (source) -> ``regeneration-prompt`` -> ``render-image`` (a new image for the prompt)
or ``use-source-image`` (keep the original image as the output, ``keep_original``).

Facts carried over (secondary sources): the source images are real photos (ALLaVA in the paper);
Gemini-2.5-Pro writes a text prompt describing the image's visual content; the released pairs are
(generated prompt, original image) -- so ``use-source-image`` is the paper's variant and
``render-image`` a re-rendered one. Assumed (not in the sources we could read): the meta-prompt
wording (ours) and its length; ``detail: sentence`` (default) asks for one sentence, ``detail:
detailed`` for a detailed paragraph (the secondary summary says "detailed").
"""
from __future__ import annotations

from typing import Any

from generators.base import ChatRequest, ChatStep, CopyField
from generators.sharegpt4o.prompt_first import prompt_fields
from harness.errors import InputError
from harness.recipe import Drop, Failure, StepContext
from harness.registry import register

REGENERATION_SYSTEM = "You write prompts for a text-to-image model."
REGENERATION_LENGTH = {
    "sentence": "Write it as one sentence (at most {max_words} words).",
    "detailed": "Write one detailed paragraph (at most {max_words} words).",
}
REGENERATION_TEMPLATE = """Look at the image and write the text-to-image prompt that would regenerate it as closely as possible.
Cover the main subjects and their attributes, their positions, the setting, the visual style, the lighting and the camera viewpoint.
Describe only what is visible. {length} Reply with the prompt only: no label, no quotes."""


@register("generator", "regeneration-prompt")
class RegenerationPrompt(ChatStep):
    """VLM: the row's ``image`` -> a prompt that would regenerate it, in ``output`` (``input_prompt``).

    Params: ``detail`` ("sentence" or "detailed"), ``max_words`` (default 40 for a sentence, 150
    for a paragraph), ``image_field`` (default ``image``), ``output``, and the chat-step params.
    """

    def __init__(self, detail: str = "sentence", max_words: int | None = None, image_field: str = "image",
                 output: str = "input_prompt", **params: Any):
        if detail not in REGENERATION_LENGTH:
            raise InputError(f"detail must be one of {sorted(REGENERATION_LENGTH)}, got {detail!r}")
        super().__init__(**params)
        self.detail, self.image_field, self.output = detail, image_field, output
        self.max_words = int(max_words) if max_words is not None else (40 if detail == "sentence" else 150)
        self.inputs, self.outputs = (image_field,), (output,)

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        length = REGENERATION_LENGTH[self.detail].format(max_words=self.max_words)
        return ChatRequest(REGENERATION_TEMPLATE.format(length=length),
                           images=[ctx.image_bytes(row[self.image_field])], system=REGENERATION_SYSTEM)

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        return prompt_fields(text, self.output)


@register("generator", "use-source-image")
class UseSourceImage(CopyField):
    """Copy ``image_field`` (default ``image``) to ``output`` (default ``output_image``): keep the original.

    With it, image-first pairs are (regeneration prompt, original image), as ShareGPT-4o-Image
    releases them; no image-model call is made.
    """
