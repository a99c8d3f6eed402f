"""A small plugin registry.

Plugins register with a decorator::

    @register("detector", "shapes")
    class ShapesDetector: ...

and a package makes its plugin modules known through the entry-point group ``harness.plugins``
(one line per module; the value is a module, whose import runs its decorators). The project's own
packages do exactly what an outside package does, in ``pyproject.toml``; the kernel names no plugin.
Lookups of an unknown name fail with the closest known names ("did you mean ...").
"""
from __future__ import annotations

import difflib
import inspect
import types
import typing
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

from harness.errors import InputError

ENTRY_POINT_GROUP = "harness.plugins"

#: kinds of plugin the kernel knows about; a package may declare more (``declare_kind``) for its own
#: extension points (GenEval's prompt sets, say)
KINDS = ["model", "detector", "color_classifier", "chat", "vqa", "benchmark", "generator", "trainer", "judge",
         "stage", "command", "rescore"]

_registry: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}


def declare_kind(kind: str) -> str:
    """Add a plugin kind (idempotent); returns it, so a package can write ``KIND = declare_kind(...)``."""
    if kind not in _registry:
        KINDS.append(kind)
        _registry[kind] = {}
    return kind


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
    """Import every module named in the ``harness.plugins`` entry-point group (once): the project's
    own packages are listed there in ``pyproject.toml`` exactly as an outside package would list its."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    found = entry_points(group=ENTRY_POINT_GROUP)
    if not any(ep.value.split(".")[0] == "harness" for ep in found):
        raise RuntimeError("the harness's own plugins are not registered: install the project "
                           "(pip install -e .) so that its harness.plugins entry points exist")
    for ep in sorted(found, key=lambda ep: ep.name):
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
    _check_types(kind, name, plugin, params)
    try:
        return plugin(**params)
    except ValueError as exc:  # a constructor refusing a parameter's value
        raise InputError(f"{kind} {name!r}: {exc}") from None


def effective_params(kind: str, name: str, params: dict[str, Any],
                     only: Iterable[str] | None = None) -> dict[str, Any]:
    """The parameters plugin ``name`` is built with: its declared defaults, updated by ``params``
    (for a plugin that is not registered, ``params`` alone); with ``only``, just those names (None
    for one it neither declares nor is given). What a run really sent a judge."""
    try:
        signature = inspect.signature(get(kind, name))
        defaults = {key: p.default for key, p in signature.parameters.items()
                    if p.default is not inspect.Parameter.empty}
    except UnknownPluginError:
        defaults = {}
    merged = {**defaults, **params}
    return merged if only is None else {key: merged.get(key) for key in only}


_SIMPLE = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_types(kind: str, name: str, plugin: Any, params: dict[str, Any]) -> None:
    """Refuse a parameter whose value is not of the simple type (int, float, str, bool, or None
    where allowed) its annotation names: a spec's ``per_tag: "3"`` or ``2.5`` is an input error,
    not a traceback deep inside the plugin."""
    try:
        hints = typing.get_type_hints(plugin.__init__ if inspect.isclass(plugin) else plugin)
    except Exception:  # noqa: BLE001 - annotations this check cannot read: the plugin checks itself
        return
    for param, value in params.items():
        hint = hints.get(param)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        allowed = typing.get_args(hint) if union else (hint,)
        if not all(arg in _SIMPLE or arg is type(None) for arg in allowed):
            continue  # a richer type (a list, a mapping, a path): the plugin checks it
        if not any(_fits(value, arg) for arg in allowed):
            wanted = " or ".join(_SIMPLE.get(arg, "null") for arg in allowed)
            raise InputError(f"{kind} {name!r}: parameter {param!r} must be {wanted}, got {value!r}")


def _fits(value: Any, simple: type) -> bool:
    if simple is type(None):
        return value is None
    if isinstance(value, bool):  # YAML's true is not a number
        return simple is bool
    if simple is float:
        return isinstance(value, (int, float))
    return isinstance(value, simple)
