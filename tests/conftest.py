"""Shared test setup: never touch the network; small helpers used by several test files."""
import os

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
    from harness.demo import DemoSize, run_demo

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
