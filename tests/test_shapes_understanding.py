"""Tests of the shapes-world MME / MMBench files and the procedural answerer.

The files are read back with plain Python and pandas; every truth is re-derived here from the
scene graph with rules written in this file (never with the module's own parser), and circular
copies are checked against rotations worked out by hand.
"""
from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import registry
from harness.models.base import InputImage, Request
from shapes import answerer_model
from shapes.answerer_model import ShapesAnswerer
from shapes import understanding
from shapes.understanding import mme_shapes_items, write_mme_shapes
from shapes.understanding_mmbench import (circular_passes, mmbench_shapes_items,
                                          write_mmbench_shapes)
from shapes.world import Scene, ShapeObject, render

SUFFIX = " Please answer yes or no."
LLAVA_MME = "\nAnswer the question using a single word or phrase."
LLAVA_MCQ = "\nAnswer with the option's letter from the given choices directly."
SINGULAR = {"circles": "circle", "squares": "square", "triangles": "triangle",
            "diamonds": "diamond", "crosses": "cross", "stars": "star"}
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
PHRASE = {"to the left of": "left of", "to the right of": "right of", "above": "above",
          "below": "below"}
BG_COLOR = {"grey": "grey", "light_grey": "light grey", "beige": "beige",
            "grey_gradient": "grey", "beige_speckle": "beige"}
BG_TEXTURE = {"grey": "plain", "light_grey": "plain", "beige": "plain",
              "grey_gradient": "gradient", "beige_speckle": "speckled"}


# ------------------------------------------------------------------------------ independent truth
def relation_set(a, b) -> set[str]:
    """GenEval's relations(A, B) (PROTOCOLS.md 1.4), threshold 0.1, written out here."""
    off = ((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    dims = (a[2] - a[0] + b[2] - b[0], a[3] - a[1] + b[3] - b[1])
    rev = [max(abs(o) - 0.1 * d, 0) * (1 if o >= 0 else -1) for o, d in zip(off, dims)]
    if abs(rev[0]) < 1e-3 and abs(rev[1]) < 1e-3:
        return set()
    dx, dy = (r / math.hypot(*off) for r in rev)
    return ({"left of"} if dx < -0.5 else set()) | ({"right of"} if dx > 0.5 else set()) | \
           ({"above"} if dy < -0.5 else set()) | ({"below"} if dy > 0.5 else set())


def the(scene: Scene, shape: str) -> ShapeObject:
    found = [o for o in scene.objects if o.shape == shape]
    assert len(found) == 1, f"'the {shape}' is not unique in {scene}"
    return found[0]


def yes_no_truth(question: str, scene: Scene) -> bool:
    assert question.endswith(SUFFIX)
    q = question[: -len(SUFFIX)]
    if m := re.fullmatch(r"Is there (an?) (\w+) (\w+) in this image\?", q):
        assert m[1] == ("an" if m[2][0] in "aeiou" else "a")
        return any(o.color == m[2] and o.shape == m[3] for o in scene.objects)
    if m := re.fullmatch(r"Is there only one (\w+) in the image\?", q):
        return sum(o.shape == m[1] for o in scene.objects) == 1
    if m := re.fullmatch(r"Is there (an?) (\w+) in this image\?", q):
        assert m[1] == ("an" if m[2][0] in "aeiou" else "a")
        return any(o.shape == m[2] for o in scene.objects)
    if m := re.fullmatch(r"Are there (\w+) (\w+) in the image\?", q):
        return sum(o.shape == SINGULAR[m[2]] for o in scene.objects) == NUMBERS[m[1]]
    if m := re.fullmatch(r"Is the (\w+) (to the left of|to the right of|above|below) the (\w+)\?", q):
        return PHRASE[m[2]] in relation_set(the(scene, m[1]).bbox(), the(scene, m[3]).bbox())
    if m := re.fullmatch(r"Is the (\w+) in this image (\w+)\?", q):
        return the(scene, m[1]).color == m[2]
    raise AssertionError(f"unexpected question {question!r}")


def correct_options(item) -> list[str]:
    """The option texts that answer ``item`` on its scene graph."""
    scene, q, options = item.scene, item.question, item.options
    if m := re.fullmatch(r"What color is the (\w+) in the image\?", q):
        return [o for o in options if o == the(scene, m[1]).color]
    if m := re.fullmatch(r"Where is the (\w+) located in the image\?", q):
        target = the(scene, m[1])
        assert min(abs(target.cx - 0.5), abs(target.cy - 0.5)) >= 0.1  # never near the middle
        where = ("top" if target.cy < 0.5 else "bottom") + "-" + ("left" if target.cx < 0.5 else "right")
        return [o for o in options if o == where]
    if m := re.fullmatch(r"Which shape is (to the left of|to the right of|above|below) the (\w+)\?", q):
        ref = the(scene, m[2])
        return [o for o in options if any(PHRASE[m[1]] in relation_set(x.bbox(), ref.bbox())
                                          for x in scene.objects if x.shape == o)]
    if q == "Which shape appears most often in the image?":
        counts = {o: sum(x.shape == o for x in scene.objects) for o in options}
        return [o for o, n in counts.items() if all(n > k for p, k in counts.items() if p != o)]
    if q == "What color is the background of the image?":
        return [o for o in options if o == BG_COLOR[scene.background]]
    if q == "What is the texture of the background?":
        return [o for o in options if o == BG_TEXTURE[scene.background]]
    raise AssertionError(f"unexpected question {q!r}")


# ----------------------------------------------------------------------------------------- MME
@pytest.fixture(scope="module")
def mme_dir(tmp_path_factory) -> Path:
    return write_mme_shapes(tmp_path_factory.mktemp("mme"), per_subtask=8, seed=0, size=128)


def read_mme(folder: Path) -> list[tuple[str, str, Path, str, str]]:
    """(subtask, stem, png, question, GT) per line, read as MME's own tools would."""
    rows = []
    for subdir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for txt in sorted(subdir.glob("*.txt")):
            for line in txt.read_text(encoding="utf-8").splitlines():
                question, gt = line.split("\t")
                rows.append((subdir.name, txt.stem, txt.with_suffix(".png"), question, gt))
    return rows


def test_mme_layout(mme_dir):
    assert sorted(p.name for p in mme_dir.iterdir()) == ["color", "count", "existence", "position"]
    for subdir in mme_dir.iterdir():
        files = sorted(p.name for p in subdir.iterdir())
        assert files == [f"{i:04d}.{ext}" for i in range(1, 9) for ext in ("png", "txt")]
        for txt in subdir.glob("*.txt"):
            raw = txt.read_text(encoding="utf-8")
            lines = raw.splitlines()
            assert raw.endswith("\n") and len(lines) == 2
            assert [line.split("\t")[1] for line in lines] == ["Yes", "No"]
            assert all(line.count("\t") == 1 and line.split("\t")[0].endswith(SUFFIX) for line in lines)
            assert lines[0].split("\t")[0] != lines[1].split("\t")[0]
            with Image.open(txt.with_suffix(".png")) as image:
                assert image.size == (128, 128) and image.mode == "RGB"
    assert len(read_mme(mme_dir)) == 64


def test_mme_statements_are_true_and_false_on_the_scene(mme_dir):
    items = mme_shapes_items(per_subtask=8, seed=0)
    assert len(items) == 32
    for item in items:
        assert yes_no_truth(item.yes_question, item.scene) is True, item
        assert yes_no_truth(item.no_question, item.scene) is False, item
        txt = mme_dir / item.subtask / f"{item.stem}.txt"
        assert txt.read_text() == f"{item.yes_question}\tYes\n{item.no_question}\tNo\n"
        with Image.open(txt.with_suffix(".png")) as image:
            assert np.array_equal(np.asarray(image), np.asarray(render(item.scene, size=128)))
    # every form of question is exercised with this seed
    texts = " ".join(i.yes_question + i.no_question for i in mme_shapes_items(per_subtask=8))
    for piece in ("only one", "Are there", "to the left of", "in this image?", "Is the"):
        assert piece in texts


def test_mme_is_deterministic(tmp_path):
    a = write_mme_shapes(tmp_path / "a", per_subtask=2, seed=3)
    b = write_mme_shapes(tmp_path / "b", per_subtask=2, seed=3)
    c = write_mme_shapes(tmp_path / "c", per_subtask=2, seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*.*"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


# -------------------------------------------------------------------------------------- MMBench
def test_circular_passes_by_hand():
    assert circular_passes(("red", "blue", "green"), "B") == [
        (("red", "blue", "green"), "B"), (("blue", "green", "red"), "A"),
        (("green", "red", "blue"), "C")]
    assert circular_passes(("x", "y", "z", "w"), "A") == [
        (("x", "y", "z", "w"), "A"), (("y", "z", "w", "x"), "D"),
        (("z", "w", "x", "y"), "C"), (("w", "x", "y", "z"), "B")]
    assert circular_passes(("p", "q"), "B") == [(("p", "q"), "B"), (("q", "p"), "A")]


@pytest.fixture(scope="module")
def mmbench_tsv(tmp_path_factory) -> Path:
    return write_mmbench_shapes(tmp_path_factory.mktemp("mmb") / "shapes.tsv", questions=40, seed=0)


def options_of(row) -> list[str]:
    return [row[c] for c in "ABCD" if not pd.isna(row[c])]


def test_mmbench_tsv_layout(mmbench_tsv):
    frame = pd.read_csv(mmbench_tsv, sep="\t")
    assert list(frame.columns) == ["index", "question", "hint", "A", "B", "C", "D", "answer",
                                   "category", "l2-category", "split", "image"]
    items = {i.index: i for i in mmbench_shapes_items(40, seed=0)}
    main = frame[frame["index"] < 1_000_000].set_index("index")
    assert sorted(main.index) == list(range(40))
    assert len(frame) == sum(len(i.options) for i in items.values())
    assert set(frame["split"]) == {"dev"}
    assert frame["hint"].isna().any() and frame["hint"].notna().any()
    for _, row in frame.iterrows():
        g, k = row["index"] % 1_000_000, row["index"] // 1_000_000
        base = main.loc[g]
        opts, base_opts = options_of(row), options_of(base)
        assert 2 <= len(opts) <= 4 and len(set(opts)) == len(opts)
        assert [c for c in "ABCD" if not pd.isna(row[c])] == list("ABCD"[: len(opts)])
        assert k < len(base_opts)
        assert opts == base_opts[k:] + base_opts[:k]  # pass k shifted by k
        assert row[row["answer"]] == base[base["answer"]]  # the same text stays the answer
        for col in ("question", "category", "l2-category", "split"):
            assert row[col] == base[col]
        assert (pd.isna(row["hint"]) and pd.isna(base["hint"])) or row["hint"] == base["hint"]
        if k:
            assert row["image"] == str(g)
        else:
            assert len(row["image"]) > 64
            image = Image.open(io.BytesIO(base64.b64decode(row["image"])))
            assert image.format == "PNG" and image.size == (128, 128)
            assert np.array_equal(np.asarray(image.convert("RGB")),
                                  np.asarray(render(items[g].scene, size=128)))


def test_mmbench_categories_and_truth():
    items = mmbench_shapes_items(60, seed=1)
    l2 = {"attribute_recognition": "finegrained_perception (instance-level)",
          "object_localization": "finegrained_perception (instance-level)",
          "spatial_relationship": "finegrained_perception (cross-instance)",
          "attribute_comparison": "finegrained_perception (cross-instance)",
          "image_scene": "coarse_perception", "image_style": "coarse_perception"}
    assert {i.category for i in items} == set(l2)
    letters = set()
    for item in items:
        assert item.l2_category == l2[item.category]
        assert 2 <= len(item.options) <= 4 and len(set(item.options)) == len(item.options)
        right = correct_options(item)
        assert right == [item.options["ABCD".index(item.answer)]], item  # distractors all wrong
        letters.add(item.answer)
    assert letters == set("ABCD")


def test_mmbench_legacy_layout(tmp_path):
    modern = pd.read_csv(write_mmbench_shapes(tmp_path / "m.tsv", questions=8, seed=2), sep="\t")
    legacy = pd.read_csv(write_mmbench_shapes(tmp_path / "l.tsv", questions=8, seed=2,
                                                         legacy=True), sep="\t")
    assert {"source", "comment"} <= set(legacy.columns)
    assert set(legacy.columns) - {"source", "comment"} == set(modern.columns)
    assert list(legacy["index"]) == list(modern["index"]) and len(legacy) > 8
    images = dict(zip(legacy["index"], legacy["image"]))
    for index, image in images.items():  # every copy repeats its main row's base64 image
        assert len(image) > 64 and image == images[index % 1_000_000]
    cols = [c for c in modern.columns if c != "image"]
    pd.testing.assert_frame_equal(legacy[cols], modern[cols])


# ------------------------------------------------------------------------------------- answerer
class CountingImage:
    """An InputImage source that counts how often the model loads it."""

    def __init__(self, load):
        self.inner, self.calls = load, 0

    def __call__(self) -> Image.Image:
        self.calls += 1
        return self.inner()


def test_answerer_on_mme(mme_dir, capsys):
    requests, truth = [], []
    for n, (subtask, stem, png, question, gt) in enumerate(read_mme(mme_dir)):
        prompt = question + (LLAVA_MME if n % 2 else "")
        image = InputImage(f"{subtask}/{stem}", lambda p=png: Image.open(p).convert("RGB"))
        requests.append(Request(f"{subtask}/{stem}/{gt}", prompt, 0, (image,)))
        truth.append(gt)
    answers = ShapesAnswerer().answer(requests)
    assert set(answers) <= {"Yes", "No"}
    accuracy = float(np.mean([a == t for a, t in zip(answers, truth)]))
    with capsys.disabled():
        print(f"\nshapes-answerer MME accuracy on {len(truth)} questions: {accuracy:.4f}")
    assert len(truth) == 64 and accuracy >= 0.98


def mcq_prompt(row, style: str) -> str:
    opts = [(c, row[c]) for c in "ABCD" if not pd.isna(row[c])]
    hint = None if pd.isna(row["hint"]) else row["hint"]
    if style == "vlmevalkit":
        return ((f"Hint: {hint}\n" if hint else "") + f"Question: {row['question']}\nOptions:\n"
                + "".join(f"{c}. {t}\n" for c, t in opts)
                + "Please select the correct answer from the options above. \n")
    return ((f"{hint}\n" if hint else "") + row["question"]
            + "".join(f"\n{c}. {t}" for c, t in opts) + LLAVA_MCQ)


def test_answerer_on_mmbench(mmbench_tsv, capsys):
    frame = pd.read_csv(mmbench_tsv, sep="\t")
    images = {int(i): img for i, img in zip(frame["index"], frame["image"]) if len(img) > 64}
    loaders = {g: CountingImage(lambda b=b: Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB"))
               for g, b in images.items()}
    requests = []
    for n, row in frame.iterrows():
        g = int(row["index"]) % 1_000_000
        style = "vlmevalkit" if n % 2 == 0 else "llava"
        requests.append(Request(str(row["index"]), mcq_prompt(row, style), 0,
                                (InputImage(f"img{g}", loaders[g]),)))
    answers = ShapesAnswerer().answer(requests)
    hits = frame.assign(hit=[a == t for a, t in zip(answers, frame["answer"])])
    row_accuracy = float(hits["hit"].mean())
    circular = hits.groupby(hits["index"] % 1_000_000)["hit"].all()
    with capsys.disabled():
        print(f"\nshapes-answerer MMBench: {row_accuracy:.4f} of {len(hits)} rows, "
              f"{circular.mean():.4f} of {len(circular)} questions (circular)")
    assert len(circular) == 40 and row_accuracy >= 0.98 and circular.mean() >= 0.98
    assert all(loader.calls == 1 for loader in loaders.values())  # copies reuse the first look


def one_image(scene: Scene, size: int = 128) -> tuple[InputImage, ...]:
    image = render(scene, size=size)
    return (InputImage("hand", lambda: image),)


def test_answerer_on_hand_made_scene():
    scene = Scene((ShapeObject("circle", "red", 0.25, 0.3, 0.3),
                   ShapeObject("star", "blue", 0.75, 0.7, 0.3)), "beige_speckle", 7)
    model = ShapesAnswerer()
    asks = {
        "Is there a red circle in this image? Please answer yes or no.": "Yes",
        "Is there a blue circle in this image? Please answer yes or no.": "No",
        "Is the circle to the left of the star? Please answer yes or no.": "Yes",
        "Is the star above the circle? Please answer yes or no.": "No",
        "Is there only one star in the image?": "Yes",
        "Are there two stars in the image?" + LLAVA_MME: "No",
        "Is the star in this image blue? Please answer yes or no.": "Yes",
        "Question: What color is the circle in the image?\nOptions:\nA. blue\nB. red\n": "B",
        "What color is the circle in the image?\nA. blue\nB. green" + LLAVA_MCQ: "I don't know",
        "Where is the star located in the image?\nA. top-left\nB. bottom-right\nC. top-right": "B",
        "Which shape is to the left of the star?\nA. cross\nB. circle": "B",
        "What is the texture of the background?\nA. plain\nB. gradient\nC. speckled": "C",
        "What color is the background of the image?\nA. grey\nB. beige": "B",
        "What is the meaning of life?": "I don't know",
    }
    requests = [Request(str(n), q, 0, one_image(scene)) for n, q in enumerate(asks)]
    assert model.answer(requests) == list(asks.values())
    assert ShapesAnswerer(size=128).answer([Request("s", "Is there a star in this image?", 0,
                                                    one_image(scene, 96))]) == ["Yes"]
    assert model.answer([Request("n", "Is there a star in this image?", 0)]) == ["I don't know"]


def test_answerer_plugin_identity():
    assert registry.get("model", "shapes-answerer") is ShapesAnswerer
    model = ShapesAnswerer()
    assert model.capabilities == frozenset({"answer"})
    assert model.protocol["kind"] == "procedural"
    assert model.model_digest == ShapesAnswerer().model_digest
    assert re.fullmatch(r"[0-9a-f]{16}", model.model_digest)
    assert answerer_model.UNKNOWN == "I don't know"


# ------------------------------------------------------------------ the questions recipe (LLaVA)
def test_questions_recipe_exports_true_answers_about_its_own_images(tmp_path):
    from harness.dataset_formats import read_llava
    from harness.fileio import read_jsonl
    from harness.recipe import RecipeSpec
    from harness.synth import synthesize

    recipe = Path(__file__).resolve().parents[1] / "examples" / "shapes-questions-recipe.yaml"
    outcome = synthesize(RecipeSpec.load(recipe).with_overrides({"steps.0.params.count": 48}),
                         tmp_path / "qa", show_progress=False)
    conversations = read_llava(outcome.folder / "llava.json")
    rows = {row["id"]: row for _, row in read_jsonl(outcome.folder / "rows.jsonl")}
    assert len(conversations) == 48 and set(rows) == {c.id for c in conversations}
    answers = []
    for conversation in conversations:
        row = rows[conversation.id]
        (_, question), (_, answer) = conversation.turns
        scene = Scene.from_dict(row["scene"])
        assert question == f"<image>\n{row['question']}" and question.endswith(" Please answer yes or no.")
        # the answer is the truth on the scene graph (checked by this file's own rule) ...
        assert answer == ("Yes" if yes_no_truth(row["question"], scene) else "No"), row["question"]
        # ... about the image the conversation shows, which is that scene drawn
        with Image.open(conversation.image) as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(render(scene, 64)))
        answers.append(answer)
    assert 0.3 < answers.count("Yes") / len(answers) < 0.7  # either question of a scene, at even odds
    assert {row["task"] for row in rows.values()} == set(understanding.MME_SUBTASKS)
