"""The comparison sheet: one PNG with the sources, the canvas and the output side by side,
the found pattern (green), the edit region (red, dashed), the chest box (orange, with the
placement point) and the garment's outline (magenta) drawn on the output, and the key
metrics and check results as text. A check that could not be measured (no subject) shows
as "n/a" in amber, never green. Sized to be read at 100 % zoom.

Just over 500 lines: the layout of the sheet and each overlay's drawing, one function each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import InputError
from .images import atomic_path

__all__ = ["draw_sheet", "format_value", "pattern_evidence"]

PANEL_H = 320  # pixels: sources and canvas
OUTPUT_H = 448  # pixels: the output is the subject, so it is shown larger
MAX_ROW_W = 2100  # wrap panels to a new row beyond this width
MARGIN = 24
GAP = 20
BG = (255, 255, 255)
INK = (33, 37, 41)
MUTED = (108, 117, 125)
PASS_C = (25, 135, 84)
FAIL_C = (200, 35, 51)
NEUTRAL_C = (90, 98, 112)
PATTERN_C = (0, 200, 70)
EDIT_C = (230, 30, 30)
CELL_C = (40, 110, 250)
HALO_C = (20, 20, 20)
PATTERN_TEXT_C = (10, 120, 50)
EDIT_TEXT_C = (180, 30, 30)
WARN_C = (176, 106, 0)  # amber: not measured
CHEST_C = (255, 140, 0)
GARMENT_C = (220, 0, 220)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font(size: int) -> Font:
    # Pillow >= 10.1 ships a scalable default font; older versions fall back to bitmap.
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return ImageFont.load_default()


def _text_w(font: Font, text: str) -> int:
    return int(font.getlength(text))


def pattern_evidence(pattern: Mapping[str, Any]) -> str:
    """What a compare ``pattern`` result rests on, in words: ``"by 37 matched features"``,
    ``"by colour, correlation 0.91"``, or for a miss the evidence that fell short
    (``"12 matched features, colour correlation 0.62"``). One wording for the sheet and
    the CLI."""
    inliers = int(pattern.get("inliers") or 0)
    if pattern.get("found"):
        if pattern.get("method") == "colour":
            return f"by colour, correlation {format_value(pattern.get('score'))}"
        return f"by {inliers} matched features"
    parts = [f"{inliers} matched features"]
    if pattern.get("colour_score") is not None:
        parts.append(f"colour correlation {format_value(pattern.get('colour_score'))}")
    if pattern.get("reason"):
        parts.append(str(pattern["reason"]))
    return ", ".join(parts)


def format_value(v: Any, digits: int = 3) -> str:
    """A report value as the sheet and the CLI show it: ``n/a`` for None, ``yes``/``no``,
    floats to ``digits`` decimals, lists and tuples as ``[a, b]``, anything else as ``str``."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(format_value(x, digits) for x in v) + "]"
    return str(v)


def _signed(v: float) -> str:
    return f"{v + 0.0:+.3f}".replace("-0.000", "+0.000")


def _thumb(image: Image.Image, height: int) -> Image.Image:
    w = max(1, round(image.width * height / image.height))
    # Very wide images are capped so one panel cannot take the whole row.
    if w > MAX_ROW_W - 2 * MARGIN:
        w = MAX_ROW_W - 2 * MARGIN
        height = max(1, round(image.height * w / image.width))
    return image.convert("RGB").resize((w, height), Image.Resampling.LANCZOS)


def _dashed_rect(
    draw: ImageDraw.ImageDraw,
    box: Sequence[float],
    color: tuple[int, int, int],
    width: int = 3,
    dash: int = 12,
) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay), (bx, by) in (
        ((x0, y0), (x1, y0)),
        ((x1, y0), (x1, y1)),
        ((x1, y1), (x0, y1)),
        ((x0, y1), (x0, y0)),
    ):
        length = max(abs(bx - ax), abs(by - ay))
        n = max(1, int(length // dash))
        for i in range(0, n, 2):
            t0, t1 = i / n, min(1.0, (i + 1) / n)
            draw.line(
                [
                    (ax + (bx - ax) * t0, ay + (by - ay) * t0),
                    (ax + (bx - ax) * t1, ay + (by - ay) * t1),
                ],
                fill=color,
                width=width,
            )


def _report_parts(report: Any) -> tuple[dict[str, Any], Image.Image | None, Any]:
    """(JSON-like dict, aligned output image or None, Subject or None) from a
    CompareReport or its dict."""
    if hasattr(report, "to_dict"):
        return (
            report.to_dict(),
            getattr(report, "aligned_output", None),
            getattr(report, "subject", None),
        )
    if isinstance(report, Mapping):
        return dict(report), None, None
    raise InputError(f"not a compare report: {type(report).__name__}")


def _annotate_output(
    output: Image.Image, data: Mapping[str, Any], height: int, subject: Any = None
) -> Image.Image:
    """The output thumbnail with the edit region, the chest box, the garment's outline (from
    ``subject``'s mask, when given), the pattern and (for a cut) the cell drawn.

    Boxes in the report are normalised in the target's frame; when the output kept the
    canvas layout they are mapped into the measured cell (``aligned.cell_box``).
    """
    thumb = _thumb(output, height)
    tw, th = thumb.size
    aligned = data.get("aligned") or {}
    cell_box = aligned.get("cell_box")
    # If the caller passed the raw two-panel output, map into the cell; if it passed the
    # aligned output (aspect of the target frame), the boxes map onto the whole image.
    cx0, cy0, cx1, cy1 = cell_box if cell_box and _is_raw(output, aligned) else (0.0, 0.0, 1.0, 1.0)

    def px(box: Sequence[float]) -> list[float]:
        return [
            (cx0 + box[0] * (cx1 - cx0)) * tw,
            (cy0 + box[1] * (cy1 - cy0)) * th,
            (cx0 + box[2] * (cx1 - cx0)) * tw - 1,
            (cy0 + box[3] * (cy1 - cy0)) * th - 1,
        ]

    draw = ImageDraw.Draw(thumb)
    if (cx0, cy0, cx1, cy1) != (0.0, 0.0, 1.0, 1.0):
        _dashed_rect(draw, px([0, 0, 1, 1]), CELL_C, width=2, dash=6)
    region = data.get("edit_region") or {}
    if region.get("box"):
        draw.rectangle(px(region["box"]), outline=HALO_C, width=1)  # keeps the dashes visible
        _dashed_rect(draw, px(region["box"]), EDIT_C, width=3)
    subj = data.get("subject") or {}
    if subj.get("found"):
        if subject is not None and getattr(subject, "found", False):
            cw = max(1, round((cx1 - cx0) * tw))
            ch = max(1, round((cy1 - cy0) * th))
            mask = subject.garment_mask((cw, ch))
            if mask is not None and mask.any():
                contours, _ = cv2.findContours(
                    mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
                )
                ox, oy = cx0 * tw, cy0 * th
                for c in contours:
                    if len(c) < 2:
                        continue
                    pts = [(ox + float(p[0][0]), oy + float(p[0][1])) for p in c]
                    draw.line([*pts, pts[0]], fill=HALO_C, width=4)
                    draw.line([*pts, pts[0]], fill=GARMENT_C, width=2)
        if subj.get("chest_box"):
            b = px(subj["chest_box"])
            draw.rectangle(b, outline=HALO_C, width=5)
            draw.rectangle(b, outline=CHEST_C, width=3)
        point = (data.get("pattern") or {}).get("placement_point")
        if point and subj.get("chest_box"):
            x = (cx0 + point[0] * (cx1 - cx0)) * tw
            y = (cy0 + point[1] * (cy1 - cy0)) * th
            draw.ellipse([x - 6, y - 6, x + 6, y + 6], outline=HALO_C, width=4)
            draw.ellipse([x - 6, y - 6, x + 6, y + 6], outline=CHEST_C, width=2)
    pattern = data.get("pattern") or {}
    if pattern.get("found") and pattern.get("box"):
        b = px(pattern["box"])
        mx, my = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        cross = [[(mx - 9, my), (mx + 9, my)], [(mx, my - 9), (mx, my + 9)]]
        corners = pattern.get("corners")
        pts = [
            ((cx0 + u * (cx1 - cx0)) * tw, (cy0 + v * (cy1 - cy0)) * th) for u, v in corners or []
        ]
        # A dark halo under each green stroke so it reads on any background.
        for color, extra in ((HALO_C, 2), (PATTERN_C, 0)):
            if pts:
                draw.line([*pts, pts[0]], fill=color, width=3 + extra, joint="curve")
            draw.rectangle(b, outline=color, width=1 + extra)
            for seg in cross:  # the box centre: the offset from the image centre shows
                draw.line(seg, fill=color, width=2 + extra)
    return thumb


def _is_raw(output: Image.Image, aligned: Mapping[str, Any]) -> bool:
    """Whether ``output`` is the raw output that kept the canvas layout (its aspect is the
    compared output's), rather than the cut and aligned image (the target's aspect)."""
    raw, frame = aligned.get("output_size"), aligned.get("size")
    if not aligned.get("cell_box") or not raw or not frame:
        return False
    a = math.log(output.width / output.height)
    return abs(a - math.log(raw[0] / raw[1])) < abs(a - math.log(frame[0] / frame[1]))


def _metric_lines(data: Mapping[str, Any]) -> list[tuple[str, tuple[int, int, int]]]:
    lines: list[tuple[str, tuple[int, int, int]]] = []
    lines.append((f"SSIM (output vs target): {format_value(data.get('ssim'))}", INK))
    outside = data.get("ssim_outside_edit")
    why = " (the edit covers the whole image)" if outside is None else ""
    lines.append((f"SSIM outside edit: {format_value(outside)}{why}", INK))
    region = data.get("edit_region") or {}
    if region.get("box"):
        lines.append(
            (
                f"edit region: box {format_value(region['box'], 2)}, area {format_value(region.get('area_fraction'))}",
                EDIT_TEXT_C,
            )
        )
    else:
        lines.append(("edit region: none (no change beyond noise)", INK))
    subj = data.get("subject") or {}
    if subj.get("found"):
        lines.append(
            (
                f"subject: {subj.get('method')}, chest box {format_value(subj.get('chest_box'), 2)}, "
                f"confidence {format_value(subj.get('confidence'), 2)}",
                INK,
            )
        )
        og = data.get("ssim_outside_garment")
        why = " (too few pixels off the garment)" if og is None else ""
        lines.append((f"SSIM off the garment: {format_value(og)}{why}", INK))
    else:
        lines.append(
            ("subject: NONE found (give --subject-box); chest checks not measured", WARN_C)
        )
    pattern = data.get("pattern")
    if pattern is None:
        lines.append(("pattern: not measured (no pattern image)", MUTED))
    elif pattern.get("found"):
        off = pattern.get("center_offset") or [0.0, 0.0]
        rel = pattern.get("relative_to", "image")
        lines.append(
            (
                f"pattern: found {pattern_evidence(pattern)}, width "
                f"{format_value(pattern.get('width_fraction'))} of the {rel}, "
                f"offset ({_signed(off[0])}, {_signed(off[1])}) (relative_to {rel})",
                PATTERN_TEXT_C,
            )
        )
        if rel == "chest":
            lines.append(
                (
                    f"pattern: on the garment {format_value(pattern.get('on_garment'))}, "
                    f"{format_value(pattern.get('placement_distance'))} chest widths from the placement",
                    PATTERN_TEXT_C,
                )
            )
    else:
        lines.append((f"pattern: NOT found ({pattern_evidence(pattern)})", FAIL_C))
    style = data.get("style")
    if style is None:
        lines.append(("style: not measured (no style image)", MUTED))
    else:
        lines.append(
            (
                f"style colour (Lab stats): output {format_value(style.get('output_to_style'), 1)}, "
                f"target {format_value(style.get('target_to_style'), 1)}, "
                f"closer: {format_value(style.get('colour_closer'))}",
                INK,
            )
        )
        lines.append(
            (
                f"style texture: output {format_value(style.get('texture_output_to_style'), 2)}, "
                f"target {format_value(style.get('texture_target_to_style'), 2)}, "
                f"closer: {format_value(style.get('texture_closer'))}; "
                f"restyled: {format_value(style.get('closer'))}",
                INK,
            )
        )
    ph = data.get("phash") or {}
    if ph:
        lines.append(
            ("pHash distance (0..64): " + ", ".join(f"{k} {v}" for k, v in ph.items()), INK)
        )
    return lines


def _check_lines(data: Mapping[str, Any]) -> list[tuple[str, tuple[int, int, int]]]:
    checks = data.get("checks") or {}
    if not checks:
        return [("no checks (no recipe, or a recipe without [checks])", MUTED)]
    out = []
    for name, c in checks.items():
        if c.get("pass") is None:
            reason = str(c.get("reason") or "")
            short = "no subject" if "subject" in reason else (reason or "not measured")
            out.append(
                (
                    f"n/a ({short})  {name} (expected {format_value(c.get('expected'), 2)})",
                    WARN_C,
                )
            )
            continue
        verdict = "PASS" if c["pass"] is True else "FAIL"
        out.append(
            (
                f"{verdict}  {name}: {format_value(c.get('value'))} (expected {format_value(c.get('expected'), 2)})",
                PASS_C if c["pass"] is True else FAIL_C,
            )
        )
    return out


def draw_sheet(
    report: Any,
    *,
    sources: Sequence[tuple[str, Image.Image]],
    canvas: Image.Image | None,
    output: Image.Image | None,
    path: str | Path,
) -> Path:
    """Draw the comparison sheet for ``report`` (a CompareReport or its ``to_dict()``) and
    write it to ``path`` as PNG, atomically. ``output`` may be the raw output (even one
    that kept the canvas layout) or None to use the report's aligned output. Returns
    the path written."""
    data, aligned, subject = _report_parts(report)
    shown = output if output is not None else aligned
    if shown is None:
        raise InputError("draw_sheet needs the output image")

    title_f, head_f, body_f, cap_f = _font(28), _font(21), _font(18), _font(16)

    panels: list[tuple[Image.Image, str]] = []
    for label, img in sources:
        panels.append((_thumb(img, PANEL_H), f"{label}  {img.width}x{img.height}"))
    if canvas is not None:
        panels.append((_thumb(canvas, PANEL_H), f"canvas  {canvas.width}x{canvas.height}"))
    out_caption = f"output  {shown.width}x{shown.height}"
    cell = (data.get("aligned") or {}).get("cell")
    if cell is not None:
        out_caption += f"  (measured: cell {cell})"
    out_panel = (_annotate_output(shown, data, OUTPUT_H, subject), out_caption)
    aligned_info = data.get("aligned") or {}
    shown_items = {
        "pattern": bool((data.get("pattern") or {}).get("found")),
        "edit": bool((data.get("edit_region") or {}).get("box")),
        "cell": _is_raw(shown, aligned_info),
        "chest": bool((data.get("subject") or {}).get("chest_box")),
        "garment": bool(
            subject is not None
            and getattr(subject, "found", False)
            and getattr(subject, "mask", None) is not None
        ),
    }
    text = _text_block(data, head_f, body_f, cap_f, shown_items)

    # Sources and canvas flow into rows no wider than MAX_ROW_W; then the output with the
    # text beside it when that fits, else below it.
    rows: list[list[tuple[Image.Image, str]]] = [[]]
    row_w = MARGIN
    for p in panels:
        w = _panel_w(p, cap_f)
        if rows[-1] and row_w + w + MARGIN > MAX_ROW_W:
            rows.append([])
            row_w = MARGIN
        rows[-1].append(p)
        row_w += w + GAP
    rows = [r for r in rows if r]
    row_widths = [
        2 * MARGIN + sum(_panel_w(p, cap_f) for p in r) + GAP * (len(r) - 1) for r in rows
    ]
    out_w = _panel_w(out_panel, cap_f)
    side_by_side = 2 * MARGIN + out_w + 2 * GAP + text.width <= max([*row_widths, MAX_ROW_W])
    if side_by_side:
        bottom_w = 2 * MARGIN + out_w + 2 * GAP + text.width
        bottom_h = max(out_panel[0].height + CAPTION_H, text.height)
    else:
        bottom_w = 2 * MARGIN + max(out_w, text.width)
        bottom_h = out_panel[0].height + CAPTION_H + GAP + text.height
    width = max([*row_widths, bottom_w, 900])
    title_h = 64
    rows_h = sum(max(p[0].height for p in r) + CAPTION_H + GAP for r in rows)
    height = title_h + rows_h + bottom_h + MARGIN

    sheet = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(sheet)

    # Title bar with the verdict.
    checks = data.get("checks") or {}
    if not checks:
        verdict, vcol = "NO CHECKS", NEUTRAL_C
    elif any(c.get("pass") is False for c in checks.values()):
        verdict, vcol = "FAIL", FAIL_C
    elif any(c.get("pass") is not True for c in checks.values()):
        verdict, vcol = "NOT MEASURED", WARN_C
    elif data.get("passed"):
        verdict, vcol = "PASS", PASS_C
    else:
        verdict, vcol = "FAIL", FAIL_C
    draw.rectangle([0, 0, width, title_h - 12], fill=(241, 243, 245))
    draw.text((MARGIN, 26), "fluxcompose compare", font=title_f, fill=INK, anchor="lm")
    badge_w = _text_w(title_f, verdict) + 32
    draw.rounded_rectangle([width - MARGIN - badge_w, 7, width - MARGIN, 45], radius=8, fill=vcol)
    draw.text(
        (width - MARGIN - badge_w / 2, 26), verdict, font=title_f, fill=(255, 255, 255), anchor="mm"
    )

    y = title_h
    for r in rows:
        x = MARGIN
        for p in r:
            _paste_panel(sheet, draw, p, x, y, cap_f)
            x += _panel_w(p, cap_f) + GAP
        y += max(p[0].height for p in r) + CAPTION_H + GAP

    _paste_panel(sheet, draw, out_panel, MARGIN, y, cap_f)
    if side_by_side:
        sheet.paste(text, (MARGIN + out_w + 2 * GAP, y))
    else:
        sheet.paste(text, (MARGIN, y + out_panel[0].height + CAPTION_H + GAP))

    return _save_png_atomic(sheet, Path(path))


CAPTION_H = 28


def _panel_w(panel: tuple[Image.Image, str], font: Font) -> int:
    return max(panel[0].width, _text_w(font, panel[1]))


def _paste_panel(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    panel: tuple[Image.Image, str],
    x: int,
    y: int,
    font: Font,
) -> None:
    img, cap = panel
    sheet.paste(img, (x, y))
    draw.rectangle([x - 1, y - 1, x + img.width, y + img.height], outline=(206, 212, 218))
    draw.text((x, y + img.height + 5), cap, font=font, fill=MUTED)


def _text_block(
    data: Mapping[str, Any], head_f: Font, body_f: Font, cap_f: Font, shown: Mapping[str, bool]
) -> Image.Image:
    """The legend, metrics and checks as one image (white background)."""
    metric_lines = _metric_lines(data)
    check_lines = _check_lines(data)
    line_h = 28
    legend = [
        item
        for key, item in (
            ("pattern", (PATTERN_C, "pattern found (corners, box, centre)", False)),
            ("edit", (EDIT_C, "edit region", True)),
            ("cell", (CELL_C, "measured cell", True)),
            ("chest", (CHEST_C, "chest box, placement point", False)),
            ("garment", (GARMENT_C, "garment outline", False)),
        )
        if shown.get(key)
    ]
    legend_w = sum(36 + _text_w(cap_f, t) + 24 for _, t, _ in legend)
    w = max([legend_w, *(_text_w(body_f, t) for t, _ in metric_lines + check_lines)]) + 8
    h = 34 + (2 + len(metric_lines) + len(check_lines)) * line_h + 16
    block = Image.new("RGB", (w, h), BG)
    draw = ImageDraw.Draw(block)
    x = 0
    for color, label, dashed in legend:
        if dashed:
            _dashed_rect(draw, [x, 5, x + 28, 21], color, width=2, dash=5)
        else:
            draw.rectangle([x, 5, x + 28, 21], outline=color, width=3)
        draw.text((x + 36, 2), label, font=cap_f, fill=INK)
        x += 36 + _text_w(cap_f, label) + 24
    y = 34
    draw.text((0, y), "Metrics", font=head_f, fill=INK)
    y += line_h
    for t, color in metric_lines:
        draw.text((0, y), t, font=body_f, fill=color)
        y += line_h
    y += 16
    draw.text((0, y), "Checks", font=head_f, fill=INK)
    y += line_h
    for t, color in check_lines:
        draw.text((0, y), t, font=body_f, fill=color)
        y += line_h
    return block


def _save_png_atomic(image: Image.Image, path: Path) -> Path:
    """Write a PNG next to ``path`` under a temporary name, then rename it into place."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write sheet {str(path)!r}: folder {str(folder)!r} does not exist")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=False)
    return path
