"""Model backends: a dict registry and the key, URL and name lookups.

``local`` is offline and free; ``openai`` talks to an OpenAI-compatible gateway
(APIYI by default); ``bfl`` talks to Black Forest Labs' native API. Choose one
with :func:`resolve_backend_name` and build it with :func:`make_backend`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..errors import ConfigError
from .base import (
    MODELS,
    Backend,
    GenerationRequest,
    GenerationResult,
    OnSubmitted,
    TaskHooks,
    validate_model,
    validate_request,
)
from .bfl import BFLBackend
from .local import LocalBackend
from .openai_compat import TRANSPORTS, OpenAICompatBackend

__all__ = [
    "BACKENDS",
    "BASE_URL_VARS",
    "DEFAULT_BASE_URLS",
    "KEY_VARS",
    "MODELS",
    "TRANSPORTS",
    "Backend",
    "BFLBackend",
    "GenerationRequest",
    "GenerationResult",
    "LocalBackend",
    "OnSubmitted",
    "OpenAICompatBackend",
    "TaskHooks",
    "make_backend",
    "resolve_api_key",
    "resolve_backend_name",
    "resolve_base_url",
    "validate_model",
    "validate_request",
]

BACKENDS: dict[str, type] = {
    "local": LocalBackend,
    "openai": OpenAICompatBackend,
    "bfl": BFLBackend,
}
"""Backend classes by name; the order is the order shown to users."""

KEY_VARS: dict[str, str] = {"openai": "FLUXCOMPOSE_API_KEY", "bfl": "BFL_API_KEY"}
"""The environment variable holding each hosted backend's key. Never OPENAI_API_KEY:
that would send a user's OpenAI key to a third-party gateway without being asked."""

BASE_URL_VARS: dict[str, str] = {"openai": "FLUXCOMPOSE_BASE_URL", "bfl": "BFL_BASE_URL"}
DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.apiyi.com/v1",
    "bfl": "https://api.bfl.ai",
}

DEFAULT_TIMEOUT = 600.0
"""Seconds one generation may take end to end (the BFL polling limit, the gateway's request limit)."""


def _env(env: Mapping[str, str], name: str) -> str | None:
    """An environment value, with empty or blank treated as unset."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _check_name(name: str, where: str) -> str:
    key = name.strip().lower()
    if key not in BACKENDS:
        raise ConfigError(
            f"unknown backend {name!r} ({where}); choose one of {', '.join(BACKENDS)}"
        )
    return key


def resolve_backend_name(explicit: str | None, env: Mapping[str, str] = os.environ) -> str:
    """The backend to use: ``--backend``, else FLUXCOMPOSE_BACKEND, else ``openai`` when
    FLUXCOMPOSE_API_KEY is set, else ``bfl`` when BFL_API_KEY is set, else ``local``."""
    if explicit is not None and explicit.strip():
        return _check_name(explicit, "--backend")
    chosen = _env(env, "FLUXCOMPOSE_BACKEND")
    if chosen is not None:
        return _check_name(chosen, "FLUXCOMPOSE_BACKEND")
    if _env(env, KEY_VARS["openai"]) is not None:
        return "openai"
    if _env(env, KEY_VARS["bfl"]) is not None:
        return "bfl"
    return "local"


def resolve_api_key(
    backend: str, explicit: str | None, env: Mapping[str, str] = os.environ
) -> str | None:
    """The API key for ``backend``: ``--api-key``, else its variable (see KEY_VARS).

    None for ``local``. A hosted backend without a key raises ConfigError
    (exit 2) naming the variable to set; the key itself is never shown.
    """
    backend = _check_name(backend, "backend")
    var = KEY_VARS.get(backend)
    if var is None:
        return None
    if explicit is not None and explicit.strip():
        return explicit.strip()
    key = _env(env, var)
    if key is None:
        raise ConfigError(f"the {backend} backend needs an API key: set {var} or pass --api-key")
    return key


def resolve_base_url(
    backend: str, explicit: str | None, env: Mapping[str, str] = os.environ
) -> str | None:
    """The base URL for ``backend``: ``--base-url``, else its variable, else the default (None for local)."""
    backend = _check_name(backend, "backend")
    if backend not in DEFAULT_BASE_URLS:
        return None
    if explicit is not None and explicit.strip():
        url = explicit.strip()
    else:
        url = _env(env, BASE_URL_VARS[backend]) or DEFAULT_BASE_URLS[backend]
    if not url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"base URL {url!r} must start with http:// or https://")
    return url.rstrip("/")


def make_backend(
    name: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    transport: str = "generations",
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] = os.environ,
) -> Backend:
    """Build the backend called ``name``, resolving its key and base URL from ``env``.

    ``transport`` (``generations`` or ``edits``) applies to ``openai`` only.
    ``timeout`` is the seconds one generation may take. Raises ConfigError for
    an unknown name, a missing key or a bad option.
    """
    key_name = _check_name(name, "backend")
    if transport not in TRANSPORTS:
        raise ConfigError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
    if key_name != "openai" and transport != "generations":
        raise ConfigError(f"--transport {transport} applies only to the openai backend")
    if not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if key_name == "local":
        return LocalBackend()
    key = resolve_api_key(key_name, api_key, env)
    assert key is not None  # hosted backends always have one or raised
    url = resolve_base_url(key_name, base_url, env)
    assert url is not None
    if key_name == "openai":
        return OpenAICompatBackend(key, base_url=url, transport=transport, timeout=timeout)
    return BFLBackend(key, base_url=url, timeout=timeout)
