"""GPT-Image-Edit-1.5M-style refinement of existing edit triplets: new outputs, selectively rewritten prompts.

Facts we follow (research notes, section 3): GPT-Image-Edit took existing (instruction, source,
output) triplets (OmniEdit, HQ-Edit, UltraEdit), (1) regenerated every output image with the image
model (GPT-Image-1, edit endpoint), then (2) *selectively* rewrote instructions "based on the input
image and the new output image" (GPT-4o; 100K of 1.55M instructions were rewritten).

The recipe: ``sharegpt4o-json`` (the existing triplets; the old output is kept as
``original_output_image``) -> ``edit-image`` (writes the new ``output_image``) ->
``rewrite-instruction`` (this module) -> ``sharegpt4o`` export.

``rewrite-instruction`` shows the VLM the source image and the NEW output (in that order) with the
old instruction, and asks for a reply whose first non-empty line is exactly ``KEEP`` (the old
instruction still describes the change) or ``REWRITE: <instruction>``. It writes ``input_prompt``
(the final instruction), ``original_prompt`` (the old one) and ``instruction_rewritten``. A reply
in neither form is a ``Failure``: the conversation is asked again (``max_attempts``, 3 in all), and the
row is dropped with the reason if no reply can be read (every reply is cached: a re-run pays nothing).

Assumed (not in the sources we could read):
- how the rows to rewrite were selected. Only "selectively" is stated; no criterion, score or
  fraction was found. So there is no ``rewrite_fraction`` parameter: every row is shown to the VLM and
  the VLM's own judgement (does the old instruction still match the new edit?) is the selection;
- the wording of the rewrite prompt (ours, below) and the reply format.
"""
from __future__ import annotations

import re

from generators.base import ChatRequest, ChatStep
from harness.errors import InputError
from harness.recipe import Drop, Failure, StepContext
from harness.registry import register

REWRITE_PROMPT = """You are checking an image-editing training example. The first image is the SOURCE image. \
The second image is the EDITED result. The instruction that was given to produce the edit is:

"{instruction}"

Decide whether this instruction accurately and clearly describes the change from the source image to the \
edited result, so that someone following it on the source image would arrive at this result.
- If it does, reply with the single word: KEEP
- If it does not (the result differs from what it asks, it misses a visible change, or it is vague or \
confusing), write a corrected instruction that precisely describes the edit actually visible, as one \
imperative sentence or two, and reply with: REWRITE: <the corrected instruction>

The first line of your reply must be either KEEP or REWRITE: followed by the instruction. Write nothing else."""

_KEEP = re.compile(r"^keep\.?$", re.IGNORECASE)
_REWRITE = re.compile(r"^rewrite\s*:\s*(.*)$", re.IGNORECASE)


def parse_rewrite_reply(text: str) -> tuple[bool, str | None] | None:
    """``(False, None)`` for KEEP, ``(True, instruction)`` for REWRITE, None when it is neither."""
    lines = [line.strip().strip("*`").strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0]
    if _KEEP.match(first):
        return False, None
    match = _REWRITE.match(first)
    if match:
        instruction = match.group(1).strip().strip('"').strip()
        return (True, instruction) if instruction else None
    return None


@register("generator", "rewrite-instruction")
class RewriteInstruction(ChatStep):
    """Keep or rewrite ``input_prompt`` after looking at the source image and the new ``output_image``.

    Params: ``client`` (role, default ``vlm``), ``temperature``, ``max_tokens``, ``batch_size``,
    ``prompt`` (a template with ``{instruction}``; it must keep the KEEP / REWRITE: reply format).
    """

    inputs = ("input_prompt", "input_image", "output_image")
    outputs = ("input_prompt", "original_prompt", "instruction_rewritten")

    def __init__(self, client: str = "vlm", temperature: float | None = None, max_tokens: int | None = None,
                 batch_size: int = 64, prompt: str = REWRITE_PROMPT):
        super().__init__(client=client, temperature=temperature, max_tokens=max_tokens, batch_size=batch_size)
        if "{instruction}" not in prompt:
            raise InputError("rewrite-instruction: prompt must contain {instruction}")
        self.prompt = prompt

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        sources = row["input_image"]
        source = sources[0] if isinstance(sources, list) else sources
        return ChatRequest(self.prompt.replace("{instruction}", row["input_prompt"]),
                           images=[ctx.image_bytes(source), ctx.image_bytes(row["output_image"])])

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        verdict = parse_rewrite_reply(text)
        if verdict is None:
            return Failure(f"rewrite reply is neither 'KEEP' nor 'REWRITE: <instruction>': {text[:200]!r}")
        rewritten, instruction = verdict
        return {"input_prompt": instruction if rewritten else row["input_prompt"],
                "original_prompt": row["input_prompt"], "instruction_rewritten": rewritten}
