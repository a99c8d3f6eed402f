"""MME data: the 14 subtasks, and loaders for the official release folder and the hub's parquet.

An item is one image of one subtask with its two questions, ground truth "Yes" first, then "No".
Image names repeat across subtasks (``0001.png`` is in four of them), so items are keyed by
``(subtask, image)`` and identified as ``"subtask/image"``.

Layouts read (the user gives the path; nothing is downloaded or vendored):

- the official release ``MME_Benchmark_release_version/<subtask>/``: either ``images/`` plus
  ``questions_answers_YN/`` (artwork, celebrity, landmark, posters, scene) or image files and
  ``.txt`` files side by side; the txt with the image's stem holds ``question<TAB>Yes|No`` lines;
- the parquet layout of the Hugging Face hub (``lmms-lab/MME``): one file or a folder of shards with
  columns ``question_id``, ``image`` ({bytes, path}), ``question``, ``answer``, ``category``.

Order: the official ``eval_tool/Your_Results/<subtask>.txt`` lists when given (checked against the
data); otherwise images sorted by name (Python string order) with the Yes question first, which
is the order of those lists.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from PIL import Image, UnidentifiedImageError

from harness.errors import InputError
from harness.hashing import hash_bytes

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
              "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
#: official order (calculation.py): perception subtasks, then cognition subtasks
SUBTASKS = PERCEPTION + COGNITION
GROUP_OF = {**{name: "perception" for name in PERCEPTION}, **{name: "cognition" for name in COGNITION}}
#: images per subtask in the full release (PROTOCOLS 4.1); two questions each
RELEASE_IMAGES = {"existence": 30, "count": 30, "position": 30, "color": 30, "posters": 147,
                  "celebrity": 170, "scene": 200, "landmark": 200, "artwork": 200, "OCR": 20,
                  "commonsense_reasoning": 70, "numerical_calculation": 20, "text_translation": 20,
                  "code_reasoning": 20}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
GROUND_TRUTHS = ("Yes", "No")


@dataclass(frozen=True)
class MMEQuestion:
    question: str
    gt: str  # "Yes" or "No"


@dataclass(frozen=True)
class MMEItem:
    """One image of one subtask and its two questions (Yes first)."""

    subtask: str
    image: str  # file name, as in the official results files
    questions: tuple[MMEQuestion, MMEQuestion]
    digest: str  # hash of the image file's bytes
    load: Callable[[], Image.Image] = field(compare=False, repr=False)
    source: str = field(default="", compare=False)  # where the questions came from, for messages

    @property
    def item_id(self) -> str:
        return f"{self.subtask}/{self.image}"

    @property
    def group(self) -> str:
        return GROUP_OF[self.subtask]


def select_subtasks(subtasks: str | Iterable[str] | None) -> tuple[str, ...]:
    """The requested subtasks in the official order (all 14 when None); unknown names fail."""
    if subtasks is None:
        return SUBTASKS
    names = [subtasks] if isinstance(subtasks, str) else list(subtasks)
    unknown = [name for name in names if name not in SUBTASKS]
    if unknown:
        raise InputError(f"unknown MME subtask(s) {unknown}; known: {', '.join(SUBTASKS)}")
    if not names:
        raise InputError("MME: the list of subtasks is empty")
    return tuple(name for name in SUBTASKS if name in names)


def open_rgb(data: bytes | Path, where: str | Path) -> Image.Image:
    """Decode an image to RGB, as LLaVA and lmms-eval do (``convert("RGB")``, no EXIF rotation)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as handle:
            handle.load()
            return handle.convert("RGB")
    except FileNotFoundError:
        raise InputError("image file not found", where) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"corrupt or unreadable image ({exc})", where) from None


def _file_loader(path: Path) -> Callable[[], Image.Image]:
    return lambda: open_rgb(path, path)


def _bytes_loader(data: bytes, where: str) -> Callable[[], Image.Image]:
    return lambda: open_rgb(data, where)


def load_items(data: str | Path, subtasks: str | Iterable[str] | None = None,
               eval_tool: str | Path | None = None) -> tuple[str, list[MMEItem]]:
    """Read the MME data at ``data``; return (layout name, items in order).

    ``subtasks`` None means every subtask the data holds (at least one); named subtasks must all
    be present. Items come subtask by subtask in the official order, within a subtask in the order
    of the eval_tool lists or sorted by image name.
    """
    names = select_subtasks(subtasks)
    root = Path(data)
    if not root.exists():
        raise InputError("MME data not found", root)
    shards = _parquet_files(root)
    if shards:
        layout, found = "parquet", load_parquet(shards, names)
    else:
        layout, found = "release", load_release(_release_root(root), names)
    if subtasks is None:
        names = tuple(name for name in names if found.get(name))
        if not names:
            raise InputError(f"no MME subtask data here (expected folders or categories named "
                             f"{', '.join(SUBTASKS)})", root)
    missing = [name for name in names if not found.get(name)]
    if missing:
        raise InputError(f"no data for MME subtask(s) {missing}", root)
    items = []
    for name in names:
        by_image = found[name]
        if eval_tool is not None:
            items += order_by_list(by_image, question_list_file(eval_tool, name))
        else:
            items += [by_image[image] for image in sorted(by_image)]
    return layout, items


def _parquet_files(root: Path) -> list[Path]:
    if root.is_file():
        if root.suffix != ".parquet":
            raise InputError("expected a .parquet file or a folder (release layout or parquet shards)", root)
        return [root]
    return sorted(root.rglob("*.parquet"))


def _release_root(root: Path) -> Path:
    """Accept the release folder itself or a folder holding ``MME_Benchmark_release_version``."""
    inner = root / "MME_Benchmark_release_version"
    return inner if inner.is_dir() else root


# ---------------------------------------------------------------------------- release layout

def load_release(root: Path, names: Sequence[str]) -> dict[str, dict[str, MMEItem]]:
    found: dict[str, dict[str, MMEItem]] = {}
    for name in names:
        folder = root / name
        if not folder.is_dir():
            continue
        if (folder / "images").is_dir():
            image_dir, qa_dir = folder / "images", folder / "questions_answers_YN"
            if not qa_dir.is_dir():
                raise InputError("has images/ but no questions_answers_YN/", folder)
        else:
            image_dir = qa_dir = folder
        images = _images_by_stem(image_dir)
        items = {}
        for txt in sorted(qa_dir.glob("*.txt")):
            image_path = images.get(txt.stem)
            if image_path is None:
                raise InputError(f"no image named {txt.stem}.* in {image_dir}", txt)
            questions = read_question_pair(txt)
            data = image_path.read_bytes()
            items[image_path.name] = MMEItem(name, image_path.name, questions, hash_bytes(data),
                                             _file_loader(image_path), str(txt))
        found[name] = items
    return found


def _images_by_stem(folder: Path) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            if path.stem in images:
                raise InputError(f"two images with the stem {path.stem!r} ({images[path.stem].name}, "
                                 f"{path.name}): which one the questions are about is ambiguous", folder)
            images[path.stem] = path
    return images


def read_question_pair(txt: Path) -> tuple[MMEQuestion, MMEQuestion]:
    """The two ``question<TAB>Yes|No`` lines of a release question file (Yes first)."""
    questions = []
    with open(txt, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()  # as LLaVA's converter reads these files
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise InputError(f"expected 'question<TAB>Yes|No', got {len(fields)} tab-separated "
                                 "field(s)", txt, number)
            questions.append((MMEQuestion(fields[0], _ground_truth(fields[1], txt, number)), number))
    return _check_pair(questions, txt)


def _ground_truth(value: str, where: str | Path, line: int | None) -> str:
    gt = value.strip().capitalize()
    if gt not in GROUND_TRUTHS:
        raise InputError(f"ground truth must be Yes or No, got {value!r}", where, line)
    return gt


def _check_pair(questions: list[tuple[MMEQuestion, int]], where: str | Path) -> tuple[MMEQuestion, MMEQuestion]:
    """Exactly two questions, ground truth Yes then No (true of every official file)."""
    if len(questions) != 2:
        line = questions[2][1] if len(questions) > 2 else (questions[-1][1] if questions else None)
        raise InputError(f"expected exactly 2 questions for the image, found {len(questions)}", where, line)
    for (question, number), expected in zip(questions, GROUND_TRUTHS):
        if question.gt != expected:
            raise InputError(f"expected ground truth {expected} here (the Yes question comes first, "
                             f"then the No question), got {question.gt}", where, number)
    return questions[0][0], questions[1][0]


# ---------------------------------------------------------------------------- parquet layout

PARQUET_COLUMNS = ("question_id", "image", "question", "answer", "category")


def load_parquet(shards: Sequence[Path], names: Sequence[str]) -> dict[str, dict[str, MMEItem]]:
    """Rows grouped by (category, image); each group must hold one Yes and one No question."""
    import pyarrow.parquet as pq

    groups: dict[tuple[str, str], list[tuple[MMEQuestion, int, bytes, Path]]] = {}
    for shard in shards:
        try:
            table = pq.ParquetFile(shard)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
            raise InputError(f"not a readable parquet file ({exc})", shard) from None
        columns = table.schema_arrow.names
        lacking = [c for c in ("image", "question", "answer", "category") if c not in columns]
        if lacking:
            raise InputError(f"parquet file lacks column(s) {lacking} (has {columns})", shard)
        wanted = [c for c in PARQUET_COLUMNS if c in columns]
        for row_number, row in _rows(table, wanted):
            category = row["category"]
            if category not in SUBTASKS:
                raise InputError(f"row {row_number}: unknown category {category!r}", shard, row_number)
            if category not in names:
                continue
            data, image = _row_image(row, shard, row_number)
            question = row["question"]
            if not isinstance(question, str) or "\t" in question or "\n" in question or "\r" in question:
                raise InputError(f"row {row_number}: question must be one line of text without tabs",
                                 shard, row_number)
            entry = (MMEQuestion(question, _ground_truth(str(row["answer"]), shard, row_number)),
                     row_number, data, shard)
            groups.setdefault((category, image), []).append(entry)
    found: dict[str, dict[str, MMEItem]] = {}
    for (category, image), rows in groups.items():
        found.setdefault(category, {})[image] = _parquet_item(category, image, rows)
    return found


def _rows(table, columns: list[str]) -> Iterator[tuple[int, dict]]:
    number = 0
    for batch in table.iter_batches(batch_size=64, columns=columns):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _row_image(row: dict, shard: Path, number: int) -> tuple[bytes, str]:
    """(image bytes, image file name); the name is the last part of question_id
    (``artwork/images/10002.jpg`` -> ``10002.jpg``), else of the image's stored path."""
    value = row["image"]
    data, path = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
    if not isinstance(data, bytes) or not data:
        raise InputError(f"row {number}: the image has no embedded bytes", shard, number)
    question_id = row.get("question_id")
    name = None
    for candidate in (question_id, path):
        if isinstance(candidate, str) and candidate.strip():
            name = candidate.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
            break
    if not name or "\t" in name:
        raise InputError(f"row {number}: cannot tell the image name (question_id {question_id!r}, "
                         f"image path {path!r})", shard, number)
    return data, name


def _parquet_item(category: str, image: str, rows: list) -> MMEItem:
    first_shard, first_row = rows[0][3], rows[0][1]
    if len(rows) != 2:
        raise InputError(f"image {category}/{image} has {len(rows)} question row(s); MME has exactly 2 "
                         "per image", rows[-1][3], rows[-1][1])
    rows = sorted(rows, key=lambda entry: GROUND_TRUTHS.index(entry[0].gt))  # the Yes question first
    if [entry[0].gt for entry in rows] != list(GROUND_TRUTHS):
        raise InputError(f"image {category}/{image} needs one Yes and one No question, both are "
                         f"{rows[0][0].gt}", rows[1][3], rows[1][1])
    digests = {hash_bytes(entry[2]) for entry in rows}
    if len(digests) != 1:
        raise InputError(f"the two rows of image {category}/{image} hold different image bytes",
                         rows[1][3], rows[1][1])
    where = f"{first_shard} row {first_row}"
    return MMEItem(category, image, (rows[0][0], rows[1][0]), digests.pop(),
                   _bytes_loader(rows[0][2], where), where)


# ---------------------------------------------------------------------------- official order

def question_list_file(eval_tool: str | Path, subtask: str) -> Path:
    """``<eval_tool>/Your_Results/<subtask>.txt`` (or ``<eval_tool>/<subtask>.txt``)."""
    root = Path(eval_tool)
    for candidate in (root / "Your_Results" / f"{subtask}.txt", root / f"{subtask}.txt"):
        if candidate.is_file():
            return candidate
    raise InputError(f"no question list for subtask {subtask!r} (expected Your_Results/{subtask}.txt)", root)


def order_by_list(by_image: dict[str, MMEItem], list_file: Path) -> list[MMEItem]:
    """Items in the order of an official question list, which must match the data exactly."""
    rows: list[tuple[str, MMEQuestion, int]] = []
    with open(list_file, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) not in (3, 4):  # a filled-in results file has a 4th field: ignored
                raise InputError(f"expected 'image<TAB>question<TAB>GT', got {len(fields)} field(s)",
                                 list_file, number)
            rows.append((fields[0], MMEQuestion(fields[1], _ground_truth(fields[2], list_file, number)), number))
    ordered = []
    for start in range(0, len(rows), 2):
        pair = rows[start:start + 2]
        image, number = pair[0][0], pair[0][2]
        if len(pair) == 2 and pair[1][0] != image:
            raise InputError(f"lines {number} and {pair[1][2]} name different images ({image}, "
                             f"{pair[1][0]}); each image has two consecutive lines", list_file, pair[1][2])
        _check_pair([(question, line) for _, question, line in pair], list_file)
        item = by_image.get(image)
        if item is None:
            raise InputError(f"image {image!r} is not in the data", list_file, number)
        for (_, question, line), expected in zip(pair, item.questions):
            if question != expected:
                raise InputError(f"question differs from the data ({item.source}): list has "
                                 f"{question.question!r} {question.gt}, data has {expected.question!r} "
                                 f"{expected.gt}", list_file, line)
        ordered.append(item)
    listed = {item.image for item in ordered}
    if len(listed) != len(ordered):
        raise InputError("an image is listed twice", list_file)
    unlisted = sorted(set(by_image) - listed)
    if unlisted:
        raise InputError(f"{len(unlisted)} image(s) of the data are not in the list, e.g. {unlisted[:3]}",
                         list_file)
    return ordered
