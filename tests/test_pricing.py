"""The price table and cost estimates (DESIGN.md section 7)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxcompose.errors import ConfigError
from fluxcompose.pricing import estimate, price_per_call


@pytest.mark.parametrize(
    "backend,model,usd",
    [
        ("openai", "flux-kontext-pro", 0.035),
        ("openai", "flux-kontext-max", 0.07),
        ("bfl", "flux-kontext-pro", 0.04),
        ("bfl", "flux-kontext-max", 0.08),
        ("local", "flux-kontext-pro", 0.0),
        ("local", "flux-kontext-max", 0.0),
    ],
)
def test_price_table(backend: str, model: str, usd: float) -> None:
    assert price_per_call(backend, model) == usd


def test_estimate_shape_and_values() -> None:
    est = estimate(100, "flux-kontext-pro", "openai")
    assert est == {
        "calls": 100,
        "model": "flux-kontext-pro",
        "backend": "openai",
        "usd_per_call": 0.035,
        "usd": 3.5,
        "apiyi_usd": 3.5,
        "official_usd": 4.0,
        "saving_usd": 0.5,
        "saving_percent": 12.5,
    }
    assert estimate(3, "flux-kontext-max", "bfl")["usd"] == 0.24
    assert estimate(3, "flux-kontext-pro", "openai")["usd"] == 0.105  # no float noise
    local = estimate(10, "flux-kontext-max", "local")
    assert local["usd"] == 0.0 and local["official_usd"] == 0.8 and local["apiyi_usd"] == 0.7


def test_unknown_names_and_bad_counts() -> None:
    with pytest.raises(ConfigError, match="flux-kontext-pro"):
        price_per_call("openai", "flux-dev")
    with pytest.raises(ConfigError, match="openai"):
        price_per_call("replicate", "flux-kontext-pro")
    for calls in (-1, 1.5, True):
        with pytest.raises(ConfigError):
            estimate(calls, "flux-kontext-pro", "openai")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    calls=st.integers(0, 10**6),
    model=st.sampled_from(["flux-kontext-pro", "flux-kontext-max"]),
    backend=st.sampled_from(["openai", "bfl", "local"]),
)
def test_estimate_is_calls_times_price(calls: int, model: str, backend: str) -> None:
    est = estimate(calls, model, backend)
    assert est["usd"] == pytest.approx(calls * price_per_call(backend, model), abs=1e-6)
    assert est["saving_usd"] == pytest.approx(est["official_usd"] - est["apiyi_usd"], abs=1e-6)
    assert est["apiyi_usd"] <= est["official_usd"]
    assert est["saving_percent"] == 12.5
