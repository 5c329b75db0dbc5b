"""Small defects found by the review (issue 10): each test failed before its fix."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline import indicators, stats
from pipeline.analyse import prevalence_from_counts

P1 = dt.date(2024, 3, 31)


def test_funnel_limits_ratio_takes_a_scalar():
    scalar = stats.funnel_limits_ratio(5.0)  # raised IndexError in _gamma_shape_inv
    vector = stats.funnel_limits_ratio(np.array([5.0]))
    for got, want in zip(scalar, vector):
        assert np.ndim(got) == 0
        assert float(got) == pytest.approx(float(want[0]), rel=1e-12)


def _counts(observed, population, expected, area_type="practice", code="A"):
    return pd.DataFrame(dict(period=[P1], condition=["dep"], area_type=[area_type], area_code=[code],
                             area_name=[code], group_type=["all"], group_value=["All"], observed=[observed],
                             population=[population], expected=[expected]))


def test_zero_population_with_cases_gives_nan_not_inf_in_analyse():
    prev = prevalence_from_counts(_counts(3, 0, 1.0))
    assert np.isnan(prev["rate"][0])  # was inf


def test_zero_population_with_cases_gives_nan_not_inf_in_indicators():
    counts = pd.concat([_counts(3, 0, 1.0, "icb", "I"), _counts(3, 0, 1.0, "practice", "A")], ignore_index=True)
    prev = prevalence_from_counts(counts)
    parents = pd.DataFrame(dict(area_type=["practice"], area_code=["A"], parent_type=["icb"], parent_code=["I"]))
    funnel = indicators.funnel_table(prev, parents)
    values = funnel[["value", "parent_value"]].to_numpy(float)
    assert not np.isinf(values).any()  # the ICB's rate 3/0 was inf
    groups = pd.concat([_counts(3, 0, 1.0), _counts(5, 100, 5.0)], ignore_index=True)
    groups["group_type"] = "sex"
    groups["group_value"] = ["M", "F"]
    comp = indicators.comparisons_table(prevalence_from_counts(groups), parents, {"sex": "F"})
    row = comp[comp["comparison"] == "group_vs_reference"].iloc[0]
    assert np.isnan(row["value"])  # 3/0 was inf


def test_review_cases_funnel_significance_as_phe():
    """(O, E) confirmed in R with PHEindicatormethods: Byar from O >= 10, all four at the 0.025 level."""
    sig = stats.funnel_significance_ratio([10, 12, 20, 100], [2.93, 27.05, 8.94, 71.91])
    assert list(sig) == ["High (0.025)", "Low (0.025)", "High (0.025)", "High (0.025)"]
    # and the same limits as the ratio's own interval (one method per quantity)
    ratio, lower, upper = stats.isr([10, 12, 20, 100], [2.93, 27.05, 8.94, 71.91])
    assert list(stats.compare_to_parent(lower, upper, 1.0)) == ["higher", "lower", "higher", "higher"]


def test_sii_repeatability_as_phe_reliability_stat():
    x = np.array([[300, 260, 220, 200, 150], [30, 26, 22, 20, 15]])
    n = np.array([[1000] * 5, [100] * 5])
    plain = stats.sii_crude_rate_proportion(x, n, repetitions=2000, seed=4)
    rel = stats.sii_crude_rate_proportion(x, n, repetitions=2000, seed=4, reliability_sets=10)
    np.testing.assert_array_equal(plain.sii_lower, rel.sii_lower)  # the first set is the one reported
    assert np.isnan(plain.sii_mad).all()
    assert (rel.sii_mad > 0).all() and (rel.rii_mad > 0).all()
    assert rel.sii_mad[1] > rel.sii_mad[0]  # the smaller area's limits are less repeatable
    more = stats.sii_crude_rate_proportion(x, n, repetitions=50_000, seed=4, reliability_sets=10)
    assert (more.sii_mad < rel.sii_mad).all()  # more draws, more repeatable


def test_inequality_table_reports_repeatability_for_pcns_on_the_latest_date():
    rows = []
    for period in (P1, dt.date(2025, 3, 31)):
        for code in ("A", "B"):
            for q, (o, n) in enumerate([(300, 1000), (260, 1000), (220, 1000), (200, 1000), (150, 1000)], start=1):
                rows.append((period, "dep", "pcn" if code == "A" else "practice", code, "imd_quintile", str(q), o, n, o))
    df = pd.DataFrame(rows, columns=["period", "condition", "area_type", "area_code", "group_type", "group_value",
                                     "observed", "population", "expected"])
    df["area_name"] = df["area_code"]
    ineq = indicators.inequality_table(prevalence_from_counts(df))
    latest_pcn = (ineq["area_type"] == "pcn") & (ineq["period"] == ineq["period"].max())
    assert latest_pcn.sum() == 1
    assert ineq.loc[latest_pcn, "reliability"].item() == "good"
    assert 0 < ineq.loc[latest_pcn, "sii_mad"].item() < indicators.POOR_SII_MAD
    assert ineq.loc[~latest_pcn, "sii_mad"].isna().all() and (ineq.loc[~latest_pcn, "reliability"] == "").all()
