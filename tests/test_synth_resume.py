"""A recipe killed with SIGKILL half way and started again ends with the same dataset as an
uninterrupted run: no row lost, none duplicated, no request paid twice; and no API key on disk.

The recipe renders shapes-world prompts through an image API (the loopback fake). The fake server
itself kills the ``harness synth`` process when it receives the N-th request, and answers that
request (and any after it) with an error, so "paid" below means "answered with a 200".
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import yaml

from harness.testing.fake_openai import Fault, FakeOpenAIServer, solid_colour_image

ROOT = Path(__file__).resolve().parents[1]


class KillingImageServer:
    """Answers image generations; on the ``kill_at``-th request SIGKILLs ``process`` and stops paying."""

    def __init__(self, kill_at: int | None = None):
        self.kill_at = kill_at
        self.process: subprocess.Popen | None = None
        self.paid: Counter[str] = Counter()  # prompt -> 200 answers
        self.received = 0
        self.killed = False
        self._lock = threading.Lock()
        self.server = FakeOpenAIServer(image_responder=self._respond, api_key="sk-test-RIGHTKEY0123456789")

    def _respond(self, fields: dict):
        with self._lock:
            self.received += 1
            if self.kill_at is not None and self.received >= self.kill_at and not self.killed:
                self.killed = True
                os.kill(self.process.pid, signal.SIGKILL)
            if self.killed:
                return Fault.server_error(503)
            self.paid[fields["prompt"]] += 1
        return solid_colour_image(fields)


def write_recipe(folder: Path, base_url: str, concurrency: int, rows: int) -> Path:
    recipe = {
        "name": "kill-test", "seed": 3,
        "clients": {"image_model": {"base_url": base_url, "model": "gpt-image-1", "api_key_env": "TEST_IMAGE_KEY",
                                    "max_concurrency": concurrency, "max_retries": 0,
                                    "prices": {"per_request": 0.04}}},
        "steps": [{"name": "shapes-world", "params": {"t2i": rows, "edits": 0}},
                  {"name": "render-image", "params": {"client": "image_model", "size": "64x64", "batch_size": 8}}],
        "export": ["sharegpt4o"],
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def synth(recipe: Path, out: Path, key: str) -> subprocess.Popen:
    env = {**os.environ, "TEST_IMAGE_KEY": key, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "harness", "synth", str(recipe), "--out", str(out), "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_to_end(recipe: Path, out: Path, key: str, server: KillingImageServer) -> subprocess.CompletedProcess:
    process = synth(recipe, out, key)
    server.process = process
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def dataset_bytes(folder: Path) -> dict[str, str]:
    """Every content file of the dataset by hash: the caches, the manifest (timestamps) and the recipe
    as run (its base_url names each test server's port) aside."""
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not rel.startswith("cache/") and rel not in ("artifact.json", "recipe.yaml"):
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def check_killed_and_resumed(tmp_path: Path, concurrency: int, rows: int, kill_at: int) -> tuple[KillingImageServer, KillingImageServer]:
    reference = KillingImageServer()
    with reference.server:
        recipe = write_recipe(tmp_path, reference.server.base_url, concurrency, rows)
        done = run_to_end(recipe, tmp_path / "reference", "sk-test-RIGHTKEY0123456789", reference)
        assert done.returncode == 0, done.stderr

    killed = KillingImageServer(kill_at=kill_at)
    with killed.server:
        recipe = write_recipe(tmp_path, killed.server.base_url, concurrency, rows)
        first = run_to_end(recipe, tmp_path / "resumed", "sk-test-RIGHTKEY0123456789", killed)
        assert first.returncode == -signal.SIGKILL and killed.killed
        assert not (tmp_path / "resumed" / "artifact.json").exists()
        killed.killed, killed.kill_at = False, None  # the same server answers the second run
        second = run_to_end(recipe, tmp_path / "resumed", "sk-test-RIGHTKEY0123456789", killed)
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip().splitlines()[-1] == str(tmp_path / "resumed")

    assert dataset_bytes(tmp_path / "resumed") == dataset_bytes(tmp_path / "reference")
    resumed_rows = (tmp_path / "resumed" / "rows.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in resumed_rows]
    assert len(ids) == rows and len(set(ids)) == rows  # none lost, none duplicated
    manifest = json.loads((tmp_path / "resumed" / "artifact.json").read_text())
    reference_manifest = json.loads((tmp_path / "reference" / "artifact.json").read_text())
    assert manifest["hash"] == reference_manifest["hash"]
    # the dataset's cost is what its calls cost, however many runs it took: 0.04 per image
    assert manifest["info"]["cost_usd"] == reference_manifest["info"]["cost_usd"] == round(0.04 * rows, 6)
    return reference, killed


def test_sigkill_half_way_then_resume_gives_the_same_dataset_and_pays_nothing_twice(tmp_path):
    reference, killed = check_killed_and_resumed(tmp_path, concurrency=1, rows=24, kill_at=13)
    assert sum(reference.paid.values()) == 24
    assert killed.paid == reference.paid  # every prompt paid exactly once over both runs


def test_concurrent_run_killed_repeats_at_most_the_requests_in_flight(tmp_path):
    concurrency = 4
    reference, killed = check_killed_and_resumed(tmp_path, concurrency=concurrency, rows=40, kill_at=17)
    # (two rows may share a prompt: compare with the uninterrupted run's counts, not with 1)
    repeated = sum(count - reference.paid[prompt] for prompt, count in killed.paid.items())
    # replies that reached a process already dead were paid and lost; at most one per other worker
    assert repeated <= concurrency - 1
    assert set(killed.paid) == set(reference.paid)


def test_no_api_key_in_any_file_the_run_writes(tmp_path):
    right, wrong = "sk-test-RIGHTKEY0123456789", "sk-test-WRONGKEY9876543210"
    server = KillingImageServer()
    with server.server:
        recipe = write_recipe(tmp_path, server.server.base_url, 2, 6)
        # a wrong key: the server's 401 quotes it; the failures are recorded (masked) and retried later
        failed = run_to_end(recipe, tmp_path / "ds", wrong, server)
        assert failed.returncode == 0 and "6 rows failed" in failed.stderr
        failures = (tmp_path / "ds" / "failures.jsonl").read_text()
        assert "401" in failures and wrong not in failures
        done = run_to_end(recipe, tmp_path / "ds", right, server)
        assert done.returncode == 0 and "0 failed" in done.stderr
    for text in (failed.stdout, failed.stderr, done.stdout, done.stderr):
        assert right not in text and wrong not in text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        assert right.encode() not in data and wrong.encode() not in data, path
        assert b"RIGHTKEY" not in data and b"WRONGKEY" not in data, path
