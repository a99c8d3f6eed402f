"""ShareGPT4V-style detailed captions: a VLM describes each image with a source-specific prompt.

Facts we follow (research notes, section 2): ShareGPT4V captioned about 100K images with GPT4-Vision
using *data-specific prompts* (a general prompt plus an addition per image source: natural photos,
WikiArt, landmarks, celebrities, text-rich images), aiming at world knowledge, object properties,
spatial relations and aesthetics. The released records use the LLaVA conversation layout, the human
turn being a "detailed description" question and the gpt turn the caption (our ``llava`` export).

Assumed (not in the sources we could read):
- the exact wording of the base and per-source prompts; ours below are our own, written from the
  stated goals;
- the list of human questions and how they were drawn; we draw one per row (``ctx.rng``) from
  ``DETAIL_QUESTIONS`` (LLaVA-style detailed-description questions), overridable with ``questions``;
- what was done with refusals; we drop a reply that is empty or opens with a refusal ("I'm sorry",
  "I can't", ...) with the reason, rather than keep it as a caption or ask again (a refusal is an
  answer: asking again with the same seed would only read it back from the call cache).

Recipe: ``image-folder`` (``source_type`` labels the folder) -> ``detailed-caption`` -> ``llava``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from generators.base import ChatRequest, ChatStep
from harness.errors import InputError
from harness.recipe import Drop, Failure, StepContext
from harness.registry import register

BASE_PROMPT = (
    "Write a thorough, detailed description of this image as one or more flowing paragraphs. Cover every "
    "visible object with its attributes (colour, shape, material, size) and how many there are; where things "
    "are relative to each other and in the frame; the background and setting; any people and what they are "
    "doing; any visible text, quoted exactly; and the overall composition, lighting, mood and aesthetic "
    "qualities. Bring in relevant world knowledge where it helps. Describe only what is actually there: do not "
    "guess at details you cannot see, and do not use lists or headings.")

#: what each image source adds to the base prompt (keys are the ``source_type`` values)
SOURCE_PROMPTS: dict[str, str] = {
    "natural": (
        "This is an everyday photograph. Pay attention to the scene type, the actions and interactions "
        "taking place, and fine details such as textures, counts and the positions of smaller objects."),
    "art": (
        "This is an artwork. Besides its content, discuss the likely artist or school if it can be "
        "recognised, the artistic style and movement, the period, the medium and technique (brushwork, "
        "palette, composition), and give a short evaluation of its artistic qualities and mood."),
    "landmark": (
        "This image shows a landmark. Name the landmark if you can recognise it, say where it is, and give "
        "relevant background on its history, architecture or significance alongside the visual description."),
    "celebrity": (
        "This image shows a well-known person. If you can recognise them, name them and give brief context "
        "on who they are; describe their appearance, clothing, expression and the setting or event."),
    "text-rich": (
        "This image contains a lot of text. Transcribe the legible text faithfully, explain where each piece "
        "of text appears and what it means in context, and describe the layout and the non-text content."),
}

#: LLaVA-style detailed-description questions for the human turn (our list; see the module docstring)
DETAIL_QUESTIONS = (
    "What do you see happening in this image?",
    "What is this photo about?",
    "Describe the following image.",
    "Write a detailed description of the given image.",
    "Explain the visual content of the image in great detail.",
    "Analyze the image in a comprehensive and detailed manner.",
    "Can you elaborate on the elements of the picture provided?",
    "What do you think is going on in this snapshot?",
    "Can you describe the main features of this image for me?",
    "What are the key elements in this picture?",
)

#: openings of a reply that declines the task (compared lower-case, curly apostrophes straightened)
REFUSAL_OPENINGS = ("i'm sorry", "i am sorry", "sorry,", "i can't", "i cannot", "i can not",
                    "i'm unable", "i am unable", "i'm not able", "i am not able", "i won't", "i will not")


def refusal_reason(text: str) -> str | None:
    """Why a caption reply is not a caption (empty, or a refusal), or None if it is one."""
    stripped = text.strip()
    if not stripped:
        return "empty caption reply"
    opening = re.sub(r"^[\s\"'*_#>]+", "", stripped.lower().replace("\u2019", "'"))
    if opening.startswith(REFUSAL_OPENINGS):
        return f"the model declined to caption: {stripped[:120]!r}"
    return None


@register("generator", "detailed-caption")
class DetailedCaption(ChatStep):
    """A VLM writes a detailed ``caption`` of ``image``; ``question`` is the human turn for the export.

    Params: ``client`` (role, default ``vlm``), ``temperature``, ``max_tokens``, ``batch_size``;
    ``source_prompts`` adds or replaces per-source prompts ({source_type: text}); ``base_prompt``
    replaces the base prompt; ``questions`` replaces the question list. A row whose ``source_type``
    has no prompt fails with a message naming the known types.
    """

    inputs = ("image", "source_type")
    outputs = ("caption", "question")

    def __init__(self, client: str = "vlm", temperature: float | None = None, max_tokens: int | None = None,
                 batch_size: int = 64, base_prompt: str = BASE_PROMPT,
                 source_prompts: Mapping[str, str] | None = None, questions: Sequence[str] = DETAIL_QUESTIONS):
        super().__init__(client=client, temperature=temperature, max_tokens=max_tokens, batch_size=batch_size)
        prompts = {**SOURCE_PROMPTS, **dict(source_prompts or {})}
        if not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in prompts.items()):
            raise InputError("source_prompts must map source types to non-empty prompt strings")
        if isinstance(questions, str) or not questions or not all(isinstance(q, str) and q.strip()
                                                                   for q in questions):
            raise InputError("questions must be a non-empty list of strings")
        self.base_prompt, self.source_prompts, self.questions = base_prompt, prompts, tuple(questions)

    def prompt_for(self, source_type: str) -> str:
        return f"{self.base_prompt}\n\n{self.source_prompts[source_type]}"

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        return ChatRequest(self.prompt_for(row["source_type"]), images=[ctx.image_bytes(row["image"])])

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        reason = refusal_reason(text)
        return Drop(reason) if reason else {"caption": text.strip()}

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        known = [row for row in rows if row["source_type"] in self.source_prompts]
        replies = iter(super().generate(known, ctx) if known else [])
        results: list[Any] = []
        for row in rows:
            if row["source_type"] not in self.source_prompts:
                results.append(Failure(f"no caption prompt for source_type {row['source_type']!r} (known: "
                                       f"{', '.join(sorted(self.source_prompts))}; add one with source_prompts)"))
                continue
            result = next(replies)
            if isinstance(result, dict):  # the question depends only on (recipe seed, row id)
                result = {**result, "question": ctx.rng(row).choice(self.questions)}
            results.append(result)
        return results
