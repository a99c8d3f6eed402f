"""One HTTP attempt of the OpenAI-compatible client and its outcome: how a reply, an HTTP error, a
redirect or a TLS failure becomes an ``Attempt`` (retryable or not), with the key masked in every message."""
from __future__ import annotations

import email.utils
import http.client
import json
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.clients.replies import MalformedResponse, RejectedResponse

#: statuses retried besides every 5xx (request timeout, lock timeout, rate limit)
RETRY_STATUSES = frozenset({408, 409, 429})
TOKEN_KEYS = ("prompt_tokens", "completion_tokens")
#: the names the image endpoints (gpt-image-*) give the same counts
TOKEN_ALIASES = {"prompt_tokens": "input_tokens", "completion_tokens": "output_tokens"}
#: longest server text quoted in an error message
ERROR_SNIPPET_CHARS = 300


@dataclass
class Attempt:
    """One HTTP attempt: its ``value``, or its ``error`` and whether a retry may help."""

    value: Any = None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    model: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302/303 to any host with the Authorization header: refuse, so
    the 3xx surfaces as an ``HTTPError`` (and becomes a non-retryable failure)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


def redirect_failure(exc: urllib.error.HTTPError, url: str) -> Attempt:
    location = exc.headers.get("Location") if exc.headers is not None else None
    target = urllib.parse.urlsplit(urllib.parse.urljoin(url, location)).hostname if location else None
    return Attempt(error=f"HTTP {exc.code}: the server redirects to {target or '(no Location)'}; redirects "
                         f"are not followed (they would carry the API key), so set base_url to the final address")


def certificate_failure(exc: ssl.SSLCertVerificationError, host: str) -> Attempt:
    reason = getattr(exc, "verify_message", None) or str(exc)
    return Attempt(error=f"TLS certificate verification failed for {host}: {reason} (not retried: a "
                         f"retry cannot fix it; check the host name, the clock or the CA bundle)")


def parse_reply(raw: bytes, parse: Callable[[dict], Any], key: str | None) -> Attempt:
    """A reply body as an attempt: read as JSON, its served model and token counts kept, then ``parse``d."""
    try:
        reply = json.loads(raw)
    except ValueError:  # JSONDecodeError and bad UTF-8 alike
        return Attempt(error=f"malformed reply (not JSON): {_snippet(raw, key)!r}", retryable=True)
    if not isinstance(reply, dict):
        return Attempt(error="malformed reply (not a JSON object)", retryable=True)
    model = reply.get("model") if isinstance(reply.get("model"), str) else None
    counted = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    tokens = {}
    for name in TOKEN_KEYS:
        count = counted.get(name, counted.get(TOKEN_ALIASES[name]))
        if isinstance(count, int):
            tokens[name] = count
    try:
        value = parse(reply)
    except MalformedResponse as exc:
        return Attempt(error=f"malformed reply: {exc}", retryable=True, model=model, tokens=tokens)
    except RejectedResponse as exc:
        return Attempt(error=f"unusable reply: {exc}", model=model, tokens=tokens)
    return Attempt(value=value, model=model, tokens=tokens)


def http_failure(exc: urllib.error.HTTPError, key: str | None) -> Attempt:
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    status = exc.code
    retryable = status in RETRY_STATUSES or status >= 500
    return Attempt(error=f"HTTP {status}: {_server_message(raw, key)}", retryable=retryable,
                   retry_after=_retry_after(exc.headers))


def _server_message(raw: bytes, key: str | None) -> str:
    """The error text of an OpenAI (``{"error": {"message"}}``) or vLLM (``{"message"}``) reply."""
    try:
        reply = json.loads(raw)
    except ValueError:
        return _snippet(raw, key) or "(empty body)"
    if isinstance(reply, dict):
        error = reply.get("error")
        for candidate in (error.get("message") if isinstance(error, dict) else error,
                          reply.get("message"), reply.get("detail")):
            if isinstance(candidate, str) and candidate:
                return redact(candidate, key)[:ERROR_SNIPPET_CHARS]
    return _snippet(raw, key)


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if any."""
    if headers is None:
        return None
    seconds: float | None = None
    try:
        seconds = float(headers.get("retry-after-ms")) / 1000
    except (TypeError, ValueError):
        value = headers.get("retry-after")
        try:
            seconds = float(value) if value is not None else None
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, OverflowError):
                seconds = None
    # "nan" or "inf" parse as floats but make no sense as a wait (and time.sleep(nan) raises)
    return seconds if seconds is not None and math.isfinite(seconds) else None


def _snippet(raw: bytes, key: str | None) -> str:
    # redact before cutting, so a cut cannot leave part of the key behind
    return redact(raw.decode("utf-8", "replace"), key)[:ERROR_SNIPPET_CHARS]


def redact(text: str, key: str | None) -> str:
    """Mask the key wherever a server echoed it back, also as Python would quote it in a message."""
    if not key:
        return text
    for form in (key, repr(key)[1:-1], repr(key.encode("utf-8", "backslashreplace"))[2:-1]):
        text = text.replace(form, "***")
    return text
