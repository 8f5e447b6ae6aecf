"""Reading a user's text file (a recipe, a pairs file) with one clear line for each way it
can fail, raised as the caller's own :class:`~fluxcompose.errors.InputError` subclass."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

__all__ = ["read_text"]


def read_text(path: Path, what: str, error: type[InputError], *, encoding: str = "utf-8") -> str:
    """The text of ``path``, decoded with ``encoding`` (``utf-8-sig`` also drops a BOM).

    ``what`` names the file in the messages (``"recipe file"``); ``error`` is raised, with
    one line, when the file is missing, is a folder, is not UTF-8 or cannot be read.
    """
    if not path.exists():
        raise error(f"{what} not found: {path}")
    if path.is_dir():
        raise error(f"{what} is a folder, not a file: {path}")
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
