"""Tables built from `prevalence`: inequality, funnel (with overdispersion), comparisons (trend: test_trend.py)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipeline import indicators, stats
from pipeline.analyse import prevalence_from_counts

P1, P2 = dt.date(2024, 3, 31), dt.date(2025, 3, 31)


def _prev(rows):
    df = pd.DataFrame(rows, columns=["period", "condition", "area_type", "area_code", "group_type", "group_value",
                                     "observed", "population", "expected"])
    df["area_name"] = df["area_code"]
    return prevalence_from_counts(df)


def test_inequality_matches_stats_and_needs_all_five_quintiles():
    rows = []
    for q, (o, n) in enumerate([(300, 1000), (260, 1000), (220, 1000), (200, 1000), (150, 1000)], start=1):
        rows.append((P1, "dep", "pcn", "A", "imd_quintile", str(q), o, n, o))
        if q < 5:
            rows.append((P1, "dep", "pcn", "B", "imd_quintile", str(q), o, n, o))
    rows.append((P1, "dep", "pcn", "A", "imd_quintile", "Unknown", 5, 50, 5))
    ineq = indicators.inequality_table(_prev(rows))
    assert ineq["area_code"].tolist() == ["A"]
    want = stats.sii_crude_rate_proportion(np.array([[300, 260, 220, 200, 150]]), np.array([[1000] * 5]), seed=20240331)
    assert abs(ineq["sii"][0] - want.sii[0]) < 1e-12 and ineq["sii"][0] < 0
    assert ineq["sii_lower"][0] < ineq["sii"][0] < ineq["sii_upper"][0]
    assert ineq[["dimension", "measure"]].iloc[0].tolist() == ["imd_quintile", "crude_rate"]


def test_funnel_overdispersion_columns_only_when_asked():
    rng = np.random.default_rng(1)
    rows = [(P1, "dep", "icb", "I", "all", "All", 0, 0, 0)]
    tot_o = tot_n = 0
    for i in range(30):
        n = int(rng.integers(2000, 9000))
        o = int(rng.binomial(n, rng.uniform(0.08, 0.16)))
        rows.append((P1, "dep", "practice", f"X{i}", "all", "All", o, n, o * 1.0))
        tot_o, tot_n = tot_o + o, tot_n + n
    rows[0] = (P1, "dep", "icb", "I", "all", "All", tot_o, tot_n, tot_o * 1.0)
    prev = _prev(rows)
    parents = pd.DataFrame({"area_type": "practice", "area_code": [f"X{i}" for i in range(30)], "parent_type": "icb",
                            "parent_code": "I"})
    plain = indicators.funnel_table(prev, parents)
    assert "od_phi" not in plain
    od = indicators.funnel_table(prev, parents, "additive")
    p = od[od.statistic == "proportion"]
    assert (p["od_phi"] > 1).all()
    assert (p["od_upper_95"] >= p["upper_95"] - 1e-12).all()
    flagged = (p["significance"] != "Not significant").sum()
    assert (p["od_significance"] != "Not significant").sum() < flagged


def test_comparisons_hold_what_the_contract_declares():
    """The `comparison` values and the columns each kind fills, as schema.py declares them (it once said
    `group` / `parent`, which no row ever held). Group rows are labelled from the rate difference's interval: 2/4
    against 12/83 has a rate ratio interval above 1 (log method: 1.14 to 10.5) but a difference interval
    (Newcombe) reaching below 0, so `similar`."""
    from pipeline.schema import COMPARISON_KINDS, OUTPUT_BY_NAME

    rows = [(P1, "dep", "england", "E", "all", "All", 300, 2000, 300.0),
            (P1, "dep", "icb", "I", "all", "All", 140, 1000, 150.0),
            (P1, "dep", "pcn", "P", "all", "All", 60, 400, 55.0),
            (P1, "dep", "practice", "A", "all", "All", 14, 87, 12.0),
            (P1, "dep", "practice", "A", "ethnicity", "White", 12, 83, 11.0),
            (P1, "dep", "practice", "A", "ethnicity", "Asian", 2, 4, 1.0)]
    parents = pd.DataFrame({"area_type": ["practice", "practice", "pcn", "icb"], "area_code": ["A", "A", "P", "I"],
                            "parent_type": ["pcn", "icb", "icb", "england"], "parent_code": ["P", "I", "I", "E"]})
    comp = indicators.comparisons_table(_prev(rows), parents, {"ethnicity": "White"})
    assert set(comp["comparison"]) == set(COMPARISON_KINDS)
    meaning = dict(OUTPUT_BY_NAME["comparisons"].columns)["comparison"]
    assert all(kind in meaning for kind in COMPARISON_KINDS)
    group = comp[comp["comparison"] == "group_vs_reference"].iloc[0]
    assert group["reference"] == "ethnicity White" and group["label"] == "similar"
    assert group["rate_ratio_lower"] > 1 and group["rate_difference_lower"] < 0
    parent = comp[comp["comparison"] != "group_vs_reference"]
    assert set(parent["reference"]) == {"pcn P", "icb I", "england E"}
    assert parent[["rate_ratio", "rate_ratio_lower", "rate_difference", "rate_difference_upper"]].isna().all().all()
    ratio_vs_icb = parent[(parent["comparison"] == "ratio_vs_icb") & (parent["area_code"] == "A")].iloc[0]
    assert abs(ratio_vs_icb["value"] - 14 / 12) < 1e-12 and abs(ratio_vs_icb["reference_value"] - 140 / 150) < 1e-12
