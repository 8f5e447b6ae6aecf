"""Prices in US dollars, and cost estimates, from the shipped table ``data/prices.toml``.

FLUX.1 Kontext is priced per call: the openai backend at APIYI's rates, the bfl
backend at Black Forest Labs' official rates; a stitched job is one call whatever
the number of sources. FLUX.2 is priced by the megapixel (official: ``first_mp``
for the first megapixel of output, ``extra_mp`` for each further megapixel of
output or input). The local backend is free. A gateway whose price for a model is
unknown (the openai backend for FLUX.2) is estimated at the official price, and
:func:`price_source` says so.

How megapixels are counted (BFL's published formula is
``first_mp + (output_mp - 1) * extra_mp + input_mp * extra_mp``, in credits):

- one megapixel is 1024 x 1024 = 1,048,576 pixels (:func:`image_megapixels`);
- the output, and the sum of all input images, are each taken to two decimals, as
  BFL reports ``output_mp`` and ``input_mp``;
- the output counts at least 1 MP (the first megapixel is a flat price);
- output plus inputs is rounded up to a whole megapixel (:func:`billed_megapixels`),
  as BFL bills a 1920x1080 output (1.98 MP) at 4.5 credits, not 4.47. So even small
  references can add one megapixel to a 1 MP output.

So 1 MP out with two 1 MP references bills 3 MP: $0.03 + 2 x $0.015 = $0.06 on
flux-2-pro. When BFL's reply carries ``cost`` (credits, 1 credit = $0.01), that is
the truth about what was paid (:func:`credits_to_usd`); this is the estimate.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .errors import ConfigError
from .models import MAX_TOTAL_PIXELS, MEGAPIXEL, MODEL_SPECS, model_spec

__all__ = [
    "BACKEND_ROUTES",
    "GATEWAY_UNKNOWN",
    "PRICE_FILE",
    "PRICES",
    "Price",
    "billed_megapixels",
    "credits_to_usd",
    "estimate",
    "image_megapixels",
    "load_prices",
    "price_per_call",
    "price_source",
    "price_usd",
]

PRICE_FILE = "data/prices.toml"
"""The price table, relative to the package."""

BACKEND_ROUTES: dict[str, str] = {"openai": "openai", "bfl": "official", "local": "local"}
"""Which column of the price table each backend pays."""

GATEWAY_UNKNOWN = "official (gateway price unknown)"
_SOURCE_NAMES = {"official": "official", "openai": "APIYI", "local": "local (free)"}
_MAX_OUTPUT_MP = 4.0
# Dollar amounts are rounded to this many decimals so 3 x 0.035 prints as 0.105.
_DIGITS = 6


@dataclass(frozen=True)
class Price:
    """One price: ``per_call`` USD, or ``first_mp`` then ``extra_mp`` USD per megapixel."""

    per_call: float | None = None
    first_mp: float | None = None
    extra_mp: float | None = None

    @property
    def by_megapixel(self) -> bool:
        return self.per_call is None


def _price(model: str, route: str, raw: object) -> Price:
    where = f"{PRICE_FILE}: [{model}] {route}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table")
    values: dict[str, float] = {}
    for key, value in raw.items():
        if key not in ("per_call", "first_mp", "extra_mp"):
            raise ValueError(f"{where}: unknown key {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}: {key} must be a number >= 0")
        values[key] = float(value)
    if set(values) not in ({"per_call"}, {"first_mp", "extra_mp"}):
        raise ValueError(f"{where}: give per_call, or first_mp and extra_mp")
    return Price(**values)


def load_prices(text: str | None = None) -> dict[str, dict[str, Price]]:
    """The price table by model then route (``official``, ``openai``, ``local``).

    ``text`` is TOML (default: the shipped file). Every model of
    :mod:`fluxcompose.models` must have an ``official`` and a ``local`` price; a file
    that breaks this raises ValueError (a packaging bug, not a user error).
    """
    if text is None:
        text = resources.files("fluxcompose").joinpath(PRICE_FILE).read_text("utf-8")
    data = tomllib.loads(text)
    table: dict[str, dict[str, Price]] = {}
    for model, routes in data.items():
        if model not in MODEL_SPECS:
            raise ValueError(f"{PRICE_FILE}: unknown model {model!r}")
        if not isinstance(routes, Mapping):
            raise ValueError(f"{PRICE_FILE}: [{model}] must be a table")
        table[model] = {}
        for route, raw in routes.items():
            if route not in _SOURCE_NAMES:
                raise ValueError(f"{PRICE_FILE}: [{model}] unknown route {route!r}")
            table[model][route] = _price(model, route, raw)
    for model in MODEL_SPECS:
        missing = {"official", "local"} - set(table.get(model, {}))
        if missing:
            raise ValueError(f"{PRICE_FILE}: [{model}] lacks {', '.join(sorted(missing))}")
    return table


PRICES: dict[str, dict[str, Price]] = load_prices()
"""The shipped price table, by model then route."""


def _route(backend: str, model: str) -> tuple[str, Price]:
    """(route, price) that ``backend`` pays for ``model``; ConfigError for unknown names."""
    model_spec(model)
    route = BACKEND_ROUTES.get(backend)
    if route is None:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_ROUTES)}")
    prices = PRICES[model]
    if route in prices:
        return route, prices[route]
    return "official", prices["official"]


def price_source(backend: str, model: str) -> str:
    """Where the price of ``model`` on ``backend`` comes from: ``"official"``, ``"APIYI"``,
    ``"local (free)"`` or ``"official (gateway price unknown)"``."""
    route, _price_ = _route(backend, model)
    if BACKEND_ROUTES[backend] != route:
        return GATEWAY_UNKNOWN
    return _SOURCE_NAMES[route]


def image_megapixels(width: int, height: int) -> float:
    """The megapixels of a ``width`` x ``height`` image (1 MP = 1,048,576 px), unrounded."""
    if width < 1 or height < 1:
        raise ConfigError(f"invalid image size {width}x{height}")
    return width * height / MEGAPIXEL


def _megapixels(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a number of megapixels, got {value!r}")
    if value < 0:
        raise ConfigError(f"{what} must be >= 0 megapixels, got {value!r}")
    return float(value)


def billed_megapixels(output_mp: float, input_mps: Iterable[float] = ()) -> int:
    """Whole megapixels billed: the output (at least 1) plus all inputs, rounded up.

    The output and the inputs' sum are each taken to 2 decimals first (as BFL reports
    them), so 1.0 + 1.0 + 1.0 bills 3, not 4.
    """
    out = max(1.0, round(_megapixels(output_mp, "the output"), 2))
    inputs = round(sum(_megapixels(mp, f"input image {i}") for i, mp in enumerate(input_mps, 1)), 2)
    return max(1, math.ceil(round(out + inputs, 2) - 1e-9))


def price_usd(
    backend: str, model: str, *, output_mp: float = 1.0, input_mps: Iterable[float] = ()
) -> float:
    """USD for one call of ``model`` on ``backend``.

    Kontext: the per-call price (the sizes do not matter). FLUX.2: ``first_mp + (billed
    - 1) * extra_mp`` with ``billed`` from :func:`billed_megapixels` of ``output_mp`` and
    ``input_mps`` (one entry per input image, in megapixels of 1,048,576 px). The local
    backend is 0. ConfigError for an unknown backend or model, or a negative size.
    """
    _route_name, price = _route(backend, model)
    if not price.by_megapixel:
        billed_megapixels(output_mp, input_mps)  # still reject nonsense sizes
        assert price.per_call is not None
        return price.per_call
    assert price.first_mp is not None and price.extra_mp is not None
    billed = billed_megapixels(output_mp, input_mps)
    return round(price.first_mp + (billed - 1) * price.extra_mp, _DIGITS)


def price_per_call(backend: str, model: str) -> float:
    """USD for one call of ``model`` on ``backend`` at the smallest size.

    Exact for Kontext (priced per call). For FLUX.2 this is a 1 MP output with no input
    image, a lower bound: price a real job with :func:`price_usd` and its sizes.
    """
    return price_usd(backend, model)


def credits_to_usd(credits: float) -> float:
    """US dollars for BFL credits (1 credit = $0.01)."""
    return round(float(credits) / 100.0, _DIGITS)


def _check_calls(calls: int) -> None:
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
        raise ConfigError(f"the number of calls must be a whole number >= 0, got {calls!r}")


def estimate(
    calls: int,
    model: str,
    backend: str,
    *,
    references: int | None = None,
    megapixels: float = 1.0,
    reference_megapixels: float = 1.0,
) -> dict[str, Any]:
    """The estimated cost of ``calls`` calls (>= 0) of ``model`` on ``backend``.

    Always: ``{"calls", "model", "backend", "usd_per_call", "usd", "price_source",
    "priced_by"}`` (``priced_by`` is ``"call"`` or ``"megapixel"``).

    Kontext (one call per job, stitched or not) adds the comparison of the two hosted
    routes: ``apiyi_usd`` (openai backend), ``official_usd`` (bfl backend),
    ``saving_usd`` and ``saving_percent`` (what APIYI saves against the official
    price, 0..100).

    FLUX.2 adds ``references`` (input images, default 2: a two-image edit sent as
    separate references), ``reference_mp`` (each, default 1), ``output_mp`` (default 1),
    ``billed_mp`` (whole megapixels per call) and ``official_usd``. ConfigError when
    the sizes break the model's limits (output above 4 MP, more references than it
    takes, inputs plus output above 9 MP).
    """
    _check_calls(calls)
    spec = model_spec(model)
    base: dict[str, Any] = {"calls": calls, "model": model, "backend": backend}

    def priced(per_call: float, by: str) -> dict[str, Any]:
        return {
            **base,
            "usd_per_call": per_call,
            "usd": round(calls * per_call, _DIGITS),
            "price_source": price_source(backend, model),
            "priced_by": by,
        }

    refs = 2 if references is None else references
    if isinstance(refs, bool) or not isinstance(refs, int) or not 0 <= refs <= spec.max_references:
        raise ConfigError(
            f"{model} takes 0..{spec.max_references} reference images, got {references!r}"
        )
    if not spec.is_flux2:
        per_call = price_per_call(backend, model)
        apiyi_each = PRICES[model]["openai"].per_call or 0.0
        official_each = PRICES[model]["official"].per_call or 0.0
        apiyi = round(calls * apiyi_each, _DIGITS)
        official = round(calls * official_each, _DIGITS)
        saving_percent = (
            round(100.0 * (official_each - apiyi_each) / official_each, 2) if official_each else 0.0
        )
        return {
            **priced(per_call, "call"),
            "apiyi_usd": apiyi,
            "official_usd": official,
            "saving_usd": round(official - apiyi, _DIGITS),
            "saving_percent": saving_percent,
        }
    out_mp = round(_megapixels(megapixels, "--megapixels"), 2)
    if not 0 < out_mp <= _MAX_OUTPUT_MP:
        raise ConfigError(f"--megapixels must be more than 0 and at most 4, got {megapixels!r}")
    ref_mp = round(_megapixels(reference_megapixels, "--reference-megapixels"), 2)
    if refs and ref_mp <= 0:
        raise ConfigError(
            f"--reference-megapixels must be more than 0, got {reference_megapixels!r}"
        )
    limit = MAX_TOTAL_PIXELS / MEGAPIXEL
    if out_mp + refs * ref_mp > limit + 1e-9:
        raise ConfigError(
            f"{refs} references of {ref_mp:g} MP plus a {out_mp:g} MP output are over "
            f"{model}'s {limit:g} MP limit"
        )
    inputs = [ref_mp] * refs
    per_call = price_usd(backend, model, output_mp=out_mp, input_mps=inputs)
    official_each = price_usd("bfl", model, output_mp=out_mp, input_mps=inputs)
    return {
        **priced(per_call, "megapixel"),
        "references": refs,
        "reference_mp": ref_mp,
        "output_mp": out_mp,
        "billed_mp": billed_megapixels(out_mp, inputs),
        "official_usd": round(calls * official_each, _DIGITS),
    }
