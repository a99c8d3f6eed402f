"""Published baselines: the reference numbers of PROTOCOLS.md section 7, on the harness's scales.

The numbers live in ``reports/published.yaml`` (one entry per source and setup; ImgEdit numbers from
different judges are separate entries because they are not comparable). Every entry says, per
benchmark, whether the number was read in the primary source (``verified``) or comes from a
secondary one, and what is known of the setup behind it. The file is checked on load against each
benchmark's own ``published_scale``: unknown benchmarks or breakdown keys, numbers off the
benchmark's scale (79.2 where 0.792 belongs) and headlines that disagree with their own breakdown
are errors naming the file and the entry.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NoReturn

import yaml

from harness import registry
from harness.benchmark import ScoreScale
from harness.errors import InputError
from harness.yamlfile import parse_yaml

PUBLISHED_FILE = Path(__file__).with_name("published.yaml")
PREFIX = "published:"
Fail = Callable[[str], NoReturn]

#: how far a printed headline may sit from the value its breakdown gives (half a unit of the last
#: printed digit: GenEval 0.80 for 0.8033, ImgEdit 3.19 for 3.1889)
HEADLINE_TOLERANCE = 0.005 + 1e-9
#: how far a printed sum may sit from its printed parts (``ScoreScale.sums``; MME prints one decimal)
SUM_TOLERANCE = 0.05 + 1e-9


@dataclass(frozen=True)
class Published:
    """One published entry: ``scores[benchmark]`` = ``{"overall": x, <breakdown key>: {...}, ...}``
    on the harness's scale; ``verified[benchmark]`` True for a primary, checked source;
    ``setup[benchmark]`` what the source says of the setup (split, judge, notes)."""

    name: str
    model: str
    source: str
    scores: dict[str, dict]
    verified: dict[str, bool]
    setup: dict[str, dict]

    def provenance(self, benchmark: str) -> str:
        flag = "verified" if self.verified.get(benchmark) else "secondary"
        return f"published {self.name}: {self.source} ({flag})"


def _entry_lines(text: str) -> dict[str, int]:
    """entry name -> 1-based line of its key, for error messages (best effort)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "entries" and isinstance(value, yaml.MappingNode):
                for entry_key, _ in value.value:
                    lines[str(entry_key.value)] = entry_key.start_mark.line + 1
    return lines


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(fail: Fail, where: str, value: Any, low: float, high: float, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not _number(value):
        fail(f"{where} must be a number{' or null' if nullable else ''}, got {value!r}")
    if not low <= value <= high:
        fail(f"{where} = {value} is off the harness scale [{low:g}, {high:g}] (convert the printed number)")


def _scale_of(fail: Fail, benchmark: Any) -> tuple[ScoreScale, str]:
    """(published scale, breakdown key) of a registered benchmark; any other name fails with a
    "did you mean"."""
    known = [name for name in registry.names("benchmark")
             if registry.get("benchmark", name).published_scale is not None]
    if benchmark not in known:
        match = difflib.get_close_matches(str(benchmark), known, n=1)
        fail(f"unknown benchmark {benchmark!r}{f' (did you mean {match[0]!r}?)' if match else ''}; "
             f"known: {', '.join(known)}")
    declared = registry.get("benchmark", benchmark)
    return declared.published_scale, declared.breakdown


def _check_scores(fail: Fail, benchmark: str, scale: ScoreScale, breakdown: str, scores: Any) -> dict:
    if not isinstance(scores, dict) or "overall" not in scores:
        fail(f"{benchmark}: 'scores' must be a mapping with an 'overall' (null when not reported)")
    allowed = {"overall", *scale.extra, *([breakdown] if breakdown else [])}
    unknown = sorted(set(scores) - allowed)
    if unknown:
        fail(f"{benchmark}: unknown score key(s) {unknown}; allowed: {sorted(allowed)}")
    _check_range(fail, f"{benchmark}.overall", scores["overall"], scale.low, scale.high, nullable=True)
    for key, (low, high) in scale.extra.items():
        _check_range(fail, f"{benchmark}.{key}", scores.get(key), low, high, nullable=True)
    parts = scores.get(breakdown, {}) if breakdown else {}
    if not isinstance(parts, dict):
        fail(f"{benchmark}.{breakdown} must be a mapping of category -> number")
    part_range = scale.part_range or (scale.low, scale.high)
    for name, value in parts.items():
        if scale.categories is not None and name not in scale.categories:
            match = difflib.get_close_matches(str(name), scale.categories, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            fail(f"{benchmark}.{breakdown}: unknown category {name!r}{hint}")
        _check_range(fail, f"{benchmark}.{breakdown}.{name}", value, *part_range, nullable=False)
    complete = scale.categories is not None and set(parts) == set(scale.categories)
    if scale.headline_is_mean and complete and scores["overall"] is not None:
        mean = sum(parts.values()) / len(parts)
        if abs(mean - scores["overall"]) > HEADLINE_TOLERANCE:
            fail(f"{benchmark}.overall = {scores['overall']} but the mean of its {breakdown} is {mean:.5f}")
    for total, terms in scale.sums.items():
        values = [scores.get(key) for key in terms]
        if scores.get(total) is not None and None not in values and abs(sum(values) - scores[total]) > SUM_TOLERANCE:
            fail(f"{benchmark}.{total} must be {' + '.join(terms)}")
    return {key: (dict(value) if isinstance(value, dict) else value) for key, value in scores.items()}


def _parse_entry(name: str, data: Any, fail: Fail) -> Published:
    if not isinstance(data, dict):
        fail("an entry must be a mapping with model, source and benchmarks")
    unknown = sorted(set(data) - {"model", "source", "benchmarks"})
    if unknown:
        fail(f"unknown field(s) {unknown}; allowed: benchmarks, model, source")
    for field in ("model", "source"):
        if not isinstance(data.get(field), str) or not data[field].strip():
            fail(f"'{field}' must be a non-empty string")
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, dict) or not benchmarks:
        fail("'benchmarks' must be a non-empty mapping of benchmark -> {verified, scores, setup}")
    scores, verified, setup = {}, {}, {}
    for benchmark, block in benchmarks.items():
        scale, breakdown = _scale_of(fail, benchmark)
        if not isinstance(block, dict) or set(block) - {"verified", "scores", "setup"}:
            fail(f"{benchmark}: expected a mapping with verified, scores and setup only")
        if not isinstance(block.get("verified"), bool):
            fail(f"{benchmark}: 'verified' must be true (primary, checked) or false (secondary)")
        notes = block.get("setup", {})
        if not isinstance(notes, dict) or any(isinstance(v, (dict, list)) for v in notes.values()):
            fail(f"{benchmark}: 'setup' must be a flat mapping of name -> text or number")
        scores[benchmark] = _check_scores(fail, benchmark, scale, breakdown, block.get("scores"))
        verified[benchmark] = block["verified"]
        setup[benchmark] = dict(notes)
    return Published(name=name, model=data["model"], source=data["source"], scores=scores,
                     verified=verified, setup=setup)


def load_published(path: str | Path | None = None) -> dict[str, Published]:
    """Read and check a published-numbers file (default: the packaged ``published.yaml``)."""
    if path is None:
        return copy.deepcopy(_packaged())  # callers may edit their copy, never the cache
    return _load(Path(path))


@lru_cache(maxsize=1)
def _packaged() -> dict[str, Published]:
    return _load(PUBLISHED_FILE)


def _load(path: Path) -> dict[str, Published]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the published numbers ({exc.strerror})", path) from None
    data = parse_yaml(text, path)
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("entries"), dict):
        raise InputError("expected 'version: 1' and an 'entries' mapping", path)
    lines = _entry_lines(text)
    entries = {}
    for name, entry in data["entries"].items():
        def fail(message: str, name: str = str(name)) -> NoReturn:
            raise InputError(f"entry {name!r}: {message}", path, lines.get(name))
        if not isinstance(name, str) or name != name.lower() or ":" in name or not name.strip():
            fail("entry names are lower-case and contain no ':'")
        entries[name] = _parse_entry(name, entry, fail)
    return entries


def published_names() -> list[str]:
    return sorted(_packaged())


def get_published(name: str) -> Published:
    """The packaged entry ``name`` (case-insensitive); unknown names get a "did you mean"."""
    entries = _packaged()
    key = name.strip().lower()
    if key in entries:
        return copy.deepcopy(entries[key])
    match = difflib.get_close_matches(key, list(entries), n=1, cutoff=0.5)
    hint = f"did you mean {match[0]!r}? " if match else ""
    raise InputError(f"unknown published baseline {name!r}: {hint}known: {', '.join(sorted(entries))}")


def parse_baseline(text: str) -> Published | Path:
    """``"published:NAME"`` -> the published entry; anything else names a run folder, which must exist."""
    if text.lower().startswith(PREFIX):
        return get_published(text[len(PREFIX):])
    path = Path(text)
    if not path.is_dir():
        raise InputError(f"baseline {text!r} is neither '{PREFIX}NAME' (names: {', '.join(published_names())}) "
                         "nor a run folder")
    return path
