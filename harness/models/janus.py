"""Janus-Pro text-to-image adapter (transformers port, deepseek sampling protocol).

The protocol follows the deepseek reference (docs/JANUS.md section 2): the prompt
``"<|User|>: {prompt}\\n\\n<|Assistant|>:<begin_of_image>"`` with BOS prepended; per image one
conditional row and one unconditional row (only BOS and BOI kept, the rest replaced by pad), rows
interleaved; ``l = l_uncond + w * (l_cond - l_uncond)``; ``p = softmax(l / T)`` sampled over the full
image vocabulary; decode and ``clip((x + 1) / 2 * 255)`` truncated to uint8.

We run our own sampling loop instead of ``model.generate(generation_mode="image")`` because
``generate`` draws from the global RNG (a sample would depend on its batch), cannot do ``w = 1``, and
silently adds a top-k 50 warper unless told not to. Choices that differ from the reference:

* **Batching.** The reference batches copies of one prompt, so it never pads. We batch different
  prompts with left padding; the padding positions are masked (and position ids start at 0 at each
  row's BOS) in both the conditional and the unconditional rows. Inside a row's own span the
  unconditional row still attends its pads, as in the reference, so each row sees exactly what it
  would see unbatched.
* **Seeds.** Each request has its own ``torch.Generator`` (CPU, seeded with ``request.seed``) and only
  that generator samples its row, so an image does not depend on batch size, composition or order.
  Sampling happens on the CPU from float32 probabilities, so the same seed maps to the same draw on
  any device. Images are decoded one at a time for the same reason.
* **Precision.** The guided logits, softmax and sampling are computed in float32 (the model itself
  runs in ``dtype``: bf16 on CUDA).

On CPU in float32 the images are bit-identical across batch sizes. On GPU, kernels chosen per batch
shape can change logits in the last bits, which very rarely changes a sampled token.

Understanding (``answer``) follows the deepseek ``inference.py`` / README path (docs/JANUS.md
section 3): BOS, the processor's default system prompt, then
``"<|User|>: <image_placeholder>\\n{prompt}\\n\\n<|Assistant|>:"`` rendered with the checkpoint's chat
template, the placeholder expanded to BOI + N image tokens + EOI; prompts left padded, greedy
decoding with pad = EOS, decoded with ``skip_special_tokens=True`` and not stripped (the reference
does not strip either). Greedy decoding needs no seed. With the engine the decoding runs on its static
cache; the answers are token-identical to ``generate`` on CPU in float32 (tested). Answers do not
depend on the batch on CPU; on GPU the same last-bit caveat applies.

Editing (``edit_images``, Janus-4o checkpoints) is the reference's three-stream loop with two guidance
scales, ``cfg_weight`` (s1) and ``cfg_weight2`` (s2); prompt rows, embeddings, the VQ code search and
the reference loop live in ``janus_edit.py`` (docs/JANUS.md section 5). It uses the same sampler,
batching and decoding as text-to-image. Any Janus checkpoint runs it, but only Janus-4o was trained for it.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from PIL import Image

from harness.errors import HarnessError
from harness.models import janus_edit, janus_sampler
from harness.models.base import ModelAdapter, Request
from harness.models.janus_engine import ENGINE_VERSION, JanusEngine, PromptRows, Timings, distinct_rows
from harness.models.janus_loading import (  # noqa: F401 - JanusLoadError is re-exported
    JanusLoadError, _pick_device_dtype, checkpoint_digest, resolve_checkpoint)
from harness.registry import register

#: 2: the engine became the default sampler (images of version 1 came from the reference sampler)
ADAPTER_VERSION = "janus-adapter/2"
SAMPLERS = ("engine", "reference")
#: images per VQ decoder call in the engine on CUDA (the last call padded to this size)
DECODE_CHUNK_CUDA = 16
#: on CPU, a chunk holds about this many values of the decoder's widest activation (image size squared x
#: base channels): on the CPU of docs/PERFORMANCE.md, 4 images at a time decode fastest for the 64 px
#: tiny model, one at a time for the real VQ decoder (128 channels at full resolution)
DECODE_VALUES_CPU = 2**19
#: ``batch_size: auto`` on CPU (larger batches gain little once the steps are compute-bound)
AUTO_BATCH_CPU = 16
REFERENCE_SAMPLING = "float32 logits; multinomial on CPU, one torch.Generator per request (request.seed)"
ANSWER_VERSION = "janus-answer/1"
#: user turn + empty assistant turn, deepseek template, empty system prompt (Janus-Pro role names)
PROMPT_TEMPLATE = "<|User|>: {prompt}\n\n<|Assistant|>:"
UNCOND_POLICY = "bos+boi only, pads attended, no attention mask"
@dataclass
class JanusBatch:
    """Prompt rows for one chunk of requests.

    With guidance the rows are interleaved: row 2i is request i's conditional row, row 2i+1 its
    unconditional row. Without guidance (``cfg_weight == 1``) there is one row per request.
    """

    input_ids: torch.Tensor  # (rows, length), left padded
    attention_mask: torch.Tensor  # (rows, length); 0 only on left padding
    position_ids: torch.Tensor  # (rows, length); 0 at each row's BOS
    rows_per_request: int


@register("model", "janus")
class JanusAdapter(ModelAdapter):
    """Janus-Pro (converted ``deepseek-community`` checkpoints, or any ``JanusForConditionalGeneration``).

    ``temperature=0`` is a testing hook: argmax instead of sampling (greedy decoding), used to check
    the guidance arithmetic against ``model.generate``. It is not part of any published protocol.
    ``sampler``: ``engine`` (default) or ``reference`` (the earlier loop; see the module docstring).
    ``batch_size``: requests per model batch, or ``auto`` (from free GPU memory on CUDA,
    ``AUTO_BATCH_CPU`` on CPU).
    """

    capabilities = frozenset({"text_to_image", "edit", "answer"})

    def __init__(self, path: str | os.PathLike, device: str = "auto", dtype: str | torch.dtype = "auto",
                 cfg_weight: float = 5.0, temperature: float = 1.0, batch_size: int | str = 8,
                 revision: str | None = None, verbose: bool = False, max_new_tokens: int = 512,
                 system_prompt: bool = True, cfg_weight2: float = 5.0, sampler: str = "engine") -> None:
        from transformers import JanusForConditionalGeneration, JanusProcessor

        self._check_settings(cfg_weight, cfg_weight2, temperature, batch_size, max_new_tokens, sampler)
        device_, dtype_ = _pick_device_dtype(device, dtype)
        folder = resolve_checkpoint(path, revision)
        model = JanusForConditionalGeneration.from_pretrained(folder, dtype=dtype_)
        processor = JanusProcessor.from_pretrained(folder)
        self._setup(model, processor, folder, device_, dtype_, cfg_weight, temperature, batch_size, verbose,
                    max_new_tokens, system_prompt, cfg_weight2, sampler)

    @classmethod
    def from_loaded(cls, model: Any, processor: Any, device: str = "auto", dtype: str | torch.dtype = "auto",
                    cfg_weight: float = 5.0, temperature: float = 1.0, batch_size: int | str = 8,
                    verbose: bool = False, max_new_tokens: int = 512, system_prompt: bool = True,
                    cfg_weight2: float = 5.0, sampler: str = "engine") -> "JanusAdapter":
        """An adapter around a model and processor already in memory (benchmarks of random models).

        It has no checkpoint folder, so no ``model_digest``: it cannot be used by the runner."""
        adapter = cls.__new__(cls)
        adapter._check_settings(cfg_weight, cfg_weight2, temperature, batch_size, max_new_tokens, sampler)
        device_, dtype_ = _pick_device_dtype(device, dtype)
        adapter._setup(model.to(dtype_), processor, None, device_, dtype_, cfg_weight, temperature, batch_size,
                       verbose, max_new_tokens, system_prompt, cfg_weight2, sampler)
        return adapter

    @staticmethod
    def _check_settings(cfg_weight, cfg_weight2, temperature, batch_size, max_new_tokens, sampler) -> None:
        if cfg_weight < 1:
            raise ValueError(f"cfg_weight must be >= 1 (1 = no guidance), got {cfg_weight}")
        if cfg_weight2 < 0:
            raise ValueError(f"cfg_weight2 must be >= 0 (0 = the VQ-conditioned stream alone), got {cfg_weight2}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy, testing only), got {temperature}")
        if batch_size != "auto" and (isinstance(batch_size, (bool, str)) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be >= 1 or 'auto', got {batch_size!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")

    def _setup(self, model, processor, folder, device, dtype, cfg_weight, temperature, batch_size, verbose,
               max_new_tokens, system_prompt, cfg_weight2, sampler) -> None:
        self.max_new_tokens = int(max_new_tokens)
        self.cfg_weight = float(cfg_weight)
        self.cfg_weight2 = float(cfg_weight2)
        self.temperature = float(temperature)
        self.sampler = sampler
        self.verbose = verbose
        self.device, self.dtype = device, dtype
        self.folder = folder
        self.model = model
        self.model.to(self.device).eval()
        self.processor = processor
        self._engine: JanusEngine | None = None
        self._decoder: Any = None
        #: set ``profile`` to get ``timings`` (prefill and step seconds) of the last batch (perf scripts)
        self.profile = False
        self.timings = Timings()

        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # the sampling loop relies on prompts ending at the last column
        self.bos_id = self._token_id(tokenizer.bos_token, "BOS")
        self.pad_id = self._token_id(tokenizer.pad_token, "pad")
        self.boi_id = self._token_id(tokenizer.boi_token, "begin-of-image")
        self.image_tokens = int(self.model.config.vision_config.num_image_tokens)
        self.image_size = int(self.model.config.vision_config.image_size)
        # Understanding: the deepseek reference always uses the default system prompt (converted
        # checkpoints set this flag); ``system_prompt=False`` reproduces harnesses that drop it.
        self.processor.use_default_system_prompt = bool(system_prompt)
        self.eos_id = self._token_id(tokenizer.eos_token, "EOS")
        self.edit_ids = janus_edit.EditTokenIds(
            bos=self.bos_id, pad=self.pad_id, boi=self.boi_id,
            eoi=self._token_id(tokenizer.eoi_token, "end-of-image"),
            image=self._token_id(tokenizer.image_token, "image placeholder"))
        self.batch_size = self._auto_batch_size() if batch_size == "auto" else int(batch_size)

    def _auto_batch_size(self) -> int:
        """Requests per batch that fit: on CUDA from the free memory and one request's cache (three rows
        of prompt + image tokens, the editing case) plus its per-step activations; on CPU a fixed size."""
        if self.device.type != "cuda":
            return AUTO_BATCH_CPU
        text = self.model.config.text_config
        heads = int(text.num_attention_heads)
        head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // heads)
        kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
        element = torch.finfo(self.dtype).bits // 8
        columns = 3 * self.image_tokens + 256
        cache = 2 * int(text.num_hidden_layers) * kv_heads * head_dim * columns * element
        vocab = int(self.model.model.generation_head.vision_head.out_features)
        activations = 4 * max(int(text.intermediate_size), vocab) * 4 + vocab * 8 * 4
        free, _ = torch.cuda.mem_get_info(self.device)
        return max(1, min(256, int(0.6 * free // (3 * (cache + activations)))))

    @property
    def decode_chunk(self) -> int:
        """Images per VQ decoder call with the engine: fixed for a model and device type, so pixels never
        depend on how many images a batch has."""
        if self.device.type == "cuda":
            return DECODE_CHUNK_CUDA
        values = self.image_size ** 2 * int(self.model.config.vq_config.base_channels)
        return max(1, min(8, DECODE_VALUES_CPU // values))

    @property
    def engine(self) -> JanusEngine:
        if self._engine is None:
            self._engine = JanusEngine(self.model)
        self._engine.profile = self.profile
        return self._engine

    def _token_id(self, token: str | None, what: str) -> int:
        """Look a special token up in the tokenizer; a missing pad token once broke Janus CFG."""
        token_id = None if token is None else self.processor.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.processor.tokenizer.unk_token_id:
            raise JanusLoadError(f"the tokenizer in {self.folder} defines no {what} token ({token!r}).")
        return int(token_id)

    @property
    def model_digest(self) -> str:
        if self.folder is None:
            raise HarnessError("this adapter was built around a model in memory; it has no checkpoint digest")
        return checkpoint_digest(self.folder)

    @property
    def protocol(self) -> dict:
        return {
            "adapter_version": ADAPTER_VERSION,
            "cfg_weight": self.cfg_weight,
            "cfg_layout": "deepseek-interleaved",
            "temperature": self.temperature,
            "top_k": None,  # full image vocabulary, like the deepseek reference
            "top_p": None,
            "image_tokens": self.image_tokens,
            "image_size": self.image_size,
            "prompt_template": PROMPT_TEMPLATE + self.processor.tokenizer.boi_token,
            "prompt_strip": True,
            "uncond": UNCOND_POLICY if self.cfg_weight != 1 else None,
            "batching": "left padding masked, per-row position ids",
            "dtype": str(self.dtype).removeprefix("torch."),
            "device_type": self.device.type,  # kernels differ between CPU and GPU: not the same samples
            "sampler": self.sampler,
            "sampling": janus_sampler.DESCRIPTION if self.sampler == "engine" else REFERENCE_SAMPLING,
            "decode": self._decode_description(),
        }

    def _decode_description(self) -> str:
        if self.sampler == "engine":
            return (f"VQ decoder (channels-last copy) in chunks of {self.decode_chunk}, last chunk padded; "
                    "clip((x+1)/2*255) truncated to uint8")
        return "decode_image_tokens, clip((x+1)/2*255) truncated to uint8"

    def protocol_for(self, capability: str) -> dict:
        """Image settings for generation, understanding settings for answers: changing
        ``max_new_tokens`` must not regenerate images, nor ``cfg_weight`` re-answer questions."""
        if capability == "answer":
            return {"adapter_version": ADAPTER_VERSION, "dtype": str(self.dtype).removeprefix("torch."),
                    "device_type": self.device.type, "sampler": self.sampler, "answer": self.answer_protocol}
        if capability == "edit":
            return self.edit_protocol
        return self.protocol

    @property
    def edit_protocol(self) -> dict:
        """Editing parameters: the text-to-image card plus the second scale, the three streams, the
        prompt layout and how the source image is read (``protocol_for("edit")``)."""
        tokenizer = self.processor.tokenizer
        content = janus_edit.describe_layout(janus_edit.special_strings(tokenizer), self.image_tokens)
        return {
            **self.protocol,
            "edit_version": janus_edit.EDIT_VERSION,
            "cfg_weight2": self.cfg_weight2,
            "cfg_layout": janus_edit.LAYOUT,
            "guidance": janus_edit.GUIDANCE,
            "prompt_template": self.render_prompt(content) + tokenizer.boi_token,
            "uncond": UNCOND_POLICY,  # always present in editing, even with cfg_weight 1
            "streams": {**janus_edit.STREAMS, "uncond": UNCOND_POLICY + ", no pixels"},
            "source_image": janus_edit.describe_preprocessing(self.processor.image_processor, self.image_size),
            "vq_codes": janus_edit.VQ_SEARCH,
        }

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

    # -- prompt rows ---------------------------------------------------------------------------

    @staticmethod
    def render_prompt(prompt: str) -> str:
        """The Janus-Pro user/assistant text, without BOS (added by the tokenizer) or BOI."""
        return PROMPT_TEMPLATE.format(prompt=prompt.strip())

    def build_batch(self, prompts: Sequence[str]) -> JanusBatch:
        """Tokenise prompts (BOS ... BOI, left padded) and add the unconditional rows if guided."""
        encoded = self.processor(text=[self.render_prompt(p) for p in prompts], generation_mode="image",
                                 padding=True, return_tensors="pt")
        ids, mask = encoded["input_ids"].long(), encoded["attention_mask"].long()
        length = ids.shape[1]
        first = length - mask.sum(dim=1)  # index of each row's first real token
        rows = torch.arange(len(prompts))
        if not (bool((ids[rows, first] == self.bos_id).all()) and bool((ids[:, -1] == self.boi_id).all())):
            raise JanusLoadError("the tokenizer must prepend BOS, pad on the left and keep <begin_of_image> "
                                 f"last; got {ids.tolist()}")
        if self.cfg_weight == 1:
            rows_per, input_ids, attention_mask = 1, ids, mask
        else:
            # Unconditional row: same length, everything but the row's BOS and final BOI -> pad.
            uncond = torch.full_like(ids, self.pad_id)
            uncond[rows, first] = self.bos_id
            uncond[:, -1] = self.boi_id
            rows_per = 2
            input_ids = torch.stack([ids, uncond], dim=1).reshape(2 * len(prompts), length)
            attention_mask = mask.repeat_interleave(2, dim=0)
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        return JanusBatch(input_ids, attention_mask, position_ids, rows_per)

    # -- sampling --------------------------------------------------------------------------------

    def _next_tokens(self, logits: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """Guidance, temperature and one draw per request from that request's own generator."""
        logits = logits.float()
        if self.cfg_weight != 1:
            cond, uncond = logits[0::2], logits[1::2]
            logits = uncond + self.cfg_weight * (cond - uncond)
        if self.temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / self.temperature, dim=-1).cpu()
        draws = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
        return torch.cat(draws).to(logits.device)

    def _guide(self, logits: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance over interleaved (cond, uncond) rows; float32 in and out."""
        if self.cfg_weight == 1:
            return logits
        cond, uncond = logits[0::2], logits[1::2]
        return uncond + self.cfg_weight * (cond - uncond)

    @torch.inference_mode()
    def generate_image_tokens(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Sample ``(len(prompts), image_tokens)`` image token ids in one batch."""
        if self.sampler == "reference":
            return self._reference_image_tokens(prompts, seeds)
        batch = self.build_batch(prompts)
        first = batch.attention_mask.shape[1] - batch.attention_mask.sum(dim=1)
        keys = [(int(f), tuple(row)) for f, row in zip(first.tolist(), batch.input_ids.tolist())]
        distinct, rows = distinct_rows(keys)
        embeds = self.model.get_input_embeddings()(batch.input_ids[distinct].to(self.device))
        prompt = PromptRows(embeds, batch.attention_mask[distinct], batch.position_ids[distinct], torch.tensor(rows))
        tokens = self.engine.sample_image_tokens(prompt, batch.rows_per_request, self._guide, seeds, self.temperature,
                                                 self.image_tokens)
        self.timings = self.engine.timings
        return tokens

    def _reference_image_tokens(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """The reference sampler: a ``DynamicCache`` loop, one CPU generator per request."""
        from transformers import DynamicCache

        start = time.perf_counter()
        janus = self.model.model
        language_model = janus.language_model
        batch = self.build_batch(prompts)
        generators = [torch.Generator(device="cpu").manual_seed(int(s) % 2**64) for s in seeds]
        mask = batch.attention_mask.to(self.device)
        positions = batch.position_ids.to(self.device)
        embeds = self.model.get_input_embeddings()(batch.input_ids.to(self.device))
        cache = DynamicCache(config=language_model.config)
        tokens = torch.zeros(len(prompts), self.image_tokens, dtype=torch.long, device=self.device)

        steps: Any = range(self.image_tokens)
        if self.verbose:
            from tqdm import tqdm
            steps = tqdm(steps, desc=f"janus x{len(prompts)}", unit="tok")
        first_step_done = start
        for step in steps:
            out = language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                 past_key_values=cache, use_cache=True)
            logits = janus.generation_head(out.last_hidden_state[:, -1, :])
            tokens[:, step] = self._next_tokens(logits, generators)
            if step == 0:
                first_step_done = time.perf_counter()
            if step + 1 < self.image_tokens:  # feed the token to both rows of its request
                fed = tokens[:, step].repeat_interleave(batch.rows_per_request).unsqueeze(1)
                embeds = janus.generation_aligner(janus.generation_embeddings(fed))
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
                positions = positions[:, -1:] + 1
        if self.profile:  # the draws copy to the host every step, so the clock is synchronised
            self.timings = Timings(prefill_s=first_step_done - start, steps_s=time.perf_counter() - first_step_done,
                                   steps=self.image_tokens, rows=int(batch.input_ids.shape[0]),
                                   distinct_prompt_rows=int(batch.input_ids.shape[0]))
        return tokens

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> list[Image.Image]:
        """Image tokens -> RGB images. Reference sampler: one image per decoder call. Engine: chunks of
        ``decode_chunk`` images (the last one padded with copies), so every call has the same shape and
        an image's pixels do not depend on the batch."""
        if self.sampler == "reference":
            return [self._to_image(self.model.decode_image_tokens(row.unsqueeze(0).to(self.device))[0])
                    for row in tokens]
        images = []
        size = self.decode_chunk
        for start in range(0, len(tokens), size):
            chunk = tokens[start:start + size].to(self.device)
            count = len(chunk)
            if count < size:
                chunk = torch.cat([chunk, chunk[-1:].expand(size - count, -1)])
            pixels = self._decode_chunk(chunk)
            images.extend(self._to_image(pixels[i]) for i in range(count))
        return images

    def _decode_chunk(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N) tokens -> (B, H, W, 3) pixels with a channels-last copy of the VQ decoder."""
        import copy

        vqmodel = self.model.model.vqmodel
        if self._decoder is None:
            post_quant_conv = copy.deepcopy(vqmodel.post_quant_conv).to(memory_format=torch.channels_last)
            decoder = copy.deepcopy(vqmodel.decoder).to(memory_format=torch.channels_last)
            self._decoder = (post_quant_conv, decoder)
        post_quant_conv, decoder = self._decoder
        latent = vqmodel.quantize.get_codebook_entry(tokens).contiguous(memory_format=torch.channels_last)
        return decoder(post_quant_conv(latent)).permute(0, 2, 3, 1)

    @staticmethod
    def _to_image(pixels: torch.Tensor) -> Image.Image:
        """(H, W, 3) floats in about [-1, 1] -> RGB, ``clip((x + 1) / 2 * 255)`` truncated to uint8."""
        pixels = ((pixels.float().cpu() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
        return Image.fromarray(pixels.contiguous().numpy())

    # -- understanding ----------------------------------------------------------------------------

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

    # -- editing ------------------------------------------------------------------------------------

    def build_edit_inputs(self, instructions: Sequence[str], images: Sequence[Image.Image],
                          names: Sequence[str] | None = None) -> tuple[janus_edit.EditRows, torch.Tensor, torch.Tensor]:
        """Rows (3 per request), their input embeddings and the sources' VQ codes, for one chunk."""
        tokenizer = self.processor.tokenizer
        strings = janus_edit.special_strings(tokenizer)
        texts = [self.render_prompt(janus_edit.edit_user_content(text, self.image_tokens, strings))
                 + tokenizer.boi_token for text in instructions]
        names = list(names) if names is not None else [f"edit request {i}" for i in range(len(texts))]
        rows = janus_edit.build_edit_rows(tokenizer, texts, self.edit_ids, self.image_tokens, names)
        pixels = janus_edit.preprocess_sources(self.processor.image_processor, images, self.image_size)
        embeds, codes = janus_edit.edit_input_embeds(self.model, rows, pixels, self.image_tokens,
                                                     self.device, self.dtype)
        return rows, embeds, codes

    @torch.inference_mode()
    def edit_image_tokens(self, instructions: Sequence[str], images: Sequence[Image.Image], seeds: Sequence[int],
                          names: Sequence[str] | None = None) -> torch.Tensor:
        """Sample ``(len(instructions), image_tokens)`` edited-image token ids in one batch."""
        rows, embeds, _ = self.build_edit_inputs(instructions, images, names)
        if self.sampler == "reference":
            return janus_edit.sample_edit_tokens(self.model, rows, embeds, seeds, self.cfg_weight, self.cfg_weight2,
                                                 self.temperature, self.image_tokens, self.device, self.verbose)
        prompt = janus_edit.edit_prompt_rows(rows, embeds, [janus_edit.image_key(image) for image in images])

        def guide(logits: torch.Tensor) -> torch.Tensor:
            return janus_edit.guided_edit_logits(logits, self.cfg_weight, self.cfg_weight2)

        tokens = self.engine.sample_image_tokens(prompt, janus_edit.ROWS_PER_REQUEST, guide, seeds, self.temperature,
                                                 self.image_tokens)
        self.timings = self.engine.timings
        return tokens

    def edit_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        """One edited image (``image_size`` square) per request: its one source image, edited as
        its prompt says."""
        for request in requests:  # refuse before any work is done
            if len(request.images) != 1:
                raise HarnessError(f"Janus edits exactly one source image per request; {request.sample_id!r} "
                                   f"has {len(request.images)}")
        images: list[Image.Image] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            sources = [request.images[0].load() for request in chunk]
            tokens = self.edit_image_tokens([r.prompt for r in chunk], sources, [r.seed for r in chunk],
                                            [r.sample_id for r in chunk])
            images.extend(self.decode(tokens))
        return images

    def generate_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        images: list[Image.Image] = []
        with torch.inference_mode():
            for start in range(0, len(requests), self.batch_size):
                chunk = requests[start:start + self.batch_size]
                tokens = self.generate_image_tokens([r.prompt for r in chunk], [r.seed for r in chunk])
                images.extend(self.decode(tokens))
        return images
