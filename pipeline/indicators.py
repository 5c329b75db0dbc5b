"""Tables built from `prevalence` with the statistics in pipeline.stats, all vectorised over cells:

- `inequality`: slope and relative index of inequality across IMD quintiles (contract; measure `crude_rate`), with
  the repeatability of its Monte Carlo limits (PHE's reliability_stat) for the ICB and PCN rows of the latest date;
- `funnel`: practices, PCNs and neighbourhoods against their ICB (contract; `proportion` and `ratio`);
- `trend`: change between consecutive periods and first-to-last (paired: the same patients on both dates), on the
  earlier date's reference rates, with a label on the gap to the comparator (FDR-controlled);
- `comparisons`: rate ratios and differences against a reference group, and each area against its parent;
- `dsr`: directly standardised rates (2013 European Standard Population, Dobson intervals).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from . import progress, stats
from .config import Config
from .schema import OUTPUT_BY_NAME, output_columns
from .warehouse import query, read_table, tables, write_table

log = logging.getLogger("pipeline.indicators")

KEY = ["period", "condition", "area_type", "area_code"]
SII_AREA_TYPES = ("england", "icb", "pcn", "practice", "neighbourhood")
# the deprivation breakdowns an SII is fitted across: the patients' own IMD quintile (patient path) and the
# practice's national IMD quintile or decile (published data, where counts are per practice)
SII_DIMENSIONS = {"imd_quintile": 5, "practice_imd_quintile": 5, "practice_imd_decile": 10}
FUNNEL_AREA_TYPES = ("icb", "pcn", "practice", "neighbourhood")  # each against its parent: ICB, or England (ICBs)
FUNNEL_PARENT_TYPES = ("icb", "england")
SII_SEED = 20240331
RELIABILITY_SETS = 10               # PHE reliability_stat: the simulation run 10 times
RELIABILITY_AREA_TYPES = ("icb", "pcn")  # the areas whose gradient the packs print (latest date)
# poor: a rerun could move a printed limit's last digit (SII printed in percentage points to 1 dp, RII to 2 dp)
POOR_SII_MAD = 0.0005
POOR_RII_MAD = 0.005
DEFAULT_REFERENCE_GROUPS = {"ethnicity": "White", "imd_quintile": "5", "sex": "F"}


def build_indicator_tables(con, prev: pd.DataFrame, cfg: Config) -> None:
    have = set(tables(con))
    parents = area_parents(con, neighbourhoods="stratified_counts" in have)
    england = prev.loc[prev["area_type"] == "england", "area_code"].unique()
    if len(england):  # published data: each ICB is compared with England
        icbs = prev.loc[prev["area_type"] == "icb", "area_code"].unique()
        parents = pd.concat([parents, pd.DataFrame({"area_type": "icb", "area_code": icbs, "parent_type": "england",
                                                    "parent_code": england[0]})], ignore_index=True)
    built = {
        "inequality": inequality_table(prev),
        "funnel": funnel_table(prev, parents, cfg.overdispersion),
        "trend": trend_table(prev, _table(con, "trend_transitions"), _table(con, "trend_expected"),
                             cfg.reference.rates == "internal"),
        "comparisons": comparisons_table(prev, parents, {**DEFAULT_REFERENCE_GROUPS, **cfg.report.get("reference_groups", {})}),
    }
    if "area_group_strata" in have:  # patient-level strata (the published data have no age bands)
        built["dsr"] = dsr_table(con, {condition.id: condition.min_age for condition in cfg.conditions})
    from .expectations import validate_output

    for name, df in built.items():
        validate_output(name, df)
        write_table(con, name, df)
        log.debug("%s: %d rows", name, len(df))
        progress.current().update(name, rows=len(df))


def _table(con, name: str) -> pd.DataFrame | None:
    return read_table(con, name) if name in tables(con) else None


def area_parents(con, neighbourhoods: bool = True) -> pd.DataFrame:
    """Each practice's PCN and ICB, each PCN's ICB (the ICB holding most of its practices), and each
    neighbourhood's ICB (where most of its patients are registered) when the warehouse has neighbourhoods."""
    hierarchy = query(con, "area_parents").df()
    if not neighbourhoods:
        return hierarchy
    return pd.concat([hierarchy, query(con, "area_parents_neighbourhoods").df()], ignore_index=True)


def inequality_table(prev: pd.DataFrame, reliability_areas: tuple[str, ...] = RELIABILITY_AREA_TYPES) -> pd.DataFrame:
    """SII/RII of the crude rate across each deprivation breakdown in `prev` (SII_DIMENSIONS), one implementation
    (same seed, same draws) whatever the source; the Monte Carlo limits' repeatability (10 more simulations) for the
    `reliability_areas` on the latest date, the ones the packs print (quintile gradients only)."""
    parts = [_inequality_dimension(prev[prev["group_type"] == dim], dim, n_quantiles, reliability_areas)
             for dim, n_quantiles in SII_DIMENSIONS.items() if (prev["group_type"] == dim).any()]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=output_columns("inequality"))
    return pd.concat(parts, ignore_index=True).sort_values(KEY + ["dimension"], kind="stable").reset_index(drop=True)


def _inequality_dimension(rows: pd.DataFrame, dimension: str, n_quantiles: int,
                          reliability_areas: tuple[str, ...]) -> pd.DataFrame:
    q = rows[(rows["group_value"] != "Unknown") & rows["area_type"].isin(SII_AREA_TYPES)]
    cols = output_columns("inequality")
    if q.empty:
        return pd.DataFrame(columns=cols)
    area_id = q.groupby(KEY, sort=True).ngroup().to_numpy()  # areas numbered in key order, vectorised
    groups, (obs, pop) = stats.quantile_matrix(area_id, q["group_value"].astype(int).to_numpy(),
                                               q["observed"].to_numpy(float), q["population"].to_numpy(float),
                                               n_quantiles=n_quantiles)
    complete = np.all(pop > 0, axis=1)
    keys = q[KEY].assign(_id=area_id).drop_duplicates("_id").set_index("_id").loc[np.asarray(groups)]
    out = keys[complete].reset_index(drop=True)
    # repeatability of the Monte Carlo limits (PHE's reliability_stat) where the packs print them: the ICB and
    # its PCNs on the latest date. Their limits come from that run, whose first set of draws is every area's (same
    # seed, draws shared by all areas), so they are the limits a plain run gives and no area is simulated twice.
    assess = (out["area_type"].isin(list(reliability_areas)) & (out["period"] == out["period"].max())).to_numpy() \
        & (n_quantiles == 5)  # the packs print quintile gradients only
    limits = ("sii", "sii_lower", "sii_upper", "rii", "rii_lower", "rii_upper")
    values = {c: np.full(len(out), np.nan) for c in limits + ("sii_mad", "rii_mad")}
    for rows, sets in ((~assess, 0), (assess, RELIABILITY_SETS)):
        if rows.any():
            res = stats.sii_crude_rate_proportion(obs[complete][rows], pop[complete][rows], repetitions=100_000,
                                                  seed=SII_SEED, reliability_sets=sets)
            for c in limits + (("sii_mad", "rii_mad") if sets else ()):
                values[c][rows] = np.asarray(getattr(res, c), dtype=float)
    sii_mad, rii_mad = values["sii_mad"], values["rii_mad"]
    out["sii_mad"], out["rii_mad"] = sii_mad, rii_mad
    poor = (sii_mad >= POOR_SII_MAD) | (rii_mad >= POOR_RII_MAD)
    out["reliability"] = np.where(np.isfinite(sii_mad), np.where(poor, "poor", "good"), "")
    out["period"] = pd.to_datetime(out["period"])
    out["dimension"] = dimension
    out["measure"] = "crude_rate"
    for c in limits:
        out[c] = values[c]
    return out[cols].sort_values(KEY, kind="stable").reset_index(drop=True)


def funnel_table(prev: pd.DataFrame, parents: pd.DataFrame, overdispersion: str = "none") -> pd.DataFrame:
    cols = output_columns("funnel")
    allrows = prev[prev["group_type"] == "all"]
    areas = allrows[allrows["area_type"].isin(FUNNEL_AREA_TYPES)]
    top = allrows[allrows["area_type"].isin(FUNNEL_PARENT_TYPES)][
        ["period", "condition", "area_type", "area_code", "observed", "population", "expected"]]
    top = top.rename(columns={"area_type": "parent_type", "area_code": "parent_code", "observed": "p_obs",
                              "population": "p_pop", "expected": "p_exp"})
    par = parents[parents["parent_type"].isin(FUNNEL_PARENT_TYPES)]
    df = areas.merge(par, on=["area_type", "area_code"]).merge(top, on=["period", "condition", "parent_type", "parent_code"])
    if df.empty:
        return pd.DataFrame(columns=cols)
    parent_p = pd.Series(stats.divide(df["p_obs"].to_numpy(float), df["p_pop"].to_numpy(float)), index=df.index)
    lim = stats.funnel_limits_proportion(parent_p.to_numpy(), df["population"].to_numpy(float))
    prop = df[["period", "condition", "area_type", "area_code", "parent_type", "parent_code"]].copy()
    prop["statistic"] = "proportion"
    prop["observed"] = df["observed"].to_numpy(float)
    prop["denominator"] = df["population"].to_numpy(float)
    prop["value"] = df["rate"].to_numpy()
    prop["parent_value"] = parent_p.to_numpy()
    prop["lower_95"], prop["upper_95"], prop["lower_998"], prop["upper_998"] = lim
    prop["significance"] = stats.funnel_significance_proportion(df["observed"].to_numpy(float), df["population"].to_numpy(float),
                                                                parent_p.to_numpy())
    # standardised ratio against the ICB's own ratio: expected counts rescaled so that the ICB sits at its ratio
    parent_ratio = stats.divide(df["p_obs"].to_numpy(float), df["p_exp"].to_numpy(float))
    exp_vs_parent = df["expected"].to_numpy(float) * parent_ratio
    rlim = stats.funnel_limits_ratio(exp_vs_parent)
    ratio = prop[["period", "condition", "area_type", "area_code", "parent_type", "parent_code"]].copy()
    ratio["statistic"] = "ratio"
    ratio["observed"] = df["observed"].to_numpy(float)
    ratio["denominator"] = df["expected"].to_numpy(float)
    ratio["value"] = df["ratio"].to_numpy()
    ratio["parent_value"] = parent_ratio
    ratio["lower_95"], ratio["upper_95"], ratio["lower_998"], ratio["upper_998"] = (np.asarray(limit) * parent_ratio for limit in rlim)
    ratio["significance"] = stats.funnel_significance_ratio(df["observed"].to_numpy(float), exp_vs_parent)
    out = pd.concat([prop, ratio], ignore_index=True)
    if overdispersion != "none":
        out = add_overdispersion(out, overdispersion)
        cols = output_columns("funnel", optional=True)
    return out[cols].sort_values(list(OUTPUT_BY_NAME["funnel"].key), kind="stable").reset_index(drop=True)


def add_overdispersion(f: pd.DataFrame, method: str) -> pd.DataFrame:
    """Overdispersion-adjusted limits (Spiegelhalter 2005) beside the fixed ones, estimated within each
    period x condition x ICB x area type x statistic (a loop over those few sets, vectorised inside)."""
    f = f.copy()
    for column in ("od_phi", "od_tau2", "od_lower_95", "od_upper_95", "od_lower_998", "od_upper_998"):
        f[column] = np.nan
    f["od_method"] = method
    f["od_significance"] = ""
    for _, idx in f.groupby(["period", "condition", "parent_code", "area_type", "statistic"]).groups.items():
        subset = f.loc[idx]
        stat = subset["statistic"].iloc[0]
        target = subset["parent_value"].iloc[0]
        limits = stats.funnel_overdispersion(subset["observed"].to_numpy(float), subset["denominator"].to_numpy(float),
                                             statistic=stat, target=target, method=method)
        f.loc[idx, "od_phi"], f.loc[idx, "od_tau2"] = limits.phi, limits.tau2
        f.loc[idx, "od_lower_95"], f.loc[idx, "od_upper_95"] = limits.lower_95, limits.upper_95
        f.loc[idx, "od_lower_998"], f.loc[idx, "od_upper_998"] = limits.lower_998, limits.upper_998
        values = subset["value"].to_numpy(float)
        lab = np.select([values > limits.upper_998, values > limits.upper_95, values < limits.lower_998, values < limits.lower_95],
                        [stats.SIG_HIGH_001, stats.SIG_HIGH_025, stats.SIG_LOW_001, stats.SIG_LOW_025], stats.SIG_NOT)
        f.loc[idx, "od_significance"] = np.where(np.isfinite(values), lab, "")
    return f


TREND_COLUMNS = output_columns("trend")
TREND_KEY = list(OUTPUT_BY_NAME["trend"].key)
TREND_FAMILY = ["period_from", "period_to", "area_type", "area_code"]


def trend_table(prev: pd.DataFrame, transitions: pd.DataFrame, fixed_expected: pd.DataFrame,
                internal_reference: bool = True, alpha: float = 0.05) -> pd.DataFrame:
    """Change over time (DESIGN "Change over time"), per pair of dates (consecutive, and first to last) x
    condition x area x group, from the paired counts of `trend_transitions` and the fixed-rate expected counts
    of `trend_expected`:

    * `ratio_from`, `ratio_to`: observed / expected on each date, both on the EARLIER date's reference rates, so
      `change = ratio_to / ratio_from` keeps a change that the whole dataset shares;
    * the 95% interval of `change` counts the same patients on both dates (stats.paired_ratio_change: the
      variance comes from the patients whose status differs, `cases_both` being those who are a case in the cell
      on both dates);
    * `comparator_change`: the dataset's own change on the same rates (1 with external reference rates, which
      are then the comparator); `gap_from`, `gap_to`: the cell's ratio over the comparator's on each date, and
      `gap_change` their ratio, with its interval (the comparator taken as fixed);
    * `p_value` for "the gap narrowed / widened" (distance from 1, intersection-union test), `q_value` its
      Benjamini-Hochberg adjustment over the cells one pack shows about one area (every condition and group of
      the area for the same pair of dates), and `label`: `narrowed` / `widened` where `q_value <= alpha`,
      `no clear change` otherwise, also where no test can be made (no case on a date: `ratio_from`, `ratio_to`
      and `change` are still given, the interval and `p_value` are NaN)."""
    periods = sorted(prev["period"].unique())
    if len(periods) < 2 or transitions is None or fixed_expected is None or fixed_expected.empty:
        return pd.DataFrame(columns=TREND_COLUMNS)
    obs = prev[["period", "condition", "area_type", "area_code", "group_type", "group_value", "observed"]]
    obs = obs.assign(period=pd.to_datetime(obs["period"]))
    cells = fixed_expected.copy()
    for column in ("period_from", "period_to"):
        cells[column] = pd.to_datetime(cells[column])
    cell_key = ["condition", "area_type", "area_code", "group_type", "group_value"]
    cells = cells.merge(obs.rename(columns={"period": "period_from", "observed": "observed_from"}),
                        on=["period_from"] + cell_key, how="inner")
    cells = cells.merge(obs.rename(columns={"period": "period_to", "observed": "observed_to"}),
                        on=["period_to"] + cell_key, how="inner")
    moves = transitions[TREND_KEY + ["cases_both"]].copy()
    for column in ("period_from", "period_to"):
        moves[column] = pd.to_datetime(moves[column])
    cells = cells.merge(moves, on=TREND_KEY, how="left")
    cells["cases_both"] = cells["cases_both"].fillna(0).astype("int64")
    if internal_reference:
        # the comparator: the whole dataset (the sum of the ICB `all` rows) on the same fixed rates, on each date
        # every ICB with people on that date (not only the ICBs with people on both, which `cells` keeps)
        top = fixed_expected[(fixed_expected["area_type"] == "icb") & (fixed_expected["group_type"] == "all")].copy()
        for column in ("period_from", "period_to"):
            top[column] = pd.to_datetime(top[column])
        for side in ("from", "to"):
            top = top.merge(obs.rename(columns={"period": f"period_{side}", "observed": f"observed_{side}"}),
                            on=[f"period_{side}"] + cell_key, how="left")
        top = top.fillna({"observed_from": 0, "observed_to": 0, "expected_from": 0.0, "expected_to": 0.0})
        comp = top.groupby(["period_from", "period_to", "condition"])[
            ["observed_from", "observed_to", "expected_from", "expected_to"]].sum()
        comp = pd.DataFrame({"comparator_from": stats.divide(comp["observed_from"], comp["expected_from"]),
                             "comparator_to": stats.divide(comp["observed_to"], comp["expected_to"])},
                            index=comp.index).reset_index()
        cells = cells.merge(comp, on=["period_from", "period_to", "condition"], how="left")
    else:
        cells["comparator_from"] = cells["comparator_to"] = 1.0
    res = stats.paired_ratio_change(cells["observed_from"].to_numpy(float), cells["expected_from"].to_numpy(float),
                                    cells["observed_to"].to_numpy(float), cells["expected_to"].to_numpy(float),
                                    cells["cases_both"].to_numpy(float), cells["comparator_from"].to_numpy(float),
                                    cells["comparator_to"].to_numpy(float))
    out = cells[TREND_KEY + ["observed_from", "observed_to", "expected_from", "expected_to", "cases_both"]].copy()
    for name in ("ratio_from", "ratio_to", "change", "change_lower", "change_upper", "gap_from", "gap_to",
                 "gap_change", "gap_change_lower", "gap_change_upper", "p_value"):
        out[name] = np.asarray(getattr(res, name), dtype=float)
    out["comparator_change"] = stats.divide(cells["comparator_to"].to_numpy(float),
                                            cells["comparator_from"].to_numpy(float))
    family = out.groupby(TREND_FAMILY, sort=False).ngroup().to_numpy()
    out["q_value"] = stats.benjamini_hochberg(out["p_value"].to_numpy(float), family)
    labels = stats.change_labels(np.asarray(res.direction, dtype=float), out["q_value"].to_numpy(float), alpha)
    # the contract's three labels only: where no test could be made (no case on a date), no change is claimed
    out["label"] = np.where(labels == "", stats.CHANGE_NONE, labels)
    out["period_from"] = out["period_from"].dt.date
    out["period_to"] = out["period_to"].dt.date
    return sort_trend(out[TREND_COLUMNS])


def sort_trend(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(TREND_KEY, kind="stable").reset_index(drop=True)


def comparisons_table(prev: pd.DataFrame, parents: pd.DataFrame, reference_groups: dict) -> pd.DataFrame:
    """Each group against the area's reference group (rate ratio, log method; rate difference, Newcombe), and each
    area's `all` row against its parent (rate and standardised ratio, labelled higher / similar / lower from the
    area's 95% interval against the parent's value, as Fingertips does)."""
    cols = output_columns("comparisons")
    parts = []
    for group_type, ref in reference_groups.items():
        group_rows = prev[(prev["group_type"] == group_type)]
        reference_rows = group_rows[group_rows["group_value"] == str(ref)][KEY + ["observed", "population"]]
        paired = group_rows.merge(reference_rows, on=KEY, suffixes=("", "_ref"))
        paired = paired[paired["group_value"] != str(ref)]
        if paired.empty:
            continue
        observed, population = paired["observed"].to_numpy(float), paired["population"].to_numpy(float)
        reference_observed, reference_population = paired["observed_ref"].to_numpy(float), paired["population_ref"].to_numpy(float)
        ratio, ratio_lower, ratio_upper = stats.rate_ratio(observed, population, reference_observed, reference_population)
        difference, difference_lower, difference_upper = stats.rate_difference(observed, population, reference_observed, reference_population)
        out = paired[KEY + ["group_type", "group_value"]].copy()
        out["comparison"] = "group_vs_reference"
        out["reference"] = f"{group_type} {ref}"
        out["value"] = stats.divide(observed, population)
        out["reference_value"] = stats.divide(reference_observed, reference_population)
        out["rate_ratio"], out["rate_ratio_lower"], out["rate_ratio_upper"] = ratio, ratio_lower, ratio_upper
        out["rate_difference"], out["rate_difference_lower"], out["rate_difference_upper"] = difference, difference_lower, difference_upper
        out["label"] = stats.compare_to_parent(difference_lower, difference_upper, 0.0)
        parts.append(out)
    allrows = prev[prev["group_type"] == "all"]
    for stat in ("rate", "ratio"):
        child = allrows.merge(parents, on=["area_type", "area_code"])
        par = allrows[KEY + [stat]].rename(columns={"area_type": "parent_type", "area_code": "parent_code", stat: "pv"})
        paired = child.merge(par, on=["period", "condition", "parent_type", "parent_code"])
        if paired.empty:
            continue
        out = paired[KEY].copy()
        out["comparison"] = f"{stat}_vs_" + paired["parent_type"]
        out["group_type"], out["group_value"] = "all", "All"
        out["reference"] = paired["parent_type"] + " " + paired["parent_code"]
        out["value"] = paired[stat]
        out["reference_value"] = paired["pv"]
        out["label"] = stats.compare_to_parent(paired[f"{stat}_lower"].to_numpy(float), paired[f"{stat}_upper"].to_numpy(float),
                                               paired["pv"].to_numpy(float))
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=cols)
    res = pd.concat(parts, ignore_index=True)
    for column in cols:
        if column not in res:
            res[column] = np.nan
    return res[cols].reset_index(drop=True)


def dsr_table(con, min_ages: dict[str, int]) -> pd.DataFrame:
    """Directly standardised rates per 100,000 (2013 European Standard Population, Dobson limits) for every
    period x condition x area x group (not by age band). The standard is restricted to the condition's ages: the band
    holding `min_age` gets the share of its five years at or above it (a min_age above 90 leaves no band: NA). NA
    when the total count is below 10 or when any standard band has no population in the cell (its rate would be
    undefined); `note` says which."""
    cols = output_columns("dsr")
    df = query(con, "dsr_counts").df()
    if df.empty:
        return pd.DataFrame(columns=cols)
    from .schema import AGE_BANDS

    band_idx = {band: index for index, band in enumerate(AGE_BANDS)}
    lows = np.arange(0, 95, 5)
    cell_key = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]
    cells = df[cell_key].drop_duplicates().reset_index(drop=True)
    cells["cell"] = np.arange(len(cells))
    df = df.merge(cells, on=cell_key)
    band_count = len(AGE_BANDS)
    obs = np.zeros((len(cells), band_count))
    pop = np.zeros((len(cells), band_count))
    band_of_row = df["age_band"].map(band_idx).to_numpy()
    obs[df["cell"].to_numpy(), band_of_row] = df["observed"].to_numpy(float)
    pop[df["cell"].to_numpy(), band_of_row] = df["population"].to_numpy(float)
    min_age = cells["condition"].map(min_ages).fillna(0).to_numpy(float)
    frac = np.clip((lows[None, :] + 5 - min_age[:, None]) / 5.0, 0.0, 1.0)
    frac[:, -1] = (min_age <= 90).astype(float)  # 90+ is open-ended
    weights = stats.ESP2013[None, :] * frac
    used = weights > 0
    res = stats.dsr_dobson(obs[used], pop[used], weights[used], np.broadcast_to(cells["cell"].to_numpy()[:, None], weights.shape)[used])
    complete = ~np.any(used & (pop <= 0), axis=1)
    total = obs.sum(axis=1)
    out = cells[cell_key].copy()
    out["observed"] = total.astype("int64")
    out["population"] = pop.sum(axis=1).astype("int64")
    order = np.asarray(res.groups).astype(int)
    val = np.full(len(cells), np.nan)
    lower, upper = val.copy(), val.copy()
    val[order], lower[order], upper[order] = res.value, res.lower, res.upper
    weighted = used.any(axis=1)  # min_age above 90: the open 90+ band cannot be split, the standard has no weight
    shown = complete & weighted & (total >= 10)
    out["dsr"], out["dsr_lower"], out["dsr_upper"] = (np.where(shown, values, np.nan) for values in (val, lower, upper))
    out["standard"] = "ESP2013"
    out["note"] = np.where(shown, "", np.where(~weighted, "min_age above 90: no standard band to weight",
                                               np.where(total < 10, "fewer than 10 cases",
                                                        "an age band has no population")))
    return out[cols].sort_values(cell_key, kind="stable").reset_index(drop=True)
