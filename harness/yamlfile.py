"""YAML files that people write (run specs, recipes, pipelines, gate configs): reading them with
errors that name the file and line, and applying ``--set a.b.c=VALUE`` overrides."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from harness.errors import InputError


def parse_yaml(text: str, source: str | Path) -> Any:
    """The document in ``text``; a syntax error is an ``InputError`` naming ``source`` and the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", source,
                         mark.line + 1 if mark else None) from None


def read_yaml_text(path: str | Path, what: str) -> tuple[Any, str]:
    """(document, text) of the file at ``path``; ``what`` names it when it is missing ("recipe file")."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", path)
    text = path.read_text(encoding="utf-8")
    return parse_yaml(text, path), text


def list_position(items: list, part: str) -> int:
    """A position in a list given in a dotted key (``steps.0``)."""
    return int(part)


def apply_overrides(data: Any, overrides: Mapping[str, Any], source: str, what: str = "file",
                    position: Callable[[list, str], int] = list_position) -> Any:
    """Set each dotted key (``model.params.cfg_weight``, ``steps.0.params.count``) in ``data`` (changed
    in place and returned). Missing mappings are made; a key through a list takes ``position`` of
    its part; a key that names nothing is an ``InputError``."""
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        try:
            for part in parents:
                if isinstance(node, list):
                    node = node[position(node, part)]
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = {}
                    node = node[part]
            if isinstance(node, list):
                node[position(node, leaf)] = value
            else:
                node[leaf] = value
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            raise InputError(f"override {dotted!r} names nothing in the {what}", source) from None
    return data
