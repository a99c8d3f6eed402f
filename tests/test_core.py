"""Specs, registry, append-only logs, caches and artifacts."""
import json
import os
from pathlib import Path

import pytest

from harness import registry
from harness.artifacts import ArtifactStore, read_manifest, verify, write_manifest
from harness.cache import KeyedLog, generation_key
from harness.errors import InputError
from harness.fileio import AppendLog, read_jsonl
from harness.seeds import sample_seed
from harness.spec import ComponentSpec, RunSpec

SPEC_YAML = """
benchmark: {name: geneval, params: {prompts: shapes, per_tag: 2}}
model: {name: janus, params: {path: /models/x, cfg_weight: 5.0}}
judges:
  detector: shapes
  color_classifier: {name: shapes}
seed: 3
"""


def test_spec_yaml_round_trip_and_stable_hash():
    spec = RunSpec.from_yaml(SPEC_YAML)
    again = RunSpec.from_yaml(spec.to_yaml())
    assert again == spec and again.hash == spec.hash
    # the same content written differently hashes the same
    reordered = RunSpec.from_yaml("seed: 3\n" + SPEC_YAML.replace("seed: 3", "")
                                  .replace("{path: /models/x, cfg_weight: 5.0}", "{cfg_weight: 5.0, path: /models/x}"))
    assert reordered.hash == spec.hash
    assert spec.with_overrides({"model.params.cfg_weight": 3.0}).hash != spec.hash
    assert spec.judges["detector"] == ComponentSpec("shapes")


def test_spec_is_frozen_and_rejects_unknown_keys():
    spec = RunSpec.from_yaml(SPEC_YAML)
    with pytest.raises(Exception):
        spec.seed = 4
    with pytest.raises(InputError, match="unknown keys"):
        RunSpec.from_yaml(SPEC_YAML + "sed: 1\n")
    with pytest.raises(InputError, match="missing required key 'model'"):
        RunSpec.from_yaml("benchmark: geneval\n")
    with pytest.raises(InputError, match=r"spec.yaml:2"):
        RunSpec.from_yaml("benchmark: geneval\n\tmodel: x\n", "spec.yaml")


def test_registry_did_you_mean():
    with pytest.raises(registry.UnknownPluginError, match="Did you mean 'geneval'"):
        registry.get("benchmark", "genevl")
    assert "shapes" in registry.names("detector")


def test_registry_loads_entry_points(tmp_path, monkeypatch):
    """An outside package registers through the harness.plugins entry-point group."""
    package = tmp_path / "my_lab_plugins.py"
    package.write_text("from harness.registry import register\n"
                       "@register('detector', 'my-lab-detector')\nclass MyDetector:\n    judge_id = 'x'\n")
    dist = tmp_path / "my_lab_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-lab-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[harness.plugins]\nmine = my_lab_plugins\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    assert registry.get("detector", "my-lab-detector").judge_id == "x"


def test_sample_seed_depends_only_on_run_seed_benchmark_and_id():
    assert sample_seed(0, "geneval", "00001/0000") == sample_seed(0, "geneval", "00001/0000")
    seeds = {sample_seed(0, "geneval", "00001/0000"), sample_seed(1, "geneval", "00001/0000"),
             sample_seed(0, "dpg", "00001/0000"), sample_seed(0, "geneval", "00001/0001")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)


def test_append_log_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    with AppendLog(path) as log:
        log.append({"key": "a", "n": 1})
        log.append({"key": "b", "n": 2})
    with open(path, "ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b'{"key": "c", "n"')
    assert [value["key"] for _, value in read_jsonl(path, tolerate_torn_tail=True)] == ["a", "b"]
    with pytest.raises(InputError, match=r"log.jsonl:3"):
        list(read_jsonl(path))
    with AppendLog(path) as log:  # the next append drops the torn record and starts clean
        log.append({"key": "d", "n": 4})
    assert [value["key"] for _, value in read_jsonl(path)] == ["a", "b", "d"]


def test_malformed_middle_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(InputError, match=r"log.jsonl:2: malformed JSON"):
        list(read_jsonl(path, tolerate_torn_tail=True))


def test_keyed_log_merges_ranks_and_resumes(tmp_path):
    rank0, rank1 = KeyedLog(tmp_path, "gen", rank=0), KeyedLog(tmp_path, "gen", rank=1)
    rank0.put("k0", {"v": 0})
    rank1.put("k1", {"v": 1})
    rank0.close(), rank1.close()
    merged = KeyedLog(tmp_path, "gen", rank=0)
    assert merged.get("k0")["v"] == 0 and merged.get("k1")["v"] == 1 and len(merged) == 2


def test_generation_key_covers_seed_model_and_protocol():
    base = dict(model_digest="m", model_protocol={"cfg": 5}, benchmark_protocol={"n": 4},
                prompt="a photo of a cat", sample_id="00000/0000", seed=1)
    keys = {generation_key(**base), generation_key(**{**base, "seed": 2}),
            generation_key(**{**base, "model_digest": "m2"}),
            generation_key(**{**base, "model_protocol": {"cfg": 3}})}
    assert len(keys) == 4


def test_artifact_manifest_hash_lineage_and_verify(tmp_path):
    store = ArtifactStore(tmp_path)
    data = store.folder("dataset", "d1")
    data.mkdir(parents=True)
    (data / "rows.jsonl").write_text('{"x": 1}\n')
    dataset = write_manifest(data, "dataset", ["rows.jsonl"], inputs={"recipe": "r0"})
    run = store.folder("results", "r1")
    run.mkdir(parents=True)
    (run / "records.jsonl").write_text('{"score": 1}\n')
    results = write_manifest(run, "results", ["records.jsonl"], inputs={"dataset": dataset.hash})
    assert read_manifest(run).hash == results.hash
    # equal content, equal hash; different content, different hash
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "rows.jsonl").write_text('{"x": 1}\n')
    assert write_manifest(copy, "dataset", ["rows.jsonl"], {"recipe": "r0"}).hash == dataset.hash
    tree = store.lineage(read_manifest(run))
    assert tree["inputs"]["dataset"]["hash"] == dataset.hash
    assert tree["inputs"]["dataset"]["inputs"]["recipe"] == {"hash": "r0"}
    assert verify(run) == []
    (run / "records.jsonl").write_text('{"score": 0}\n')
    assert verify(run) == ["records.jsonl"]
