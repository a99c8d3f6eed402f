"""Janus understanding: greedy answers about one image (the ``answer`` capability of ``JanusAdapter``).

Answers follow the deepseek ``inference.py`` / README path (docs/JANUS.md section 3): BOS, the
processor's default system prompt, then
``"<|User|>: <image_placeholder>\\n{prompt}\\n\\n<|Assistant|>:"`` rendered with the checkpoint's chat
template, the placeholder expanded to BOI + N image tokens + EOI; prompts left padded, greedy
decoding with pad = EOS, decoded with ``skip_special_tokens=True`` and not stripped (the reference
does not strip either). Greedy decoding needs no seed. With the engine the decoding runs on its static
cache; the answers are token-identical to ``generate`` on CPU in float32 (tested). Answers do not
depend on the batch on CPU; on GPU the same last-bit caveat applies.

``JanusUnderstanding`` is a mixin of ``JanusAdapter`` (``janus.py``): it uses the adapter's model,
processor, device, dtype, sampler, engine, batch size and special-token ids.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from PIL import Image

from harness.errors import HarnessError
from harness.models.base import Request
from harness.models.janus_engine import ENGINE_VERSION
from harness.models.janus_loading import JanusLoadError

ANSWER_VERSION = "janus-answer/1"


class JanusUnderstanding:
    """Question rendering, inputs and greedy answers; the understanding part of the protocol card."""

    @property
    def answer_protocol(self) -> dict:
        """Understanding parameters (part of ``protocol_for("answer")``)."""
        system = self.system_prompt_text
        return {
            "version": ANSWER_VERSION,
            "decoding": "greedy",  # do_sample=False, one beam: no seed involved
            "max_new_tokens": self.max_new_tokens,
            "system_prompt": bool(system),
            "system_prompt_sha256": hashlib.sha256(system.encode()).hexdigest()[:16] if system else None,
            "prompt_template": self.render_question("{prompt}"),
            "image_mode": "PIL convert('RGB'), alpha dropped",
            "pad": "eos",
            "decode": "skip_special_tokens=True, not stripped",
            "batching": "left padding masked, position ids from the attention mask",
            "decoder": (f"{ENGINE_VERSION} static cache" if self.sampler == "engine"
                        else "transformers generate"),
        }

    @property
    def system_prompt_text(self) -> str:
        """The text the processor puts before every question ("" when the system prompt is off)."""
        from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

        return DEFAULT_SYSTEM_PROMPT if self.processor.use_default_system_prompt else ""

    def render_question(self, prompt: str) -> str:
        """One image then the prompt in a user turn, then the assistant tag (checkpoint's template).

        The system prompt and BOS are added later by the processor and the tokenizer.
        """
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        if text.count(self.processor.image_token) != 1:
            raise JanusLoadError(f"the chat template in {self.folder} must render one image token for one image "
                                 f"part; it rendered {text!r}")
        return text

    def build_question_inputs(self, prompts: Sequence[str], images: Sequence[Image.Image]) -> dict:
        """Token ids (left padded, image tokens expanded), attention mask and pixel values."""
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        inputs = self.processor(text=[self.render_question(p) for p in prompts], images=rgb,
                                generation_mode="text", padding=True, return_tensors="pt")
        mask = inputs["attention_mask"]
        if len(prompts) > 1 and not bool(mask[:, -1].all()):
            raise JanusLoadError("the tokenizer must pad on the left for batched answers")
        return {"input_ids": inputs["input_ids"].to(self.device), "attention_mask": mask.to(self.device),
                "pixel_values": inputs["pixel_values"].to(self.device, self.dtype)}

    @torch.inference_mode()
    def answer_batch(self, prompts: Sequence[str], images: Sequence[Image.Image]) -> list[str]:
        """Greedy answers to one batch of (prompt, image) pairs."""
        from transformers import GenerationMixin

        inputs = self.build_question_inputs(prompts, images)
        if self.sampler == "engine":
            janus = self.model.model
            embeds = janus.get_input_embeddings()(inputs["input_ids"])
            features = janus.get_image_features(inputs["pixel_values"]).pooler_output
            placeholders = (inputs["input_ids"] == self.model.config.image_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(placeholders.expand_as(embeds),
                                           features.reshape(-1, embeds.shape[-1]).to(embeds.dtype))
            new_tokens = self.engine.greedy_text(embeds, inputs["attention_mask"], self.max_new_tokens,
                                                 self.eos_id).cpu()
            return [self.processor.tokenizer.decode(row, skip_special_tokens=True) for row in new_tokens]
        # The plain text-generation loop, as JanusForConditionalGeneration.generate(generation_mode=
        # "text") runs it, minus its second config merge (which logs a length warning every call).
        # Settings that could change a greedy answer are explicit, so the checkpoint's
        # generation_config (guidance 5 for images, maybe a repetition penalty) is not inherited.
        output = GenerationMixin.generate(
            self.model, **inputs, do_sample=False, num_beams=1, guidance_scale=None,
            max_new_tokens=self.max_new_tokens, repetition_penalty=1.0, no_repeat_ngram_size=0,
            pad_token_id=self.eos_id, eos_token_id=self.eos_id, bos_token_id=self.bos_id, use_cache=True,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1]:].cpu()
        return [self.processor.tokenizer.decode(row, skip_special_tokens=True) for row in new_tokens]

    def answer(self, requests: Sequence[Request]) -> list[str]:
        for request in requests:  # refuse before any work is done
            if len(request.images) != 1:
                raise HarnessError(f"Janus answers about exactly one image per request; {request.sample_id!r} "
                                   f"has {len(request.images)}")
        answers: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            images = [request.images[0].load() for request in chunk]
            answers.extend(self.answer_batch([r.prompt for r in chunk], images))
        return answers
