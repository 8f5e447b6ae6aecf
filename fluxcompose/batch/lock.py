"""The OUTDIR lock: one batch per output folder, released by the OS even on kill -9."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError

__all__ = ["LOCK_NAME", "locked_outdir"]

LOCK_NAME = "journal.lock"


@contextlib.contextmanager
def locked_outdir(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` for the block, then clear a killed run's temp files.

    Two batches sharing a journal could both submit the same job, so a second one is
    bad usage (InputError). The lock dies with the process, even with kill -9. On
    Windows there are no advisory locks: one batch per OUTDIR is then on the user.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        _remove_stale_parts(out)
        yield
        return
    with open(out / LOCK_NAME, "ab") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(
                f"another fluxcompose batch is running in {out}; wait for it, or use another -o"
            ) from None
        _remove_stale_parts(out)
        yield


def _remove_stale_parts(out: Path) -> None:
    """Delete temp files (``.<name>.<random>.part``) left by a killed run; we hold the lock."""
    for folder in (out, out / "thumbs"):
        for part in folder.glob(".*.part") if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                part.unlink()
