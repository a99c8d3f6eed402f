"""The two VIEScore judge calls of GEdit-Bench, as ``VIEScore(task="tie")`` builds them.

The prompt text is data: ``vie_prompts.json`` beside this module holds the four pieces verbatim from
``GEdit-Bench/viescore/vie_prompts.py`` (Step1X-Edit e78b811, Apache-2.0; the text comes from
TIGER-AI-Lab/VIEScore, MIT), with its source named in the file.

- SC (semantic consistency): ``"\\n".join([context, two_image_edit_rule, tie_rule_SC])`` with
  ``<instruction>`` replaced by the instruction; images: the original, then the edited one.
- PQ (perceptual quality): ``"\\n".join([context, rule_PQ])``; image: the edited one only.

How the images travel depends on upstream's ``--backbone``:

- ``gpt4o`` (GPT-4.1 through ``mllm_tools/openai.py``): text first, then the images, each
  ``ImageOps.exif_transpose``-d, converted to RGB and sent as JPEG at PIL's default quality (75).
  We send PNGs of exactly those JPEG-decoded pixels (the chat judge encodes PNG only).
- ``qwen25vl`` (``mllm_tools/qwen25vl_eval.py``): the images first, then the text; PNGs of the
  images as they are.

Before either call, the edited image is converted to RGB and resized to the original's size
(``Image.resize``, PIL's default filter), as ``process_single_item`` does.
"""
from __future__ import annotations

import io
import json
import math
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageOps

from benchmarks.gedit.parsing import parse_reply
from harness.hashing import hash_value
from harness.judges.base import ChatPrompt

PROMPTS_FILE = Path(__file__).with_name("vie_prompts.json")
PLACEHOLDER = "<instruction>"
JUDGE_FORMATS = ("gpt4o", "qwen25vl")


@lru_cache(maxsize=1)
def vie_prompts() -> dict[str, str]:
    return json.loads(PROMPTS_FILE.read_text(encoding="utf-8"))


def sc_template() -> str:
    p = vie_prompts()
    return "\n".join([p["context"], p["two_image_edit_rule"], p["tie_rule_SC"]])


def pq_text() -> str:
    p = vie_prompts()
    return "\n".join([p["context"], p["rule_PQ"]])


def sc_text(instruction: str) -> str:
    return sc_template().replace(PLACEHOLDER, instruction)


def prompts_hash() -> str:
    return hash_value([sc_template(), pq_text()])


def as_sent_by_gpt4o(image: Image.Image) -> Image.Image:
    """The pixels ``GPT4v.prepare_prompt`` sends: EXIF-transposed, RGB, JPEG quality 75, decoded."""
    image = ImageOps.exif_transpose(image).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def edited_for_judge(edited: Image.Image, original: Image.Image) -> Image.Image:
    """``Image.open(edited).convert("RGB").resize(original.size)``."""
    return edited.convert("RGB").resize(original.size)


def usable(text: str) -> bool:
    """Whether a reply is worth keeping in the run's reply log: it parses even on a re-ask (it holds
    ``{...}``) and its minimum score is a number from 0 up. Anything else (a bare list or number,
    ``rate_limit_exceeded``, a score upstream's evaluate fails on) is not kept, so asking the
    prompt again makes a new call, as upstream's re-ask does."""
    parsed = parse_reply(text, give_up=True)
    if parsed.kind != "value":
        return False
    try:
        value = min(parsed.value["score"])
    except Exception:  # noqa: BLE001 - whatever makes upstream's evaluate fail
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def judge_prompts(instruction: str, original: Image.Image, edited: Image.Image,
                  judge_format: str) -> tuple[ChatPrompt, ChatPrompt]:
    """(SC prompt, PQ prompt) for one item; ``edited`` is the model's output as written."""
    edited = edited_for_judge(edited, original)
    if judge_format == "gpt4o":
        shown_original, shown_edited = as_sent_by_gpt4o(original), as_sent_by_gpt4o(edited)
        after = True
    elif judge_format == "qwen25vl":
        shown_original, shown_edited, after = original, edited, False
    else:
        raise ValueError(f"judge_format {judge_format!r}: expected one of {JUDGE_FORMATS}")
    return (ChatPrompt(sc_text(instruction), (shown_original, shown_edited), images_after_text=after, accept=usable),
            ChatPrompt(pq_text(), (shown_edited,), images_after_text=after, accept=usable))
