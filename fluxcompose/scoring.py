"""Scores and statistics for candidates and A/B runs (DESIGN.md section 12). Pure functions.

The score of an output is a pair compared lexicographically:

1. ``passed``: the number of recipe checks that passed (``pass`` is True);
2. ``margin``: the mean over the checks of each check's margin (:func:`check_margin`),
   which only breaks ties between outputs that passed the same number of checks.

A check that was not measured (``pass`` None, e.g. no subject was found) counts as not
passed and gets the margin -1, the worst a check can get: a false pass is the worst
outcome, so what could not be measured never ranks above what was measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KEY_METRICS",
    "MARGIN_CLAMP",
    "KeyMetric",
    "Score",
    "check_margin",
    "compare_scores",
    "metric_at",
    "metric_number",
    "score_checks",
    "sign_test",
    "wilson_interval",
]


@dataclass(frozen=True)
class KeyMetric:
    """One number from a compare report that people compare outputs by.

    ``name`` is its key in ``ab.json``; ``label`` is what the review page shows;
    ``path`` is where it sits in a compare report's ``metrics``; ``averaged`` says whether
    an A/B run reports its mean per arm (a count of inliers, or an area that depends on
    the recipe, compares nothing between arms).
    """

    name: str
    label: str
    path: tuple[str, ...]
    averaged: bool = True


KEY_METRICS: tuple[KeyMetric, ...] = (
    KeyMetric("ssim", "ssim", ("ssim",)),
    KeyMetric("ssim_outside_edit", "ssim outside edit", ("ssim_outside_edit",)),
    KeyMetric("ssim_outside_garment", "ssim outside garment", ("ssim_outside_garment",)),
    KeyMetric("pattern_width_fraction", "print width / chest", ("pattern", "width_fraction")),
    KeyMetric("pattern_inliers", "print inliers", ("pattern", "inliers"), averaged=False),
    KeyMetric("pattern_on_garment", "print on garment", ("pattern", "on_garment")),
    KeyMetric("edit_area_fraction", "edit area", ("edit_region", "area_fraction"), averaged=False),
)
"""The one table of key metrics: A/B means and the review page's metric rows."""


def metric_at(metrics: object, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested mappings, or None where any step is missing."""
    cur = metrics
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def metric_number(metrics: object, path: tuple[str, ...]) -> float | None:
    """The finite number at ``path`` (booleans are not numbers here), else None."""
    value = metric_at(metrics, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


MARGIN_CLAMP = 1.0  # margins are clamped into [-1, 1] so one extreme value cannot dominate
Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def _scale(threshold: float) -> float:
    """What a margin is normalised by: ``|threshold|``, or 1 when the threshold is 0."""
    t = abs(float(threshold))
    return t if t > 0 else 1.0


def _clamp(x: float) -> float:
    return max(-MARGIN_CLAMP, min(MARGIN_CLAMP, x))


def check_margin(kind: str, value: Any, expected: Any) -> float:
    """How far ``value`` lies past its threshold, normalised, in [-1, 1] (> 0 on the passing side).

    - ``min`` (value >= t): ``(value - t) / |t|``;
    - ``max`` (value <= t): ``(t - value) / |t|``;
    - ``range`` [lo, hi]: with centre ``c = (lo + hi) / 2`` and half-width ``h = (hi - lo) / 2``,
      ``(h - |value - c|) / h``: 1 at the centre, 0 on a bound, negative outside
      (``h`` = 0: 0 on the point, else ``-|value - c| / |c|``);
    - ``bool``: 0 (a yes/no check has no degree; only its pass counts);
    - a value that is missing or not a finite number: -1.

    ``|t|`` is replaced by 1 when ``t`` = 0. The result is clamped into [-1, 1].
    """
    if kind == "bool":
        return 0.0 if value is not None else -MARGIN_CLAMP
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return -MARGIN_CLAMP
    v = float(value)
    if kind == "min":
        return _clamp((v - float(expected)) / _scale(expected))
    if kind == "max":
        return _clamp((float(expected) - v) / _scale(expected))
    if kind == "range":
        lo, hi = float(expected[0]), float(expected[1])
        c, h = (lo + hi) / 2.0, (hi - lo) / 2.0
        if h <= 0:
            return 0.0 if v == c else _clamp(-abs(v - c) / _scale(c))
        return _clamp((h - abs(v - c)) / h)
    raise ValueError(f"unknown check kind {kind!r}")


def _kind(name: str, expected: Any) -> str:
    """A check's kind: from the registry of checks, else from the form of ``expected``."""
    try:
        from .compare import CHECKS

        spec = CHECKS.get(name)
        if spec is not None:
            return spec.kind
    except ImportError:  # pragma: no cover - compare is part of the package
        pass
    if isinstance(expected, bool):
        return "bool"
    if isinstance(expected, list | tuple):
        return "range"
    return "max" if name.endswith("_max") else "min"


@dataclass(frozen=True, order=True)
class Score:
    """An output's score; compare with ``<``/``>`` (``passed`` first, then ``margin``).

    ``passed``: checks passed (0..total); ``margin``: mean margin in [-1, 1] (0 with no
    checks); ``total``: the number of checks; ``all_passed``: every check passed.
    """

    passed: int
    margin: float
    total: int = 0
    all_passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "total": self.total,
            "margin": round(self.margin, 6),
            "all_passed": self.all_passed,
        }


UNMEASURED = Score(0, -MARGIN_CLAMP, 0, False)
"""The score of an output that could not be compared at all (ranks below everything measured)."""


def score_checks(checks: Mapping[str, Any] | None) -> Score:
    """The score of evaluated checks ``{name: {"pass", "value", "expected"}}`` (None: not compared).

    A check with ``pass`` None counts as not passed with margin -1; ``all_passed`` needs
    every check to be True (and is False with no checks: nothing was verified).
    """
    if checks is None:
        return UNMEASURED
    passed = 0
    margins: list[float] = []
    for name, entry in checks.items():
        ok = entry.get("pass") if isinstance(entry, Mapping) else None
        if ok is True:
            passed += 1
        if ok is None or not isinstance(entry, Mapping):
            margins.append(-MARGIN_CLAMP)
            continue
        expected = entry.get("expected")
        margins.append(check_margin(_kind(name, expected), entry.get("value"), expected))
    total = len(margins)
    mean = sum(margins) / total if total else 0.0
    return Score(passed, mean, total, total > 0 and passed == total)


def compare_scores(a: Score | None, b: Score | None) -> int:
    """1 when ``a`` wins, -1 when ``b`` wins, 0 for a tie (None: no output, loses to any score)."""
    if a is None and b is None:
        return 0
    if b is None:
        return 1
    if a is None:
        return -1
    ka, kb = (a.passed, round(a.margin, 9)), (b.passed, round(b.margin, 9))
    return (ka > kb) - (ka < kb)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes out of ``n`` (default 95 %), in [0, 1].

    With ``p = k / n``: ``(p + z^2/(2n) +/- z * sqrt(p(1-p)/n + z^2/(4n^2))) / (1 + z^2/n)``.
    ``n`` = 0 gives (0, 1): nothing is known.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends (no rounding above 0)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def sign_test(wins: int, losses: int) -> float:
    """The two-sided exact sign test's p-value for ``wins`` vs ``losses`` (ties dropped before).

    With ``n = wins + losses`` and ``k = min(wins, losses)``:
    ``p = min(1, 2 * sum_{i=0..k} C(n, i) / 2^n)``; 1 when ``n`` = 0.
    """
    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must be >= 0")
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2.0 * tail / 2.0**n)
