"""Prices per call, in US dollars, and cost estimates.

The openai backend is priced at APIYI's rates (an OpenAI-compatible gateway);
the bfl backend at Black Forest Labs' official rates; the local backend is free.
"""

from __future__ import annotations

from typing import Any

from .backends.base import validate_model
from .errors import ConfigError

__all__ = ["PRICES", "estimate", "price_per_call"]

PRICES: dict[str, dict[str, float]] = {
    "openai": {"flux-kontext-pro": 0.035, "flux-kontext-max": 0.07},
    "bfl": {"flux-kontext-pro": 0.04, "flux-kontext-max": 0.08},
    "local": {"flux-kontext-pro": 0.0, "flux-kontext-max": 0.0},
}
"""USD per call, by backend then model (DESIGN.md section 7)."""

# Dollar amounts are rounded to this many decimals so 3 x 0.035 prints as 0.105.
_DIGITS = 6


def price_per_call(backend: str, model: str) -> float:
    """USD for one call of ``model`` on ``backend``; ConfigError for unknown names."""
    validate_model(model)
    table = PRICES.get(backend)
    if table is None:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(PRICES)}")
    return table[model]


def estimate(calls: int, model: str, backend: str) -> dict[str, Any]:
    """The estimated cost of ``calls`` calls (>= 0) of ``model`` on ``backend``.

    Returns ``{"calls", "model", "backend", "usd_per_call", "usd"}`` plus a
    comparison of the two hosted routes: ``apiyi_usd`` (openai backend at
    APIYI's rates), ``official_usd`` (bfl backend), ``saving_usd`` and
    ``saving_percent`` (what APIYI saves against the official price, 0..100).
    """
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
        raise ConfigError(f"the number of calls must be a whole number >= 0, got {calls!r}")
    per_call = price_per_call(backend, model)
    apiyi = round(calls * PRICES["openai"][model], _DIGITS)
    official = round(calls * PRICES["bfl"][model], _DIGITS)
    official_per_call = PRICES["bfl"][model]
    saving_percent = (
        round(100.0 * (official_per_call - PRICES["openai"][model]) / official_per_call, 2)
        if official_per_call
        else 0.0
    )
    return {
        "calls": calls,
        "model": model,
        "backend": backend,
        "usd_per_call": per_call,
        "usd": round(calls * per_call, _DIGITS),
        "apiyi_usd": apiyi,
        "official_usd": official,
        "saving_usd": round(official - apiyi, _DIGITS),
        "saving_percent": saving_percent,
    }
