"""The pose model at run time: MediaPipe's ``PoseLandmarker`` (Tasks API) with the model file
shipped in the package (``fluxcompose/data/models/pose_landmarker_full.task``, see its README).

- mediapipe is imported here, lazily, on the first :func:`detect`: commands that never locate
  never pay for it (~0.5-1 s);
- the model's bytes are read once per process; a thread detects with a landmarker no other
  thread is using at that moment (the Tasks API objects are not meant to be shared by
  threads at once), taken from a pool of idle ones, so a process makes as many as it uses
  at once;
- the runtime's own log lines (LiteRT, absl: "Sparsity tensors may not yet be fully
  supported", ~50 per load) never reach the user's stderr: the log levels are set in the
  environment before the import, and file descriptor 2 points at /dev/null while a
  landmarker is created (under a lock; other threads' stderr lines written in that
  fraction of a second are lost too);
- every landmarker is closed before the interpreter exits (atexit), which otherwise prints
  an exception from the runtime's finaliser.

Nothing is ever downloaded: the model is read from the package.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MODEL_FILE", "MODEL_SHA256", "Pose", "detect", "model_bytes"]

MODEL_FILE = "pose_landmarker_full.task"
MODEL_SHA256 = "6e03be392aeebb7166bb152a6bbd59f9be832401913d26c1c5ad277926d27870"

_QUIET_ENV = {"GLOG_minloglevel": "3", "TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "3"}

_lock = threading.Lock()
_open: list[Any] = []  # every landmarker made, closed at exit
_idle: list[Any] = []  # those no thread is using now
_seen_person: set[int] = set()  # ids of those that have found a person once


@dataclass(frozen=True)
class Pose:
    """One person's pose on an image of ``size`` = (width, height) pixels.

    ``points`` is 33 x 4 float: x and y in pixels of that image (they may lie outside it),
    then visibility and presence (0..1; not a confidence: they stay near 1 on wrong poses).
    ``mask`` is the person mask, float32 0..1, (height, width).
    """

    points: npt.NDArray[np.float64]
    mask: npt.NDArray[np.float32]
    size: tuple[int, int]

    def xy(self, index: int) -> npt.NDArray[np.float64]:
        """Landmark ``index``'s (x, y) in pixels."""
        return self.points[index, :2]


@cache
def model_bytes() -> bytes:
    """The shipped model file's bytes (read once per process)."""
    ref = resources.files("fluxcompose") / "data" / "models" / MODEL_FILE
    return ref.read_bytes()


_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_fd: int | None = None


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside the block (the C++ runtime writes there
    directly, past Python's sys.stderr). Re-entrant across threads: the first to enter
    redirects, the last to leave restores."""
    import sys

    global _quiet_depth, _saved_fd
    with _quiet_lock:
        if _quiet_depth == 0:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            try:
                _saved_fd = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError:  # no descriptor 2 (a daemon): nothing to keep quiet
                _saved_fd = None
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


def _at_exit(fn: Callable[[], None]) -> None:
    """Run ``fn`` when the interpreter exits, before the thread pools shut down: mediapipe
    closes a landmarker through a ``concurrent.futures`` executor, which refuses work once
    its own exit hook (``threading._register_atexit``) has run, and plain ``atexit`` hooks run
    after that. Python 3.9+ has the hook; otherwise plain atexit."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - CPython >= 3.9 has it
        atexit.register(fn)
        return
    register(fn)


def _close_all() -> None:
    """Close every landmarker (atexit): the runtime's finaliser complains otherwise."""
    with _lock:
        items = list(_open)
        _open.clear()
        _idle.clear()
    with _stderr_silenced():
        for landmarker in items:
            with contextlib.suppress(Exception):
                landmarker.close()


def _create() -> Any:
    """A new PoseLandmarker (quietly), registered to be closed at exit."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    data = model_bytes()
    with _lock, _stderr_silenced():
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.IMAGE,
            num_poses=1,
            output_segmentation_masks=True,
        )
        landmarker = vision.PoseLandmarker.create_from_options(options)
        if not _open:
            _at_exit(_close_all)
        _open.append(landmarker)
        # The first detection logs too (LiteRT's alignment notice, absl's "before
        # InitGoogle"): pay it here, silenced.
        import mediapipe as mp

        blank = np.zeros((64, 64, 3), np.uint8)
        landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=blank))
    return landmarker


@contextlib.contextmanager
def _borrowed() -> Iterator[Any]:
    """A landmarker no other thread is using: an idle one, else a new one. So each thread
    has its own while it detects, and a process makes as many as it ever uses at once
    (not one per thread that ever lived: batch makes new worker threads per run)."""
    with _lock:
        landmarker = _idle.pop() if _idle else None
    if landmarker is None:
        landmarker = _create()
    try:
        yield landmarker
    finally:
        with _lock:
            _idle.append(landmarker)


def _landmarker() -> Any:
    """Make sure one landmarker exists (the load, paid up front; for benchmarks)."""
    with _borrowed() as landmarker:
        return landmarker


def detect(rgb: npt.NDArray[np.uint8]) -> Pose | None:
    """The most prominent person's pose on ``rgb`` (H x W x 3 uint8, RGB), or None.

    Until a landmarker has found a person once, its detections run with stderr silenced:
    the runtime logs a notice on its first landmark projection."""
    import mediapipe as mp

    h, w = rgb.shape[:2]
    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
    with _borrowed() as landmarker:
        if id(landmarker) in _seen_person:
            result = landmarker.detect(image)
        else:
            with _stderr_silenced():
                result = landmarker.detect(image)
        if not result.pose_landmarks:
            return None
        _seen_person.add(id(landmarker))
        points = np.array(
            [
                (p.x * w, p.y * h, p.visibility or 0.0, p.presence or 0.0)
                for p in result.pose_landmarks[0]
            ],
            dtype=np.float64,
        )
        if result.segmentation_masks:
            mask = np.asarray(result.segmentation_masks[0].numpy_view(), dtype=np.float32)
            mask = mask.reshape(mask.shape[0], mask.shape[1]).copy()
        else:  # pragma: no cover - masks are asked for
            mask = np.zeros((h, w), np.float32)
    return Pose(points, mask, (w, h))
