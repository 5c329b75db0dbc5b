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
