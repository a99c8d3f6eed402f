"""``shapes-gedit-judge``: a pixel-only stand-in for GEdit-Bench's VIEScore judge (GPT-4.1).

A ``ChatJudge`` (kind ``"chat"``): GEdit-Bench calls it exactly as it calls GPT-4.1. An SC prompt
(two images, "Editing instruction: ..." at the end) gets ``[editing success, over-editing]``; a PQ
prompt (one image) gets ``[naturalness, artifacts]``; every score on VIEScore's 0-10 scale, from
``shapes.complex_edit_outcome`` (compliance, preservation). PQ: naturalness 10 and artifacts 10
less 2 per shape the detector scores below ``ARTIFACT_SCORE``; both 1 when no shapes-world
background can be read or stray colour blobs cover the picture (noise). Replies rotate through the forms real judges use and
``mllm_output_to_dict`` reads: the delimited block the prompt's format suggests, bare JSON, a code
fence, prose around JSON, a scalar score; so a shapes-world run exercises the official parser.

A prompt it cannot use (no instruction it can read, the wrong number of images, an unreadable
image) gets an error reply (a judge failure), never an exception.
"""
from __future__ import annotations

import hashlib
import json

from harness.judges.base import ChatPrompt, ChatReply
from harness.registry import register
from shapes.complex_edit_outcome import PixelEditJudge, is_noise, judge_outcome
from shapes.edits import parse_instruction

VERSION = "1"
#: a shape scoring below this counts as an artifact; lower than the outcome module's 0.9 because the
#: GPT call's JPEG (quality 75) costs small saturated shapes (an orange star: 0.6) that much
ARTIFACT_SCORE = 0.5
MARKER = "Editing instruction:"
FORMS = ("delimited", "bare", "fence", "prose", "bare")


def vie_reply(scores: list[int], reasoning: str, form: str) -> str:
    """``scores`` in one of the reply forms VIEScore's parser reads."""
    body = {"score": scores, "reasoning": reasoning}
    if form == "delimited":
        return f"||V^=^V||\n{{\n\"score\" : {json.dumps(scores)},\n\"reasoning\" : {json.dumps(reasoning)}\n}}\n||V^=^V||"
    if form == "fence":
        return "```json\n" + json.dumps(body, indent=2) + "\n```"
    if form == "prose":
        return f"Here is my evaluation:\n{json.dumps(body)}"
    return json.dumps(body)


@register("chat", "shapes-gedit-judge")
class ShapesGEditJudge(PixelEditJudge):
    """Scores shapes-world edits from pixels and replies as VIEScore's judge does. ``profile``: the world
    profile whose shapes and colours the detector chooses among (default ``full``)."""

    judge_id = "shapes-gedit-judge-v1"
    version = VERSION

    def ask_one(self, prompt: ChatPrompt) -> ChatReply:
        form = FORMS[int(hashlib.sha256(prompt.text.encode()).hexdigest(), 16) % len(FORMS)]
        try:
            views = [self._observe(image) for image in prompt.images]
        except Exception as exc:  # noqa: BLE001 - an unreadable image is this item's failure
            return ChatReply(None, error=f"cannot read the images: {exc}")
        if MARKER in prompt.text:  # SC: original, edited
            edits = parse_instruction(prompt.text.rsplit(MARKER, 1)[1])
            if len(views) != 2 or not edits:
                return ChatReply(None, error="SC prompt without two images or a shapes-world instruction")
            before, after = views
            outcome = judge_outcome(edits, before, after, prompt.images[0].size == prompt.images[1].size,
                                    is_noise(prompt.images[1], after))
            reply = vie_reply([outcome.compliance, outcome.preservation], outcome.reasoning, form)
        else:  # PQ: the edited image alone
            if len(views) != 1:
                return ChatReply(None, error=f"PQ prompt with {len(views)} images")
            after = views[0]
            if is_noise(prompt.images[0], after):
                scores = [1, 1]
            else:
                unclean = sum(d.score < ARTIFACT_SCORE for d in after.objects)
                scores = [10, max(0, 10 - 2 * unclean)]
            reply = vie_reply(scores, "clean flat shapes" if scores == [10, 10] else "noisy or broken shapes", form)
        return ChatReply(reply, model=self.judge_id)
