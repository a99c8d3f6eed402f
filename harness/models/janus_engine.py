"""The Janus generation engine: a static KV cache, one prefill, all rows of a batch in each step.

``JanusAdapter`` (``sampler: engine``, the default) runs text-to-image, Janus-4o editing and greedy
understanding through :class:`JanusEngine`. The engine reads the weights of the transformers model
(``JanusForConditionalGeneration``; its language model is a Llama decoder) and runs its own decoder
loop over them:

* **Static cache.** Keys and values of every layer live in tensors preallocated for the prompt plus
  every token to come, ``(rows, kv_heads, capacity, head_dim)``; a step writes one column and attends
  to the columns written so far. No cache object, no per-step mask building, no concatenation.
* **One prefill, shared rows.** Rows that are equal at the prompt (the copies of one prompt with
  several seeds, the unconditional rows of prompts of the same length) are run once and their keys and
  values copied to every row that starts from them.
* **One batch per step.** The conditional and unconditional rows of every request in the batch (two
  per request, three for Janus-4o editing) go through the language model together; guidance and
  sampling run on the device for all requests at once (``janus_sampler``: counter-based Gumbel-max,
  so a draw depends only on the request's seed and the step).
* **CUDA graphs.** On a CUDA device the decode step (embedding of the previous token, the decoder, the
  generation head, guidance, the draw) is captured once per batch and replayed; the step then has a
  fixed shape: it attends over the whole cache with a mask of the columns written so far. The same
  fixed-shape step runs eagerly with ``static=True`` (tests compare it with the default step on CPU).
* **Understanding.** Greedy decoding of text answers uses the same cache and decoder, stopping when
  every row has produced EOS, as ``generate`` does.
* **Weights.** Small models get fused q/k/v and gate/up matrices (fewer operations per step, which is
  what their steps cost). On CPU, large models multiply with oneDNN on prepacked copies of the
  weights: more memory, much faster than the BLAS behind ``nn.Linear`` on the CPU measured in
  docs/PERFORMANCE.md (``janus_weights.py``). Copies are rebuilt when a parameter of the model changes.
  One query per row on CPU uses plain attention (cheaper there than the fused kernel); prefill and
  CUDA use ``scaled_dot_product_attention``.
* **VQ decoding** of the sampled tokens is ``janus_vq.py``'s (the adapter's ``decode``).

Only the CPU paths have run so far (tests, docs/PERFORMANCE.md); the CUDA graph capture is written for
GPUs but has not been measured on one yet.

The arithmetic is the Llama decoder's (RMSNorm, rotary embeddings from the model's own rotary module,
scaled dot-product attention, gated MLP); tests check token equality with the transformers model on
CPU in float32. Rows are left padded: padding columns are masked and position ids start at 0 at each
row's first real token, exactly as in the reference loop.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import torch
import torch.nn.functional as F

from harness.errors import HarnessError
from harness.models import janus_sampler
from harness.models.janus_weights import Layer, Weights, build_weights, prepack_available

log = logging.getLogger(__name__)

ENGINE_VERSION = "janus-engine/1"
#: fuse the q/k/v and gate/up projections into one matrix each when the copies are this small (tiny
#: models, where the number of operations per step dominates); larger models use the weights in place
FUSE_LIMIT_BYTES = 64 * 2**20
#: below this many (vocabulary x hidden) elements, the input embedding of every image token is computed
#: once per call and looked up at each step (tiny models: one operation instead of four)
_FEED_TABLE_LIMIT = 2**22
#: noise for about this many (request, step, token) triples is computed at once in the eager loop
#: (int64 work arrays of 256 KiB: they stay in the CPU's cache)
_NOISE_BLOCK = 2**15


@dataclass
class PromptRows:
    """The prompt rows of one batch, stored once per distinct row.

    ``embeds``, ``mask`` and ``positions`` describe the U distinct rows (left padded to a common
    length L); ``rows[r]`` says which distinct row batch row r starts from.
    """

    embeds: torch.Tensor  # (U, L, hidden)
    mask: torch.Tensor  # (U, L); 0 only on left padding
    positions: torch.Tensor  # (U, L); 0 at each row's first real token
    rows: torch.Tensor  # (R,) long, into the U distinct rows


def distinct_rows(keys: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """Indices of the first row of each distinct key, and for every row the index of its key."""
    first: dict[Hashable, int] = {}
    representatives: list[int] = []
    inverse = []
    for row, key in enumerate(keys):
        if key not in first:
            first[key] = len(representatives)
            representatives.append(row)
        inverse.append(first[key])
    return representatives, inverse


def cache_argument(language_model: torch.nn.Module, cache: Any) -> dict[str, Any]:
    """The keyword under which ``language_model.forward`` takes a KV cache.

    transformers 5.0 calls it ``past_key_values``; later 5.x releases call it ``cache`` and warn that
    the old name goes away in 5.40. The values, and so the tokens, are the same under either name.
    """
    import inspect

    parameters = inspect.signature(language_model.forward).parameters
    return {"cache": cache} if "cache" in parameters else {"past_key_values": cache}


@dataclass
class Timings:
    """Where the time of the last call went (filled only when ``JanusEngine.profile`` is set)."""

    prefill_s: float = 0.0
    steps_s: float = 0.0
    steps: int = 0
    rows: int = 0
    distinct_prompt_rows: int = 0


class JanusEngine:
    """Static-cache decoding over the weights of a ``JanusForConditionalGeneration``."""

    def __init__(self, model: Any, cuda_graphs: bool = True, prepack: bool = True) -> None:
        janus = model.model
        language_model = janus.language_model
        config = language_model.config
        needed = ("layers", "norm", "rotary_emb")
        if not all(hasattr(language_model, name) for name in needed):
            raise HarnessError(f"the engine runs Llama-style language models; {type(language_model).__name__} "
                               "is not one (use sampler: reference)")
        rope_type = getattr(language_model.rotary_emb, "rope_type", "default")
        if "dynamic" in str(rope_type):
            raise HarnessError(f"the engine precomputes rotary tables; rope type {rope_type!r} changes them with "
                               "the sequence length (use sampler: reference)")
        self.model = model
        self.janus = janus
        self.language_model = language_model
        self.hidden = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(config, "head_dim", None) or self.hidden // self.heads)
        self.eps = float(config.rms_norm_eps)
        first_attention = language_model.layers[0].self_attn
        self.scale = float(getattr(first_attention, "scaling", self.head_dim ** -0.5))
        self.cuda_graphs = cuda_graphs
        #: on CPU, multiply large models with oneDNN on prepacked weight copies (more memory, and
        #: 2-4x faster than the BLAS behind nn.Linear on the CPUs measured in docs/PERFORMANCE.md)
        self.prepack = prepack
        self.prepacked = False
        self._cache: Weights | None = None
        self.profile = False
        self.timings = Timings()

    # -- weights -----------------------------------------------------------------------------------

    def _fingerprint(self) -> tuple:
        """Identity and in-place version of every parameter the engine copies."""
        parameters = list(self.language_model.parameters()) + list(self.janus.generation_head.parameters())
        try:
            return tuple((id(p), p._version) for p in parameters)
        except RuntimeError:  # inference tensors keep no version: identity only
            return tuple(id(p) for p in parameters)

    def _weights(self) -> Weights:
        """The decoder's and generation head's weights as the engine uses them, cached: small models get
        fused q/k/v and gate/up copies; on CPU, large ones get oneDNN-prepacked copies (``prepack``)."""
        fingerprint = self._fingerprint()
        if self._cache is not None and self._cache.fingerprint == fingerprint:
            return self._cache
        self._cache = None  # free the old copies first
        layers = self.language_model.layers
        linear_bytes = sum(m.weight.numel() * m.weight.element_size() for layer in layers
                           for m in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                                     layer.mlp.gate_proj, layer.mlp.up_proj))
        fuse = linear_bytes <= FUSE_LIMIT_BYTES
        device = layers[0].self_attn.q_proj.weight.device
        prepack = bool(self.prepack and not fuse and device.type == "cpu" and prepack_available())
        self._cache = build_weights(self.language_model, self.janus.generation_head, self.heads, self.kv_heads,
                                    fuse, prepack, fingerprint)
        self.prepacked = prepack
        return self._cache

    def _rotary_tables(self, length: int, device: torch.device, dtype: torch.dtype,
                       fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions 0 .. length-1 (each (length, head_dim)), from the model's own rotary
        module. Unfused layers rotate with ``roll(x, d/2) * signed_sin`` (the first half of ``sin``
        negated), which equals ``rotate_half(x) * sin`` and rounds the same way; fused layers get
        ``rotate_half`` from their weights and use ``sin`` as it is."""
        positions = torch.arange(length, device=device).unsqueeze(0)
        cos, sin = self.language_model.rotary_emb(torch.empty(0, device=device, dtype=dtype), positions)
        sin = sin[0].clone()
        if not fused:
            sin[:, :self.head_dim // 2].neg_()
        return cos[0], sin

    def new_cache(self, rows: int, capacity: int, device: torch.device,
                  dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Zeroed keys and values for every layer (zeros: masked columns must not hold NaN)."""
        shape = (rows, self.kv_heads, capacity, self.head_dim)
        return [(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))
                for _ in self.language_model.layers]

    # -- the decoder ---------------------------------------------------------------------------------

    def _norm(self, x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        """RMSNorm as the Llama decoder computes it (float32 statistics, weight applied in the model
        dtype); without ``weight`` when it is folded into the next product."""
        h = x if x.dtype == torch.float32 else x.float()
        h = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        return h if weight is None else weight * h

    def forward(self, x: torch.Tensor, layers: list[Layer], cache: list[tuple[torch.Tensor, torch.Tensor]],
                column: int | torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Run the decoder on ``x`` (R, T, hidden) whose first token sits at cache column ``column``.

        ``column`` as an int: keys and values are written at ``column .. column+T-1`` and attention reads
        columns ``0 .. column+T-1``. ``column`` as a one-element tensor (T = 1; the fixed-shape step that
        CUDA graphs capture): attention reads the whole cache. ``mask`` says which of the columns read
        each query sees: boolean (R, 1, T, S), or float (R * kv_heads, 1, S) holding 0 or -inf for one
        query per row (:meth:`_additive`: plain attention instead of the fused kernel, cheaper for one
        query on a CPU). ``cos``/``sin``: (R, T, head_dim) from :meth:`_rotary_tables`. Returns the
        final-normed hidden states (R, T, hidden).
        """
        rows, length, _ = x.shape
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        static = isinstance(column, torch.Tensor)
        end = None if static else column + length
        additive = mask.dtype != torch.bool
        for layer, (key_cache, value_cache) in zip(layers, cache):
            h = self._norm(x, layer.in_norm)
            if layer.qkv is not None:  # q, k, v, rotate_half(q), rotate_half(k)
                qkv = layer.qkv(h).view(rows, length, 2 * heads + 3 * kv_heads, dim).transpose(1, 2)
                both = heads + kv_heads
                qk = qkv[:, :both] * cos + qkv[:, both + kv_heads:] * sin
                q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, both:both + kv_heads]
            else:
                q = layer.q(h).view(rows, length, heads, dim).transpose(1, 2)
                k = layer.k(h).view(rows, length, kv_heads, dim).transpose(1, 2)
                v = layer.v(h).view(rows, length, kv_heads, dim).transpose(1, 2)
                half = dim // 2
                q = q * cos + torch.roll(q, half, dims=-1) * sin
                k = k * cos + torch.roll(k, half, dims=-1) * sin
            if static:
                key_cache.index_copy_(2, column, k)
                value_cache.index_copy_(2, column, v)
                keys, values = key_cache, value_cache
            else:
                key_cache.narrow(2, column, length).copy_(k)
                value_cache.narrow(2, column, length).copy_(v)
                keys, values = key_cache.narrow(2, 0, end), value_cache.narrow(2, 0, end)
            if additive:  # one query per row; grouped heads share their keys without copies
                span = keys.shape[2]
                grouped = q.reshape(rows * kv_heads, heads // kv_heads, dim)
                scores = torch.baddbmm(mask, grouped, keys.reshape(rows * kv_heads, span, dim).transpose(1, 2),
                                       alpha=self.scale)
                weights = torch.softmax(scores if scores.dtype == torch.float32 else scores.float(), dim=-1)
                attended = torch.bmm(weights.to(values.dtype), values.reshape(rows * kv_heads, span, dim))
                attended = attended.reshape(rows, length, heads * dim)
            else:
                if kv_heads != heads:  # grouped-query attention: every query head reads its group's keys
                    keys = keys.repeat_interleave(heads // kv_heads, dim=1)
                    values = values.repeat_interleave(heads // kv_heads, dim=1)
                attended = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scale)
                attended = attended.transpose(1, 2).reshape(rows, length, heads * dim)
            x = x + layer.o(attended)
            h = self._norm(x, layer.post_norm)
            if layer.gate_up is not None:
                gate, up = layer.gate_up(h).chunk(2, dim=-1)
            else:
                gate, up = layer.gate(h), layer.up(h)
            x = x + layer.down(layer.act(gate) * up)
        return self._norm(x, self.language_model.norm.weight)

    def _additive(self, column_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(R, C) boolean column mask -> (R * kv_heads, 1, C) 0 / -inf, for one query per row."""
        rows, columns = column_mask.shape
        bias = torch.zeros((rows, columns), dtype=dtype, device=column_mask.device)
        bias.masked_fill_(~column_mask, float("-inf"))
        return bias[:, None, None, :].expand(rows, self.kv_heads, 1, columns).reshape(rows * self.kv_heads, 1, columns)

    def _prefill(self, prompt: PromptRows, layers: list[Layer], capacity: int, dtype: torch.dtype,
                 cos_table: torch.Tensor, sin_table: torch.Tensor):
        """Run the distinct prompt rows once; return the batch's cache (prompt columns filled), the last
        hidden state of every batch row, and the boolean mask of every column of the cache."""
        distinct, length = prompt.embeds.shape[:2]
        device = prompt.embeds.device
        real = prompt.mask.to(device=device, dtype=torch.bool)
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        diagonal = torch.eye(length, dtype=torch.bool, device=device)
        # Real queries see the real keys up to themselves; a padding query sees itself only (its output
        # is never used, but it must not be NaN: its keys and values are cached, masked, and 0 * NaN).
        allowed = (causal & real[:, None, :]) | diagonal
        positions = prompt.positions.to(device)
        scratch = self.new_cache(distinct, length, device, dtype)
        hidden = self.forward(prompt.embeds, layers, scratch, 0, allowed[:, None], cos_table[positions],
                              sin_table[positions])[:, -1]
        rows = prompt.rows.to(device)
        cache = self.new_cache(len(rows), capacity, device, dtype)
        for (key_cache, value_cache), (keys, values) in zip(cache, scratch):
            key_cache[:, :, :length] = keys.index_select(0, rows)
            value_cache[:, :, :length] = values.index_select(0, rows)
        column_mask = torch.ones(len(rows), capacity, dtype=torch.bool, device=device)
        column_mask[:, :length] = real.index_select(0, rows)
        return cache, hidden.index_select(0, rows), column_mask, positions[:, -1].index_select(0, rows)

    def _sync(self, device: torch.device) -> None:
        if self.profile and device.type == "cuda":
            torch.cuda.synchronize(device)

    # -- image tokens ----------------------------------------------------------------------------------

    @torch.inference_mode()
    def sample_image_tokens(self, prompt: PromptRows, rows_per_request: int,
                            guide: Callable[[torch.Tensor], torch.Tensor], seeds: Sequence[int],
                            temperature: float, image_tokens: int, static: bool = False) -> torch.Tensor:
        """``(len(seeds), image_tokens)`` image token ids.

        Batch rows ``k*i .. k*i+k-1`` (k = ``rows_per_request``) belong to request i; ``guide`` maps the
        generation head's float32 logits of all rows (R, V) to one row of guided logits per request
        (P, V); every sampled token is fed back to all k rows of its request.
        """
        start = time.perf_counter()
        device, dtype = prompt.embeds.device, prompt.embeds.dtype
        requests, steps = len(seeds), int(image_tokens)
        rows = len(prompt.rows)
        if rows != requests * rows_per_request:
            raise ValueError(f"{rows} rows for {requests} requests of {rows_per_request} rows each")
        length = prompt.embeds.shape[1]
        capacity = length + steps - 1
        weights = self._weights()
        layers = weights.layers
        cos_table, sin_table = self._rotary_tables(int(prompt.positions.max()) + steps + 1, device, dtype,
                                                   weights.fused)
        cache, hidden, column_mask, last_position = self._prefill(prompt, layers, capacity, dtype, cos_table, sin_table)
        keys = janus_sampler.step_keys(seeds, steps, device)
        vocab = int(self.janus.generation_head.vision_head.out_features)
        tokens = torch.empty(requests, steps, dtype=torch.long, device=device)
        self._sync(device)
        prefill_done = time.perf_counter()

        proj_out, activation, vision_head = weights.head

        def head_and_draw(hidden_last: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
            logits = vision_head(activation(proj_out(hidden_last)))
            return janus_sampler.draw(guide(logits.float()), noise, temperature)

        table = None
        if vocab * self.hidden <= _FEED_TABLE_LIMIT:
            table = self.model.prepare_embeddings_for_image_generation(torch.arange(vocab, device=device))

        def feed(token: torch.Tensor) -> torch.Tensor:
            fed = token.unsqueeze(1).expand(requests, rows_per_request).reshape(rows)
            if table is not None:
                return table.index_select(0, fed).unsqueeze(1)
            return self.model.prepare_embeddings_for_image_generation(fed).unsqueeze(1)

        first_noise = None if temperature == 0 else janus_sampler.gumbel_noise(keys[:, 0], vocab)
        tokens[:, 0] = head_and_draw(hidden, first_noise)
        if steps > 1:
            if static or (device.type == "cuda" and self.cuda_graphs):
                self._static_steps(layers, cache, column_mask, last_position, keys, tokens, length, steps, vocab,
                                   cos_table, sin_table, head_and_draw, feed, temperature,
                                   graphs=device.type == "cuda" and self.cuda_graphs)
            else:
                block = max(1, min(steps, _NOISE_BLOCK // max(1, requests * vocab)))
                noise = None
                masks = self._additive(column_mask, dtype) if device.type == "cpu" else column_mask[:, None, None, :]
                # rotary rows of every step at once: (steps - 1, R, 1, head_dim)
                positions = last_position.unsqueeze(0) + torch.arange(1, steps, device=device).unsqueeze(1)
                cos_steps, sin_steps = cos_table[positions].unsqueeze(2), sin_table[positions].unsqueeze(2)
                for step in range(1, steps):
                    column = length + step - 1
                    x = feed(tokens[:, step - 1])
                    hidden = self.forward(x, layers, cache, column, masks[..., :column + 1], cos_steps[step - 1],
                                          sin_steps[step - 1])[:, -1]
                    if temperature != 0 and (step - 1) % block == 0:
                        noise = janus_sampler.gumbel_noise(keys[:, step:step + block], vocab)
                    tokens[:, step] = head_and_draw(hidden, None if noise is None else noise[:, (step - 1) % block])
        self._sync(device)
        if self.profile:
            self.timings = Timings(prefill_s=prefill_done - start, steps_s=time.perf_counter() - prefill_done,
                                   steps=steps, rows=rows, distinct_prompt_rows=int(prompt.embeds.shape[0]))
        return tokens

    def _static_steps(self, layers, cache, column_mask, last_position, keys, tokens, length, steps, vocab,
                      cos_table, sin_table, head_and_draw, feed, temperature, graphs: bool) -> None:
        """Steps 1 .. steps-1 with a fixed shape, driven by a step counter on the device; on CUDA the
        step is captured once as a graph (after two eager steps) and replayed."""
        device = tokens.device
        capacity = column_mask.shape[1]
        step_index = torch.ones(1, dtype=torch.long, device=device)
        columns = torch.arange(capacity, device=device)

        def one_step() -> None:
            column = step_index + (length - 1)
            position = last_position + step_index
            x = feed(tokens.index_select(1, step_index - 1)[:, 0])
            mask = (column_mask & (columns <= column))[:, None, None, :]
            hidden = self.forward(x, layers, cache, column, mask, cos_table.index_select(0, position).unsqueeze(1),
                                  sin_table.index_select(0, position).unsqueeze(1))[:, -1]
            noise = None
            if temperature != 0:
                noise = janus_sampler.gumbel_noise(keys.index_select(1, step_index)[:, 0], vocab)
            tokens.index_copy_(1, step_index, head_and_draw(hidden, noise).unsqueeze(1))
            step_index.add_(1)

        if not graphs:
            for _ in range(1, steps):
                one_step()
            return
        eager = min(steps - 1, 2)
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(eager):  # warm-up steps on a side stream, as graph capture requires
                one_step()
        torch.cuda.current_stream(device).wait_stream(stream)
        remaining = steps - 1 - eager
        if remaining <= 0:
            return
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                one_step()  # recorded, not run: the state is unchanged
        except RuntimeError as exc:  # pragma: no cover - needs a GPU
            log.warning("CUDA graph capture failed (%s); running the remaining steps eagerly", exc)
            for _ in range(remaining):
                one_step()
            return
        for _ in range(remaining):  # pragma: no cover - needs a GPU
            graph.replay()

    # -- understanding ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def greedy_text(self, embeds: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, eos_id: int) -> torch.Tensor:
        """Greedy text tokens (B, T <= max_new_tokens) after left-padded prompt embeddings (B, L, hidden).

        Like ``generate(do_sample=False)`` with pad = EOS: a row that has produced EOS gets EOS from then
        on; decoding stops when every row has, or after ``max_new_tokens``.
        """
        device, dtype = embeds.device, embeds.dtype
        batch, length = embeds.shape[:2]
        mask = mask.to(device)
        positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        prompt = PromptRows(embeds, mask, positions, torch.arange(batch, device=device))
        weights = self._weights()
        layers = weights.layers
        capacity = length + max_new_tokens - 1
        cos_table, sin_table = self._rotary_tables(int(positions.max()) + max_new_tokens + 1, device, dtype,
                                                   weights.fused)
        cache, hidden, column_mask, last_position = self._prefill(prompt, layers, capacity, dtype, cos_table, sin_table)
        lm_head = self.model.get_output_embeddings()
        out = torch.full((batch, max_new_tokens), eos_id, dtype=torch.long, device=device)
        masks = self._additive(column_mask, dtype) if device.type == "cpu" else column_mask[:, None, None, :]
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        produced = 0
        for step in range(max_new_tokens):
            token = lm_head(hidden).float().argmax(dim=-1)
            token = torch.where(finished, torch.full_like(token, eos_id), token)
            out[:, step] = token
            produced = step + 1
            finished |= token == eos_id
            if bool(finished.all()) or step + 1 == max_new_tokens:
                break
            column = length + step
            position = last_position + step + 1
            x = self.language_model.embed_tokens(token).unsqueeze(1)
            hidden = self.forward(x, layers, cache, column, masks[..., :column + 1],
                                  cos_table[position].unsqueeze(1), sin_table[position].unsqueeze(1))[:, -1]
        return out[:, :produced]
