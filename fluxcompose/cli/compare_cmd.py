"""``fluxcompose compare``: measure an output against its sources and apply recipe checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import ChecksFailed, RecipeError
from ._common import notice, print_json

__all__ = ["compare"]


def _load(source: str) -> Any:
    """A PIL RGB image from a path or URL (ImageError, exit 2, when unreadable)."""
    from ..images import load_image

    return load_image(source).image


def _canvas_for(layout_path: str) -> Any:
    """The canvas image next to a layout file, if there is one: ``OUT.layout.json`` ->
    ``OUT``; a run sidecar ``<job>.json`` -> ``<job>.canvas.png``. None otherwise."""
    p = Path(layout_path)
    candidates = []
    if p.name.endswith(".layout.json"):
        candidates.append(p.with_name(p.name[: -len(".layout.json")]))
    elif p.suffix == ".json":
        candidates.append(p.with_name(p.stem + ".canvas.png"))
    for c in candidates:
        if c.is_file():
            return _load(str(c))
    return None


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _summary(d: dict[str, Any]) -> list[str]:
    """A short human summary of a report dict, one metric per line."""
    outside = d.get("ssim_outside_edit")
    shown = _fmt(outside) if outside is not None else "n/a, the edit covers the whole image"
    lines = [f"ssim          {_fmt(d['ssim'])}   (outside the edit: {shown})"]
    region = d.get("edit_region") or {}
    if region.get("box"):
        lines.append(
            f"edit region   box {_fmt(region['box'])}, area {_fmt(region['area_fraction'])}"
        )
    else:
        lines.append("edit region   none (no change beyond noise)")
    p = d.get("pattern")
    if p is not None:
        if p["found"]:
            off = p["center_offset"]
            lines.append(
                f"pattern       found, {p['inliers']} inliers, box {_fmt(p['box'])}, "
                f"width {_fmt(p['width_fraction'])}, offset [{off[0]:+.3f}, {off[1]:+.3f}]"
            )
        else:
            lines.append(f"pattern       not found ({p['inliers']} inliers)")
    s = d.get("style")
    if s is not None:
        lines.append(
            f"style         Lab distance output->style {s['output_to_style']:.2f}, "
            f"target->style {s['target_to_style']:.2f}, closer: {_fmt(s['closer'])}"
        )
    ph = d.get("phash") or {}
    if ph:
        lines.append(
            "phash         " + ", ".join(f"{k} {v}" for k, v in ph.items()) + " (bits of 64)"
        )
    cell = (d.get("aligned") or {}).get("cell")
    if cell is not None:
        lines.append(f"aligned       output cut back to layout cell {cell}")
    checks = d.get("checks") or {}
    for i, (name, c) in enumerate(checks.items()):
        verdict = click.style("PASS", fg="green") if c["pass"] else click.style("FAIL", fg="red")
        head = "checks        " if i == 0 else "              "
        lines.append(f"{head}{verdict} {name}: {_fmt(c['value'])} (expected {_fmt(c['expected'])})")
    if checks:
        failed = sum(1 for c in checks.values() if not c["pass"])
        result = (
            click.style("PASS", fg="green", bold=True)
            if not failed
            else click.style(f"FAIL ({failed} of {len(checks)} checks failed)", fg="red", bold=True)
        )
        lines.append(f"result        {result}")
    return lines


@click.command("compare")
@click.argument("output")
@click.option("--target", required=True, metavar="IMG", help="The image that was edited.")
@click.option(
    "--pattern", default=None, metavar="IMG", help="Pattern source: located in the output."
)
@click.option(
    "--style", default=None, metavar="IMG", help="Style source: colour statistics compared."
)
@click.option("--recipe", default=None, metavar="NAME|PATH", help="Apply this recipe's [checks].")
@click.option(
    "--layout",
    default=None,
    metavar="CANVAS.json",
    help="The canvas layout (OUT.layout.json or a run sidecar): an output that kept the "
    "canvas layout is cut back to the target's cell.",
)
@click.option(
    "--target-index",
    type=int,
    default=None,
    metavar="N",
    help="With --layout: the target's cell index (default: the cell named target, else the last).",
)
@click.option("--sheet", default=None, metavar="PNG", help="Write a comparison sheet here.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def compare(
    output: str,
    target: str,
    pattern: str | None,
    style: str | None,
    recipe: str | None,
    layout: str | None,
    target_index: int | None,
    sheet: str | None,
    as_json: bool,
) -> None:
    """Measure OUTPUT against its sources: SSIM, where it changed, where the pattern went,
    whether the colours moved toward the style, and the recipe's checks.

    Exit 0 when the checks pass (or there are none), 1 when they fail, 2 for bad input.

    \b
    Examples:
      fluxcompose compare out.png --target model.jpg --pattern print.png
      fluxcompose compare out.png --target model.jpg --pattern print.png \\
          --recipe pattern-transfer --layout canvas.png.layout.json --sheet sheet.png
      fluxcompose compare out.png --target photo.jpg --style painting.jpg --json
    """
    from .. import compare as compare_mod

    rec = None
    if recipe is not None:
        from ..recipes import load_recipe

        rec = load_recipe(recipe)
    if target_index is not None and layout is None:
        notice("note: --target-index has no effect without --layout")

    view = compare_mod.load_layout(layout) if layout is not None else None
    if view is not None and target_index is None:
        target_index = compare_mod.default_target_index(view, rec.sources if rec else None)

    out_img = _load(output)
    tgt_img = _load(target)
    pat_img = _load(pattern) if pattern is not None else None
    sty_img = _load(style) if style is not None else None
    checks = dict(rec.checks) if rec is not None else None
    if view is None and compare_mod.aspect_mismatch(out_img.size, tgt_img.size):
        notice(
            f"note: the output ({out_img.width}x{out_img.height}) and the target "
            f"({tgt_img.width}x{tgt_img.height}) differ in aspect; if the output kept the "
            "canvas layout, pass --layout"
        )

    report = compare_mod.compare(
        out_img,
        tgt_img,
        pattern=pat_img,
        style=sty_img,
        composite=view,
        target_index=target_index,
        checks=checks or None,
    )
    data = report.to_dict()

    if sheet is not None:
        from ..sheet import draw_sheet

        named = {"pattern": pat_img, "style": sty_img, "target": tgt_img}
        order = list(rec.sources) if rec is not None else []
        order += [n for n in ("pattern", "style", "target") if n not in order]
        sources = [(n, named[n]) for n in order if named.get(n) is not None]
        canvas = _canvas_for(layout) if layout is not None else None
        written = draw_sheet(
            report, sources=sources, canvas=canvas, output=out_img, path=Path(sheet)
        )
        data["sheet"] = str(written)

    if as_json:
        print_json(data)
    else:
        for line in _summary(data):
            click.echo(line)
        if sheet is not None:
            click.echo(f"sheet         {data['sheet']}")

    if rec is not None and not rec.checks:
        raise RecipeError(
            f"recipe {rec.name!r} has no [checks], so there is nothing to verify "
            "(the metrics are printed above)"
        )
    if not report.passed:
        failed = [name for name, c in report.checks.items() if not c["pass"]]
        raise ChecksFailed(f"recipe checks failed: {', '.join(failed)}")
