"""``fluxcompose locate``: where the wearer's torso garment and chest are (DESIGN.md s. 10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InputError
from ._common import json_option, notice, print_json, subject_box_option

if TYPE_CHECKING:
    from ..locate import Box

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


def _out_names(images: tuple[str, ...]) -> list[str]:
    """A file name per image for ``--overlay``/``--mask`` folders: ``<stem>.png``, with
    ``-2``, ``-3``... when two images share a stem."""
    names: list[str] = []
    for image in images:
        stem = Path(image.split("?")[0].rstrip("/")).stem or "image"
        name, n = f"{stem}.png", 1
        while name in names:
            n += 1
            name = f"{stem}-{n}.png"
        names.append(name)
    return names


@click.command("locate")
@click.argument("images", nargs=-1, required=True, metavar="IMG [IMG...]")
@json_option("Print the result as JSON on stdout.")
@click.option(
    "--overlay",
    default=None,
    metavar="PNG|DIR",
    help="Write the image with the chest box (red), garment outline (green) and face box "
    "(yellow); a folder when several images are given.",
)
@click.option(
    "--mask",
    "mask_path",
    default=None,
    metavar="PNG|DIR",
    help="Write the garment mask: 8-bit grey PNG at the image's size, white = garment; a "
    "folder when several images are given.",
)
@subject_box_option(
    "Give the chest box by hand (normalised 0..1); only the garment mask is estimated."
)
def locate_cmd(
    images: tuple[str, ...],
    as_json: bool,
    overlay: str | None,
    mask_path: str | None,
    subject_box: Box | None,
) -> int:
    """Find the wearer's torso garment in each IMG (a path or http(s) URL): the chest box (the
    torso's front, shoulders to waist, without the arms), the garment mask and the face.

    Boxes are x0,y0,x1,y1 normalised 0..1 on the upright image. The method is pose (MediaPipe's
    pose model, shipped in the package), garment (a garment photographed alone), given
    (--subject-box) or none. When nothing is found confidently the answer is "not found" with
    the reason on stderr (exit 0: that is an answer, not an error, and --mask then writes
    nothing); pass --subject-box to give the chest by hand.

    With several images the output is JSON Lines, one object per image in order, each with
    "image"; --overlay and --mask name folders. An unreadable image gets its line with
    found false and the reason, and the exit code is 2 at the end. The model loads once.

    \b
    Examples:
      fluxcompose locate samples/model.jpg
      fluxcompose locate photo.jpg --json --overlay found.png --mask garment.png
      fluxcompose locate photo.jpg --subject-box 0.2,0.3,0.8,0.9 --mask garment.png
      fluxcompose locate shots/*.jpg --overlay overlays/ > subjects.jsonl
    """
    from ..locate import Subject

    several = len(images) > 1
    if several:
        for folder in (overlay, mask_path):
            if folder is not None:
                if Path(folder).exists() and not Path(folder).is_dir():
                    raise InputError(f"{folder} is not a folder (several images were given)")
                Path(folder).mkdir(parents=True, exist_ok=True)
        failed = 0
        for image, name in zip(images, _out_names(images), strict=True):
            try:
                data = _locate_one(
                    image,
                    subject_box,
                    None if overlay is None else Path(overlay) / name,
                    None if mask_path is None else Path(mask_path) / name,
                    label=f"{image}: ",
                )
            except InputError as exc:
                failed += 1
                unread = Subject(False, "none", 0.0, None, None, None, reason=str(exc))
                data = {"image": image, **unread.to_dict()}
                notice(str(exc) if image in str(exc) else f"{image}: {exc}")
            click.echo(json.dumps(data))
        return 2 if failed else 0
    data = _locate_one(
        images[0],
        subject_box,
        None if overlay is None else Path(overlay),
        None if mask_path is None else Path(mask_path),
        label="",
    )
    if as_json:
        print_json(data)
    elif data["found"]:
        click.echo(f"found         yes, by {data['method']} (confidence {data['confidence']:.2f})")
        click.echo(f"chest box     {_fmt_box(data['chest_box'])}")
        click.echo(f"garment box   {_fmt_box(data['garment_box'])}")
        click.echo(f"face box      {_fmt_box(data['face_box'])}")
    else:
        click.echo("found         no")
    return 0


def _locate_one(
    image: str, box: Box | None, overlay_to: Path | None, mask_to: Path | None, *, label: str
) -> dict[str, Any]:
    """Locate the subject on one image, write its overlay and mask, say so on stderr, and
    return its JSON object (``{"image", ...Subject.to_dict()}``)."""
    from PIL import Image

    from ..images import load_image, save_image_atomic
    from ..locate import locate

    img = load_image(image).image
    subject = locate(img, subject_box=box)
    name = label
    if overlay_to is not None:
        save_image_atomic(draw_overlay(img, subject), overlay_to)
    full = subject.garment_mask(img.size) if mask_to is not None else None
    if mask_to is not None and full is not None:
        save_image_atomic(Image.fromarray(full.astype("uint8") * 255, "L"), mask_to)
    if not subject.found:
        notice(
            f"{name}no subject found: {subject.reason}; give --subject-box x0,y0,x1,y1 to set it"
        )
    if overlay_to is not None:
        notice(f"{name}overlay written to {overlay_to}")
    if mask_to is not None:
        if full is not None:
            notice(f"{name}mask written to {mask_to}")
        else:
            notice(f"{name}no mask written to {mask_to}: there is no garment to mask")
    return {"image": image, **subject.to_dict()}
