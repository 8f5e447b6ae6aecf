"""One way for a test to shut out the user's configuration (API keys, base URLs, backend
choice) and make retries back off in milliseconds."""

from __future__ import annotations

import os

import pytest

from fluxcompose import run as run_mod

API_ENV_PREFIXES = ("FLUXCOMPOSE_", "BFL_", "OPENAI_")


def hermetic_env(
    monkeypatch: pytest.MonkeyPatch, key: str | None = None, *, fast_retries: bool = True
) -> None:
    """Unset every ``FLUXCOMPOSE_*``, ``BFL_*`` and ``OPENAI_*`` variable; set
    ``FLUXCOMPOSE_API_KEY`` to ``key`` when given; with ``fast_retries``, back off 0.02 s
    instead of 1 s (the schedule itself is tested in test_run)."""
    for name in list(os.environ):
        if name.startswith(API_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    if key is not None:
        monkeypatch.setenv("FLUXCOMPOSE_API_KEY", key)
    if fast_retries:
        monkeypatch.setattr(run_mod, "BACKOFF_BASE", 0.02)
