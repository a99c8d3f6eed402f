"""MME as a harness benchmark: one answer per question, the official parsing, official scores.

Each question is one request (the image, then the question text). Answers are scored exactly as
``calculation.py`` would score the results files this run writes (``RUN/mme_results/<subtask>.txt``),
so in-run numbers equal ``harness rescore mme RUN/mme_results`` to the last digit (add
``--present-only`` for a run on a subset of the 14 subtasks).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from benchmarks.mme import results_io
from benchmarks.mme.data import COGNITION, GROUP_OF, PERCEPTION, RELEASE_IMAGES, SUBTASKS, MMEItem, load_items
from benchmarks.mme.rules import parse_answer, score_subtask, summarize_subtasks
from harness.benchmark import Benchmark, Column, ScoreScale
from harness.errors import InputError
from harness.hashing import hash_bytes, hash_value
from harness.models.base import InputImage, Request
from harness.registry import register
from harness.schema import SampleRecord
from harness.seeds import sample_seed

BENCHMARK_NAME = "mme"
OFFICIAL_SUFFIX = "Please answer yes or no."
LLAVA_SUFFIX = "\nAnswer the question using a single word or phrase."
#: how the question text becomes the prompt (the adapter adds its chat template and the image)
PROMPT_SUFFIXES = {
    "none": "the question as given (it ends with 'Please answer yes or no.'): the official protocol",
    "llava": "LLaVA-1.5/ShareGPT4V llava_mme.jsonl: the trailing 'Please answer yes or no.' removed "
             "(with the spaces before it), then '\\nAnswer the question using a single word or phrase.'",
}


def build_prompt(question: str, prompt_suffix: str) -> str:
    if prompt_suffix == "none":
        return question
    if question.endswith(OFFICIAL_SUFFIX):
        question = question[:-len(OFFICIAL_SUFFIX)].rstrip()
    return question + LLAVA_SUFFIX


@register("benchmark", BENCHMARK_NAME)
class MME(Benchmark):
    """MME (BradyFU/Awesome-Multimodal-Large-Language-Models, Evaluation branch): 14 yes/no subtasks.

    Args:
        data: the release folder (``MME_Benchmark_release_version`` or its parent) or the hub's
            parquet (a file or a folder of shards).
        eval_tool: optional ``eval_tool`` folder (or its ``Your_Results``) whose question lists fix
            the order; without it images are sorted by name, Yes question first (the same order).
        prompt_suffix: ``"none"`` (official) or ``"llava"`` (see ``PROMPT_SUFFIXES``).
        subtasks: evaluate only these subtasks (each must be in ``data``); default: every subtask
            the data holds (a warning names the absent ones; the protocol card lists them).
    """

    capability = "answer"
    judge_roles: Mapping[str, str] = {}
    version = "1"
    scoring_keys = frozenset({"answer_line", "parsing", "aggregation"})
    card_only_keys = frozenset({"data_hash", "data_layout", "subtasks", "images", "questions", "complete_release"})
    breakdown = "subtasks"
    headline_aggregation = "group_sum"  # subtask scores, summed
    paired_test = "mcnemar"  # each question is right or wrong
    breakdown_range = (0.0, 200.0)
    scale_note = ("MME points: subtask = 100*acc + 100*acc+ (max 200); overall = perception "
                  "(10 subtasks, max 2000) + cognition (4 subtasks, max 800), over the subtasks present")
    published_scale = ScoreScale(0.0, 2800.0, categories=SUBTASKS,
                                 extra={"perception": (0.0, 2000.0), "cognition": (0.0, 800.0)},
                                 part_range=(0.0, 200.0), sums={"overall": ("perception", "cognition")})
    leaderboard_order = 40
    leaderboard_columns = (Column("MME-P", "perception", 2, "0-2000"), Column("MME-C", "cognition", 2, "0-800"))
    # Gate margin (reports/gate.py) for 1187 images, 20 to 200 a subtask. Greedy decoding leaves no
    # seed noise, so the assumption is about the candidate: it disagrees with the baseline on 10% of
    # images by one question, half each way; on the image value 100 x share right + 100 x both right
    # that is 200 <-> 50 or 50 <-> 0, taken as the larger, +-150: SE = sqrt(sum_s 0.1 x 150^2 / n_s)
    # = 29, 3.29 SE = 96 -> 100 (the small 20-image subtasks dominate).
    gate_margin = 100.0
    official_items = 1187

    def __init__(self, data: str, eval_tool: str | None = None, prompt_suffix: str = "none",
                 subtasks: str | Iterable[str] | None = None):
        if prompt_suffix not in PROMPT_SUFFIXES:
            raise InputError(f"mme: prompt_suffix must be one of {sorted(PROMPT_SUFFIXES)}, got {prompt_suffix!r}")
        self.prompt_suffix = prompt_suffix
        self.layout, self.items = load_items(data, subtasks, eval_tool)
        self.by_id: dict[str, MMEItem] = {item.item_id: item for item in self.items}
        self._protocol = self._build_protocol()
        absent = [name for name in SUBTASKS if name not in self._protocol["subtasks"]]
        if subtasks is None and absent:
            print(f"mme: the data holds {14 - len(absent)} of the 14 subtasks (absent: {', '.join(absent)}); "
                  "perception and cognition totals cover only those present", file=sys.stderr)

    def _build_protocol(self) -> dict[str, Any]:
        subtasks = list(dict.fromkeys(item.subtask for item in self.items))
        images = {name: sum(item.subtask == name for item in self.items) for name in subtasks}
        content = [[item.subtask, item.image, item.digest, [[q.question, q.gt] for q in item.questions]]
                   for item in self.items]
        return {
            "data_hash": hash_value(sorted(content)),  # content only: the order changes no number
            "data_layout": self.layout,
            "subtasks": subtasks,
            "images": sum(images.values()),
            "questions": 2 * sum(images.values()),
            "complete_release": subtasks == list(SUBTASKS) and images == RELEASE_IMAGES,
            "answers_per_question": 1,
            "prompt_suffix": self.prompt_suffix,
            "prompt_template_hash": hash_value([self.prompt_suffix, PROMPT_SUFFIXES[self.prompt_suffix]]),
            "answer_line": "CR and LF deleted, tabs turned into spaces, nothing else",
            "parsing": "calculation.py parse_pred_ans: lower-case, exact yes/no, else first 4 characters",
            "aggregation": "score = acc*100 + acc_plus*100 per subtask; perception, cognition = group sums",
        }

    @classmethod
    def score_groups(cls) -> dict[str, frozenset[str]]:
        return {"perception": frozenset(PERCEPTION), "cognition": frozenset(COGNITION)}

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        if protocol.get("complete_release"):
            return []
        return [f"not the complete MME release ({len(protocol.get('subtasks', []))} of 14 subtasks, "
                f"{protocol.get('images')} images)"]

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        """Two requests per image (Yes question, then No question); ``limit`` keeps N images."""
        requests = []
        for item in self.items[:limit]:
            image = InputImage(digest=item.digest, load=item.load)
            for index, question in enumerate(item.questions):
                sample_id = f"{item.item_id}/{index}"
                requests.append(Request(
                    sample_id=sample_id, prompt=build_prompt(question.question, self.prompt_suffix),
                    seed=sample_seed(run_seed, BENCHMARK_NAME, sample_id), images=(image,),
                    extra={"item_id": item.item_id, "group": item.subtask, "subtask": item.subtask,
                           "image": item.image, "question": question.question, "gt": question.gt}))
        return requests

    def judge_item(self, request: Request) -> Any:
        extra = request.extra
        return {"subtask": extra["subtask"], "image": extra["image"], "question": extra["question"],
                "gt": extra["gt"]}

    def score(self, requests: Sequence[Request], outputs: Sequence[str],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        records = []
        for request, answer in zip(requests, outputs, strict=True):
            if not isinstance(answer, str):
                raise TypeError(f"expected a text answer, got {type(answer).__name__}")
            extra = request.extra
            written = results_io.one_line(answer)
            label = parse_answer(written + "\n")  # the field as calculation.py reads it back
            correct = label == extra["gt"].lower()
            records.append(SampleRecord(
                sample_id=request.sample_id, item_id=extra["item_id"], group=extra["subtask"],
                seed=request.seed, output_path="", output_hash=hash_bytes(answer.encode("utf-8")),
                score=1.0 if correct else 0.0, correct=correct,
                rationale=f"official rule reads {label!r}; ground truth {extra['gt']}",
                verdict={"subtask": extra["subtask"], "image": extra["image"],
                         "question": extra["question"], "gt": extra["gt"], "answer_line": written,
                         "label": label},
                output_text=answer))
        return records

    def _scored_items(self, records: Sequence[SampleRecord]) -> dict[str, list[list[SampleRecord]]]:
        """Records by subtask, as per-image pairs in request order; an image with a judge failure
        (or only one question, under a partial run) is left out whole, so pairs stay aligned."""
        by_item: dict[str, list[SampleRecord]] = {}
        for record in records:
            by_item.setdefault(record.item_id, []).append(record)
        by_subtask: dict[str, list[list[SampleRecord]]] = {}
        for pair in by_item.values():
            if len(pair) == 2 and not any(record.judge_failed for record in pair):
                by_subtask.setdefault(pair[0].verdict["subtask"], []).append(pair)
        return by_subtask

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        scores = {}
        for subtask, pairs in self._scored_items(records).items():
            rows = [record.verdict for pair in pairs for record in pair]
            scores[subtask] = score_subtask([row["gt"] for row in rows], [row["label"] for row in rows])
        summary = summarize_subtasks(scores)
        failed = sum(record.judge_failed for record in records)
        counts = {"samples": len(records), "scored": sum(s.questions for s in scores.values()),
                  "judge_failed": failed,
                  "images": sum(s.images for s in scores.values()), "subtasks": len(scores),
                  "other": sum(s.other for s in scores.values()),
                  "perception_subtasks": sum(GROUP_OF[name] == "perception" for name in scores),
                  "cognition_subtasks": sum(GROUP_OF[name] == "cognition" for name in scores)}
        return summary, counts

    def item_scores(self, records: Sequence[SampleRecord]) -> dict[str, tuple[str, float]]:
        """Per image: 100 * (share of its two questions right) + 100 * (both right), whose mean over
        a subtask's images is the subtask score (acc over questions, acc+ over images)."""
        values = {}
        for subtask, pairs in self._scored_items(records).items():
            for pair in pairs:
                right = [record.verdict["label"] == record.verdict["gt"].lower() for record in pair]
                values[pair[0].item_id] = (subtask, 100.0 * sum(right) / len(right) + 100.0 * all(right))
        return values

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        """``mme_results/<subtask>.txt`` per scored subtask, rows in request order."""
        written = []
        for subtask, pairs in self._scored_items(records).items():
            relative = f"{results_io.RESULTS_DIR}/{subtask}.txt"
            rows = [(r.verdict["image"], r.verdict["question"], r.verdict["gt"], r.output_text or "")
                    for pair in pairs for r in pair]
            results_io.write_results_file(Path(run_dir) / relative, rows)
            written.append(relative)
        return written
