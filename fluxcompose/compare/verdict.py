"""The verdict: the recipe checks compare knows (:data:`CHECKS`), applying them to the
metrics, the one-line failure message, and the report that carries it all.

A check defined relative to the subject is not measured (``pass`` None, with a reason)
when there is none, never measured against the whole image instead: a false pass is the
worst thing compare can say.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ChecksFailed, InputError, RecipeError
from ..locate import Subject

__all__ = [
    "CHECKS",
    "CheckSpec",
    "CompareReport",
    "checks_verdict",
    "evaluate_checks",
    "raise_for_checks",
    "validate_checks",
]


@dataclass(frozen=True)
class CheckSpec:
    """One recipe check: what it reads, what its expected value looks like.

    ``needs_subject``: the check is defined relative to the subject (the chest box or
    the garment mask); without one it is not measured (``pass`` None), never measured
    against the whole image instead.
    """

    kind: str  # "bool" | "min" | "max" | "range"
    metric: str  # the metric it needs: "pattern", "ssim", ...
    description: str
    value: Callable[[Mapping[str, Any]], Any]
    needs_subject: bool = False


NO_SUBJECT_REASON = "no subject found on the target: give --subject-box x0,y0,x1,y1"
PATTERN_MISSING_REASON = "the pattern was not found in the output"


def _get(metrics: Mapping[str, Any], key: str, sub: str | None = None) -> Any:
    v = metrics.get(key)
    if sub is None or v is None:
        return v
    return v.get(sub) if isinstance(v, Mapping) else None


def _chest(metrics: Mapping[str, Any], sub: str) -> Any:
    """A pattern value only when it is relative to the chest (never the image's)."""
    if _get(metrics, "pattern", "relative_to") != "chest":
        return None
    return _get(metrics, "pattern", sub)


def _offset_len(metrics: Mapping[str, Any]) -> float | None:
    off = _chest(metrics, "center_offset")
    return None if off is None else float(math.hypot(off[0], off[1]))


def _subject_found(metrics: Mapping[str, Any]) -> bool:
    subject = metrics.get("subject")
    return bool(isinstance(subject, Mapping) and subject.get("found"))


CHECKS: dict[str, CheckSpec] = {
    "pattern_found": CheckSpec(
        "bool",
        "pattern",
        "the pattern is found in the output",
        lambda m: _get(m, "pattern", "found"),
    ),
    "pattern_inliers_min": CheckSpec(
        "min",
        "pattern",
        "at least this many RANSAC inliers",
        lambda m: _get(m, "pattern", "inliers"),
    ),
    "pattern_width_fraction": CheckSpec(
        "range",
        "pattern",
        "the pattern's box width, as a fraction of the chest's width",
        lambda m: _chest(m, "width_fraction"),
        needs_subject=True,
    ),
    "pattern_center_offset_max": CheckSpec(
        "max",
        "pattern",
        "|[dx, dy]| from the placement point to the pattern's centre, in chest width/height",
        _offset_len,
        needs_subject=True,
    ),
    "pattern_placement": CheckSpec(
        "max",
        "pattern",
        "distance from the placement point to the pattern's centre, in chest widths",
        lambda m: _chest(m, "placement_distance"),
        needs_subject=True,
    ),
    "pattern_on_garment": CheckSpec(
        "min",
        "pattern",
        "fraction of the pattern's area lying on the garment",
        lambda m: _chest(m, "on_garment"),
        needs_subject=True,
    ),
    "target_ssim_outside_edit": CheckSpec(
        "min",
        "ssim_outside_edit",
        "SSIM outside the edit region (the target is preserved)",
        lambda m: _get(m, "ssim_outside_edit"),
    ),
    "target_ssim_outside_garment": CheckSpec(
        "min",
        "ssim_outside_garment",
        "SSIM off the garment (face, skin and background preserved)",
        lambda m: _get(m, "ssim_outside_garment"),
        needs_subject=True,
    ),
    "ssim_min": CheckSpec("min", "ssim", "SSIM of output vs target", lambda m: _get(m, "ssim")),
    "ssim_max": CheckSpec("max", "ssim", "SSIM of output vs target", lambda m: _get(m, "ssim")),
    "style_closer": CheckSpec(
        "bool",
        "style",
        "the output is closer to the style than the target in colour AND texture",
        lambda m: _get(m, "style", "closer"),
    ),
    "edit_area_min": CheckSpec(
        "min",
        "edit_region",
        "changed area as a fraction of the image",
        lambda m: _get(m, "edit_region", "area_fraction"),
    ),
    "edit_area_max": CheckSpec(
        "max",
        "edit_region",
        "changed area as a fraction of the image",
        lambda m: _get(m, "edit_region", "area_fraction"),
    ),
    "phash_max_to_target": CheckSpec(
        "max",
        "phash",
        "pHash Hamming distance (0..64) to the target",
        lambda m: _get(m, "phash", "target"),
    ),
    "phash_min_to_target": CheckSpec(
        "min",
        "phash",
        "pHash Hamming distance (0..64) to the target",
        lambda m: _get(m, "phash", "target"),
    ),
}
"""Every supported recipe check key. recipes.py validates ``[checks]`` against this."""

_NEEDS_INPUT = {"pattern": "a pattern image (--pattern)", "style": "a style image (--style)"}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate_checks(checks: Mapping[str, Any]) -> None:
    """Raise RecipeError naming the first unknown check key or malformed expected value."""
    if not isinstance(checks, Mapping):
        raise RecipeError("[checks] must be a table of check = expected value")
    for name, expected in checks.items():
        spec = CHECKS.get(name)
        if spec is None:
            raise RecipeError(f"unknown check {name!r} (known: {', '.join(sorted(CHECKS))})")
        if spec.kind == "bool" and not isinstance(expected, bool):
            raise RecipeError(f"check {name!r} expects true or false, got {expected!r}")
        if spec.kind in ("min", "max") and not _is_number(expected):
            raise RecipeError(f"check {name!r} expects a number, got {expected!r}")
        if spec.kind == "range" and not (
            isinstance(expected, Sequence)
            and not isinstance(expected, str)
            and len(expected) == 2
            and all(_is_number(v) for v in expected)
            and expected[0] <= expected[1]
        ):
            raise RecipeError(f"check {name!r} expects [low, high], got {expected!r}")


def evaluate_checks(metrics: Mapping[str, Any], checks: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply recipe checks to metrics: ``{"checks": {name: {"pass", "value", "expected"
    [, "reason"]}}, "passed": bool}``.

    ``pass`` is True or False, or None when the check needs the subject (the chest box
    or garment mask) and none was found or given: then ``reason`` tells the user to give
    ``--subject-box``. A pattern check fails (False) when the pattern was not found,
    subject or not. ``passed`` is True only when every check passes (or there are none):
    a value that could not be measured fails, and a check not measured (None) fails
    ``passed`` too. RecipeError for an unknown key; InputError when a check needs an
    input not given."""
    checks = checks or {}
    validate_checks(checks)
    has_subject = _subject_found(metrics)
    out: dict[str, Any] = {}
    for name, expected in checks.items():
        spec = CHECKS[name]
        if metrics.get(spec.metric, None) is None and spec.metric in _NEEDS_INPUT:
            raise InputError(f"check {name!r} needs {_NEEDS_INPUT[spec.metric]}")
        value = spec.value(metrics)
        exp = list(expected) if spec.kind == "range" else expected
        reason: str | None = None
        ok: bool | None
        pattern_missing = spec.metric == "pattern" and not _get(metrics, "pattern", "found")
        if spec.needs_subject and not has_subject and not pattern_missing:
            ok, reason = None, NO_SUBJECT_REASON
        elif value is None:
            ok = False
            if pattern_missing:
                reason = PATTERN_MISSING_REASON
            elif spec.metric == "ssim_outside_garment":
                reason = "too few pixels off the garment to measure"
            elif spec.metric == "ssim_outside_edit":
                reason = "the edit covers the whole image"
        elif spec.kind == "bool":
            ok = bool(value) == expected
        elif spec.kind == "min":
            ok = value >= expected
        elif spec.kind == "max":
            ok = value <= expected
        else:
            ok = expected[0] <= value <= expected[1]
        entry: dict[str, Any] = {
            "pass": None if ok is None else bool(ok),
            "value": _json_safe(value),
            "expected": exp,
        }
        if reason is not None:
            entry["reason"] = reason
        out[name] = entry
    return {"checks": out, "passed": all(c["pass"] is True for c in out.values())}


def checks_verdict(checks: Mapping[str, Any]) -> str | None:
    """The one-line failure message for evaluated ``checks`` (``{name: {"pass", ...}}``),
    or None when every check passed. Checks not measured are named with their reason."""
    failed = [n for n, c in checks.items() if c.get("pass") is False]
    unmeasured = [n for n, c in checks.items() if c.get("pass") is None]
    if not failed and not unmeasured:
        return None
    parts = []
    if failed:
        parts.append(f"recipe checks failed: {', '.join(failed)}")
    if unmeasured:
        reasons = sorted({str(checks[n].get("reason") or "not measured") for n in unmeasured})
        head = "not measured" if failed else "recipe checks not measured"
        parts.append(f"{head} ({'; '.join(reasons)}): {', '.join(unmeasured)}")
    return "; ".join(parts)


def _json_safe(v: Any, digits: int = 4) -> Any:
    """Round floats and turn numpy scalars and tuples into plain JSON types."""
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        # + 0.0 turns a rounded -0.0 into 0.0
        return round(f, digits) + 0.0 if math.isfinite(f) else None
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x, digits) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x, digits) for x in v]
    return v


@dataclass
class CompareReport:
    """Metrics, check results and the overall verdict of one comparison.

    ``metrics`` holds ssim, edit_region, ssim_outside_edit, pattern, style, phash,
    subject, ssim_outside_garment and aligned (which cell was cut out, and the size
    compared at). ``aligned_output`` is the output in the target's frame (what the boxes
    refer to) and ``subject`` the :class:`~fluxcompose.locate.Subject` used (its garment
    mask draws the sheet); neither is serialised. ``warnings`` are one-line notes for
    the user (e.g. placement words not understood).
    """

    metrics: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)
    passed: bool = True
    aligned_output: Image.Image | None = field(default=None, repr=False, compare=False)
    aligned_target: Image.Image | None = field(default=None, repr=False, compare=False)
    subject: Subject | None = field(default=None, repr=False, compare=False)
    warnings: list[str] = field(default_factory=list)
    sheet_path: Path | None = None

    KEYS = (
        "ssim",
        "edit_region",
        "ssim_outside_edit",
        "pattern",
        "style",
        "phash",
        "subject",
        "ssim_outside_garment",
        "aligned",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ssim, edit_region, ssim_outside_edit, pattern, style, phash, subject,
        ssim_outside_garment, aligned, checks, passed, warnings (floats rounded to 4
        decimals)."""
        d = {k: _json_safe(self.metrics.get(k)) for k in self.KEYS}
        d["checks"] = _json_safe(self.checks)
        d["passed"] = bool(self.passed)
        d["warnings"] = list(self.warnings)
        return d

    def verdict(self) -> str | None:
        """The failure message (see :func:`checks_verdict`), or None when all passed."""
        return checks_verdict(self.checks)


def raise_for_checks(report: CompareReport) -> None:
    """ChecksFailed (exit 1) with :meth:`CompareReport.verdict` when a check failed or
    could not be measured; nothing when all passed."""
    message = report.verdict()
    if message is not None:
        raise ChecksFailed(message)
