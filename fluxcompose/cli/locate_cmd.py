"""``fluxcompose locate``: where the wearer's torso garment and chest are (DESIGN.md s. 10)."""

from __future__ import annotations

from typing import Any

import click

from ._common import notice, print_json

__all__ = ["locate_cmd", "draw_overlay"]


def draw_overlay(image: Any, subject: Any) -> Any:
    """``image`` (PIL RGB) with the chest box (red), the garment's outline (green) and the
    face box (yellow) drawn on; a new image."""
    import cv2
    import numpy as np
    from PIL import Image

    arr = np.asarray(image.convert("RGB")).copy()
    h, w = arr.shape[:2]
    t = max(2, round(max(w, h) / 300))
    mask = subject.garment_mask((w, h))
    if mask is not None:
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(arr, contours, -1, (40, 220, 60), t, cv2.LINE_AA)
    for box, colour in ((subject.face_box, (250, 210, 20)), (subject.chest_box, (230, 30, 30))):
        if box is not None:
            x0, y0, x1, y1 = box
            p0 = (round(x0 * w), round(y0 * h))
            p1 = (round(x1 * w) - 1, round(y1 * h) - 1)
            cv2.rectangle(arr, p0, p1, colour, t, cv2.LINE_AA)
    return Image.fromarray(arr)


def _fmt_box(box: Any) -> str:
    return "none" if box is None else "[" + ", ".join(f"{v:.3f}" for v in box) + "]"


@click.command("locate")
@click.argument("image")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option(
    "--overlay",
    default=None,
    metavar="PNG",
    help="Write the image with the chest box (red), garment outline (green) and face box (yellow).",
)
@click.option(
    "--mask",
    "mask_path",
    default=None,
    metavar="PNG",
    help="Write the garment mask: 8-bit grey PNG at the image's size, white = garment.",
)
@click.option(
    "--subject-box",
    default=None,
    metavar="x0,y0,x1,y1",
    help="Give the chest box by hand (normalised 0..1); only the garment mask is estimated.",
)
def locate_cmd(
    image: str,
    as_json: bool,
    overlay: str | None,
    mask_path: str | None,
    subject_box: str | None,
) -> None:
    """Find the wearer's torso garment in IMAGE (a path or http(s) URL): the chest box (the
    torso's front, shoulders to waist, without the arms), the garment mask and the face.

    Boxes are x0,y0,x1,y1 normalised 0..1 on the upright image. When nothing is found
    confidently the answer is "not found" with the reason on stderr (exit 0: that is an
    answer, not an error, and --mask then writes nothing); pass --subject-box to give the
    chest by hand.

    \b
    Examples:
      fluxcompose locate samples/model.jpg
      fluxcompose locate photo.jpg --json --overlay found.png --mask garment.png
      fluxcompose locate photo.jpg --subject-box 0.2,0.3,0.8,0.9 --mask garment.png
    """
    from PIL import Image

    from ..images import load_image, save_image_atomic
    from ..locate import locate, parse_box

    box = parse_box(subject_box) if subject_box is not None else None
    img = load_image(image).image
    subject = locate(img, subject_box=box)

    if overlay is not None:
        save_image_atomic(draw_overlay(img, subject), overlay)
    full = subject.garment_mask(img.size) if mask_path is not None else None
    if mask_path is not None and full is not None:
        save_image_atomic(Image.fromarray(full.astype("uint8") * 255, "L"), mask_path)

    if as_json:
        print_json(subject.to_dict())
    elif subject.found:
        click.echo(f"found         yes, by {subject.method} (confidence {subject.confidence:.2f})")
        click.echo(f"chest box     {_fmt_box(subject.chest_box)}")
        click.echo(f"garment box   {_fmt_box(subject.garment_box)}")
        click.echo(f"face box      {_fmt_box(subject.face_box)}")
    else:
        click.echo("found         no")
    if not subject.found:
        notice(f"no subject found: {subject.reason}; give --subject-box x0,y0,x1,y1 to set it")
    if overlay is not None:
        notice(f"overlay written to {overlay}")
    if mask_path is not None:
        if full is not None:
            notice(f"mask written to {mask_path}")
        else:
            notice(f"no mask written to {mask_path}: there is no garment to mask")
