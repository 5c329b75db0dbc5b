"""Change over time and within-area gaps as the packs print them, computed from published counts only.

Every number a pack prints must be computable from what is published (DESIGN, disclosure control): an interval
worked out from true counts would un-round them. So the packs do not print the warehouse's `trend` table; they
call the same statistics (pipeline.stats) on the controlled counts:

* the change in each cell's ratio between the previous and the latest date: ``stats.paired_ratio_change`` on the
  published observed and expected counts of both dates and the published (rounded) number of patients who are a
  case in the cell on both dates (``trend_transitions.cases_both``). A hidden overlap (1..threshold) is taken as 0,
  which widens the interval (no shared patients): the conservative side. The rounding of the published counts is
  allowed for in the variance. The published expected counts use each date's own reference rates, so the change
  printed is the change in the gap to the comparator (the ICB average on each date); the comparator is 1.
* q-values: Benjamini-Hochberg over every cell of the pack's family (all conditions and groups of the area(s) the
  pack reports on for that pair of dates), and the label from them (narrowed / widened / no clear change);
* groups within an area against the area's own standardised level: ``stats.within_area_ratio`` on the published
  observed and expected counts of the group and of the area.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import stats
from pipeline.disclosure import Policy, redact_round

CELL = ["condition", "area_type", "area_code", "group_type", "group_value"]


def control_overlap(raw: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    out = raw.copy()
    for c in ("period_from", "period_to"):
        out[c] = pd.to_datetime(out[c]).dt.date
    out["cases_both"] = redact_round(out["cases_both"].to_numpy(dtype=float), policy)
    return out


def _published(rows: pd.DataFrame) -> pd.DataFrame:
    """observed / expected / population of controlled prevalence rows, NaN where hidden."""
    out = pd.DataFrame({c: rows[c].to_numpy() for c in CELL})
    out["expected"] = rows["expected"].to_numpy(dtype=float)
    for count in ("observed", "population"):
        if count in rows:
            flag = f"{count}_redacted"
            hidden = rows[flag].astype(bool).to_numpy() if flag in rows else False
            out[count] = np.where(hidden, np.nan, rows[count].to_numpy(dtype=float))
    return out


def published_changes(prev: pd.DataFrame, overlap: pd.DataFrame | None, period_from, period_to, area_type: str,
                      codes, policy: Policy) -> pd.DataFrame:
    """Per cell (condition x group) of the areas `codes` of `area_type`: the published ratios on both dates, the
    change with its paired 95% interval, p-value, BH q-value over all these cells, and the label. Cells with a
    hidden or zero count on either date get NaN and label ''."""
    cols = CELL + ["ratio_from", "ratio_to", "change", "change_lower", "change_upper", "p_value", "q_value", "label"]
    if period_from is None:
        return pd.DataFrame(columns=cols)
    mine = prev[(prev["area_type"] == area_type) & prev["area_code"].isin(list(codes))]
    before = _published(mine[mine["period"] == period_from])
    after = _published(mine[mine["period"] == period_to])
    cells = before.merge(after, on=CELL, suffixes=("_from", "_to"))
    if cells.empty:
        return pd.DataFrame(columns=cols)
    if overlap is not None and not overlap.empty:
        pair = overlap[(overlap["period_from"] == period_from) & (overlap["period_to"] == period_to)]
        cells = cells.merge(pair[CELL + ["cases_both"]], on=CELL, how="left")
    else:
        cells["cases_both"] = np.nan
    shared = np.nan_to_num(cells["cases_both"].to_numpy(dtype=float), nan=0.0)  # hidden: no covariance assumed
    # the width of the band a published count was rounded within (for the rounding variance)
    rounding = 6.0 if policy.method == "midpoint6" else float(policy.rounding)
    res = stats.paired_ratio_change(cells["observed_from"].to_numpy(float), cells["expected_from"].to_numpy(float),
                                    cells["observed_to"].to_numpy(float), cells["expected_to"].to_numpy(float),
                                    shared, count_rounding=rounding)
    out = cells[CELL].copy()
    for name in ("ratio_from", "ratio_to", "change", "change_lower", "change_upper", "p_value"):
        out[name] = np.asarray(getattr(res, name), dtype=float)
    out["q_value"] = stats.benjamini_hochberg(out["p_value"].to_numpy(float))
    out["label"] = stats.change_labels(np.asarray(res.direction, dtype=float), out["q_value"].to_numpy(float))
    return out[cols].reset_index(drop=True)


def within_area(prev: pd.DataFrame, period, area_type: str, codes, breakdowns) -> pd.DataFrame:
    """Each group of each area (latest date, `breakdowns`; 'Unknown' groups are data quality and left out) against
    its own area's standardised level, from published counts: value, 95% and 99.8% limits, patients affected
    (how many more the group would have at its area's level), and a tier from the upper 95% limit, i.e. how large
    a shortfall the data clearly show: 4 below 0.80, 3 from 0.80, 2 from 0.90, 1 from 0.95 to 1, 0 when the
    interval reaches 1 (no clear gap). Ranked by tier, then by patients affected: significance and size first, so
    that a small group recorded at half its neighbours' level comes before a large group at 0.95, then the
    number of patients among gaps of a similar size."""
    d = prev[(prev["period"] == period) & (prev["area_type"] == area_type) & prev["area_code"].isin(list(codes))]
    total = _published(d[d["group_type"] == "all"])[["condition", "area_code", "observed", "expected"]]
    groups = d[d["group_type"].isin(list(breakdowns)) & (d["group_value"] != "Unknown")]
    g = _published(groups).merge(total, on=["condition", "area_code"], suffixes=("", "_area"))
    res = stats.within_area_ratio(g["observed"].to_numpy(float), g["expected"].to_numpy(float),
                                  g["observed_area"].to_numpy(float), g["expected_area"].to_numpy(float))
    for name in ("value", "lower", "upper", "lower_998", "upper_998", "affected"):
        g[f"within_{name}"] = np.asarray(getattr(res, name), dtype=float)
    upper = np.round(g["within_upper"].to_numpy(float), 2)  # as printed: an upper limit shown as 1.00 is not below 1
    g["tier"] = np.select([upper < 0.80, upper < 0.90, upper < 0.95, upper < 1.0], [4, 3, 2, 1], default=0)
    g = g.sort_values(["tier", "within_affected", "within_value", "area_code", "condition", "group_type", "group_value"],
                      ascending=[False, False, True, True, True, True, True], kind="stable")
    return g.reset_index(drop=True)
