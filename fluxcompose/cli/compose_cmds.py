"""``fluxcompose size`` and ``fluxcompose compose``."""

from __future__ import annotations

from pathlib import Path

import click

from .. import geometry
from ..compose import MAX_SOURCES, compose
from ..errors import InputError, RatioError
from ._common import RatioType, json_option, print_json


@click.command("size")
@click.argument("ratio", type=RatioType())
@click.option(
    "--megapixels",
    "-m",
    type=float,
    default=1.0,
    show_default=True,
    help="Budget in units of 1024x1024 pixels.",
)
@click.option(
    "--multiple",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Both sides are multiples of this.",
)
@click.option(
    "--bucket", is_flag=True, help="Snap to the nearest Kontext preferred resolution instead."
)
@json_option("Print JSON.")
def size_cmd(
    ratio: geometry.Ratio, megapixels: float, multiple: int, bucket: bool, as_json: bool
) -> None:
    """Print WIDTHxHEIGHT for RATIO (like 16:9) at about one megapixel.

    \b
    Examples:
      fluxcompose size 16:9               # 1392x784
      fluxcompose size 16:9 --bucket      # 1392x752, what Kontext returns
      fluxcompose size 3:7 --megapixels 0.5 --json
    """
    if bucket:
        width, height = geometry.bucket_for(ratio)
    else:
        try:
            width, height = geometry.size_for(ratio, megapixels, multiple)
        except RatioError as exc:
            raise InputError(str(exc)) from None
    if as_json:
        print_json(
            {
                "ratio": str(ratio),
                "width": width,
                "height": height,
                "megapixels": round(width * height / geometry.MEGAPIXEL, 4),
            }
        )
    else:
        click.echo(f"{width}x{height}")


@click.command("compose")
@click.argument("images", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The canvas to write: .png or .jpg.",
)
@click.option("--layout", type=click.Choice(geometry.LAYOUTS), default="auto", show_default=True)
@click.option(
    "--gutter",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Space between cells, in canvas pixels.",
)
@click.option(
    "--gutter-color", default=None, help="Colour of the gutters (default: the background)."
)
@click.option(
    "--background", default="white", show_default=True, help="Padding and alpha background."
)
@click.option("--labels", is_flag=True, help='Label each cell "1", "2", ... in its corner.')
@click.option(
    "--label",
    "label_texts",
    multiple=True,
    metavar="TEXT",
    help="A label text, once per cell in order (implies --labels).",
)
@click.option("--outline", is_flag=True, help="Draw a thin border around each cell.")
@click.option("--megapixels", type=float, default=1.0, show_default=True)
@click.option("--no-upscale", is_flag=True, help="Keep small sources at native scale.")
@json_option("Also print the layout to stdout.")
def compose_cmd(
    images: tuple[str, ...],
    output: Path,
    layout: str,
    gutter: int,
    gutter_color: str | None,
    background: str,
    labels: bool,
    label_texts: tuple[str, ...],
    outline: bool,
    megapixels: float,
    no_upscale: bool,
    as_json: bool,
) -> None:
    """Compose 1 to 9 IMAGES (paths or http(s) URLs) into one canvas.

    Writes OUTPUT and OUTPUT.layout.json (the cells, to cut the output back).

    \b
    Examples:
      fluxcompose compose pattern.png shirt.jpg -o canvas.png
      fluxcompose compose a.jpg b.jpg c.jpg d.jpg --layout grid --gutter 8 --labels
    """
    if len(images) > MAX_SOURCES:
        raise InputError(f"compose takes 1 to {MAX_SOURCES} images, got {len(images)}")
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"{output}: the output must end in .png, .jpg or .jpeg")
    if output.exists() and output.is_dir():
        raise InputError(f"{output}: is a directory")
    label_arg: bool | list[str] = list(label_texts) if label_texts else labels
    composite = compose(
        list(images),
        layout=layout,
        gutter=gutter,
        gutter_color=gutter_color,
        background=background,
        labels=label_arg,
        outline=outline,
        megapixels=megapixels,
        upscale=not no_upscale,
        workers=2,
    )
    # Only now, with a canvas in hand: bad input must leave nothing behind, not even a folder.
    output.parent.mkdir(parents=True, exist_ok=True)
    composite.save(output)
    if as_json:
        print_json(composite.to_dict())
    click.echo(
        f"wrote {output} ({composite.width}x{composite.height}, {composite.aspect_ratio}, "
        f"{composite.layout}) and {output.name}.layout.json",
        err=True,
    )
