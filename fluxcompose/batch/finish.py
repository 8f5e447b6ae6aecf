"""The finish step (canvas file, compare, sheet, sidecar, thumbnails) in worker processes.

Finishing holds the interpreter lock for long stretches; in a process of its own it
cannot delay the next submission. The pool is shared by every batch in a process and
started on first use. A task that cannot reach a worker (a broken pool, an object that
does not pickle) is finished in the calling thread instead: slower, never lost.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import ErrorKind, GenerationError, InputError, error_kind
from ..prepare import PreparedJob
from ..provenance import JobOutcome
from ..report import make_thumbs
from ..run import finish_job

__all__ = ["FinishTask", "Finished", "finish", "finish_in_worker", "one_line", "start_workers"]


def one_line(exc: BaseException) -> str:
    """An error as one line of at most 500 characters, with its class unless it is ours."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, GenerationError | InputError):
        text = f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text[:500]


@dataclass(frozen=True)
class FinishTask:
    """A downloaded job to finish; ``timings`` are the job's stage times so far (seconds)."""

    prepared: PreparedJob
    output: Path
    outdir: Path
    backend_name: str
    compare: bool
    task_id: str | None
    timings: dict[str, float] = field(default_factory=dict)
    billed: dict[str, object] = field(default_factory=dict)  # cost_credits, input_mp, output_mp


@dataclass(frozen=True)
class Finished:
    """A finish step's result: the outcome, or why there is none (``error``, ``kind``)."""

    outcome: JobOutcome | None
    thumbs: dict[str, object] | None = None  # the report's thumbnail paths (JSON)
    finish_s: float = 0.0
    error: str | None = None
    kind: ErrorKind = ErrorKind.OUTPUT


def finish(task: FinishTask) -> Finished:
    """Write the job's files and thumbnails. Never raises: a failure comes back as ``error``."""
    prepared = task.prepared
    t = time.perf_counter()
    try:
        outcome = finish_job(
            prepared,
            task.output,
            task.outdir,
            backend_name=task.backend_name,
            compare=task.compare,
            timings=task.timings,
            task_id=task.task_id,
            billed=task.billed,
        )
    except Exception as exc:  # paid for but unusable, e.g. a corrupt download
        kind = error_kind(exc) if isinstance(exc, GenerationError) else ErrorKind.OUTPUT
        return Finished(None, error=one_line(exc), kind=kind)
    finish_s = time.perf_counter() - t
    thumbs: dict[str, object] | None = None
    composite = prepared.composite
    try:  # the report is cosmetic: a thumbnail that fails is left out
        if composite is not None:
            canvas: Image.Image | bytes | None = composite.image
            cells = [c.box for c in composite.cells]
            keys = composite.pixel_keys
        else:
            canvas, cells = _references_strip(prepared)
            keys = ()
        thumbs = make_thumbs(
            task.outdir,
            prepared.job_id,
            canvas=canvas if canvas is not None else prepared.canvas_bytes,
            cells=cells,
            cell_keys=keys,
            output=outcome.output_path,
        )
    except Exception:  # noqa: BLE001
        thumbs = None
    return Finished(outcome, thumbs, finish_s)


def _references_strip(
    prepared: PreparedJob, height: int = 256
) -> tuple[Image.Image | None, list[tuple[int, int, int, int]]]:
    """Separate references side by side at one ``height`` and their boxes: the report's
    source thumbnails when there is no canvas."""
    req = prepared.request
    if req.input_image is None:
        return None, []
    images: list[Image.Image] = []
    for data in [req.input_image, *(d for d, _ in req.more_images)]:
        with Image.open(io.BytesIO(data)) as opened:
            w = max(1, round(opened.width * height / opened.height))
            images.append(opened.convert("RGB").resize((w, height), Image.Resampling.BILINEAR))
    strip = Image.new("RGB", (sum(im.width for im in images), height))
    boxes: list[tuple[int, int, int, int]] = []
    x = 0
    for picture in images:
        strip.paste(picture, (x, 0))
        boxes.append((x, 0, x + picture.width, height))
        x += picture.width
    return strip, boxes


# -- the worker processes ------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _worker_init(parent: int) -> None:
    """Signals are the parent's business (it finishes what is in flight); die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)  # the parent was killed (kill -9): nothing here is worth keeping

    threading.Thread(target=watch, daemon=True).start()
    from .. import compare, sheet  # noqa: F401 - imported now, not on the first job


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        return _pool


def _drop_pool(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def start_workers(workers: int) -> None:
    """Start the worker processes now (about a second each), while the first jobs are
    on the network, rather than on the first finish."""
    if workers >= 1:
        pool = _get_pool(workers)
        for _ in range(workers):
            pool.submit(int)


def finish_in_worker(task: FinishTask, *, workers: int) -> Finished:
    """:func:`finish` in a worker process (``workers`` of them, >= 1), or here if that fails.

    ``workers`` = 0 finishes here, in the calling thread.
    """
    if workers < 1:
        return finish(task)
    pool = _get_pool(workers)
    try:
        return pool.submit(finish, task).result()
    except Exception:  # noqa: BLE001 - a broken pool or an unpicklable task: do it here
        from concurrent.futures.process import BrokenProcessPool

        try:
            pool.submit(int)  # still usable? (a pickling error leaves it working)
        except (BrokenProcessPool, RuntimeError):
            _drop_pool(pool)
        return finish(task)
