"""An image model behind an OpenAI-compatible images API (gpt-image-*, DALL-E, compatible gateways).

Text-to-image requests go to ``POST {base_url}/images/generations`` (JSON), edits to
``POST {base_url}/images/edits`` (multipart/form-data: the source image as a PNG file in the field
``image``, the instruction in ``prompt``). One image per call (``n = 1``); the reply's
``data[0].b64_json`` is decoded and converted to RGB (an alpha channel is dropped).

Seeds: the API takes none, so ``request.seed`` is not sent and the same request gives another image
on every call. Outputs are not reproducible; the runner's generation cache keeps the first image of
each sample, so a resumed or re-judged run reuses it instead of calling again.

Identity: ``model_digest`` hashes the model name and the generation parameters (size, quality,
``extra_params``), not the base URL; the same caveat as ``openai-chat`` applies (one name, one model).
"""
from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

from PIL import Image

from harness.clients.openai_compat import TRANSPORT_PARAMS, ImageResult, connect
from harness.errors import HarnessError, PartialBatchError
from harness.hashing import hash_value
from harness.models.base import ModelAdapter, Request
from harness.registry import register

ADAPTER_VERSION = "openai-images/1"
ENDPOINTS = {"text_to_image": "/images/generations", "edit": "/images/edits"}


def png_bytes(image: Image.Image) -> bytes:
    """A source image as PNG (lossless), RGB unless it already is RGB or RGBA."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@register("model", "openai-images")
class OpenAIImagesModel(ModelAdapter):
    """Generates and edits images through an OpenAI-compatible images API.

    Args:
        base_url: API root up to ``/v1`` (``https://api.openai.com/v1``).
        model: the model name the server knows (``gpt-image-1``, ``dall-e-3``, ...).
        api_key_env: environment variable holding the key (may be unset for a loopback server).
        size: ``"WxH"`` (or ``"auto"``) sent with every call; None: not sent (server default).
        quality: sent if set ("low", "medium", "high", "standard", "hd", ... as the model accepts).
        response_format: "b64_json" (DALL-E models need it to return data, not URLs) or None, for
            models that always return base64 and reject the field (gpt-image-*).
        extra_params: more generation fields sent with every call (``background``,
            ``output_format``, ``style``, ...); they are part of the model's identity.
        max_concurrency: calls in flight at once; also the batch size the runner uses.
        max_retries, timeout_s, backoff_s, backoff_max_s, retry_after_max_s,
            allow_insecure_http: see ``OpenAICompatClient`` (image calls are slow: 300 s timeout).
        price_per_image: USD per returned image, for ``usage["cost_usd"]``.
    """

    capabilities = frozenset({"text_to_image", "edit"})
    #: where the server is, how patiently it is called and how images travel: no part of the
    #: experiment's identity
    transport_params = (*TRANSPORT_PARAMS, "price_per_image", "response_format")

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 size: str | None = "1024x1024", quality: str | None = None,
                 response_format: str | None = "b64_json", extra_params: Mapping[str, Any] | None = None,
                 price_per_image: float | None = None, **transport: Any):
        if response_format not in (None, "b64_json"):
            raise HarnessError(f"response_format must be 'b64_json' or null (image URLs are not downloaded), "
                               f"got {response_format!r}")
        if price_per_image is not None and not (isinstance(price_per_image, (int, float)) and price_per_image >= 0):
            raise HarnessError(f"price_per_image must be a non-negative number of USD, got {price_per_image!r}")
        reserved = {"model", "prompt", "n", "image", "size", "quality", "response_format"} & set(extra_params or {})
        if reserved:
            raise HarnessError(f"extra_params may not set {', '.join(sorted(reserved))}: use the adapter's own "
                               f"parameters (n is always 1)")
        # image calls are slow and heavy: fewer in flight, a longer timeout than the client's defaults
        self.client = connect(base_url, model, "openai-images", api_key_env=api_key_env,
                              **{"max_concurrency": 4, "timeout_s": 300.0, **transport})
        self.model = model
        self.size = size
        self.quality = quality
        self.response_format = response_format
        self.extra_params = dict(extra_params or {})
        self.price_per_image = price_per_image
        self.batch_size = self.client.max_concurrency
        self._images = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"

    def _generation(self) -> dict:
        """The parameters that change the image (sent with every call, part of the identity)."""
        return {"size": self.size, "quality": self.quality, **self.extra_params}

    @property
    def model_digest(self) -> str:
        return hash_value({"api": "openai-images", "model": self.model, **self._generation()})

    @property
    def protocol(self) -> dict:
        return {
            "adapter": ADAPTER_VERSION,
            "model": self.model,
            "size": self.size,
            "quality": self.quality,
            "extra_params": self.extra_params,
            "n": 1,
            "seed": "none: the API takes no seed; outputs are not reproducible (the generation cache keeps the first)",
            "output": "data[0].b64_json decoded, converted to RGB (alpha dropped), at the size the server returns",
        }

    def protocol_for(self, capability: str) -> dict:
        protocol = {**self.protocol, "endpoint": ENDPOINTS.get(capability)}
        if capability == "edit":
            protocol["source_image"] = "lossless PNG of the source (RGB), multipart file field 'image'"
        return protocol

    @property
    def usage(self) -> dict:
        """The client's counts (requests, retries, failures, tokens, models), ``images`` returned and
        ``cost_usd`` = images x ``price_per_image`` (None without a price)."""
        usage = {**self.client.usage, "images": self._images}
        usage["cost_usd"] = (round(self._images * self.price_per_image, 6)
                             if self.price_per_image is not None else None)
        return usage

    def _params(self) -> dict:
        return {**self._generation(), "response_format": self.response_format}

    def generate_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        """One image per request; raises ``PartialBatchError`` (with the finished images) if some
        calls still failed after their retries."""
        results = self.client.images_generate([request.prompt for request in requests], **self._params())
        return self._collect(requests, results)

    def edit_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        """Each request's one source image, edited as its prompt says (``PartialBatchError`` as above)."""
        for request in requests:  # refuse before any call is paid for
            if len(request.images) != 1:
                raise HarnessError(f"openai-images edits exactly one source image per request; "
                                   f"{request.sample_id!r} has {len(request.images)}")
        sources = [png_bytes(request.images[0].load()) for request in requests]
        results = self.client.images_edit(sources, [request.prompt for request in requests], **self._params())
        return self._collect(requests, results)

    def _collect(self, requests: Sequence[Request], results: Sequence[ImageResult]) -> list[Image.Image]:
        done: dict[int, Image.Image] = {}
        errors: dict[int, str] = {}
        for position, result in enumerate(results):
            if result.error is not None:
                errors[position] = result.error
                continue
            try:
                with Image.open(io.BytesIO(result.data or b"")) as image:
                    done[position] = image.convert("RGB")
            except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for a bad payload
                errors[position] = f"the returned image cannot be read: {type(exc).__name__}: {exc}"
        self._images += len(done)
        if errors:
            first = min(errors)
            raise PartialBatchError(f"{len(errors)} of {len(results)} calls to {self.model} failed "
                                    f"(first: {requests[first].sample_id}: {errors[first]})", done=done)
        return [done[position] for position in range(len(results))]
