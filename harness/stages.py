"""Pipeline stages: the plugin interface, and the built-in stages that make data and models
(``synth``, ``shapes-vq``, ``tiny-janus``, ``train``, ``train-understanding``).

A stage writes one artifact into its stage folder and returns a ``StageResult``; evaluation and the
report are in ``harness.stages_eval``, the pipeline itself in ``harness.pipeline``. Heavy imports
(torch, transformers, the trainers) happen in ``run``, so loading the plugins stays cheap.
"""
from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

from harness import registry
from harness.artifacts import MANIFEST, read_manifest, write_manifest
from harness.errors import HarnessError
from harness.hashing import hash_value
from harness.registry import register

STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")  # a folder name; not a number (overrides use indices)


# ------------------------------------------------------------------------------------------ the interface


@dataclass(frozen=True)
class Ref:
    """A parameter that names an earlier stage; ``wants`` lists the outputs that stage may produce."""

    param: str
    stage: str
    wants: tuple[str, ...]


@dataclass(frozen=True)
class StageResult:
    """What a stage made: its artifact folder and hash, the path downstream stages (and people) use
    (a model folder, a report file; the folder by default), and a few headline facts. The pipeline
    fills in ``stage``, ``kind`` and ``inputs`` (stage name -> hash) after ``run``."""

    folder: Path
    hash: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    stage: str = ""
    kind: str = ""
    inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def target(self) -> Path:
        return self.path or self.folder


@dataclass
class StageContext:
    """A stage's view of the pipeline: the seed, where relative paths resolve, progress bars, and
    every stage result so far (for reports)."""

    seed: int
    base_dir: Path
    out: Path
    show_progress: bool = True
    results: dict[str, StageResult] = field(default_factory=dict)

    def resolve(self, path: str) -> Path:
        """A path from the pipeline file, relative to the file's folder."""
        return (self.base_dir / path) if not Path(path).is_absolute() else Path(path)


class Stage:
    """A stage plugin. ``check`` validates parameters when the pipeline is loaded (raise ValueError
    with a one-line message) and returns the stages they name; ``run`` makes the artifact."""

    output: ClassVar[str] = ""  # what it produces: dataset, vq-tokenizer, model, evaluation, report
    version: ClassVar[str] = "1"
    #: True: a changed identity re-runs in the old folder (the stage reuses what still fits itself);
    #: False: the old folder is removed first
    reuse_folder: ClassVar[bool] = False
    #: True: the stage needs every earlier stage (a report's lineage table)
    needs_all_earlier: ClassVar[bool] = False

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        raise NotImplementedError

    def identity(self, params: Mapping[str, Any], ctx: StageContext) -> Any:
        """What, besides the upstream hashes, decides the artifact (default: the parameters)."""
        return dict(params)

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        raise NotImplementedError


def stage_plugin(kind: str) -> Stage:
    return registry.get("stage", kind)()


# ------------------------------------------------------------------------------------------ helpers


def check_keys(params: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    """One-line ValueError for unknown or missing parameters."""
    allowed = set(allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown params {unknown} (allowed: {', '.join(sorted(allowed))})")
    missing = [name for name in required if name not in params]
    if missing:
        raise ValueError(f"missing params {missing}")


def typed_settings(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` for the dataclass ``cls``, with float fields given as YAML strings ("5e-6": YAML 1.1
    needs a dot to read a number) converted; a one-line ValueError for a value of the wrong type, so
    a bad value fails when the pipeline is loaded, not minutes into a run."""
    hints = typing.get_type_hints(cls)
    typed = {}
    for key, value in params.items():
        kind, is_bool = hints.get(key), isinstance(value, bool)
        if kind is float and not is_bool and isinstance(value, (int, float, str)):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
        elif kind is float or (kind is int and (is_bool or not isinstance(value, int))):
            raise ValueError(f"{key} must be {'a number' if kind is float else 'an integer'}, got {value!r}")
        elif kind is bool and not is_bool:
            raise ValueError(f"{key} must be true or false, got {value!r}")
        typed[key] = value
    return typed


def stage_name(params: Mapping[str, Any], key: str) -> str:
    value = params[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be the name of an earlier stage, got {value!r}")
    return value


def folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative), less the manifest."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def manifest_result(folder: Path, facts: Mapping[str, Any], path: Path | None = None) -> StageResult:
    manifest = read_manifest(folder)
    if manifest is None:
        raise HarnessError(f"{folder}: the stage finished without writing {MANIFEST}")
    return StageResult(folder, manifest.hash, dict(facts), path)


# ------------------------------------------------------------------------------------------ synth


@register("stage", "synth")
class SynthStage(Stage):
    """Run a data recipe. Params: ``recipe`` (path, relative to the pipeline file), ``overrides``
    (the recipe's dotted overrides, e.g. ``{steps.0.params.t2i: 20}``)."""

    output = "dataset"

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"recipe", "overrides"}, {"recipe"})
        if not isinstance(params["recipe"], str):
            raise ValueError(f"recipe must be a path, got {params['recipe']!r}")
        if not isinstance(params.get("overrides") or {}, Mapping):
            raise ValueError("overrides must be a mapping of dotted keys to values")
        return []

    def _recipe(self, params: Mapping[str, Any], ctx: StageContext):
        from harness.recipe import RecipeSpec

        recipe = RecipeSpec.load(ctx.resolve(params["recipe"]))
        return recipe.with_overrides(params["overrides"]) if params.get("overrides") else recipe

    def identity(self, params: Mapping[str, Any], ctx: StageContext) -> Any:
        from harness.synth import build_plugins

        recipe = self._recipe(params, ctx)  # the recipe's content, not its path
        plugins = build_plugins(recipe)
        return {"recipe": recipe.identity(plugins), "sources": plugins[0].input_hashes()}

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from harness.synth import synthesize

        outcome = synthesize(self._recipe(params, ctx), out=folder, show_progress=ctx.show_progress)
        info = outcome.artifact.info
        if info.get("failed"):
            raise HarnessError(f"{info['failed']} rows of the recipe failed (see {folder / 'failures.jsonl'}); "
                               "run the pipeline again to retry them")
        facts = {"rows": info.get("rows", 0), "dropped": info.get("dropped", 0), "cost_usd": info.get("cost_usd", 0)}
        return StageResult(folder, outcome.artifact.hash, facts)


# ------------------------------------------------------------------------------------------ VQ tokenizer


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

        train_shapes_vq(folder, **self._settings(params))
        info = read_manifest(folder).info  # metrics.json plus the timings
        keys = ("held_out_accuracy", "final_reconstruction_loss", "train_seconds")
        return manifest_result(folder, {k: info[k] for k in keys if k in info})


# ------------------------------------------------------------------------------------------ tiny Janus


def prompt_words(dataset: Path) -> list[str]:
    """The words of a dataset's texts, as the tiny Janus's word-level tokenizer splits them (lowercase
    runs of letters and digits): the prompts of its ShareGPT-4o-Image export and the turns of its
    LLaVA export, whichever it has."""
    from harness.dataset_formats import LLAVA_FILE, SHAREGPT4O_FILE, read_llava, read_sharegpt4o

    texts: list[str] = []
    if (dataset / LLAVA_FILE).is_file():
        texts += [value for conversation in read_llava(dataset / LLAVA_FILE) for _, value in conversation.turns]
    if (dataset / SHAREGPT4O_FILE).is_file() or not texts:
        texts += [sample.prompt for sample in read_sharegpt4o(dataset_json(dataset))]
    return sorted({word for text in texts for word in re.findall(r"\w+", text.lower())})


def dataset_json(folder: Path) -> Path:
    from harness.dataset_formats import SHAREGPT4O_FILE

    path = folder / SHAREGPT4O_FILE
    if not path.is_file():
        raise HarnessError(f"{folder} has no {SHAREGPT4O_FILE}: add sharegpt4o to the recipe's export list"
                           " (or llava, for the words of a tiny Janus)")
    return path


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


# ------------------------------------------------------------------------------------------ training


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
        model = train(base.target, dataset_json(data.folder), folder, self._config(params))
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
