"""Tests of the shapes-world generation data: DPG-style dense prompts with the procedural VQA judge,
and ImgEdit-style edits with the procedural editor and edit judge.

Files are read back with pandas / json; truths are re-derived here from the scene graph with rules
written in this file (GenEval's relation rule from PROTOCOLS.md 1.4, the proposition semantics of
``shapes.dense``), and ImgEdit replies are parsed with the step-1 rule of PROTOCOLS.md 3.4.
"""
from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from harness import registry
from harness.judges.base import ChatJudge, ChatPrompt, VQAJudge
from harness.models.base import InputImage, Request
from shapes import dense, edits
from shapes.dense import (DenseSpec, Group, GroupRelation, describe, dpg_shapes_items,
                          parse_dense_prompt, propositions, write_dpg_shapes)
from shapes.edit_judge import ShapesEditJudge
from shapes.editor_model import ShapesEditor
from shapes.edits import Edit, imgedit_shapes_items, parse_instruction, write_imgedit_shapes
from shapes.renderer_model import ShapesRenderer
from shapes.vqa_judge import ShapesVQA
from shapes.world import Scene, ShapeObject, render

COLUMNS = ["item_id", "text", "keywords", "proposition_id", "dependency", "category_broad",
           "category_detailed", "tuple", "question_natural_language"]
SINGULAR = {"circles": "circle", "squares": "square", "triangles": "triangle",
            "diamonds": "diamond", "crosses": "cross", "stars": "star"}
BACKGROUND_NAMES = {"plain grey": "grey", "plain light grey": "light_grey", "plain beige": "beige",
                    "grey gradient": "grey_gradient", "speckled beige": "beige_speckle"}
_TUPLE = re.compile(r"^(?P<l2>[^(]+)\((?P<args>.*)\)$")


# ----------------------------------------------------------------------- independent truth rules
def geneval_relations(a, b) -> set[str]:
    """PROTOCOLS.md 1.4, written out here."""
    offset = [(a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2]
    dims = [(a[2] - a[0]) + (b[2] - b[0]), (a[3] - a[1]) + (b[3] - b[1])]
    revised = [max(abs(o) - 0.1 * d, 0) * math.copysign(1, o) for o, d in zip(offset, dims)]
    if abs(revised[0]) < 1e-3 and abs(revised[1]) < 1e-3:
        return set()
    norm = math.hypot(*offset)
    dx, dy = revised[0] / norm, revised[1] / norm
    return {name for name, hit in (("left of", dx < -0.5), ("right of", dx > 0.5),
                                   ("above", dy < -0.5), ("below", dy > 0.5)) if hit}


def tuple_truth(tuple_text: str, scene: Scene) -> bool:
    """Whether a proposition's tuple holds on a scene graph (semantics of shapes.dense)."""
    match = _TUPLE.match(tuple_text)
    l2, args = match.group("l2").strip(), [a.strip() for a in match.group("args").split(",")]
    if l2 == "global -":
        return BACKGROUND_NAMES[args[0].removesuffix(" background")] == scene.background

    def objects(noun: str) -> list[ShapeObject]:
        return [o for o in scene.objects if o.shape == SINGULAR.get(noun, noun)]

    found = objects(args[0])
    if l2 == "entity - whole":
        return len(found) >= (2 if args[0] in SINGULAR else 1)
    if l2 == "other - count":
        return len(found) == int(args[1].removeprefix("=="))
    if l2 == "attribute - color":
        return bool(found) and all(o.color == args[1] for o in found)
    if l2 == "relation - spatial":
        others = objects(args[1])
        return bool(found and others) and all(args[2] in geneval_relations(a.bbox(), b.bbox())
                                              for a in found for b in others)
    raise AssertionError(f"unexpected tuple {tuple_text!r}")


# ------------------------------------------------------------------------------- dense prompts
def test_dense_prompt_and_question_graph_of_a_known_spec():
    spec = DenseSpec((Group("square", "red", 3), Group("circle", "orange", 1)),
                     (GroupRelation(1, "left of", 0),), "beige_speckle")
    assert describe(spec) == (
        "A flat illustration of simple shapes on a speckled beige background. It shows three red "
        "squares and an orange circle. The orange circle is to the left of the red squares. Every "
        "shape is drawn flat, without outlines or shadows, and no two shapes touch.")
    rows = [(p.proposition_id, p.dependency, p.tuple_text, p.question) for p in propositions(spec)]
    assert rows == [
        (1, (0,), "entity - whole (squares)", "Are there squares?"),
        (2, (1,), "other - count (squares, ==3)", "Are there three squares?"),
        (3, (1,), "attribute - color (squares, red)", "Are the squares red?"),
        (4, (0,), "entity - whole (circle)", "Is there a circle?"),
        (5, (4,), "attribute - color (circle, orange)", "Is the circle orange?"),
        (6, (4, 1), "relation - spatial (circle, squares, left of)", "Is the circle to the left of the squares?"),
        (7, (0,), "global - (speckled beige background)", "Does the image have a speckled beige background?"),
    ]
    assert parse_dense_prompt(describe(spec)) == spec
    assert parse_dense_prompt("a photo of a red circle") is None
    assert parse_dense_prompt("A man riding a horse on a beach at sunset.") is None


def test_dpg_files_are_in_the_official_format(tmp_path):
    folder = write_dpg_shapes(tmp_path / "dpg", items=8, seed=3)
    frame = pd.read_csv(folder / "dpg_bench.csv")
    assert list(frame.columns) == COLUMNS
    # read as text, not numbers: the official loader calls .split(',') on every value
    assert not pd.api.types.is_numeric_dtype(frame["dependency"])
    assert all(isinstance(v, str) for v in frame["dependency"])
    prompt_files = sorted((folder / "prompts").iterdir())
    assert sorted(p.name for p in prompt_files) == sorted(f"shapes{i}.txt" for i in range(8))
    texts = {p.stem: p.read_text() for p in prompt_files}
    item_order = list(dict.fromkeys(frame["item_id"]))
    assert item_order == [f"shapes{i}" for i in range(8)] and all("." not in i for i in item_order)
    # rows of one item are consecutive
    assert sum(a != b for a, b in zip(frame["item_id"], frame["item_id"][1:])) == 7
    for item_id, rows in frame.groupby("item_id", sort=False):
        assert set(rows["text"]) == {texts[item_id]}
        ids = [int(v) for v in rows["proposition_id"]]
        assert ids == list(range(1, len(ids) + 1))
        for pid, dependency, l1_word, tuple_text in zip(ids, rows["dependency"], rows["category_broad"],
                                                        rows["tuple"]):
            parents = [int(d.strip()) for d in str(dependency).split(",")]
            assert all(p == 0 or (p in ids and p != pid) for p in parents)
            l2 = tuple_text.split("(")[0].strip()
            assert l2 in {"entity - whole", "other - count", "attribute - color",
                          "relation - spatial", "global -"}
            assert l2.split("-")[0].strip() == l1_word
        assert any("," in str(d) for d in rows["dependency"])  # every item has a relation
    # quirk 1 is left to show: the first row is an entity other rows of its item depend on
    first = frame[frame["item_id"] == "shapes0"]
    assert first.iloc[0]["tuple"].startswith("entity - whole")
    assert any("1" in str(d).split(",") for d in first["dependency"][1:])


def test_dense_truths_hold_on_the_scene_graph():
    items = dpg_shapes_items(items=30, seed=5)
    for item in items:
        assert len(item.scene.objects) <= dense.MAX_OBJECTS
        for p in item.propositions:
            assert tuple_truth(p.tuple_text, item.scene), (item.item_id, p.tuple_text)
    assert dpg_shapes_items(items=3, seed=5)[2].scene == items[2].scene  # item i depends on (seed, i)


NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
RELATION_WORDS = {"left of": "to the left of", "right of": "to the right of", "above": "above",
                  "below": "below"}


def near_misses(spec: DenseSpec) -> list[tuple[str, str]]:
    """(tuple, question) pairs that are false for the spec: one more, another colour, the
    opposite relation, a single object asked as a plural, another background."""
    plural = {s: p for p, s in SINGULAR.items()}
    out = []
    for k, group in enumerate(spec.groups):
        noun = group.shape if group.count == 1 else plural[group.shape]
        if group.count == 1:
            out.append((f"entity - whole ({plural[group.shape]})", f"Are there {plural[group.shape]}?"))
        if group.count + 1 in NUMBER_WORDS:
            out.append((f"other - count ({plural[group.shape]}, =={group.count + 1})",
                        f"Are there {NUMBER_WORDS[group.count + 1]} {plural[group.shape]}?"))
        color = ["red", "blue", "green"][k] if group.color not in ("red", "blue", "green") else "white"
        verb = "Is" if group.count == 1 else "Are"
        out.append((f"attribute - color ({noun}, {color})", f"{verb} the {noun} {color}?"))
    for rel in spec.relations:
        a, b = spec.groups[rel.subject], spec.groups[rel.reference]
        noun_a = a.shape if a.count == 1 else plural[a.shape]
        noun_b = b.shape if b.count == 1 else plural[b.shape]
        verb = "Is" if a.count == 1 else "Are"
        wrong = OPPOSITE[rel.relation]
        out.append((f"relation - spatial ({noun_a}, {noun_b}, {wrong})",
                    f"{verb} the {noun_a} {RELATION_WORDS[wrong]} the {noun_b}?"))
    other = "speckled beige" if spec.background != "beige_speckle" else "plain grey"
    out.append((f"global - ({other} background)", f"Does the image have a {other} background?"))
    return out


@pytest.mark.parametrize("px", [64, 128])
def test_shapes_vqa_accuracy_on_rendered_dense_scenes(px):
    items = dpg_shapes_items(items=40, seed=11)
    vqa = ShapesVQA()
    right = total = 0
    for k, item in enumerate(items):
        image = render(item.scene, px)
        misses = near_misses(item.spec)
        assert not any(tuple_truth(t, item.scene) for t, _ in misses)
        # its own questions (true), near misses (false), the next item's (truth re-derived here)
        asked = [(p.tuple_text, p.question) for p in item.propositions] + misses + \
                [(p.tuple_text, p.question) for p in items[(k + 1) % len(items)].propositions]
        answers = vqa.answer([image] * len(asked), [q for _, q in asked])
        assert set(answers) <= {"yes", "no"}
        truths = ["yes" if tuple_truth(t, item.scene) else "no" for t, _ in asked]
        right += sum(a == t for a, t in zip(answers, truths))
        total += len(asked)
    print(f"\nshapes-vqa at {px}px: {right}/{total} = {right / total:.2%} right")
    assert right / total >= 0.98
    assert vqa.answer([image], ["What is the meaning of life?"]) == ["unknown"]
    with pytest.raises(ValueError):
        vqa.answer([image, image], ["Is there a circle?"])


def test_shapes_renderer_draws_dense_prompts():
    items = dpg_shapes_items(items=20, seed=2)
    renderer, vqa = ShapesRenderer(size=64), ShapesVQA()
    requests = [Request(item.item_id, item.prompt, seed=900 + i) for i, item in enumerate(items)]
    images = renderer.generate_images(requests)
    for item, image in zip(items, images):
        questions = [p.question for p in item.propositions]
        assert vqa.answer([image] * len(questions), questions) == ["yes"] * len(questions), item.prompt
    # GenEval prompts are drawn as before; an unreadable prompt still gives a bare background
    assert len(renderer.scene_for(Request("g", "a photo of two stars", seed=1)).objects) == 2
    assert renderer.scene_for(Request("c", "A man riding a horse.", seed=1)).objects == ()


# ----------------------------------------------------------------------------------------- edits
def test_edit_instructions_render_and_parse():
    assert Edit("add", new_shape="star", new_color="orange").instruction() == "Add an orange star to the image."
    replace = Edit("replace", "circle", "red", "square", "green")
    assert replace.instruction() == "Replace the red circle with a green square."
    background = Edit("background", background="grey_gradient")
    assert edits.instruction_for([replace, background]) == (
        "Replace the red circle with a green square. Then change the background to grey gradient.")
    assert parse_instruction("Replace the red circle with a green square. Then change the background "
                             "to grey gradient.") == [replace, background]
    assert parse_instruction("Extract the blue star and remove everything else.") == [
        Edit("extract", "star", "blue")]
    assert parse_instruction("Make it look like a van Gogh painting.") == []


def test_edit_files_are_in_the_official_format(tmp_path):
    folder = write_imgedit_shapes(tmp_path / "imgedit", items=14, seed=4, size=96)
    data = json.loads((folder / "basic_edit.json").read_text())
    keys = list(data)
    assert all(k.isdigit() for k in keys) and len(set(keys)) == 14
    numbers = sorted(int(k) for k in keys)
    assert numbers[-1] - numbers[0] + 1 > 14  # not contiguous, as in the release
    for entry in data.values():
        assert set(entry) == {"id", "prompt", "edit_type"}
        subdir, name = entry["id"].split("/")
        assert name.endswith(".png") and (folder / "images" / subdir / name).is_file()
        assert subdir == {"add": "for_add", "compose": "compose"}.get(entry["edit_type"], "flat shapes")
        assert parse_instruction(entry["prompt"]), entry["prompt"]
    assert {e["edit_type"] for e in data.values()} == {"add", "remove", "replace", "adjust",
                                                       "background", "extract", "compose"}
    prompts = json.loads((folder / "prompts.json").read_text())
    assert set(prompts) == {e["edit_type"] for e in data.values()}
    assert prompts["add"].count("<edit_prompt>") == 1
    for edit_type, text in prompts.items():
        names = re.findall(r"^(.+): A number from 1 to 5\.$", text, re.MULTILINE)
        assert tuple(names) == edits.DIMENSIONS[edit_type]
        assert "Brief reasoning:" in text and "not be higher than the first" in text
    assert edits.DIMENSIONS["background"] == ("Instruction Compliance", "Visual Seamlessness",
                                              "Physical Consistency")  # PROTOCOLS.md 3.1


def step1_item_score(reply: str) -> float | None:
    """ImgEdit's step-1 parse (PROTOCOLS.md 3.4), written out here."""
    kept = []
    for line in reply.splitlines():
        parts = line.strip().split(": ")
        if len(parts) == 2 and parts[1].isdigit():
            kept.append(int(parts[1]))
    return round(sum(kept) / len(kept), 2) if kept else None


def _judge_prompt(folder, entry) -> str:
    prompts = json.loads((folder / "prompts.json").read_text())
    return prompts[entry["edit_type"]].replace("<edit_prompt>", entry["prompt"])


def test_editor_edits_score_five_and_unchanged_images_score_low(tmp_path):
    folder = write_imgedit_shapes(tmp_path / "imgedit", items=21, seed=8, size=128)
    data = json.loads((folder / "basic_edit.json").read_text())
    editor, judge = ShapesEditor(), ShapesEditJudge()
    from harness.images import load_image

    requests = [Request(key, entry["prompt"], seed=int(key),
                        images=(InputImage(key, lambda p=folder / "images" / entry["id"]: load_image(p)),))
                for key, entry in data.items()]
    outputs = editor.edit_images(requests)
    assert editor.edit_images(requests[:1])[0].tobytes() == outputs[0].tobytes()  # deterministic
    prompts = []
    for request, output in zip(requests, outputs):
        source = request.images[0].load()
        assert output.size == source.size
        text = _judge_prompt(folder, data[request.sample_id])
        prompts += [ChatPrompt(text, (source, output), images_after_text=True),
                    ChatPrompt(text, (source, source), images_after_text=True)]
    replies = judge.ask(prompts)
    assert judge.usage == {"requests": 42, "failures": 0}
    for request, edited, unchanged in zip(requests, replies[::2], replies[1::2]):
        entry = data[request.sample_id]
        names = edits.DIMENSIONS[entry["edit_type"]]
        lines = edited.text.splitlines()
        assert lines[0].startswith("Brief reasoning: ") and len(lines[0].split()) <= 22
        assert lines[1:] == [f"{n}: 5" for n in names], (entry, edited.text)
        assert step1_item_score(edited.text) == 5.0
        assert unchanged.text.splitlines()[1] == f"{names[0]}: 1", (entry, unchanged.text)
        assert step1_item_score(unchanged.text) == 1.0  # scores 2 and 3 never exceed score 1


def _scene(*objects: ShapeObject, background: str = "grey") -> Scene:
    return Scene(objects, background, texture_seed=3)


RED_CIRCLE = ShapeObject("circle", "red", 0.25, 0.3, 0.26)
BLUE_SQUARE = ShapeObject("square", "blue", 0.7, 0.3, 0.24)
GREEN_STAR = ShapeObject("star", "green", 0.5, 0.75, 0.28)


@pytest.mark.parametrize("instruction,after,expected", [
    ("Add a green star to the image.", _scene(RED_CIRCLE, BLUE_SQUARE, GREEN_STAR), [5, 5, 5]),
    # right shape, wrong colour: partly done
    ("Add a green star to the image.",
     _scene(RED_CIRCLE, BLUE_SQUARE, ShapeObject("star", "yellow", 0.5, 0.75, 0.28)), [3, 3, 3]),
    # done, but the square moved: one unasked change
    ("Add a green star to the image.",
     _scene(RED_CIRCLE, ShapeObject("square", "blue", 0.7, 0.6, 0.24), GREEN_STAR), [5, 4, 5]),
    # done, but the background changed too
    ("Remove the red circle from the image.", _scene(BLUE_SQUARE, background="beige"), [5, 4, 5]),
    ("Change the color of the blue square to pink.",
     _scene(RED_CIRCLE, ShapeObject("square", "pink", 0.7, 0.3, 0.24)), [5, 5, 5]),
    ("Change the color of the blue square to pink.",
     _scene(RED_CIRCLE, ShapeObject("square", "purple", 0.7, 0.3, 0.24)), [3, 3, 3]),
    ("Replace the red circle with a green star.",
     _scene(ShapeObject("star", "green", 0.25, 0.3, 0.26), BLUE_SQUARE), [5, 5, 5]),
    ("Extract the red circle and remove everything else.", _scene(RED_CIRCLE), [5, 5, 5]),
    # one of two parts done: floor of the mean of 5 and 1
    ("Remove the red circle from the image. Then change the background to plain beige.",
     _scene(BLUE_SQUARE), [3, 3, 3]),
])
def test_edit_judge_scores_by_hand(instruction, after, expected):
    before = render(_scene(RED_CIRCLE, BLUE_SQUARE), 128)
    text = ("Rate the edit.\nPrompt Compliance: A number from 1 to 5.\nVisual Naturalness: A number "
            "from 1 to 5.\nPhysical & Detail Integrity: A number from 1 to 5.\n"
            f"editing instruction is : {instruction}.\n\nBelow are the images before and after editing:")
    reply = ShapesEditJudge().ask([ChatPrompt(text, (before, render(after, 128)), images_after_text=True)])[0]
    assert reply.error is None
    names = ["Prompt Compliance", "Visual Naturalness", "Physical & Detail Integrity"]
    assert reply.text.splitlines()[1:] == [f"{n}: {s}" for n, s in zip(names, expected)], reply.text


def test_edit_judge_failures_are_error_replies():
    judge = ShapesEditJudge()
    image = render(_scene(RED_CIRCLE), 64)
    replies = judge.ask([ChatPrompt("Editing instruction: Add a red star to the image.", (image,)),
                         ChatPrompt("Editing instruction: make it nicer.", (image, image))])
    assert [r.text for r in replies] == [None, None]
    assert "2 images" in replies[0].error and "instruction" in replies[1].error
    assert judge.usage == {"requests": 2, "failures": 2}


def test_plugins_are_registered():
    assert registry.get("vqa", "shapes-vqa") is ShapesVQA
    assert registry.get("model", "shapes-editor") is ShapesEditor
    assert registry.get("chat", "shapes-edit-judge") is ShapesEditJudge
    assert isinstance(ShapesVQA(), VQAJudge) and isinstance(ShapesEditJudge(), ChatJudge)
    assert ShapesEditor.capabilities == frozenset({"edit"})
    assert imgedit_shapes_items(items=7, seed=1)[6].edit_type == "compose"
