"""A loopback OpenAI-compatible chat and images server for tests and dry runs.

``POST /v1/chat/completions`` answers with whatever ``responder(request_json)`` returns (by default
"echo: " and the last user text). Faults queued in ``faults`` are applied to successive requests,
one each; a responder may also return a ``Fault`` to fail chosen requests whatever their order.
Every request (a GET too, as a client following a redirect would send) is logged in ``requests``
(method, body and headers; the Authorization header only as present or absent) and the most
requests handled at once is kept in ``max_in_flight``.

``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (multipart/form-data with a
``prompt`` field and an ``image`` file) reply ``{"created": 0, "data": [{"b64_json": PNG}]}`` (or
``{"url": ...}`` when ``response_format`` is "url"). The default PNG is one solid colour, the first
three bytes of sha256(prompt) for a generation and of sha256(prompt + b"\\0" + image bytes) for an
edit, at the request's ``size`` ("WxH"; 64x64 without one). ``image_responder(fields)`` replaces
it: it gets the JSON body or the form (text fields as str, files as bytes) and returns PNG bytes or
a ``Fault``. The parts of every multipart request are logged in ``ReceivedRequest.parts``. Queued
faults apply to the image endpoints too ("missing_choices" is then a 200 reply without ``data``).

A chat request's ``response_format`` is checked as the API checks structured outputs
(:func:`response_format_error`: a malformed one gets a 400); :func:`schema_instance` builds a reply
that fits a ``json_schema`` (a responder can answer with it).

Chat replies carry a dated ``model`` (the requested name plus ``-2024-01-01`` unless it is dated
already, or ``served_model``) and ``usage`` with deterministic counts: prompt tokens are the
whitespace-separated words of every text in the messages, completion tokens the words of the reply.

    with FakeOpenAIServer(faults=[Fault.rate_limited("2")]) as server:
        client = OpenAICompatClient(server.base_url, "gpt-4o-2024-08-06")

The request and reply bodies (multipart parsing, ``response_format`` checks, the default replies)
live in ``fake_openai_bodies.py``; this module holds ``Fault`` and the server.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

from harness.clients.messages import is_dated_snapshot
from harness.testing.fake_openai_bodies import (FormPart, ReceivedRequest, echo_last_text, message_texts,
                                                parse_multipart, response_format_error, solid_colour_image)
from harness.testing.fake_openai_bodies import schema_instance  # noqa: F401 - re-exported: tests import it from here

FAKE_SNAPSHOT_SUFFIX = "-2024-01-01"
CHAT_PATH = "/v1/chat/completions"
GENERATIONS_PATH = "/v1/images/generations"
EDITS_PATH = "/v1/images/edits"


@dataclass(frozen=True)
class Fault:
    """What to do instead of a normal reply: ``kind`` is "status" (an error reply, with ``headers``
    added), "slow" (answer only after ``delay_s``), "malformed_json" or "missing_choices" (a 200
    reply the client rejects)."""

    kind: str
    status: int = 200
    message: str = ""
    retry_after: str | None = None
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> "Fault":
        return cls("status", 429, "Rate limit reached (fake).", retry_after)

    @classmethod
    def rate_limited_ms(cls, milliseconds: str) -> "Fault":
        """A 429 with OpenAI's ``retry-after-ms`` header instead of ``Retry-After``."""
        return cls("status", 429, "Rate limit reached (fake).", headers=(("retry-after-ms", milliseconds),))

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> "Fault":
        return cls("status", status, "Moved (fake).", headers=(("Location", location),))

    @classmethod
    def server_error(cls, status: int = 500) -> "Fault":
        return cls("status", status, "The server had an error (fake).")

    @classmethod
    def client_error(cls, status: int = 400, message: str = "Invalid request (fake).") -> "Fault":
        return cls("status", status, message)

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        return cls("slow", delay_s=seconds)

    @classmethod
    def malformed_json(cls) -> "Fault":
        return cls("malformed_json")

    @classmethod
    def missing_choices(cls) -> "Fault":
        return cls("missing_choices")


class FakeOpenAIServer:
    """A threaded HTTP server on 127.0.0.1 (a free port); use it as a context manager.

    Args:
        responder: request JSON -> reply text (or a ``Fault``).
        faults: applied in order to the next requests, one per request.
        api_key: if set, requests without ``Authorization: Bearer <api_key>`` get a 401 whose
            message quotes the presented key, as careless servers do (clients must mask it).
        served_model: the ``model`` named in replies (default: a dated form of the requested one).
        delay_s: how long every normal reply takes (to observe concurrency).
    """

    def __init__(self, responder: Callable[[Any], "str | Fault"] = echo_last_text,
                 faults: Iterable[Fault] = (), *, api_key: str | None = None,
                 served_model: str | None = None, delay_s: float = 0.0,
                 image_responder: Callable[[dict], "bytes | Fault"] = solid_colour_image):
        self.responder = responder
        self.image_responder = image_responder
        self.api_key = api_key
        self.served_model = served_model
        self.delay_s = delay_s
        self.requests: list[ReceivedRequest] = []
        self.max_in_flight = 0
        self._faults = deque(faults)
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------
    # lifecycle

    def __enter__(self) -> "FakeOpenAIServer":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake._handle(self, raw)

            def do_GET(self) -> None:  # logged, then refused (400: no JSON body)
                fake._handle(self, b"")

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        # a short poll interval makes stop() quick (shutdown waits for the next poll)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes "slow" handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running (use it as a context manager)")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def add_faults(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    # ------------------------------------------------------------------------------------------
    # requests

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        authorization = handler.headers.get("Authorization")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        headers = {name: value for name, value in handler.headers.items() if name.lower() != "authorization"}
        parts = parse_multipart(raw, handler.headers.get("Content-Type") or "")
        with self._lock:
            self.requests.append(ReceivedRequest(handler.path, body, headers, authorization is not None,
                                                 handler.command, parts or []))
            fault = self._faults.popleft() if self._faults else None
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        left: list[bool] = []

        def leave() -> None:
            # a request stops counting just before its reply goes out: once the client has the reply it
            # may send its next request, which must not overlap this one in ``max_in_flight``
            if not left:
                left.append(True)
                with self._lock:
                    self._in_flight -= 1

        handler.before_reply = leave  # called by _send
        try:
            if handler.path in (GENERATIONS_PATH, EDITS_PATH):
                self._respond_image(handler, body, parts, fault, authorization)
            else:
                self._respond(handler, body, fault, authorization)
        finally:
            leave()

    def _respond(self, handler: BaseHTTPRequestHandler, body: Any, fault: Fault | None,
                 authorization: str | None) -> None:
        if handler.path != CHAT_PATH:
            return _send_error(handler, 404, f"no route {handler.path} on the fake server")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _send_error(handler, 400, "the request body must be JSON with a messages list")
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            presented = (authorization or "").removeprefix("Bearer ")
            return _send_error(handler, 401, f"Incorrect API key provided: {presented or '(none)'}.")
        if "response_format" in body:
            refused = response_format_error(body["response_format"])
            if refused:
                return _send_error(handler, 400, f"Invalid 'response_format': {refused}.")
        reply = self.responder(body)
        if isinstance(reply, Fault):
            fault, reply = fault or reply, ""
        model = self.served_model or _dated(str(body.get("model", "fake-model")))
        if fault is not None and fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _send_error(handler, fault.status, fault.message, {**extra, **dict(fault.headers)})
        if fault is not None and fault.kind == "malformed_json":
            return _send(handler, 200, b'{"id": "chatcmpl-fake", "choices": [')
        usage = {"prompt_tokens": sum(len(text.split()) for text in message_texts(body)),
                 "completion_tokens": len(reply.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion = {"id": f"chatcmpl-fake-{len(self.requests)}", "object": "chat.completion",
                      "created": 0, "model": model, "usage": usage}
        if fault is not None and fault.kind == "missing_choices":
            return _send_json(handler, 200, completion)
        delay = fault.delay_s if fault is not None and fault.kind == "slow" else self.delay_s
        if delay and self._stopping.wait(delay):
            return None  # shutting down
        completion["choices"] = [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": reply}}]
        return _send_json(handler, 200, completion)


    def _respond_image(self, handler: BaseHTTPRequestHandler, body: Any, parts: list[FormPart] | None,
                       fault: Fault | None, authorization: str | None) -> None:
        if handler.path == GENERATIONS_PATH:
            if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
                return _send_error(handler, 400, "the request body must be JSON with a prompt string")
            fields = body
        else:
            fields = {part.name: part.data if part.filename is not None else part.data.decode("utf-8", "replace")
                      for part in parts or []}
            if not isinstance(fields.get("image"), bytes) or not isinstance(fields.get("prompt"), str):
                return _send_error(handler, 400, "the request must be multipart/form-data with an image file "
                                                 "and a prompt field")
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            presented = (authorization or "").removeprefix("Bearer ")
            return _send_error(handler, 401, f"Incorrect API key provided: {presented or '(none)'}.")
        reply = self.image_responder(fields)
        if isinstance(reply, Fault):
            fault, reply = fault or reply, b""
        if fault is not None and fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _send_error(handler, fault.status, fault.message, {**extra, **dict(fault.headers)})
        if fault is not None and fault.kind == "malformed_json":
            return _send(handler, 200, b'{"created": 0, "data": [')
        if fault is not None and fault.kind == "missing_choices":
            return _send_json(handler, 200, {"created": 0})
        delay = fault.delay_s if fault is not None and fault.kind == "slow" else self.delay_s
        if delay and self._stopping.wait(delay):
            return None  # shutting down
        if fields.get("response_format") == "url":
            item = {"url": f"http://127.0.0.1/fake-images/{hashlib.sha256(reply).hexdigest()[:16]}.png"}
        else:
            item = {"b64_json": base64.b64encode(reply).decode("ascii")}
        return _send_json(handler, 200, {"created": 0, "data": [item]})


class _Server(ThreadingHTTPServer):
    # the default listen backlog (5) drops connections when a client opens dozens at once, and the
    # kernel's SYN retry then adds a second to each: a real API server accepts many more
    request_queue_size = 512
    daemon_threads = True


def _dated(model: str) -> str:
    return model if is_dated_snapshot(model) else model + FAKE_SNAPSHOT_SUFFIX


def _send_error(handler: BaseHTTPRequestHandler, status: int, message: str,
                headers: dict[str, str] | None = None) -> None:
    error = {"error": {"message": message, "type": "fake_error", "code": status}}
    _send_json(handler, status, error, headers)


def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict,
               headers: dict[str, str] | None = None) -> None:
    _send(handler, status, json.dumps(payload).encode("utf-8"), headers)


def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes,
          headers: dict[str, str] | None = None) -> None:
    before_reply = getattr(handler, "before_reply", None)
    if before_reply is not None:
        before_reply()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timed out) first
        pass


def main(argv: list[str] | None = None) -> int:
    """Serve the fake on loopback until interrupted (benchmarks run it in a process of its own, so
    its threads do not share the client's interpreter lock); prints the base URL first."""
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(prog="python -m harness.testing.fake_openai")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each normal reply")
    args = parser.parse_args(argv)
    with FakeOpenAIServer(delay_s=args.delay) as server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
