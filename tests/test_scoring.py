"""Scores and statistics against hand-computed values and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxcompose.scoring import (
    Score,
    check_margin,
    compare_scores,
    score_checks,
    sign_test,
    wilson_interval,
)


def test_wilson_hand_computed() -> None:
    # 7/10, z = 1.96: centre (0.7 + 0.19207) / 1.38415 = 0.64449, half 0.24772.
    lo, hi = wilson_interval(7, 10)
    assert lo == pytest.approx(0.39677, abs=1e-4) and hi == pytest.approx(0.89222, abs=1e-4)
    # 0/5: the lower bound is 0, the upper 2 * 0.38415 / 2 / 1.76829 * 2 = 0.43448.
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0 and hi == pytest.approx(0.43448, abs=1e-4)
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.43448, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@given(st.integers(0, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_rate_and_is_symmetric(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo <= k / n <= hi
        lo2, hi2 = wilson_interval(n - k, n)
        assert lo2 == pytest.approx(1 - hi, abs=1e-12) and hi2 == pytest.approx(1 - lo, abs=1e-12)


def test_sign_test_hand_computed() -> None:
    assert sign_test(8, 2) == pytest.approx(0.109375)  # 2 * (1 + 10 + 45) / 1024
    assert sign_test(2, 8) == pytest.approx(0.109375)
    assert sign_test(10, 0) == pytest.approx(2 / 1024)
    assert sign_test(5, 5) == 1.0
    assert sign_test(0, 0) == 1.0
    assert sign_test(1, 0) == 1.0
    assert sign_test(6, 0) == pytest.approx(0.03125)


@given(st.integers(0, 60), st.integers(0, 60))
def test_sign_test_matches_the_binomial_tail(w: int, losses: int) -> None:
    n = w + losses
    p = sign_test(w, losses)
    assert 0.0 < p <= 1.0
    if n:
        k = min(w, losses)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        assert p == pytest.approx(min(1.0, 2 * tail))


def test_margins() -> None:
    assert check_margin("min", 0.9, 0.8) == pytest.approx(0.125)  # (0.9 - 0.8) / 0.8
    assert check_margin("min", 0.6, 0.8) == pytest.approx(-0.25)
    assert check_margin("max", 5, 10) == pytest.approx(0.5)  # (10 - 5) / 10
    assert check_margin("max", 30, 10) == -1.0  # clamped
    # range [0.5, 0.9]: centre 0.7, half-width 0.2
    assert check_margin("range", 0.7, [0.5, 0.9]) == pytest.approx(1.0)
    assert check_margin("range", 0.8, [0.5, 0.9]) == pytest.approx(0.5)
    assert check_margin("range", 0.9, [0.5, 0.9]) == pytest.approx(0.0)
    assert check_margin("range", 1.0, [0.5, 0.9]) == pytest.approx(-0.5)
    assert check_margin("bool", True, True) == 0.0
    assert check_margin("min", None, 0.8) == -1.0
    assert check_margin("min", 3, 0) == 1.0  # |t| = 0 is replaced by 1, then clamped


def test_score_and_tie_breaks() -> None:
    a = score_checks(
        {
            "ssim_min": {"pass": True, "value": 0.9, "expected": 0.8},  # +0.125
            "edit_area_max": {"pass": False, "value": 0.6, "expected": 0.5},  # -0.2
        }
    )
    assert (a.passed, a.total, a.all_passed) == (1, 2, False)
    assert a.margin == pytest.approx((0.125 - 0.2) / 2)
    b = score_checks(
        {
            "ssim_min": {"pass": False, "value": 0.7, "expected": 0.8},  # -0.125
            "edit_area_max": {"pass": True, "value": 0.25, "expected": 0.5},  # +0.5
        }
    )
    assert b.passed == 1 and b.margin == pytest.approx(0.1875)
    assert compare_scores(b, a) == 1 and compare_scores(a, b) == -1  # same count: margin decides
    # More checks passed beats any margin.
    c = score_checks(
        {
            "ssim_min": {"pass": True, "value": 0.8, "expected": 0.8},
            "edit_area_max": {"pass": True, "value": 0.5, "expected": 0.5},
        }
    )
    assert c.all_passed and c.margin == 0.0 and c > b
    # Not measured (pass None) counts as not passed with margin -1.
    d = score_checks(
        {
            "pattern_on_garment": {"pass": None, "value": None, "expected": 0.9},
            "ssim_min": {"pass": True, "value": 0.8, "expected": 0.8},
        }
    )
    assert d.passed == 1 and d.margin == pytest.approx(-0.5) and not d.all_passed
    assert compare_scores(d, d) == 0
    assert compare_scores(None, d) == -1 and compare_scores(d, None) == 1
    assert score_checks(None) < Score(0, 0.0)
    assert score_checks({}) == Score(0, 0.0, 0, False)
