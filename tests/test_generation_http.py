"""ImgEdit end to end over HTTP: an image API edits, an LLM judge scores, both served by a loopback
OpenAI-compatible server started by the test, with injected faults."""
from __future__ import annotations

import json

import pytest

from harness.runner import JudgeFailureRateError, evaluate, load_records
from shapes.edits import write_imgedit_shapes
from harness.spec import ComponentSpec, RunSpec
from harness.testing.fake_openai import Fault, FakeOpenAIServer

JUDGE = "fake-judge-2025-04-14"
REPLY = "Brief reasoning: the edit is mostly there.\nPrompt Compliance: 4\nVisual Naturalness: 3\nPhysical: 4"
FAST = {"max_retries": 2, "timeout_s": 2.0, "backoff_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_imgedit_shapes(tmp_path_factory.mktemp("imgedit"), items=24, seed=5, size=64)


def _spec(data, base_url: str) -> RunSpec:
    return RunSpec(
        benchmark=ComponentSpec("imgedit", {"edits": str(data / "basic_edit.json"), "images": str(data / "images"),
                                            "judge_prompts": str(data / "prompts.json")}),
        model=ComponentSpec("openai-images", {"base_url": base_url, "model": "fake-image-2025-04-23",
                                              "size": "64x64", **FAST}),
        judges={"judge": ComponentSpec("openai-compatible", {"base_url": base_url, "model": JUDGE,
                                                             "temperature": None, "max_tokens": None, **FAST})})


def _instructions(data) -> dict[str, str]:
    return {key: item["prompt"] for key, item in json.loads((data / "basic_edit.json").read_text()).items()}


def _judge_replies(failing: set[str]):
    def reply(body):
        text = body["messages"][-1]["content"][0]["text"]
        return Fault.server_error(500) if any(instruction in text for instruction in failing) else REPLY
    return reply


def test_edits_and_verdicts_survive_transient_faults_on_both_endpoints(tmp_path, data):
    faults = [Fault.rate_limited("0"), Fault.server_error(502), Fault.malformed_json()]
    with FakeOpenAIServer(_judge_replies(set()), faults=faults, served_model=JUDGE) as server:
        outcome = evaluate(_spec(data, server.base_url), tmp_path / "run", show_progress=False)
        paths = [request.path for request in server.requests]
    assert paths.count("/v1/images/edits") >= 24 and paths.count("/v1/chat/completions") >= 24
    assert len(paths) == 48 + len(faults)  # each fault cost exactly one retry
    # every item: round((4 + 3 + 4) / 3, 2) = 3.67, so every type mean and the overall are 3.67
    assert set(outcome.summary.scores["types"].values()) == {3.67}
    assert outcome.summary.scores["overall"] == pytest.approx(3.67)
    assert outcome.summary.counts["judge_failed"] == 0
    retries = outcome.summary.usage["model"]["retries"] + outcome.summary.usage["judge:judge"]["retries"]
    assert retries == len(faults)
    official = json.loads((tmp_path / "run" / "edited" / "result.json").read_text())
    assert official == {key: REPLY for key in _instructions(data)}


def test_a_failing_judge_stops_the_run_past_the_limit_and_nothing_is_paid_twice(tmp_path, data):
    instructions = _instructions(data)
    failing = set(list(instructions.values())[:16])  # two thirds of the items always fail
    with FakeOpenAIServer(_judge_replies(failing), served_model=JUDGE) as server:
        with pytest.raises(JudgeFailureRateError, match="failed on"):
            evaluate(_spec(data, server.base_url), tmp_path / "run", judge_batch_size=4,
                     max_judge_failure_rate=0.5, show_progress=False)
        edits_paid = sum(r.path == "/v1/images/edits" for r in server.requests)
    assert edits_paid == 24  # every edit was made and is cached
    verdicts = (tmp_path / "run" / "cache" / "judgements.rank0.jsonl").read_text().splitlines()
    assert 0 < len(verdicts) < 24

    with FakeOpenAIServer(_judge_replies(set()), served_model=JUDGE) as server:
        done = evaluate(_spec(data, server.base_url), tmp_path / "run", show_progress=False)
        paths = [request.path for request in server.requests]
    assert "/v1/images/edits" not in paths  # no edit is bought twice
    assert len(paths) == 24 - len(verdicts)  # only the unjudged items are asked
    assert done.summary.counts["judge_failed"] == 0 and len(load_records(tmp_path / "run")) == 24


def test_a_renamed_subset_of_the_edits_reuses_every_edit_and_verdict(tmp_path, data):
    """Data-set-wide fields (file name, content hash, item count) stay out of cache keys."""
    def spec(edits_file):
        return RunSpec(benchmark=ComponentSpec("imgedit", {"edits": str(edits_file), "images": str(data / "images"),
                                                           "judge_prompts": str(data / "prompts.json")}),
                       model=ComponentSpec("shapes-editor"), judges={"judge": ComponentSpec("shapes-edit-judge")})

    full = evaluate(spec(data / "basic_edit.json"), tmp_path / "full", cache_dir=tmp_path / "cache", show_progress=False)
    edits = json.loads((data / "basic_edit.json").read_text())
    subset = tmp_path / "renamed_subset.json"
    subset.write_text(json.dumps(dict(list(edits.items())[:10])))
    part = evaluate(spec(subset), tmp_path / "part", cache_dir=tmp_path / "cache", show_progress=False)
    assert full.generated == 24 and part.generated == 0 and part.judged == 0
    assert len(load_records(tmp_path / "part")) == 10
