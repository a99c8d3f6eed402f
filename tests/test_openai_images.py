"""openai-images adapter and the client's image endpoints, against the loopback fake server."""
from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest
from PIL import Image

from harness.clients.attempts import parse_reply
from harness.clients.openai_compat import OpenAICompatClient
from harness.clients.replies import first_image, multipart_form
from harness.errors import HarnessError, PartialBatchError
from harness.models.base import InputImage, Request
from harness.models.openai_images import OpenAIImagesModel
from harness.testing.fake_openai import FakeOpenAIServer, Fault, parse_multipart


def _colour(material: bytes) -> tuple[int, int, int]:
    """The fake server's documented colour: the first three bytes of sha256."""
    return tuple(hashlib.sha256(material).digest()[:3])


def _source(colour=(10, 200, 30), size=(5, 3)) -> Image.Image:
    image = Image.new("RGB", size, colour)
    image.putpixel((0, 0), (255, 255, 255))
    return image


def _edit_request(sample_id: str, prompt: str, colour=(10, 200, 30)) -> Request:
    return Request(sample_id, prompt, 7, (InputImage(f"digest-{sample_id}", lambda: _source(colour)),))


def _model(server: FakeOpenAIServer, **params) -> OpenAIImagesModel:
    return OpenAIImagesModel(server.base_url, "gpt-image-1", backoff_s=0.0, **{"size": "32x24", **params})


def test_generate_sends_json_and_decodes_images():
    prompts = ["a red circle", "two blue squares", "a star"]
    with FakeOpenAIServer() as server:
        model = _model(server, quality="low", price_per_image=0.25)
        images = model.generate_images([Request(f"g{i}", p, seed=i) for i, p in enumerate(prompts)])
        bodies = sorted((r.body for r in server.requests), key=lambda body: prompts.index(body["prompt"]))
    assert [r.path for r in server.requests] == ["/v1/images/generations"] * 3
    assert bodies[0] == {"model": "gpt-image-1", "prompt": "a red circle", "n": 1, "size": "32x24",
                         "quality": "low", "response_format": "b64_json"}
    assert all("seed" not in body for body in bodies)  # the API has no seed
    for prompt, image in zip(prompts, images):
        assert image.mode == "RGB" and image.size == (32, 24)
        assert image.getpixel((5, 5)) == _colour(prompt.encode("utf-8"))
    usage = model.usage
    assert (usage["requests"], usage["images"], usage["retries"], usage["failures"]) == (3, 3, 0, 0)
    assert usage["cost_usd"] == 0.75


def test_edit_sends_multipart_with_the_source_png():
    with FakeOpenAIServer() as server:
        model = _model(server, response_format=None, extra_params={"background": "opaque"})
        [image] = model.edit_images([_edit_request("e1", "make it blue — now")])
        [received] = server.requests
    assert received.path == "/v1/images/edits" and received.body is None
    assert received.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = {part.name: part for part in received.parts}
    assert sorted(parts) == ["background", "image", "model", "n", "prompt", "size"]  # response_format: not sent
    assert (parts["image"].filename, parts["image"].content_type) == ("image.png", "image/png")
    uploaded = Image.open(io.BytesIO(parts["image"].data))
    assert uploaded.format == "PNG" and uploaded.size == (5, 3)
    assert uploaded.getpixel((0, 0)) == (255, 255, 255) and uploaded.getpixel((1, 1)) == (10, 200, 30)
    form = received.form()
    assert (form["prompt"], form["model"], form["n"], form["size"]) == (
        "make it blue — now", "gpt-image-1", "1", "32x24")
    expected = _colour("make it blue — now".encode("utf-8") + b"\0" + parts["image"].data)
    assert image.size == (32, 24) and image.getpixel((0, 0)) == expected
    assert model.usage["images"] == 1 and model.usage["cost_usd"] is None


def test_rate_limits_and_server_errors_are_retried():
    faults = [Fault.rate_limited("0"), Fault.server_error(500), Fault.server_error(503), Fault.malformed_json()]
    with FakeOpenAIServer(faults=faults) as server:
        model = _model(server, max_concurrency=1)
        images = model.generate_images([Request("g0", "a red circle", 0)])
        [edited] = model.edit_images([_edit_request("e0", "blue")])
    assert images[0].getpixel((0, 0)) == _colour(b"a red circle")
    assert len(server.requests) == 6  # 4 failed attempts + 2 successes
    usage = model.usage
    assert (usage["requests"], usage["retries"], usage["failures"], usage["images"]) == (2, 4, 0, 2)
    assert edited.size == (32, 24)


def test_partial_failure_raises_with_the_finished_images():
    def refuse_some(fields: dict):
        if "forbidden" in fields["prompt"]:
            return Fault.client_error(400, "Your request was rejected by the safety system (fake).")
        if "flaky" in fields["prompt"]:
            return Fault.server_error(500)
        return _png((1, 2, 3))

    requests = [Request("ok0", "a circle", 0), Request("bad1", "a forbidden thing", 1),
                Request("ok2", "a square", 2), Request("flaky3", "a flaky star", 3)]
    with FakeOpenAIServer(image_responder=refuse_some) as server:
        model = _model(server, max_retries=2, price_per_image=0.5)
        with pytest.raises(PartialBatchError) as info:
            model.generate_images(requests)
        attempts = {prompt: sum(r.body["prompt"] == prompt for r in server.requests)
                    for prompt in ("a circle", "a forbidden thing", "a flaky star")}
    assert sorted(info.value.done) == [0, 2]
    assert all(image.getpixel((0, 0)) == (1, 2, 3) for image in info.value.done.values())
    assert "2 of 4 calls" in str(info.value) and "bad1" in str(info.value) and "HTTP 400" in str(info.value)
    assert attempts == {"a circle": 1, "a forbidden thing": 1, "a flaky star": 3}  # 400 not retried, 500 twice
    assert model.usage["images"] == 2 and model.usage["failures"] == 2 and model.usage["cost_usd"] == 1.0


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_unreadable_payloads_and_url_replies_are_failures():
    not_an_image = lambda fields: b"definitely not a png"  # noqa: E731
    with FakeOpenAIServer(image_responder=not_an_image) as server:
        model = _model(server)
        with pytest.raises(PartialBatchError, match="cannot be read") as info:
            model.generate_images([Request("g", "x", 0)])
        assert info.value.done == {}
        # A URL instead of data fails at once (a retry is billed and changes nothing).
        client = OpenAICompatClient(server.base_url, "dall-e-3", max_retries=3, backoff_s=0.0)
        [result] = client.images_generate(["x"], response_format="url")
    assert result.data is None and result.attempts == 1 and "response_format to b64_json" in result.error


def test_client_counts_image_tokens_and_decodes_base64():
    with FakeOpenAIServer() as server:
        client = OpenAICompatClient(server.base_url, "gpt-image-1", backoff_s=0.0)
        [result] = client.images_generate(["a red circle"], size="2x2")
    assert result.error is None and Image.open(io.BytesIO(result.data)).size == (2, 2)
    # gpt-image-* report input/output tokens: counted as prompt/completion tokens
    reply = {"data": [{"b64_json": base64.b64encode(b"abc").decode()}],
             "usage": {"input_tokens": 7, "output_tokens": 9}}
    attempt = parse_reply(json.dumps(reply).encode(), first_image, None)
    assert attempt.value == b"abc" and attempt.tokens == {"prompt_tokens": 7, "completion_tokens": 9}
    broken = {"data": [{"b64_json": "not base64!"}]}
    attempt = parse_reply(json.dumps(broken).encode(), first_image, None)
    assert attempt.retryable and "not valid base64" in attempt.error


def test_multipart_form_round_trip():
    data = b"\x89PNG\r\n\x1a\n--not-a-boundary\r\n\r\n"
    body, content_type = multipart_form({"prompt": "héllo\r\nworld", "n": 1, "stream": False},
                                        [("image", "image.png", "image/png", data)])
    again, _ = multipart_form({"prompt": "héllo\r\nworld", "n": 1, "stream": False},
                              [("image", "image.png", "image/png", data)])
    assert body == again  # the boundary comes from the content: same form, same bytes
    parts = parse_multipart(body, content_type)
    assert [(p.name, p.data, p.filename, p.content_type) for p in parts] == [
        ("prompt", "héllo\r\nworld".encode(), None, None), ("n", b"1", None, None), ("stream", b"false", None, None),
        ("image", data, "image.png", "image/png")]


def test_identity_protocol_and_validation(monkeypatch):
    with FakeOpenAIServer() as server:
        model = _model(server)
        elsewhere = OpenAIImagesModel(server.base_url.replace("127.0.0.1", "localhost"), "gpt-image-1",
                                      size="32x24", timeout_s=5, max_retries=1)
        bigger = _model(server, size="64x64")
        assert model.model_digest == elsewhere.model_digest != bigger.model_digest
        assert model.protocol_for("edit")["endpoint"] == "/images/edits"
        assert model.protocol_for("text_to_image")["endpoint"] == "/images/generations"
        assert "not reproducible" in model.protocol["seed"]
        assert {"base_url", "timeout_s", "response_format", "price_per_image"} <= set(model.transport_params)
        with pytest.raises(HarnessError, match="exactly one source image"):
            model.edit_images([Request("none", "blue", 0)])
        assert server.requests == []  # refused before any call
        with pytest.raises(HarnessError, match="response_format"):
            _model(server, response_format="url")
        with pytest.raises(HarnessError, match="extra_params may not set n"):
            _model(server, extra_params={"n": 4})
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(HarnessError, match="OPENAI_API_KEY"):
        OpenAIImagesModel("https://api.example.com/v1", "gpt-image-1")
    assert OpenAIImagesModel.plugin_name == "openai-images"
    assert OpenAIImagesModel.capabilities == {"text_to_image", "edit"}


def test_fake_server_refuses_bad_image_requests(monkeypatch):
    with FakeOpenAIServer(api_key="fake-key-123") as server:
        client = OpenAICompatClient(server.base_url, "gpt-image-1", api_key_env="FAKE_IMAGES_KEY", backoff_s=0.0)
        monkeypatch.setenv("FAKE_IMAGES_KEY", "wrong-key")
        [unauthorised] = client.images_generate(["x"])
        monkeypatch.setenv("FAKE_IMAGES_KEY", "fake-key-123")
        body, content_type = multipart_form({"model": "gpt-image-1", "prompt": "no image"}, [])
        no_image = client.post("/images/edits", body, content_type, lambda reply: reply)
        [fine] = client.images_edit([_png((9, 9, 9))], ["blue"], size="3x3")
    assert unauthorised.error.startswith("HTTP 401") and "wrong-key" not in unauthorised.error
    assert no_image.error.startswith("HTTP 400") and no_image.attempts == 1
    assert fine.error is None and Image.open(io.BytesIO(fine.data)).size == (3, 3)
    assert [request.has_authorization for request in server.requests] == [True, True, True]
