"""GenEval's colour judge: zero-shot CLIP classification of one object crop into a fixed colour list.

Reproduces ``color_classification`` of djghosh13/geneval ``evaluation/evaluate_images.py`` (see
PROTOCOLS.md 1.4): the image is pasted through the object's mask onto a flat ``#999`` canvas, cropped
to the object's box (PIL rounds float coordinates), put through the open_clip evaluation transform
and compared with a text classifier built clip_benchmark-style from three templates per colour.

Works with open_clip 2.20.0 (the official environment) and 3.x. Version notes:
- 3.x builds ``ViT-L-14`` with plain GELU even for ``pretrained="openai"`` (it only warns), while the
  OpenAI weights were trained with QuickGELU; we force QuickGELU whenever the tag asks for it, which
  is what 2.20.0's ``load_openai_model`` path did.
- 2.20.0 downloaded OpenAI's TorchScript ``ViT-L-14.pt``; 3.x fetches the same weights from the
  Hugging Face Hub (``timm/vit_large_patch14_clip_224.openai``). A local copy of either file can be
  passed as ``pretrained``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.devices import resolve_device
from harness.errors import HarnessError
from harness.judges.base import Detection
from harness.registry import register

#: bumped whenever a change here could change a verdict (it is part of ``judge_id``)
VERSION = 1

#: the official templates; ``{c}`` is the colour, ``{cls}`` the object class
TEMPLATES = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")


def build_crop(image: Image.Image, obj: Detection, bgcolor: str = "#999", crop: bool = True) -> Image.Image:
    """The picture the official code shows CLIP for one object (before the CLIP transform).

    With a mask, the object's pixels are pasted onto a flat ``bgcolor`` canvas (``"original"``: onto
    the image itself, i.e. no masking); without a mask the image is used as is. Then the result is
    cropped to the box; ``Image.crop`` rounds float coordinates (half to even), as upstream.
    """
    rgb = image.convert("RGB")
    if obj.mask is not None:
        mask = np.asarray(obj.mask).astype(bool)
        if mask.shape != (rgb.height, rgb.width):
            raise ValueError(f"mask shape {mask.shape} does not match image size {rgb.size[::-1]} (H, W)")
        canvas = rgb.copy() if bgcolor == "original" else Image.new("RGB", rgb.size, color=bgcolor)
        rgb = Image.composite(rgb, canvas, Image.fromarray(mask))
    if crop:
        rgb = rgb.crop(tuple(float(v) for v in obj.box[:4]))
    return rgb


def _is_torchscript(path: str) -> bool:
    """OpenAI's own checkpoints (``ViT-L-14.pt``) are TorchScript archives, which need their loader."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())


@register("color_classifier", "open-clip")
class OpenClipColorClassifier:
    """Zero-shot colour classifier on open_clip (default ViT-L-14 with OpenAI weights, as GenEval).

    ``pretrained`` is an open_clip tag or a local checkpoint file. ``model_config`` builds the
    architecture from an explicit open_clip config dict instead of a named one (tests: tiny model,
    random weights when ``pretrained=None``). ``quick_gelu=None`` follows the tag, and for a local
    file assumes OpenAI weights when the architecture has an ``openai`` tag (GenEval's case).
    ``amp`` mirrors clip_benchmark's fp16 autocast, used on CUDA only.
    """

    def __init__(self, model: str = "ViT-L-14", pretrained: str | None = "openai", device: str = "auto",
                 bgcolor: str = "#999", crop: bool = True, batch_size: int = 16,
                 model_config: dict | None = None, quick_gelu: bool | None = None, amp: bool = True):
        if model_config is not None and pretrained is not None and not os.path.isfile(pretrained):
            raise HarnessError(f"model_config builds a model with random weights; pretrained must be None "
                               f"or a checkpoint file, not {pretrained!r}")
        self.model_name, self.pretrained, self.model_config = model, pretrained, model_config
        self.device = resolve_device(device)
        self.bgcolor, self.batch_size = bgcolor, int(batch_size)
        self.crop = str(crop).lower() not in ("0", "false", "no")  # specs may say crop="0", as upstream
        self.quick_gelu, self.amp = quick_gelu, amp
        self._model: Any = None
        self._preprocess: Any = None
        self._tokenizer: Any = None
        self._classifiers: dict[tuple[str, tuple[str, ...]], torch.Tensor] = {}

        if model_config is not None:
            digest = hashlib.sha256(json.dumps(model_config, sort_keys=True).encode()).hexdigest()[:12]
            self.model_name = f"harness-config-{digest}"
            weights = "random" if pretrained is None else Path(pretrained).name
        else:
            weights = str(pretrained) if pretrained is None or not os.path.isfile(pretrained) \
                else Path(pretrained).name
        options = "" if (bgcolor, self.crop) == ("#999", True) else f":bg={bgcolor}:crop={int(self.crop)}"
        options += "" if quick_gelu is None else f":quick_gelu={int(quick_gelu)}"
        self.judge_id = f"open-clip:{self.model_name}:{weights}{options}:v{VERSION}"

    # ----------------------------------------------------------------------------- loading
    @property
    def model(self) -> torch.nn.Module:
        """The CLIP model, loaded on first use."""
        self._ensure_loaded()
        return self._model

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        import open_clip

        if self.model_config is not None:
            self._register_config(open_clip)
        model, self._preprocess = self._create(open_clip)
        self._model = model.to(self.device).eval()
        self._tokenizer = open_clip.get_tokenizer(self.model_name)

    def _register_config(self, open_clip: Any) -> None:
        """open_clip only builds named architectures: write the dict as ``<name>.json`` and add it."""
        if self.model_name in open_clip.list_models():
            return
        # open_clip reads the file into its registry at once and skips paths that are gone on later
        # rescans, keeping what it read, so the file need not outlive this call
        with tempfile.TemporaryDirectory(prefix="harness-open-clip-") as folder:
            path = Path(folder) / f"{self.model_name}.json"
            path.write_text(json.dumps(self.model_config))
            open_clip.add_model_config(path)

    def _create(self, open_clip: Any) -> tuple[torch.nn.Module, Any]:
        """The model and its evaluation transform, built the way the official script does."""
        name, pretrained = self.model_name, self.pretrained
        if name not in open_clip.list_models():
            raise HarnessError(f"open_clip has no model {name!r}; known: {', '.join(open_clip.list_models())}")

        def create(weights: str | None, quick: bool) -> tuple[torch.nn.Module, Any]:
            model, _, transform = open_clip.create_model_and_transforms(
                name, pretrained=weights, device="cpu", force_quick_gelu=quick)
            return model, transform

        if pretrained is None:
            return create(None, False)
        if os.path.isfile(pretrained):
            if _is_torchscript(pretrained):
                model = open_clip.load_openai_model(pretrained, precision="fp32", device="cpu")
                return model, open_clip.image_transform(model.visual.image_size, is_train=False,
                                                        mean=open_clip.OPENAI_DATASET_MEAN,
                                                        std=open_clip.OPENAI_DATASET_STD)
            openai_cfg = open_clip.get_pretrained_cfg(name, "openai")
            return create(pretrained, self.quick_gelu if self.quick_gelu is not None
                          else bool(openai_cfg.get("quick_gelu")))
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        if not tag_cfg:
            raise HarnessError(
                f"open_clip pretrained={pretrained!r} is neither a known tag for {name} "
                f"(known: {', '.join(open_clip.list_pretrained_tags_by_model(name))}) nor an existing file")
        try:
            return create(pretrained, self.quick_gelu if self.quick_gelu is not None
                          else bool(tag_cfg.get("quick_gelu")))
        except Exception as exc:
            hub = tag_cfg.get("hf_hub", "").rstrip("/")
            how = f"`hf download {hub}`" if hub else f"downloading {tag_cfg.get('url')}"
            raise HarnessError(
                f"could not load open_clip weights {name}/{pretrained} (from {hub or tag_cfg.get('url')}): they "
                f"are not in the local cache and cannot be downloaded (offline? HF_HUB_OFFLINE="
                f"{os.environ.get('HF_HUB_OFFLINE')}). Fetch them once with network access ({how}), or pass a "
                f"local checkpoint file as pretrained='/path/to/checkpoint' (open_clip .bin/.safetensors, or "
                f"OpenAI's ViT-L-14.pt). Cause: {exc}") from exc

    def _autocast(self) -> Any:
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    # ----------------------------------------------------------------------------- classifying
    def text_classifier(self, class_name: str, colors: Sequence[str]) -> torch.Tensor:
        """The (embed_dim, n_colours) zero-shot weights for one object class, computed once per class.

        Per colour: embed the three templates, L2-normalise each, average, renormalise.
        """
        key = (class_name, tuple(colors))
        if key not in self._classifiers:
            self._ensure_loaded()
            columns = []
            with torch.inference_mode(), self._autocast():
                for color in colors:
                    texts = [t.format(c=color, cls=class_name) for t in TEMPLATES]
                    tokens = self._tokenizer(texts).to(self.device)
                    embeddings = F.normalize(self._model.encode_text(tokens), dim=-1)
                    mean = embeddings.mean(dim=0)
                    columns.append(mean / mean.norm())
            self._classifiers[key] = torch.stack(columns, dim=1)
        return self._classifiers[key]

    def classify(self, image: Image.Image, objects: Sequence[Detection], class_name: str,
                 colors: Sequence[str]) -> list[str]:
        """One colour from ``colors`` per object: argmax of 100 x normalised image features . classifier."""
        if not objects:
            return []
        classifier = self.text_classifier(class_name, colors)
        predictions: list[int] = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(objects), self.batch_size):
                chunk = objects[start:start + self.batch_size]
                pixels = torch.stack([self._preprocess(build_crop(image, obj, self.bgcolor, self.crop))
                                      for obj in chunk]).to(self.device)
                features = F.normalize(self._model.encode_image(pixels), dim=-1)
                logits = 100.0 * features @ classifier
                predictions.extend(logits.argmax(dim=1).tolist())
        return [colors[index] for index in predictions]
