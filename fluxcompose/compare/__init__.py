"""Measure an output against its sources: SSIM, edit region, pattern, style, pHash, the
subject (DESIGN.md sections 8 and 10), and the recipe's checks.

The pattern is measured against the wearer's chest box and garment mask (from
:func:`fluxcompose.locate.locate` on the target, or a given box); checks defined relative to
the subject are not measured (``pass`` None, and ``passed`` false) when there is none,
never measured against the whole image instead.

Every box is ``[x0, y0, x1, y1]`` normalised 0..1 in the frame of the *aligned* output,
which is the target's frame (the output cut back to the target's cell when it kept the
canvas layout, then resized to the target's size).

Cost (bench/compare.py, one core per 1 MP output: 0.08-0.20 s with the chest given,
0.17-0.22 s with the subject located and a style source, across runs; the pose model and
SIFT are about half of it): SSIM at the target's size capped to ~1 MP, in bands of rows; the edit mask,
style statistics and pHash on one 320-pixel copy of output and target; the print looked
for only where the output changed, at its own resolution (a quick look at 640 pixels
first); the pattern's and the style source's features (and pHash) computed once and kept
by content hash.

The package, from the bottom up (each module imports only those above it in this list):

- :mod:`.imaging`: image inputs and conversions;
- :mod:`.metrics`: SSIM, the edit region, pHash;
- :mod:`.layout`: the canvas layout and alignment;
- :mod:`.pattern`: finding the print by its features, against the pattern's pyramid;
- :mod:`.correlate`: finding it by its colours (smooth all-over prints);
- :mod:`.search`: where to look (where the output changed, around the chest), and
  whether what matched is a transferred print;
- :mod:`.subject`: relating the print to the chest box and the garment mask;
- :mod:`.style`: colour and texture toward a style source;
- :mod:`.verdict`: the checks, their verdict and the report;
- this module: :func:`compare` and :func:`compare_files`, which run them all. They live
  here rather than in a submodule so that ``fluxcompose.compare.compare`` is the one
  function every caller (and a test's monkeypatch) reaches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..locate import Box, Subject, locate, parse_box
from ..sheet import draw_sheet
from .imaging import ImageLike, fit_area, fit_side, luma, resize, to_pil
from .layout import (
    LayoutView,
    align_output,
    aspect_mismatch,
    cut_output,
    default_target_index,
    find_canvas,
    load_layout,
    require_target_frame,
)
from .metrics import (
    EDIT_WORK_SIDE,
    edit_mask,
    edit_region,
    hamming,
    phash,
    region_from_mask,
    ssim,
    ssim_map,
    ssim_outside_edit,
    ssim_outside_mask,
)
from .pattern import MIN_INLIERS, locate_pattern, pattern_layer, pattern_model
from .pattern import _detector as _detector  # the tests ask which detector is in use
from .search import find_print
from .style import (
    TEXTURE_BINS,
    TEXTURE_SCALES,
    lab_stats,
    lab_stats_distance,
    style_metric,
    style_source,
    texture_distance,
    texture_features,
)
from .subject import placement_warning, print_on_mask, relate_pattern
from .verdict import (
    CHECKS,
    CheckSpec,
    CompareReport,
    checks_verdict,
    evaluate_checks,
    raise_for_checks,
    validate_checks,
)

__all__ = [
    "CHECKS",
    "MIN_INLIERS",
    "TEXTURE_BINS",
    "TEXTURE_SCALES",
    "CheckSpec",
    "CompareReport",
    "LayoutView",
    "align_output",
    "aspect_mismatch",
    "checks_verdict",
    "compare",
    "compare_files",
    "default_target_index",
    "edit_region",
    "evaluate_checks",
    "find_canvas",
    "hamming",
    "lab_stats",
    "lab_stats_distance",
    "load_layout",
    "locate_pattern",
    "luma",
    "pattern_layer",
    "phash",
    "print_on_mask",
    "raise_for_checks",
    "relate_pattern",
    "require_target_frame",
    "ssim",
    "ssim_map",
    "ssim_outside_edit",
    "ssim_outside_mask",
    "style_metric",
    "texture_distance",
    "texture_features",
    "to_pil",
    "validate_checks",
]

MAX_WORK_PIXELS = 1024 * 1024  # SSIM / alignment size cap (1 MP)


def compare(
    output: ImageLike,
    target: ImageLike,
    *,
    pattern: ImageLike | None = None,
    style: ImageLike | None = None,
    sources: Mapping[str, ImageLike] | None = None,
    composite: Any = None,
    target_index: int | None = None,
    checks: Mapping[str, Any] | None = None,
    subject_box: Box | str | Sequence[float] | None = None,
    placement: str | None = None,
    subject: Subject | None = None,
) -> CompareReport:
    """Measure ``output`` against ``target`` (and the optional pattern, style and other
    named sources), then apply ``checks``. Images may be PIL images, arrays or paths.
    ``composite`` (a Composite, layout dict or layout JSON path) lets an output that kept
    the canvas layout be cut back to the target's cell (``target_index``, default per
    :func:`default_target_index`).

    The subject (DESIGN.md s. 10) is ``subject`` when given (computed on the upright
    target; its boxes are normalised so any size works), else :func:`locate` runs on the
    aligned target with ``subject_box`` (``"x0,y0,x1,y1"`` or 4 numbers, normalised; an
    InputError when malformed). ``placement`` is the recipe's placement words (default
    the middle of the chest box).
    """
    if checks:
        validate_checks(checks)  # fail before the expensive part
    box = parse_box(subject_box) if subject_box is not None else None  # type: ignore[arg-type]
    out_img = to_pil(output)
    tgt_img = to_pil(target)
    pat_img = to_pil(pattern) if pattern is not None else None
    sty_img = to_pil(style) if style is not None else None

    cut, cut_info = cut_output(out_img, tgt_img, composite, target_index)
    # Compare at the target's size, capped to ~1 MP so a huge source costs no more.
    work = fit_area(tgt_img.width, tgt_img.height, MAX_WORK_PIXELS)
    tgt_rgb = np.asarray(tgt_img, dtype=np.uint8)
    tgt = resize(tgt_rgb, work)
    cut_rgb = np.asarray(cut, dtype=np.uint8)  # read only: shared with the print search
    out = resize(cut_rgb, work)

    if subject is None:
        subject = locate(tgt, subject_box=box)
    gmask = subject.garment_mask(work) if subject.found else None

    # Luminance once: SSIM's, and the print search's when it searches this same array.
    out_y = luma(out)
    ssim_value, smap = ssim(out_y, luma(tgt), full=True)
    # One small copy of each for the edit mask, the style statistics and the hash.
    small = fit_side(work[0], work[1], EDIT_WORK_SIDE)
    out_small, tgt_small = resize(out, small), resize(tgt, small)
    changed = edit_mask(out_small, tgt_small, native_width=work[0])
    region = region_from_mask(changed)
    metrics: dict[str, Any] = {
        "ssim": ssim_value,
        "edit_region": region,
        "ssim_outside_edit": ssim_outside_edit(None, None, region, smap=smap),
        "pattern": None,
        "style": None,
        "phash": None,
        "subject": subject.to_dict(),
        "ssim_outside_garment": ssim_outside_mask(smap, gmask) if gmask is not None else None,
        "aligned": {
            **cut_info,
            "output_size": [out_img.width, out_img.height],
            "size": [work[0], work[1]],
        },
    }
    warnings: list[str] = []
    known: dict[str, tuple[Image.Image, int]] = {}  # the sources' pHashes kept by content
    if pat_img is not None:
        # Match in the cut output at its own resolution (no up/down round trip).
        pat = np.asarray(pat_img, dtype=np.uint8)
        model = pattern_model(pat)
        known["pattern"] = (pat_img, model.phash)
        layer = model.layer
        found = find_print(
            cut_rgb,
            pat,
            changed,
            changed_box=region["box"],
            chest_box=subject.chest_box if subject.found else None,
            layer=layer,
            model=model,
            luma=out_y if out is cut_rgb else None,
        )
        x0, y0, x1, y1 = layer.box
        metrics["pattern"] = relate_pattern(
            found,
            subject,
            placement=placement,
            size=work,
            mask=gmask,
            design=layer.alpha[y0:y1, x0:x1],
            changed=changed,
        )
        warning = placement_warning(placement)
        if warning:
            warnings.append(warning)
    if sty_img is not None:
        source = style_source(np.asarray(sty_img, dtype=np.uint8))
        known["style"] = (sty_img, source.phash)
        metrics["style"] = style_metric(out_small, tgt_small, sty_img, source=source)

    named: dict[str, ImageLike] = {}
    for name, img in (sources or {}).items():
        named[name] = to_pil(img)
    named.setdefault("target", tgt_small)
    if pat_img is not None:
        named.setdefault("pattern", pat_img)
    if sty_img is not None:
        named.setdefault("style", sty_img)
    h_out = phash(out_small)
    hashes = {
        name: known[name][1] if name in known and known[name][0] is img else phash(img)
        for name, img in named.items()
    }
    metrics["phash"] = {name: hamming(h_out, h) for name, h in hashes.items()}

    result = evaluate_checks(metrics, checks)
    return CompareReport(
        metrics=metrics,
        checks=result["checks"],
        passed=result["passed"],
        aligned_output=_image(out, cut if out is cut_rgb else None),
        aligned_target=_image(tgt, tgt_img if tgt is tgt_rgb else None),
        subject=subject,
        warnings=warnings,
    )


def _image(pixels: np.ndarray[Any, Any], same: Image.Image | None) -> Image.Image:
    """``pixels`` (uint8 RGB) as a new PIL image: a copy of ``same`` when that is the image
    they were read from (a plain copy is ~3x cheaper than rebuilding it from the array)."""
    if same is None:
        return Image.fromarray(pixels)
    image = same.copy()
    image.info = {}  # as fromarray would give: no file metadata
    return image


def compare_files(
    output: ImageLike,
    target: ImageLike,
    *,
    pattern: ImageLike | None = None,
    style: ImageLike | None = None,
    sources: Mapping[str, ImageLike] | None = None,
    source_order: Sequence[str] | None = None,
    layout: Any = None,
    target_index: int | None = None,
    checks: Mapping[str, Any] | None = None,
    subject_box: Box | str | Sequence[float] | None = None,
    placement: str | None = None,
    subject: Subject | None = None,
    sheet: str | os.PathLike[str] | None = None,
    canvas: ImageLike | None = None,
) -> CompareReport:
    """Load the images (paths or URLs; PIL images and arrays pass through), run
    :func:`compare`, and draw the sheet to ``sheet`` when given (``report.sheet_path``).

    ``sources`` are further named sources (as in :func:`compare`); ``source_order`` is
    the recipe's source names, which order the sheet's panels. ``layout`` is a layout
    JSON path, dict, LayoutView or Composite; ``target_index`` defaults per
    :func:`default_target_index` with ``source_order``. ``canvas`` defaults to the
    canvas image next to a layout path (:func:`find_canvas`) or a Composite's image.
    """
    if checks:
        validate_checks(checks)
    view = load_layout(layout) if layout is not None else None
    if view is not None and target_index is None:
        target_index = default_target_index(view, source_order)
    out_img = to_pil(output)
    tgt_img = to_pil(target)
    pat_img = to_pil(pattern) if pattern is not None else None
    sty_img = to_pil(style) if style is not None else None
    named = {name: to_pil(img) for name, img in (sources or {}).items()}
    report = compare(
        out_img,
        tgt_img,
        pattern=pat_img,
        style=sty_img,
        sources=named or None,
        composite=view,
        target_index=target_index,
        checks=checks or None,
        subject_box=subject_box,
        placement=placement,
        subject=subject,
    )
    if sheet is not None:
        panels: dict[str, Image.Image] = dict(named)
        for name, img in (("pattern", pat_img), ("style", sty_img), ("target", tgt_img)):
            if img is not None:
                panels.setdefault(name, img)
        order = [n for n in (source_order or []) if n in panels]
        order += [n for n in panels if n not in order]
        canvas_img: Image.Image | None = None
        if canvas is not None:
            canvas_img = to_pil(canvas)
        elif isinstance(layout, str | os.PathLike):
            found = find_canvas(layout)
            canvas_img = to_pil(found) if found is not None else None
        elif getattr(layout, "image", None) is not None:
            canvas_img = to_pil(layout.image)
        report.sheet_path = draw_sheet(
            report,
            sources=[(n, panels[n]) for n in order],
            canvas=canvas_img,
            output=out_img,
            path=Path(sheet),
        )
    return report
