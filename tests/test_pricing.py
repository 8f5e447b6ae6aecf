"""The price table and cost estimates (DESIGN.md sections 7 and 11)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxcompose.errors import ConfigError
from fluxcompose.pricing import (
    PRICES,
    billed_megapixels,
    credits_to_usd,
    estimate,
    image_megapixels,
    load_prices,
    price_per_call,
    price_source,
    price_usd,
)


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
        "price_source": "APIYI",
        "priced_by": "call",
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


# --------------------------------------------------------------------------- FLUX.2 by the megapixel


# Hand-computed from the official formula (DESIGN.md section 11): first MP of output,
# then each further MP of output or input; the total rounded up to a whole MP.
@pytest.mark.parametrize(
    "model,output_mp,input_mps,usd",
    [
        ("flux-2-pro", 1.0, (), 0.03),
        ("flux-2-pro", 1.0, (1.0,), 0.045),
        ("flux-2-pro", 1.0, (1.0, 1.0), 0.06),  # the two-image edit: 3 MP
        ("flux-2-pro", 2.0, (1.0, 1.0), 0.075),
        ("flux-2-pro", 4.0, (1.0,) * 5, 0.03 + 8 * 0.015),  # 9 MP
        ("flux-2-pro", 0.25, (), 0.03),  # the first MP is flat
        ("flux-2-pro", 1.98, (), 0.045),  # 1920x1080: BFL bills 4.5 credits
        ("flux-2-pro", 1.0, (0.5, 0.6), 0.06),  # 2.1 MP rounds up to 3
        ("flux-2-pro", 1.0, (0.5, 0.5), 0.045),  # exactly 2 MP
        ("flux-2-max", 1.0, (), 0.07),
        ("flux-2-max", 1.0, (1.0, 1.0), 0.13),
        ("flux-2-max", 3.0, (), 0.13),
        ("flux-2-flex", 1.0, (), 0.05),
        ("flux-2-flex", 1.0, (1.0, 1.0), 0.15),
        ("flux-2-flex", 2.5, (1.0,), 0.05 + 3 * 0.05),
    ],
)
def test_flux2_official_prices(
    model: str, output_mp: float, input_mps: tuple[float, ...], usd: float
) -> None:
    assert price_usd("bfl", model, output_mp=output_mp, input_mps=input_mps) == pytest.approx(
        usd, abs=1e-9
    )
    # The gateway's FLUX.2 price is unknown: it is estimated at the official one, and says so.
    assert price_usd("openai", model, output_mp=output_mp, input_mps=input_mps) == pytest.approx(
        usd, abs=1e-9
    )
    assert price_source("openai", model) == "official (gateway price unknown)"
    assert price_source("bfl", model) == "official"
    assert price_usd("local", model, output_mp=output_mp, input_mps=input_mps) == 0.0


def test_kontext_is_one_price_per_call_whatever_the_sizes() -> None:
    for backend, usd in (("openai", 0.035), ("bfl", 0.04), ("local", 0.0)):
        assert price_usd(backend, "flux-kontext-pro") == usd
        assert price_usd(backend, "flux-kontext-pro", output_mp=2, input_mps=(1, 1, 1)) == usd
    assert price_source("openai", "flux-kontext-max") == "APIYI"
    assert price_source("local", "flux-kontext-max") == "local (free)"


def test_megapixels_are_1024_squared_to_two_decimals() -> None:
    assert image_megapixels(1024, 1024) == 1.0
    assert image_megapixels(1920, 1080) == pytest.approx(1.9775, abs=1e-4)
    assert image_megapixels(2048, 2048) == 4.0
    assert billed_megapixels(1.0, [1.0, 1.0]) == 3
    assert billed_megapixels(0.1) == 1
    assert billed_megapixels(1.98) == 2
    # Two tiny references (0.003 MP each) sum to 0.01 MP: a 1 MP output then bills 2.
    assert billed_megapixels(0.75, [image_megapixels(64, 48)] * 2) == 2
    assert billed_megapixels(0.75, [image_megapixels(64, 48)]) == 1
    # Three 1024x1024-ish images whose float sum is a hair over 3 still bill 3.
    assert billed_megapixels(1.0000001, [1.0000001, 1.0000001]) == 3
    assert credits_to_usd(4.5) == 0.045
    with pytest.raises(ConfigError):
        billed_megapixels(1.0, [-1.0])
    with pytest.raises(ConfigError):
        price_usd("bfl", "flux-2-pro", output_mp=float("nan"))


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from(["flux-2-pro", "flux-2-max", "flux-2-flex"]),
    out_px=st.integers(64 * 64, 4 * 1024 * 1024),
    in_px=st.lists(st.integers(1, 1024 * 1024), max_size=8),
)
def test_flux2_price_bounds(model: str, out_px: int, in_px: list[int]) -> None:
    """The price lies between the linear formula and one extra megapixel above it."""
    first = {"flux-2-pro": 0.03, "flux-2-max": 0.07, "flux-2-flex": 0.05}[model]
    extra = {"flux-2-pro": 0.015, "flux-2-max": 0.03, "flux-2-flex": 0.05}[model]
    out_mp = out_px / 1024**2
    ins = [p / 1024**2 for p in in_px]
    linear = first + (max(out_mp, 1.0) - 1 + sum(ins)) * extra
    usd = price_usd("bfl", model, output_mp=out_mp, input_mps=ins)
    assert linear - extra * 0.01 <= usd + 1e-9  # 2-decimal rounding
    assert usd <= linear + extra + 1e-9
    # Whole multiples of the extra price above the first MP.
    steps = (usd - first) / extra
    assert steps == pytest.approx(round(steps), abs=1e-6)


def test_flux2_estimate() -> None:
    est = estimate(1000, "flux-2-pro", "bfl", references=2)
    assert est == {
        "calls": 1000,
        "model": "flux-2-pro",
        "backend": "bfl",
        "usd_per_call": 0.06,
        "usd": 60.0,
        "price_source": "official",
        "priced_by": "megapixel",
        "references": 2,
        "reference_mp": 1.0,
        "output_mp": 1.0,
        "billed_mp": 3,
        "official_usd": 60.0,
    }
    assert estimate(10, "flux-2-max", "bfl", references=0, megapixels=4)["usd"] == 1.6
    assert estimate(10, "flux-2-flex", "bfl", references=1, reference_megapixels=0.5)["usd"] == 1.0
    gateway = estimate(10, "flux-2-pro", "openai")
    assert gateway["price_source"] == "official (gateway price unknown)"
    assert gateway["usd"] == gateway["official_usd"] == 0.6  # default: 2 references of 1 MP
    assert estimate(10, "flux-2-pro", "local")["usd"] == 0.0
    for bad in (
        {"references": 9},
        {"references": -1},
        {"megapixels": 0.0},
        {"megapixels": 4.5},
        {"references": 8, "reference_megapixels": 1.0, "megapixels": 2.0},  # 10 MP > 9
        {"references": 1, "reference_megapixels": 0.0},
    ):
        with pytest.raises(ConfigError):
            estimate(10, "flux-2-pro", "bfl", **bad)  # type: ignore[arg-type]


def test_price_file_covers_every_model_and_rejects_mistakes() -> None:
    from fluxcompose.models import MODEL_NAMES

    assert set(PRICES) == set(MODEL_NAMES)
    with pytest.raises(ValueError, match="unknown model"):
        load_prices("[flux-9]\nofficial = { per_call = 1.0 }\n")
    with pytest.raises(ValueError, match="lacks"):
        load_prices("[flux-2-pro]\nofficial = { first_mp = 0.03, extra_mp = 0.015 }\n")
    with pytest.raises(ValueError, match="per_call, or first_mp"):
        load_prices("[flux-2-pro]\nofficial = { first_mp = 0.03 }\n")


# --------------------------------------------------------------------------- the cost command


def _cost(*args: str) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from fluxcompose.cli import cli

    result = CliRunner().invoke(cli, ["cost", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cost_command_flux2_and_kontext() -> None:
    import json

    code, out, _err = _cost("1000", "--model", "flux-2-pro", "--backend", "bfl", "--json")
    assert code == 0
    est = json.loads(out)
    assert (est["usd_per_call"], est["usd"], est["billed_mp"]) == (0.06, 60.0, 3)
    code, out, _err = _cost(
        "1000",
        "--model",
        "flux-2-pro",
        "--backend",
        "openai",
        "--references",
        "1",
        "--reference-megapixels",
        "2",
        "--megapixels",
        "2",
    )
    assert code == 0
    # 2 MP out + 2 MP in = 4 MP: 0.03 + 3 x 0.015 = 0.075 a call
    assert "$75.00" in out and "official (gateway price unknown)" in out
    code, out, _err = _cost("1000", "--model", "flux-kontext-pro", "--backend", "bfl")
    assert code == 0 and "$40.00" in out and "$35.00" in out  # stitched: one call each
    code, out, _err = _cost(
        "1000", "--model", "flux-kontext-pro", "--backend", "bfl", "--references", "4", "--json"
    )
    assert json.loads(out)["usd"] == 40.0


@pytest.mark.parametrize(
    "args",
    [
        ["10", "--model", "flux-2-pro", "--references", "9"],
        ["10", "--model", "flux-2-pro", "--megapixels", "5"],
        ["10", "--model", "flux-2-pro", "--megapixels", "nan"],
        ["10", "--model", "flux-2-pro", "--references", "8", "--megapixels", "2"],
        ["10", "--model", "flux-3"],
        ["10", "--model", "flux-kontext-pro", "--references", "5"],
    ],
)
def test_cost_command_refuses(args: list[str]) -> None:
    code, out, err = _cost(*args)
    assert code == 2 and out == ""
    assert err.count("fluxcompose: error:") == 1 and "Traceback" not in err
