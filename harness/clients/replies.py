"""The bodies of OpenAI-compatible endpoints: reading replies (chat text, base64 images) and
writing multipart forms, with the two ways a reply can be unusable."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Mapping, Sequence


class MalformedResponse(Exception):
    """A reply that parsed as JSON but lacks what the endpoint promises (retried)."""


class RejectedResponse(Exception):
    """A well-formed reply that cannot be used and that a retry would not change (not retried)."""


def chat_text(reply: dict) -> str:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponse("no choices[0].message.content in the reply") from None
    if not isinstance(content, str):
        raise MalformedResponse(f"choices[0].message.content is {type(content).__name__}, not text")
    return content


def first_image(reply: dict) -> bytes:
    """The bytes of ``data[0].b64_json``; a URL-only reply is refused (never fetched)."""
    data = reply.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise MalformedResponse("no data[0] in the reply")
    encoded = data[0].get("b64_json")
    if not isinstance(encoded, str) or not encoded:
        if data[0].get("url"):
            raise RejectedResponse("the server sent an image URL, not b64_json data; set response_format to "
                                   "b64_json (URLs are not downloaded)")
        raise MalformedResponse("no data[0].b64_json in the reply")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponse("data[0].b64_json is not valid base64") from None


def multipart_form(fields: Mapping[str, Any], files: Sequence[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type. ``files`` holds (field, filename, content
    type, bytes). The boundary comes from the content, so the same form gives the same bytes (and
    the same retry jitter); it is checked not to occur in any part."""
    fields = {name: _form_value(value) for name, value in fields.items()}
    digest = hashlib.sha256()
    for name, value in fields.items():
        digest.update(f"{name}={value}".encode("utf-8") + b"\0")
    for _, _, _, data in files:
        digest.update(data)
    boundary = "harness-" + digest.hexdigest()[:32]
    while any(boundary.encode() in part for part in (*(str(v).encode("utf-8") for v in fields.values()),
                                                      *(data for *_, data in files))):
        boundary = "harness-" + hashlib.sha256(boundary.encode()).hexdigest()[:32]
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode("utf-8")
                      + str(value).encode("utf-8") + b"\r\n")
    for name, filename, content_type, data in files:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                      f"Content-Type: {content_type}\r\n\r\n".encode("utf-8") + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("utf-8"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _form_value(value: Any) -> Any:
    """Form text for a value: booleans as the API spells them, structures as JSON (not Python repr)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value
