"""A fake image API on 127.0.0.1 speaking both protocols, for tests and benchmarks.

OpenAI-compatible (base ``api.openai_base`` = ``<url>/v1``):

- ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (multipart);
  ``Authorization: Bearer <key>``; reply ``{"created", "data": [{"url"} | {"b64_json"}]}``,
  errors ``{"error": {"message", "type", "code"}}``.

BFL (base ``api.bfl_base`` = ``<url>``):

- ``POST /v1/flux-kontext-pro|max`` -> ``{"id", "polling_url"}``; ``x-key`` header;
- ``POST /v1/flux-2-pro|max|flex`` -> ``{"id", "polling_url", "cost", "input_mp",
  "output_mp"}``, the cost (credits) from the official formula (:func:`flux2_cost`)
  unless ``bfl_cost`` scripts it; the result has the requested ``width`` x ``height``;
- ``GET /v1/get_result?id=`` -> ``{"id", "status", "result": {"sample"}}``;
  errors ``{"detail": ...}``.

Result files are served at ``/results/<name>``. The result image is the
received canvas (the first input image) resized to the Kontext bucket of the
request's aspect ratio (see :func:`render_result`), or to the ``width`` x ``height``
asked for when the request has them (:func:`render_sized`), or a solid colour for text-to-image, so a test can
check that the pipeline wrote what the server produced.

Every request is recorded (:class:`RecordedRequest`). Behaviour is set through
attributes (thread-safe to change between requests) and :meth:`FakeAPI.script`.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import functools
import hashlib
import io
import itertools
import json
import math
import random
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from fluxcompose.geometry import bucket_for

__all__ = [
    "FakeAPI",
    "RecordedRequest",
    "Scripted",
    "flux2_cost",
    "render_result",
    "render_sized",
]

SUBMIT_KINDS = frozenset({"generations", "edits", "bfl-submit"})


@dataclass
class RecordedRequest:
    """One request as the fake server saw it.

    ``kind`` is ``generations``, ``edits``, ``bfl-submit``, ``bfl-poll``,
    ``result`` or ``unknown``. ``headers`` has lower-case names. ``json`` is the
    parsed JSON body; ``form`` the multipart text fields; ``files`` maps a
    multipart field to (filename, content type, bytes). ``image`` is the input
    image as decoded bytes (from a data URL, plain base64 or the file field).
    ``status`` is the HTTP status replied (0 for a dropped connection).
    ``client_port`` is the client's TCP port: requests on one kept-alive
    connection share it. ``images`` are all the input images in order
    (``input_image``, ``input_image_2`` ..., or the multipart image files);
    ``file_parts`` every multipart file part in order as (field, filename,
    content type, bytes), repeated fields (``image[]``) included.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    kind: str
    body: bytes = b""
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    image: bytes | None = None
    status: int = 0
    client_port: int = 0
    images: list[bytes] = field(default_factory=list)
    file_parts: list[tuple[str, str, str, bytes]] = field(default_factory=list)


@dataclass
class Scripted:
    """A scripted reply for the next submission: an HTTP ``status`` (with an optional
    ``retry_after`` header value, error ``code`` and ``message``) or a dropped connection."""

    status: int = 500
    retry_after: str | None = None
    code: str | None = None
    message: str | None = None
    drop: bool = False


@dataclass
class _Task:
    id: str
    result: bytes
    content_type: str
    final_status: str
    polls_left: int
    sample: str | None = None


@dataclass
class _Stored:
    data: bytes
    content_type: str
    created: float
    expired: bool = False


@functools.lru_cache(maxsize=32)
def render_result(
    image: bytes | None, aspect_ratio: str, output_format: str, prompt: str = ""
) -> bytes:
    """The image the fake server returns: ``image`` resized to the bucket of ``aspect_ratio``
    (a solid colour from the prompt's hash when ``image`` is None), encoded as
    ``output_format`` (``png`` or ``jpeg``). Cached: benchmarks resend the same canvas."""
    size = bucket_for(aspect_ratio)
    if image is None:
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        pic = Image.new("RGB", size, (digest[0], digest[1], digest[2]))
    else:
        with Image.open(io.BytesIO(image)) as src:
            pic = src.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if output_format == "jpeg":
        pic.save(buf, format="JPEG", quality=90)
    else:
        pic.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


FLUX2_CREDITS: dict[str, tuple[float, float]] = {
    "flux-2-pro": (3.0, 1.5),
    "flux-2-max": (7.0, 3.0),
    "flux-2-flex": (5.0, 5.0),
}
"""Official FLUX.2 prices in credits (1 credit = $0.01): (first MP, each further MP)."""


def flux2_cost(model: str, output_px: int, input_px: Iterable[int]) -> tuple[float, float, float]:
    """(cost in credits, input_mp, output_mp) as BFL reports them for a FLUX.2 task.

    A megapixel is 1024 x 1024 pixels; ``input_mp`` (all inputs) and ``output_mp`` are
    taken to 2 decimals; the output counts at least 1 MP and the total is billed in
    whole megapixels, rounded up: ``first + (billed - 1) * extra``.
    """
    first, extra = FLUX2_CREDITS[model]
    output_mp = round(output_px / 1024**2, 2)
    input_mp = round(sum(input_px) / 1024**2, 2)
    billed = max(1, math.ceil(round(max(output_mp, 1.0) + input_mp, 2) - 1e-9))
    return round(first + (billed - 1) * extra, 4), input_mp, output_mp


@functools.lru_cache(maxsize=32)
def render_sized(
    image: bytes | None, width: int, height: int, output_format: str, prompt: str = ""
) -> bytes:
    """Like :func:`render_result` but at ``width`` x ``height`` (FLUX.2), in ``png``,
    ``jpeg`` or ``webp``."""
    if image is None:
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        pic = Image.new("RGB", (width, height), (digest[0], digest[1], digest[2]))
    else:
        with Image.open(io.BytesIO(image)) as src:
            pic = src.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if output_format == "jpeg":
        pic.save(buf, format="JPEG", quality=90)
    elif output_format == "webp":
        pic.save(buf, format="WEBP", quality=90)
    else:
        pic.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _render(fields: dict[str, Any], image: bytes | None, prompt: str) -> tuple[bytes, str]:
    """(result bytes, content type) for a request's fields: sized when ``width`` and
    ``height`` are given, else the Kontext bucket of ``aspect_ratio``."""
    fmt = str(fields.get("output_format", "png"))
    ctype = {"jpeg": "image/jpeg", "webp": "image/webp"}.get(fmt, "image/png")
    width, height = fields.get("width"), fields.get("height")
    if width is not None or height is not None:
        w, h = int(str(width)), int(str(height))
        if w < 64 or h < 64 or w % 16 or h % 16 or w * h > 4 * 1024**2:
            raise ValueError(f"invalid size {w}x{h}")
        return render_sized(image, w, h, fmt, prompt), ctype
    return render_result(image, str(fields.get("aspect_ratio", "1:1")), fmt, prompt), ctype


def _pixels(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as img:
        return int(img.size[0]) * int(img.size[1])


def _input_images(fields: dict[str, Any], *, data_urls: bool) -> list[bytes]:
    """The decodable ``input_image``, ``input_image_2`` ... values, in order."""
    out: list[bytes] = []
    for i in range(1, 10):
        value = fields.get("input_image" if i == 1 else f"input_image_{i}")
        if not isinstance(value, str):
            continue
        if not data_urls and value.startswith("data:"):
            continue
        decoded = _b64_image(value)
        if decoded is not None:
            out.append(decoded)
    return out


def _b64_image(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class _Server(ThreadingHTTPServer):
    # The stdlib backlog of 5 drops connections when 24 clients connect at once.
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (timed out, killed) before its reply is no server fault.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeAPI:
    """The fake server. Use ``with FakeAPI() as api:`` or ``start()``/``stop()``.

    Behaviour attributes (change them between requests):

    - ``api_key``: when set, any other key gets 401 (the error text echoes the
      key it got, as real servers partly do, to prove the client hides it);
    - ``force_status``: every submission answers with this status
      (401, 402, 403, 429, 500...); ``retry_after`` is its Retry-After value;
      ``error_code`` / ``error_message`` go in the error body;
    - ``moderate_substring``: a prompt containing it is moderated: openai 400
      with code ``openai_moderation_code`` (None: message-only style), BFL a
      final status ``bfl_moderation_status``;
    - ``bfl_final_status``: force the BFL final status (``Error``, ``Task not
      found``, ``Content Moderated``...); ``pending_polls``: Pending replies
      before that; ``pending_status`` the non-terminal status shown;
    - ``reply_as``: ``url`` or ``b64_json`` for the openai protocol;
    - ``link_ttl``: seconds (by ``clock``) before result links expire with
      ``expired_status`` (410; 403 is also realistic); :meth:`expire_results`
      expires them now;
    - ``latency`` (submissions) and ``poll_latency`` (polls): seconds slept per request;
      to keep work in flight for a test, prefer :meth:`hold`, which waits for the test
      rather than for the clock;
    - ``fault_429``, ``fault_500``, ``fault_drop``: probabilities (seeded RNG)
      of a 429, a 500 or a dropped connection on submissions (and on polls
      when ``faults_on_polls``);
    - ``result_content`` / ``result_content_type``: serve these bytes as every
      result instead of the image (e.g. an HTML page); ``result_status``: answer
      every result download with this status instead;
    - ``clock``: the time source for link expiry;
    - ``bfl_cost``: for FLUX.2 submissions, reply these ``cost``/``input_mp``/
      ``output_mp`` fields instead of the official formula's (``{}``: none at all).

    :meth:`script` queues replies for the next submissions, :meth:`script_polls`
    for the next BFL polls. :meth:`hold` makes submissions wait, recorded but neither
    answered nor billed, until :meth:`let_go`; :meth:`wait_arrived` waits for them.

    Counters: ``requests`` (all RecordedRequest), ``billable`` (accepted
    submissions), :attr:`submissions`.
    """

    def __init__(self, *, seed: int = 0, api_key: str | None = None) -> None:
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.api_key = api_key
        self.force_status: int | None = None
        self.retry_after: str | None = "1"
        self.error_code: str | None = None
        self.error_message: str | None = None
        self.moderate_substring: str | None = None
        self.openai_moderation_code: str | None = "content_policy_violation"
        self.bfl_moderation_status = "Request Moderated"
        self.bfl_final_status: str | None = None
        self.pending_polls = 0
        self.pending_status = "Pending"
        self.reply_as = "url"
        self.link_ttl: float | None = None
        self.expired_status = 410
        self.latency = 0.0
        self.poll_latency = 0.0
        self.fault_429 = 0.0
        self.fault_500 = 0.0
        self.fault_drop = 0.0
        self.faults_on_polls = False
        self.result_status: int | None = None
        self.result_content: bytes | None = None
        self.result_content_type = "text/html"
        self.clock: Callable[[], float] = time.monotonic
        self.bfl_cost: dict[str, Any] | None = None
        self.requests: list[RecordedRequest] = []
        self.billable = 0
        # Held submissions (hold / let_go): no test guesses how long a reply takes.
        self._gate = threading.Condition()
        self._holding = False
        self._passes = 0  # held (or future) submissions allowed to answer
        self.arrived = 0  # submissions that reached the gate, held or not
        self._script: deque[Scripted] = deque()
        self._poll_script: deque[Scripted] = deque()
        self._tasks: dict[str, _Task] = {}
        self._results: dict[str, _Stored] = {}
        # --- issue 11 (candidates and A/B): a scriptable result ----------------------
        # ``result_hook(model, fields, image, output_format) -> image`` rewrites every
        # rendered result, so a test can make outputs depend on the seed and the model.
        self.result_hook: Callable[[str, dict[str, Any], bytes, str], bytes] | None = None
        # --- end issue 11 ------------------------------------------------------------

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeAPI:
        """Listen on 127.0.0.1 on a free port, serving from a daemon thread."""
        api = self

        class Handler(_Handler):
            fake = api

        server = _Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False  # idle keep-alive connections must not block stop()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def hold(self) -> None:
        """From now on a submission waits, after it is recorded and before it is answered
        or billed, until :meth:`let_go` lets it go."""
        with self._gate:
            self._holding = True

    def let_go(self, n: int | None = None) -> None:
        """Let ``n`` held (or future) submissions answer; None: stop holding, all go."""
        with self._gate:
            if n is None:
                self._holding = False
            else:
                self._passes += n
            self._gate.notify_all()

    def wait_arrived(self, n: int, timeout: float = 60.0) -> None:
        """Wait until ``n`` submissions in all have reached the gate (a failsafe timeout:
        the test fails rather than hangs)."""
        with self._gate:
            if not self._gate.wait_for(lambda: self.arrived >= n, timeout):
                raise AssertionError(f"{self.arrived} submissions arrived, waited for {n}")

    def _pass_gate(self) -> None:
        with self._gate:
            self.arrived += 1
            self._gate.notify_all()
            if not self._holding:
                return
            self._gate.wait_for(lambda: not self._holding or self._passes > 0)
            if self._holding:
                self._passes -= 1

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.let_go()  # no handler stays parked
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None, "FakeAPI is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def bfl_base(self) -> str:
        return self.url

    # ----------------------------------------------------------------- scripting

    def script(self, *replies: int | Scripted) -> None:
        """Queue replies for the next submissions, in order (an int is a status)."""
        with self._lock:
            for r in replies:
                self._script.append(r if isinstance(r, Scripted) else Scripted(status=r))

    def script_polls(self, *replies: int | Scripted) -> None:
        """Queue replies for the next BFL polls, in order (an int is a status)."""
        with self._lock:
            for r in replies:
                self._poll_script.append(r if isinstance(r, Scripted) else Scripted(status=r))

    def expire_results(self) -> None:
        """Make every result link made so far answer ``expired_status``."""
        with self._lock:
            for stored in self._results.values():
                stored.expired = True

    @property
    def submissions(self) -> list[RecordedRequest]:
        """Recorded requests that were submissions (accepted or not)."""
        with self._lock:
            return [r for r in self.requests if r.kind in SUBMIT_KINDS]

    def of_kind(self, kind: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    # ----------------------------------------------------------------- internals used by the handler

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def _next_fault(self, polls: bool) -> Scripted | None:
        """A scripted reply, a forced status or a random fault for this request, if any."""
        with self._lock:
            if not polls and self._script:
                return self._script.popleft()
            if not polls and self.force_status is not None:
                return Scripted(
                    self.force_status, self.retry_after, self.error_code, self.error_message
                )
            if polls and self._poll_script:
                return self._poll_script.popleft()
            if polls and not self.faults_on_polls:
                return None
            x = self._rng.random()
            if x < self.fault_429:
                return Scripted(429, self.retry_after)
            if x < self.fault_429 + self.fault_500:
                return Scripted(500)
            if x < self.fault_429 + self.fault_500 + self.fault_drop:
                return Scripted(drop=True)
        return None

    def _store_result(self, data: bytes, content_type: str) -> str:
        with self._lock:
            name = f"r{next(self._ids):06d}"
            self._results[name] = _Stored(data, content_type, self.clock())
        return f"{self.url}/results/{name}"

    def _new_task(self, task: _Task) -> None:
        with self._lock:
            self._tasks[task.id] = task

    def _new_id(self) -> str:
        with self._lock:
            return f"task-{next(self._ids):06d}"

    # --- issue 11 (candidates and A/B) ------------------------------------------------
    def _issue11_result(self, model: str, fields: dict[str, Any], data: bytes, fmt: str) -> bytes:
        """The rendered result after ``result_hook`` (unchanged without one)."""
        hook = self.result_hook
        return data if hook is None else hook(model, fields, data, fmt)

    # --- end issue 11 --------------------------------------------------------------------

    def _bill(self) -> None:
        with self._lock:
            self.billable += 1


_OPENAI_PATHS = {"/v1/images/generations": "generations", "/v1/images/edits": "edits"}
_BFL_MODELS = ("flux-kontext-pro", "flux-kontext-max", *FLUX2_CREDITS)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAPI
    protocol_version = "HTTP/1.1"
    # Headers and body in one segment, and no Nagle delay: otherwise every reply
    # waits ~40 ms for a delayed ACK, which would swamp the batch benchmark.
    wbufsize = -1
    disable_nagle_algorithm = True
    timeout = 10  # seconds an idle keep-alive connection is kept

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    # ----------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        rec: RecordedRequest,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(
        self, rec: RecordedRequest, status: int, data: object, headers: dict[str, str] | None = None
    ) -> None:
        self._send(rec, status, json.dumps(data).encode("utf-8"), "application/json", headers)

    def _drop(self, rec: RecordedRequest) -> None:
        rec.status = 0
        self.close_connection = True

    def _error(self, rec: RecordedRequest, protocol: str, fault: Scripted) -> None:
        """An error reply in the protocol's shape (``openai`` or ``bfl``)."""
        if fault.drop:
            self._drop(rec)
            return
        status = fault.status
        headers: dict[str, str] = {}
        if status == 429:
            headers["Retry-After"] = fault.retry_after or self.fake.retry_after or "1"
        message = fault.message or {
            401: "Incorrect API key provided",
            402: "Insufficient credits",
            403: "Forbidden",
            429: "Rate limit exceeded",
        }.get(status, "Internal server error" if status >= 500 else "Bad request")
        if protocol == "openai":
            body: dict[str, Any] = {
                "error": {"message": message, "type": "api_error", "code": fault.code}
            }
        else:
            body = {"detail": message}
        self._json(rec, status, body, headers)

    def _authorised(self, protocol: str) -> str | None:
        """None when the key is right (or none is required), else the key that was sent."""
        want = self.fake.api_key
        if protocol == "openai":
            got = self.headers.get("Authorization", "")
            got = got[7:] if got.startswith("Bearer ") else got
        else:
            got = self.headers.get("x-key", "")
        if want is None or got == want:
            return None
        return got

    def _new_record(self, kind: str, body: bytes) -> RecordedRequest:
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = RecordedRequest(self.command, parts.path, query, headers, kind, body)
        rec.client_port = int(self.client_address[1])
        return rec

    # ----------------------------------------------------------------- routes

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/v1/get_result":
            self._bfl_poll()
        elif path.startswith("/results/"):
            self._result(path.removeprefix("/results/"))
        else:
            rec = self._new_record("unknown", b"")
            self.fake._record(rec)
            self._json(rec, 404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path in _OPENAI_PATHS:
            self._openai(_OPENAI_PATHS[path], body)
        elif path.startswith("/v1/") and path.removeprefix("/v1/") in _BFL_MODELS:
            self._bfl_submit(path.removeprefix("/v1/"), body)
        else:
            rec = self._new_record("unknown", body)
            self.fake._record(rec)
            self._json(rec, 404, {"detail": "Not Found"})

    def _openai(self, kind: str, body: bytes) -> None:
        fake = self.fake
        rec = self._new_record(kind, body)
        fields: dict[str, Any]
        if kind == "generations":
            try:
                rec.json = json.loads(body or b"null")
            except json.JSONDecodeError:
                rec.json = None
            fields = rec.json if isinstance(rec.json, dict) else {}
            rec.image = _b64_image(fields.get("input_image"))
            rec.images = _input_images(fields, data_urls=True)
        else:
            rec.form, rec.files, rec.file_parts = _parse_multipart_parts(
                self.headers.get("Content-Type", ""), body
            )
            fields = dict(rec.form)
            rec.images = [part[3] for part in rec.file_parts if part[0] in ("image", "image[]")]
            if rec.images:
                rec.image = rec.images[0]
        fake._record(rec)
        fake._pass_gate()
        if fake.latency:
            time.sleep(fake.latency)
        bad_key = self._authorised("openai")
        if bad_key is not None:
            self._error(
                rec,
                "openai",
                Scripted(
                    401, message=f"Incorrect API key provided: {bad_key}", code="invalid_api_key"
                ),
            )
            return
        fault = fake._next_fault(polls=False)
        if fault is not None:
            self._error(rec, "openai", fault)
            return
        prompt = str(fields.get("prompt", ""))
        if fake.moderate_substring and fake.moderate_substring in prompt:
            code = fake.openai_moderation_code
            message = (
                "Your request was rejected as a result of our safety system (content policy)."
                if code
                else "Request blocked by moderation: the prompt was flagged"
            )
            self._error(rec, "openai", Scripted(400, code=code, message=message))
            return
        try:
            data, ctype = _render(fields, rec.image, prompt)
            data = fake._issue11_result(
                str(fields.get("model", "")), fields, data, str(fields.get("output_format", "png"))
            )
        except Exception as exc:  # a bad ratio, size or image is the client's fault
            self._error(
                rec, "openai", Scripted(400, code="invalid_request", message=f"bad request: {exc}")
            )
            return
        fake._bill()
        if fake.reply_as == "b64_json":
            item = {"b64_json": base64.b64encode(data).decode("ascii")}
        else:
            item = {"url": fake._store_result(data, ctype)}
        self._json(rec, 200, {"created": int(time.time()), "data": [item]})

    def _bfl_submit(self, model: str, body: bytes) -> None:
        fake = self.fake
        rec = self._new_record("bfl-submit", body)
        try:
            rec.json = json.loads(body or b"null")
        except json.JSONDecodeError:
            rec.json = None
        fields = rec.json if isinstance(rec.json, dict) else {}
        raw_image = fields.get("input_image")
        rec.image = (
            _b64_image(raw_image)
            if isinstance(raw_image, str) and not raw_image.startswith("data:")
            else None
        )
        rec.images = _input_images(fields, data_urls=False)
        fake._record(rec)
        fake._pass_gate()
        if fake.latency:
            time.sleep(fake.latency)
        if self._authorised("bfl") is not None:
            self._error(rec, "bfl", Scripted(401, message="Invalid API key"))
            return
        fault = fake._next_fault(polls=False)
        if fault is not None:
            self._error(rec, "bfl", fault)
            return
        if isinstance(raw_image, str) and rec.image is None:
            self._json(
                rec,
                422,
                {
                    "detail": [
                        {
                            "loc": ["body", "input_image"],
                            "msg": "must be plain base64 (no data: prefix)",
                        }
                    ]
                },
            )
            return
        prompt = str(fields.get("prompt", ""))
        flux2 = model in FLUX2_CREDITS
        if flux2:
            fields = {"width": 1024, "height": 1024, "output_format": "jpeg", **fields}
        try:
            data, ctype = _render(fields, rec.image, prompt)
            data = fake._issue11_result(
                model, fields, data, str(fields.get("output_format", "png"))
            )
        except Exception as exc:
            self._json(rec, 422, {"detail": f"bad request: {exc}"})
            return
        final = fake.bfl_final_status or "Ready"
        if fake.moderate_substring and fake.moderate_substring in prompt:
            final = fake.bfl_moderation_status
        task = _Task(
            id=fake._new_id(),
            result=data,
            content_type=ctype,
            final_status=final,
            polls_left=fake.pending_polls,
        )
        fake._new_task(task)
        fake._bill()
        polling_url = f"{fake.url}/v1/get_result?id={task.id}"
        reply: dict[str, Any] = {"id": task.id, "polling_url": polling_url}
        if flux2:
            if fake.bfl_cost is not None:
                reply.update(fake.bfl_cost)
            else:
                cost, input_mp, output_mp = flux2_cost(
                    model,
                    int(fields["width"]) * int(fields["height"]),
                    [_pixels(img) for img in rec.images],
                )
                reply.update({"cost": cost, "input_mp": input_mp, "output_mp": output_mp})
        self._json(rec, 200, reply)

    def _bfl_poll(self) -> None:
        fake = self.fake
        rec = self._new_record("bfl-poll", b"")
        fake._record(rec)
        if fake.poll_latency:
            time.sleep(fake.poll_latency)
        if self._authorised("bfl") is not None:
            self._error(rec, "bfl", Scripted(401, message="Invalid API key"))
            return
        fault = fake._next_fault(polls=True)
        if fault is not None:
            self._error(rec, "bfl", fault)
            return
        task_id = rec.query.get("id", "")
        with fake._lock:
            task = fake._tasks.get(task_id)
            if task is None:
                reply: dict[str, Any] = {"id": task_id, "status": "Task not found"}
            elif task.polls_left > 0:
                task.polls_left -= 1
                reply = {
                    "id": task_id,
                    "status": fake.pending_status,
                    "result": None,
                    "progress": 0.5,
                }
            elif task.final_status == "Ready":
                if task.sample is None:
                    task.sample = fake._store_result(task.result, task.content_type)
                reply = {"id": task_id, "status": "Ready", "result": {"sample": task.sample}}
            elif task.final_status == "Error":
                reply = {
                    "id": task_id,
                    "status": "Error",
                    "details": {"message": "the generation failed"},
                }
            else:
                reply = {
                    "id": task_id,
                    "status": task.final_status,
                    "details": {"reason": "flagged"},
                }
        self._json(rec, 200, reply)

    def _result(self, name: str) -> None:
        fake = self.fake
        rec = self._new_record("result", b"")
        fake._record(rec)
        with fake._lock:
            stored = fake._results.get(name)
            expired = stored is not None and (
                stored.expired
                or (fake.link_ttl is not None and fake.clock() - stored.created > fake.link_ttl)
            )
        if stored is None:
            self._send(rec, 404, b"not found", "text/plain")
        elif fake.result_status is not None:
            self._send(rec, fake.result_status, b"error", "text/plain")
        elif expired:
            self._send(
                rec, fake.expired_status, b"<Error>Request has expired</Error>", "application/xml"
            )
        elif fake.result_content is not None:
            self._send(rec, 200, fake.result_content, fake.result_content_type)
        else:
            self._send(rec, 200, stored.data, stored.content_type)


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Text fields and file fields of a multipart/form-data body."""
    form, files, _parts = _parse_multipart_parts(content_type, body)
    return form, files


def _parse_multipart_parts(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]], list[tuple[str, str, str, bytes]]]:
    """Text fields, file fields (the last of each name) and every file part in order."""
    form: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    parts_in_order: list[tuple[str, str, str, bytes]] = []
    if not content_type.lower().startswith("multipart/form-data"):
        return form, files, parts_in_order
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts: Iterable[Any] = msg.iter_parts() if msg.is_multipart() else []
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (filename, part.get_content_type(), payload)
            parts_in_order.append((str(name), filename, part.get_content_type(), payload))
        else:
            charset = part.get_content_charset() or "utf-8"
            form[str(name)] = payload.decode(charset, "replace")
    return form, files, parts_in_order
