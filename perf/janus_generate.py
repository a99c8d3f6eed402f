"""Benchmark: Janus text-to-image generation, three ways, on the same prompts, in one run.

    python perf/janus_generate.py                                # tiny and 1B-shaped, 4 prompts x 4 images, 64 tokens
    python perf/janus_generate.py --sizes 1b,7b --tokens 576 --device cuda   # the real shapes on a GPU
    python perf/janus_generate.py --sizes tiny --threads 1 --json            # JSON records, one per line

Models are randomly initialised from config (no weights are read): ``tiny`` is the demo's model (hidden 64,
2 layers, a 512-code VQ with an 8x downsample: 64 px images as 8x8 tokens, or larger grids for more tokens);
``1b`` and ``7b`` have the language-model shapes of Janus-Pro-1B and -7B (docs/JANUS.md section 1: hidden
2048 / 24 layers / 16 heads and 4096 / 30 / 32, vocabulary 102400; MLP widths 5632 and 11008, those of the
DeepSeek-LLM models they are built on) and the real VQ decoder (16x downsample, 16384 codes), with a small
SigLIP encoder, which text-to-image never runs. The tokenizer is the tiny word-level one.

Methods, each over ``--prompts`` prompts x ``--images`` images of ``--tokens`` image tokens:

* ``upstream``: the logic of deepseek's ``generation_inference.py`` on the transformers model: one prompt at
  a time, ``2 x images`` rows (conditional and unconditional interleaved, no attention mask), a
  ``DynamicCache``, ``torch.multinomial`` on the device, the images of one prompt decoded together;
* ``adapter``: ``JanusAdapter(sampler="reference")``, the adapter's loop before the engine (all requests in
  one batch, one CPU generator per request, one image per VQ decoder call);
* ``engine``: ``JanusAdapter(sampler="engine")``, the default (``harness/models/janus_engine.py``);
* ``engine-noprepack`` (not run unless asked for): the engine without its oneDNN-prepacked weights on CPU
  (``nn.Linear``'s BLAS instead), to separate the GEMM library from the rest of the engine.

Printed per size and method: ms per decode step (steps after the first; a step is one token for every row
of the batch), images per second end to end (prefill, steps and VQ decoding), peak memory above the model
(CPU: bytes handed out by malloc, sampled every 5 ms, so the peaks of short-lived temporaries may be
missed; CUDA: the allocator's peak), and the share of the bandwidth limit: bytes
read per step (decoder weights, generation head and aligner, plus the KV cache of every row at the mean
context length) / step time, against the device's copy bandwidth (bytes read + written per second by a
large tensor copy, measured at the start). Each method runs ``--repeats`` times, interleaved; the fastest
run of each is kept (the machine may be shared). ``CPU s`` is the process's CPU time in that run (all
threads): on a shared machine it moves less than the wall clock. Ratios of images per second follow.

All methods run in one process under the same allocator setting: on glibc the engine keeps freed heap
memory for reuse (``janus_vq.keep_freed_heap``, process-wide; without it, every large temporary costs a
page fault per 4 KiB page). The benchmark makes that setting before any method runs, so the baselines
get it too; ``--release-heap`` leaves glibc's defaults for every method (engine included).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from harness.models import janus_vq  # noqa: E402
from harness.models.base import Request  # noqa: E402
from harness.models.janus import JanusAdapter  # noqa: E402
from harness.models.janus_engine import cache_argument  # noqa: E402

#: language-model shapes (hidden, layers, heads, MLP width); vocabulary 102400 for both real shapes
SHAPES = {"1b": (2048, 24, 16, 5632), "7b": (4096, 30, 32, 11008)}
PROMPTS = ["a photo of a red circle", "a photo of two blue squares above a green star", "a photo of a yellow hexagon",
           "a photo of three purple crosses left of a white diamond", "a photo of an orange triangle",
           "a photo of four pink stars below a black square", "a photo of a brown diamond", "a photo of a white cross"]
METHODS = ("upstream", "adapter", "engine", "engine-noprepack")
DEFAULT_METHODS = ("upstream", "adapter", "engine")


# -- models ------------------------------------------------------------------------------------------------


def _fill_random(model: torch.nn.Module, seed: int) -> None:
    """Random weights fast: slices of one random pool (std 0.02; norms 1, biases 0; the generation head
    variance-preserving, as in build_tiny_janus, so that sampling is not uniform)."""
    generator = torch.Generator().manual_seed(seed)
    pool = torch.randn(1 << 24, generator=generator)
    offsets = torch.randint(0, 1 << 23, (len(list(model.parameters())),), generator=generator).tolist()
    with torch.no_grad():
        for (name, parameter), offset in zip(model.named_parameters(), offsets):
            if name.endswith("bias"):
                parameter.zero_()
            elif parameter.dim() == 1:
                parameter.fill_(1.0)
            else:
                std = parameter.shape[1] ** -0.5 if "generation_head" in name else 0.02
                flat = parameter.view(-1)
                for start in range(0, flat.numel(), 1 << 23):
                    chunk = flat[start:start + (1 << 23)]
                    chunk.copy_(pool[offset:offset + chunk.numel()] * std)


def build(size: str, tokens: int, dtype: torch.dtype, layers: int | None, folder: Path):
    """(model, processor) for one size, on the CPU in ``dtype``."""
    from transformers import (JanusConfig, JanusForConditionalGeneration, JanusProcessor, JanusVisionConfig,
                              JanusVQVAEConfig, LlamaConfig)
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    from harness.models.tiny_janus import BOI, BOS, CHAT_TEMPLATE, EOS, IMAGE, PAD, build_tiny_janus, build_tokenizer

    grid = int(round(tokens ** 0.5))
    if grid * grid != tokens:
        raise SystemExit(f"--tokens must be a square (the image is a square grid of tokens), got {tokens}")
    words = sorted({w for p in PROMPTS for w in p.split()})
    if size == "tiny":
        path = build_tiny_janus(folder / "tiny", words=words, image_size=8 * grid, patch_size=8,
                                hidden=64, layers=layers or 2)
        model = JanusForConditionalGeneration.from_pretrained(path, dtype=dtype).eval()
        return model, JanusProcessor.from_pretrained(path)
    hidden, depth, heads, width = SHAPES[size]
    tokenizer = build_tokenizer(words)
    vocab = tokenizer.get_vocab()
    text = LlamaConfig(vocab_size=102400, hidden_size=hidden, intermediate_size=width,
                       num_hidden_layers=layers or depth, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=4096, rms_norm_eps=1e-6, bos_token_id=vocab[BOS],
                       eos_token_id=vocab[EOS], pad_token_id=vocab[PAD], tie_word_embeddings=True)
    vision = JanusVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                               image_size=16 * grid, patch_size=16, num_image_tokens=tokens, projection_dim=hidden,
                               depth=2)
    vq = JanusVQVAEConfig(projection_dim=hidden, image_token_embed_dim=hidden)  # the real VQ otherwise
    # the text head shares the input embeddings (820 MB less at 1B): text-to-image never reads it
    config = JanusConfig(text_config=text, vision_config=vision, vq_config=vq, image_token_id=vocab[IMAGE],
                         tie_word_embeddings=True)
    with torch.device("meta"):
        model = JanusForConditionalGeneration(config)
    model = model.to_empty(device="cpu")
    language_model = model.model.language_model
    language_model.rotary_emb = type(language_model.rotary_emb)(config.text_config)  # non-persistent buffers
    embeddings = model.model.vision_model.embeddings
    embeddings.position_ids.copy_(torch.arange(embeddings.position_ids.shape[-1]).expand_as(embeddings.position_ids))
    _fill_random(model, seed=0)
    model = model.to(dtype).eval()
    model.generation_config.pad_token_id = vocab[PAD]
    model.generation_config.generation_kwargs = {"boi_token_id": vocab[BOI]}
    processor = JanusProcessor(
        image_processor=JanusImageProcessorPil(size={"height": 16 * grid, "width": 16 * grid}, image_mean=[0.5] * 3,
                                               image_std=[0.5] * 3),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE, use_default_system_prompt=True, num_image_tokens=tokens)
    return model, processor


# -- the three methods -------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def upstream(adapter: JanusAdapter, prompts: list[str], images: int, tokens: int, decode_images: bool = True) -> dict:
    """deepseek generation_inference.py's loop, one prompt at a time (written here for the transformers model)."""
    from transformers import DynamicCache

    model, device = adapter.model, adapter.device
    janus = model.model
    prefill = steps = decode = 0.0
    for prompt in prompts:
        start = time.perf_counter()
        text = adapter.render_prompt(prompt) + adapter.processor.tokenizer.boi_token
        ids = torch.tensor(adapter.processor.tokenizer(text)["input_ids"], device=device)
        rows = ids.repeat(2 * images, 1)
        rows[1::2, 1:-1] = adapter.pad_id  # unconditional rows: BOS and BOI only
        embeds = model.get_input_embeddings()(rows)
        cache = DynamicCache(config=janus.language_model.config)
        cached = cache_argument(janus.language_model, cache)
        out = torch.zeros(images, tokens, dtype=torch.long, device=device)
        for step in range(tokens):
            hidden = janus.language_model(inputs_embeds=embeds, use_cache=True, **cached).last_hidden_state
            logits = janus.generation_head(hidden[:, -1, :])
            guided = logits[1::2] + adapter.cfg_weight * (logits[0::2] - logits[1::2])
            token = torch.multinomial(torch.softmax(guided / adapter.temperature, dim=-1), num_samples=1)
            out[:, step] = token[:, 0]
            embeds = model.prepare_embeddings_for_image_generation(token.repeat(1, 2).view(-1)).unsqueeze(1)
            if step == 0:
                _sync(device)
                middle = time.perf_counter()
                prefill += middle - start
        _sync(device)
        after_steps = time.perf_counter()
        steps += after_steps - middle
        if decode_images:
            pixels = model.decode_image_tokens(out)
            pixels = ((pixels.float() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8).cpu()
        decode += time.perf_counter() - after_steps
    return {"prefill_s": prefill, "steps_s": steps, "decode_s": decode, "steps": len(prompts) * (tokens - 1),
            "rows": 2 * images, "distinct_prompt_rows": 2 * images}


def through_adapter(adapter: JanusAdapter, requests: list[Request]) -> dict:
    """The adapter's generate_images, split into its token loop and its decoding to time them."""
    adapter.profile = True
    with torch.inference_mode():
        tokens = adapter.generate_image_tokens([r.prompt for r in requests], [r.seed for r in requests])
        _sync(adapter.device)
        start = time.perf_counter()
        images = adapter.decode(tokens)
        decode = time.perf_counter() - start
    assert len(images) == len(requests)
    timings = adapter.timings
    return {"prefill_s": timings.prefill_s, "steps_s": timings.steps_s, "decode_s": decode,
            "steps": timings.steps - 1, "rows": timings.rows, "distinct_prompt_rows": timings.distinct_prompt_rows}


def warm_up(method: str, adapter: JanusAdapter, prompts: list[str], requests: list[Request]) -> None:
    """Two-token runs (kernels, allocator, the engine's decoder copy) and one decoder call."""
    full = adapter.image_tokens
    adapter.image_tokens = 2
    try:
        with torch.inference_mode():
            if method == "upstream":
                upstream(adapter, prompts[:1], 2, 2, decode_images=False)
            else:
                adapter.generate_image_tokens([r.prompt for r in requests[:2]], [r.seed for r in requests[:2]])
    finally:
        adapter.image_tokens = full
    with torch.inference_mode():
        if method == "upstream":
            adapter.model.decode_image_tokens(torch.zeros(2, full, dtype=torch.long, device=adapter.device))
        else:
            adapter.decode(torch.zeros(1, full, dtype=torch.long, device=adapter.device))


# -- measurements ------------------------------------------------------------------------------------------


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _heap_bytes() -> int:
    """Bytes allocated by malloc now (heap in use + mmapped blocks): glibc's mallinfo2."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


class PeakMemory:
    """Peak memory allocated above the level at entry: CUDA allocator statistics, or on CPU the bytes
    malloc has handed out (glibc mallinfo2), sampled every 5 ms."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _heap_bytes()
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, _heap_bytes() - self.base)
            time.sleep(0.005)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.running = False
            self.thread.join()


def copy_bandwidth(device: torch.device) -> float:
    """Bytes read + written per second by a 512 MiB tensor copy (best of five)."""
    source = torch.empty(1 << 27, dtype=torch.float32, device=device).fill_(1.0)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(6):
        _sync(device)
        start = time.perf_counter()
        target.copy_(source)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() * source.element_size() / best


def bytes_per_step(model, rows: int, context: float) -> tuple[int, int]:
    """(weight bytes, KV-cache bytes) read by one decode step of ``rows`` rows at a mean context length."""
    janus = model.model
    parts = [janus.language_model.layers, janus.language_model.norm, janus.generation_head, janus.generation_aligner]
    weights = sum(p.numel() * p.element_size() for part in parts for p in part.parameters())
    weights += janus.generation_embeddings.embedding_dim * janus.generation_embeddings.weight.element_size() * rows
    text = model.config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_heads = text.num_key_value_heads or text.num_attention_heads
    element = next(model.parameters()).element_size()
    kv = int(2 * text.num_hidden_layers * kv_heads * head_dim * element * rows * context)
    return weights, kv


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


def run_size(size: str, args, device: torch.device, dtype: torch.dtype, bandwidth: float, folder: Path) -> list[dict]:
    build_start = time.perf_counter()
    model, processor = build(size, args.tokens, dtype, args.layers, folder)
    build_s = time.perf_counter() - build_start
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.prompts)]
    requests = [Request(f"p{i}-{j}", prompt, 1000 + args.images * i + j)
                for i, prompt in enumerate(prompts) for j in range(args.images)]
    adapters = {}
    for method in args.methods:
        sampler = "engine" if method.startswith("engine") else "reference"
        adapters[method] = JanusAdapter.from_loaded(model, processor, device=str(device), dtype=dtype,
                                                    cfg_weight=args.cfg, temperature=args.temperature,
                                                    batch_size=len(requests), sampler=sampler)
        if method == "engine-noprepack":
            adapters[method].engine.prepack = False
        warm_up(method, adapters[method], prompts, requests)
    model = adapters[args.methods[0]].model
    best: dict[str, dict] = {}
    repeats = args.repeats if size == "tiny" else args.large_repeats
    for _ in range(repeats):
        for method in args.methods:
            torch.manual_seed(0)
            cpu_start = time.process_time()
            with PeakMemory(device) as memory, torch.inference_mode():
                if method == "upstream":
                    result = upstream(adapters[method], prompts, args.images, args.tokens)
                else:
                    result = through_adapter(adapters[method], requests)
            result["cpu_s"] = time.process_time() - cpu_start
            result["peak_memory_bytes"] = memory.peak
            result["total_s"] = result["prefill_s"] + result["steps_s"] + result["decode_s"]
            if method not in best or result["total_s"] < best[method]["total_s"]:
                best[method] = result
    prompt_length = len(processor.tokenizer(adapters[args.methods[0]].render_prompt(prompts[0]))["input_ids"]) + 1
    records = []
    for method, result in best.items():
        weights, kv = bytes_per_step(model, result["rows"], prompt_length + args.tokens / 2)
        step_s = result["steps_s"] / max(1, result["steps"])
        images = len(requests)
        records.append({
            "size": size, "method": method, "device": device.type, "machine": machine(device),
            "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
            "freed_heap_kept": janus_vq.keep_freed_heap(),
            "layers": model.config.text_config.num_hidden_layers, "prompts": args.prompts,
            "images_per_prompt": args.images, "image_tokens": args.tokens, "cfg_weight": args.cfg,
            "rows_per_step": result["rows"], "distinct_prompt_rows": result["distinct_prompt_rows"],
            "steps": result["steps"], "prefill_s": round(result["prefill_s"], 4),
            "steps_s": round(result["steps_s"], 4),
            "decode_s": round(result["decode_s"], 4), "total_s": round(result["total_s"], 4),
            "cpu_s": round(result["cpu_s"], 4),
            "ms_per_step": round(1000 * step_s, 3), "images_per_s": round(images / result["total_s"], 3),
            "peak_memory_bytes": int(result["peak_memory_bytes"]), "weight_bytes": weights, "kv_bytes_per_step": kv,
            "achieved_bytes_per_s": round((weights + kv) / step_s), "copy_bytes_per_s": round(bandwidth),
            "bandwidth_share": round((weights + kv) / step_s / bandwidth, 4), "repeats": repeats,
            "build_s": round(build_s, 1),
        })
    del adapters, model
    return records


def print_table(records: list[dict], out=sys.stdout) -> None:
    first = records[0]
    print(f"{first['machine']}; torch {torch.__version__}, {first['threads']} threads, {first['dtype']}; "
          f"{first['prompts']} prompts x {first['images_per_prompt']} images, {first['image_tokens']} image tokens, "
          f"cfg {first['cfg_weight']}; copy bandwidth {first['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write); "
          f"freed heap {'kept' if first['freed_heap_kept'] else 'released'}",
          file=out)
    header = (f"{'size':<5} {'method':<16} {'rows':>4} {'ms/step':>9} {'images/s':>9} {'total s':>8} {'prefill':>8} "
              f"{'steps':>8} {'VQ':>7} {'CPU s':>7} {'peak MB':>8} {'GB/s':>6} {'limit':>6}")
    print(header, file=out)
    for r in records:
        print(f"{r['size']:<5} {r['method']:<16} {r['rows_per_step']:>4} {r['ms_per_step']:>9.2f} "
              f"{r['images_per_s']:>9.2f} {r['total_s']:>8.2f} {r['prefill_s']:>8.2f} {r['steps_s']:>8.2f} "
              f"{r['decode_s']:>7.2f} {r['cpu_s']:>7.2f} {r['peak_memory_bytes'] / 2**20:>8.0f} "
              f"{r['achieved_bytes_per_s'] / 1e9:>6.1f} "
              f"{100 * r['bandwidth_share']:>5.1f}%", file=out)
    for size in dict.fromkeys(r["size"] for r in records):
        rate = {r["method"]: r["images_per_s"] for r in records if r["size"] == size}
        pairs = (("engine", "upstream"), ("engine", "adapter"), ("adapter", "upstream"),
                 ("engine-noprepack", "upstream"), ("engine-noprepack", "adapter"))
        ratios = [f"{a} / {b}: {rate[a] / rate[b]:.2f}x" for a, b in pairs if a in rate and b in rate]
        print(f"{size}: images per second, " + ", ".join(ratios), file=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,1b", help="comma-separated: tiny, 1b, 7b (default tiny,1b)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help="comma-separated, from " + ", ".join(METHODS) + " (default: the first three)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--images", type=int, default=4, help="images per prompt")
    parser.add_argument("--tokens", type=int, default=64, help="image tokens per image (a square; real models 576)")
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto: float32 on CPU, bfloat16 on CUDA")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--release-heap", action="store_true",
                        help="leave glibc's malloc defaults (freed memory returned to the kernel) for every method")
    parser.add_argument("--layers", type=int, help="cut the language model to this many layers (say so when reporting)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method for the tiny model")
    parser.add_argument("--large-repeats", type=int, default=1, help="timed runs per method for 1b and 7b")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON record per size and method (the table goes to stderr)")
    args = parser.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    if unknown := set(args.methods) - set(METHODS):
        parser.error(f"unknown methods: {', '.join(sorted(unknown))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.release_heap:
        janus_vq.KEEP_FREED_HEAP = False
    janus_vq.keep_freed_heap()  # before any method runs, so that all of them run under the same setting
    from harness.models.janus_loading import _pick_device_dtype

    device, dtype = _pick_device_dtype(args.device, args.dtype)
    bandwidth = copy_bandwidth(device)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            done = run_size(size.strip(), args, device, dtype, bandwidth, Path(tmp))
            records.extend(done)
            if args.json:  # each size as soon as it is measured
                for record in done:
                    print(json.dumps(record), flush=True)
            print(f"[{size} done: " + ", ".join(f"{r['method']} {r['images_per_s']} images/s" for r in done) + "]",
                  file=sys.stderr, flush=True)
    print_table(records, sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
