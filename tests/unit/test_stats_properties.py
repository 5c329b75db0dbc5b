"""Property-based and simulation tests for pipeline.stats (hypothesis; a few seconds in all)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import stats as S

FAST = settings(max_examples=60, deadline=None)
CONF = st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.998])


@st.composite
def x_and_n(draw, max_n=10**7):
    n = draw(st.integers(min_value=1, max_value=max_n))
    x = draw(st.integers(min_value=0, max_value=n))
    return x, n


@FAST
@given(xn=x_and_n(), conf=CONF)
def test_wilson_bounds(xn, conf):
    x, n = xn
    lo, up = S.wilson_ci(x, n, conf)
    p = x / n
    assert 0.0 <= lo <= p + 1e-12
    assert p - 1e-12 <= up <= 1.0
    assert (lo == 0.0) == (x == 0)
    assert (up == 1.0) == (x == n)


@FAST
@given(n=st.integers(min_value=1, max_value=3000), conf=CONF)
def test_wilson_monotone_in_x_and_symmetric(n, conf):
    x = np.arange(n + 1)
    lo, up = S.wilson_ci(x, n, conf)
    assert np.all(np.diff(lo) > 0) and np.all(np.diff(up) > 0)
    rlo, rup = S.wilson_ci(n - x, n, conf)
    np.testing.assert_allclose(lo, 1.0 - rup, rtol=0, atol=1e-12)
    np.testing.assert_allclose(up, 1.0 - rlo, rtol=0, atol=1e-12)


@FAST
@given(xn=x_and_n(max_n=10**5))
def test_wilson_nested_by_confidence(xn):
    x, n = xn
    lo95, up95 = S.wilson_ci(x, n, 0.95)
    lo998, up998 = S.wilson_ci(x, n, 0.998)
    assert lo998 <= lo95 and up95 <= up998


@FAST
@given(x=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=50), conf=CONF)
def test_poisson_limits_bracket_count(x, conf):
    x = np.array(x, dtype=float)
    for lo, up in (S.poisson_count_ci(x, conf), S.exact_poisson_ci(x, conf)):
        assert np.all(lo <= x) and np.all(x <= up)
        assert np.all(lo >= 0)
    # limits increase with the count
    xs = np.arange(0, 60, dtype=float)
    lo, up = S.poisson_count_ci(xs, conf)
    assert np.all(np.diff(lo) > 0) and np.all(np.diff(up) > 0)


@FAST
@given(o=st.integers(min_value=0, max_value=10**5), e=st.floats(min_value=0.01, max_value=1e5), conf=CONF)
def test_isr_interval_contains_ratio(o, e, conf):
    r, lo, up = S.isr(o, e, conf)
    assert lo <= r <= up
    assert (lo == 0) == (o == 0)


@FAST
@given(
    counts=st.lists(st.integers(min_value=0, max_value=500), min_size=19, max_size=19),
    pops=st.lists(st.integers(min_value=1, max_value=20000), min_size=19, max_size=19),
)
def test_dsr_interval_contains_value(counts, pops):
    res = S.dsr_dobson(counts, pops, S.ESP2013, np.zeros(19, dtype=int))
    if sum(counts) < 10:
        assert np.isnan(res.value[0]) and np.isnan(res.lower[0])
    else:
        assert res.lower[0] <= res.value[0] <= res.upper[0]


@FAST
@given(p=st.floats(min_value=0.001, max_value=0.999), n=st.lists(st.integers(1, 10**6), min_size=2, max_size=30))
def test_funnel_proportion_limits_ordered_and_narrowing(p, n):
    n = np.sort(np.array(n, dtype=float))
    f = S.funnel_limits_proportion(p, n)
    assert np.all(f.lower_998 <= f.lower_95) and np.all(f.lower_95 <= p)
    assert np.all(p <= f.upper_95) and np.all(f.upper_95 <= f.upper_998)
    assert np.all(np.diff(f.upper_95) <= 1e-15) and np.all(np.diff(f.lower_95) >= -1e-15)


@FAST
@given(e=st.lists(st.floats(min_value=0.05, max_value=1e5), min_size=1, max_size=30))
def test_funnel_ratio_limits_ordered(e):
    f = S.funnel_limits_ratio(np.array(e))
    assert np.all(f.lower_998 <= f.lower_95) and np.all(f.lower_95 <= 1.0)
    assert np.all(1.0 <= f.upper_95) and np.all(f.upper_95 <= f.upper_998)


@FAST
@given(xn=x_and_n(max_n=10**5), p=st.floats(min_value=0.0, max_value=1.0))
def test_funnel_significance_consistent_with_wilson(xn, p):
    x, n = xn
    lab = S.funnel_significance_proportion(x, n, p)
    lo95, up95 = S.wilson_ci(x, n, 0.95)
    cmp = S.compare_to_parent(lo95, up95, p)
    expect = {"higher": ("High (0.001)", "High (0.025)"), "lower": ("Low (0.001)", "Low (0.025)"),
              "similar": ("Not significant",)}[str(cmp)]
    assert str(lab) in expect


def test_wilson_coverage_near_nominal():
    rng = np.random.default_rng(20240101)
    draws = 4000
    n = rng.integers(30, 2000, draws)
    p = rng.uniform(0.02, 0.6, draws)
    x = rng.binomial(n, p)
    lo, up = S.wilson_ci(x, n, 0.95)
    coverage = np.mean((lo <= p) & (p <= up))
    assert 0.93 <= coverage <= 0.97, coverage


def test_isr_coverage_near_nominal():
    rng = np.random.default_rng(7)
    draws = 4000
    expected = rng.uniform(10, 400, draws)
    theta = rng.uniform(0.6, 1.6, draws)
    observed = rng.poisson(expected * theta)
    _, lo, up = S.isr(observed, expected, 0.95)
    coverage = np.mean((lo <= theta) & (theta <= up))
    assert 0.93 <= coverage <= 0.97, coverage


def test_sii_monte_carlo_interval_matches_analytic_for_linear_case():
    """value_type 0: the SII is linear in the values, so its MC interval must match sii +/- z sd."""
    rng = np.random.default_rng(3)
    v = rng.normal(70, 3, (20, 5))
    pop = rng.integers(1000, 30000, (20, 5)).astype(float)
    se = rng.uniform(0.2, 2.0, (20, 5))
    r = S.sii(v, pop, se=se, repetitions=100_000)
    a = pop / pop.sum(axis=1, keepdims=True)
    b = np.cumsum(a, axis=1) - a / 2
    bbar = (a * b).sum(axis=1, keepdims=True)
    c = a * (b - bbar) / (a * (b - bbar) ** 2).sum(axis=1, keepdims=True)
    sd = np.sqrt((c**2 * se**2).sum(axis=1))
    np.testing.assert_allclose(r.sii_upper - r.sii, 1.959963985 * sd, rtol=0.03)
    np.testing.assert_allclose(r.sii - r.sii_lower, 1.959963985 * sd, rtol=0.03)


@pytest.mark.parametrize("mult", [1.0, -1.0, 100.0])
def test_sii_multiplier_sign(mult):
    v = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    pop = np.full(5, 1000.0)
    r = S.sii(v, pop, lower_cl=v - 0.02, upper_cl=v + 0.02, value_type=2, multiplier=mult, repetitions=20000)
    base = S.sii(v, pop, lower_cl=v - 0.02, upper_cl=v + 0.02, value_type=2, repetitions=20000)
    assert r.sii == pytest.approx(base.sii * mult)
    assert r.sii_lower <= r.sii <= r.sii_upper
    assert r.rii_lower <= r.rii <= r.rii_upper
    if mult < 0:
        assert r.rii == pytest.approx(1 / base.rii)
        assert r.rii_lower == pytest.approx(1 / base.rii_upper)
