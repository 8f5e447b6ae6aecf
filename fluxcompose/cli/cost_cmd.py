"""``fluxcompose cost``: what N generations would cost, before paying for any."""

from __future__ import annotations

import click

from .. import pricing
from ..backends import BACKENDS
from ..models import MODEL_NAMES
from ._common import json_option, print_json


@click.command("cost")
@click.argument("calls", type=click.IntRange(min=0))
@click.option(
    "--model", type=click.Choice(list(MODEL_NAMES)), default="flux-kontext-pro", show_default=True
)
@click.option(
    "--backend",
    type=click.Choice(list(BACKENDS)),
    default=None,
    help="Default: the one that would be used (by which key is set).",
)
@click.option(
    "--references",
    type=click.IntRange(min=0),
    default=None,
    help="FLUX.2: input images per call (default 2). Kontext is one price per call.",
)
@click.option(
    "--megapixels",
    type=float,
    default=1.0,
    show_default=True,
    help="FLUX.2: the output's size in megapixels (1 MP = 1024x1024).",
)
@click.option(
    "--reference-megapixels",
    type=float,
    default=1.0,
    show_default=True,
    help="FLUX.2: each reference's size in megapixels.",
)
@json_option()
def cost_cmd(
    calls: int,
    model: str,
    backend: str | None,
    references: int | None,
    megapixels: float,
    reference_megapixels: float,
    as_json: bool,
) -> None:
    """Estimate the price of CALLS generations.

    Kontext is priced per call (APIYI and official side by side); FLUX.2 by the
    megapixel of output and input (official prices; a gateway whose FLUX.2 price is
    unknown is shown at the official price, and says so).

    \b
    Examples:
      fluxcompose cost 1000 --model flux-kontext-pro --backend openai
      fluxcompose cost 50 --model flux-kontext-max --json
      fluxcompose cost 1000 --model flux-2-pro --backend bfl --references 2 --megapixels 1
    """
    from ..backends import resolve_backend_name

    name = resolve_backend_name(backend)
    est = pricing.estimate(
        calls,
        model,
        name,
        references=references,
        megapixels=megapixels,
        reference_megapixels=reference_megapixels,
    )
    if as_json:
        print_json(est)
        return
    click.echo(
        f"{calls} x {model} on {name}: ${est['usd']:.2f} (${est['usd_per_call']:.3f} per call, "
        f"{est['price_source']} price)"
    )
    if est["priced_by"] == "call":
        click.echo(f"  APIYI (openai backend):  ${est['apiyi_usd']:.2f}")
        click.echo(f"  official (bfl backend):  ${est['official_usd']:.2f}")
        click.echo(f"  APIYI saves ${est['saving_usd']:.2f} ({est['saving_percent']:.1f}%)")
        return
    click.echo(
        f"  per call: {est['output_mp']:g} MP output + {est['references']} x "
        f"{est['reference_mp']:g} MP references = {est['billed_mp']} MP billed"
    )
    click.echo(f"  official (bfl backend):  ${est['official_usd']:.2f}")
