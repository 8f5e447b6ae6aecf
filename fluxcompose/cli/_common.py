"""Option types and small helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import geometry
from ..errors import InputError, RatioError


class RatioType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A ``W:H`` ratio inside 3:7..7:3, parsed at the edge into a :class:`geometry.Ratio`."""

    name = "RATIO"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, geometry.Ratio):
            return value
        try:
            return geometry.parse_ratio(str(value))
        except RatioError as exc:
            raise InputError(str(exc)) from None


class SubjectBoxType(click.ParamType):  # type: ignore[type-arg]
    """``x0,y0,x1,y1`` normalised on the target: the chest box, given by hand."""

    name = "x0,y0,x1,y1"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..locate import parse_box

        if isinstance(value, tuple):
            return value
        try:
            return parse_box(str(value))
        except InputError as exc:
            raise InputError(f"--subject-box: {exc}") from None


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def notice(message: str) -> None:
    """A line for the user on stderr (stdout stays clean for --json)."""
    click.echo(message, err=True)


def is_tty_stderr() -> bool:
    return sys.stderr.isatty()


# --------------------------------------------------------------------------- shared option bundles

_F = TypeVar("_F", bound=Callable[..., Any])


def backend_options(f: _F) -> _F:
    """--backend, --api-key, --base-url, --transport: which service, and how to reach it."""
    from ..backends import BACKENDS, TRANSPORTS

    for opt in reversed(
        [
            click.option(
                "--backend",
                type=click.Choice(list(BACKENDS)),
                default=None,
                help="local (offline preview), openai (OpenAI-compatible gateway, e.g. APIYI) "
                "or bfl (Black Forest Labs). Default: FLUXCOMPOSE_BACKEND, else by which key is set.",
            ),
            click.option(
                "--api-key",
                default=None,
                metavar="KEY",
                help="Key for the hosted backend (default: FLUXCOMPOSE_API_KEY or BFL_API_KEY).",
            ),
            click.option(
                "--base-url",
                default=None,
                metavar="URL",
                help="API base URL (default: FLUXCOMPOSE_BASE_URL / BFL_BASE_URL, else the vendor's).",
            ),
            click.option(
                "--transport",
                type=click.Choice(list(TRANSPORTS)),
                default="generations",
                show_default=True,
                help="openai backend: JSON generations or multipart edits.",
            ),
        ]
    ):
        f = opt(f)
    return f


def request_options(f: _F) -> _F:
    """The request fields shared by run and batch; unset means the recipe's default."""
    from ..backends.base import MODELS

    for opt in reversed(
        [
            click.option(
                "--model",
                type=click.Choice(list(MODELS)),
                default=None,
                help="Default: the recipe's, else flux-kontext-pro.",
            ),
            click.option(
                "--seed",
                type=click.IntRange(min=0),
                default=None,
                help="Seed for reproducible output.",
            ),
            click.option(
                "--aspect-ratio",
                default=None,
                metavar="W:H|canvas|match:NAME",
                help="Output aspect ratio (3:7 to 7:3). Default: the recipe's rule.",
            ),
            click.option(
                "--safety-tolerance",
                type=click.IntRange(0, 6),
                default=None,
                help="0 (strict) to 6 (permissive). Default 2.",
            ),
            click.option("--output-format", type=click.Choice(["png", "jpeg"]), default=None),
            click.option(
                "--canvas-format",
                type=click.Choice(["jpeg", "png"]),
                default=None,
                help="How the canvas is sent and saved: JPEG q95 4:4:4 (default) or lossless PNG.",
            ),
            click.option(
                "--prompt-upsampling/--no-prompt-upsampling",
                default=None,
                help="Let the provider expand the prompt.",
            ),
            click.option(
                "--prompt",
                default=None,
                metavar="TEXT",
                help="Replace the recipe's prompt template ({variables} still work).",
            ),
            click.option(
                "--var",
                "variables",
                multiple=True,
                metavar="KEY=VALUE",
                help="Set a recipe variable; repeatable.",
            ),
            click.option(
                "--subject-box",
                type=SubjectBoxType(),
                default=None,
                help="The chest box on the target, x0,y0,x1,y1 normalised 0..1, instead of "
                "detecting it (a subject_box column in PAIRS does this per row).",
            ),
            click.option(
                "--no-compare", is_flag=True, help="Skip comparing the output with its sources."
            ),
        ]
    ):
        f = opt(f)
    return f


def build_request_options(
    *,
    model: str | None,
    seed: int | None,
    aspect_ratio: str | None,
    safety_tolerance: int | None,
    output_format: str | None,
    prompt_upsampling: bool | None,
    canvas_format: str | None = None,
) -> Any:
    """RequestOptions from the parsed flags; a fixed ratio is validated here, at the edge."""
    from ..run import RequestOptions

    if aspect_ratio is not None:
        rule = aspect_ratio.strip()
        if rule != "canvas" and not rule.startswith("match:"):
            try:
                rule = str(geometry.parse_ratio(rule))
            except RatioError as exc:
                raise InputError(f"--aspect-ratio: {exc}") from None
        aspect_ratio = rule
    return RequestOptions(
        model=model,
        seed=seed,
        aspect_ratio=aspect_ratio,
        safety_tolerance=safety_tolerance,
        output_format=output_format,
        prompt_upsampling=prompt_upsampling,
        canvas_format=canvas_format,
    )


def parse_variables(items: tuple[str, ...]) -> dict[str, str]:
    """``--var key=value`` pairs as a dict."""
    from ..recipes import parse_vars

    return parse_vars(items)


def load_recipe_arg(value: str | None) -> Any:
    """A recipe by built-in name or path, or None."""
    if value is None:
        return None
    from ..recipes import load_recipe

    return load_recipe(value)


def choose_backend(
    backend: str | None, api_key: str | None, base_url: str | None, transport: str
) -> Any:
    """Resolve and build the backend; say on stderr which one is used."""
    from ..backends import make_backend, resolve_backend_name

    name = resolve_backend_name(backend)
    return make_backend(name, api_key=api_key, base_url=base_url, transport=transport)


def announce(backend: Any, model: str, calls: int, price_per_call: float) -> None:
    """One stderr line: backend, model and the estimated price; the local preview says what it is."""
    total = calls * price_per_call
    what = f"{calls} call{'s' if calls != 1 else ''}"
    notice(f"backend: {backend.name}, model: {model}, estimated cost: ${total:.3f} ({what})")
    text = getattr(backend, "NOTICE", None)
    if text:
        notice(str(text))
