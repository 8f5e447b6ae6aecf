"""The bfl backend: Black Forest Labs' native API (submit, then poll).

Submit ``POST {base}/v1/{model}`` with header ``x-key`` and a JSON body
(:func:`submit_body`; images as plain base64, no ``data:`` prefix):

- FLUX.1 Kontext: ``{"prompt", "input_image"?, "input_image_2..4"?, "seed"?,
  "aspect_ratio", "output_format", "prompt_upsampling", "safety_tolerance"}``;
- FLUX.2 pro and max: ``{"prompt", "input_image"?, "input_image_2..8"?, "seed"?,
  "width", "height", "output_format", "safety_tolerance"}`` (no
  ``prompt_upsampling``: BFL's ``Flux2Inputs`` has none);
- flux-2-flex: the same plus ``"steps"?``, ``"guidance"?`` and ``"prompt_upsampling"``.

The reply is ``{"id", "polling_url"}``, for FLUX.2 also ``cost`` (credits, 1 credit =
$0.01), ``input_mp`` and ``output_mp``: the result's ``extra`` carries them as
``cost_credits``, ``input_mp`` and ``output_mp``. Then ``GET polling_url`` (with
``x-key``) until the status is terminal: ``Ready`` gives ``result.sample``, the
image URL.

Resuming: right after a task is accepted, ``on_submitted`` receives a *task
token* ``"<id>|<polling_url>"``, or ``"<id>|<polling_url>|<billing JSON>"`` when the
reply carried cost fields (see :func:`encode_task`), so a resumed task still
reports what it cost. Passing that token back as ``resume_task_id`` polls the same
task without submitting (and paying) again. A bare id also works; it is polled at
``{base}/v1/get_result?id=<id>`` (and reports no cost).

The polling schedule is pure (:func:`poll_interval`) and the loop takes an
injectable ``sleep`` and ``clock``, so tests run without waiting.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from ..errors import (
    ConfigError,
    GenerationError,
    Moderated,
    RateLimited,
    TaskFailed,
    TransientError,
)
from ..models import concurrency_cap, model_spec
from ..net import make_client, network_error, parse_retry_after, redact, status_error
from .base import GenerationRequest, GenerationResult, TaskHooks, model_fields, validate_request

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "DEFAULT_BASE_URL",
    "BFLBackend",
    "billing_from_reply",
    "decode_task",
    "encode_task",
    "task_billing",
    "poll_interval",
    "submit_body",
]

DEFAULT_BASE_URL = "https://api.bfl.ai"

FAST_POLL_S = 0.5
"""Seconds between polls for the first FAST_PHASE_S seconds after submission."""
FAST_PHASE_S = 30.0
MAX_POLL_S = 5.0
DOUBLING_S = 15.0
"""After the fast phase the interval doubles every DOUBLING_S seconds, up to MAX_POLL_S."""

READY = "Ready"
MODERATED_STATUSES = frozenset({"Request Moderated", "Content Moderated"})
FAILED_STATUSES = frozenset({"Error", "Task not found", "Failed"})


def poll_interval(elapsed: float) -> float:
    """Seconds to wait before the next poll, ``elapsed`` seconds after submission.

    0.5 s for the first 30 s, then doubling every 15 s up to 5 s (reached at
    about 80 s).
    """
    if elapsed < FAST_PHASE_S:
        return FAST_POLL_S
    doublings = (elapsed - FAST_PHASE_S) / DOUBLING_S
    if doublings >= math.log2(MAX_POLL_S / FAST_POLL_S):  # also keeps 2**x from overflowing
        return MAX_POLL_S
    return min(MAX_POLL_S, FAST_POLL_S * 2**doublings)


BILLING_KEYS: tuple[tuple[str, str], ...] = (
    ("cost", "cost_credits"),
    ("input_mp", "input_mp"),
    ("output_mp", "output_mp"),
)
"""(reply field, ``extra`` key) for what BFL says a task cost."""


def billing_from_reply(reply: Mapping[str, Any]) -> dict[str, float]:
    """``{"cost_credits", "input_mp", "output_mp"}`` from a BFL reply, those that are numbers."""
    out: dict[str, float] = {}
    for field_name, key in BILLING_KEYS:
        value = reply.get(field_name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def encode_task(task_id: str, polling_url: str, billing: Mapping[str, float] | None = None) -> str:
    """The resume token given to ``on_submitted``: ``"<id>|<polling_url>"``, plus
    ``"|<billing JSON>"`` when the submit reply said what the task costs."""
    token = f"{task_id}|{polling_url}"
    if billing:
        token += "|" + json.dumps(dict(billing), sort_keys=True, separators=(",", ":"))
    return token


def decode_task(token: str, base_url: str) -> tuple[str, str]:
    """(id, polling_url) from a resume token; a bare id polls ``{base}/v1/get_result?id=``."""
    parts = token.split("|", 2)
    task_id = parts[0].strip()
    if not task_id:
        raise ConfigError(f"invalid BFL task id {token!r}")
    url = parts[1].strip() if len(parts) > 1 else ""
    if url:
        return task_id, url
    query = urllib.parse.urlencode({"id": task_id})
    return task_id, f"{base_url.rstrip('/')}/v1/get_result?{query}"


def task_billing(token: str) -> dict[str, float]:
    """The billing fields stored in a resume token (empty for older or bare tokens)."""
    parts = token.split("|", 2)
    if len(parts) < 3:
        return {}
    try:
        data = json.loads(parts[2])
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, Mapping):
        return {}
    keys = {key for _field, key in BILLING_KEYS}
    return {
        k: float(v)
        for k, v in data.items()
        if k in keys and isinstance(v, int | float) and not isinstance(v, bool)
    }


# The model's fields in the order BFL's documentation lists them (DESIGN.md section 11).
FIELD_ORDER = (
    "seed",
    "aspect_ratio",
    "width",
    "height",
    "steps",
    "guidance",
    "output_format",
    "prompt_upsampling",
    "safety_tolerance",
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def submit_body(request: GenerationRequest) -> dict[str, Any]:
    """The JSON body of a submission for the request's model, in wire order.

    ``seed``, ``steps`` and ``guidance`` appear only when set; references 2..N as
    ``input_image_2`` ... Check the request with ``validate_request`` first.
    """
    body: dict[str, Any] = {"prompt": request.prompt}
    if request.input_image is not None:
        body["input_image"] = _b64(request.input_image)
    for i, (data, _mime) in enumerate(request.more_images, start=2):
        body[f"input_image_{i}"] = _b64(data)
    body.update(model_fields(request, FIELD_ORDER))
    return body


def _detail(body: object) -> str:
    """A short readable reason from a BFL error body (``{"detail": ...}``)."""
    if isinstance(body, Mapping):
        detail = body.get("detail", body.get("message", body.get("error", "")))
        if isinstance(detail, list):
            parts = []
            for item in detail[:3]:
                if isinstance(item, Mapping):
                    loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                    parts.append(
                        f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", ""))
                    )
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        return str(detail) if detail else ""
    if isinstance(body, str):
        return body[:300]
    return ""


class BFLBackend:
    """FLUX.1 Kontext and FLUX.2 through api.bfl.ai: submit, remember the task, poll."""

    name: ClassVar[str] = "bfl"
    resumable: ClassVar[bool] = True

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 600.0,
        request_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``timeout``: seconds to keep polling one task; ``request_timeout``: seconds per HTTP call.

        ``sleep`` and ``clock`` (seconds) drive the polling loop; tests inject fakes.
        """
        if not api_key:
            raise ConfigError("the bfl backend needs an API key: set BFL_API_KEY or pass --api-key")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.request_timeout = float(request_timeout)
        self._sleep = sleep
        self._clock = clock
        self._client: httpx2.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BFLBackend(base_url={self.base_url!r})"

    def max_concurrency(self, model: str) -> int:
        """BFL's cap on active tasks (the model table): 6 for flux-kontext-max, 24 otherwise."""
        return concurrency_cap(model)

    # ----------------------------------------------------------------- public steps

    def generate(self, request: GenerationRequest, **task: Unpack[TaskHooks]) -> GenerationResult:
        """Submit (unless ``resume_task_id`` is given), report the token, poll to the result URL.

        The request is checked first (``validate_request``): anything the API would
        refuse raises ConfigError and nothing is sent.
        """
        validate_request(request)
        token = task.get("resume_task_id")
        if not token:
            token = self.submit(request)
            if (on_submitted := task.get("on_submitted")) is not None:
                on_submitted(token)
        return self.wait(token)

    def submit(self, request: GenerationRequest) -> str:
        """Submit one task; returns its resume token (see :func:`encode_task`)."""
        validate_request(request)
        url = f"{self.base_url}{model_spec(request.model).bfl_endpoint}"
        reply = self._call("POST", url, submit_body(request), what="submission")
        if not isinstance(reply, Mapping) or not reply.get("id"):
            # Accepted or not, we cannot tell; do not retry and risk paying twice.
            raise TaskFailed(
                f"BFL accepted the submission but its reply has no task id: {reply!r:.200}"
            )
        task_id = str(reply["id"])
        polling_url = reply.get("polling_url")
        if not isinstance(polling_url, str) or not polling_url.lower().startswith(
            ("http://", "https://")
        ):
            polling_url = decode_task(task_id, self.base_url)[1]
        return encode_task(task_id, polling_url, billing_from_reply(reply))

    def wait(self, token: str) -> GenerationResult:
        """Poll the task ``token`` until it is terminal or ``timeout`` seconds pass.

        Transient failures while polling (5xx, dropped connections, 429) are
        waited out: the task is already paid for. Raises Moderated, TaskFailed,
        AuthError, or TransientError when the overall timeout passes (poll again
        later with the same token instead of submitting again).
        """
        task_id, polling_url = decode_task(token, self.base_url)
        start = self._clock()
        deadline = start + self.timeout
        last_status = "not polled yet"
        while True:
            now = self._clock()
            if now >= deadline:
                raise TransientError(
                    f"BFL task {task_id} still {last_status} after {self.timeout:g} s; "
                    "resume it by id instead of submitting again"
                )
            self._sleep(min(poll_interval(now - start), deadline - now))
            try:
                reply = self._call("GET", polling_url, None, what="poll")
            except RateLimited as exc:
                last_status = "rate limited"
                wait = exc.retry_after if exc.retry_after is not None else MAX_POLL_S
                self._sleep(max(0.0, min(wait, deadline - self._clock())))
                continue
            except TransientError as exc:
                last_status = f"unreachable ({exc.message})"
                continue
            result = self._interpret(task_id, token, reply)
            if result is not None:
                return result
            last_status = (
                str(reply.get("status", "pending")) if isinstance(reply, Mapping) else "pending"
            )

    # ----------------------------------------------------------------- helpers

    def _interpret(self, task_id: str, token: str, reply: object) -> GenerationResult | None:
        """The result for a terminal poll reply, an exception for a failed one, None to poll again."""
        if not isinstance(reply, Mapping):
            return None
        status = str(reply.get("status", ""))
        if status == READY:
            result = reply.get("result")
            sample = result.get("sample") if isinstance(result, Mapping) else None
            if not isinstance(sample, str) or not sample:
                raise TaskFailed(f"BFL task {task_id} is Ready but has no result.sample")
            extra: dict[str, Any] = {"id": task_id, "status": status}
            # What the task cost: the submit reply's figures (kept in the token) win
            # over any a poll reply repeats.
            extra.update(billing_from_reply(reply))
            extra.update(task_billing(token))
            return GenerationResult(url=sample, task_id=token, extra=extra)
        if status in MODERATED_STATUSES:
            raise Moderated(f"BFL refused task {task_id}: {status}{self._details(reply)}")
        if status in FAILED_STATUSES:
            raise TaskFailed(f"BFL task {task_id} failed: {status}{self._details(reply)}")
        return None  # Pending, Processing, Queued...

    def _details(self, reply: Mapping[str, Any]) -> str:
        details = reply.get("details") or reply.get("result") or reply.get("error")
        if not details:
            return ""
        text = json.dumps(details, default=str) if not isinstance(details, str) else details
        return f" ({self._redact(text)[:300]})"

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def close(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx2.Client:
        # One pooled client per backend, made on first use: polls reuse the
        # submission's connection instead of opening one each time.
        with self._client_lock:
            if self._client is None:
                self._client = make_client(timeout=self.request_timeout)
            return self._client

    def _call(self, method: str, url: str, body: Mapping[str, Any] | None, *, what: str) -> Any:
        """One HTTP call with the key; returns the parsed JSON reply or raises our errors.

        Redirects are refused: following one would send the x-key header wherever it points.
        """
        import httpx2

        host = urllib.parse.urlsplit(url).netloc or url
        headers = {"x-key": self._api_key, "Accept": "application/json"}
        content = None
        if body is not None:
            content = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            response = self._http().request(method, url, content=content, headers=headers)
        except httpx2.TransportError as exc:
            err = network_error(exc, where=f"BFL {what}", host=host, timeout=self.request_timeout)
            err.message = self._redact(err.message)
            raise err from None
        except httpx2.InvalidURL as exc:
            raise TaskFailed(f"BFL {what}: invalid URL for {host}") from exc
        if response.status_code >= 300:
            raise self._status_error(response, what)
        try:
            return json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if what == "poll":
                raise TransientError(f"BFL poll: {host} sent a reply that is not JSON") from exc
            raise TaskFailed(f"BFL {what}: {host} sent a reply that is not JSON") from exc

    def _status_error(self, response: httpx2.Response, what: str) -> GenerationError:
        text = response.content.decode("utf-8", "replace")
        try:
            body: object = json.loads(text) if text else ""
        except json.JSONDecodeError:
            body = text
        detail = self._redact(_detail(body))
        status = response.status_code
        if status == 404 and what == "poll":
            suffix = f": {detail}" if detail else ""
            return TaskFailed(f"BFL poll: Task not found (HTTP 404){suffix}")
        return status_error(
            status,
            where=f"BFL {what}",
            detail=detail,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            key_hint="BFL_API_KEY or --api-key",
        )
