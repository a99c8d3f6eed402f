"""DPG-Bench as a harness benchmark: one request per tile, official VQA scoring, official files.

Each prompt gets ``tiles_per_prompt`` (4) requests ``"<item_id>/<k>"``, k in the official tile
order (top-left, top-right, bottom-left, bottom-right), each with its own seed; tiles are saved as
``RUN/tiles/<item_id>/<k>.png``. A tile is judged on its own (the crop the official script would
cut from the grid). At the end ``write_official`` composes ``RUN/grids/<item_id>.png`` and writes
``RUN/dpg_detail.txt`` and ``RUN/dpg_results.txt`` in the official formats, so that
``harness rescore dpg RUN/dpg_detail.txt --csv dpg_bench.csv`` gives the run's numbers again.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.dpg import results_io
from benchmarks.dpg.data import DPGItem, load_prompts, load_question_graph
from benchmarks.dpg.judges import OFFICIAL_VQA_JUDGE
from benchmarks.dpg.judges.mplug_config import MPLUG_LARGE
from benchmarks.dpg.rules import MODES, ImageOutcome, TileOutcome, aggregate, score_image, score_tile
from harness.benchmark import Benchmark, Column, ScoreScale
from harness.errors import InputError
from harness.fileio import atomic_write_text
from harness.hashing import hash_file, hash_value
from harness.images import load_image, save_png
from harness.models.base import Request
from harness.registry import register
from harness.schema import SampleRecord
from harness.seeds import sample_seed

BENCHMARK_NAME = "dpg"
TILE_ORDER = "top-left, top-right, bottom-left, bottom-right (official crop order)"
#: card key (and tile verdict key) for what the VQA judge says of the model it loaded: the ``mplug``
#: judge's ``model_facts`` (absent for judges that describe none)
VQA_MODEL = "vqa_model"


def item_source(item_id: str) -> str:
    """The collection an item comes from, by id prefix (``partiprompts97`` -> ``partiprompts``)."""
    prefix = re.sub(r"\d+$", "", item_id)
    return prefix or "numeric"


@register("benchmark", BENCHMARK_NAME)
class DPGBench(Benchmark):
    """DPG-Bench (TencentQQGYLab/ELLA ``dpg_bench/``): 1065 dense prompts x 4 tiles, VQA judge.

    Args:
        csv: path of the official question graph ``dpg_bench.csv`` (not vendored).
        prompts: ``"official"`` (the packaged 1065), a folder of ``<item_id>.txt`` files, or a
            JSON-lines file of ``{"item_id", "prompt"}``.
        tiles_per_prompt: 1 to 4 (official: 4, ``dist_eval.sh``'s ``PIC_NUM``).
        mode: ``"official"`` (every quirk, PROTOCOLS 2.5) or ``"fixed"`` (first CSV row kept,
            skipped images scored 0, categories over all tiles after zeroing; not comparable).
    """

    judge_roles = {"vqa": "vqa"}
    version = "1"
    scoring_keys = frozenset({"csv_hash", "csv_items", "mode", "drop_first_csv_row", "failed_images",
                              "categories", "answer_rule", "aggregation"})
    # vqa_model: read back from the verdicts when the run is merged (the judge is named in the
    # judgement keys already, and its folder is fingerprinted there)
    card_only_keys = frozenset({"prompt_set", "prompts_hash", "items", "csv_hash", "csv_items", VQA_MODEL})
    breakdown = "l1"
    breakdown_range = (0.0, 100.0)
    scale_note = ("0-100: overall = 100 x mean image score (image = mean of its tiles; tile = mean of "
                  "its dependency-zeroed yes/no question scores); L1/L2 = 100 x mean of the pooled "
                  "question scores (official mode: last tile, before zeroing)")
    published_scale = ScoreScale(0.0, 100.0, categories=("global", "entity", "attribute", "relation", "other"))
    leaderboard_order = 20
    leaderboard_columns = (Column("DPG", "overall", 2, "0-100"),)
    # Gate margin (reports/gate.py) for 1064 scored images, image = mean of 4 tiles: assumed
    # seed-to-seed SD of a tile score 0.2 (0-1), so the per-image difference SD = 100 x 0.2 x
    # sqrt(2/4) = 14.1, SE = 0.43, 3.29 SE = 1.43 -> 1.5.
    gate_margin = 1.5
    official_items = 1064

    def __init__(self, csv: str, prompts: str = "official", tiles_per_prompt: int = 4,
                 mode: str = "official"):
        if mode not in MODES:
            raise InputError(f"dpg: mode must be one of {sorted(MODES)}, got {mode!r}")
        tiles = int(tiles_per_prompt)
        if not 1 <= tiles <= 4:
            raise InputError(f"dpg: tiles_per_prompt must be 1 to 4 (a 2x2 grid), got {tiles_per_prompt}")
        self.mode, self.rules, self.tiles_per_prompt = mode, MODES[mode], tiles
        self.prompt_set = str(prompts)
        self.prompts = load_prompts(prompts)
        self.csv_path = Path(csv)
        self.graph: dict[str, DPGItem] = load_question_graph(csv, self.rules.drop_first_csv_row)
        absent = [p.item_id for p in self.prompts if p.item_id not in self.graph]
        if absent:
            print(f"dpg: {len(absent)} of {len(self.prompts)} prompt item(s) are not in the CSV (e.g. "
                  f"{', '.join(absent[:3])}); their images are generated but skipped in scoring",
                  file=sys.stderr)
        self._protocol = self._build_protocol()

    def _build_protocol(self) -> dict[str, Any]:
        return {
            "prompt_set": "official" if self.prompt_set == "official" else "custom",
            "prompts_hash": hash_value([[p.item_id, p.prompt] for p in self.prompts]),
            "items": len(self.prompts),
            "tiles_per_prompt": self.tiles_per_prompt,
            "tile_order": TILE_ORDER,
            "grid": "2x2 of r x r tiles (2r x 2r), composed after generation; one tile: the tile",
            "image_format": "png",
            "prompt_rewriting": "none (verbatim prompts)",
            "csv_hash": hash_file(self.csv_path),
            "csv_items": len(self.graph),
            "mode": self.mode,
            **self.rules.to_protocol(),
            "answer_rule": "question score 1.0 iff the VQA answer is exactly 'yes'",
            "aggregation": "tile = mean after dependency zeroing; image = mean of tiles; "
                           "overall = 100 x mean of images; L1/L2 = 100 x mean of pooled questions",
        }

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        reasons = []
        if protocol.get("prompt_set") != "official":
            reasons.append(f"prompts: {protocol.get('prompt_set')}, not the official 1065")
        if protocol.get("tiles_per_prompt") != 4:
            reasons.append(f"{protocol.get('tiles_per_prompt')} tiles per prompt, not 4")
        if protocol.get("mode") != "official":
            reasons.append(f"scoring mode {protocol.get('mode')!r} corrects the official quirks")
        vqa = (protocol.get("judges") or {}).get("vqa", {}).get("name")
        if vqa != OFFICIAL_VQA_JUDGE:
            reasons.append(f"VQA judge {vqa!r} is not mPLUG-large (the official modelscope judge; the "
                           f"{OFFICIAL_VQA_JUDGE!r} judge runs it from the official weights)")
        elif protocol.get(VQA_MODEL) is not None:  # absent: a card from before the judge recorded it
            model = protocol[VQA_MODEL]
            differ = ([f"{key} {model.get(key)!r} (mPLUG-large: {value!r})" for key, value in MPLUG_LARGE.items()
                       if model.get(key) != value] if isinstance(model, dict) else [str(model)])
            if differ:
                reasons.append(f"VQA judge {vqa!r} loaded a model that is not mPLUG-large: {'; '.join(differ)}")
        return reasons

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        requests = []
        for prompt in self.prompts[:limit]:
            for k in range(self.tiles_per_prompt):
                sample_id = f"{prompt.item_id}/{k}"
                requests.append(Request(
                    sample_id=sample_id, prompt=prompt.prompt,
                    seed=sample_seed(run_seed, BENCHMARK_NAME, sample_id),
                    extra={"item_id": prompt.item_id, "group": item_source(prompt.item_id), "tile": k}))
        return requests

    def output_path(self, request: Request) -> str:
        return f"tiles/{request.extra['item_id']}/{request.extra['tile']}.png"

    def judge_item(self, request: Request) -> Any:
        item = self.graph.get(request.extra["item_id"])
        return {"item_id": request.extra["item_id"], "tile": request.extra["tile"],
                "questions": item.to_json() if item is not None else None}

    # ------------------------------------------------------------------------------ judging

    def score(self, requests: Sequence[Request], outputs: Sequence[Path],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        """Ask every question of the item about each tile (one judge call for the batch)."""
        images, questions, spans = [], [], []
        for request, path in zip(requests, outputs, strict=True):
            item = self.graph.get(request.extra["item_id"])
            if item is None:
                spans.append(None)
                continue
            image = load_image(path)
            spans.append((len(questions), len(questions) + len(item.qids), image.size))
            images += [image] * len(item.qids)
            questions += item.questions
        answers = judges["vqa"].answer(images, questions) if questions else []
        if len(answers) != len(questions) or not all(isinstance(a, str) for a in answers):
            raise TypeError(f"the VQA judge must return {len(questions)} strings, got "
                            f"{len(answers)} answers of types {sorted({type(a).__name__ for a in answers})}")
        facts = getattr(judges["vqa"], "model_facts", None) if questions else None
        return [self._record(request, path, span, answers, facts)
                for request, path, span in zip(requests, outputs, spans)]

    def _record(self, request: Request, path: Path, span: tuple | None, answers: list[str],
                facts: dict | None = None) -> SampleRecord:
        item_id, k = request.extra["item_id"], request.extra["tile"]
        common = dict(sample_id=request.sample_id, item_id=item_id, group=request.extra["group"],
                      seed=request.seed, output_path=self.output_path(request), output_hash=hash_file(path),
                      correct=None)
        if span is None:
            return SampleRecord(**common, score=None, rationale="item not in the CSV: not scored",
                                verdict={"item_id": item_id, "tile": k, "error": "not_in_csv"})
        start, end, size = span
        item = self.graph[item_id]
        tile = score_tile(item, answers[start:end])
        verdict = {"item_id": item_id, "tile": k,
                   "crop": list(results_io.crop_boxes(max(size))[k]),
                   "qids": item.qids, "questions": item.questions,
                   "l2": [p.l2 for p in item.propositions.values()],
                   "answers": tile.answers, "raw_scores": tile.raw, "zeroed_scores": tile.zeroed,
                   "tile_score": tile.score, "error": tile.error, **({VQA_MODEL: facts} if facts else {})}
        if tile.error is not None:
            rationale = f"{tile.error}; the official script skips the image"
        else:
            rationale = (f"{int(sum(tile.raw))}/{len(tile.raw)} answered 'yes'; "
                         f"{int(sum(tile.raw) - sum(tile.zeroed))} zeroed by dependencies")
        return SampleRecord(**common, score=tile.score, rationale=rationale, verdict=verdict)

    # ------------------------------------------------------------------------------ aggregation

    def _by_item(self, records: Sequence[SampleRecord]) -> dict[str, dict[int, SampleRecord]]:
        grouped: dict[str, dict[int, SampleRecord]] = {}
        for record in records:
            tile = int(record.sample_id.rsplit("/", 1)[1])
            grouped.setdefault(record.item_id, {})[tile] = record
        return grouped

    def _image_outcome(self, item_id: str, tiles: Mapping[int, SampleRecord]) -> ImageOutcome:
        l2: list[str] | None = None
        outcomes: list[TileOutcome | str] = []
        for k in range(self.tiles_per_prompt):
            record = tiles.get(k)
            if record is None:
                outcomes.append("missing_tiles")
            elif record.judge_failed:
                outcomes.append("judge_failed")
            elif record.verdict.get("error") == "not_in_csv":
                return score_image(item_id, self._grid_path(item_id), None, [], self.rules)
            else:
                v = record.verdict
                l2 = v["l2"]
                outcomes.append(TileOutcome(v["answers"], v["raw_scores"], v["zeroed_scores"],
                                            v["tile_score"], v["error"]))
        if l2 is None and item_id not in self.graph:
            return score_image(item_id, self._grid_path(item_id), None, [], self.rules)
        if l2 is None:
            l2 = [p.l2 for p in self.graph[item_id].propositions.values()]
        return score_image(item_id, self._grid_path(item_id), l2, outcomes, self.rules)

    @staticmethod
    def _grid_path(item_id: str) -> str:
        return f"{results_io.GRID_DIR}/{item_id}.png"

    def _aggregate(self, records: Sequence[SampleRecord]) -> tuple[list[ImageOutcome], dict]:
        images = [self._image_outcome(item_id, tiles) for item_id, tiles in self._by_item(records).items()]
        return images, aggregate(images, self.rules)

    def _note_vqa_model(self, records: Sequence[SampleRecord]) -> None:
        """Put on the card what the judge said of its model, read from the judged tiles' verdicts
        (cached ones too, so a resumed run has the same card): one description, or a note that the
        tiles disagree (some judged before the judge recorded it); nothing when none has one."""
        judged = [r.verdict for r in records if not r.judge_failed and "answers" in r.verdict]
        described = {hash_value(v.get(VQA_MODEL)) for v in judged}
        self._protocol = {key: value for key, value in self._protocol.items() if key != VQA_MODEL}
        if len(described) > 1:
            self._protocol[VQA_MODEL] = (f"the tiles' verdicts describe {len(described)} different models "
                                         f"(or some none): judge again with a fresh cache")
        elif judged and judged[0].get(VQA_MODEL) is not None:
            self._protocol[VQA_MODEL] = judged[0][VQA_MODEL]

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        self._note_vqa_model(records)
        _, result = self._aggregate(records)
        counts = {"samples": len(records),
                  "scored": sum(r.score is not None and not r.judge_failed for r in records),
                  "judge_failed": sum(r.judge_failed for r in records), **result["counts"]}
        return {"overall": result["overall"], "l1": result["l1"], "l2": result["l2"]}, counts

    def item_scores(self, records: Sequence[SampleRecord]) -> dict[str, tuple[str, float]]:
        """Per prompt: 100 x its image score (mean of its tiles), for the images the mode scores."""
        images, _ = self._aggregate(records)
        groups = {record.item_id: record.group for record in records}
        return {image.item_id: (groups.get(image.item_id, ""), 100.0 * image.score)
                for image in images if image.score is not None}

    # ------------------------------------------------------------------------------ official files

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        """``grids/<item_id>.png`` (items whose tiles all exist), ``dpg_detail.txt``, ``dpg_results.txt``."""
        run_dir = Path(run_dir)
        detail: list[str] = []
        for item_id, tiles in self._by_item(records).items():
            resolution = self._write_grid(run_dir, item_id, tiles)
            for k in sorted(tiles):
                verdict = tiles[k].verdict
                if tiles[k].judge_failed or "answers" not in verdict:
                    continue
                crop = results_io.crop_boxes(resolution or verdict["crop"][2] - verdict["crop"][0])[k]
                detail += [results_io.detail_line(self._grid_path(item_id), crop, question, answer)
                           for question, answer in zip(verdict["questions"], verdict["answers"])]
        images, result = self._aggregate(records)
        lines = [results_io.image_line(image.path, image.tile_scores, image.score)
                 for image in images if image.skip_reason is None]
        block = results_io.summary_block(results_io.GRID_DIR, result["l1"], result["l2"],
                                         results_io.GRID_DIR, results_io.RESULTS_FILE, result["overall"])
        atomic_write_text(run_dir / results_io.DETAIL_FILE, "".join(detail))
        atomic_write_text(run_dir / results_io.RESULTS_FILE, "".join(lines) + block + "\n")
        atomic_write_text(run_dir / results_io.ITEMS_FILE, "".join(f"{item}\n" for item in self._by_item(records)))
        return [results_io.DETAIL_FILE, results_io.RESULTS_FILE, results_io.ITEMS_FILE]

    def _write_grid(self, run_dir: Path, item_id: str, tiles: Mapping[int, SampleRecord]) -> int | None:
        """Compose and save the grid; return its tile size r (None when a tile file is missing)."""
        paths = [run_dir / tiles[k].output_path if k in tiles else None for k in range(self.tiles_per_prompt)]
        if any(path is None or not path.is_file() for path in paths):
            return None
        images = [load_image(path) for path in paths]
        save_png(results_io.compose_grid(images), run_dir / self._grid_path(item_id))
        return max(results_io.tile_resolution(image) for image in images)
