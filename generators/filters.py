"""Quality filters for recipe rows: a CLIP image-text score (``clip-filter``) and a four-dimension
LLM rating (``llm-rating``). Rows that fail are ``Drop``s, recorded with the reason in dropped.jsonl.

``clip-filter``: score = 100 x cosine(CLIP image embedding, CLIP text embedding), i.e. CLIPScore
(Hessel et al. 2021) without its 2.5 rescale and without clipping at 0, so the numbers compare directly
with the "100 x cosine" logits CLIP is usually quoted in. Rows scoring below ``threshold`` are dropped;
kept rows get ``clip_score``. The model is loaded on the first ``generate`` and kept on the step.
Texts longer than CLIP's context (77 tokens) are truncated by the tokenizer: for long captions (e.g.
ShareGPT4V's) the score sees only their opening. Assumed (not in the sources we could read): the
default model (``ViT-B-32`` with OpenAI weights, as CLIPScore) and the default threshold (20.0; none
of the recipes we read names a CLIP threshold, set your own per model).

``llm-rating``: the Oasis quality control (research notes, section 4). A judge rates one text field
on four dimensions, one call each, each an integer 1-5 written as ``[[n]]``: solvability,
hallucination and clarity see the image (Oasis: a VLM), nonsense is text-only (Oasis: a text LLM; role
``text_client``). Reading a reply follows Oasis: the last ``[[n]]``, else the last bare integer; a
value outside 1-5 or no number at all is -1, which fails the keep rule (the row is dropped, not retried).
A call that fails (HTTP error after retries) makes the row a ``Failure``. Keep rule, Oasis's defaults:
solvability >= 3, hallucination == 5, clarity >= 3, nonsense == 5, solvability + clarity >= 7
(each a parameter; "== 5" is ">= 5" on a 1-5 scale). Kept rows get ``ratings`` ({dimension: score}).
Our prompts paraphrase the dimension meanings in the notes; Oasis's prompt texts are not reused.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from generators.base import MODEL_STEP_TRANSPORT, ChatRequest
from harness.errors import InputError
from harness.recipe import Drop, Failure, Step, StepContext
from harness.registry import register


def _first_image(value: Any) -> str:
    return value[0] if isinstance(value, list) else value


# ----------------------------------------------------------------------------------------------
# CLIP


@register("generator", "clip-filter")
class ClipFilter(Step):
    """Drop rows whose ``image_field`` / ``text_field`` CLIP score is below ``threshold``.

    Params: ``model`` and ``pretrained`` (an open_clip name and tag or local checkpoint file),
    ``threshold``, ``image_field`` (a path, or a list whose first image is scored), ``text_field``,
    ``device`` ("auto", "cpu", "cuda", ...), ``batch_size``; ``model_config`` builds the architecture
    from an open_clip config dict (tests: a tiny model with ``pretrained=None``, i.e. random weights).
    """

    outputs = ("clip_score",)
    transport_params = ("device", "batch_size")

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = "openai", threshold: float = 20.0,
                 image_field: str = "image", text_field: str = "caption", device: str = "auto",
                 model_config: dict | None = None, batch_size: int = 32):
        from harness.judges.clip_color import OpenClipColorClassifier

        self.threshold = float(threshold)
        self.image_field, self.text_field = image_field, text_field
        self.inputs = (image_field, text_field)
        self.batch_size = int(batch_size)
        # its loader handles tags, local checkpoints, QuickGELU and offline errors; we only use the model
        self._clip = OpenClipColorClassifier(model=model, pretrained=pretrained, device=device,
                                             model_config=model_config, amp=False)

    @property
    def clip(self) -> Any:
        """The loader, with ``model``, ``_preprocess`` and ``_tokenizer`` once ``generate`` has run."""
        return self._clip

    def scores(self, images: Sequence[Any], texts: Sequence[str]) -> list[float]:
        """100 x cosine of each (PIL image, text) pair."""
        import torch
        import torch.nn.functional as F

        model = self._clip.model  # loads on first use
        device = self._clip.device
        with torch.inference_mode():
            pixels = torch.stack([self._clip._preprocess(image.convert("RGB")) for image in images]).to(device)
            tokens = self._clip._tokenizer(list(texts)).to(device)
            image_features = F.normalize(model.encode_image(pixels).float(), dim=-1)
            text_features = F.normalize(model.encode_text(tokens).float(), dim=-1)
            return (100.0 * (image_features * text_features).sum(dim=-1)).tolist()

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        images = [ctx.load_image(_first_image(row[self.image_field])) for row in rows]
        scores = self.scores(images, [str(row[self.text_field]) for row in rows])
        return [{"clip_score": round(score, 4)} if score >= self.threshold
                else Drop(f"clip score {score:.2f} < threshold {self.threshold:g}") for score in scores]


# ----------------------------------------------------------------------------------------------
# LLM rating (Oasis)

#: dimension -> (sees the image, prompt); ``{query}`` is the rated text
RATING_PROMPTS: dict[str, tuple[bool, str]] = {
    "solvability": (True, (
        "Here is a query about the attached image:\n\n{query}\n\nRate how well the image supports answering "
        "this query: does the image contain all the information needed to answer it completely? "
        "1 = the image holds almost nothing relevant; 3 = some of what is needed is there but parts are "
        "missing or unclear; 5 = everything needed is present and clearly visible.")),
    "hallucination": (True, (
        "Here is a query about the attached image:\n\n{query}\n\nRate how faithful the query is to the actual "
        "content of the image: does everything it mentions or presupposes really appear in the image? "
        "1 = unrelated to the image or badly wrong; 3 = partly matches with clear mistakes; 4 = small slips "
        "in details such as colours or counts; 5 = every element is supported by the image.")),
    "clarity": (True, (
        "Here is a query about the attached image:\n\n{query}\n\nRate how clearly the query states what it "
        "asks, so that it admits one definite answer. 1 = very vague, open to many readings; 3 = the intent "
        "can be guessed but is imprecise; 5 = completely clear and unambiguous.")),
    "nonsense": (False, (
        "Here is a query written for an image-understanding task:\n\n{query}\n\nRate the query as text only: "
        "is it coherent, grammatical and meaningful, free of garbled characters, repeated fragments or "
        "illogical phrases? 1 = unintelligible; 3 = understandable but with clear defects; 5 = fully "
        "coherent and well formed.")),
}
DIMENSIONS = tuple(RATING_PROMPTS)
SCORE_FORMAT = ("\n\nThink briefly if you need to, then give your rating as an integer from 1 to 5 in double "
                "square brackets on the last line, for example: [[3]]")

_BRACKETED = re.compile(r"\[\[\s*(-?\d+)\s*\]\]")
_INTEGER = re.compile(r"-?\d+")


def extract_score(text: str) -> int:
    """The last ``[[n]]``, else the last bare integer; -1 when there is none or it is outside 1-5."""
    found = _BRACKETED.findall(text) or _INTEGER.findall(text)
    if not found:
        return -1
    value = int(found[-1])
    return value if 1 <= value <= 5 else -1


@register("generator", "llm-rating")
class LlmRating(Step):
    """Rate ``text_field`` on the four Oasis dimensions and drop rows that fail the keep rule.

    Params: ``client`` (role of the vision judge, default ``vlm``), ``text_client`` (role for the
    text-only nonsense dimension; default: ``client``), ``text_field`` (default ``input_prompt``),
    ``image_field`` (default ``image``; a path or a list of paths, all attached; null: no image),
    ``temperature``, ``max_tokens``, ``batch_size``, and the rule: ``min_solvability`` (3),
    ``min_hallucination`` (5), ``min_clarity`` (3), ``min_nonsense`` (5), ``min_solvability_plus_clarity`` (7).
    """

    outputs = ("ratings",)
    transport_params = MODEL_STEP_TRANSPORT

    def __init__(self, client: str = "vlm", text_client: str | None = None, text_field: str = "input_prompt",
                 image_field: str | None = "image", temperature: float | None = None,
                 max_tokens: int | None = None, batch_size: int = 16, min_solvability: int = 3,
                 min_hallucination: int = 5, min_clarity: int = 3, min_nonsense: int = 5,
                 min_solvability_plus_clarity: int = 7):
        self.client_role, self.text_client_role = client, text_client or client
        self.text_field, self.image_field = text_field, image_field
        self.inputs = (text_field,) + ((image_field,) if image_field else ())
        self.temperature, self.max_tokens, self.batch_size = temperature, max_tokens, int(batch_size)
        self.minimums = {"solvability": min_solvability, "hallucination": min_hallucination,
                         "clarity": min_clarity, "nonsense": min_nonsense}
        self.min_sum = min_solvability_plus_clarity
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in [*self.minimums.values(), self.min_sum]):
            raise InputError("llm-rating: the min_* thresholds must be integers")

    def keep(self, ratings: Mapping[str, int]) -> bool:
        """The keep rule (a -1, i.e. an unreadable rating, fails every minimum of 1 or more)."""
        return (all(ratings[dim] >= minimum for dim, minimum in self.minimums.items())
                and ratings["solvability"] + ratings["clarity"] >= self.min_sum)

    def request(self, row: dict, dimension: str, ctx: StepContext) -> ChatRequest:
        sees_image, prompt = RATING_PROMPTS[dimension]
        images: list[bytes] = []
        if sees_image and self.image_field and row.get(self.image_field):
            refs = row[self.image_field]
            images = [ctx.image_bytes(ref) for ref in (refs if isinstance(refs, list) else [refs])]
        return ChatRequest(prompt.replace("{query}", str(row[self.text_field])) + SCORE_FORMAT, images=images)

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        replies: dict[tuple[int, str], Any] = {}
        for role in dict.fromkeys([self.client_role, self.text_client_role]):
            jobs = [(i, dim) for i in range(len(rows)) for dim in DIMENSIONS
                    if (self.text_client_role if dim == "nonsense" else self.client_role) == role]
            # one seed per (row, dimension): independent of batching and of the other dimensions
            results = ctx.client(role).chat_many(
                [self.request(rows[i], dim, ctx).messages() for i, dim in jobs],
                [ctx.seed(f"{rows[i]['id']}/{dim}") for i, dim in jobs],
                temperature=self.temperature, max_tokens=self.max_tokens)
            replies.update(zip(jobs, results))
        out: list[Any] = []
        for i in range(len(rows)):
            errors = [f"{dim}: {replies[i, dim].error}" for dim in DIMENSIONS if replies[i, dim].error]
            if errors:
                out.append(Failure("rating call failed: " + "; ".join(errors)))
                continue
            ratings = {dim: extract_score(replies[i, dim].text or "") for dim in DIMENSIONS}
            out.append({"ratings": ratings} if self.keep(ratings)
                       else Drop(f"ratings fail the keep rule: {ratings}"))
        return out
