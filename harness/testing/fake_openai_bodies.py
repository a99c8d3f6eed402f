"""What the fake OpenAI server reads and writes: the request record and multipart parts, chat message
texts, the structured-output check of ``response_format``, and the default chat and image replies."""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any, Callable

DEFAULT_IMAGE_SIZE = (64, 64)


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart/form-data request (``filename`` and ``content_type`` only for files)."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass
class ReceivedRequest:
    """One request as the server saw it (``body`` is None if it was not JSON; ``parts`` holds the
    parts of a multipart/form-data body)."""

    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    has_authorization: bool = False
    method: str = "POST"
    parts: list[FormPart] = field(default_factory=list)

    def form(self) -> dict[str, Any]:
        """The multipart fields: files as bytes, the rest as text."""
        return {part.name: part.data if part.filename is not None else part.data.decode("utf-8")
                for part in self.parts}


def message_texts(body: Any) -> list[str]:
    """Every text in a chat request's messages, in order (string contents and text parts)."""
    texts = []
    for message in (body or {}).get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(part.get("text", "") for part in content if part.get("type") == "text")
    return texts


_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def response_format_error(value: Any) -> str | None:
    """Why the API would refuse a chat request's ``response_format``, or None: ``text``,
    ``json_object``, or ``json_schema`` with a ``name`` (letters, digits, ``_``, ``-``; at most
    64) and a ``schema`` object; with ``strict``, every object in the schema lists all its
    properties in ``required`` and sets ``additionalProperties`` to false."""
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        return "response_format must be an object whose type is text, json_object or json_schema"
    if value["type"] != "json_schema":
        return None
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        return "response_format.json_schema.schema must be an object"
    if not isinstance(spec.get("name"), str) or not _SCHEMA_NAME.fullmatch(spec["name"]):
        return "response_format.json_schema.name must be 1-64 letters, digits, '_' or '-'"
    if spec.get("strict"):
        return _strict_error(spec["schema"], "schema")
    return None


def _strict_error(schema: Any, path: str) -> str | None:
    if isinstance(schema, list):
        return next((found for i, item in enumerate(schema) if (found := _strict_error(item, f"{path}[{i}]"))), None)
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return f"strict schema: {path} must set additionalProperties to false"
        if sorted(schema.get("required") or []) != sorted(schema.get("properties") or {}):
            return f"strict schema: {path}.required must list every property"
    for key, child in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(child, dict):
            found = next((found for name, item in child.items()
                          if (found := _strict_error(item, f"{path}.{key}.{name}"))), None)
        else:
            found = _strict_error(child, f"{path}.{key}")
        if found:
            return found
    return None


def schema_instance(schema: dict, choose: Callable[[list], Any] = lambda options: options[0]) -> Any:
    """A value that fits a JSON schema of the kind structured outputs use (objects with
    ``properties``, ``enum``, ``const``, string, number, integer, boolean, array); ``choose``
    picks among an ``enum``'s values. Object keys come in the schema's order."""
    if "enum" in schema:
        return choose(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: schema_instance(child, choose) for name, child in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [schema_instance(schema.get("items") or {}, choose)]
    return {"string": "fake", "number": 0.5, "integer": 1, "boolean": True}.get(kind)


def echo_last_text(body: Any) -> str:
    texts = message_texts(body)
    return "echo: " + (texts[-1] if texts else "")


def solid_png(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def image_size(value: Any) -> tuple[int, int]:
    """"WxH" -> (W, H); anything else ("auto", missing) -> the default size."""
    try:
        width, height = (int(side) for side in str(value).lower().split("x"))
    except ValueError:
        return DEFAULT_IMAGE_SIZE
    return (width, height) if 0 < width <= 4096 and 0 < height <= 4096 else DEFAULT_IMAGE_SIZE


def solid_colour_image(fields: dict) -> bytes:
    """The default image reply: a solid colour from the prompt (and the source image, for edits)."""
    material = str(fields.get("prompt", "")).encode("utf-8")
    if isinstance(fields.get("image"), bytes):
        material += b"\0" + fields["image"]
    colour = tuple(hashlib.sha256(material).digest()[:3])
    return solid_png(colour, image_size(fields.get("size")))  # type: ignore[arg-type]


def parse_multipart(raw: bytes, content_type: str) -> list[FormPart] | None:
    """The parts of a multipart/form-data body, or None if it is not one."""
    kind, _, options = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    params = dict(option.strip().split("=", 1) for option in options.split(";") if "=" in option)
    boundary = params.get("boundary", "").strip('"')
    if not boundary:
        return None
    parts = []
    for chunk in raw.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, separator, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            return None
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = {key.strip(): value.strip().strip('"') for key, _, value in
                       (item.partition("=") for item in headers.get("content-disposition", "").split(";"))}
        parts.append(FormPart(disposition.get("name", ""), data.removesuffix(b"\r\n"), disposition.get("filename"),
                              headers.get("content-type")))
    return parts
