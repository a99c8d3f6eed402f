"""Edit-benchmark test helpers: a tiny ImgEdit world (one source image, an edit list, a model that
copies the source, a scripted streaming chat judge) for test_reliability and test_bad_inputs, and a
noise editor for the GEdit and Complex-Edit shapes runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

import benchmarks.imgedit  # noqa: F401  (registers the benchmark)
from benchmarks.imgedit.data import EDIT_TYPES
from harness.judges.base import ChatPrompt, ChatReply
from harness.models.base import ModelAdapter, Request
from harness.registry import register
from harness.spec import ComponentSpec, RunSpec

SECRET = "sk-test-NEVERONDISK0123456789"
REPLY = "Prompt Compliance: 4\nVisual Naturalness: 3\nPhysical & Detail Integrity: 5"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def edit_data(root: Path, keys: list[str], image_id: str = "a.jpg") -> dict[str, str]:
    """An ImgEdit Basic layout with one source image and an edit per key (all 'add'; the last one's
    source named ``image_id``)."""
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (24, 16), (200, 40, 40)).save(root / "images" / "a.jpg", format="JPEG")
    ids = ["a.jpg"] * (len(keys) - 1) + [image_id]
    lines = ",\n".join(f'  {json.dumps(key)}: {{"id": {json.dumps(source)}, "prompt": "Add a hat {n}.", '
                       f'"edit_type": "add"}}' for n, (key, source) in enumerate(zip(keys, ids)))
    (root / "basic_edit.json").write_text("{\n" + lines + "\n}", encoding="utf-8")
    prompts = {kind: f"Grade the {kind} edit: <edit_prompt>." for kind in EDIT_TYPES}
    (root / "prompts.json").write_text(json.dumps(prompts), encoding="utf-8")
    return {"edits": str(root / "basic_edit.json"), "images": str(root / "images"),
            "judge_prompts": str(root / "prompts.json")}


@register("model", "test-reliability-copier")
class Copier(ModelAdapter):
    """Returns the source image as the edit."""

    capabilities = frozenset({"edit"})
    model_digest = "test-reliability-copier"

    def edit_images(self, requests: list[Request]) -> list[Image.Image]:
        return [request.images[0].load() for request in requests]


@register("model", "test-noise-editor")
class NoiseEditor(ModelAdapter):
    """Answers every edit with 64 px coloured noise (seeded by the request): what an untrained model
    draws."""

    capabilities = frozenset({"edit"})
    model_digest = "test-noise-editor"

    def edit_images(self, requests: list[Request]) -> list[Image.Image]:
        return [Image.fromarray(np.random.default_rng(r.seed % 2**32).integers(0, 256, (64, 64, 3), dtype=np.uint8))
                for r in requests]


@register("chat", "test-reliability-judge")
class ScriptedJudge:
    """Streams its replies (``on_reply``); ``script`` gives each call's reply in turn (then REPLY),
    ``stop_after`` raises KeyboardInterrupt (a kill) after that many replies in this process."""

    script: list[str] = []
    asked: list[str] = []
    stop_after: int | None = None
    judge_id = "test-reliability-judge"
    usage: dict = {}

    def ask(self, prompts: list[ChatPrompt], on_reply=None) -> list[ChatReply]:
        replies = []
        for position, prompt in enumerate(prompts):
            if ScriptedJudge.stop_after is not None and len(ScriptedJudge.asked) >= ScriptedJudge.stop_after:
                raise KeyboardInterrupt  # killed with replies of this batch already paid for
            ScriptedJudge.asked.append(prompt.text)
            reply = ChatReply(ScriptedJudge.script.pop(0) if ScriptedJudge.script else REPLY, model="j-2025-01-01")
            replies.append(reply)
            if on_reply is not None:
                on_reply(position, reply)
        return replies


def reset_judge() -> None:
    ScriptedJudge.script, ScriptedJudge.asked, ScriptedJudge.stop_after = [], [], None


def edit_spec(data: dict[str, str]) -> RunSpec:
    return RunSpec(benchmark=ComponentSpec("imgedit", data), model=ComponentSpec("test-reliability-copier"),
                   judges={"judge": ComponentSpec("test-reliability-judge")})


def write_spec(path: Path, spec: RunSpec) -> Path:
    path.write_text(spec.to_yaml(), encoding="utf-8")
    return path
