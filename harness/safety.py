"""Two checks every input passes before anything is written: names that become paths, and secrets.

``safe_name``: a name read from input data (an edit key, an image id, an item id, a file name in a
dataset row) that becomes part of a path must stay inside the folder it is written to. It is
checked once, here, where the data is read, so the error names the file and line; a name that
would climb out (``..``), start at the root (``/etc``, ``C:\\``), or hold a NUL byte or a
backslash is refused.

``refuse_secrets``: API keys are read from the environment and never written to disk. A spec,
recipe or pipeline (or a ``--set`` override) that holds a key, a token or a password, or a URL
with credentials in it (``http://KEY@host/v1``), is refused while it is parsed, before the run
folder or any record of it exists.
"""
from __future__ import annotations

import re
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from harness.errors import InputError

#: parameter names that hold a secret (``api_key_env``, the *name* of a variable, is fine)
_SECRET_KEY = re.compile(r"(.*[_-])?(api[_-]?key|apikey|secret|password|passwd|token|access[_-]?token|"
                         r"auth|authorization|bearer|credentials?)", re.IGNORECASE)
#: values that look like a pasted key ("sk-...", "Bearer ...")
_SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_-]{16,}|Bearer\s+\S+)")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def safe_name(value: Any, what: str, path: str | Path | None = None, line: int | None = None) -> str:
    """``value`` as a relative path inside its folder, or ``InputError`` naming the file, line and
    value. Sub-folders (``a/b``) are allowed; ``..``, absolute paths, drive letters, backslashes,
    NUL bytes and empty names are not."""
    text = str(value)
    parts = PurePosixPath(text).parts
    bad = (not text.strip() or "\0" in text or "\\" in text or text.startswith("/")
           or re.match(r"^[A-Za-z]:", text) is not None or any(part in ("..", ".") for part in parts)
           or any(not part.strip() for part in text.split("/")))
    if bad:
        raise InputError(f"{what} {text!r} cannot be used as a file name: it must be a relative path "
                         "inside the run folder (no '..', no leading '/', no backslash)", path, line)
    return text


def inside(root: str | Path, relative: str | Path) -> Path:
    """``root / relative``, refusing (``InputError``) a result that resolves outside ``root``
    (the last guard before a write; names were already checked by ``safe_name`` where read)."""
    root = Path(root)
    target = root / relative
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root):
        raise InputError(f"{relative!s} points outside {root}; refused", target)
    return target


def refuse_secrets(data: Any, source: str | Path) -> None:
    """Raise ``InputError`` if ``data`` (a parsed spec, recipe or pipeline) holds a secret: a
    key named like one (``api_key``, ``token``, ``password``...), a value that looks like a pasted
    key, or a URL with user information (``https://KEY@host``)."""
    for place, key, value in _walk(data, ""):
        if key is not None and _SECRET_KEY.fullmatch(key) and value not in (None, ""):
            raise InputError(f"{place}: looks like a secret; keys are read from the environment variable "
                             "named by api_key_env, never from a spec or --set, so they are never written to disk",
                             source)
        if isinstance(value, str):
            if _URL.match(value) and (urllib.parse.urlsplit(value).username is not None
                                      or urllib.parse.urlsplit(value).password is not None):
                raise InputError(f"{place}: a URL with credentials in it (user@host) is refused; put the "
                                 "key in the environment variable named by api_key_env", source)
            if _SECRET_VALUE.search(value):
                raise InputError(f"{place}: the value looks like an API key; keys are read from the "
                                 "environment variable named by api_key_env, never from a spec or --set", source)


def _walk(data: Any, where: str):
    """(place, key or None, value) for every value inside ``data``."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            place = f"{where}.{key}" if where else str(key)
            yield place, str(key), value
            yield from _walk(value, place)
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            place = f"{where}[{index}]"
            yield place, None, value
            yield from _walk(value, place)
