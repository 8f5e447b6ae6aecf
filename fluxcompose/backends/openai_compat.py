"""The openai backend: FLUX.1 Kontext and FLUX.2 through an OpenAI-compatible gateway
(APIYI by default).

Two transports, both through the ``openai`` package:

- ``generations`` (default): ``POST {base}/images/generations`` with JSON
  ``{"model", "prompt", "n": 1, "input_image": "data:image/png;base64,...",
  "input_image_2"..., <the model's fields>}``; references 2..N are data URLs too.
  The model's fields (:func:`flux_fields`) are Kontext's ``"aspect_ratio", "seed"?,
  "safety_tolerance", "output_format", "prompt_upsampling"`` or FLUX.2's ``"width",
  "height", "seed"?, "safety_tolerance", "output_format"`` (flux-2-flex adds
  ``"steps"?, "guidance"?, "prompt_upsampling"``). They travel in ``extra_body``.
- ``edits``: ``POST {base}/images/edits`` as multipart with ``model``,
  ``prompt``, ``n``, ``image`` (the canvas file; with several references a list of
  files, which the SDK sends as ``image[]`` parts in order) and the same fields as
  form fields (booleans as ``true``/``false``).

Every request is checked first (``validate_request``): anything the API would refuse
raises ConfigError and nothing is sent.

Text-to-image (no input image) always uses ``generations`` and sends no
``input_image``. The reply's ``data[0].url`` or ``data[0].b64_json`` becomes the
result. The client's own retries are off: ``batch`` owns retrying. Vendor
errors are translated here, once, and never carry the key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from ..errors import ConfigError, GenerationError, Moderated, TaskFailed, TransientError
from ..models import concurrency_cap
from ..net import parse_retry_after, redact, status_error
from .base import GenerationRequest, GenerationResult, TaskHooks, model_fields, validate_request

if TYPE_CHECKING:
    import openai

__all__ = ["DEFAULT_BASE_URL", "TRANSPORTS", "OpenAICompatBackend", "flux_fields", "image_fields"]

DEFAULT_BASE_URL = "https://api.apiyi.com/v1"
TRANSPORTS: tuple[str, ...] = ("generations", "edits")
_MODERATION_CODES = frozenset({"content_policy_violation", "moderation_blocked", "content_filter"})
_MODERATION_RE = re.compile(r"moderat|content[ _-]?polic", re.IGNORECASE)


# The model's fields in the order the gateway's documentation lists them (DESIGN.md 11).
FIELD_ORDER = (
    "aspect_ratio",
    "width",
    "height",
    "seed",
    "steps",
    "guidance",
    "safety_tolerance",
    "output_format",
    "prompt_upsampling",
)


def flux_fields(request: GenerationRequest) -> dict[str, Any]:
    """The model's fields of a request, in wire order, without the images.

    Kontext: ``aspect_ratio``; FLUX.2: ``width`` and ``height``. ``seed``, ``steps`` and
    ``guidance`` are present only when set; ``steps``/``guidance`` and
    ``prompt_upsampling`` only for models that take them (the model table).
    """
    return model_fields(request, FIELD_ORDER)


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_fields(request: GenerationRequest) -> dict[str, str]:
    """``input_image``, ``input_image_2`` ... as data URLs, in order (empty for text-to-image)."""
    if request.input_image is None:
        return {}
    fields = {"input_image": _data_url(request.input_image, request.input_mime)}
    for i, (data, mime) in enumerate(request.more_images, start=2):
        fields[f"input_image_{i}"] = _data_url(data, mime)
    return fields


def _ext(mime: str) -> str:
    return {"image/jpeg": "jpg", "image/webp": "webp"}.get(mime, "png")


def _error_parts(body: object) -> tuple[str, str | None]:
    """(message, code) from an error body such as ``{"message", "type", "code"}``."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message") or inner.get("detail") or ""
            code = inner.get("code")
            return str(message), (str(code) if code is not None else None)
        if isinstance(inner, str):
            return inner, None
    if isinstance(body, str):
        return body[:300], None
    return "", None


class OpenAICompatBackend:
    """FLUX.1 Kontext and FLUX.2 through an OpenAI-compatible images API."""

    name: ClassVar[str] = "openai"
    resumable: ClassVar[bool] = False

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: str = "generations",
        timeout: float = 600.0,
    ) -> None:
        """``timeout`` is the seconds one HTTP request may take (a generation is one request)."""
        if not api_key:
            raise ConfigError(
                "the openai backend needs an API key: set FLUXCOMPOSE_API_KEY or pass --api-key"
            )
        if transport not in TRANSPORTS:
            raise ConfigError(
                f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}"
            )
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.timeout = float(timeout)
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatBackend(base_url={self.base_url!r}, transport={self.transport!r})"

    def max_concurrency(self, model: str) -> int:
        """Tasks in flight: BFL's caps (the model table), 6 for flux-kontext-max, 24 otherwise."""
        return concurrency_cap(model)

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc or self.base_url

    def warm_up(self) -> None:
        """Import the SDK and make the client now (~0.7 s), e.g. on a thread while canvases
        compose, so the first request does not pay for it. Errors surface on first use."""
        with contextlib.suppress(Exception):
            self._get_client()

    def _get_client(self) -> openai.OpenAI:
        # One client per backend, made on first use: importing openai takes ~0.5 s,
        # and the underlying HTTP client is thread-safe and pools connections.
        with self._lock:
            if self._client is None:
                import openai

                client = openai.OpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    max_retries=0,
                    timeout=self.timeout,
                )
                # The SDK fills these from OPENAI_* variables; none of them belongs
                # on a request to a third-party gateway.
                client.organization = None
                client.project = None
                client.admin_api_key = None
                if isinstance(getattr(client, "_custom_headers", None), dict):
                    client._custom_headers = {}
                self._client = client
            return self._client

    def generate(self, request: GenerationRequest, **task: Unpack[TaskHooks]) -> GenerationResult:
        """Send one request and return the image URL or bytes from the reply.

        The gateway answers synchronously, so ``on_submitted`` is not called and
        ``resume_task_id`` is ignored (this backend is not resumable).
        """
        validate_request(request)
        client = self._get_client()
        import openai

        fields = flux_fields(request)
        try:
            if request.input_image is None or self.transport == "generations":
                body: dict[str, Any] = {**image_fields(request), **fields}
                response = client.images.generate(
                    model=request.model, prompt=request.prompt, n=1, extra_body=body
                )
            else:
                response = client.images.edit(
                    model=request.model,
                    prompt=request.prompt,
                    n=1,
                    image=self._edit_files(request),
                    extra_body=fields,
                )
        except openai.APIStatusError as exc:
            self._scrub(exc)
            raise self._status_error(exc) from exc
        except openai.APITimeoutError as exc:
            raise TransientError(f"{self.host} did not answer within {self.timeout:g} s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise TransientError(
                f"could not reach {self.host}: {redact(str(cause) or type(cause).__name__, self._api_key)}"
            ) from exc
        except openai.OpenAIError as exc:
            raise TaskFailed(
                f"unexpected reply from {self.host}: {redact(str(exc), self._api_key)}"
            ) from exc
        return self._result(response)

    @staticmethod
    def _edit_files(request: GenerationRequest) -> Any:
        """The ``image`` part of an edits request: the canvas file, or one file per reference."""
        assert request.input_image is not None
        first = request.input_image, request.input_mime
        if not request.more_images:
            return (f"canvas.{_ext(request.input_mime)}", *first)
        return [
            (f"image{i}.{_ext(mime)}", data, mime)
            for i, (data, mime) in enumerate((first, *request.more_images), start=1)
        ]

    def _scrub(self, exc: openai.APIStatusError) -> None:
        # The SDK's message quotes the server, which may echo the key; the chained
        # exception shows up in --debug tracebacks, so redact it there too.
        exc.message = redact(exc.message, self._api_key)
        exc.args = tuple(redact(a, self._api_key) if isinstance(a, str) else a for a in exc.args)

    def _status_error(self, exc: openai.APIStatusError) -> GenerationError:
        """Our error for an HTTP error status (:func:`fluxcompose.net.status_error`), with
        moderation recognised in the other 4xx and ``retry-after-ms`` honoured on 429."""
        status = exc.status_code
        message, code = _error_parts(exc.body)
        message = redact(message, self._api_key)
        if (
            400 <= status < 500
            and status not in (401, 402, 403, 429)
            and ((code in _MODERATION_CODES) or _MODERATION_RE.search(message))
        ):
            detail = f": {message}" if message else ""
            return Moderated(f"{self.host} refused the request (moderation){detail}")
        retry_after = None
        if status == 429:
            headers = exc.response.headers
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is None and headers.get("retry-after-ms"):
                ms = parse_retry_after(headers.get("retry-after-ms"))
                retry_after = None if ms is None else ms / 1000
        return status_error(
            status,
            where=self.host,
            detail=message,
            retry_after=retry_after,
            key_hint="FLUXCOMPOSE_API_KEY or --api-key",
        )

    def _result(self, response: object) -> GenerationResult:
        data = getattr(response, "data", None)
        if not data:
            extra = getattr(response, "model_extra", None) or {}
            message, code = _error_parts(extra)
            if message and (code in _MODERATION_CODES or _MODERATION_RE.search(message)):
                raise Moderated(f"{self.host} refused the request (moderation): {message}")
            shown = f": {redact(message, self._api_key)}" if message else ""
            raise TaskFailed(f"{self.host} returned no image{shown}")
        first = data[0]
        url = getattr(first, "url", None)
        b64 = getattr(first, "b64_json", None)
        extra_info: dict[str, Any] = {}
        created = getattr(response, "created", None)
        if created is not None:
            extra_info["created"] = created
        revised = getattr(first, "revised_prompt", None)
        if revised:
            extra_info["revised_prompt"] = revised
        if url:
            return GenerationResult(url=str(url), extra=extra_info)
        if b64:
            text = str(b64)
            if text.startswith("data:") and "," in text:
                text = text.split(",", 1)[1]
            try:
                raw = base64.b64decode(text, validate=False)
            except (binascii.Error, ValueError) as exc:
                raise TaskFailed(f"{self.host} returned b64_json that is not base64") from exc
            return GenerationResult(data=raw, extra=extra_info)
        raise TaskFailed(f"{self.host} returned neither a url nor b64_json")
