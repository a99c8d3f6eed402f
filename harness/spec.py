"""Run specs: frozen, YAML-serialisable descriptions of a run, with stable content hashes.

A spec names plugins and their parameters; it holds every choice that can change a number, and
nothing else (output folders, progress bars and worker counts live outside it). Two runs with the
same spec hash are the same experiment.

Example (``harness eval spec.yaml``)::

    benchmark: {name: geneval, params: {prompts: shapes, per_tag: 10}}
    model: {name: janus, params: {path: /models/Janus-Pro-7B}}
    judges:
      detector: {name: shapes}
      color_classifier: {name: shapes}
    seed: 0
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from harness.errors import InputError
from harness.hashing import hash_value
from harness.safety import refuse_secrets
from harness.yamlfile import apply_overrides, parse_yaml, read_yaml_text

SPEC_VERSION = 1


@dataclass(frozen=True)
class ComponentSpec:
    """A plugin by registry name, with the keyword parameters it is built with."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "ComponentSpec":
        if isinstance(data, str):  # shorthand: just the plugin name
            return cls(name=data)
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise InputError(f"{where}: expected a plugin name or {{name: ..., params: {{...}}}}, got {data!r}")
        unknown = set(data) - {"name", "params"}
        if unknown:
            raise InputError(f"{where}: unknown keys {sorted(unknown)} (allowed: name, params)")
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            raise InputError(f"{where}.params: expected a mapping, got {params!r}")
        return cls(name=data["name"], params=dict(params))


@dataclass(frozen=True)
class RunSpec:
    """One evaluation: a benchmark, a model, the judges that score it, and the run seed.

    ``limit`` evaluates only the first N items of the benchmark (smoke tests); it is part of the
    hash because it changes the numbers. ``world`` describes the synthetic world the benchmark's
    data were drawn from, when they were (a mapping such as a shapes-world profile); it goes on the
    protocol card, so runs on two worlds are never compared, and into the hash (only when set:
    specs without one keep their hashes).
    """

    benchmark: ComponentSpec
    model: ComponentSpec
    judges: Mapping[str, ComponentSpec] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    world: Mapping[str, Any] | None = None

    def to_dict(self) -> dict:
        data = {
            "version": SPEC_VERSION,
            "benchmark": self.benchmark.to_dict(),
            "model": self.model.to_dict(),
            "judges": {role: judge.to_dict() for role, judge in sorted(self.judges.items())},
            "seed": self.seed,
            "limit": self.limit,
        }
        if self.world is not None:
            data["world"] = dict(self.world)
        return data

    @property
    def hash(self) -> str:
        """Content hash: equal for specs that mean the same run, whatever the YAML formatting."""
        return hash_value(self.to_dict())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "spec") -> "RunSpec":
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: a run spec must be a mapping")
        refuse_secrets(data, source)
        allowed = {"version", "benchmark", "model", "judges", "seed", "limit", "world"}
        unknown = set(data) - allowed
        if unknown:
            raise InputError(f"{source}: unknown keys {sorted(unknown)} (allowed: {', '.join(sorted(allowed))})")
        if data.get("version", SPEC_VERSION) != SPEC_VERSION:
            raise InputError(f"{source}: spec version {data['version']} is not supported (this harness reads {SPEC_VERSION})")
        for key in ("benchmark", "model"):
            if key not in data:
                raise InputError(f"{source}: missing required key {key!r}")
        judges = data.get("judges") or {}
        if not isinstance(judges, Mapping):
            raise InputError(f"{source}.judges: expected a mapping of role -> plugin")
        seed, limit = data.get("seed", 0), data.get("limit")
        if (not isinstance(seed, int) or isinstance(seed, bool) or (limit is not None and (
                not isinstance(limit, int) or isinstance(limit, bool) or limit < 1))):
            raise InputError(f"{source}: seed must be an integer and limit a positive integer or null")
        world = data.get("world")
        if world is not None and not isinstance(world, Mapping):
            raise InputError(f"{source}.world: expected a mapping describing the data's world, got {world!r}")
        return cls(
            benchmark=ComponentSpec.from_dict(data["benchmark"], f"{source}.benchmark"),
            model=ComponentSpec.from_dict(data["model"], f"{source}.model"),
            judges={role: ComponentSpec.from_dict(j, f"{source}.judges.{role}") for role, j in judges.items()},
            seed=seed,
            limit=limit,
            world=dict(world) if world is not None else None,
        )

    @classmethod
    def from_yaml(cls, text: str, source: str = "spec") -> "RunSpec":
        return cls.from_dict(parse_yaml(text, source), source)

    @classmethod
    def load(cls, path: str | Path) -> "RunSpec":
        data, _ = read_yaml_text(path, "run spec")
        return cls.from_dict(data, str(path))

    def with_overrides(self, overrides: Mapping[str, Any]) -> "RunSpec":
        """Apply dotted overrides such as ``{"model.params.cfg_weight": 3}`` (CLI ``--set``)."""
        data = apply_overrides(self.to_dict(), overrides, "spec", "run spec")
        return RunSpec.from_dict(data, "spec with overrides")


def replace(spec: RunSpec, **changes: Any) -> RunSpec:
    return dataclasses.replace(spec, **changes)
