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
  any device. Images are decoded one at a time for the same reason. With the default ``sampler: engine``
  the tokens come from ``janus_engine.py`` (a draw depends only on the request's seed and the step) and
  images are decoded in chunks of a fixed size (``janus_vq.py``).
* **Precision.** The guided logits, softmax and sampling are computed in float32 (the model itself
  runs in ``dtype``: bf16 on CUDA).

On CPU in float32 the images are bit-identical across batch sizes. On GPU, kernels chosen per batch
shape can change logits in the last bits, which very rarely changes a sampled token.

Understanding (``answer``, greedy answers about one image) lives in ``janus_understanding.py``.

Editing (``edit_images``, Janus-4o checkpoints) is the reference's three-stream loop with two guidance
scales, ``cfg_weight`` (s1) and ``cfg_weight2`` (s2); prompt rows, embeddings, the VQ code search and
the reference loop live in ``janus_edit.py`` (docs/JANUS.md section 5). It uses the same sampler,
batching and decoding as text-to-image. Any Janus checkpoint runs it, but only Janus-4o was trained for it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from PIL import Image

from harness.errors import HarnessError
from harness.models import janus_edit, janus_sampler, janus_vq
from harness.models.base import ModelAdapter, Request
from harness.models.janus_engine import JanusEngine, PromptRows, Timings, cache_argument, distinct_rows
from harness.models.janus_loading import (  # noqa: F401 - JanusLoadError is re-exported
    JanusLoadError, _pick_device_dtype, checkpoint_digest, resolve_checkpoint)
from harness.models.janus_understanding import JanusUnderstanding
from harness.registry import register

#: 2: the engine became the default sampler (images of version 1 came from the reference sampler)
ADAPTER_VERSION = "janus-adapter/2"
SAMPLERS = ("engine", "reference")
#: ``batch_size: auto`` on CPU (larger batches gain little once the steps are compute-bound)
AUTO_BATCH_CPU = 16
REFERENCE_SAMPLING = "float32 logits; multinomial on CPU, one torch.Generator per request (request.seed)"
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
class JanusAdapter(JanusUnderstanding, ModelAdapter):
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
        """Images per VQ decoder call with the engine (``janus_vq.chunk_size``)."""
        return janus_vq.chunk_size(self.device, self.image_size, int(self.model.config.vq_config.base_channels))

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
            return (f"{janus_vq.DESCRIPTION} in chunks of {self.decode_chunk}, last chunk padded; "
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
        cached = cache_argument(language_model, cache)
        tokens = torch.zeros(len(prompts), self.image_tokens, dtype=torch.long, device=self.device)

        steps: Any = range(self.image_tokens)
        if self.verbose:
            from tqdm import tqdm
            steps = tqdm(steps, desc=f"janus x{len(prompts)}", unit="tok")
        first_step_done = start
        for step in steps:
            out = language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                 use_cache=True, **cached)
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
        ``decode_chunk`` images through ``janus_vq.VQDecoder`` (the last one padded with copies), so every
        call has the same shape and an image's pixels do not depend on the batch."""
        if self.sampler == "reference":
            return [janus_vq.to_images(self.model.decode_image_tokens(row.unsqueeze(0).to(self.device)))[0]
                    for row in tokens]
        if self._decoder is None:
            self._decoder = janus_vq.VQDecoder(self.model.model.vqmodel)
        return janus_vq.decode(self._decoder, tokens, self.decode_chunk, self.device)

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
