"""The bfl backend against the fake server: submission body, polling, resume, errors, timeout."""

from __future__ import annotations

import base64
import http.server
import io
import socket
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.backends.base import GenerationRequest
from fluxcompose.backends.bfl import BFLBackend, decode_task, encode_task, poll_interval
from fluxcompose.download import download_result
from fluxcompose.errors import (
    AuthError,
    ConfigError,
    InsufficientCredits,
    Moderated,
    RateLimited,
    RequestError,
    TaskFailed,
    TransientError,
)
from tests.fakeapi import FakeAPI, Scripted, render_result

KEY = "bfl-key-5f5f5f5f5f5f"


def _png() -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (80, 60), (20, 120, 220))
    img.putpixel((5, 5), (255, 255, 0))
    img.save(buf, format="PNG")
    return buf.getvalue()


CANVAS = _png()


class FakeClock:
    """Time that moves only when the backend sleeps: tests run fast and deterministically."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _req(**kw: object) -> GenerationRequest:
    base: dict[str, object] = {
        "prompt": "transfer the pattern",
        "input_image": CANVAS,
        "aspect_ratio": "4:3",
        "seed": 99,
        "safety_tolerance": 2,
        "output_format": "jpeg",
        "prompt_upsampling": False,
    }
    base.update(kw)
    return GenerationRequest(**base)  # type: ignore[arg-type]


def _backend(
    api: FakeAPI, clock: FakeClock | None = None, timeout: float = 600.0, key: str = KEY
) -> BFLBackend:
    clock = clock or FakeClock()
    return BFLBackend(
        key,
        base_url=api.bfl_base,
        timeout=timeout,
        request_timeout=5,
        sleep=clock.sleep,
        clock=clock,
    )


@pytest.fixture
def api(fake_api: FakeAPI) -> FakeAPI:
    fake_api.api_key = KEY
    return fake_api


# --------------------------------------------------------------------------- happy path


def test_submission_body_headers_and_result(api: FakeAPI, tmp_path: Path) -> None:
    api.pending_polls = 3
    clock = FakeClock()
    tokens: list[str] = []
    polls_at_submit: list[int] = []

    def on_submitted(token: str) -> None:
        tokens.append(token)
        polls_at_submit.append(len(api.of_kind("bfl-poll")))

    result = _backend(api, clock).generate(_req(), on_submitted=on_submitted)

    [submit] = api.submissions
    assert submit.method == "POST" and submit.path == "/v1/flux-kontext-pro"
    assert submit.headers["x-key"] == KEY
    assert "authorization" not in submit.headers
    assert submit.headers["content-type"] == "application/json"
    body = dict(submit.json)
    image = body.pop("input_image")
    assert body == {
        "prompt": "transfer the pattern",
        "seed": 99,
        "aspect_ratio": "4:3",
        "output_format": "jpeg",
        "prompt_upsampling": False,
        "safety_tolerance": 2,
    }
    assert not image.startswith("data:")
    assert base64.b64decode(image, validate=True) == CANVAS

    # The token came before any poll, and encodes the id and the polling URL.
    assert polls_at_submit == [0]
    task_id, polling_url = decode_task(tokens[0], api.bfl_base)
    assert polling_url == f"{api.url}/v1/get_result?id={task_id}"
    assert result.task_id == tokens[0] and result.extra["id"] == task_id

    polls = api.of_kind("bfl-poll")
    assert len(polls) == 4  # three Pending, then Ready
    assert all(p.headers["x-key"] == KEY and p.query == {"id": task_id} for p in polls)
    assert clock.sleeps == [0.5] * 4

    assert result.url is not None and result.data is None
    path = download_result(result.url, tmp_path, "out")
    assert path.name == "out.jpg"
    assert path.read_bytes() == render_result(CANVAS, "4:3", "jpeg", "transfer the pattern")
    assert api.billable == 1


def test_max_model_path_and_optional_fields(api: FakeAPI) -> None:
    _backend(api).generate(_req(model="flux-kontext-max", seed=None, input_image=None))
    [submit] = api.submissions
    assert submit.path == "/v1/flux-kontext-max"
    assert "seed" not in submit.json and "input_image" not in submit.json


def test_other_non_terminal_statuses_poll_again(api: FakeAPI) -> None:
    api.pending_polls = 2
    api.pending_status = "Processing"
    result = _backend(api).generate(_req())
    assert result.url and len(api.of_kind("bfl-poll")) == 3


def test_resume_polls_without_submitting_again(api: FakeAPI) -> None:
    tokens: list[str] = []
    first = _backend(api).generate(_req(), on_submitted=tokens.append)
    again = _backend(api).generate(_req(), resume_task_id=tokens[0])
    assert again.url == first.url
    assert api.billable == 1 and len(api.submissions) == 1


def test_resume_with_a_bare_id(api: FakeAPI) -> None:
    tokens: list[str] = []
    _backend(api).generate(_req(), on_submitted=tokens.append)
    bare = tokens[0].split("|")[0]
    result = _backend(api).generate(_req(), resume_task_id=bare)
    assert result.url
    assert api.of_kind("bfl-poll")[-1].path == "/v1/get_result"
    assert len(api.submissions) == 1


def test_transient_poll_failures_are_waited_out(api: FakeAPI) -> None:
    api.script_polls(500, Scripted(drop=True), Scripted(429, retry_after="3"))
    clock = FakeClock()
    result = _backend(api, clock).generate(_req())
    assert result.url
    assert len(api.of_kind("bfl-poll")) == 4
    assert 3.0 in clock.sleeps
    assert api.billable == 1


# --------------------------------------------------------------------------- terminal failures


@pytest.mark.parametrize("status", ["Request Moderated", "Content Moderated"])
def test_moderation_statuses(api: FakeAPI, status: str) -> None:
    api.moderate_substring = "nope"
    api.bfl_moderation_status = status
    with pytest.raises(Moderated, match=status):
        _backend(api).generate(_req(prompt="nope nope"))


@pytest.mark.parametrize("status", ["Error", "Task not found"])
def test_failed_statuses(api: FakeAPI, status: str) -> None:
    api.bfl_final_status = status
    with pytest.raises(TaskFailed, match=status):
        _backend(api).generate(_req())


def test_unknown_task_id_is_task_not_found(api: FakeAPI) -> None:
    with pytest.raises(TaskFailed, match="Task not found"):
        _backend(api).generate(_req(), resume_task_id="no-such-task")
    assert api.submissions == []


def test_error_details_are_reported(api: FakeAPI) -> None:
    api.bfl_final_status = "Error"
    with pytest.raises(TaskFailed, match="the generation failed"):
        _backend(api).generate(_req())


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize(
    "status,exc_type",
    [
        (401, AuthError),
        (403, AuthError),
        (402, InsufficientCredits),
        (400, RequestError),
        (422, RequestError),
        (500, TransientError),
        (503, TransientError),
    ],
)
def test_submission_status_mapping(
    api: FakeAPI, status: int, exc_type: type[BaseException]
) -> None:
    api.script(Scripted(status, message=f"echo {KEY}"))
    tokens: list[str] = []
    with pytest.raises(exc_type) as info:
        _backend(api).generate(_req(), on_submitted=tokens.append)
    assert KEY not in f"{info.value} {info.value!r} {info.value.__cause__}"
    assert tokens == [] and api.billable == 0
    assert len(api.requests) == 1


def test_wrong_key_is_auth_error(api: FakeAPI) -> None:
    with pytest.raises(AuthError, match="BFL_API_KEY") as info:
        _backend(api, key="wrong-key-123").generate(_req())
    assert "wrong-key-123" not in str(info.value)


def test_402_message_is_clear(api: FakeAPI) -> None:
    api.force_status = 402
    with pytest.raises(InsufficientCredits, match="insufficient credits"):
        _backend(api).generate(_req())


def test_429_retry_after(api: FakeAPI) -> None:
    api.script(Scripted(429, retry_after="12"))
    with pytest.raises(RateLimited) as info:
        _backend(api).generate(_req())
    assert info.value.retry_after == 12.0


def test_dropped_and_refused_connections_are_transient(api: FakeAPI) -> None:
    api.script(Scripted(drop=True))
    with pytest.raises(TransientError):
        _backend(api).generate(_req())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = BFLBackend(KEY, base_url=f"http://127.0.0.1:{port}", request_timeout=5)
    with pytest.raises(TransientError, match="could not reach"):
        backend.generate(_req())


def test_auth_failure_while_polling(api: FakeAPI) -> None:
    api.script_polls(401)
    with pytest.raises(AuthError):
        _backend(api).generate(_req())


def test_unknown_model_fails_before_sending(api: FakeAPI) -> None:
    with pytest.raises(ConfigError):
        _backend(api).generate(_req(model="flux-pro-1.1"))
    assert api.requests == []


# --------------------------------------------------------------------------- timeout and schedule


def test_overall_poll_timeout_with_an_injected_clock(api: FakeAPI) -> None:
    api.pending_polls = 10**6
    clock = FakeClock()
    tokens: list[str] = []
    with pytest.raises(TransientError, match="still Pending after 200 s") as info:
        _backend(api, clock, timeout=200).generate(_req(), on_submitted=tokens.append)
    assert tokens and tokens[0].split("|")[0] in str(info.value)
    assert clock.now == pytest.approx(200.0)
    assert clock.sleeps[:60] == [0.5] * 60  # every 0.5 s for the first 30 s
    assert max(clock.sleeps) == 5.0
    assert all(b >= a for a, b in zip(clock.sleeps[:-2], clock.sleeps[1:-1], strict=True))
    assert len(api.of_kind("bfl-poll")) == len(clock.sleeps)
    assert api.billable == 1


def test_poll_interval_schedule() -> None:
    assert poll_interval(0) == 0.5
    assert poll_interval(29.99) == 0.5
    assert poll_interval(30) == 0.5
    assert poll_interval(45) == pytest.approx(1.0)
    assert poll_interval(60) == pytest.approx(2.0)
    assert poll_interval(80) == 5.0
    assert poll_interval(10_000) == 5.0


@settings(max_examples=100, deadline=None)
@given(a=st.floats(0, 1e5), b=st.floats(0, 1e5))
def test_poll_interval_is_monotonic_and_bounded(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert 0.5 <= poll_interval(lo) <= poll_interval(hi) <= 5.0


@settings(max_examples=60, deadline=None)
@given(
    task_id=st.text(
        st.characters(blacklist_characters="|", blacklist_categories=("Cs",)), min_size=1
    ).filter(lambda s: s.strip() == s and s),
    query=st.text(alphabet="abcdef0123456789-=&", max_size=30),
)
def test_task_token_round_trip(task_id: str, query: str) -> None:
    url = f"https://api.us1.bfl.ai/v1/get_result?id={query}"
    assert decode_task(encode_task(task_id, url), "https://api.bfl.ai") == (task_id, url)


def test_bad_token_is_config_error() -> None:
    with pytest.raises(ConfigError):
        decode_task("|http://x", "https://api.bfl.ai")


def test_repr_and_caps() -> None:
    backend = BFLBackend(KEY)
    assert KEY not in repr(backend)
    assert backend.max_concurrency("flux-kontext-pro") == 24
    assert backend.max_concurrency("flux-kontext-max") == 6
    for model in ("flux-2-pro", "flux-2-max", "flux-2-flex"):
        assert backend.max_concurrency(model) == 24
    assert backend.resumable is True and backend.name == "bfl"


# --------------------------------------------------------------------------- one HTTP client


def test_polls_reuse_the_submission_connection(api: FakeAPI) -> None:
    api.pending_polls = 5
    backend = _backend(api)
    backend.generate(_req())
    ports = {r.client_port for r in api.requests}
    assert len(api.requests) == 7  # one submission, six polls
    assert len(ports) == 1, f"expected one kept-alive connection, saw {len(ports)}"
    backend.close()


def test_redirects_are_refused_and_never_carry_the_key() -> None:
    seen: list[tuple[str, str | None]] = []

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("x-key")))
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        backend = BFLBackend(KEY, base_url=base, request_timeout=5, sleep=lambda s: None)
        with pytest.raises(RequestError, match="redirect") as info:
            backend.wait(encode_task("t1", f"{base}/v1/get_result?id=t1"))
        assert KEY not in str(info.value)
        assert seen == [("/v1/get_result?id=t1", KEY)]  # /elsewhere never asked
    finally:
        server.shutdown()
        server.server_close()
