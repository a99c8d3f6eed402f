"""ShareGPT-4o-Image edit triplets: (source image, instruction, edited image).

``image-folder`` (or any rows with an ``image``) -> ``assign-edit-task`` -> ``edit-instruction`` (VLM)
-> ``set-input-image`` -> ``edit-image``; export ``sharegpt4o`` (``input_image`` is a list).

Facts carried over (secondary sources): 14 editing tasks in 5 categories; the source image comes
from the generated text-to-image set or from real photos; for each (image, task) the LLM writes a
specific instruction and GPT-4o-Image performs the edit. Named categories in a low-trust summary:
"object manipulation", "style transfer", "conditional control".

Assumed (not in the sources we could read): the taxonomy below -- its 5 category names, 14 task
names and descriptions are ours (``taxonomy`` replaces it: a YAML file or an inline mapping
``{category: {task: description}}``); tasks are drawn uniformly per row; a task the VLM finds
inapplicable to the image (reply ``SKIP``) drops the row; the instruction wording is ours.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from generators.base import ChatRequest, ChatStep, CopyField
from generators.sharegpt4o.prompt_first import clean_prompt_reply
from harness.errors import InputError
from harness.hashing import hash_value
from harness.recipe import Drop, Failure, Step, StepContext
from harness.registry import register

#: category -> task -> what the task changes (assumed; see the module docstring)
EDIT_TAXONOMY: dict[str, dict[str, str]] = {
    "object manipulation": {
        "add object": "add a new object that fits the scene",
        "remove object": "remove one visible object and fill its place naturally",
        "replace object": "replace one visible object with a different object",
        "move or resize object": "move one visible object elsewhere or change its size",
    },
    "attribute editing": {
        "change color": "change the color of one visible object or region",
        "change material or texture": "change what one visible object is made of or its surface texture",
        "change pose or expression": "change the pose, gesture or facial expression of a person or animal",
    },
    "scene editing": {
        "change background": "replace the background while keeping the main subject unchanged",
        "change weather or season": "change the weather or the season of the scene",
        "change time of day or lighting": "change the time of day or the lighting of the scene",
    },
    "style transfer": {
        "artistic style": "render the whole image in a named artistic style or medium",
        "photographic tone": "change the overall color grading, tone or film look of the image",
    },
    "conditional control": {
        "keep layout, new content": "keep the composition and outlines of the image but turn it into a "
                                    "different scene with the same structure",
        "keep subject, new context": "keep the main subject's identity and appearance but show it in a "
                                     "new setting or situation",
    },
}

INSTRUCTION_SYSTEM = "You write image-editing instructions for an image-editing model."
INSTRUCTION_TEMPLATE = """Write one editing instruction for this image.
Edit category: {category}. Edit task: {task} -- {description}.
The instruction must name what is actually visible in the image and say exactly what to change, where and how, so that it can be carried out in a single edit; everything else stays as it is.
Reply with the instruction only, as one imperative sentence: no label, no quotes.
If this task cannot sensibly be applied to this image, reply with exactly SKIP."""


def parse_taxonomy(data: Any, where: str | Path) -> dict[str, dict[str, str]]:
    """Check ``{category: {task: description}}``: non-empty, string names, task names unique."""
    if not isinstance(data, Mapping) or not data:
        raise InputError("an edit taxonomy maps categories to {task: description} mappings", where)
    seen: set[str] = set()
    for category, tasks in data.items():
        if not isinstance(tasks, Mapping) or not tasks or not all(
                isinstance(t, str) and isinstance(d, str) and t.strip() and d.strip() for t, d in tasks.items()):
            raise InputError(f"category {category!r} must map task names to descriptions (strings)", where)
        repeated = seen & set(tasks)
        if repeated:
            raise InputError(f"tasks {sorted(repeated)} appear in two categories", where)
        seen |= set(tasks)
    return {str(c): dict(tasks) for c, tasks in data.items()}


def load_taxonomy(taxonomy: str | Mapping | None) -> dict[str, dict[str, str]]:
    """The built-in taxonomy, an inline mapping, or the one in a YAML file."""
    if taxonomy is None:
        return EDIT_TAXONOMY
    if isinstance(taxonomy, Mapping):
        return parse_taxonomy(taxonomy, "taxonomy parameter")
    path = Path(taxonomy)
    if not path.is_file():
        raise InputError("edit taxonomy file not found", path)
    try:
        return parse_taxonomy(yaml.safe_load(path.read_text(encoding="utf-8")), path)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path) from None


@register("generator", "assign-edit-task")
class AssignEditTask(Step):
    """Draw one task per row (uniform over all tasks): ``edit_category``, ``edit_task``, ``edit_task_description``.

    Params: ``taxonomy`` (a YAML path or mapping replacing the built-in 5 categories / 14 tasks),
    ``image_field`` (default ``image``: the row must have a source image).
    """

    outputs = ("edit_category", "edit_task", "edit_task_description")
    transport_params = ("batch_size",)

    def __init__(self, taxonomy: str | Mapping | None = None, image_field: str = "image", batch_size: int = 256):
        self.taxonomy = load_taxonomy(taxonomy)
        # a taxonomy file's content (not only its path) decides the rows: make it part of the identity
        self.version = f"1+{hash_value(self.taxonomy, length=12)}"
        self.tasks = [(c, t, d) for c, tasks in self.taxonomy.items() for t, d in tasks.items()]
        self.inputs = (image_field,)
        self.batch_size = int(batch_size)

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        results = []
        for row in rows:
            category, task, description = ctx.rng(row).choice(self.tasks)
            results.append({"edit_category": category, "edit_task": task, "edit_task_description": description})
        return results


@register("generator", "edit-instruction")
class EditInstruction(ChatStep):
    """VLM: the source ``image`` + the row's edit task -> one concrete instruction in ``input_prompt``.

    A ``SKIP`` reply drops the row (the task does not fit the image); an empty reply is a Failure.
    Params: ``image_field`` (default ``image``) and the chat-step params.
    """

    outputs = ("input_prompt",)

    def __init__(self, image_field: str = "image", **params: Any):
        super().__init__(**params)
        self.image_field = image_field
        self.inputs = (image_field, "edit_category", "edit_task", "edit_task_description")

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        text = INSTRUCTION_TEMPLATE.format(category=row["edit_category"], task=row["edit_task"],
                                           description=row["edit_task_description"])
        return ChatRequest(text, images=[ctx.image_bytes(row[self.image_field])], system=INSTRUCTION_SYSTEM)

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        instruction = clean_prompt_reply(text)
        if instruction.rstrip(".").upper() == "SKIP":
            return Drop(f"task {row['edit_task']!r} does not fit the image")
        return {"input_prompt": instruction} if instruction else Failure("the model's reply held no instruction")


@register("generator", "set-input-image")
class SetInputImage(CopyField):
    """``input_image: [image]``: the source image as ShareGPT-4o-Image's list of input images.

    Params: ``image_field`` (default ``image``), ``output`` (default ``input_image``).
    """

    as_list = True

    def __init__(self, image_field: str = "image", output: str = "input_image", batch_size: int = 256):
        super().__init__(image_field, output, batch_size)
