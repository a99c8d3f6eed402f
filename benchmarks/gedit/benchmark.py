"""GEdit-Bench as a harness benchmark: edit each source image, have a chat judge give VIEScore.

One request per row of the chosen language (and subset): the model edits the source image
(``input_image_raw``, resized as ``generate_image_example.py`` does) with the instruction verbatim;
the output goes to ``RUN/fullset/<task_type>/<language>/<key>.png``, upstream's layout. The judge
(role ``judge``, a ``chat`` plugin) gets VIEScore's two prompts per item (:mod:`.prompts`), asked
and re-asked as ``VIEScore.evaluate`` does (:mod:`.rules`); SC, PQ and O = sqrt(SC x PQ) are kept
per item, and the official averages are computed as ``calculate_statistics.py`` does. The official
score CSVs and the raw replies are written under ``RUN/<judge_format>/eval_results_new/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.gedit.data import MODEL_INPUTS, OFFICIAL_ITEMS, TASK_TYPES, GEditData, GEditItem
from benchmarks.gedit.prompts import JUDGE_FORMATS, judge_prompts, prompts_hash
from benchmarks.gedit.results import REPLIES_FILE, RESULTS_FOLDER, CsvRow, write_csvs, write_replies
from benchmarks.gedit.rules import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_ROUNDS, Judging, Row, averages, flat_scores
from harness import registry
from harness.benchmark import Benchmark, Column, ScoreScale
from harness.errors import HarnessError, InputError
from harness.hashing import hash_file
from harness.images import load_image
from harness.models.base import InputImage, Request
from harness.registry import register
from harness.schema import SampleRecord
from harness.seeds import sample_seed

BENCHMARK_NAME = "gedit"
JUDGE_ROLE = "judge"
OUTPUT_FOLDER = "fullset"
SUBSETS = ("full", "intersection")
#: what test_gedit_score.py's judges are asked with (model name prefix, decoding as sent)
OFFICIAL_JUDGES = {
    "gpt4o": ("gpt-4.1", {"temperature": None, "max_tokens": 1400}),
    "qwen25vl": ("qwen2.5-vl-72b", {"temperature": 0.0, "max_tokens": 512}),
}


@register("benchmark", BENCHMARK_NAME)
class GEdit(Benchmark):
    """GEdit-Bench (stepfun-ai/Step1X-Edit ``GEdit-Bench/``): 606 real-world edit instructions per
    language in 11 types, scored 0-10 by VIEScore with a multimodal judge.

    Args:
        data: a local copy of the Hugging Face dataset ``stepfun-ai/GEdit-Bench`` (a folder of
            parquet or arrow shards, or one shard).
        language: ``en`` or ``cn``.
        subset: ``full`` (every row; the intersection averages are reported too) or ``intersection``
            (only rows with ``Intersection_exist``; the headline is the intersection average).
        judge_format: upstream's ``--backbone``: ``gpt4o`` (text first, JPEG pixels; GPT-4.1) or
            ``qwen25vl`` (images first, PNG; Qwen2.5-VL-72B-Instruct-AWQ).
        model_input: ``example_512`` (``input_image_raw`` resized to about 512 x 512, as
            ``generate_image_example.py``) or ``raw``.
        max_attempts, max_rounds: where we stop re-asking (upstream never stops; see rules.py).
    """

    capability = "edit"
    judge_roles = {JUDGE_ROLE: "chat"}
    version = "1"
    scoring_keys = frozenset({"judge_format", "judge_prompts_hash", "judge_call", "judge_images", "parsing",
                              "reasks", "max_attempts", "max_rounds", "aggregation", "judge_failures", "scale"})
    card_only_keys = frozenset({"data_folder", "data_content_hash", "rows", "items", "items_per_type",
                                "duplicate_keys"})
    breakdown = "types"
    headline_aggregation = "group_mean"  # item O values -> type means -> their unweighted mean
    paired_test = "wilcoxon"
    breakdown_range = (0.0, 10.0)
    scale_note = ("VIEScore 0-10: per item O = sqrt(SC x PQ), SC = min of the two semantic scores, PQ = min of "
                  "the two quality scores; overall = unweighted mean of the 11 edit-type means (G_O)")
    published_scale = ScoreScale(0.0, 10.0, categories=TASK_TYPES, headline_is_mean=True,
                                 extra={"semantics": (0.0, 10.0), "quality": (0.0, 10.0)})
    leaderboard_order = 60  # after MMBench (the leaderboard test pins the columns up to MMBench)
    leaderboard_columns = (Column("GEdit G_O", "overall", 2, "0-10, judge-dependent"),
                           Column("GEdit G_SC", "semantics", 2, "0-10"), Column("GEdit G_PQ", "quality", 2, "0-10"))
    # Gate margin for 606 items, mean of 11 type means (40 to 99 items a type): assumed SD of one
    # item's O between runs 1.2 (seed plus a judge sampled at the API's default temperature): SE =
    # sqrt(sum_t 2 x 1.44 / n_t) / 11 = 0.098, 3.29 SE = 0.32 -> 0.3.
    gate_margin = 0.3
    official_items = OFFICIAL_ITEMS

    def __init__(self, data: str, language: str = "en", subset: str = "full", judge_format: str = "gpt4o",
                 model_input: str = "example_512", max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 max_rounds: int = DEFAULT_MAX_ROUNDS):
        for name, value, allowed in (("language", language, ("en", "cn")), ("subset", subset, SUBSETS),
                                     ("judge_format", judge_format, JUDGE_FORMATS),
                                     ("model_input", model_input, tuple(MODEL_INPUTS))):
            if value not in allowed:
                raise HarnessError(f"gedit: {name} {value!r} is not one of {', '.join(allowed)}")
        if max_attempts < 1 or max_rounds < 1:
            raise HarnessError("gedit: max_attempts and max_rounds must be at least 1")
        self.data = GEditData(data)
        self.language, self.subset, self.judge_format, self.model_input = language, subset, judge_format, model_input
        self.max_attempts, self.max_rounds = int(max_attempts), int(max_rounds)
        self.items: list[GEditItem] = self.data.select(language, subset)
        if not self.items:
            raise InputError(f"no {language} rows{' in the intersection subset' if subset == 'intersection' else ''}",
                             self.data.path)
        self.by_id = {item.sample_id: item for item in self.items}
        self._protocol = {
            "data_folder": self.data.path.name,
            "data_content_hash": self.data.content_hash,
            "rows": len(self.data.items),
            "items": len(self.items),
            "items_per_type": self.data.counts(self.items),
            "duplicate_keys": self.data.duplicates,
            "language": self.language,
            "subset": self.subset,
            "outputs_per_item": 1,
            "output_format": "png",
            "model_input": {"example_512": "input_image_raw resized to about 512x512 (multiples of 32, aspect kept; "
                                           "generate_image_example.py, PIL's default filter) and the instruction",
                            "raw": "input_image_raw as stored and the instruction"}[self.model_input],
            "judge_format": self.judge_format,
            "judge_prompts_hash": prompts_hash(),
            "judge_call": ("two calls per attempt: SC (prompt, original, edited) and PQ (prompt, edited); "
                           + ("text first (GPT4o backbone)" if self.judge_format == "gpt4o"
                              else "images first (Qwen25VL backbone)")),
            "judge_images": ("edited converted to RGB and resized to the original's size; "
                             + ("both EXIF-transposed, RGB, JPEG quality 75 and decoded, sent as PNG of those pixels"
                                if self.judge_format == "gpt4o" else "sent as PNG")),
            "parsing": "viescore mllm_output_to_dict (delimiters, braces, [a, b] list, bare 0-10 int, fix_json)",
            "reasks": "an unparsed reply re-asks both prompts; a failed evaluation (no score, bad value) starts again",
            "max_attempts": self.max_attempts,
            "max_rounds": self.max_rounds,
            "aggregation": "calculate_statistics.py: np.mean per type of SC, PQ and sqrt(SC x PQ); averages = np.mean "
                           "of the 11 type means",
            "judge_failures": "excluded and counted (upstream: an item failing every retry has no CSV row; a "
                              "re-asked reply without JSON would get a random score, here a failure)",
            "scale": "0-10",
        }

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        reasons = []
        if protocol.get("language") != "en":
            reasons.append(f"language {protocol.get('language')!r}: the published numbers here are GEdit-Bench-EN")
        if protocol.get("subset") != "full":
            reasons.append("the headline is the intersection subset; the published numbers are the full set")
        elif protocol.get("items") != OFFICIAL_ITEMS:
            reasons.append(f"{protocol.get('items')} items, not the {OFFICIAL_ITEMS} of the release")
        if str(protocol.get("model_input", "")).startswith("input_image_raw as stored"):
            reasons.append("model input not resized as generate_image_example.py does")
        judge = (protocol.get("judges") or {}).get(JUDGE_ROLE) or {}
        if judge.get("name") != "openai-compatible":
            reasons.append(f"judge {judge.get('name')!r} is not a model behind the openai-compatible judge")
            return reasons
        prefix, decoding = OFFICIAL_JUDGES.get(protocol.get("judge_format"), ("", {}))
        params = judge.get("params") or {}
        model = str(params.get("model", ""))
        if prefix and prefix not in model.lower():
            reasons.append(f"judge model {model!r}: test_gedit_score.py --backbone {protocol.get('judge_format')} "
                           f"asks {prefix}*")
        sent = registry.effective_params("chat", str(judge.get("name")), params, only=decoding)
        if sent != decoding:
            reasons.append(f"judge decoding {sent}, upstream sends {decoding} (None: not sent)")
        return reasons

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        transform = MODEL_INPUTS[self.model_input]
        requests = []
        for item in self.items[:limit]:
            source = InputImage(self.data.digest(item, "input_image_raw"),
                                lambda item=item: transform(self.data.image(item, "input_image_raw")))
            requests.append(Request(
                sample_id=item.sample_id, prompt=item.instruction,
                seed=sample_seed(run_seed, BENCHMARK_NAME, item.sample_id), images=(source,),
                extra={"item_id": item.sample_id, "group": item.task_type}))
        return requests

    def output_path(self, request: Request) -> str:
        return f"{OUTPUT_FOLDER}/{request.sample_id}.png"

    def judge_item(self, request: Request) -> Any:
        item = self.by_id[request.sample_id]
        return {"sample_id": item.sample_id, "task_type": item.task_type, "instruction": item.instruction,
                "language": item.language, "intersection": item.intersection,
                "original_digest": self.data.digest(item, "input_image")}

    def score(self, requests: Sequence[Request], output_paths: Sequence[Path],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        items = [self.by_id[request.sample_id] for request in requests]
        prompts = []
        for item, path in zip(items, output_paths, strict=True):  # every image read before any call
            edited = load_image(path)
            prompts.append(judge_prompts(item.instruction, self.data.image(item, "input_image"), edited,
                                         self.judge_format))
        judgings = [Judging(self.max_attempts, self.max_rounds) for _ in items]
        models: list[set[str]] = [set() for _ in items]
        pending = list(range(len(items)))
        while pending:
            asked = [prompt for i in pending for prompt in prompts[i]]
            replies = judges[JUDGE_ROLE].ask(asked)
            if len(replies) != len(asked):
                raise RuntimeError(f"the judge returned {len(replies)} replies for {len(asked)} prompts")
            for n, i in enumerate(pending):
                sc, pq = replies[2 * n], replies[2 * n + 1]
                models[i].update(reply.model for reply in (sc, pq) if reply.model)
                broken = [(name, reply) for name, reply in (("SC", sc), ("PQ", pq))
                          if reply.error is not None or reply.text is None]
                if broken:
                    judgings[i].error("; ".join(f"{name} call failed after {reply.attempts} attempt(s): "
                                                f"{reply.error or 'no reply text'}" for name, reply in broken))
                else:
                    judgings[i].feed(sc.text, pq.text)
            pending = [i for i in pending if not judgings[i].finished]
        return [self._record(request, item, Path(path), judging, sorted(model_set))
                for request, item, path, judging, model_set in zip(requests, items, output_paths, judgings, models)]

    def _record(self, request: Request, item: GEditItem, path: Path, judging: Judging,
                models: list[str]) -> SampleRecord:
        verdict: dict[str, Any] = {
            "sample_id": item.sample_id, "task_type": item.task_type, "key": item.key,
            "instruction": item.instruction, "language": item.language, "intersection": item.intersection,
            "calls": judging.calls, "notes": judging.notes, "judge_models": models,
            "judge_model": models[0] if models else None}
        record = SampleRecord(sample_id=item.sample_id, item_id=item.sample_id, group=item.task_type,
                              seed=request.seed, output_path=self.output_path(request), output_hash=hash_file(path),
                              score=None, correct=None, verdict=verdict)
        if judging.scores is None:
            record.judge_failed, record.failure = True, judging.failure
            verdict["error"] = judging.failure
            return record
        semantics, quality, overall = judging.scores
        verdict.update(semantics=semantics, quality=quality, overall=overall)
        record.score = overall
        record.rationale = f"SC {semantics}, PQ {quality} -> O {overall:.3f}" + (
            f" ({len(judging.calls)} attempts)" if len(judging.calls) > 1 else "")
        return record

    def _rows(self, records: Sequence[SampleRecord]) -> list[Row]:
        return [Row(self.by_id[r.sample_id].task_type, r.verdict["semantics"], r.verdict["quality"],
                    self.by_id[r.sample_id].intersection, self.language)
                for r in records if not r.judge_failed and r.score is not None]

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        rows = self._rows(records)
        parts = averages(rows, self.language, TASK_TYPES)
        headline = parts["full" if self.subset == "full" else "intersection"]
        scores = flat_scores(headline)
        if self.subset == "full":
            scores["intersection"] = flat_scores(parts["intersection"])
        scores["judge_models"] = sorted({m for r in records for m in r.verdict.get("judge_models", [])})
        failed = sum(r.judge_failed for r in records)
        counts = {"items": len(records), "scored": len(rows), "judge_failed": failed,
                  "types_scored": headline["types_scored"],
                  "reasked": sum(len(r.verdict.get("calls", [])) > 1 for r in records)}
        return scores, counts

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        folder = Path(run_dir) / self.judge_format / RESULTS_FOLDER
        rows, replies = [], []
        for record in records:
            item = self.by_id[record.sample_id]
            base = f"{OUTPUT_FOLDER}/{item.task_type}/{item.language}/{item.key}"
            if not record.judge_failed and record.score is not None:
                rows.append(CsvRow(item.task_type, f"{base}_SRCIMG.png", record.output_path, item.instruction,
                                   record.verdict["semantics"], record.verdict["quality"], item.intersection,
                                   item.language))
            entry = {"sample_id": item.sample_id, "task_type": item.task_type, "key": item.key,
                     "instruction": item.instruction, "instruction_language": item.language,
                     "intersection_exist": item.intersection, "calls": record.verdict.get("calls", [])}
            if record.judge_failed:
                entry["error"] = record.failure
            replies.append(entry)
        written = write_csvs(folder, rows)
        write_replies(folder / REPLIES_FILE, replies)
        return [str(path.relative_to(run_dir)) for path in written] + [
            f"{self.judge_format}/{RESULTS_FOLDER}/{REPLIES_FILE}"]
