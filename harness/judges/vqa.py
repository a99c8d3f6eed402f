"""VQA judges (plugin kind ``"vqa"``): free-form answers to questions about images.

DPG-Bench's official judge is mPLUG-large (modelscope ``damo/mplug_visual-question-answering_coco_large_en``),
which transformers cannot load; the DPG package has our own port of it (``mplug``,
``benchmarks/dpg/judges``). These plugins put other models in that role; their answers differ,
so **DPG numbers from them are not comparable with published tables** (the protocol card names the
judge). Both return the answers raw (the benchmark applies its rule: exactly ``"yes"``) unless
``normalize`` is set: then each answer is stripped, lower-cased and loses trailing ``.``/``!``,
which a chat model answering "Yes." needs to score at all.

- ``hf-vqa``: a Hugging Face model by hub id or local folder, through transformers. ``style``
  ``"auto"`` picks ``classify`` for ViLT (the answer is the top label of the VQA head),
  ``generate`` for the other VQA models transformers maps (BLIP, BLIP-2: ``prompt_template`` is
  filled with the question, e.g. ``"Question: {question} Answer:"`` for BLIP-2), and ``chat`` for
  any image-text-to-text model (the chat template with the image, then the question and
  ``instruction``), greedy decoding in every case. Offline: a local folder is read with
  ``local_files_only``; a hub id must be in the cache when ``HF_HUB_OFFLINE`` is set.
- ``openai-vqa``: any OpenAI-compatible chat server (vLLM, OpenAI): one call per (image, question),
  the image then ``question + "\\n" + instruction``, temperature 0. A failed call (after the
  client's retries) raises, so the tile becomes a judge failure; answers already received are kept
  in memory, so the runner's one-by-one retry of a failed batch does not pay for them again.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image

from harness.clients.messages import chat_messages, require_dated_snapshot
from harness.clients.openai_compat import TRANSPORT_PARAMS, connect
from harness.errors import HarnessError
from harness.registry import register

#: part of each judge's identity in judgement cache keys (read by the runner)
VERSION = "1"
DEFAULT_INSTRUCTION = "Answer the question using a single word or phrase, in lower case."
STYLES = ("auto", "classify", "generate", "chat")
DTYPES = ("float32", "float16", "bfloat16")


def normalize_answer(text: str) -> str:
    return text.strip().lower().rstrip(".!").strip()


def _check_pairs(images: Sequence[Image.Image], questions: Sequence[str]) -> None:
    if len(images) != len(questions):
        raise ValueError(f"{len(images)} images for {len(questions)} questions")


@register("vqa", "hf-vqa")
class HFVQAJudge:
    """A transformers VQA or vision-language model answering one question per image.

    Args:
        model: hub id or local folder (``save_pretrained`` layout with the processor files).
        revision: hub revision to pin (a commit hash; recorded).
        style: ``"auto"``, ``"classify"``, ``"generate"`` or ``"chat"`` (module notes).
        instruction: appended to the question in ``chat`` style.
        prompt_template: the text for ``generate`` style, ``{question}`` replaced.
        max_new_tokens: generation budget (``generate``, ``chat``).
        batch_size: (image, question) pairs per forward pass.
        device: ``"auto"`` (GPU when there is one) or a torch device; dtype: float32/float16/bfloat16.
        normalize: strip, lower-case and drop trailing ``.``/``!`` from every answer.
    """

    def __init__(self, model: str, revision: str | None = None, style: str = "auto",
                 instruction: str = DEFAULT_INSTRUCTION, prompt_template: str = "{question}",
                 max_new_tokens: int = 10, batch_size: int = 16, device: str = "auto",
                 dtype: str = "float32", normalize: bool = False):
        if style not in STYLES:
            raise HarnessError(f"hf-vqa: style must be one of {', '.join(STYLES)}, got {style!r}")
        if dtype not in DTYPES:
            raise HarnessError(f"hf-vqa: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if "{question}" not in prompt_template:
            raise HarnessError("hf-vqa: prompt_template must contain {question}")
        import torch

        self.source, self.revision = model, revision
        self.instruction, self.prompt_template = instruction, prompt_template
        self.max_new_tokens, self.batch_size = int(max_new_tokens), max(1, int(batch_size))
        self.normalize = bool(normalize)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        self.dtype = getattr(torch, dtype)
        self.style, self.model, self.processor = self._load(style)
        commit = revision or getattr(self.model.config, "_commit_hash", None) or "unpinned"
        shown = Path(model).name if os.path.isdir(model) else model
        text = self.instruction if self.style == "chat" else self.prompt_template
        self.judge_id = (f"hf-vqa:{shown}@{commit}({self.style},max_new_tokens={self.max_new_tokens},"
                         f"dtype={dtype},prompt={hashlib.sha256(text.encode()).hexdigest()[:8]},"
                         f"normalize={self.normalize})")

    def _load(self, style: str) -> tuple[str, Any, Any]:
        from transformers import (AutoConfig, AutoModelForImageTextToText,
                                  AutoModelForVisualQuestionAnswering, AutoProcessor)
        from transformers.models.auto.modeling_auto import MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES

        options = {"revision": self.revision, "local_files_only": os.path.isdir(self.source)}
        try:
            config = AutoConfig.from_pretrained(self.source, **options)
            if style == "auto":
                if config.model_type == "vilt":
                    style = "classify"
                elif config.model_type in MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES:
                    style = "generate"
                else:
                    style = "chat"
            loader = AutoModelForImageTextToText if style == "chat" else AutoModelForVisualQuestionAnswering
            model = loader.from_pretrained(self.source, dtype=self.dtype, **options)
            processor = AutoProcessor.from_pretrained(self.source, **options)
        except (OSError, ValueError) as exc:
            raise HarnessError(
                f"hf-vqa: could not load {self.source!r} (not a local folder with the model and processor "
                f"files, or not in the Hugging Face cache while HF_HUB_OFFLINE="
                f"{os.environ.get('HF_HUB_OFFLINE')}); download it once with network access or pass a "
                f"local folder. Cause: {exc}") from exc
        tokenizer = getattr(processor, "tokenizer", None)
        if style == "chat" and tokenizer is not None:
            tokenizer.padding_side = "left"  # generated tokens then start at the same column
        return style, model.to(self.device).eval(), processor

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[str]:
        _check_pairs(images, questions)
        import torch

        answers: list[str] = []
        run = {"classify": self._classify, "generate": self._generate, "chat": self._chat}[self.style]
        with torch.inference_mode():
            for start in range(0, len(questions), self.batch_size):
                chunk = [image.convert("RGB") for image in images[start:start + self.batch_size]]
                answers += run(chunk, list(questions[start:start + self.batch_size]))
        return [normalize_answer(a) for a in answers] if self.normalize else answers

    def _inputs(self, **kwargs: Any) -> Mapping[str, Any]:
        inputs = self.processor(return_tensors="pt", padding=True, **kwargs)
        moved = {}
        for name, value in inputs.items():
            if hasattr(value, "is_floating_point"):  # tensors; other entries pass through
                value = value.to(self.device, dtype=self.dtype) if value.is_floating_point() else value.to(self.device)
            moved[name] = value
        return moved

    def _classify(self, images: list[Image.Image], questions: list[str]) -> list[str]:
        # ViLT has few text positions (40 in the released models): cut over-long questions
        logits = self.model(**self._inputs(images=images, text=questions, truncation=True)).logits
        return [self.model.config.id2label[int(index)] for index in logits.argmax(-1)]

    def _generate(self, images: list[Image.Image], questions: list[str]) -> list[str]:
        prompts = [self.prompt_template.format(question=q) for q in questions]
        inputs = self._inputs(images=images, text=prompts)
        output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        # some models (BLIP-2 with OPT) return the prompt tokens first: cut them as tokens, since
        # decoding can respell the prompt (spaces around punctuation) and defeat a text comparison
        prompt_ids = inputs["input_ids"]
        length = prompt_ids.shape[1]
        if output.shape[1] > length and bool((output[:, :length] == prompt_ids.to(output.device)).all()):
            output = output[:, length:]
        return [text.strip() for text in self.processor.batch_decode(output, skip_special_tokens=True)]

    def _chat(self, images: list[Image.Image], questions: list[str]) -> list[str]:
        texts = [self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"},
                                          {"type": "text", "text": f"{q}\n{self.instruction}"}]}],
            add_generation_prompt=True, tokenize=False) for q in questions]
        inputs = self._inputs(images=[[image] for image in images], text=texts)
        output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]


@register("vqa", "openai-vqa")
class OpenAIVQAJudge:
    """A vision-language model behind an OpenAI-compatible API, one call per (image, question).

    Args:
        base_url, model, api_key_env, allow_alias, image_detail, max_concurrency, max_retries,
            timeout_s, backoff_s, backoff_max_s, retry_after_max_s, allow_insecure_http, prices:
            as the ``openai-compatible`` chat judge (an undated model alias is refused unless
            ``allow_alias``).
        instruction: sent after the question (recorded in ``judge_id``).
        max_tokens: answer budget; temperature is 0.
        normalize: strip, lower-case and drop trailing ``.``/``!`` from every answer.
    """

    build_eagerly = True
    transport_params = TRANSPORT_PARAMS

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 instruction: str = DEFAULT_INSTRUCTION, max_tokens: int = 16, normalize: bool = False,
                 allow_alias: bool = False, image_detail: str | None = None, **transport: Any):
        require_dated_snapshot(model, allow_alias, "VQA judge model")
        self.client = connect(base_url, model, "openai-vqa", api_key_env=api_key_env, **transport)
        self.model, self.instruction, self.image_detail = model, instruction, image_detail
        self.max_tokens, self.normalize = int(max_tokens), bool(normalize)
        self._answered: dict[tuple[str, str], str] = {}
        detail = f",image_detail={image_detail}" if image_detail else ""
        self.judge_id = (f"openai-vqa:{model}(temperature=0,max_tokens={self.max_tokens}{detail},"
                         f"instruction={instruction!r},normalize={self.normalize})")

    @property
    def usage(self) -> dict:
        return self.client.usage

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[str]:
        _check_pairs(images, questions)
        digests = {}
        keys = []
        for image, question in zip(images, questions):
            if id(image) not in digests:  # tiles repeat once per question: hash each object once
                rgb = image.convert("RGB")
                digests[id(image)] = hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()
            keys.append((digests[id(image)], question))
        pending = [i for i, key in enumerate(keys) if key not in self._answered]
        conversations = [chat_messages(f"{questions[i]}\n{self.instruction}", [images[i]],
                                       detail=self.image_detail) for i in pending]
        results = self.client.chat_many(conversations, temperature=0, max_tokens=self.max_tokens)
        errors = []
        for i, result in zip(pending, results):
            if result.error is not None or result.text is None:
                errors.append(result.error or "empty reply")
            else:
                self._answered[keys[i]] = result.text
        if errors:
            raise HarnessError(f"openai-vqa: {len(errors)} of {len(pending)} calls failed "
                               f"(first: {errors[0]})")
        answers = [self._answered[key] for key in keys]
        return [normalize_answer(a) for a in answers] if self.normalize else answers
