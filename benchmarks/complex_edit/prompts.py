"""Complex-Edit's judge prompts, read from the user's copy of the upstream code, and the two calls.

The prompt text is upstream's data, but it is not shipped here: UCSC-VLAA/Complex-Edit states no
license. ``prompts:`` names a checkout (or its ``complex_edit/eval`` folder); the string constants
of ``prompt_alignment.py`` and ``prompt_quality.py`` are read with ``ast`` (nothing is executed).
The protocol card records their hash and names the upstream commit when it matches one we read.

``eval.py`` (UCSC-VLAA/Complex-Edit 3502eaa) builds the two calls as:

- alignment (``AlignmentEvaluator(if_rubric=True, if_cot=True)``): system =
  ``ALIGNMENT_PROMPT_W_RUBRIC`` + :data:`COT_SUFFIX`; user = [input image, output image,
  ``PROMPT_TEMPLATE.format(instruction=...)``]; reply schema ``CoTAlignment`` (``reasoning``,
  ``instruction_following``, ``identity_preservation``);
- quality (``QualityEvaluator(if_rubric=True, if_cot=False, if_inst=False)``): system =
  ``PERCEPTUAL_QUALITY_PROMPT_W_RUBRIC_WO_INST``; user = [output image] and no text; reply schema
  ``PerceptualQuality`` (``perceptual_quality``).

Both are sent with ``response_format`` (OpenAI structured outputs): the SDK turns the pydantic
model into a strict ``json_schema``. ``reply_format: structured`` (the default) sends those two
objects as the SDK sends them (``response_formats.json``, captured from openai 1.75.0 by
``tests/fixtures/complex_edit_upstream/make_response_formats.py``) on the prompt's
``response_format``, with upstream's system text unchanged. The alternatives are departures,
recorded on the card: ``json_in_prompt`` sends no ``response_format`` and appends
:func:`format_sentence` to the system prompt; ``none`` sends upstream's text only.
"""
from __future__ import annotations

import ast
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from harness.errors import InputError
from harness.hashing import hash_value
from harness.judges.base import ChatPrompt

#: appended by ``get_system_prompt`` in alignment.py when ``if_cot`` (a line of upstream code)
COT_SUFFIX = "\nExplain your reasoning before answering the questions."
FILES = {"alignment": "prompt_alignment.py", "quality": "prompt_quality.py"}
NEEDED = {"alignment": ("ALIGNMENT_PROMPT_W_RUBRIC", "PROMPT_TEMPLATE"),
          "quality": ("PERCEPTUAL_QUALITY_PROMPT_W_RUBRIC_WO_INST",)}
#: prompts_hash of the upstream files we read -> where
KNOWN_PROMPTS = {
    "bfbe990bcccd9693": "UCSC-VLAA/Complex-Edit 3502eaa (2025-04-22); same text in GPT-Image-Edit 60eb6c8",
}
REPLY_FORMATS = ("structured", "json_in_prompt", "none")
DEFAULT_REPLY_FORMAT = "structured"
#: the two ``response_format`` objects eval.py's SDK sends (see the module docstring)
RESPONSE_FORMATS_FILE = Path(__file__).with_name("response_formats.json")
#: response_formats_hash() of the objects captured from openai 1.75.0 (a changed file is not upstream's)
UPSTREAM_RESPONSE_FORMATS_HASH = "33e38c828aff5800"
ALIGNMENT_KEYS = ("instruction_following", "identity_preservation")
QUALITY_KEYS = ("perceptual_quality",)


def format_sentence(keys: tuple[str, ...], reasoning: bool) -> str:
    """The reply format the structured output would impose, said in words (json_in_prompt)."""
    scores = " and ".join(f'"{key}"' for key in keys)
    choices = 'one of the strings "0", "1", ..., "10"'
    if len(keys) == 1:
        return f"\nReply with one JSON object and nothing else, with the key {scores}, {choices}."
    lead = '"reasoning" (a string), ' if reasoning else ""
    return f"\nReply with one JSON object and nothing else, with the keys {lead}{scores} (each {choices})."


@functools.lru_cache(maxsize=1)
def _stored_formats() -> dict[str, Any]:
    return json.loads(RESPONSE_FORMATS_FILE.read_text(encoding="utf-8"))


def response_format(kind: str) -> dict[str, Any]:
    """The ``response_format`` JSON of the ``alignment`` (``CoTAlignment``) or ``quality``
    (``PerceptualQuality``) call, key order as the SDK sends it. One shared object: not to be
    changed."""
    return _stored_formats()[kind]


def response_formats_hash() -> str:
    """Identifies the two objects on the protocol card (key order counts, as in the request)."""
    return hash_value(json.dumps([response_format("alignment"), response_format("quality")]))


def response_formats_sdk() -> str:
    """The SDK (and pydantic) that produced the stored objects, e.g. ``openai 1.75.0, pydantic 2.11.3``."""
    return ", ".join(f"{name} {version}" for name, version in _stored_formats()["sdk"].items())


@dataclass(frozen=True)
class JudgePrompts:
    alignment_system: str
    alignment_template: str
    quality_system: str
    source: Path

    @property
    def content_hash(self) -> str:
        return hash_value([self.alignment_system, self.alignment_template, self.quality_system])

    @property
    def release(self) -> str:
        return KNOWN_PROMPTS.get(self.content_hash, "unknown (not the upstream prompt files we read)")


def _constants(path: Path) -> dict[str, str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read the prompt file ({exc})", path) from None
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(value, str):
                found[node.targets[0].id] = value
    return found


def load_prompts(path: str | Path) -> JudgePrompts:
    """The prompts of a Complex-Edit checkout (or its ``complex_edit/eval`` folder)."""
    root = Path(path)
    folder = root / "complex_edit" / "eval" if (root / "complex_edit" / "eval").is_dir() else root
    values: dict[str, dict[str, str]] = {}
    for kind, name in FILES.items():
        file = folder / name
        if not file.is_file():
            raise InputError(f"{name} not found: point 'prompts' at a checkout of github.com/UCSC-VLAA/Complex-Edit "
                             "(or its complex_edit/eval folder)", file)
        values[kind] = _constants(file)
        missing = [key for key in NEEDED[kind] if key not in values[kind]]
        if missing:
            raise InputError(f"no string constant(s) {', '.join(missing)}", file)
    template = values["alignment"]["PROMPT_TEMPLATE"]
    if "{instruction}" not in template:
        raise InputError("PROMPT_TEMPLATE has no {instruction} field", folder / FILES["alignment"])
    return JudgePrompts(values["alignment"]["ALIGNMENT_PROMPT_W_RUBRIC"] + COT_SUFFIX, template,
                        values["quality"]["PERCEPTUAL_QUALITY_PROMPT_W_RUBRIC_WO_INST"], folder)


def never_kept(text: str) -> bool:
    """The ``accept`` of every measurement prompt. The runner keeps usable replies keyed by the
    prompt's content, but the n measurements of an item are n samples of one prompt: a kept reply
    would come back for all n. So none is kept; a run killed while judging asks an unfinished
    item's calls again (finished items' verdicts are kept as usual)."""
    return False


def alignment_prompt(prompts: JudgePrompts, instruction: str, original: Image.Image, edited: Image.Image,
                     reply_format: str) -> ChatPrompt:
    """System prompt; user turn: input image, output image, then the filled template; with
    ``structured``, ``CoTAlignment``'s ``response_format``."""
    system = prompts.alignment_system + (format_sentence(ALIGNMENT_KEYS, True) if reply_format == "json_in_prompt"
                                         else "")
    return ChatPrompt(prompts.alignment_template.format(instruction=instruction), (original, edited), system=system,
                      accept=never_kept,
                      response_format=response_format("alignment") if reply_format == "structured" else None)


def quality_prompt(prompts: JudgePrompts, edited: Image.Image, reply_format: str) -> ChatPrompt:
    """System prompt; user turn: the output image alone (an empty text sends no text part); with
    ``structured``, ``PerceptualQuality``'s ``response_format``."""
    system = prompts.quality_system + (format_sentence(QUALITY_KEYS, False) if reply_format == "json_in_prompt"
                                       else "")
    return ChatPrompt("", (edited,), system=system, accept=never_kept,
                      response_format=response_format("quality") if reply_format == "structured" else None)
