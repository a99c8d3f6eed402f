"""The runner: resume after SIGKILL, torchrun sharding, failure isolation, one spec per folder."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.models.tiny_janus import build_tiny_janus
from harness.runner import evaluate, load_records
from tests.helpers import renderer_spec, tiny_janus_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_janus(tmp_path_factory.mktemp("model") / "tiny-janus", seed=1)


def _subprocess_env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return env


def _files(run_dir: Path, *names: str) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in names}


KILLER = """
import os, signal, sys
from harness.runner import evaluate
from harness.spec import RunSpec
spec = RunSpec.load(sys.argv[1])
def after_batch(done):
    if done >= int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a real crash
evaluate(spec, sys.argv[2], show_progress=False, after_batch=after_batch)
"""


def test_sigkill_mid_generation_then_resume_matches_uninterrupted(tmp_path, model_dir):
    spec = tiny_janus_spec(model_dir, per_tag=1, images_per_prompt=4, batch_size=4)  # 6 prompts, 24 images
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(spec_file), str(killed), "12"],
                          env=_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (killed / "records.jsonl").exists()
    finished = sorted((killed / "images").glob("*/samples/*.png"))
    assert len(finished) == 12
    mtimes = {path: path.stat().st_mtime_ns for path in finished}

    resumed = evaluate(spec, killed, show_progress=False)
    assert resumed.generated == 24 - 12  # nothing finished before the kill is generated again
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in mtimes.items())

    clean = evaluate(spec, tmp_path / "clean", show_progress=False)
    assert clean.generated == 24
    names = ("records.jsonl", "results.jsonl")
    assert _files(killed, *names) == _files(tmp_path / "clean", *names)
    assert resumed.artifact.hash == clean.artifact.hash
    for image in (tmp_path / "clean" / "images").glob("*/samples/*.png"):
        assert image.read_bytes() == (killed / image.relative_to(tmp_path / "clean")).read_bytes()

    again = evaluate(spec, killed, show_progress=False)  # a finished run does nothing twice
    assert again.generated == 0 and again.judged == 0


def test_torchrun_two_ranks_equal_one_process(tmp_path, model_dir):
    spec = tiny_janus_spec(model_dir, per_tag=1, images_per_prompt=3, batch_size=2)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "harness", "eval", str(spec_file), "--out", str(tmp_path / "two"), "--no-progress"],
        env=_subprocess_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "two" / "records.rank1.jsonl").exists()  # both ranks did work
    evaluate(spec, tmp_path / "one", show_progress=False)
    names = ("records.jsonl", "results.jsonl")
    assert _files(tmp_path / "two", *names) == _files(tmp_path / "one", *names)
    assert len(load_records(tmp_path / "two")) == 18


def test_a_corrupt_output_is_a_counted_judge_failure_not_a_wrong_answer(tmp_path):
    from harness.runner import LazyJudges, _score_isolating_failures, build_benchmark, build_judges
    from harness.images import save_png
    from shapes.renderer_model import ShapesRenderer

    spec = renderer_spec(per_tag=1, images_per_prompt=2)
    benchmark = build_benchmark(spec)
    requests = benchmark.requests(0)[:4]
    images = ShapesRenderer().generate_images(requests)
    paths = []
    for request, image in zip(requests, images):
        path = tmp_path / benchmark.output_path(request)
        save_png(image, path)
        paths.append(path)
    paths[2].write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    judges = LazyJudges(build_judges(spec, benchmark))
    records = _score_isolating_failures(benchmark, [(r, p, "") for r, p in zip(requests, paths)], judges)
    assert [r.judge_failed for r in records] == [False, False, True, False]
    assert str(paths[2]) in records[2].failure and records[2].score is None
    assert all(r.correct for i, r in enumerate(records) if i != 2)
    scores, counts = benchmark.summarize(records)
    assert counts["judge_failed"] == 1 and counts["scored"] == 3
    assert scores["overall"] == 1.0  # the failure is excluded, not counted as wrong


def test_a_run_folder_refuses_a_different_spec(tmp_path):
    evaluate(renderer_spec(per_tag=1, images_per_prompt=1), tmp_path, show_progress=False)
    with pytest.raises(HarnessError, match="different spec"):
        evaluate(renderer_spec(per_tag=1, images_per_prompt=2), tmp_path, show_progress=False)


def test_renderer_run_writes_official_layout_and_scores_perfectly(tmp_path):
    import json

    outcome = evaluate(renderer_spec(per_tag=2, images_per_prompt=2), tmp_path, show_progress=False)
    assert outcome.summary.scores["overall"] == 1.0
    assert list(outcome.summary.scores["tasks"]) == ["single_object", "two_object", "counting",
                                                    "colors", "position", "color_attr"]
    folders = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert folders == [f"{i:05d}" for i in range(12)]
    metadata = json.loads((tmp_path / "images" / "00000" / "metadata.jsonl").read_text())
    assert metadata["tag"] == "single_object"
    assert sorted(p.name for p in (tmp_path / "images" / "00000" / "samples").iterdir()) == ["0000.png", "0001.png"]
    assert outcome.summary.counts == {"samples": 24, "scored": 24, "judge_failed": 0, "images": 24, "prompts": 12}


def _precomputed_spec(detections_file, per_tag=1, images_per_prompt=2):
    from harness.spec import ComponentSpec, RunSpec

    spec = renderer_spec(per_tag=per_tag, images_per_prompt=images_per_prompt)
    return RunSpec(benchmark=spec.benchmark, model=spec.model, seed=spec.seed,
                   judges={"detector": ComponentSpec("precomputed", {"path": str(detections_file)}),
                           "color_classifier": ComponentSpec("from-detections")})


def _write_detections(path, entries):
    import json

    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))


def test_judge_failures_are_retried_and_changed_judge_files_are_rejudged(tmp_path):
    """Failures are not cached; a judge file changed at the same path invalidates old verdicts;
    a failing single-sample batch is a recorded failure, not a crash."""
    from shapes.detector import ShapesDetector

    shapes_run = evaluate(renderer_spec(per_tag=1, images_per_prompt=2), tmp_path / "shapes",
                          cache_dir=tmp_path / "cache", show_progress=False)
    records = load_records(tmp_path / "shapes")
    detector = ShapesDetector()
    from harness.images import load_image

    entries = []
    for record in records:
        prompt, image = record.sample_id.split("/")
        found = detector.detect([load_image(tmp_path / "shapes" / record.output_path)])[0]
        entries.append({"prompt_index": int(prompt), "image": f"{image}.png",
                        "detections": [d.to_json() for d in found]})
    detections = tmp_path / "detections.jsonl"
    _write_detections(detections, entries[:-3])  # the last three images have no detections yet
    spec = _precomputed_spec(detections)
    run = tmp_path / "precomputed"
    first = evaluate(spec, run, cache_dir=tmp_path / "cache", judge_batch_size=1, show_progress=False)
    assert first.generated == 0  # same model and seeds: every image comes from the shared cache
    assert first.summary.counts["judge_failed"] == 3 and first.summary.scores["overall"] == 1.0
    assert sum(r.judge_failed for r in load_records(run)) == 3
    cached = (tmp_path / "cache" / "judgements.rank0.jsonl").read_text().splitlines()
    assert len(cached) == 12 + 9  # the shapes run's 12 verdicts and 9 of these: no failure is cached
    retry = evaluate(spec, run, cache_dir=tmp_path / "cache", show_progress=False)
    assert retry.judged == 3 and retry.summary.counts["judge_failed"] == 3  # retried, still failing

    _write_detections(detections, entries)  # a changed file at the same path: all verdicts redone
    second = evaluate(spec, run, cache_dir=tmp_path / "cache", show_progress=False)
    assert second.judged == 12 and second.summary.counts["judge_failed"] == 0
    assert second.summary.scores == shapes_run.summary.scores

    for entry in entries:
        entry["detections"] = []
    _write_detections(detections, entries)
    third = evaluate(spec, run, cache_dir=tmp_path / "cache", show_progress=False)
    assert third.judged == 12 and third.summary.scores["overall"] == 0.0


def test_a_judge_that_cannot_load_stops_the_run(tmp_path):
    from harness.runner import JudgeLoadError

    with pytest.raises(JudgeLoadError, match="detector"):
        evaluate(_precomputed_spec(tmp_path / "missing.jsonl"), tmp_path / "run", show_progress=False)


def test_identical_outputs_of_different_samples_keep_their_own_records(tmp_path):
    from harness.spec import ComponentSpec, RunSpec

    # the renderer cannot parse the official COCO prompts: every image is the same blank background
    spec = RunSpec(benchmark=ComponentSpec("geneval", {"prompts": "official", "images_per_prompt": 2}),
                   model=ComponentSpec("shapes-renderer"), limit=2,
                   judges={"detector": ComponentSpec("shapes"), "color_classifier": ComponentSpec("shapes")})
    outcome = evaluate(spec, tmp_path, show_progress=False)
    records = load_records(tmp_path)
    assert [r.sample_id for r in records] == ["00000/0000", "00000/0001", "00001/0000", "00001/0001"]
    assert len({r.output_hash for r in records}) == 1
    assert outcome.summary.scores["overall"] == 0.0
