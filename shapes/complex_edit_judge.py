"""``shapes-complex-edit-judge``: a pixel-only stand-in for Complex-Edit's GPT-4o judge.

A ``ChatJudge`` (kind ``"chat"``): the Complex-Edit benchmark calls it as it calls GPT-4o. An
alignment prompt (two images: input, output; the instruction in the text) gets
``{"reasoning", "instruction_following", "identity_preservation"}``; a quality prompt (one image)
gets ``{"perceptual_quality"}``; scores are the *strings* "0".."10" the structured output's schema
asks for, from ``shapes.complex_edit_outcome`` (compliance, preservation, quality). The JSON comes
in varied valid forms (key order, indentation, an extra key), so a shapes-world run exercises the
reply validation. A prompt it cannot use gets an error reply (a judge failure), never an exception.
"""
from __future__ import annotations

import json

from harness.judges.base import ChatPrompt, ChatReply
from harness.registry import register
from shapes.complex_edit_outcome import CLEAN_SCORE, PixelEditJudge, is_noise, judge_outcome
from shapes.edits import parse_instruction

VERSION = "1"


def _dump(data: dict, form: int) -> str:
    if form == 1:
        return json.dumps(dict(reversed(list(data.items()))))
    if form == 2:
        return json.dumps(data, indent=2)
    if form == 3:
        return json.dumps({**data, "confidence": "high"})
    return json.dumps(data)


@register("chat", "shapes-complex-edit-judge")
class ShapesComplexEditJudge(PixelEditJudge):
    """Scores shapes-world compound edits from pixels; replies as Complex-Edit's structured output.
    ``profile``: the world profile whose shapes and colours the detector chooses among (default ``full``)."""

    judge_id = "shapes-complex-edit-judge-v1"
    version = VERSION

    def __init__(self, profile: str = "full") -> None:
        super().__init__(profile)
        self._asked = 0

    def ask_one(self, prompt: ChatPrompt) -> ChatReply:
        self._asked += 1
        form = self._asked % 4
        try:
            views = [self._observe(image) for image in prompt.images]
        except Exception as exc:  # noqa: BLE001 - an unreadable image is this item's failure
            return ChatReply(None, error=f"cannot read the images: {exc}")
        if len(views) == 2:
            edits = parse_instruction(prompt.text)
            if not edits:
                return ChatReply(None, error="alignment prompt without a shapes-world instruction")
            outcome = judge_outcome(edits, views[0], views[1], prompt.images[0].size == prompt.images[1].size,
                                    is_noise(prompt.images[1], views[1]))
            data = {"reasoning": outcome.reasoning, "instruction_following": str(outcome.compliance),
                    "identity_preservation": str(outcome.preservation)}
        elif len(views) == 1:
            after = views[0]
            unclean = sum(d.score < CLEAN_SCORE for d in after.objects)
            data = {"perceptual_quality": str(1 if is_noise(prompt.images[0], after) else max(0, 10 - 2 * unclean))}
        else:
            return ChatReply(None, error=f"expected one or two images, got {len(views)}")
        return ChatReply(_dump(data, form), model=self.judge_id)
