"""ShareGPT-4o-Image prompt-first text-to-image: sampled attributes -> one prompt (LLM) -> image.

``sharegpt4o-attributes`` (source, ``attributes.py``) -> ``compose-prompt`` -> ``render-image``.
The paper's LLM for every text step is Gemini-2.5-Pro (secondary sources); its meta-prompt was not
readable, so the request below is our own wording. Assumed (not in the sources we could read): the
prompt length limit (``max_words``, default 120).
"""
from __future__ import annotations

import re
from typing import Any

from generators.base import ChatRequest, ChatStep
from generators.sharegpt4o.attributes import describe_attributes
from harness.recipe import Drop, Failure, StepContext
from harness.registry import register

# "Prompt:", "**Final prompt:**", "Edit instruction -", ... at the start of a reply
_LABEL = re.compile(r"^\s*[*_#]*\s*(?:final\s+|text-to-image\s+|image\s+|edit(?:ing)?\s+|regeneration\s+)*"
                    r"(?:prompt|instruction)\s*[*_]*\s*[:\-–]\s*[*_]*\s*", re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`"}


def strip_fence(text: str) -> str:
    """The inside of a reply wrapped in a ``` code fence (the whole reply otherwise)."""
    text = text.strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        text = text[3:-3]
        first, newline, rest = text.partition("\n")
        text = rest if newline and re.fullmatch(r"[\w+-]*", first.strip()) else text
    return text.strip()


def clean_prompt_reply(text: str) -> str:
    """A one-prompt reply without fence, label or wrapping quotes; whitespace runs become one space.

    Quotes are removed only when they wrap the whole reply: a prompt quoting text to render
    (``a poster reading "SALE"``) keeps its quotes.
    """
    text = _LABEL.sub("", strip_fence(text), count=1).strip()
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text[-1] not in text[1:-1]:
        text = text[1:-1].strip()
    return " ".join(text.split())


def prompt_fields(text: str, field: str) -> dict | Failure:
    """``{field: prompt}``, or a Failure for an empty reply (asked again, up to ``max_attempts``)."""
    prompt = clean_prompt_reply(text)
    return {field: prompt} if prompt else Failure("the model's reply held no prompt")


COMPOSE_SYSTEM = "You write prompts for a text-to-image model."
COMPOSE_TEMPLATE = """Combine the attributes below into one text-to-image prompt describing a single coherent image.
Every listed object must appear; place the objects in a plausible scene and state how they relate to each other.
Express the background, style, lighting, camera and composition attributes naturally in the description.
Leave out an attribute only if it cannot apply (for example an arrangement of several objects when there is one).
Use at most {max_words} words. Reply with the prompt only: no title, no label, no quotes, no explanation.

Attributes:
{attributes}"""


@register("generator", "compose-prompt")
class ComposePrompt(ChatStep):
    """LLM: the row's ``attributes`` -> one coherent text-to-image prompt in ``output`` (``input_prompt``).

    Params: ``max_words`` (default 120), ``output``, and the chat-step params ``client`` (role,
    default ``llm``), ``temperature``, ``max_tokens``, ``batch_size``. An empty reply is a Failure.
    """

    version = "1"

    def __init__(self, max_words: int = 120, output: str = "input_prompt", **params: Any):
        super().__init__(**params)
        self.max_words, self.output = int(max_words), output
        self.inputs, self.outputs = ("attributes",), (output,)

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        text = COMPOSE_TEMPLATE.format(max_words=self.max_words, attributes=describe_attributes(row["attributes"]))
        return ChatRequest(text, system=COMPOSE_SYSTEM)

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        return prompt_fields(text, self.output)
