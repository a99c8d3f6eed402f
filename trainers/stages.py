"""The training stages of ``harness run``: ``shapes-vq`` (the shapes-world image tokenizer),
``tiny-janus`` (a small random Janus around it), ``train`` (Janus-4o fine-tuning) and
``train-understanding`` (understanding SFT). Heavy imports happen in ``run``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

from harness.artifacts import read_manifest, write_manifest
from harness.dataset_formats import dataset_json, prompt_words
from harness.errors import HarnessError
from harness.hashing import hash_value
from harness.registry import register
from harness.stage import (Ref, Stage, StageContext, StageResult, check_keys, folder_files, manifest_result,
                           stage_name, typed_settings)


def _vq_params() -> set[str]:
    from trainers.shapes_vq import ShapesVQSettings

    return {f.name for f in dataclasses.fields(ShapesVQSettings)} | {"eval_scenes"}


@register("stage", "shapes-vq")
class ShapesVQStage(Stage):
    """Train the shapes-world VQ image tokenizer (``trainers.shapes_vq.train_shapes_vq``). Params:
    its keyword arguments (``steps``, ``batch_size``, ``image_size``, ``patch_size``, ``seed``,
    ``eval_scenes``) and any ``ShapesVQSettings`` field."""

    output = "vq-tokenizer"

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, _vq_params())
        self._settings(params)
        return []

    @staticmethod
    def _settings(params: Mapping[str, Any]) -> dict[str, Any]:
        from trainers.shapes_vq import ShapesVQSettings

        settings = typed_settings(ShapesVQSettings, {k: v for k, v in params.items() if k != "eval_scenes"})
        if settings.get("channel_multiplier") is not None:
            settings["channel_multiplier"] = tuple(settings["channel_multiplier"])
        checked = ShapesVQSettings(**settings)
        checked.multiplier()  # patch size a power of two, channels that GroupNorm(32) accepts
        if checked.image_size % checked.patch_size:
            raise ValueError(f"image_size {checked.image_size} is not a multiple of patch_size {checked.patch_size}")
        return {**settings, **({"eval_scenes": params["eval_scenes"]} if "eval_scenes" in params else {})}

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from trainers.shapes_vq import train_shapes_vq

        train_shapes_vq(folder, progress=ctx.show_progress, **self._settings(params))
        info = read_manifest(folder).info  # metrics.json plus the timings
        keys = ("held_out_accuracy", "final_reconstruction_loss", "train_seconds")
        return manifest_result(folder, {k: info[k] for k in keys if k in info})


@register("stage", "tiny-janus")
class TinyJanusStage(Stage):
    """A tiny randomly initialised Janus checkpoint. Params: ``vq`` (a shapes-vq stage whose
    tokenizer it carries; without it, the random VQ of ``build_tiny_janus``), ``words`` (a synth
    stage whose prompt or conversation words its tokenizer learns), ``hidden``, ``layers``, ``seed``."""

    output = "model"

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"vq", "words", "hidden", "layers", "seed"})
        for key in ("hidden", "layers", "seed"):
            if key in params and (not isinstance(params[key], int) or isinstance(params[key], bool)):
                raise ValueError(f"{key} must be an integer, got {params[key]!r}")
        refs = []
        if "vq" in params:
            refs.append(Ref("vq", stage_name(params, "vq"), ("vq-tokenizer",)))
        if "words" in params:
            refs.append(Ref("words", stage_name(params, "words"), ("dataset",)))
        return refs

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from harness.models.tiny_janus import build_tiny_janus
        from trainers.shapes_vq import tiny_janus_with_vq

        words = prompt_words(inputs[params["words"]].folder) if "words" in params else []
        sizes = {"seed": params.get("seed", 0), "hidden": params.get("hidden", 64), "layers": params.get("layers", 2)}
        if "vq" in params:
            tiny_janus_with_vq(folder, inputs[params["vq"]].folder, words=words, **sizes)
        else:
            build_tiny_janus(folder, words=words, **sizes)
        upstream = {role: inputs[params[role]].hash for role in ("vq", "words") if role in params}
        write_manifest(folder, "model", folder_files(folder),
                       inputs={**upstream, "settings": hash_value({**sizes, "words": words})},
                       spec={"builder": "tiny-janus", **sizes, "words": len(words)})
        return manifest_result(folder, {"parameters": _parameter_count(folder), "words": len(words)})


def _parameter_count(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                count = 1
                for size in handle.get_slice(key).get_shape():
                    count *= size
                total += count
    return total


def _train_fields() -> set[str]:
    from trainers.janus4o.loop import TrainConfig

    # stop_after_steps simulates an interruption: a pipeline stage always trains to the end
    return {f.name for f in dataclasses.fields(TrainConfig)} - {"stop_after_steps"}


@register("stage", "train")
class TrainStage(Stage):
    """Janus-4o fine-tuning (``trainers.janus4o.loop.train``). Params: ``model`` (a model stage),
    ``data`` (a synth stage exporting sharegpt4o), and any ``TrainConfig`` field (``epochs``,
    ``global_batch``, ``micro_batch``, ``learning_rate``, ...)."""

    output = "model"

    #: checkpoints unless the params say otherwise, so an interrupted pipeline resumes its training
    default_checkpoint_every: ClassVar[int] = 100

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"model", "data"} | _train_fields(), {"model", "data"})
        self._config(params)
        return _model_and_data(params)

    def _config(self, params: Mapping[str, Any]):
        from trainers.janus4o.loop import TrainConfig

        return _trainer_config(TrainConfig, params, checkpoint_every=self.default_checkpoint_every)

    def identity(self, params: Mapping[str, Any], ctx: StageContext) -> Any:
        # the trainer's own identity: checkpoint cadence, device and engine do not change the weights,
        # so changing them resumes the run in its folder instead of starting over
        return {"model": params["model"], "data": params["data"], "config": self._config(params).identity()}

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from trainers.janus4o.loop import train

        base, data = inputs[params["model"]], inputs[params["data"]]
        model = train(base.target, dataset_json(data.folder), folder, self._config(params),
                      progress=ctx.show_progress)
        return manifest_result(folder, _train_facts(folder), path=model)


def _model_and_data(params: Mapping[str, Any]) -> list[Ref]:
    return [Ref("model", stage_name(params, "model"), ("model",)),
            Ref("data", stage_name(params, "data"), ("dataset",))]


def _trainer_config(cls: type, params: Mapping[str, Any], **defaults: Any) -> Any:
    """The trainer's config dataclass from a training stage's params (less ``model`` and ``data``)."""
    return cls(**{**defaults, **typed_settings(cls, {k: v for k, v in params.items() if k not in ("model", "data")})})


@register("stage", "train-understanding")
class UnderstandingStage(Stage):
    """Understanding SFT (``trainers.janus4o.understanding``) on LLaVA-layout conversations: caption
    or question-answer recipes (ShareGPT4V, ``shapes-questions``), to be measured on MME and MMBench.
    Params: ``model`` (a model stage), ``data`` (a synth stage exporting llava), and any
    ``UnderstandingConfig`` field (``epochs``, ``global_batch``, ``learning_rate``, ``freeze_vision``, ...)."""

    output = "model"

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        from trainers.janus4o.understanding import UnderstandingConfig

        fields = {f.name for f in dataclasses.fields(UnderstandingConfig)}
        check_keys(params, {"model", "data"} | fields, {"model", "data"})
        self._config(params)
        return _model_and_data(params)

    @staticmethod
    def _config(params: Mapping[str, Any]):
        from trainers.janus4o.understanding import UnderstandingConfig

        return _trainer_config(UnderstandingConfig, params)

    def identity(self, params: Mapping[str, Any], ctx: StageContext) -> Any:
        settings = dataclasses.asdict(self._config(params))
        settings.pop("device")  # where it runs does not pick the samples or the settings
        return {"model": params["model"], "data": params["data"], "config": settings}

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from harness.dataset_formats import LLAVA_FILE
        from trainers.janus4o.understanding import train_understanding

        base, data = inputs[params["model"]], inputs[params["data"]]
        conversations = data.folder / LLAVA_FILE
        if not conversations.is_file():
            raise HarnessError(f"{data.folder} has no {LLAVA_FILE}: add llava to the recipe's export list")
        model = train_understanding(base.target, conversations, folder, self._config(params))
        return manifest_result(folder, _train_facts(folder), path=model)


def _train_facts(folder: Path) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    budget, losses = folder / "budget.json", folder / "loss.json"
    if budget.is_file():
        data = json.loads(budget.read_text(encoding="utf-8"))
        facts.update(steps=data.get("optimizer_steps"), train_seconds=data.get("wall_seconds"))
    if losses.is_file():
        loss = json.loads(losses.read_text(encoding="utf-8")).get("loss") or []
        if loss:
            facts.update(first_loss=round(loss[0], 4), last_loss=round(loss[-1], 4))
    return facts
