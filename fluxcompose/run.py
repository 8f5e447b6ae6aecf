"""One job, end to end: compose -> request -> download -> compare -> write.

The pipeline is split at its I/O seams so that ``batch`` runs the very same
steps on different threads:

* :func:`prepare_job` (:mod:`fluxcompose.prepare`) - CPU: read and compose the sources,
  render the prompt, build the request, work out the job id and price. Sends nothing.
* :func:`generate_with_retries` - network: one paid generation, retried only
  where that is safe.
* :func:`save_result` - network: download the result at once (links expire).
* :func:`finish_job` - CPU: canvas, compare, sheet and the provenance sidecar
  (:mod:`fluxcompose.provenance`).

:func:`run_job` chains them for ``fluxcompose run``. Choosing among several runs (best-of-N,
:mod:`fluxcompose.candidates`; A/B, :mod:`fluxcompose.ab`) is a layer above this one: this
module knows nothing of it. The request's types (:class:`JobSpec`, ...) live in
:mod:`fluxcompose.request` and are re-exported here, the Python API's one import.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Unpack

from PIL import Image

from .backends.base import Backend, GenerationResult, OnSubmitted, TaskHooks
from .download import download_result, write_result_bytes
from .errors import (
    ConfigError,
    GenerationError,
    InputError,
    RateLimited,
    RetryableError,
    TransientError,
)
from .images import canvas_extension, load_image, write_bytes_atomic
from .prepare import PreparedJob, prepare_job
from .provenance import JobOutcome, build_sidecar, cost_record, public_task_id, write_sidecar
from .request import (
    ComposeOptions,
    ComposeSettings,
    JobSettings,
    JobSpec,
    RequestOptions,
    job_price,
    reference_budget,
    resolve_aspect_ratio,
    resolve_job,
    resolve_model,
    target_name,
    typical_price,
)

__all__ = [
    "ComposeOptions",
    "ComposeSettings",
    "JobOutcome",
    "JobSettings",
    "JobSpec",
    "PreparedJob",
    "RequestOptions",
    "build_sidecar",
    "complete_job",
    "cost_record",
    "finish_job",
    "generate_once",
    "generate_with_retries",
    "image_ok",
    "job_price",
    "prepare_job",
    "public_task_id",
    "reference_budget",
    "resolve_aspect_ratio",
    "resolve_job",
    "resolve_model",
    "retry_delay",
    "run_job",
    "save_result",
    "typical_price",
    "warm_up",
    "write_sidecar",
]

RETRY_AFTER_DEFAULT = 5.0  # seconds to wait on a 429 that names no Retry-After
RETRY_AFTER_MAX = 120.0
BACKOFF_BASE = 1.0  # seconds; doubled per attempt, with full jitter
BACKOFF_MAX = 30.0
DOWNLOAD_ATTEMPTS = 3


# --------------------------------------------------------------------------- generate


def warm_up(backend: Backend) -> None:
    """Start the backend's one-time set-up (an SDK import, its client) on a background
    thread, so it overlaps composing instead of delaying the first request."""
    warm = getattr(backend, "warm_up", None)
    if callable(warm):
        threading.Thread(target=warm, name="fluxcompose-warm-up", daemon=True).start()


def generate_once(
    backend: Backend, prepared: PreparedJob, **task: Unpack[TaskHooks]
) -> GenerationResult:
    """One attempt at the generation (a paid call unless ``resume_task_id`` is given)."""
    try:
        return backend.generate(prepared.request, **task)
    except GenerationError as exc:
        exc.job_id = exc.job_id or prepared.job_id
        raise


def retry_delay(exc: BaseException, attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after ``exc`` (a RetryableError).

    429 honours Retry-After; other transient errors back off exponentially with
    full jitter: uniform(0, min(30, 1 * 2**(attempt-1))) plus a small floor.
    """
    if isinstance(exc, RateLimited):
        after = exc.retry_after if exc.retry_after is not None else RETRY_AFTER_DEFAULT
        return min(max(after, 0.0), RETRY_AFTER_MAX)
    cap = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** max(attempt - 1, 0))
    r = (rng or random).uniform(0.0, cap)
    return 0.1 * cap + 0.9 * r


def generate_with_retries(
    backend: Backend,
    prepared: PreparedJob,
    *,
    max_attempts: int = 4,
    on_submitted: OnSubmitted | None = None,
    resume_task_id: str | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    stop: threading.Event | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> GenerationResult:
    """Generate, retrying what is safe to retry, up to ``max_attempts`` attempts.

    A 429 waits for Retry-After; 5xx, timeouts and dropped connections back off
    exponentially with jitter; everything else is raised at once. A resumable
    backend (BFL) that already accepted the task is polled again by its id
    instead of being paid for twice. When ``stop`` is set, no new attempt starts
    and the last error is raised.
    """
    if max_attempts < 1:
        raise ConfigError("max attempts must be at least 1")
    task_id = resume_task_id

    def remember(tid: str) -> None:
        nonlocal task_id
        task_id = tid
        if on_submitted is not None:
            on_submitted(tid)

    attempt = 0
    while True:
        attempt += 1
        try:
            resume = task_id if backend.resumable else None
            return generate_once(backend, prepared, on_submitted=remember, resume_task_id=resume)
        except RetryableError as exc:
            if attempt >= max_attempts or (stop is not None and stop.is_set()):
                raise
            delay = retry_delay(exc, attempt)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                sleep(delay)


def save_result(
    prepared: PreparedJob,
    result: GenerationResult,
    outdir: Path,
    *,
    attempts: int = DOWNLOAD_ATTEMPTS,
    sleep: Callable[[float], Any] = time.sleep,
) -> Path:
    """Write the result to ``outdir/<job>.<ext>`` at once: the bytes, or a download of its URL.

    A cut-off download is tried again (the link is still valid for minutes); an
    expired link is not.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    if result.data is not None:
        return write_result_bytes(result.data, outdir, prepared.job_id)
    if not result.url:
        raise TransientError(
            "the backend returned neither an image nor a link", job_id=prepared.job_id
        )
    for attempt in range(1, attempts + 1):
        try:
            return download_result(result.url, outdir, prepared.job_id)
        except RetryableError as exc:
            exc.job_id = exc.job_id or prepared.job_id
            if attempt >= attempts:
                raise
            sleep(retry_delay(exc, attempt))
        except GenerationError as exc:
            exc.job_id = exc.job_id or prepared.job_id
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def image_ok(path: str | Path | None) -> bool:
    """True when ``path`` is a complete, decodable image: a saved result worth finishing
    on resume instead of paying for it again."""
    if not path:
        return False
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------- finish


def _compare(
    prepared: PreparedJob, output_path: Path, outdir: Path
) -> tuple[dict[str, Any] | None, Path | None]:
    """Compare the output with its sources and draw the sheet; (report dict, sheet path).

    The subject is the job's ``subject_box`` when given, else detected on the target;
    the placement is the job's ``placement`` variable (recipe default or ``--var``)."""
    from . import compare as compare_mod  # lazily: run --no-compare need not pay for it

    if not prepared.sources:
        return None, None  # text to image: nothing to measure against
    recipe = prepared.spec.recipe
    names = [s["name"] for s in prepared.sources]
    budget = (1024, 1024)
    loaded = {
        name: load_image(src, draft_size=_draft(s, budget)).image
        for name, src, s in zip(names, prepared.spec.sources, prepared.sources, strict=True)
    }
    target = target_name(names)
    assert target is not None
    if prepared.composite is None:
        # Separate references: no canvas layout, so the output must be the target's frame.
        with Image.open(output_path) as im:
            out_size = im.size
        info = prepared.sources[names.index(target)]
        compare_mod.require_target_frame(out_size, (int(info["width"]), int(info["height"])))
    checks = dict(recipe.checks) if recipe else {}
    context = prepared.request.context
    variables = context.get("variables") or {}
    placement = variables.get("placement")
    sheet_path = outdir / f"{prepared.job_id}.sheet.png"
    report = compare_mod.compare_files(
        output_path,
        loaded[target],
        pattern=loaded.get("pattern"),
        style=loaded.get("style"),
        sources=loaded,
        source_order=names,
        layout=prepared.composite,
        target_index=names.index(target),
        checks=checks or None,
        subject_box=context.get("subject_box"),
        placement=None if placement is None else str(placement),
        sheet=sheet_path,
        canvas=None if prepared.composite is None else prepared.composite.image,
    )
    data = report.to_dict()
    if not checks:
        data["passed"] = None
    return data, report.sheet_path


def _draft(info: Mapping[str, Any], budget: tuple[int, int]) -> tuple[int, int] | None:
    """A decode size at most ``budget`` with the source's aspect (sources can be 24 MP)."""
    w, h = int(info["width"]), int(info["height"])
    s = min(budget[0] / w, budget[1] / h, 1.0)
    if s >= 1.0:
        return None
    return max(1, round(w * s)), max(1, round(h * s))


def finish_job(
    prepared: PreparedJob,
    output_path: Path,
    outdir: Path,
    *,
    backend_name: str | None = None,
    compare: bool = True,
    timings: Mapping[str, float] | None = None,
    task_id: str | None = None,
    billed: Mapping[str, Any] | None = None,
) -> JobOutcome:
    """Write the canvas (or the separate references), compare the output (and draw its
    sheet), then the sidecar ``<job>.json``.

    ``billed`` is the provider's word on the price (``GenerationResult.extra``:
    ``cost_credits``, ``input_mp``, ``output_mp``), when its reply carried one.
    """
    t0 = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    canvas_path: Path | None = None
    reference_paths: list[Path] = []
    req = prepared.request
    if prepared.canvas_bytes is not None:
        # Exactly the bytes sent. Not fsynced: the canvas is derived data
        # (the sidecar records its sources and layout).
        ext = canvas_extension(req.input_mime)
        canvas_path = write_bytes_atomic(
            outdir / f"{prepared.job_id}.canvas.{ext}", prepared.canvas_bytes, durable=False
        )
    elif prepared.references == "separate" and req.input_image is not None:
        images = [(req.input_image, req.input_mime), *req.more_images]
        for i, (data, mime) in enumerate(images, start=1):
            path = outdir / f"{prepared.job_id}.ref{i}.{canvas_extension(mime)}"
            reference_paths.append(write_bytes_atomic(path, data, durable=False))
    metrics: dict[str, Any] | None = None
    sheet_path: Path | None = None
    if compare:
        try:
            metrics, sheet_path = _compare(prepared, output_path, outdir)
        except Exception as exc:  # noqa: BLE001
            # The result is paid for and on disk: a failure to measure it must not
            # cost the sidecar. Say why it was not measured instead.
            reason = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            metrics = {"error": f"compare failed: {reason}", "passed": None, "checks": {}}
    all_timings = {**prepared.timings, **(timings or {})}
    all_timings["finish_s"] = time.perf_counter() - t0
    sidecar = build_sidecar(
        prepared,
        output_path=output_path,
        canvas_path=canvas_path,
        sheet_path=sheet_path,
        metrics=metrics,
        backend_name=backend_name or prepared.backend_name,
        task_id=task_id,
        timings=all_timings,
        billed=billed,
        reference_paths=reference_paths,
    )
    sidecar_path = write_sidecar(outdir, prepared.job_id, sidecar)
    passed = None if metrics is None else metrics.get("passed")
    return JobOutcome(
        job_id=prepared.job_id,
        output_path=output_path,
        canvas_path=canvas_path,
        sidecar_path=sidecar_path,
        sheet_path=sheet_path,
        sidecar=sidecar,
        metrics=metrics,
        checks_passed=passed,
        cost_usd=float(sidecar["cost_usd"]),
        reference_paths=reference_paths,
    )


# --------------------------------------------------------------------------- one job


def run_job(spec: JobSpec, backend: Backend, outdir: Path, **options: Any) -> JobOutcome:
    """Run one job end to end and write ``<job>.<ext>``, ``<job>.canvas.<ext>`` (or
    ``<job>.ref1.<ext>``, ... for separate references) and ``<job>.json``.

    ``options`` are :func:`complete_job`'s: ``compare`` (True), ``max_attempts`` (4) and
    ``on_retry(attempt, error, delay_s)``."""
    prepared = prepare_job(spec, backend_name=backend.name)
    return complete_job(prepared, backend, outdir, **options)


def complete_job(
    prepared: PreparedJob,
    backend: Backend,
    outdir: Path,
    *,
    compare: bool = True,
    max_attempts: int = 4,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> JobOutcome:
    """Generate, download and finish a prepared job (everything after :func:`prepare_job`).

    Best-of-N is a layer above this: :func:`fluxcompose.candidates.run_candidates`."""
    t0 = time.perf_counter()
    task: dict[str, str] = {}
    result = generate_with_retries(
        backend,
        prepared,
        max_attempts=max_attempts,
        on_submitted=lambda tid: task.__setitem__("id", tid),
        on_retry=on_retry,
    )
    t1 = time.perf_counter()
    output_path = save_result(prepared, result, outdir)
    t2 = time.perf_counter()
    return finish_job(
        prepared,
        output_path,
        outdir,
        backend_name=backend.name,
        compare=compare,
        timings={"generate_s": t1 - t0, "download_s": t2 - t1},
        task_id=result.task_id or task.get("id"),
        billed=result.extra,
    )
