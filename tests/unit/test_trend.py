"""Change over time (DESIGN "Change over time"): the paired interval, the narrowed / widened labels, the
Benjamini-Hochberg adjustment, the trend table on fixed reference rates, and a planted-change simulation."""
from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from pipeline import indicators, stats

P1, P2 = dt.date(2024, 3, 31), dt.date(2025, 3, 31)
Z95 = 1.959963984540054


def test_paired_interval_by_hand():
    # O0 = 300, O1 = 345, 280 cases on both dates: Var(log change) = (300 + 345 - 560) / (300 * 345)
    r = stats.paired_ratio_change(300, 300.0, 345, 300.0, 280)
    se = np.sqrt(85 / (300 * 345))
    assert r.change == pytest.approx(1.15)
    assert r.change_lower == pytest.approx(1.15 * np.exp(-Z95 * se))
    assert r.change_upper == pytest.approx(1.15 * np.exp(Z95 * se))
    # no shared cases: the independent-samples variance 1/O0 + 1/O1
    indep = stats.paired_ratio_change(300, 300.0, 345, 300.0, 0)
    assert np.log(indep.change_upper / indep.change) == pytest.approx(Z95 * np.sqrt(1 / 300 + 1 / 345))
    # the shared count can never exceed either date's count (rounded published counts can)
    assert stats.paired_ratio_change(300, 300.0, 345, 300.0, 400).change_lower == pytest.approx(
        stats.paired_ratio_change(300, 300.0, 345, 300.0, 300).change_lower)
    # rounding to 5 adds 25/12 (1/O0^2 + 1/O1^2) to the variance
    rounded = stats.paired_ratio_change(300, 300.0, 345, 300.0, 280, count_rounding=5)
    var = 85 / (300 * 345) + 25 / 12 * (1 / 300**2 + 1 / 345**2)
    assert np.log(rounded.change_upper / rounded.change) == pytest.approx(Z95 * np.sqrt(var))


def test_zero_cases_make_no_claim():
    r = stats.paired_ratio_change([0, 10], [5.0, 0.0], [4, 10], [5.0, 5.0], [0, 5])
    assert np.isnan(r.change).all() and np.isnan(r.p_value).all()
    # the ratios are still given where expected is positive (no case: ratio 0), as the trend table prints them
    np.testing.assert_equal([r.ratio_from, r.ratio_to], [[0.0, np.nan], [0.8, 2.0]])
    assert list(stats.change_labels(r.direction, r.p_value)) == ["", ""]


def test_labels_are_about_the_distance_from_one():
    big = 20_000.0
    cases = {  # (ratio from, ratio to) -> label, with large counts and 90% of cases shared
        (0.50, 0.90): "narrowed",
        (1.00, 0.60): "widened",
        (1.30, 1.05): "narrowed",
        (0.90, 1.12): "no clear change",  # crossed the comparator; about as far from it as before
        (0.95, 0.95): "no clear change",
    }
    r0 = np.array([k[0] for k in cases])
    r1 = np.array([k[1] for k in cases])
    o0, o1 = r0 * big, r1 * big
    res = stats.paired_ratio_change(o0, big, o1, big, 0.9 * np.minimum(o0, o1))
    assert list(stats.change_labels(res.direction, res.p_value)) == list(cases.values())


def test_benjamini_hochberg_by_hand_and_per_family():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan, 0.01, 0.02])
    fam = np.array([1, 1, 1, 1, 1, 2, 2])
    q = stats.benjamini_hochberg(p, fam)
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5, np.nan, 0.02, 0.02])
    rng = np.random.default_rng(3)
    p = rng.uniform(size=500) ** 3
    q = stats.benjamini_hochberg(p)
    assert (q >= p - 1e-15).all() and (q <= 1).all()
    order = np.argsort(p)
    assert (np.diff(q[order]) >= -1e-15).all()  # monotone in p
    assert stats.benjamini_hochberg([0.2]) == pytest.approx(0.2)


def _trend_inputs(observed, expected, both):
    """prevalence rows (ICB + one PCN, 'all'), trend_transitions and trend_expected for one pair of dates."""
    rows, moves, fixed = [], [], []
    for code, area_type in (("I", "icb"), ("A", "pcn")):
        (o0, o1), (e0, e1), shared = observed[code], expected[code], both[code]
        for period, o in ((P1, o0), (P2, o1)):
            rows.append(dict(period=period, condition="dep", area_type=area_type, area_code=code, group_type="all",
                             group_value="All", observed=o))
        key = dict(period_from=P1, period_to=P2, condition="dep", area_type=area_type, area_code=code,
                   group_type="all", group_value="All")
        moves.append({**key, "cases_both": shared})
        fixed.append({**key, "expected_from": e0, "expected_to": e1})
    return pd.DataFrame(rows), pd.DataFrame(moves), pd.DataFrame(fixed)


def test_trend_table_keeps_a_change_shared_by_the_whole_dataset():
    # the whole ICB records 10% more on the same (earlier) rates; the PCN moves with it: its gap does not change
    prev, moves, fixed = _trend_inputs({"I": (10_000, 11_000), "A": (800, 880)},
                                       {"I": (10_000.0, 10_000.0), "A": (1_000.0, 1_000.0)},
                                       {"I": 9_500, "A": 760})
    t = indicators.trend_table(prev, moves, fixed).set_index("area_code")
    assert t.loc["A", "change"] == pytest.approx(1.10) and t.loc["A", "change_lower"] > 1  # not absorbed
    assert t.loc["A", "comparator_change"] == pytest.approx(1.10)
    assert t.loc["A", "gap_change"] == pytest.approx(1.0)
    assert t.loc["A", "label"] == "no clear change"
    for col in ("period_from", "period_to", "condition", "area_type", "group_type", "group_value", "ratio_from",
                "ratio_to", "change", "change_lower", "change_upper", "label", "p_value", "q_value"):
        assert col in t.reset_index().columns
    # with external reference rates the comparator is the reference itself: the same rise is a narrowing gap
    ext = indicators.trend_table(prev, moves, fixed, internal_reference=False).set_index("area_code")
    assert ext.loc["A", "comparator_change"] == 1.0 and ext.loc["A", "label"] == "narrowed"


def test_no_claim_from_a_rounding_error_when_the_same_patients_are_the_cases_on_both_dates():
    """O0 = O1 = cases_both and the same expected: nothing moved. A comparator whose change is 1 - 2e-16 (the sum
    of the dataset's cells in another order) must not turn that into a certain movement (p_d was 0, so p = p_s and
    a cell far from the comparator was labelled narrowed/widened on the sign of the rounding error)."""
    res = stats.paired_ratio_change(400, 200.0, 400, 200.0, 400, comparator_from=1.0, comparator_to=1.0 - 2.2e-16)
    assert float(res.p_value) == 1.0
    assert list(stats.change_labels([float(res.direction)], [float(res.p_value)])) == ["no clear change"]
    moved = stats.paired_ratio_change(400, 200.0, 400, 250.0, 400)  # expected moved: a real (fixed-rate) change
    assert float(moved.p_value) < 0.05


def test_trend_table_gives_ratios_and_a_contract_label_where_a_date_has_no_cases():
    """A cell with no case on one date: its ratios are still observed / expected (0 on that date), the change is
    0 when the later date has none (undefined when the earlier has none), no interval or test can be made, and the
    label is one of the contract's three ("no clear change"), not an empty string."""
    for (o0, o1), change in (((12, 0), 0.0), ((0, 5), np.nan)):
        prev, moves, fixed = _trend_inputs({"I": (1_000, 1_000), "A": (o0, o1)},
                                           {"I": (1_000.0, 1_000.0), "A": (10.0, 8.0)}, {"I": 900, "A": 0})
        row = indicators.trend_table(prev, moves, fixed).set_index("area_code").loc["A"]
        assert row["ratio_from"] == pytest.approx(o0 / 10.0) and row["ratio_to"] == pytest.approx(o1 / 8.0)
        assert row["gap_from"] == pytest.approx(o0 / 10.0) and row["gap_to"] == pytest.approx(o1 / 8.0)
        np.testing.assert_equal([row["change"], row["gap_change"]], [change, change])
        assert np.isnan(row["change_lower"]) and np.isnan(row["p_value"]) and np.isnan(row["q_value"])
        assert row["label"] == "no clear change"


def test_trend_comparator_is_the_whole_dataset_on_each_date():
    """The comparator is the dataset's own ratio on each date: an ICB with people on the earlier date only (its
    practices' patients all left) still counts on that date (it was left out with the cells not on both dates)."""
    prev, moves, fixed = _trend_inputs({"I": (100, 120), "A": (50, 60)}, {"I": (110.0, 110.0), "A": (55.0, 55.0)},
                                       {"I": 90, "A": 45})
    gone = dict(condition="dep", area_type="icb", area_code="J", group_type="all", group_value="All")
    prev = pd.concat([prev, pd.DataFrame([{**gone, "period": P1, "observed": 30}])], ignore_index=True)
    fixed = pd.concat([fixed, pd.DataFrame([{**gone, "period_from": P1, "period_to": P2, "expected_from": 20.0,
                                             "expected_to": 0.0}])], ignore_index=True)
    row = indicators.trend_table(prev, moves, fixed).set_index("area_code").loc["A"]
    comparator_from, comparator_to = (100 + 30) / (110.0 + 20.0), 120 / 110.0
    assert row["comparator_change"] == pytest.approx(comparator_to / comparator_from)
    assert row["gap_from"] == pytest.approx((50 / 55.0) / comparator_from)
    assert row["gap_to"] == pytest.approx((60 / 55.0) / comparator_to)


# ------------------------------------------------------------------------------------------ simulation

def simulate_practices(n_practices, rng, change=1.0, adults=3000, true_rate=0.10, recorded_share=0.80,
                       turnover=0.06, persistence=0.98):
    """Count-level simulation of one practice's register on two dates, vectorised over practices.

    `adults` registered on the earlier date, of whom a share `turnover` leave and as many join; a true rate of
    `true_rate` for everyone (so the expected count is `true_rate` x population on both dates), recorded for
    `recorded_share` of them on the earlier date (ratio 0.80). On the later date `persistence` of the stayers'
    recorded cases are still recorded, new diagnoses among the stayers keep the recorded rate steady when
    `change` is 1 and raise it by the factor `change` otherwise, and joiners arrive recorded at the new rate."""
    recorded_from = true_rate * recorded_share
    recorded_to = recorded_from * change
    leavers = rng.binomial(adults, turnover, n_practices)
    joiners = rng.binomial(adults, turnover, n_practices)
    stayers = adults - leavers
    stayer_cases = rng.binomial(stayers, recorded_from)
    observed_from = stayer_cases + rng.binomial(leavers, recorded_from)
    cases_both = rng.binomial(stayer_cases, persistence)
    new_rate = (recorded_to - persistence * recorded_from) / (1 - recorded_from)
    new_cases = rng.binomial(stayers - stayer_cases, new_rate)
    observed_to = cases_both + new_cases + rng.binomial(joiners, recorded_to)
    expected_from = true_rate * adults
    expected_to = true_rate * (stayers + joiners)
    return observed_from, expected_from, observed_to, expected_to, cases_both


def planted_change_figures(n_practices=4000, seed=20241129):
    """Per scenario (planted change, recorded share on the earlier date) and method: the share of practices whose
    change interval excludes 1 (`detected`: in the planted direction; for no change, either way), whose gap is
    labelled narrowed / widened / anything but "no clear change", and the coverage of the change interval."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, change, share in (("no change", 1.0, 0.80), ("no change, no gap", 1.0, 1.0), ("+15%", 1.15, 0.80),
                                ("+15% from 0.70", 1.15, 0.70), ("+5%", 1.05, 0.80)):
        o0, e0, o1, e1, both = simulate_practices(n_practices, rng, change=change, recorded_share=share)
        paired = stats.paired_ratio_change(o0, e0, o1, e1, both)
        independent = stats.paired_ratio_change(o0, e0, o1, e1, 0)  # the dates as independent samples
        for method, res in (("paired", paired), ("independent", independent)):
            labels = stats.change_labels(res.direction, res.p_value)
            covered = (res.change_lower <= change) & (change <= res.change_upper)
            detected = (res.change_lower > 1) if change > 1 else ((res.change_lower > 1) | (res.change_upper < 1))
            out[(name, method)] = dict(detected=float(np.mean(detected)),
                                       narrowed=float(np.mean(labels == "narrowed")),
                                       widened=float(np.mean(labels == "widened")),
                                       claimed=float(np.mean(labels != "no clear change")),
                                       coverage=float(np.mean(covered)))
    return out


def test_planted_change_power_and_false_alarms():
    start = time.perf_counter()
    fig = planted_change_figures()
    assert time.perf_counter() - start < 5
    # +15% in a practice of 3,000 adults is detected nearly always (the change's interval excludes 1)
    assert fig[("+15%", "paired")]["detected"] > 0.97
    assert fig[("+15% from 0.70", "paired")]["detected"] > 0.97
    # the gap is called narrowed only where it is clear which side of the average the practice stands: nearly
    # always from 0.70 -> 0.805; from 0.80 -> 0.92 the midpoint (about 0.86, ~250 cases) is itself uncertain
    assert fig[("+15% from 0.70", "paired")]["narrowed"] > 0.95
    assert fig[("+15%", "paired")]["narrowed"] > 0.6
    assert fig[("+15%", "paired")]["widened"] == fig[("+15% from 0.70", "paired")]["widened"] == 0
    # no change: false alarms near 5% or below, and the interval covers the true change about 95% of the time
    for scenario in ("no change", "no change, no gap"):
        assert fig[(scenario, "paired")]["claimed"] < 0.06
        assert fig[(scenario, "paired")]["detected"] < 0.06
        assert 0.935 < fig[(scenario, "paired")]["coverage"] < 0.965
    assert 0.935 < fig[("+15%", "paired")]["coverage"] < 0.965
    # treating the dates as independent samples (the old method) misses most of it
    assert fig[("+15%", "independent")]["detected"] < 0.6
    assert fig[("no change", "independent")]["coverage"] > 0.99


if __name__ == "__main__":  # the figures for the notes: python tests/unit/test_trend.py
    for key, value in planted_change_figures().items():
        print(key, value)


def test_q_values_do_not_depend_on_row_order():
    """The running minimum within a family is exact: the same p-values in another order (so the families are
    numbered differently) give bit-identical q-values, equal to a plain per-family loop's."""
    rng = np.random.default_rng(7)
    p_values = rng.random(3000)
    p_values[rng.random(3000) < 0.1] = np.nan
    families = rng.integers(0, 200, 3000)
    q_values = stats.benjamini_hochberg(p_values, families)
    shuffled = rng.permutation(3000)
    assert np.array_equal(stats.benjamini_hochberg(p_values[shuffled], families[shuffled]), q_values[shuffled],
                          equal_nan=True)
    expected = np.full(3000, np.nan)
    for family in np.unique(families):
        rows = np.flatnonzero((families == family) & np.isfinite(p_values))
        by_p = rows[np.argsort(p_values[rows], kind="stable")]
        raw = np.minimum(p_values[by_p] * len(by_p) / np.arange(1, len(by_p) + 1), 1.0)
        expected[by_p] = np.minimum.accumulate(raw[::-1])[::-1]
    assert np.array_equal(q_values, expected, equal_nan=True)
