"""The mPLUG judge's pre-processing: an image to the pipeline's normalised tensor, a question to BERT
word pieces, and answer ids back to text."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
QUESTION_TOKENS = 25


def image_tensor(image: Image.Image, resolution: int) -> torch.Tensor:
    """(3, r, r) float32, bit for bit what the pipeline's transform makes of a PIL image."""
    rgb = image.convert("RGB").resize((resolution, resolution), Image.BICUBIC)
    pixels = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    pixels = pixels.to(torch.float32).div(255)
    mean = torch.as_tensor(CLIP_MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(CLIP_STD, dtype=torch.float32).view(-1, 1, 1)
    return pixels.sub_(mean).div_(std)


def read_vocabulary(path: Path) -> list[str]:
    """One token per line, as BERT's vocab.txt (the line number is the id)."""
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


class QuestionTokenizer:
    """BERT uncased word pieces of ``question.lower()``: [CLS] ... [SEP], cut and padded to 25."""

    special = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

    def __init__(self, vocab_path: Path):
        from transformers import BertTokenizer

        self.words = read_vocabulary(vocab_path)
        index = {}
        for position, word in enumerate(self.words):
            index[word] = position  # a repeated line: the last one wins, as BERT's load_vocab
        self.tokenizer = BertTokenizer(vocab=index, do_lower_case=True)
        self.special_ids = {index[token] for token in self.special if token in index}

    def __call__(self, questions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.tokenizer([q.lower() for q in questions], padding="max_length", truncation=True,
                                 max_length=QUESTION_TOKENS, return_tensors="pt")
        return encoded["input_ids"], encoded["attention_mask"]

    def decode(self, ids: Sequence[int]) -> str:
        """The slow BERT tokenizer's ``decode(ids, skip_special_tokens=True)``."""
        tokens = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id in self.special_ids:
                continue
            token = self.words[token_id] if 0 <= token_id < len(self.words) else "[UNK]"
            if token in self.special:
                continue
            tokens.append(token)
        text = " ".join(tokens).replace(" ##", "").strip()
        for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                              (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            text = text.replace(before, after)
        return text
