"""ImgEdit-Bench (Basic) as a harness benchmark: edit each source image, have a chat judge grade it.

One request per item of ``basic_edit.json`` (the source image and the instruction, verbatim); the
edited image goes to ``RUN/edited/<key>.png``, the folder layout ``basic_bench.py`` reads. The judge
(role ``judge``, a ``chat`` plugin) gets one message per item in the official order: the type's
prompt with the instruction filled in, the original image, the edited image. Replies are parsed as
``step1_get_avgscore.py`` does, and ``RUN/edited/result.json`` is written in the official format,
with the step-1 and step-2 outputs beside it, so the official scripts can re-read a run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.imgedit.data import (EDIT_TYPES, KNOWN_PROMPT_FILES, EditItem, SourceImages, fill_prompt,
                                     load_edits, load_judge_prompts, prompts_content_hash)
from benchmarks.imgedit.rules import OfficialCrash, overall_score, parse_reply, type_means
from harness.benchmark import Benchmark, Column, ScoreScale
from harness.fileio import atomic_write_text
from harness.hashing import hash_file
from harness.images import load_image
from harness.judges.base import ChatPrompt, ChatReply
from harness.models.base import InputImage, Request
from harness.registry import register
from harness.schema import SampleRecord
from harness.seeds import sample_seed

BENCHMARK_NAME = "imgedit"
JUDGE_ROLE = "judge"
#: how many times one run asks the judge for a reply it can parse before calling the item a judge failure
REPLY_ATTEMPTS = 3


def has_score(text: str | None) -> bool:
    """True when the official step 1 finds a score in ``text`` (and would not stop on it)."""
    try:
        return bool(text) and parse_reply(text).item_score is not None
    except OfficialCrash:
        return False
OUTPUT_FOLDER = "edited"
RESULT_FILE = "result.json"  # basic_bench.py's output, in the folder of edited images
AVERAGE_FILE = "average_score.json"  # step 1's output (name from the upstream README)
TYPESCORE_FILE = "typescore.json"  # step 2's output (name from the upstream README)


@register("benchmark", BENCHMARK_NAME)
class ImgEdit(Benchmark):
    """ImgEdit-Bench Basic (PKU-YuanGroup/ImgEdit, ``Benchmark/Basic``): 737 edits of 9 types,
    graded 1-5 on three criteria by a GPT judge.

    Args:
        edits: path of ``basic_edit.json`` (the current file, ImgEdit b3eb8e7 or later).
        images: the source image root (the unpacked ``Benchmark.tar``); item ``id`` is relative to it.
        judge_prompts: path of ``prompts.json`` (one judge prompt per edit type).
    """

    capability = "edit"
    judge_roles = {JUDGE_ROLE: "chat"}
    version = "1"
    scoring_keys = frozenset({"judge_prompts_hash", "judge_prompts_release", "judge_call",
                              "judge_image_encoding", "parsing", "aggregation", "judge_failures", "scale"})
    card_only_keys = frozenset({"edits_file", "edits_content_hash", "edits_release", "items", "items_per_type"})
    breakdown = "types"
    headline_aggregation = "group_mean"  # type means, then their unweighted mean
    paired_test = "wilcoxon"  # 1-5 judge scores
    breakdown_range = (0.0, 5.0)
    scale_note = ("1-5 judge scale: overall = unweighted mean of the edit-type means (kept unrounded; "
                  "papers print 2 decimals); each type mean = mean of the item scores rounded to 2 decimals")
    published_scale = ScoreScale(1.0, 5.0, categories=EDIT_TYPES, headline_is_mean=True)
    leaderboard_order = 30
    leaderboard_columns = (Column("ImgEdit", "overall", 2, "1-5, judge-dependent"),)
    # Gate margin (reports/gate.py) for 737 edits, mean of 9 type means (23 to 117 edits a type):
    # assumed SD of one item's score between runs 0.7 (seed plus a judge sampled at the API's default
    # temperature): SE = sqrt(sum_t 2 x 0.49 / n_t) / 9 = 0.042, 3.29 SE = 0.137 -> 0.15.
    gate_margin = 0.15
    official_items = 737

    def __init__(self, edits: str, images: str, judge_prompts: str):
        self.edits = load_edits(edits)
        self.sources = SourceImages(images)
        self.prompts = load_judge_prompts(judge_prompts, {item.edit_type for item in self.edits.items})
        self.by_key: dict[str, EditItem] = {item.key: item for item in self.edits.items}
        self._protocol = self._build_protocol()

    def _build_protocol(self) -> dict[str, Any]:
        prompts_hash = prompts_content_hash(self.prompts)
        return {
            "edits_file": self.edits.path.name,
            "edits_content_hash": self.edits.content_hash,
            "edits_release": self.edits.release,
            "items": len(self.edits.items),
            "items_per_type": self.edits.per_type,
            "outputs_per_item": 1,
            "output_format": "png",
            "model_input": "the source image and the instruction verbatim",
            "judge_prompts_hash": prompts_hash,
            "judge_prompts_release": KNOWN_PROMPT_FILES.get(prompts_hash, "unknown (not an upstream release)"),
            "judge_call": "one user message: the type's prompt with <edit_prompt> replaced by the "
                          "instruction, then the original image, then the edited image",
            "judge_image_encoding": "both images re-encoded by PIL as PNG data URLs (official: the files' "
                                    "own bytes, the JPEG sources labelled image/png)",
            "parsing": "step1_get_avgscore.py: per line, strip, split on ': ', exactly 2 parts and "
                       "isdigit() -> int; item = round(mean, 2); replies without such a line dropped",
            "aggregation": "type = round(mean of item scores, 2) (step2_typescore.py); overall = "
                           "unweighted mean of the type means, unrounded",
            "judge_failures": "excluded from the means and counted (the official step 1 would crash)",
            "scale": "1-5",
        }

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        reasons = []
        if str(protocol.get("edits_release", "")).startswith("unknown"):
            reasons.append("basic_edit.json is not an upstream release (737 edits)")
        if str(protocol.get("judge_prompts_release", "")).startswith("unknown"):
            reasons.append("prompts.json is not the upstream judge prompts file")
        judge = protocol.get("judges", {}).get("judge", {})
        if judge.get("name") != "openai-compatible":  # which snapshot matches which table: see the baseline
            reasons.append(f"judge {judge.get('name')!r} is not a GPT-4o/GPT-4.1 snapshot")
        return reasons

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        requests = []
        for item in self.edits.items[:limit]:
            source = InputImage(self.sources.digest(item), lambda item=item: self.sources.load(item))
            requests.append(Request(
                sample_id=item.key, prompt=item.instruction, seed=sample_seed(run_seed, BENCHMARK_NAME, item.key),
                images=(source,), extra={"item_id": item.key, "group": item.edit_type}))
        return requests

    def output_path(self, request: Request) -> str:
        return f"{OUTPUT_FOLDER}/{request.sample_id}.png"

    def judge_item(self, request: Request) -> Any:
        item = self.by_key[request.sample_id]
        return {"key": item.key, "edit_type": item.edit_type, "instruction": item.instruction,
                "image_id": item.image_id, "source_digest": self.sources.digest(item)}

    def judge_prompt(self, item: EditItem, edited: Path) -> ChatPrompt:
        """Text first, then the original and the edited image (``basic_bench.py``'s order)."""
        return ChatPrompt(text=fill_prompt(self.prompts[item.edit_type], item.instruction),
                          images=(self.sources.load(item), load_image(edited)), images_after_text=True,
                          accept=has_score)

    def score(self, requests: Sequence[Request], output_paths: Sequence[Path],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        items = [self.by_key[request.sample_id] for request in requests]
        # images are read before any call, so an unreadable file costs no judge call
        prompts = [self.judge_prompt(item, Path(path)) for item, path in zip(items, output_paths, strict=True)]
        replies = list(judges[JUDGE_ROLE].ask(prompts))
        if len(replies) != len(prompts):
            raise RuntimeError(f"the judge returned {len(replies)} replies for {len(prompts)} prompts")
        # an empty or unreadable reply is a judge fault, not a verdict: asked again, a few times
        for _ in range(1, REPLY_ATTEMPTS):
            again = [i for i, reply in enumerate(replies) if reply.error is None and not has_score(reply.text)]
            if not again:
                break
            for index, reply in zip(again, judges[JUDGE_ROLE].ask([prompts[i] for i in again]), strict=True):
                replies[index] = reply
        return [self._record(request, item, Path(path), reply)
                for request, item, path, reply in zip(requests, items, output_paths, replies)]

    def _record(self, request: Request, item: EditItem, path: Path, reply: ChatReply) -> SampleRecord:
        verdict: dict[str, Any] = {"key": item.key, "edit_type": item.edit_type, "instruction": item.instruction,
                                   "image_id": item.image_id, "reply": reply.text, "judge_model": reply.model,
                                   "judge_attempts": reply.attempts}
        record = SampleRecord(sample_id=item.key, item_id=item.key, group=item.edit_type, seed=request.seed,
                              output_path=self.output_path(request), output_hash=hash_file(path),
                              score=None, correct=None, verdict=verdict)
        if reply.error is not None or reply.text is None:
            record.judge_failed = True
            record.failure = f"judge error after {reply.attempts} attempt(s): {reply.error or 'no reply text'}"
            verdict["error"] = record.failure
            return record
        try:
            parsed = parse_reply(reply.text)
        except OfficialCrash as exc:
            record.judge_failed, record.failure = True, str(exc)
            return record
        if parsed.item_score is None:  # empty, or no score line: a fault, retried on the next run
            record.judge_failed = True
            record.failure = (f"the judge's reply holds no '<name>: <digits>' line after {REPLY_ATTEMPTS} asks "
                              "(the official step 1 would drop the item)")
            verdict["error"] = record.failure
            return record
        verdict.update(kept_lines=list(parsed.kept_lines), scores=list(parsed.scores),
                       item_score=parsed.item_score, no_score=parsed.item_score is None)
        record.score = parsed.item_score
        record.rationale = "; ".join(parsed.kept_lines) + f" -> {parsed.item_score}"
        return record

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        # types come from the edit list, so a record the runner made for an exception counts too
        scored = [(self.by_key[r.sample_id].edit_type, r.score) for r in records
                  if not r.judge_failed and r.score is not None]
        means = type_means(scored)
        types = {name: means[name] for name in EDIT_TYPES if name in means}
        failed = sum(r.judge_failed for r in records)
        counts = {"items": len(records), "scored": len(scored), "no_score": len(records) - failed - len(scored),
                  "judge_failed": failed, "types_scored": len(types)}
        models = sorted({r.verdict["judge_model"] for r in records if r.verdict.get("judge_model")})
        return {"overall": overall_score(types), "types": types, "judge_models": models}, counts

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        folder = Path(run_dir) / OUTPUT_FOLDER
        results: dict[str, Any] = {}
        for record in records:
            reply = record.verdict.get("reply")
            results[record.sample_id] = reply if isinstance(reply, str) else {"error": record.failure or "no reply"}
        averages = {r.sample_id: r.score for r in records if not r.judge_failed and r.score is not None}
        typescores = type_means((self.by_key[key].edit_type, score) for key, score in averages.items())
        # as upstream's json.dump: ASCII escapes, no trailing newline
        atomic_write_text(folder / RESULT_FILE, json.dumps(results, indent=4))
        atomic_write_text(folder / AVERAGE_FILE, json.dumps(averages, indent=2))
        atomic_write_text(folder / TYPESCORE_FILE, json.dumps(typescores, indent=2))
        return [f"{OUTPUT_FOLDER}/{name}" for name in (RESULT_FILE, AVERAGE_FILE, TYPESCORE_FILE)]

