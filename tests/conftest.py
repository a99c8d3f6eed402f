"""Shared test setup: never touch the network; small helpers used by several test files."""
import os
from pathlib import Path

# set before transformers / huggingface_hub are imported anywhere
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402 - after the environment is set


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: intra-op threads only add contention on a busy 2-core machine (it made the Janus
    tests ten times slower). Restored afterwards for the other test files."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory, one_torch_thread_session):
    """One small finished demo (all five benchmarks, two models each) shared by the report tests."""
    from demo.tour import DemoSize, run_demo

    out = tmp_path_factory.mktemp("demo")
    size = DemoSize(per_tag=2, images_per_prompt=2, mme_images_per_subtask=3, mmbench_questions=12,
                    dpg_items=4, imgedit_items=8, answer_tokens=4)
    run_demo(out, size, show_progress=False)
    return out


@pytest.fixture(scope="session")
def one_torch_thread_session():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# The Janus-4o trainer tests (test_janus4o_*.py) share these two, per module: 12 shapes rows (8
# text-to-image, 4 edits) as sharegpt4o.json, and a tiny random Janus that knows their words.
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from harness.recipe import RecipeSpec
    from harness.synth import synthesize

    recipe = Path(__file__).resolve().parents[1] / "examples" / "shapes-recipe.yaml"
    spec = RecipeSpec.load(recipe).with_overrides(
        {"steps.0.params.t2i": 8, "steps.0.params.edits": 4})
    folder = synthesize(spec, out=tmp_path_factory.mktemp("shapes"), show_progress=False).folder
    return folder / "sharegpt4o.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, dataset, one_torch_thread):
    from harness.models.tiny_janus import build_tiny_janus
    from harness.dataset_formats import prompt_words

    return build_tiny_janus(tmp_path_factory.mktemp("tiny"), words=prompt_words(dataset.parent))
