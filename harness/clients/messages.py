"""Building OpenAI-style chat messages and telling snapshots from aliases: small helpers shared by
the client, the chat model adapter, the chat judge and the loopback fake server."""
from __future__ import annotations

import base64
import io
import ipaddress
import re
import urllib.parse
from typing import Sequence

from PIL import Image

from harness.errors import HarnessError

PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})
#: a date token inside a model name: 2024-08-06, 20240806 or 0125 (between dashes/underscores)
_DATE_TOKEN = re.compile(r"(?:^|[-_])(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})(?=$|[-_])")


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs on this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_dated_snapshot(model: str) -> bool:
    """True if the model name pins a dated snapshot ("gpt-4o-2024-08-06", "gpt-3.5-turbo-0125"),
    False for a moving alias ("gpt-4o", "gpt-4o-mini", "chatgpt-4o-latest")."""
    name = model.rsplit("/", 1)[-1].lower()
    return "latest" not in name and _DATE_TOKEN.search(name) is not None


def image_data_url(image: Image.Image) -> str:
    """The image as a ``data:image/png;base64,...`` URL (lossless; odd modes converted to RGB)."""
    if image.mode not in PNG_MODES:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def user_message(text: str, images: Sequence[Image.Image] = (), *, images_first: bool = True,
                 detail: str | None = None) -> dict:
    """A user turn: the images (as data URLs) then the text, or the text first if asked.

    Without images the content is a plain string, which every compatible server accepts. With
    images, an empty ``text`` adds no text part (the images alone, as Complex-Edit's quality call
    sends them). ``detail`` ("low", "high", "auto") is sent only when given.
    """
    if not images:
        return {"role": "user", "content": text}
    parts = []
    for image in images:
        image_url = {"url": image_data_url(image)}
        if detail is not None:
            image_url["detail"] = detail
        parts.append({"type": "image_url", "image_url": image_url})
    text_part = [{"type": "text", "text": text}] if text != "" else []
    return {"role": "user", "content": parts + text_part if images_first else text_part + parts}


def chat_messages(text: str, images: Sequence[Image.Image] = (), system: str | None = None, *,
                  images_first: bool = True, detail: str | None = None) -> list[dict]:
    """An optional system turn followed by one user turn."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    return messages + [user_message(text, images, images_first=images_first, detail=detail)]


class UndatedModelError(HarnessError):
    """A judge model named by a moving alias, and the spec did not accept that."""


def require_dated_snapshot(model: str, allow_alias: bool, role: str = "judge model") -> None:
    """Refuse an undated alias ("gpt-4o"): the provider can move it to another snapshot, and a
    different judge gives different numbers. ``allow_alias`` accepts the drift (a vLLM server's
    model name is fine to allow: its weights are fixed)."""
    if not allow_alias and not is_dated_snapshot(model):
        raise UndatedModelError(
            f"{role} {model!r} is an undated alias: the provider can move it to a new snapshot at any "
            f"time, and a different judge gives different benchmark numbers. Name a dated snapshot "
            f"(e.g. 'gpt-4o-2024-08-06', 'gpt-4o-mini-2024-07-18'), or set allow_alias: true to accept "
            f"the drift (the snapshot that answered is still recorded in usage.models).")
