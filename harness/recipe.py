"""Data recipes: a source, a flat list of steps, the model clients they use, and the exports.

A recipe is a YAML file (``harness synth RECIPE.yaml``)::

    name: sharegpt4o-prompt-first
    seed: 0
    clients:                       # role -> an OpenAI-compatible endpoint (keys from the environment)
      llm: {base_url: https://api.openai.com/v1, model: gpt-4o-2024-08-06,
            prices: {prompt_per_1k: 0.0025, completion_per_1k: 0.01}}
      image_model: {base_url: https://api.openai.com/v1, model: gpt-image-1}
    steps:
      - {name: attribute-sampler, params: {count: 1000}}     # the first step is the source
      - {name: compose-prompt, params: {client: llm}}
      - {name: render-image, params: {client: image_model}}
    export: [sharegpt4o, parquet]

Rows are plain dicts with a unique ``id``; each step reads the fields it declares in ``inputs`` and
adds those in ``outputs``. Image fields hold paths relative to the dataset folder
(``images/<content hash>.png``). A step sees its clients only through ``ctx.client(role)``: steps
build requests and read replies; endpoints, keys, retries and caching belong to the clients.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from PIL import Image

from harness.clients.call_cache import BlobStore, CachedClient
from harness.clients.openai_compat import TRANSPORT_PARAMS
from harness.errors import InputError
from harness.hashing import hash_value
from harness.images import load_image
from harness.safety import refuse_secrets
from harness.seeds import sample_seed
from harness.spec import ComponentSpec
from harness.yamlfile import apply_overrides, read_yaml_text

RECIPE_VERSION = 1
#: where image fields point: ``images/<blob name>``, relative to the dataset folder
IMAGE_DIR = "images"
#: client parameters that do not change what a call returns (kept out of hashes)
CLIENT_TRANSPORT = frozenset(TRANSPORT_PARAMS) - {"model"}
#: every key a recipe's client may have: the client's parameters and ``prices``
CLIENT_KEYS = frozenset(TRANSPORT_PARAMS) | {"model", "prices"}


@dataclass(frozen=True)
class Drop:
    """A row left out on purpose (a quality filter said no); recorded with its reason."""

    reason: str


@dataclass(frozen=True)
class Failure:
    """A row that could not be made (a call failed after its retries); asked again next run."""

    error: str


StepResult = "dict[str, Any] | Drop | Failure"


class Source:
    """The first step: makes the rows. ``rows`` must be deterministic for a given context."""

    outputs: tuple[str, ...] = ()
    version = "1"
    #: parameters that change nothing in the rows (excluded from the recipe's identity)
    transport_params: tuple[str, ...] = ()

    def rows(self, ctx: "StepContext") -> list[dict[str, Any]]:
        raise NotImplementedError

    def input_hashes(self) -> dict[str, str]:
        """Lineage: role -> content hash of the files this source reads (none by default)."""
        return {}


class Step:
    """A step over rows: ``generate(batch) -> one result per row`` (new fields, ``Drop`` or ``Failure``)."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    version = "1"
    batch_size = 32
    transport_params: tuple[str, ...] = ()

    def generate(self, rows: Sequence[dict[str, Any]], ctx: "StepContext") -> list[Any]:
        raise NotImplementedError


def plugin_identity(plugin: Any, spec: ComponentSpec) -> dict:
    """What about a step changes its rows: its name, version and parameters less transport ones."""
    transport = set(getattr(plugin, "transport_params", ()))
    return {"name": spec.name, "version": getattr(plugin, "version", "1"),
            "params": {k: v for k, v in sorted(spec.params.items()) if k not in transport}}


# ----------------------------------------------------------------------------------------------
# the recipe spec


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe file, parsed and checked. ``hash`` covers everything that changes the rows."""

    name: str
    steps: tuple[ComponentSpec, ...]
    clients: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    export: tuple[str, ...] = ("sharegpt4o",)
    seed: int = 0
    source: str = "recipe"

    def to_dict(self) -> dict:
        return {"version": RECIPE_VERSION, "name": self.name, "seed": self.seed,
                "clients": {role: dict(params) for role, params in sorted(self.clients.items())},
                "steps": [step.to_dict() for step in self.steps], "export": list(self.export)}

    def identity(self, plugins: Sequence[Any]) -> dict:
        """The hashed part: the name and transport parameters are left out."""
        return {"version": RECIPE_VERSION, "seed": self.seed,
                "clients": {role: {k: v for k, v in sorted(params.items()) if k not in CLIENT_TRANSPORT}
                            for role, params in sorted(self.clients.items())},
                "steps": [plugin_identity(p, s) for p, s in zip(plugins, self.steps)],
                "export": sorted(self.export)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> "RecipeSpec":
        if not isinstance(data, Mapping):
            raise InputError("a recipe must be a mapping with name, steps, ...", source)
        refuse_secrets(data, source)
        allowed = {"version", "name", "seed", "clients", "steps", "export"}
        unknown = set(data) - allowed
        if unknown:
            raise InputError(f"unknown keys {sorted(unknown)} (allowed: {', '.join(sorted(allowed))})", source)
        if data.get("version", RECIPE_VERSION) != RECIPE_VERSION:
            raise InputError(f"recipe version {data['version']} is not supported (this harness reads "
                             f"{RECIPE_VERSION})", source)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or "/" in name:
            raise InputError("name must be a non-empty string without '/'", source)
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise InputError("steps must be a non-empty list (the first one is the source)", source)
        clients = data.get("clients") or {}
        if not isinstance(clients, Mapping) or not all(
                isinstance(c, Mapping) and isinstance(c.get("model"), str) and isinstance(c.get("base_url"), str)
                for c in clients.values()):
            raise InputError("clients must map each role to {base_url: ..., model: ..., ...}", source)
        for role, params in clients.items():
            unknown = set(params) - CLIENT_KEYS
            if unknown:  # e.g. a pasted api_key: refused before it could be written anywhere
                raise InputError(f"clients.{role}: unknown keys {sorted(unknown)} (allowed: "
                                 f"{', '.join(sorted(CLIENT_KEYS))}; keys are read from the environment "
                                 f"variable named by api_key_env, never from the recipe)", source)
        export = data.get("export", ["sharegpt4o"])
        export = [export] if isinstance(export, str) else export
        if not isinstance(export, list) or not all(isinstance(e, str) for e in export):
            raise InputError("export must be a list of format names", source)
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"seed must be an integer, got {seed!r}", source)
        return cls(name=name.strip(),
                   steps=tuple(ComponentSpec.from_dict(s, f"{source}: steps[{i}]") for i, s in enumerate(steps)),
                   clients={role: dict(params) for role, params in clients.items()},
                   export=tuple(export), seed=seed, source=source)

    @classmethod
    def load(cls, path: str | Path) -> "RecipeSpec":
        data, _ = read_yaml_text(path, "recipe file")
        return cls.from_dict(data, str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "RecipeSpec":
        """Dotted overrides: ``steps.0.params.count=10``, ``clients.llm.base_url=...``, ``seed=1``."""
        data = apply_overrides(self.to_dict(), overrides, self.source, "recipe")
        return RecipeSpec.from_dict(data, f"{self.source} with overrides")


# ----------------------------------------------------------------------------------------------
# what a step sees


class StepContext:
    """A step's view of the run: per-row seeds, its clients by role, and the image store."""

    def __init__(self, recipe_seed: int, step_name: str, blobs: BlobStore, clients: Mapping[str, CachedClient]):
        self.recipe_seed = recipe_seed
        self.step_name = step_name
        self.blobs = blobs
        self._clients = clients

    def seed(self, row_or_id: Mapping[str, Any] | str) -> int:
        """The row's seed for this step: depends only on (recipe seed, step position and name, row id)."""
        row_id = row_or_id if isinstance(row_or_id, str) else row_or_id["id"]
        return sample_seed(self.recipe_seed, self.step_name, row_id)

    def rng(self, row_or_id: Mapping[str, Any] | str) -> random.Random:
        return random.Random(self.seed(row_or_id))

    def client(self, role: str) -> CachedClient:
        try:
            return self._clients[role]
        except KeyError:
            known = ", ".join(sorted(self._clients)) or "none"
            raise InputError(f"step {self.step_name!r} needs a client with role {role!r}; the recipe's "
                             f"clients are: {known}") from None

    # images ---------------------------------------------------------------------------------

    def image_path(self, ref: str) -> Path:
        """The file behind an image field (``images/<name>``)."""
        return self.blobs.path(Path(ref).name)

    def image_bytes(self, ref: str) -> bytes:
        return self.image_path(ref).read_bytes()

    def load_image(self, ref: str) -> Image.Image:
        return load_image(self.image_path(ref))

    def save_image(self, image: bytes | Image.Image) -> str:
        """Store PNG/JPEG/WebP bytes (or a PIL image, as PNG) and return its image field value."""
        if isinstance(image, Image.Image):
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
            image = buffer.getvalue()
        return f"{IMAGE_DIR}/{self.blobs.put(image)}"

    def import_image(self, path: str | Path) -> str:
        """Copy an existing image file into the store (checked to decode: a corrupt file is named)."""
        load_image(path)
        return self.save_image(Path(path).read_bytes())


def row_key(identity: dict, row: Mapping[str, Any], inputs: Sequence[str], seed: int) -> str:
    """A step's cache key for one row: its identity, the row id and seed, and the fields it reads."""
    return hash_value({"step": identity, "id": row["id"], "seed": seed,
                       "inputs": {name: row.get(name) for name in inputs}}, length=32)
