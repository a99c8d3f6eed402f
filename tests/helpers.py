"""Small builders shared by the runner, CLI and demo tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from harness.spec import ComponentSpec, RunSpec


def load_script(path: Path, name: str) -> ModuleType:
    """Import a script that is not in a package (a fixture's generator, e.g. tests/fixtures/*/replies.py)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_janus_spec(model_dir: Path, per_tag: int = 1, images_per_prompt: int = 4, batch_size: int = 4,
                    limit: int | None = None, seed: int = 0) -> RunSpec:
    """GenEval on the shapes world, tiny random Janus, shapes judges."""
    return RunSpec(
        benchmark=ComponentSpec("geneval", {"prompts": "shapes", "per_tag": per_tag,
                                            "images_per_prompt": images_per_prompt}),
        model=ComponentSpec("janus", {"path": str(model_dir), "batch_size": batch_size}),
        judges={"detector": ComponentSpec("shapes"), "color_classifier": ComponentSpec("shapes")},
        seed=seed, limit=limit)


def renderer_spec(per_tag: int = 2, images_per_prompt: int = 2) -> RunSpec:
    return RunSpec(
        benchmark=ComponentSpec("geneval", {"prompts": "shapes", "per_tag": per_tag,
                                            "images_per_prompt": images_per_prompt}),
        model=ComponentSpec("shapes-renderer", {"size": 64}),
        judges={"detector": ComponentSpec("shapes"), "color_classifier": ComponentSpec("shapes")})
