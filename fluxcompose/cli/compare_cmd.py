"""``fluxcompose compare``: measure an output against its sources and apply recipe checks."""

from __future__ import annotations

from typing import Any

import click

from ..errors import RecipeError
from ..sheet import format_value, pattern_evidence
from ._common import json_option, notice, print_json, subject_box_option

__all__ = ["compare"]


def _canvas_for(layout_path: str) -> Any:
    """The canvas image next to a layout file, if there is one: ``OUT.layout.json`` ->
    ``OUT``; a run sidecar ``<job>.json`` -> ``<job>.canvas.<any ext>``. None otherwise."""
    from ..compare import find_canvas
    from ..images import load_image

    found = find_canvas(layout_path)
    return None if found is None else load_image(str(found)).image


def _verdict_text(c: dict[str, Any]) -> str:
    if c.get("pass") is None:
        return click.style("N/A ", fg="yellow")
    return click.style("PASS", fg="green") if c["pass"] else click.style("FAIL", fg="red")


def _summary(d: dict[str, Any]) -> list[str]:
    """A short human summary of a report dict, one metric per line."""
    outside = d.get("ssim_outside_edit")
    shown = format_value(outside) if outside is not None else "n/a, the edit covers the whole image"
    lines = [f"ssim          {format_value(d['ssim'])}   (outside the edit: {shown})"]
    region = d.get("edit_region") or {}
    if region.get("box"):
        lines.append(
            f"edit region   box {format_value(region['box'])}, area {format_value(region['area_fraction'])}"
        )
    else:
        lines.append("edit region   none (no change beyond noise)")
    subj = d.get("subject") or {}
    if subj.get("found"):
        lines.append(
            f"subject       {subj.get('method')}, chest box {format_value(subj.get('chest_box'))}, "
            f"confidence {format_value(subj.get('confidence'))}"
        )
        og = d.get("ssim_outside_garment")
        lines.append(
            "              ssim off the garment "
            + (format_value(og) if og is not None else "n/a (too few pixels off the garment)")
        )
    else:
        why = subj.get("reason")
        lines.append(
            "subject       none found" + (f" ({why})" if why else "") + "; give --subject-box"
        )
    p = d.get("pattern")
    if p is not None:
        if p["found"]:
            off = p.get("center_offset") or [0.0, 0.0]
            rel = p.get("relative_to", "image")
            lines.append(
                f"pattern       found {pattern_evidence(p)}, box {format_value(p['box'])}, "
                f"width {format_value(p['width_fraction'])} of the {rel}'s width, "
                f"offset [{off[0]:+.3f}, {off[1]:+.3f}] of the {rel}"
            )
            if rel == "chest":
                lines.append(
                    f"              {format_value(p.get('placement_distance'))} chest widths from the "
                    f"placement point, {format_value(p.get('on_garment'))} on the garment"
                )
        else:
            lines.append(f"pattern       not found ({pattern_evidence(p)})")
    s = d.get("style")
    if s is not None:
        lines.append(
            f"style         colour: Lab distance output->style {s['output_to_style']:.2f}, "
            f"target->style {s['target_to_style']:.2f}, closer: {format_value(s.get('colour_closer'))}"
        )
        lines.append(
            f"              texture: output->style {format_value(s.get('texture_output_to_style'))}, "
            f"target->style {format_value(s.get('texture_target_to_style'))}, "
            f"closer: {format_value(s.get('texture_closer'))}; restyled: {format_value(s['closer'])}"
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
        head = "checks        " if i == 0 else "              "
        why = f" [{c['reason']}]" if c.get("reason") else ""
        lines.append(
            f"{head}{_verdict_text(c)} {name}: {format_value(c['value'])} "
            f"(expected {format_value(c['expected'])}){why}"
        )
    if checks:
        failed = sum(1 for c in checks.values() if c["pass"] is False)
        unmeasured = sum(1 for c in checks.values() if c["pass"] is None)
        if not failed and not unmeasured:
            result = click.style("PASS", fg="green", bold=True)
        else:
            parts = []
            if failed:
                parts.append(f"{failed} of {len(checks)} checks failed")
            if unmeasured:
                parts.append(f"{unmeasured} not measured")
            result = click.style(f"FAIL ({', '.join(parts)})", fg="red", bold=True)
        lines.append(f"result        {result}")
    return lines


@click.command("compare")
@click.argument("output")
@click.option("--target", required=True, metavar="IMG", help="The image that was edited.")
@click.option(
    "--pattern", default=None, metavar="IMG", help="Pattern source: located in the output."
)
@click.option(
    "--style",
    default=None,
    metavar="IMG",
    help="Style source: colour and texture statistics compared.",
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
@subject_box_option("The chest box on the target, normalised 0..1 (replaces detection).")
@click.option(
    "--placement",
    default=None,
    metavar="TEXT",
    help="Where the print should be in the chest box (default: the recipe's placement "
    "variable, else middle), e.g. 'upper left'.",
)
@click.option("--sheet", default=None, metavar="PNG", help="Write a comparison sheet here.")
@json_option("Print the report as JSON on stdout.")
def compare(
    output: str,
    target: str,
    pattern: str | None,
    style: str | None,
    recipe: str | None,
    layout: str | None,
    target_index: int | None,
    subject_box: tuple[float, float, float, float] | None,
    placement: str | None,
    sheet: str | None,
    as_json: bool,
) -> None:
    """Measure OUTPUT against its sources: SSIM, where it changed, where the pattern went
    relative to the wearer's chest, whether it moved toward the style in colour and
    texture, and the recipe's checks.

    Exit 0 when the checks pass (or there are none), 1 when they fail or cannot be
    measured (e.g. no subject found: give --subject-box), 2 for bad input.

    \b
    Examples:
      fluxcompose compare out.png --target model.jpg --pattern print.png
      fluxcompose compare out.png --target model.jpg --pattern print.png \\
          --recipe pattern-transfer --layout canvas.png.layout.json --sheet sheet.png
      fluxcompose compare out.png --target photo.jpg --pattern print.png \\
          --subject-box 0.06,0.53,0.98,1.0 --placement "upper left"
      fluxcompose compare out.png --target photo.jpg --style painting.jpg --json
    """
    from .. import compare as compare_mod
    from ..images import load_image

    rec = None
    if recipe is not None:
        from ..recipes import load_recipe

        rec = load_recipe(recipe)
    if target_index is not None and layout is None:
        notice("note: --target-index has no effect without --layout")
    if placement is None and rec is not None:
        placement = rec.variables.get("placement")

    out_img = load_image(output).image
    tgt_img = load_image(target).image
    if layout is None and compare_mod.aspect_mismatch(out_img.size, tgt_img.size):
        notice(
            f"note: the output ({out_img.width}x{out_img.height}) and the target "
            f"({tgt_img.width}x{tgt_img.height}) differ in aspect; if the output kept the "
            "canvas layout, pass --layout"
        )
    report = compare_mod.compare_files(
        out_img,
        tgt_img,
        pattern=pattern,
        style=style,
        source_order=list(rec.sources) if rec is not None else None,
        layout=layout,
        target_index=target_index,
        checks=dict(rec.checks) if rec is not None and rec.checks else None,
        subject_box=subject_box,
        placement=placement,
        sheet=sheet,
        canvas=_canvas_for(layout) if layout is not None and sheet is not None else None,
    )
    for warning in report.warnings:
        notice(f"warning: {warning}")
    data = report.to_dict()
    if report.sheet_path is not None:
        data["sheet"] = str(report.sheet_path)

    if as_json:
        print_json(data)
    else:
        for line in _summary(data):
            click.echo(line)
        if report.sheet_path is not None:
            click.echo(f"sheet         {data['sheet']}")

    if rec is not None and not rec.checks:
        raise RecipeError(
            f"recipe {rec.name!r} has no [checks], so there is nothing to verify "
            "(the metrics are printed above)"
        )
    compare_mod.raise_for_checks(report)
