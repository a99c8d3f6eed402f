"""MMBench's LLM choice extractor and an API answering model over HTTP, against a loopback
OpenAI-compatible server started by the test, with injected faults."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from harness.models.base import Request
from harness.registry import register
from harness.runner import evaluate, load_records
from shapes.answerer_model import ShapesAnswerer
from shapes.understanding import write_mme_shapes
from shapes.understanding_mmbench import write_mmbench_shapes
from harness.spec import ComponentSpec, RunSpec
from harness.testing.fake_openai import Fault, FakeOpenAIServer

JUDGE_MODEL = "fake-judge-2024-07-18"
UNREADABLE = "Hmm, hard to say."


@register("model", "test-verbose-shapes-answerer")
class VerboseAnswerer(ShapesAnswerer):
    """Right answers, phrased so that no rule can read them: only the LLM extractor can."""

    def answer(self, requests: list[Request]) -> list[str]:
        return [f"my choice is option number {ord(letter) - ord('A') + 1}"
                for letter in super().answer(requests)]


def judge_replies(body: dict, script: dict[int, object] | None = None) -> object:
    """The fake judge: reads "option number N" from the answer it is shown and says the letter.
    ``script`` maps N to a Fault or a fixed reply instead."""
    text = body["messages"][-1]["content"]
    text = text if isinstance(text, str) else " ".join(p.get("text", "") for p in text)
    number = int(re.findall(r"Answer: my choice is option number (\d)", text)[-1])
    if script and number in script:
        return script[number]
    return "ABCD"[number - 1]


@pytest.fixture(scope="module")
def tsv(tmp_path_factory):
    return write_mmbench_shapes(tmp_path_factory.mktemp("data") / "shapes.tsv", questions=8, seed=3, size=96)


def _spec(tsv, base_url, **judge):
    params = {"base_url": base_url, "model": JUDGE_MODEL, "max_retries": 3, "timeout_s": 2.0,
              "backoff_s": 0.01, "backoff_max_s": 0.05, **judge}
    return RunSpec(benchmark=ComponentSpec("mmbench", {"data": str(tsv)}),
                   model=ComponentSpec("test-verbose-shapes-answerer"),
                   judges={"choice_extractor": ComponentSpec("openai-compatible", params)})


def _questions_with_answer_at(tsv, number: int) -> int:
    """Questions having a pass whose right option is number ``number`` (from the TSV, by hand)."""
    table = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    letter = "ABCD"[number - 1]
    groups = {int(i) % 1_000_000 for i, a in zip(table["index"], table["answer"]) if a == letter}
    return len(groups)


def test_the_llm_extractor_reads_what_rules_cannot_and_survives_transient_faults(tmp_path, tsv):
    faults = [Fault.rate_limited("0"), Fault.server_error(500), Fault.slow(3.0), Fault.malformed_json(),
              Fault.missing_choices()]
    with FakeOpenAIServer(judge_replies, faults=faults, served_model=JUDGE_MODEL) as server:
        outcome = evaluate(_spec(tsv, server.base_url), tmp_path / "run", show_progress=False)
        calls = len(server.requests)
    passes = len(load_records(tmp_path / "run"))
    assert calls == passes + len(faults)  # each fault cost exactly one retry
    summary = outcome.summary
    assert summary.scores["overall"] == 1.0
    assert summary.counts["judge_failed"] == 0 and summary.counts["random_fallbacks"] == 0
    usage = summary.usage["judge:choice_extractor"]
    assert usage["retries"] == len(faults) and usage["failures"] == 0 and usage["models"] == [JUDGE_MODEL]
    assert all(r.verdict["method"] == "llm" for r in load_records(tmp_path / "run"))

    # without the judge the same answers match no rule: exact matching scores every question wrong
    plain = RunSpec(benchmark=ComponentSpec("mmbench", {"data": str(tsv)}),
                    model=ComponentSpec("test-verbose-shapes-answerer"))
    assert evaluate(plain, tmp_path / "plain", show_progress=False).summary.scores["overall"] == 0.0


def test_a_judge_that_keeps_failing_gives_judge_failures_never_wrong_answers(tmp_path, tsv):
    # every call about an answer "option number 4" fails: only 4-option questions have such a pass
    script = {4: Fault.server_error(500)}
    with FakeOpenAIServer(lambda body: judge_replies(body, script), served_model=JUDGE_MODEL) as server:
        outcome = evaluate(_spec(tsv, server.base_url), tmp_path / "run", show_progress=False)
    records = load_records(tmp_path / "run")
    failed = [r for r in records if r.judge_failed]
    assert failed and all(r.score is None and r.correct is None for r in failed)
    assert all("500" in r.failure for r in failed)
    assert not any(r.correct is False for r in records)  # nothing silently scored as wrong
    expected_failed_questions = _questions_with_answer_at(tsv, 4)
    assert 0 < expected_failed_questions < 8
    assert outcome.summary.counts["judge_failed"] == expected_failed_questions
    assert outcome.summary.counts["scored"] == 8 - expected_failed_questions
    assert outcome.summary.scores["overall"] == 1.0  # the rest are right

    # the server recovers, at another address: only the failed passes are asked again
    with FakeOpenAIServer(judge_replies, served_model=JUDGE_MODEL) as server:
        again = evaluate(_spec(tsv, server.base_url), tmp_path / "run2", cache_dir=tmp_path / "run" / "cache",
                         show_progress=False)
        assert len(server.requests) == len(failed)
    assert again.summary.counts["judge_failed"] == 0 and again.generated == 0


def test_three_unreadable_replies_give_a_flagged_seeded_fallback(tmp_path, tsv):
    script = {3: UNREADABLE}
    predictions = []
    for run in ("a", "b"):
        with FakeOpenAIServer(lambda body: judge_replies(body, script), served_model=JUDGE_MODEL) as server:
            outcome = evaluate(_spec(tsv, server.base_url), tmp_path / run, show_progress=False)
        records = load_records(tmp_path / run)
        fallbacks = [r for r in records if r.verdict.get("fallback")]
        assert len(fallbacks) == outcome.summary.counts["random_fallbacks"] > 0
        assert all(r.verdict["judge_attempts"] == 3 and r.verdict["method"] == "fallback" for r in fallbacks)
        assert all(r.verdict["prediction"] in "ABCDZ" for r in fallbacks)
        predictions.append([r.verdict["prediction"] for r in records])
    assert predictions[0] == predictions[1]  # seeded: the same fallback choices every time


def test_changing_only_scoring_rules_reuses_every_answer(tmp_path, tsv):
    with FakeOpenAIServer(judge_replies, served_model=JUDGE_MODEL) as server:
        first = evaluate(_spec(tsv, server.base_url), tmp_path / "a", cache_dir=tmp_path / "cache",
                         show_progress=False)
        spec = _spec(tsv, server.base_url)
        spec = spec.with_overrides({"benchmark.params.rule_version": "2025-08-04"})
        second = evaluate(spec, tmp_path / "b", cache_dir=tmp_path / "cache", show_progress=False)
    assert first.generated > 0 and second.generated == 0 and second.judged == first.judged


def test_an_api_model_answers_mme_over_http(tmp_path):
    """The openai-chat adapter: the image arrives as a data URL before the question; a 429 and a
    500 are retried; the MME score is computed from the raw replies."""
    data = write_mme_shapes(tmp_path / "mme", per_subtask=2, seed=0, size=64)

    def always_yes(body):
        content = body["messages"][-1]["content"]
        assert content[0]["type"] == "image_url" and content[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert content[-1]["type"] == "text" and content[-1]["text"].endswith("Please answer yes or no.")
        return "Yes"

    spec = RunSpec(benchmark=ComponentSpec("mme", {"data": str(data)}),
                   model=ComponentSpec("openai-chat", {"base_url": "", "model": "fake-vlm-2025-01-01",
                                                       "backoff_s": 0.01, "backoff_max_s": 0.05}))
    with FakeOpenAIServer(always_yes, faults=[Fault.rate_limited("0"), Fault.server_error(503)]) as server:
        spec = spec.with_overrides({"model.params.base_url": server.base_url})
        outcome = evaluate(spec, tmp_path / "run", show_progress=False)
    # "Yes" to everything: acc = 1/2 and acc+ = 0 in every subtask, so 50 points each (by hand)
    assert outcome.summary.scores["subtasks"] == {"existence": 50.0, "count": 50.0, "position": 50.0, "color": 50.0}
    assert outcome.summary.usage["model"]["retries"] == 2


def test_a_bad_judge_setting_stops_the_run_before_any_answer_is_paid_for(tmp_path, tsv):
    from harness.errors import HarnessError

    with FakeOpenAIServer(judge_replies) as server:
        spec = _spec(tsv, server.base_url).with_overrides(
            {"judges.choice_extractor.params.model": "gpt-4o-mini"})  # an undated alias
        with pytest.raises(HarnessError, match="undated alias"):
            evaluate(spec, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run" / "cache" / "generations.rank0.jsonl").exists()


def test_a_run_resumes_in_its_folder_when_only_the_server_address_changed(tmp_path, tsv):
    script = {4: Fault.server_error(500)}
    with FakeOpenAIServer(lambda body: judge_replies(body, script), served_model=JUDGE_MODEL) as server:
        first = evaluate(_spec(tsv, server.base_url), tmp_path / "run", show_progress=False)
    assert first.summary.counts["judge_failed"] > 0
    with FakeOpenAIServer(judge_replies, served_model=JUDGE_MODEL) as server:
        again = evaluate(_spec(tsv, server.base_url, max_retries=1), tmp_path / "run", show_progress=False)
    assert again.generated == 0 and again.summary.counts["judge_failed"] == 0
    with pytest.raises(Exception, match="different spec"):  # the judge model is part of the experiment
        evaluate(_spec(tsv, "http://127.0.0.1:9/v1", model="other-judge-2025-01-01"), tmp_path / "run",
                 show_progress=False)


def test_a_judge_failure_rate_above_the_limit_stops_the_run_and_keeps_its_verdicts(tmp_path, tsv):
    from harness.runner import JudgeFailureRateError

    script = {1: Fault.server_error(500), 2: Fault.server_error(500)}  # most passes fail
    with FakeOpenAIServer(lambda body: judge_replies(body, script), served_model=JUDGE_MODEL) as server:
        with pytest.raises(JudgeFailureRateError, match="more than the limit of 50%"):
            evaluate(_spec(tsv, server.base_url, max_retries=0), tmp_path / "run", judge_batch_size=4,
                     max_judge_failure_rate=0.5, show_progress=False)
    cached = (tmp_path / "run" / "cache" / "judgements.rank0.jsonl").read_text().splitlines()
    passes = pd.read_csv(tsv, sep="\t", dtype=str).shape[0]
    assert 0 < len(cached) < passes  # stopped early, after 20 samples, keeping the verdicts it had
    with FakeOpenAIServer(judge_replies, served_model=JUDGE_MODEL) as server:
        done = evaluate(_spec(tsv, server.base_url), tmp_path / "run", show_progress=False)
        assert len(server.requests) == passes - len(cached)
    assert done.summary.scores["overall"] == 1.0 and done.summary.counts["judge_failed"] == 0


def test_a_resumed_run_whose_only_pending_samples_are_lasting_failures_is_not_stopped(tmp_path, tsv):
    script = {4: Fault.server_error(500)}  # a few passes fail every time
    for _ in range(2):
        with FakeOpenAIServer(lambda body: judge_replies(body, script), served_model=JUDGE_MODEL) as server:
            outcome = evaluate(_spec(tsv, server.base_url, max_retries=0), tmp_path / "run",
                               max_judge_failure_rate=0.5, show_progress=False)
        assert 0 < outcome.summary.counts["judge_failed_passes"] < 11  # well under half of 22 passes
