"""The runner with text outputs: answers cached and restored, partial batches kept, optional judges."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import pytest

from harness.benchmark import Benchmark
from harness.errors import HarnessError, PartialBatchError
from harness.hashing import hash_bytes
from harness.models.base import InputImage, ModelAdapter, Request
from harness.registry import register
from harness.runner import evaluate, load_records
from harness.schema import SampleRecord
from harness.spec import ComponentSpec, RunSpec

CALLS: list[str] = []  # sample ids the test models were asked, in order


@register("benchmark", "test-parity-questions")
class ParityQuestions(Benchmark):
    """Ten questions "is N even?"; a right answer scores 1. An optional judge upper-cases answers."""

    capability = "answer"
    judge_roles = {"normaliser": "chat"}
    optional_judge_roles = frozenset({"normaliser"})

    def __init__(self, questions: int = 10):
        self.questions = questions

    @property
    def protocol(self) -> dict[str, Any]:
        return {"questions": self.questions}

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        image = InputImage(digest="blank", load=lambda: None)
        return [Request(sample_id=f"q{n}", prompt=f"Is {n} even?", seed=n, images=(image,),
                        extra={"item_id": str(n), "group": "even" if n % 2 == 0 else "odd", "n": n})
                for n in range(self.questions)[:limit]]

    def score(self, requests: Sequence[Request], outputs: Sequence[Any],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        records = []
        for request, answer in zip(requests, outputs, strict=True):
            assert isinstance(answer, str)
            said = judges["normaliser"].normalise(answer) if "normaliser" in judges else answer
            right = said == ("yes" if request.extra["n"] % 2 == 0 else "no")
            records.append(SampleRecord(
                sample_id=request.sample_id, item_id=request.extra["item_id"], group=request.extra["group"],
                seed=request.seed, output_path="", output_hash=hash_bytes(answer.encode()),
                score=float(right), correct=right, output_text=answer))
        return records

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        scored = [r for r in records if not r.judge_failed]
        return ({"overall": sum(r.score for r in scored) / len(scored)},
                {"samples": len(records), "scored": len(scored)})


@register("model", "test-parity-answerer")
class ParityAnswerer(ModelAdapter):
    """Answers correctly in lower case; ``fail_on`` names samples whose API call keeps failing."""

    capabilities = frozenset({"answer"})
    batch_size = 4

    def __init__(self, fail_on: Sequence[str] = (), shout: bool = False):
        self.fail_on = set(fail_on)
        self.shout = shout

    @property
    def model_digest(self) -> str:
        return "parity-v1"

    @property
    def usage(self) -> dict:
        return {"requests": len(CALLS)}

    def answer(self, requests: Sequence[Request]) -> list[str]:
        done, failed = {}, []
        for position, request in enumerate(requests):
            CALLS.append(request.sample_id)
            if request.sample_id in self.fail_on:
                failed.append(request.sample_id)
                continue
            n = int(request.prompt.split()[1])
            text = "yes" if n % 2 == 0 else "no"
            done[position] = text.upper() if self.shout else text
        if failed:
            raise PartialBatchError(f"API kept failing for {failed}", done)
        return [done[i] for i in range(len(requests))]


@register("chat", "test-lowercaser")
class Lowercaser:
    judge_id = "lowercaser"
    usage = {"requests": 0}

    def normalise(self, text: str) -> str:
        return text.lower()


def _spec(**model_params) -> RunSpec:
    return RunSpec(benchmark=ComponentSpec("test-parity-questions"),
                   model=ComponentSpec("test-parity-answerer", model_params))


def test_answers_live_in_records_and_a_finished_run_asks_nothing_again(tmp_path):
    CALLS.clear()
    outcome = evaluate(_spec(), tmp_path, show_progress=False)
    assert outcome.summary.scores == {"overall": 1.0}
    assert outcome.summary.usage == {"model": {"requests": 10}}
    records = load_records(tmp_path)
    assert [r.output_text for r in records] == ["yes", "no"] * 5
    assert records[1].output_hash == hash_bytes(b"no") and records[1].output_path == ""
    CALLS.clear()
    again = evaluate(_spec(), tmp_path, show_progress=False)
    assert CALLS == [] and again.generated == 0 and again.judged == 0
    assert again.artifact.hash == outcome.artifact.hash


def test_a_partly_failed_batch_keeps_its_finished_answers(tmp_path):
    CALLS.clear()
    with pytest.raises(HarnessError, match="failed on 2 of 10"):
        evaluate(_spec(fail_on=["q1", "q5"]), tmp_path / "run", cache_dir=tmp_path / "cache",
                 show_progress=False)
    assert CALLS == [f"q{n}" for n in range(10)]  # every batch was tried before stopping
    CALLS.clear()
    # the API recovers; a spec that differs only in its failure script shares the cache
    resumed = evaluate(_spec(), tmp_path / "run2", cache_dir=tmp_path / "cache", show_progress=False)
    assert CALLS == ["q1", "q5"]  # everything else of the failed batches was kept
    assert resumed.summary.scores == {"overall": 1.0}


def test_an_optional_judge_role_may_be_left_out_or_filled(tmp_path):
    without = evaluate(_spec(shout=True), tmp_path / "plain", show_progress=False)
    assert without.summary.scores == {"overall": 0.0}  # "YES" is not "yes" without the normaliser
    assert without.summary.protocol["judges"] == {}
    spec = RunSpec(benchmark=ComponentSpec("test-parity-questions"),
                   model=ComponentSpec("test-parity-answerer", {"shout": True}),
                   judges={"normaliser": ComponentSpec("test-lowercaser")})
    judged = evaluate(spec, tmp_path / "judged", show_progress=False)
    assert judged.summary.scores == {"overall": 1.0}
    assert judged.summary.protocol["judges"] == {"normaliser": {"name": "test-lowercaser", "params": {}}}
