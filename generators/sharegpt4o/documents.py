"""Text-rich document images: a category and topic -> the text content (LLM) -> a visual template
prompt (LLM) -> image.

``document-topics`` (source) -> ``document-content`` -> ``document-template-prompt`` -> ``render-image``.

The five categories (slide, paper, document, infographic/chart, poster) and the content-first order
come from the task brief; no source we could read describes such a pipeline for ShareGPT-4o-Image
(research notes 1c: it may belong to another dataset). Assumed (not in the sources we could read):
the per-category content guidance, the topic list, uniform sampling of category and topic, the word
limit of the content (``max_words``), and every prompt's wording (ours).
"""
from __future__ import annotations

from typing import Any, Sequence

from generators.base import ChatRequest, ChatStep
from generators.sharegpt4o.prompt_first import prompt_fields, strip_fence
from harness.errors import InputError
from harness.recipe import Drop, Failure, Source, StepContext
from harness.registry import register

#: category -> what its text content holds (guides the content step)
DOCUMENT_CATEGORIES: dict[str, str] = {
    "slide": "one presentation slide: a title, three to five short bullet points, optionally a small "
             "chart or table with its numbers, and a footer with a slide number",
    "paper": "the first page of a research paper: title, author names and affiliations, an abstract, "
             "the first section heading with a paragraph, and a table or figure caption with numbers",
    "document": "a practical document such as a memo, invoice, form, menu, letter or report page: a "
                "heading, labelled fields or short paragraphs, dates, amounts and names",
    "infographic": "an infographic or chart: a headline, three to six labelled statistics or data "
                   "points with exact numbers and units, axis or legend labels, and a source line",
    "poster": "a poster: a large headline, a subheading, the key details (date, time, place or "
              "offer), a short call to action and a small-print line",
}
DEFAULT_TOPICS: tuple[str, ...] = (
    "renewable energy", "marine biology", "personal finance", "urban gardening", "machine learning",
    "public health", "space exploration", "ancient history", "climate science", "cooking and recipes",
    "sports analytics", "music festivals", "mental wellbeing", "cybersecurity", "electric vehicles",
    "wildlife conservation", "architecture", "coffee culture", "education policy", "travel and tourism",
    "small business", "astronomy", "nutrition", "film history", "supply chains", "ocean plastics",
    "board games", "volunteering", "photography", "water management",
)

CONTENT_SYSTEM = "You write the text that appears on documents, slides, papers, infographics and posters."
CONTENT_TEMPLATE = """Write the complete text content of {description}.
Topic: {topic}.
Make it specific and realistic: concrete names, dates and numbers that agree with each other.
Keep it short enough to be legible in one image: at most {max_words} words in all.
Write the content only, as plain text, one element per line (for example "Title: ...", "Bullet: ...");
do not describe the layout or the design."""

TEMPLATE_SYSTEM = "You write prompts for an image model that renders text-rich images accurately."
TEMPLATE_PROMPT = """Turn the {category} content below into one prompt for an image model that renders it as a {category} image.
Describe the layout (where each element sits), the typography (sizes, weights, hierarchy), the colour scheme and any visual elements such as charts, icons, tables or photos.
Include every piece of text exactly as it must appear, in double quotes, and keep all numbers unchanged.
Reply with the prompt only: no label, no explanation.

Content:
{content}"""


@register("generator", "document-topics")
class DocumentTopics(Source):
    """``count`` rows ``{id: "doc-00000", category, topic}``: a category and a topic drawn uniformly.

    Params: ``count``, ``categories`` (a subset of slide, paper, document, infographic, poster),
    ``topics`` (a list of domains replacing the built-in 30).
    """

    outputs = ("category", "topic")

    def __init__(self, count: int = 100, categories: Sequence[str] = tuple(DOCUMENT_CATEGORIES),
                 topics: Sequence[str] = DEFAULT_TOPICS):
        unknown = [c for c in categories if c not in DOCUMENT_CATEGORIES]
        if unknown or not categories or not topics or int(count) < 0:
            raise InputError(f"count must be >= 0, categories a non-empty subset of {list(DOCUMENT_CATEGORIES)}"
                             f" and topics a non-empty list" + (f" (unknown: {unknown})" if unknown else ""))
        self.count, self.categories, self.topics = int(count), tuple(categories), tuple(topics)

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        rows = []
        for i in range(self.count):
            row_id = f"doc-{i:05d}"
            rng = ctx.rng(row_id)
            rows.append({"id": row_id, "category": rng.choice(self.categories), "topic": rng.choice(self.topics)})
        return rows


@register("generator", "document-content")
class DocumentContent(ChatStep):
    """LLM: ``category`` + ``topic`` -> the document's text (title, sections, numbers) in ``document_content``.

    Params: ``max_words`` (default 120), and the chat-step params. An empty reply is a Failure.
    """

    inputs = ("category", "topic")
    outputs = ("document_content",)

    def __init__(self, max_words: int = 120, **params: Any):
        super().__init__(**params)
        self.max_words = int(max_words)

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        text = CONTENT_TEMPLATE.format(description=DOCUMENT_CATEGORIES[row["category"]], topic=row["topic"],
                                       max_words=self.max_words)
        return ChatRequest(text, system=CONTENT_SYSTEM)

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        content = strip_fence(text)  # line breaks kept: they carry the document's structure
        return {"document_content": content} if content else Failure("the model's reply held no content")


@register("generator", "document-template-prompt")
class DocumentTemplatePrompt(ChatStep):
    """LLM: ``document_content`` + ``category`` -> a visual template prompt for the image model
    (``input_prompt``). Params: the chat-step params. An empty reply is a Failure."""

    inputs = ("category", "document_content")
    outputs = ("input_prompt",)

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        text = TEMPLATE_PROMPT.format(category=row["category"], content=row["document_content"])
        return ChatRequest(text, system=TEMPLATE_SYSTEM)

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        return prompt_fields(text, "input_prompt")
