"""The `indicators` table (contract) and its funnels, trends and SII, from the indicator counts (sql/marts/
indicator_counts): the same statistics as registers, run on each indicator's own numerator and denominator.

- `indicators`: the `prevalence` columns with `indicator` and `kind` in place of `condition` (Wilson rate, expected by
  indirect standardisation over the indicator's denominator, exact/Byar ratio, missing = expected - observed);
- `indicator_funnel`, `indicator_trend`, `indicator_inequality`: as `funnel`, `trend` and `inequality`, keyed by
  `indicator` (SII for the ICB and PCNs on the latest date, to keep the 100,000-draw intervals cheap; the limits'
  repeatability, `reliability`, is not assessed: no pack prints an indicator's gradient).
"""
from __future__ import annotations

import logging

import pandas as pd

from .analyse import PREVALENCE_COLUMNS, prevalence_from_counts
from .config import Config

log = logging.getLogger("pipeline.indicator_tables")

INDICATOR_COLUMNS = ["period", "indicator", "kind"] + PREVALENCE_COLUMNS[2:]
SII_AREAS = ("icb", "pcn")


def indicators_from_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """indicator_counts rows -> the contract's `indicators` rows (same statistics as `prevalence`)."""
    if counts.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in INDICATOR_COLUMNS})
    kinds = counts.drop_duplicates("indicator").set_index("indicator")["kind"]
    prev = prevalence_from_counts(counts.drop(columns=["kind"]).rename(columns={"indicator": "condition"}))
    out = prev.rename(columns={"condition": "indicator"})
    out.insert(2, "kind", out["indicator"].map(kinds))
    return out[INDICATOR_COLUMNS]


def build_indicator_statistics(con, cfg: Config) -> pd.DataFrame:
    """Write `indicators`, `indicator_funnel`, `indicator_trend` and `indicator_inequality`; returns `indicators`."""
    from .indicators import _table, area_parents, funnel_table, inequality_table, trend_table

    counts = con.execute("select * from indicator_counts").df()
    table = indicators_from_counts(counts)
    as_prev = table.drop(columns=["kind"]).rename(columns={"indicator": "condition"})
    tables = {"indicators": table}
    if not table.empty:
        parents = area_parents(con)
        tables["indicator_funnel"] = funnel_table(as_prev, parents, cfg.overdispersion)
        # change over time from the paired counts (numerator patients in the cell on both dates) and the expected
        # counts on the earlier date's rates, as registers (indicators always use their internal reference rates)
        paired = {name: None if df is None else df.rename(columns={"indicator": "condition"})
                  for name, df in (("transitions", _table(con, "indicator_trend_transitions")),
                                   ("expected", _table(con, "indicator_trend_expected")))}
        tables["indicator_trend"] = trend_table(as_prev, paired["transitions"], paired["expected"])
        latest = as_prev["period"].max()
        # the packs print no indicator gradient, so the limits' repeatability (ten more simulations) is not assessed
        tables["indicator_inequality"] = inequality_table(
            as_prev[as_prev["area_type"].isin(SII_AREAS) & (as_prev["period"] == latest)], reliability_areas=())
    for name, df in tables.items():
        if name != "indicators":
            df = df.rename(columns={"condition": "indicator"})
        con.register(f"{name}_df", df)
        cols = ", ".join(f"cast({c} as date) as {c}" if c.startswith("period") else c for c in df.columns)
        con.execute(f"create or replace table {name} as select {cols} from {name}_df")
        con.unregister(f"{name}_df")
        log.debug("%s: %d rows", name, len(df))
    if table.empty:
        for name in ("indicator_funnel", "indicator_trend", "indicator_inequality"):
            con.execute(f"drop table if exists {name}")
    return table
