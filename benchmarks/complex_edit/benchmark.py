"""Complex-Edit as a harness benchmark: one complexity level of one image set, judged as ``eval.py``.

One request per row of ``test_real`` or ``test_syn``: the source image and the level's compound
instruction; the output goes to ``RUN/complexity_<c>_<type>/<index:05d>.png`` (GPT-Image-Edit's
layout). The judge (role ``judge``, a ``chat`` plugin) is asked ``measurements`` times per item for
the alignment scores (instruction following, identity preservation) and as many times for the
perceptual quality (:mod:`.prompts`), with upstream's structured-output schema as each call's
``response_format`` by default; replies are validated as the SDK validates them (:mod:`.rules`).
``eval.py``'s per-sample files and means are written beside the images.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.complex_edit.data import IMAGE_TYPES, LEVELS, ComplexEditData, ComplexEditItem
from benchmarks.complex_edit.prompts import (DEFAULT_REPLY_FORMAT, REPLY_FORMATS, UPSTREAM_RESPONSE_FORMATS_HASH,
                                             alignment_prompt, load_prompts, quality_prompt, response_formats_hash,
                                             response_formats_sdk)
from benchmarks.complex_edit.results import (REPLIES_FILE, output_folder, write_finals, write_replies,
                                             write_sample_files)
from benchmarks.complex_edit.rules import (ALIGNMENT_KEYS, DEFAULT_MEASUREMENTS, METRICS, QUALITY_KEYS,
                                           Measurements, item_means, level_means, read_reply)
from harness import registry
from harness.benchmark import Benchmark, Column, ScoreScale
from harness.errors import HarnessError
from harness.hashing import hash_file
from harness.images import load_image
from harness.models.base import InputImage, Request
from harness.registry import register
from harness.schema import SampleRecord
from harness.seeds import sample_seed

BENCHMARK_NAME = "complex_edit"
JUDGE_ROLE = "judge"
#: eval.py's judge call: model and decoding (completion_retry) and the image detail (encode_msgs)
OFFICIAL_JUDGE = ("gpt-4o-2024-11-20", {"temperature": 1.0, "max_tokens": 512, "image_detail": "high"})
PUBLISHED_SETUP = (8, "real")  # every published number in reports/published.yaml


@register("benchmark", BENCHMARK_NAME)
class ComplexEdit(Benchmark):
    """Complex-Edit (UCSC-VLAA/Complex-Edit): compound edit instructions at complexity levels C1-C8,
    scored 0-10 by GPT-4o for instruction following (IF), identity preservation (IP) and perceptual
    quality (PQ); overall = their mean.

    Args:
        data: a local copy of the Hugging Face dataset ``UCSC-VLAA/Complex-Edit``.
        prompts: a checkout of github.com/UCSC-VLAA/Complex-Edit (the judge prompts are read from
            ``complex_edit/eval/prompt_{alignment,quality}.py``; not shipped: no license stated).
        image_type: ``real`` or ``syn`` (the split ``test_<image_type>``).
        complexity: the level, 1-8 (``eval.py -c``; GPT-Image-Edit reports 8).
        measurements: judge replies averaged per item and metric (``eval.py -n``, default 20;
            GPT-Image-Edit's README runs ``-n 2``).
        reply_format: ``structured`` (default: upstream's ``response_format`` on each call, as the
            OpenAI SDK sends it), ``json_in_prompt`` (no ``response_format``; the schema's keys said
            in the system prompt) or ``none`` (upstream's text only); the last two are departures.
        max_invalid: invalid replies tolerated per item and metric before a judge failure
            (default: ``measurements``; upstream retries without end).
    """

    capability = "edit"
    judge_roles = {JUDGE_ROLE: "chat"}
    version = "1"
    scoring_keys = frozenset({"judge_prompts_hash", "judge_prompts_release", "reply_format", "response_formats",
                              "judge_call", "measurements", "call_size", "max_invalid", "parsing", "aggregation",
                              "judge_failures", "scale"})
    card_only_keys = frozenset({"data_folder", "data_content_hash", "items"})
    breakdown = "metrics"
    headline_aggregation = "pooled"  # the mean of the item overalls
    paired_test = "wilcoxon"
    breakdown_range = (0.0, 10.0)
    scale_note = ("0-10: per item, the means of n judge replies for instruction following, identity preservation "
                  "and perceptual quality; overall = their mean, averaged over items")
    published_scale = ScoreScale(0.0, 10.0, categories=METRICS, headline_is_mean=True)
    leaderboard_order = 61  # after GEdit-Bench
    leaderboard_columns = (Column("Complex-Edit", "overall", 2, "0-10, judge-dependent"),)
    # Gate margin for one level of about 500 items: assumed SD of one item's overall between runs 1.0
    # (the model's seed; 20 judge replies average most judge noise away): SE = sqrt(2 / 500) = 0.063,
    # 3.29 SE = 0.21 -> 0.2. The split sizes are not stated upstream, so no official item count.
    gate_margin = 0.2

    def __init__(self, data: str, prompts: str, image_type: str = "real", complexity: int = 8,
                 measurements: int = DEFAULT_MEASUREMENTS, reply_format: str = DEFAULT_REPLY_FORMAT,
                 max_invalid: int | None = None):
        if image_type not in IMAGE_TYPES:
            raise HarnessError(f"complex_edit: image_type {image_type!r} is not one of {', '.join(IMAGE_TYPES)}")
        if complexity not in LEVELS:
            raise HarnessError(f"complex_edit: complexity {complexity!r} is not a level 1-8")
        if reply_format not in REPLY_FORMATS:
            raise HarnessError(f"complex_edit: reply_format {reply_format!r} is not one of {', '.join(REPLY_FORMATS)}")
        if measurements < 1 or (max_invalid is not None and max_invalid < 0):
            raise HarnessError("complex_edit: measurements must be at least 1 and max_invalid at least 0")
        self.data = ComplexEditData(data, image_type)
        self.prompts = load_prompts(prompts)
        self.image_type, self.complexity, self.measurements = image_type, int(complexity), int(measurements)
        self.reply_format = reply_format
        self.max_invalid = self.measurements if max_invalid is None else int(max_invalid)
        self.by_id = {item.sample_id: item for item in self.data.items}
        self.folder = output_folder(self.complexity, self.image_type)
        self._protocol = {
            "data_folder": self.data.path.name,
            "data_content_hash": self.data.content_hash,
            "items": len(self.data.items),
            "split": self.data.split,
            "complexity": self.complexity,
            "outputs_per_item": 1,
            "output_format": "png",
            "model_input": "the split's image as stored and edit.compound[complexity - 1].compound_instruction",
            "judge_prompts_hash": self.prompts.content_hash,
            "judge_prompts_release": self.prompts.release,
            "reply_format": self.reply_format,
            **({"response_formats": f"CoTAlignment, PerceptualQuality as the OpenAI SDK builds them "
                                    f"({response_formats_sdk()}; {response_formats_hash()})"}
               if self.reply_format == "structured" else {}),
            "judge_call": _judge_call(self.reply_format),
            "measurements": self.measurements,
            "call_size": 1,
            "max_invalid": self.max_invalid,
            "parsing": "pydantic-equivalent: a JSON object with the scores as strings '0'..'10' (reasoning a string for "
                       "alignment); an invalid reply is asked again",
            "aggregation": "item: mean of n per metric, overall = (IF + IP + PQ) / 3; level: mean over items",
            "judge_failures": "excluded and counted (an API error, or more than max_invalid invalid replies)",
            "scale": "0-10",
        }

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        reasons = []
        if protocol.get("reply_format") != "structured":
            reasons.append(f"no structured output (response_format) requested; reply format: "
                           f"{protocol.get('reply_format')}")
        elif UPSTREAM_RESPONSE_FORMATS_HASH not in str(protocol.get("response_formats", "")):
            reasons.append(f"response_format objects {protocol.get('response_formats')!r} are not the ones eval.py's "
                           f"SDK sends ({UPSTREAM_RESPONSE_FORMATS_HASH})")
        if str(protocol.get("judge_prompts_release", "")).startswith("unknown"):
            reasons.append("judge prompts are not upstream's prompt_alignment.py / prompt_quality.py")
        if (protocol.get("complexity"), str(protocol.get("split", "")).removeprefix("test_")) != PUBLISHED_SETUP:
            reasons.append(f"C{protocol.get('complexity')} {protocol.get('split')}: the published numbers here are "
                           f"C{PUBLISHED_SETUP[0]} test_{PUBLISHED_SETUP[1]}")
        judge = (protocol.get("judges") or {}).get(JUDGE_ROLE) or {}
        if judge.get("name") != "openai-compatible":
            reasons.append(f"judge {judge.get('name')!r} is not a model behind the openai-compatible judge")
            return reasons
        params = judge.get("params") or {}
        model, decoding = OFFICIAL_JUDGE
        if params.get("model") != model:
            reasons.append(f"judge model {params.get('model')!r}, eval.py asks {model}")
        sent = registry.effective_params("chat", str(judge.get("name")), params, only=decoding)
        if sent != decoding:
            reasons.append(f"judge decoding {sent}, eval.py sends {decoding}")
        return reasons

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        requests = []
        for item in self.data.items[:limit]:
            source = InputImage(self.data.digest(item), lambda item=item: self.data.image(item))
            requests.append(Request(
                sample_id=item.sample_id, prompt=item.instructions[self.complexity - 1],
                seed=sample_seed(run_seed, BENCHMARK_NAME, item.sample_id), images=(source,),
                extra={"item_id": item.sample_id, "group": f"C{self.complexity}"}))
        return requests

    def output_path(self, request: Request) -> str:
        return f"{self.folder}/{request.sample_id}.png"

    def judge_item(self, request: Request) -> Any:
        item = self.by_id[request.sample_id]
        return {"sample_id": item.sample_id, "instruction": item.instructions[self.complexity - 1],
                "complexity": self.complexity, "source_digest": self.data.digest(item)}

    def score(self, requests: Sequence[Request], output_paths: Sequence[Path],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        items = [self.by_id[request.sample_id] for request in requests]
        prompts = []
        for item, path in zip(items, output_paths, strict=True):  # every image read before any call
            edited = load_image(path)
            instruction = item.instructions[self.complexity - 1]
            prompts.append({"alignment": alignment_prompt(self.prompts, instruction, self.data.image(item), edited,
                                                          self.reply_format),
                            "quality": quality_prompt(self.prompts, edited, self.reply_format)})
        spec = {"alignment": (ALIGNMENT_KEYS, True), "quality": (QUALITY_KEYS, False)}
        collected = [{kind: Measurements(keys, reasoning, self.measurements) for kind, (keys, reasoning) in spec.items()}
                     for _ in items]
        raw: list[dict[str, list[str]]] = [{"alignment": [], "quality": []} for _ in items]
        failures: list[str | None] = [None] * len(items)
        models: list[set[str]] = [set() for _ in items]
        pending = [(i, kind) for i in range(len(items)) for kind in spec]
        while pending:
            owners = [(i, kind) for i, kind in pending for _ in range(self.measurements - len(collected[i][kind].runs))]
            replies = judges[JUDGE_ROLE].ask([prompts[i][kind] for i, kind in owners])
            if len(replies) != len(owners):
                raise RuntimeError(f"the judge returned {len(replies)} replies for {len(owners)} prompts")
            for (i, kind), reply in zip(owners, replies):
                if failures[i] is not None:
                    continue
                if reply.model:
                    models[i].add(reply.model)
                if reply.error is not None or reply.text is None:
                    failures[i] = (f"judge error ({kind}) after {reply.attempts} attempt(s): "
                                   f"{reply.error or 'no reply text'}")
                    continue
                raw[i][kind].append(reply.text)
                group = collected[i][kind]
                value = read_reply(reply.text, group.keys, group.reasoning)
                if value is None:
                    group.invalid.append(reply.text)
                    if len(group.invalid) > self.max_invalid:
                        failures[i] = (f"{len(group.invalid)} {kind} replies that are not a valid JSON object of "
                                       f"{', '.join(group.keys)} (max_invalid {self.max_invalid}); upstream retries")
                    continue
                run = ({"reasoning": _reasoning(reply.text)} if group.reasoning else {}) | value
                group.runs.append(run)
            pending = [(i, kind) for i, kind in pending if failures[i] is None and not collected[i][kind].complete]
        return [self._record(request, item, Path(path), collected[n], raw[n], failures[n], sorted(models[n]))
                for n, (request, item, path) in enumerate(zip(requests, items, output_paths))]

    def _record(self, request: Request, item: ComplexEditItem, path: Path, groups: Mapping[str, Measurements],
                raw: Mapping[str, list[str]], failure: str | None, models: list[str]) -> SampleRecord:
        verdict: dict[str, Any] = {
            "sample_id": item.sample_id, "instruction": item.instructions[self.complexity - 1],
            "complexity": self.complexity, "replies": dict(raw), "judge_models": models,
            "judge_model": models[0] if models else None,
            "invalid_replies": sum(len(group.invalid) for group in groups.values())}
        record = SampleRecord(sample_id=item.sample_id, item_id=item.sample_id, group=f"C{self.complexity}",
                              seed=request.seed, output_path=self.output_path(request), output_hash=hash_file(path),
                              score=None, correct=None, verdict=verdict)
        if failure is not None:
            record.judge_failed, record.failure = True, failure
            verdict["error"] = failure
            return record
        alignment, quality = groups["alignment"].means(), groups["quality"].means()
        means = item_means(alignment, quality)
        verdict.update(alignment_runs=groups["alignment"].runs, quality_runs=groups["quality"].runs, **means)
        record.score = means["overall"]
        record.rationale = (f"IF {means['instruction_following']:.2f}, IP {means['identity_preservation']:.2f}, "
                            f"PQ {means['perceptual_quality']:.2f} -> {means['overall']:.2f} "
                            f"(means of {self.measurements})")
        return record

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        scored = [r for r in records if not r.judge_failed and r.score is not None]
        means = level_means([{key: r.verdict[key] for key in (*METRICS, "overall")} for r in scored])
        scores: dict[str, Any] = {"overall": None if means is None else means["overall"],
                                  **{key: None if means is None else means[key] for key in METRICS},
                                  "metrics": {} if means is None else {key: means[key] for key in METRICS},
                                  "level": f"C{self.complexity}", "image_type": self.image_type,
                                  "judge_models": sorted({m for r in records for m in r.verdict.get("judge_models", [])})}
        counts = {"items": len(records), "scored": len(scored), "judge_failed": sum(r.judge_failed for r in records),
                  "invalid_replies": sum(r.verdict.get("invalid_replies", 0) for r in records)}
        return scores, counts

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        folder = Path(run_dir) / self.folder
        scored = []
        for record in records:
            if record.judge_failed or record.score is None:
                continue
            verdict = record.verdict
            write_sample_files(folder, record.sample_id, verdict["instruction"], verdict["alignment_runs"],
                               verdict, [dict(run) for run in verdict["quality_runs"]], verdict, verdict)
            scored.append({key: verdict[key] for key in (*METRICS, "overall")})
        written = []
        means = level_means(scored)
        if means is not None:
            write_finals(folder, means)
            written = [f"{self.folder}/{sub}/final_result.json" for sub in
                       ("alignment_rubric_cot", "quality_rubric", "overall")]
        write_replies(folder / REPLIES_FILE, [
            {"sample_id": r.sample_id, "instruction": r.verdict["instruction"], "measurements": self.measurements,
             "alignment": r.verdict["replies"]["alignment"], "quality": r.verdict["replies"]["quality"],
             **({"error": r.failure} if r.judge_failed else {})} for r in records])
        return written + [f"{self.folder}/{REPLIES_FILE}"]


def _reasoning(text: str) -> str:
    return json.loads(text)["reasoning"]


def _judge_call(reply_format: str) -> str:
    """The two calls as sent, for the card."""
    schema = {"structured": "response_format: upstream's strict json_schema (CoTAlignment, PerceptualQuality)",
              "json_in_prompt": "no response_format; the schema's keys said in a sentence after each system prompt",
              "none": "no response_format; upstream's text only"}[reply_format]
    return ("alignment: system (rubric + CoT line), user: input image, output image, template; quality: system "
            f"(rubric, no instruction), user: output image only; {schema}; each measurement one call (n=1; eval.py "
            "asks n=5 per call: independent draws of the same prompt at temperature 1.0 either way)")
