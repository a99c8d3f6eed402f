"""MMBench as a harness benchmark: one request per circular pass, CircularEval over the records.

Each pass (a TSV row, or a pass generated on the fly) is one request with the question image; the
answer is read by the rules, then by the optional ``choice_extractor`` chat judge (PROTOCOLS.md 5.4),
pass by pass so judgements cache per pass. ``summarize`` groups the passes into questions
(CircularEval) and reports VLMEvalKit's ``report_acc`` numbers on the 0-1 scale.
"""
from __future__ import annotations

import re

from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.mmbench import official_io
from benchmarks.mmbench.circular import (L2_ABBREVIATIONS, PassOutcome, accuracy_rows, aggregate,
                                         question_outcomes)
from benchmarks.mmbench.data import MMBenchRow, load_mmbench
from benchmarks.mmbench.extract import DEFAULT_RULE_VERSION, rules_for
from benchmarks.mmbench.matching import (MAX_JUDGE_ATTEMPTS, ChoiceItem, check_fallback_mode,
                                         extract_choices)
from benchmarks.mmbench.prompts import (LANGS, PROMPT_STYLES, judge_prompt, llava_options, llava_prompt,
                                        vlmevalkit_prompt)
from benchmarks.mmbench.tables import as_read_back
from harness.benchmark import Benchmark, Column, ScoreScale
from harness.errors import InputError
from harness.hashing import hash_bytes, hash_value
from harness.models.base import InputImage, Request
from harness.registry import register
from harness.schema import SampleRecord
from harness.seeds import sample_seed

#: questions in the official splits (dev, test; EN and CN alike), PROTOCOLS.md 5.1
OFFICIAL_QUESTION_COUNTS = (1164, 1784)
OFFICIAL_FILE_NAME = re.compile(r"(?i)^(mmbench_(dev|test)_en[\w.-]*|mmbench_(dev|test)_20\d{6})\.(tsv|xlsx)$")
BENCHMARK_NAME = "mmbench"
JUDGE_ROLE = "choice_extractor"


def build_prompt(row: MMBenchRow, style: str, lang: str = "auto") -> str:
    if style == "llava":
        return llava_prompt(row.question, row.hint, llava_options(row.cells), lang)
    return vlmevalkit_prompt(row.question, row.hint, row.options)


def pass_item(row: MMBenchRow, prediction: str, seed: int) -> ChoiceItem:
    """What the extractor reads: upstream scores the answer as read back from its prediction file."""
    return ChoiceItem(row.question, row.options, as_read_back(prediction), seed)


@register("benchmark", BENCHMARK_NAME)
class MMBench(Benchmark):
    """MMBench (open-compass/MMBench), scored as VLMEvalKit e8e78f0 does.

    Args:
        data: a VLMEvalKit or legacy MMBench TSV (with answers: a dev split).
        prompt_style: ``"vlmevalkit"`` (default) or ``"llava"``.
        circular: ``"auto"`` (the file's circular copies, else passes generated on the fly) or
            ``"off"`` (main rows only).
        rule_version: the answer-extraction rules, ``"2026-06-17"`` (current) and older
            (see ``extract.RULE_VERSIONS``).
        judge_fallback: after three unreadable judge replies, ``"seeded"`` (a seeded random
            choice, flagged and counted) or ``"fail"`` (a judge failure).
        lang: suffix language of the llava prompt: ``"auto"`` (by the question), ``"en"``, ``"cn"``.
        lenient_cells: read every cell of the TSV as its text instead of with pandas' default types
            (upstream's reading, where a numeric option column with a blank reads "4.0"); not the
            official reading (docs/MMBENCH.md).
    """

    capability = "answer"
    judge_roles = {JUDGE_ROLE: "chat"}
    optional_judge_roles = frozenset({JUDGE_ROLE})
    version = "1"
    scoring_keys = frozenset({"rule_version", "rule_commit", "judge_prompt_hash", "judge_attempts",
                              "judge_fallback", "scoring", "aggregation", "scale"})
    # cell_reading changes the prompts and options, which are in the cache keys themselves
    card_only_keys = frozenset({"data_file", "data_hash", "questions", "passes", "options_without_answer", "circular",
                                "cell_reading"})
    breakdown = "l2"
    paired_test = "mcnemar"  # each question is a hit or not
    pass_fail_unit = "item"  # a question (all its circular passes), not a pass
    scale_note = "0-1 (papers multiply by 100): CircularEval accuracy over questions; bars show L2 categories"
    published_scale = ScoreScale(0.0, 1.0)
    leaderboard_order = 50
    leaderboard_columns = (Column("MMBench", "overall", 3, "0-1, papers print x100"),)
    # Gate margin (reports/gate.py) for dev EN, 1164 questions, a CircularEval hit per question: as
    # for MME, 10% of questions discordant: SE = sqrt(0.1 / 1164) = 0.0093, 3.29 SE = 0.0305 -> 0.035.
    gate_margin = 0.035
    official_items = 1164

    def __init__(self, data: str, prompt_style: str = "vlmevalkit", circular: str = "auto",
                 rule_version: str = DEFAULT_RULE_VERSION, judge_fallback: str = "seeded", lang: str = "auto",
                 lenient_cells: bool = False):
        if prompt_style not in PROMPT_STYLES:
            raise InputError(f"mmbench: prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
        if lang not in LANGS:
            raise InputError(f"mmbench: lang must be one of {LANGS}, got {lang!r}")
        self.rules = rules_for(rule_version)
        self.judge_fallback = check_fallback_mode(judge_fallback)
        if not isinstance(lenient_cells, bool):
            raise InputError(f"mmbench: lenient_cells must be true or false, got {lenient_cells!r}")
        self.prompt_style, self.lang = prompt_style, lang
        self.cell_reading = "text" if lenient_cells else "pandas"
        self.data = load_mmbench(data, circular, self.cell_reading)
        self.rows = {str(row.index): row for row in self.data.passes}
        self._protocol = self._build_protocol()

    def _build_protocol(self) -> dict[str, Any]:
        if self.prompt_style == "vlmevalkit":
            template = [vlmevalkit_prompt("{question}", "{hint}", {"A": "{A}", "B": "{B}"})]
        else:
            template = [llava_prompt("{question}", "{hint}", ["{A}", "{B}"], lang) for lang in ("en", "cn")]
        return {
            "data_file": self.data.path.name,
            "data_hash": self.data.data_hash,
            "questions": len(self.data.questions),
            "passes": len(self.data.passes),
            "circular": self.data.circular,
            "cell_reading": self.cell_reading,
            "options_without_answer": self.data.options_without_answer,
            "prompt_style": self.prompt_style,
            "prompt_template_hash": hash_value(template),
            "lang": self.lang if self.prompt_style == "llava" else None,
            "rule_version": self.rules.name,
            "rule_commit": self.rules.commit,
            "judge_prompt_hash": hash_value([judge_prompt("{q}", {"A": "{a}"}, "{p}"),
                                             judge_prompt("{q}中", {"A": "{a}"}, "{p}")]),
            "judge_attempts": MAX_JUDGE_ATTEMPTS,
            "judge_fallback": self.judge_fallback,
            "scoring": "CircularEval: a question counts only if every pass is right",
            "aggregation": "overall = mean hit over questions (question-weighted), per split; "
                           "L2/L3 = mean hit per l2-category / category",
            "scale": "0-1",
        }

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        reasons = []
        if protocol.get("questions") not in OFFICIAL_QUESTION_COUNTS:
            reasons.append(f"{protocol.get('questions')} questions: not an official MMBench split "
                           f"(dev {OFFICIAL_QUESTION_COUNTS[0]}, test {OFFICIAL_QUESTION_COUNTS[1]})")
        name = str(protocol.get("data_file", ""))
        # no official file is shipped here to hash, so the name is the evidence: the published EN
        # numbers come from the dev EN files (VLMEvalKit's MMBench_DEV_EN*, LLaVA's mmbench_dev_2023*)
        if not OFFICIAL_FILE_NAME.match(name):
            reasons.append(f"data file {name!r} is not an official MMBench EN dev/test TSV by name")
        if protocol.get("cell_reading", "pandas") != "pandas":
            reasons.append("cells read as text (lenient_cells); upstream reads the TSV with pandas' default "
                           "types, where a numeric option column with a blank reads '4.0'")
        if protocol.get("circular") == "off":
            reasons.append("circular: off (single-pass accuracy; published numbers are CircularEval)")
        if not protocol.get("judges"):
            reasons.append("no LLM choice extractor: exact matching is a lower bound of the official scoring")
        return reasons

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        requests = []
        for passes in self.data.questions[:limit]:
            for row in passes:
                sample_id = str(row.index)
                requests.append(Request(
                    sample_id=sample_id, prompt=build_prompt(row, self.prompt_style, self.lang),
                    seed=sample_seed(run_seed, BENCHMARK_NAME, sample_id),
                    images=(InputImage(row.image_digest, row.load_image),),
                    extra={"item_id": str(row.g_index), "group": row.l2_category or ""}))
        return requests

    def judge_item(self, request: Request) -> Any:
        row = self.rows[request.sample_id]
        return {"index": row.index, "question": row.question, "options": row.options, "answer": row.answer,
                "split": row.split, "category": row.category, "l2_category": row.l2_category}

    def score(self, requests: Sequence[Request], outputs: Sequence[str],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        rows = [self.rows[request.sample_id] for request in requests]
        items = [pass_item(row, answer, request.seed)
                 for row, answer, request in zip(rows, outputs, requests, strict=True)]
        get_judge = (lambda: judges[JUDGE_ROLE]) if JUDGE_ROLE in judges else None
        choices = extract_choices(items, get_judge, self.rules, self.judge_fallback)
        records = []
        for request, row, answer, choice in zip(requests, rows, outputs, choices, strict=True):
            correct = None if choice.judge_failed else choice.letter == row.answer
            verdict = {"index": row.index, "g_index": row.g_index, "pass": row.pass_number,
                       "question": request.prompt,
                       "split": row.split, "category": row.category, "l2_category": row.l2_category,
                       "answer": row.answer, "prediction": choice.letter, "method": choice.method,
                       "fallback": choice.method == "fallback", "judge_attempts": choice.attempts,
                       "judge_replies": choice.replies, "judge_model": choice.judge_model}
            records.append(SampleRecord(
                sample_id=request.sample_id, item_id=str(row.g_index), group=row.l2_category or "",
                seed=request.seed, output_path="", output_hash=hash_bytes(answer.encode("utf-8")),
                score=None if correct is None else float(correct), correct=correct,
                rationale=_rationale(choice.letter, choice.method, row.answer), verdict=verdict,
                judge_failed=choice.judge_failed, failure=choice.failure, output_text=answer,
                provisional=choice.method == "fallback"))
        return records

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        return aggregate(self.outcomes(records))

    @staticmethod
    def breakdown_key_of_group(group: str) -> str:
        return L2_ABBREVIATIONS.get(group, group)

    def item_scores(self, records: Sequence[SampleRecord]) -> dict[str, tuple[str, float]]:
        """Per question: its CircularEval hit (1 or 0); questions a judge failure decides are left out."""
        questions, _ = question_outcomes(self.outcomes(records))
        return {str(q.g_index): (q.l2_category or "", float(q.hit)) for q in questions if q.hit is not None}

    def outcomes(self, records: Sequence[SampleRecord]) -> list[PassOutcome]:
        """Pass outcomes; the question's metadata comes from the data, so a record the runner made
        for a scoring exception (no verdict) still counts as a judge failure of its question."""
        passes = []
        for record in records:
            row = self.rows[record.sample_id]
            passes.append(PassOutcome(index=row.index, split=row.split, category=row.category,
                                      l2_category=row.l2_category,
                                      correct=None if record.judge_failed else bool(record.correct),
                                      fallback=bool(record.verdict.get("fallback")), g_index=row.g_index))
        return passes

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        run_dir = Path(run_dir)
        passes = [{**self.rows[r.sample_id].cells, "prediction": r.output_text} for r in records]
        columns = official_io.ordered_columns([*self.data.columns, "prediction"], passes)
        official_io.write_table(run_dir / official_io.PREDICTIONS_FILE, columns, passes)
        pass_outcomes = self.outcomes(records)
        by_question: dict[str, list[SampleRecord]] = {}
        for record in records:
            by_question.setdefault(record.item_id, []).append(record)
        hits = {str(q.g_index): q.hit for q in question_outcomes(pass_outcomes)[0]}
        main_rows = []
        for g_index, group in by_question.items():
            main = next((r for r in group if r.sample_id == g_index), None)
            if main is not None:
                log = "; ".join(_pass_log(self.rows[r.sample_id], r)
                                for r in sorted(group, key=lambda r: self.rows[r.sample_id].index))
                main_rows.append({**self.rows[g_index].cells, "prediction": main.output_text,
                                  "hit": hits.get(g_index), "log": log})
        official_io.write_table(run_dir / official_io.RESULT_FILE, [*columns, "hit", "log"], main_rows)
        official_io.write_accuracy(run_dir / official_io.ACC_FILE, accuracy_rows(pass_outcomes))
        return [official_io.PREDICTIONS_FILE, official_io.RESULT_FILE, official_io.ACC_FILE]


def _rationale(letter: str | None, method: str, answer: str) -> str:
    if not method:
        return "the choice extractor failed"
    read = f"read {letter} ({method})" if letter else "no option matched (exact matching)"
    return f"{read}; answer {answer}"


def _pass_log(row: MMBenchRow, record: SampleRecord) -> str:
    verdict = record.verdict
    state = "judge failed" if record.judge_failed else f"{verdict['prediction']} via {verdict['method']}"
    return f"pass {row.pass_number}: {state}, answer {row.answer}"


