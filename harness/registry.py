"""A small plugin registry.

Inside the project, plugins register with a decorator::

    @register("detector", "shapes")
    class ShapesDetector: ...

Outside packages declare an entry point in the group ``harness.plugins`` whose value is a module
(or any object); loading it imports the module, whose decorators register its plugins. Lookups of
an unknown name fail with the closest known names ("did you mean ...").
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Callable

from harness.errors import InputError

ENTRY_POINT_GROUP = "harness.plugins"

#: kinds of plugin the harness knows about
KINDS = ("model", "detector", "color_classifier", "chat", "vqa", "benchmark", "generator", "trainer", "judge",
         "stage")

# Modules inside the project whose import registers the built-in plugins. Listed here, rather than
# discovered by walking packages, so that importing the harness stays cheap and explicit.
BUILTIN_MODULES = (
    "harness.models.janus",
    "harness.judges.mask2former_hf",
    "harness.judges.mmdet_mask2former",
    "harness.judges.precomputed",
    "harness.judges.clip_color",
    "harness.shapes.detector",
    "harness.shapes.renderer_model",
    "harness.shapes.answerer_model",
    "harness.shapes.vqa_judge",
    "harness.shapes.editor_model",
    "harness.shapes.edit_judge",
    "harness.models.openai_chat",
    "harness.models.openai_images",
    "harness.judges.chat",
    "harness.judges.vqa",
    "benchmarks.geneval",
    "benchmarks.mme",
    "benchmarks.mmbench",
    "benchmarks.dpg",
    "benchmarks.imgedit",
    "generators.sources",
    "generators.image_steps",
    "generators.shapes",
    "generators.sharegpt4o",
    "generators.sharegpt4v",
    "generators.gpt_image_edit",
    "generators.filters",
    "harness.stages",
    "harness.stages_eval",
)

_registry: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_loaded = False


class UnknownPluginError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Class or function decorator: make ``obj`` available as ``kind``/``name``."""
    if kind not in _registry:
        raise ValueError(f"unknown plugin kind {kind!r}; known: {', '.join(KINDS)}")

    def decorator(obj: Any) -> Any:
        existing = _registry[kind].get(name)
        if existing is not None and existing is not obj:
            raise ValueError(f"{kind} plugin {name!r} registered twice "
                             f"({_describe(existing)} and {_describe(obj)})")
        _registry[kind][name] = obj
        obj.plugin_name = name
        return obj

    return decorator


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def load_plugins() -> None:
    """Import the built-in plugin modules and every ``harness.plugins`` entry point (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken third-party plugin must not break the harness
            raise RuntimeError(f"could not load plugin entry point {ep.name!r} ({ep.value}): {exc}") from exc


def get(kind: str, name: str) -> Any:
    """Return the plugin registered as ``kind``/``name``; suggest close names if there is none."""
    load_plugins()
    if kind not in _registry:
        raise UnknownPluginError(f"unknown plugin kind {kind!r}; known: {', '.join(KINDS)}")
    try:
        return _registry[kind][name]
    except KeyError:
        known = sorted(_registry[kind])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownPluginError(
            f"no {kind} plugin named {name!r}.{hint} Known {kind} plugins: {', '.join(known) or 'none'}."
        ) from None


def names(kind: str) -> list[str]:
    load_plugins()
    return sorted(_registry[kind])


def build(kind: str, name: str, **params: Any) -> Any:
    """Instantiate a plugin with its parameters from a spec; wrong parameter names are input errors."""
    plugin = get(kind, name)
    try:
        inspect.signature(plugin).bind(**params)
    except TypeError as exc:
        accepted = ", ".join(p for p in inspect.signature(plugin).parameters if p not in ("args", "kwargs"))
        raise InputError(f"{kind} {name!r}: {exc} (parameters: {accepted or 'none'})") from None
    return plugin(**params)
