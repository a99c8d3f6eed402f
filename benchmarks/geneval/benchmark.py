"""GenEval as a harness benchmark: requests in the official layout, official rules, official mean.

Images go to ``RUN/images/<NNNNN>/samples/<KKKK>.png`` with ``RUN/images/<NNNNN>/metadata.jsonl``,
the layout the official ``evaluate_images.py`` reads, and ``RUN/results.jsonl`` is written in the
official format so ``summary_scores.py`` can re-read it unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.geneval import aggregate, results_io
from benchmarks.geneval.data import COLORS, PROMPT_SET, TAGS, load_class_names, load_metadata
from benchmarks.geneval.rules import GenEvalOptions, score_image
from harness import registry
from harness.benchmark import Benchmark, Column, ScoreScale
from harness.errors import InputError
from harness.fileio import atomic_write_text
from harness.hashing import hash_file, hash_value
from harness.images import load_image
from harness.models.base import Request
from harness.registry import register
from harness.schema import SampleRecord
from harness.seeds import sample_seed

BENCHMARK_NAME = "geneval"
#: official --options that belong to the judges, not to the rules: set them on the judge plugins
JUDGE_SIDE_OPTIONS = {"bgcolor": "color_classifier", "crop": "color_classifier",
                      "clip_model": "color_classifier (model)", "model": "detector"}
#: detectors that run the official network and weights: GenEval's Mask2Former on transformers (at
#: the official Swin-S shapes), the mmdet reference, and detections the official code saved
OFFICIAL_DETECTORS = ("geneval-mask2former", "mmdet-mask2former", "precomputed")
RULE_OPTIONS = ("threshold", "counting_threshold", "max_objects", "max_overlap", "position_threshold")
#: the official checkpoint's sha256 prefix (OpenMMLab's file name carries it; the full hash is not
#: published), which ``geneval-mask2former`` checks unless its ``sha256`` parameter says otherwise
OFFICIAL_CHECKPOINT_SHA256 = "743b7d99"
#: GenEval's colour classifier: open_clip ViT-L-14 with OpenAI's weights
OFFICIAL_CLIP = {"model": "ViT-L-14", "pretrained": "openai"}


def load_prompt_set(prompts: str, per_tag: int, prompt_seed: int) -> list[dict]:
    """``official`` (the packaged 553 prompts), a registered prompt set (``PROMPT_SET`` plugins, e.g.
    the shapes world's ``shapes``), or a metadata path."""
    if prompts == "official":
        return load_metadata()
    if prompts in registry.names(PROMPT_SET):
        return registry.get(PROMPT_SET, prompts)(per_tag=per_tag, seed=prompt_seed)
    return load_metadata(prompts)


@register("benchmark", BENCHMARK_NAME)
class GenEval(Benchmark):
    """GenEval (djghosh13/geneval): 553 prompts x 4 images, detector + CLIP colour rules.

    Args:
        prompts: ``"official"``, a registered prompt set (``"shapes"``) or the path of an ``evaluation_metadata.jsonl``.
        images_per_prompt: 4 in the official protocol.
        per_tag, prompt_seed: size and seed of the shapes-world prompt set (ignored otherwise).
        options: the official ``--options`` (threshold, counting_threshold, max_objects,
            max_overlap, position_threshold, bgcolor, crop, clip_model).
        class_names_file: detector class order (default: the 80 COCO names GenEval ships).
    """

    judge_roles = {"detector": "detector", "color_classifier": "color_classifier"}
    version = "1"
    scoring_keys = frozenset({"options", "aggregation", "class_names_hash"})
    card_only_keys = frozenset({"prompt_set", "metadata_hash", "prompts"})
    breakdown = "tasks"
    headline_aggregation = "group_mean"  # tag accuracies, then their mean
    paired_test = "mcnemar"  # each image passes or fails
    scale_note = "0-1, unweighted mean of the six per-tag image accuracies"
    published_scale = ScoreScale(0.0, 1.0, categories=TAGS, headline_is_mean=True)
    leaderboard_order = 10
    leaderboard_columns = (Column("GenEval", "overall", 3, "0-1"),)
    # Gate margin = 3.29 x SE of the difference of two equally good runs at 553 prompts x 4 images
    # (reports/gate.py). Each prompt passes with the tag accuracy of Janus-Pro-7B (0.99, 0.89, 0.59,
    # 0.90, 0.79, 0.66; 80/99/80/94/100/100 prompts) and the runs differ only by seed:
    # Var = (1/36) sum_t 2 p_t (1 - p_t) / (4 n_t), SE = 0.0112, 3.29 SE = 0.037 -> 0.04. Prompts of
    # unequal difficulty only lower SE. A true 5-point drop then fails with probability
    # Phi(1.645 + 0.01 / 0.0112) = 0.99 or more. tests/test_gate_simulation.py measures both error
    # rates on 200 simulated pairs each: same p for every prompt of a tag, the drop fails 98.5% and
    # equal models 3.5%; Beta-distributed prompt difficulty, 100% and 0.5%.
    gate_margin = 0.04
    official_items = 553

    def __init__(self, prompts: str = "official", images_per_prompt: int = 4, per_tag: int = 10,
                 prompt_seed: int = 0, options: Mapping[str, Any] | None = None,
                 class_names_file: str | None = None):
        self.prompt_set = prompts
        self.metadata = load_prompt_set(prompts, per_tag, prompt_seed)
        self.images_per_prompt = int(images_per_prompt)
        if self.images_per_prompt < 1:
            raise InputError(f"geneval: images_per_prompt must be at least 1, got {images_per_prompt}")
        options = dict(options or {})
        for key in set(options) & set(JUDGE_SIDE_OPTIONS):
            raise InputError(f"geneval option {key!r} is a judge setting: set it on the "
                             f"{JUDGE_SIDE_OPTIONS[key]} judge's params instead")
        self.options = GenEvalOptions.from_options({key: str(value) for key, value in options.items()})
        self.class_names_file = class_names_file
        named = prompts in registry.names(PROMPT_SET)  # a prompt set of its own world, not COCO's classes
        self.class_order = None if named else load_class_names(class_names_file)
        self.prompt_set_name = prompts if named or prompts == "official" else "custom"

    @property
    def protocol(self) -> dict[str, Any]:
        return {
            "prompt_set": self.prompt_set_name,
            "metadata_hash": hash_value(self.metadata),
            "prompts": len(self.metadata),
            "images_per_prompt": self.images_per_prompt,
            "image_format": "png",
            "prompt_rewriting": "none (verbatim prompts)",
            "options": {key: value for key, value in self.options.to_dict().items() if key in RULE_OPTIONS},
            "aggregation": "overall = unweighted mean of per-tag image accuracies",
            "class_names_hash": hash_file(self.class_names_file) if self.class_names_file else "packaged",
        }

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        reasons = []
        if protocol.get("prompt_set") != "official":
            reasons.append(f"prompts: {protocol.get('prompt_set')}, not the official 553")
        if protocol.get("images_per_prompt") != 4:
            reasons.append(f"{protocol.get('images_per_prompt')} images per prompt, not 4")
        defaults = {key: value for key, value in GenEvalOptions().to_dict().items() if key in RULE_OPTIONS}
        if protocol.get("options", defaults) != defaults:
            reasons.append(f"rule options {protocol.get('options')} differ from the official defaults")
        judges = protocol.get("judges", {})
        detector = judges.get("detector", {})
        if detector.get("name") not in OFFICIAL_DETECTORS:
            reasons.append(f"detector {detector.get('name')!r} is not the official mmdet Mask2Former")
        elif detector.get("params", {}).get("shapes", "swin-s") != "swin-s":
            reasons.append(f"detector {detector.get('name')!r} at shapes {detector['params']['shapes']!r}, "
                           f"not the official Swin-S network")
        elif detector.get("name") == "geneval-mask2former" and "sha256" in detector.get("params", {}):
            expected = detector["params"]["sha256"]  # None: the default, the official prefix
            if expected is not None and not str(expected).lower().startswith(OFFICIAL_CHECKPOINT_SHA256):
                check = f"sha256 {expected!r}" if expected else "the checkpoint's hash check turned off"
                reasons.append(f"detector 'geneval-mask2former' with {check}: the checkpoint need not be the "
                               f"official one (sha256 {OFFICIAL_CHECKPOINT_SHA256}...)")
        colors = judges.get("color_classifier", {})
        params = colors.get("params") or {}
        clip = {key: params.get(key, value) for key, value in OFFICIAL_CLIP.items()}
        if colors.get("name") == "open-clip" and clip != OFFICIAL_CLIP:
            reasons.append(f"colour classifier 'open-clip' is {clip['model']!r} with pretrained={clip['pretrained']!r}, "
                           f"not CLIP ViT-L-14 with pretrained='openai' (offline, keep 'openai' and put the "
                           f"weights in open_clip's download cache: a local file cannot be told apart)")
        elif colors.get("name") not in ("open-clip", "from-detections"):
            reasons.append(f"colour classifier {colors.get('name')!r} is not CLIP ViT-L-14")
        return reasons

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        requests = []
        for index, metadata in enumerate(self.metadata[:limit]):
            for k in range(self.images_per_prompt):
                sample_id = f"{index:05d}/{k:04d}"
                requests.append(Request(
                    sample_id=sample_id, prompt=metadata["prompt"],
                    seed=sample_seed(run_seed, BENCHMARK_NAME, sample_id),
                    extra={"item_id": f"{index:05d}", "group": metadata["tag"], "metadata": metadata}))
        return requests

    def output_path(self, request: Request) -> str:
        prompt_folder, image = request.sample_id.split("/")
        return f"images/{prompt_folder}/samples/{image}.png"

    def prepare(self, run_dir: Path, requests: Sequence[Request]) -> None:
        for request in requests[::self.images_per_prompt]:
            folder = Path(run_dir) / "images" / request.extra["item_id"]
            folder.mkdir(parents=True, exist_ok=True)
            # one JSON object: the official reader parses the whole file as a single value
            atomic_write_text(folder / "metadata.jsonl", json.dumps(request.extra["metadata"]) + "\n")

    def judge_item(self, request: Request) -> Any:
        return request.extra["metadata"]

    def score(self, requests: Sequence[Request], output_paths: Sequence[Path],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        images = [load_image(path) for path in output_paths]
        detections = judges["detector"].detect(images, [request.sample_id for request in requests])
        classifier = judges["color_classifier"]
        records = []
        for request, path, image, found in zip(requests, output_paths, images, detections, strict=True):
            def color_of(objects, class_name, image=image):
                return classifier.classify(image, objects, class_name, COLORS)

            row = score_image(self.output_path(request), request.extra["metadata"], found, color_of,
                              self.options, class_order=self.class_order)
            records.append(SampleRecord(
                sample_id=request.sample_id, item_id=request.extra["item_id"], group=row["tag"],
                seed=request.seed, output_path=self.output_path(request), output_hash=hash_file(path),
                score=1.0 if row["correct"] else 0.0, correct=bool(row["correct"]),
                rationale=row["reason"], verdict=row))
        return records

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        rows = [record.verdict for record in records if not record.judge_failed]
        counts = {"samples": len(records), "scored": len(rows),
                  "judge_failed": sum(record.judge_failed for record in records)}
        if not rows:
            return {"overall": None, "tasks": {}}, {**counts, "images": 0, "prompts": 0}
        summary = aggregate.summarize(rows)
        scores = {"overall": summary["overall"], "tasks": summary["tasks"],
                  "correct_images": summary["correct_images"], "correct_prompts": summary["correct_prompts"]}
        return scores, {**counts, "images": summary["images"], "prompts": summary["prompts"]}

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        results_io.write_results([r.verdict for r in records if not r.judge_failed], Path(run_dir) / "results.jsonl")
        return ["results.jsonl"]
