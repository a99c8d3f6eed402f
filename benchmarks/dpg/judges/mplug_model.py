"""mPLUG's visual question answering path in plain PyTorch, read from the official ModelScope folder.

DPG-Bench's official judge is ``pipeline(Tasks.visual_question_answering,
model='damo/mplug_visual-question-answering_coco_large_en')`` from modelscope. modelscope's mPLUG code
needs transformers 4.x; this module is our own implementation of what that pipeline computes, written
from its behaviour (docs/DPG.md, "The mplug judge"), and checked against the official pipeline on
random weights (``tests/test_mplug.py``):

- pre-processing: RGB; resize to ``image_res`` x ``image_res`` with PIL bicubic (what torchvision's
  ``Resize`` does to a PIL image); ``/255``; CLIP mean and std; the question lower-cased, then BERT
  word pieces, ``[CLS] ... [SEP]``, cut and padded to 25 tokens;
- vision: CLIP's ViT (``clip_vision_layers`` pre-norm blocks, QuickGELU, ``ln_post`` on every token,
  no projection), then ``visn_fc`` and ``visn_layer_norm`` when the text width differs;
- text encoder: BERT (``text_encoder_layers``), padding masked with -10000;
- fusion: the last ``fusion_layers`` of ``num_hidden_layers`` BERT layers; layer k (counted from 0)
  is self-attention then cross-attention to the image, except when ``k % stride_layer == 0`` and
  k > 0: then one self-attention over [image; text] and the image part of its output is *added*
  to the image states;
- answer decoder: BERT with causal self-attention and cross-attention to [image; question] states,
  an MLM head whose weights are the decoder's word embeddings, and modelscope's beam search (beam
  ``beam_size`` 5, ``min_length`` 1, ``max_length`` 10 from ``config.yaml``; length penalty
  ((5 + t) / 6) ** 0.6; start token 101, end token 102), whose quirks are kept: a beam that emits
  [SEP] is stored as a hypothesis but keeps growing; a question stops when its best beam ends, and
  then every live beam counts as a hypothesis; the answer is the best-scoring hypothesis;
- decoding: word pieces joined, special tokens dropped, the tokenizer's clean-up of spaces before
  punctuation (``skip_special_tokens=True`` of the slow BERT tokenizer).

Everything runs in float32 (the official run's fp16 flag never reaches the pipeline). The weights
are read with ``torch.load(weights_only=True)``. Batching: each distinct image is encoded once for
all of its questions; questions are decoded together. Answers do not depend on the batch.

This module holds the model (loading, encoders, fusion, beam search) and the folder-to-answers
front; its parts live beside it: ``mplug_config.py`` (the folder's configuration),
``mplug_preprocess.py`` (image tensor, question tokenizer, decoding) and ``mplug_layers.py`` (the
vision tower and BERT layers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from benchmarks.dpg.judges.mplug_config import (END_TOKEN, FILES, START_TOKEN, MPlugConfig, MPlugFormatError,
                                                read_config)
from benchmarks.dpg.judges.mplug_layers import MASKED, BertStack, PredictionHead, VisionTower, extended_mask
from benchmarks.dpg.judges.mplug_preprocess import QuestionTokenizer, image_tensor

LENGTH_PENALTY_ALPHA = 0.6


@dataclass
class Answer:
    token_ids: list[int]   # the best hypothesis, from the start token on (as the official returns it)
    score: float           # its beam score: sum of log-probabilities / ((5 + length) / 6) ** 0.6
    text: str


# ------------------------------------------------------------------------------ the model

class MPlugVQA(nn.Module):
    """The VQA path; parameter names are the official checkpoint's."""

    def __init__(self, config: MPlugConfig):
        super().__init__()
        self.config = config
        self.visual_encoder = nn.Module()
        self.visual_encoder.visual = VisionTower(config)
        if config.projects_vision:
            self.visn_fc = nn.Linear(config.vision_width, config.hidden)
            self.visn_layer_norm = nn.LayerNorm(config.hidden, eps=1e-12)
        self.text_encoder = BertStack(config, config.text_layers, cross=False, embeddings=True)
        self.fusion_encoder = BertStack(config, config.fusion_total, cross=True, embeddings=False)
        self.text_decoder = nn.Module()
        self.text_decoder.bert = BertStack(config, config.decoder_layers, cross=True, embeddings=True)
        self.text_decoder.cls = nn.Module()
        self.text_decoder.cls.predictions = PredictionHead(config)

    # -------------------------------------------------------------------------- loading

    @staticmethod
    def official_state(path: Path) -> dict[str, torch.Tensor]:
        """The checkpoint as the official loader reads it: a ``model`` or ``module`` entry if there
        is one, and every ``model.`` removed from the names."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as exc:  # a truncated download, a corrupt file, a pickle that runs code
            raise MPlugFormatError(f"{path}: cannot be read as a checkpoint ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        if isinstance(state, dict) and "model" in state:
            state = state["model"]
        if isinstance(state, dict) and "module" in state:
            state = state["module"]
        if not isinstance(state, dict):
            raise MPlugFormatError(f"{path} does not hold a state dict")
        return {name.replace("model.", ""): value for name, value in state.items()}

    def load_official(self, state: dict[str, torch.Tensor]) -> None:
        wanted = self.state_dict()
        # the official decoder ties its output layer to its word embeddings (and the two biases):
        # whichever of a tied pair the official loader copies last is what both hold
        ties = {"text_decoder.cls.predictions.decoder.weight": "text_decoder.bert.embeddings.word_embeddings.weight",
                "text_decoder.cls.predictions.decoder.bias": "text_decoder.cls.predictions.bias"}
        chosen = {}
        for name in wanted:
            if name in ties:
                value = state.get(name, state.get(ties[name]))
            elif name == "text_decoder.bert.embeddings.word_embeddings.weight":
                value = state.get("text_decoder.cls.predictions.decoder.weight", state.get(name))
            else:
                value = state.get(name)
            if value is None:
                continue
            chosen[name] = value
        missing = sorted(set(wanted) - set(chosen))
        if missing:
            raise MPlugFormatError(f"{len(missing)} tensor(s) the VQA path needs are not in the checkpoint, "
                                   f"e.g. {', '.join(missing[:3])}")
        wrong = [f"{name} {tuple(chosen[name].shape)} (expected {tuple(wanted[name].shape)})"
                 for name in wanted if tuple(chosen[name].shape) != tuple(wanted[name].shape)]
        if wrong:
            raise MPlugFormatError(f"tensor shapes differ from config.yaml/config_bert.json: {wrong[0]}")
        # assign: a model built on the meta device takes the loaded tensors as they are
        self.load_state_dict({name: value.to(torch.float32).contiguous() for name, value in chosen.items()},
                             assign=True)

    # -------------------------------------------------------------------------- encoders

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        states = self.visual_encoder.visual(pixels)
        if self.config.projects_vision:
            states = self.visn_layer_norm(self.visn_fc(states))
        return states

    def encode_questions(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.text_encoder.embeddings(ids)
        additive = extended_mask(mask)
        for layer in self.text_encoder.encoder.layer:
            x = layer.feed_forward(layer.attention.self_attend(x, additive))
        return x

    def fuse(self, text: torch.Tensor, mask: torch.Tensor, images: torch.Tensor,
             owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fusion layers. ``images`` holds one row per distinct image and ``owner[q]`` is the row of
        question q's image: while the image states are not yet changed by a joint layer, each
        image's keys and values are computed once for all of its questions."""
        additive = extended_mask(mask)
        image_states, shared = images, True
        for k, layer in enumerate(self.fusion_encoder.encoder.layer[self.config.fusion_start:]):
            if k == 0 or k % self.config.stride_layer != 0:
                attended = layer.attention.self_attend(text, additive)
                keys, values = layer.crossattention.keys_values(image_states)
                if shared:
                    keys, values = keys[owner], values[owner]
                text = layer.feed_forward(layer.crossattention(attended, keys, values, None))
            else:
                if shared:
                    image_states, shared = image_states[owner], False
                joint = torch.cat([image_states, text], dim=1)
                joint_mask = torch.cat([torch.zeros_like(additive[..., :1]).expand(-1, -1, -1, image_states.shape[1]),
                                        additive], dim=-1)
                out = layer.feed_forward(layer.attention.self_attend(joint, joint_mask))
                new_images, text = out.split([image_states.shape[1], text.shape[1]], dim=1)
                image_states = image_states + new_images
        if shared:
            image_states = image_states[owner]
        return image_states, text

    # -------------------------------------------------------------------------- answers

    def _decoder_memory(self, states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [layer.crossattention.keys_values(states) for layer in self.text_decoder.bert.encoder.layer]

    def _next_log_probs(self, seqs: torch.Tensor, memory: list, memory_mask: torch.Tensor) -> torch.Tensor:
        """seqs (Q, beams, length) -> log-probabilities of the next token (Q, beams, vocabulary).
        The whole prefix is run again at every step, as the official search does."""
        length = seqs.shape[-1]
        x = self.text_decoder.bert.embeddings(seqs)
        causal = torch.ones(length, length, device=seqs.device).tril()
        self_mask = (1.0 - causal) * MASKED
        for layer, (keys, values) in zip(self.text_decoder.bert.encoder.layer, memory):
            x = layer.attention.self_attend(x, self_mask)
            # memory (Q, heads, S, d) serves every beam of its question
            x = layer.crossattention(x, keys[:, None], values[:, None], memory_mask)
            x = layer.feed_forward(x)
        logits = self.text_decoder.cls.predictions(x[..., -1, :])
        return torch.log(torch.softmax(logits, dim=-1))

    def beam_search(self, states: torch.Tensor, state_mask: torch.Tensor) -> list[tuple[list[int], float]]:
        """modelscope's beam search over each question's [image; question] states."""
        config = self.config
        beams, questions = config.beam_size, states.shape[0]
        memory = self._decoder_memory(states)
        memory_mask = ((1.0 - state_mask[:, None, None, None, :].to(torch.float32))
                       * torch.finfo(torch.float32).min)
        active = torch.arange(questions, device=states.device)
        seqs = torch.full((questions, beams, 1), START_TOKEN, dtype=torch.long, device=states.device)
        beam_log_probs = torch.full((questions, beams), float("-inf"), device=states.device)
        beam_log_probs[:, 0] = 0.0
        hypotheses: list[list[tuple[float, torch.Tensor]]] = [[] for _ in range(questions)]
        best: list[tuple[list[int], float] | None] = [None] * questions
        for step in range(config.max_length):
            log_probs = self._next_log_probs(seqs, memory, memory_mask)
            vocabulary = log_probs.shape[-1]
            if step < config.min_length:
                log_probs[..., END_TOKEN] = -1e20
            penalty = ((5.0 + (step + 1)) / 6.0) ** LENGTH_PENALTY_ALPHA
            log_probs = log_probs + beam_log_probs[..., None]
            scores = (log_probs / penalty).reshape(len(active), beams * vocabulary)
            top_scores, top_index = scores.topk(beams, dim=-1)
            beam_log_probs = top_scores * penalty
            origin = torch.div(top_index, vocabulary, rounding_mode="floor")
            tokens = top_index.fmod(vocabulary)
            seqs = torch.cat([seqs.gather(1, origin[..., None].expand(-1, -1, seqs.shape[-1])),
                              tokens[..., None]], dim=-1)
            finished = tokens.eq(END_TOKEN)
            if step + 1 == config.max_length:
                finished.fill_(True)
            done = finished[:, 0].clone()
            if not finished.any():
                continue
            for row in finished.any(dim=1).nonzero().view(-1).tolist():
                question = int(active[row])
                ended = range(beams) if done[row] else finished[row].nonzero().view(-1).tolist()
                hypotheses[question] += [(float(top_scores[row, j]), seqs[row, j]) for j in ended]
                if done[row]:
                    score, sequence = sorted(hypotheses[question], key=lambda h: h[0], reverse=True)[0]
                    best[question] = ([int(t) for t in sequence], score)
            keep = (~done).nonzero().view(-1)
            if len(keep) == 0:
                break
            active, seqs, beam_log_probs = active[keep], seqs[keep], beam_log_probs[keep]
            memory, memory_mask = [(k[keep], v[keep]) for k, v in memory], memory_mask[keep]
        unanswered = [question for question, answer in enumerate(best) if answer is None]
        if unanswered:  # read_config refuses settings that lead here; never return fewer answers
            raise RuntimeError(f"the beam search (max_length {config.max_length}) finished no beam for "
                               f"{len(unanswered)} of {questions} question(s), e.g. question {unanswered[0]}")
        return best  # type: ignore[return-value]

    @torch.inference_mode()
    def answer_batch(self, pixels: torch.Tensor, owner: torch.Tensor, ids: torch.Tensor,
                     mask: torch.Tensor) -> list[tuple[list[int], float]]:
        """pixels (images, 3, r, r); owner (questions,) -> row of each question's image; ids, mask
        (questions, 25). Returns (token ids, beam score) per question."""
        images = self.encode_images(pixels)
        text = self.encode_questions(ids, mask)
        image_out, text_out = self.fuse(text, mask, images, owner)
        states = torch.cat([image_out, text_out], dim=1)
        state_mask = torch.cat([torch.ones(image_out.shape[:2], dtype=mask.dtype, device=mask.device), mask], dim=1)
        return self.beam_search(states, state_mask)


class MPlugAnswerer:
    """Folder in, answers out: pre-processing, batching by image, decoding."""

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu"):
        self.folder = Path(folder)
        absent = [name for name in FILES if not (self.folder / name).is_file()]
        if absent:
            raise MPlugFormatError(f"{self.folder} is not a ModelScope mPLUG folder: no {', '.join(absent)}")
        self.config = read_config(self.folder)
        self.device = torch.device(device)
        self.tokenizer = QuestionTokenizer(self.folder / "vocab.txt")
        with torch.device("meta"):  # no memory and no random initialisation for weights about to be loaded
            model = MPlugVQA(self.config)
        model.load_official(MPlugVQA.official_state(self.folder / "pytorch_model.bin"))
        self.model = model.to(self.device).eval()

    def pixels(self, image: Image.Image) -> torch.Tensor:
        return image_tensor(image, self.config.image_res)

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Answer]:
        """One answer per (image, question); an image object repeated across pairs (a DPG tile with
        its questions) is pre-processed and encoded once."""
        if not questions:
            return []
        rows: dict[int, int] = {}
        distinct: list[Image.Image] = []
        owner = []
        for image in images:
            if id(image) not in rows:
                rows[id(image)] = len(distinct)
                distinct.append(image)
            owner.append(rows[id(image)])
        pixels = torch.stack([self.pixels(image) for image in distinct]).to(self.device)
        ids, mask = self.tokenizer(questions)
        found = self.model.answer_batch(pixels, torch.tensor(owner, device=self.device),
                                        ids.to(self.device), mask.to(self.device))
        if len(found) != len(questions):
            raise RuntimeError(f"mplug: {len(found)} answers for {len(questions)} questions")
        return [Answer(tokens, score, self.tokenizer.decode(tokens)) for tokens, score in found]
