"""What docs/RELIABILITY.md promises, one test per class of fault found by the outside audit (issue
16, items 1-6): names from data never escape the run folder, one writer per folder, a killed synth
always resumes, judge replies are kept as they arrive, keys never reach the disk, and a judge reply
that cannot be read is a fault (retried) and never a verdict.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.imgedit.data import load_edits
from harness.cache import KeyedLog
from harness.cli import main
from harness.errors import InputError
from harness.runner import evaluate, load_records
from harness.spec import RunSpec
from tests.edit_world import SECRET, ScriptedJudge, edit_data, edit_spec, reset_judge, tree, write_spec


@pytest.fixture(autouse=True)
def fresh_judge():
    reset_judge()

# -- 1. names from data never escape the run folder ----------------------------------------------------

@pytest.mark.parametrize("key, image_id, bad", [("../../escaped", "a.jpg", "../../escaped"),
                                                ("/tmp/escaped", "a.jpg", "/tmp/escaped"),
                                                ("7", "../../../a.jpg", "../../../a.jpg"),
                                                ("8", "C:\\a.jpg", "C:\\a.jpg")])
def test_a_name_from_the_edit_list_that_leaves_the_folder_is_refused_before_anything_is_written(
        tmp_path, capsys, key, image_id, bad):
    data = edit_data(tmp_path / "deep" / "data", ["1", key], image_id=image_id)
    spec = write_spec(tmp_path / "spec.yaml", edit_spec(data))
    before = tree(tmp_path)
    out = tmp_path / "deep" / "data" / "run"
    assert main(["eval", str(spec), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "basic_edit.json:3:" in err and repr(bad) in err
    after = tree(tmp_path)
    assert {name for name in after if name not in before} <= {"deep/data/run/.harness.lock"}
    assert not Path("/tmp/escaped.png").exists()


def test_dataset_rows_cannot_name_images_outside_their_dataset_folder(tmp_path):
    from harness.clients.call_cache import BlobStore
    from harness.synth import _write_dataset

    rows = [{"id": "r0", "prompt": "p", "image": "images/../../escaped.png"}]
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match=r"image named by a row 'images/\.\./\.\./escaped\.png' cannot be used"):
        _write_dataset(tmp_path / "data", rows, BlobStore(tmp_path / "blobs"), [])
    assert not (tmp_path / "escaped.png").exists() and not (tmp_path / "data" / "rows.jsonl").exists()


# -- 2. one writer per folder ---------------------------------------------------------------------------

def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock, as a second harness run would."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"h = open({str(folder / '.harness.lock')!r}, 'a+'); fcntl.flock(h, fcntl.LOCK_EX)\n"
        "h.write(f'{os.getpid()}\\n'); h.flush(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("locked", ["run", "cache"])
def test_a_second_eval_into_a_folder_or_shared_cache_in_use_stops_at_once(tmp_path, capsys, locked):
    spec = write_spec(tmp_path / "spec.yaml", edit_spec(edit_data(tmp_path / "data", ["1", "2"])))
    run, cache = tmp_path / "run", tmp_path / "shared-cache"
    holder = hold_lock(run if locked == "run" else cache)
    try:
        code = main(["eval", str(spec), "--out", str(run), "--cache", str(cache), "--no-progress"])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and f"in use by another harness process (pid {holder.pid})" in err
    assert not (run / "spec.yaml").exists() and ScriptedJudge.asked == []
    assert main(["eval", str(spec), "--out", str(run), "--cache", str(cache), "--no-progress"]) == 0  # freed


def test_a_second_synth_into_a_dataset_folder_in_use_stops_at_once(tmp_path, capsys):
    recipe = Path(__file__).parents[1] / "examples" / "shapes-recipe.yaml"
    out = tmp_path / "data"
    holder = hold_lock(out)
    try:
        code = main(["synth", str(recipe), "--out", str(out), "--set", "steps.0.params.t2i=2",
                     "--set", "steps.0.params.edits=1", "--no-progress"])
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and f"in use by another harness process (pid {holder.pid})" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".harness.lock"]


# -- 3. a killed synth always resumes -------------------------------------------------------------------

def test_a_synth_killed_before_its_recipe_copy_resumes_and_leaves_no_temporaries(tmp_path, capsys):
    recipe = Path(__file__).parents[1] / "examples" / "shapes-recipe.yaml"
    out = tmp_path / "data"
    (out / "cache" / "blobs").mkdir(parents=True)  # what the audit's kill left: a cache, no recipe copy
    (out / ".recipe.yaml.k2j4.tmp").write_text("half a recip")  # and an interrupted atomic write
    args = ["synth", str(recipe), "--out", str(out), "--set", "steps.0.params.t2i=2",
            "--set", "steps.0.params.edits=1", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    assert (out / "artifact.json").is_file() and not list(out.rglob("*.tmp"))
    assert main(args) == 0 and "already complete" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main([*args[:2], "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


# -- 4. judge replies are kept as they arrive -------------------------------------------------------------

def test_a_run_killed_during_judging_pays_each_reply_once(tmp_path):
    data = edit_data(tmp_path / "data", [str(n) for n in range(6)])  # one judge batch of six
    ScriptedJudge.stop_after = 4
    with pytest.raises(KeyboardInterrupt):
        evaluate(edit_spec(data), tmp_path / "run", show_progress=False)
    assert len(ScriptedJudge.asked) == 4
    ScriptedJudge.stop_after = None
    summary = evaluate(edit_spec(data), tmp_path / "run", show_progress=False).summary
    assert len(ScriptedJudge.asked) == 6  # the two unanswered only
    assert summary.counts["scored"] == 6 and summary.scores["overall"] == 4.0
    uninterrupted = evaluate(edit_spec(data), tmp_path / "other", show_progress=False).summary
    assert (tmp_path / "run" / "records.jsonl").read_bytes() == (tmp_path / "other" / "records.jsonl").read_bytes()
    assert uninterrupted.scores == summary.scores


# -- 5. keys never reach the disk -------------------------------------------------------------------------

@pytest.mark.parametrize("override", [f"model.params.api_key={SECRET}",
                                      f"judges.judge.params.base_url=http://{SECRET}@127.0.0.1:9/v1",
                                      f"judges.judge.params.token={SECRET}"])
def test_a_key_in_the_spec_or_a_url_is_refused_before_anything_is_written(tmp_path, capsys, override):
    spec = write_spec(tmp_path / "spec.yaml", edit_spec(edit_data(tmp_path / "data", ["1"])))
    run = tmp_path / "run"
    assert main(["eval", str(spec), "--out", str(run), "--set", override, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "environment variable named by api_key_env" in err and SECRET not in err
    assert not run.exists()
    assert not any(SECRET.encode() in content for content in tree(tmp_path).values())


# -- 6. a reply that cannot be read is a fault, never a verdict --------------------------------------------

def test_an_unreadable_judge_reply_is_asked_again_and_never_kept(tmp_path):
    data = edit_data(tmp_path / "data", ["1", "2"])
    # item 1: empty, then garbage, then a real reply -> scored; item 2: garbage three times -> a failure
    # (asks go: both, both again, item 2 alone)
    ScriptedJudge.script = ["", "I cannot grade this.", "Prompt Compliance: 4", "no digits", "Score: ²"]
    outcome = evaluate(edit_spec(data), tmp_path / "run", show_progress=False)
    records = {r.sample_id: r for r in load_records(tmp_path / "run")}
    assert records["1"].score == 4.0 and not records["1"].judge_failed
    assert records["2"].judge_failed and "int() rejects it" in records["2"].failure  # the last reply decides
    assert outcome.summary.counts["judge_failed"] == 1 and outcome.summary.counts["no_score"] == 0
    assert len(ScriptedJudge.asked) == 5
    kept = KeyedLog(tmp_path / "run" / "cache", "replies-judge")
    assert sorted(entry["reply"]["text"] for entry in kept._entries.values()) == ["Prompt Compliance: 4"]
    ScriptedJudge.asked = []  # the next run asks about item 2 again, and only about it
    again = evaluate(edit_spec(data), tmp_path / "run", show_progress=False)
    assert len(ScriptedJudge.asked) == 1 and again.summary.counts["judge_failed"] == 0


def test_the_edit_list_still_reads_names_with_folders(tmp_path):
    data = edit_data(tmp_path / "data", ["animal/12", "13"])
    assert [item.key for item in load_edits(data["edits"]).items] == ["animal/12", "13"]


def test_a_corrupt_line_inside_a_cache_is_set_aside_and_costs_only_its_entry(tmp_path, capsys):
    log = KeyedLog(tmp_path, "judgements")
    for n in range(3):
        log.put(f"k{n}", {"n": n})
    log.close()
    path = tmp_path / "judgements.rank0.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = b'{"key": "k1", "n": 1\x00garbage'
    path.write_bytes(b"\n".join(lines))
    again = KeyedLog(tmp_path, "judgements")
    assert (again.get("k0"), again.get("k1"), again.get("k2")) == ({"key": "k0", "n": 0}, None, {"key": "k2", "n": 2})
    assert "judgements.rank0.jsonl: 1 corrupt cache line(s) skipped (line 2)" in capsys.readouterr().err
    assert b"garbage" in (tmp_path / "judgements.rank0.jsonl.corrupt").read_bytes()
    assert b"garbage" not in path.read_bytes()
    again.put("k1", {"n": 1})
    again.close()
    assert KeyedLog(tmp_path, "judgements").get("k1") == {"key": "k1", "n": 1}


def test_a_misspelt_judge_role_is_refused_with_a_suggestion(tmp_path, capsys):
    spec = edit_spec(edit_data(tmp_path / "data", ["1"]))
    spec = RunSpec(spec.benchmark, spec.model, {"judges": spec.judges["judge"]})
    assert main(["eval", str(write_spec(tmp_path / "s.yaml", spec)), "--out", str(tmp_path / "r")]) == 2
    assert "role 'judges', which benchmark 'imgedit' does not have" in capsys.readouterr().err
    assert os.path.exists(tmp_path / "r") is False or not (tmp_path / "r" / "spec.yaml").exists()
