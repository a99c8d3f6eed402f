"""``mplug`` (plugin kind ``vqa``): DPG-Bench's official judge, mPLUG-large, without modelscope.

The official ``compute_dpg_bench.py`` asks modelscope's pipeline
``damo/mplug_visual-question-answering_coco_large_en`` one (tile, question) at a time. This judge
reads the same ModelScope folder (``config.yaml``, ``config_bert.json``, ``vocab.txt``,
``pytorch_model.bin``; ``configuration.json`` is not needed) and answers with our own PyTorch
implementation of that pipeline (``mplug_model.py``): the same pre-processing, model and beam search,
in float32, on any torch device. ``tests/test_mplug.py`` holds it to the official pipeline's outputs
on random weights: pre-processing bit for bit, token ids exactly, beam scores within 1e-4.

Answers are returned raw; DPG scores a question 1 only when the answer is exactly ``"yes"``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from PIL import Image

from benchmarks.dpg.judges import OFFICIAL_VQA_JUDGE
from benchmarks.dpg.judges.mplug_model import MPlugAnswerer, MPlugFormatError
from harness.devices import resolve_device
from harness.errors import HarnessError
from harness.registry import register

#: part of the judge's identity in judgement cache keys: bumped whenever an answer could change
VERSION = "1"


@register("vqa", OFFICIAL_VQA_JUDGE)
class MPlugJudge:
    """mPLUG-large VQA from the official ModelScope folder.

    Args:
        model: the downloaded folder of ``damo/mplug_visual-question-answering_coco_large_en``
            (ModelScope; also published as ``iic/...``), holding ``config.yaml``, ``config_bert.json``,
            ``vocab.txt`` and ``pytorch_model.bin``.
        batch_size: (image, question) pairs per forward pass; a tile asked several questions is
            encoded once. Answers do not depend on it.
        device: ``"auto"`` (the GPU when there is one) or a torch device. Always float32.
    """

    def __init__(self, model: str, batch_size: int = 16, device: str = "auto"):
        if not os.path.isdir(model):
            raise HarnessError(f"mplug: {model!r} is not a folder; download the ModelScope model "
                               "damo/mplug_visual-question-answering_coco_large_en (docs/DPG.md)")
        self.batch_size = max(1, int(batch_size))
        try:
            self.answerer = MPlugAnswerer(model, resolve_device(device))
        except (MPlugFormatError, OSError) as exc:
            raise HarnessError(f"mplug: cannot load {model}: {exc}") from exc
        config = self.answerer.config
        #: what identifies the loaded model (``MPLUG_LARGE``'s fields): DPG records it in each tile's
        #: verdict and on the protocol card, and counts the run as official only for mPLUG-large's
        self.model_facts = config.identifying_facts()
        self.judge_id = (f"{OFFICIAL_VQA_JUDGE}:{Path(model).name}(image_res={config.image_res},"
                         f"beam={config.beam_size},min_length={config.min_length},"
                         f"max_length={config.max_length},float32,v{VERSION})")

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[str]:
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images for {len(questions)} questions")
        answers: list[str] = []
        for start in range(0, len(questions), self.batch_size):
            found = self.answerer.answer(images[start:start + self.batch_size],
                                         questions[start:start + self.batch_size])
            answers += [answer.text for answer in found]
        return answers
