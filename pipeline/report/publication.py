"""Everything one run publishes, as one model of cells and relations, protected once (see
:mod:`pipeline.disclosure`, "publication model").

The packs, the ICS summary, the community summaries and their CSVs all print from the frames this module
returns, so one cell is hidden or shown alike everywhere, and the protection knows every relation a reader of
all the files together can use:

* the groups of each breakdown add up to the area's total (recorded and registered, per condition and date); an
  ICB or PCN breakdown has a row (hidden when its counts are 0) for every group another ICB or PCN breakdown of the
  condition has, since a missing row would say that nobody is in the group;
* practices add up to their PCN, PCNs to their ICB (every group);
* neighbourhoods plus the people with no neighbourhood add up to the whole dataset (the ICBs together);
* registers with the same minimum age share their registered populations; the data-quality 'registered' and
  'ethnicity not recorded' counts are the all-ages registered population of the area and of its 'Unknown'
  ethnic group, and 'no LSOA' + 'LSOA not matched' its 'Unknown' deprivation group;
* recorded <= registered; a Core20 part <= its group;
* rows read = rows loaded + rows rejected;
* indicators (care, outcome, case-finding): numerator <= denominator; their groups, practices and PCNs add up like
  registers'; a denominator that is a register's recorded count is the same cell as that count (one key), a
  register's age slice is at most its recorded count, and a case-finding denominator (people in an age range not on
  the register) plus the diagnosed people in that range is the registered population of that range (the range is
  the indicator's own ages, which may start below the register's minimum age); the register's patients in such a
  range, or in the age slices that tile it (18-79 and 80+), plus those outside it are its recorded count; an
  indicator has a
  row (hidden when its counts are 0) for every group its register has within the indicator's ages, since a missing
  row would say that the register has nobody there.

Cells are only linked across dates through nothing: each date's cells are protected on their own, so a date is
published the same way in every pack that shows it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.disclosure import CellSpace, Policy, protect, publish, round_count

DQ_COLUMNS = ("population", "ethnicity_not_recorded", "lsoa_missing", "lsoa_unmatched", "no_neighbourhood")


@dataclass
class Published:
    cells: object                      # the model (disclosure.Cells), for audits and tests
    prev: pd.DataFrame                 # controlled prevalence rows (numeric, NaN = hidden, *_redacted flags)
    data_quality: pd.DataFrame | None  # controlled data-quality counts
    load_summary: pd.DataFrame | None  # controlled input row counts
    core20: pd.DataFrame | None        # Core20 parts: published counts (NaN = hidden)
    indicators: pd.DataFrame | None = None  # controlled indicator rows (prevalence-shaped, `condition` = indicator)


def _key_frame(frame: pd.DataFrame, kind: str, detail) -> pd.DataFrame:
    return pd.DataFrame(dict(kind=kind, period=frame["period"].astype(str).to_numpy(),
                             area_type=frame["area_type"].to_numpy(), area_code=frame["area_code"].to_numpy(),
                             group_type=frame["group_type"].to_numpy() if "group_type" in frame else "all",
                             group_value=frame["group_value"].to_numpy() if "group_value" in frame else "All",
                             detail=detail))


def _value_detail(values) -> np.ndarray:
    """Cells of the same area, group and kind with the same value are one cell (a shared denominator): merging
    two cells that merely happen to be equal only makes the protection stricter."""
    return np.asarray(pd.Series(np.asarray(values, dtype=float)).map("{:.0f}".format))


def _add_sums(space: CellSpace, namespace: str, parts, totals, keys: pd.DataFrame) -> None:
    """The cells `parts` add up to the cells `totals`, set by set (`keys`: a row per part, then per total)."""
    space.add_sets(namespace, np.r_[parts, totals], keys,
                   np.r_[np.zeros(len(parts), bool), np.ones(len(totals), bool)])


def _group_sets(space: CellSpace, prev: pd.DataFrame, handles: np.ndarray, kind: str) -> None:
    """Each breakdown of an area (condition, date) adds up to its `all` row."""
    gt = prev["group_type"].to_numpy()
    base = prev[["period", "condition", "area_type", "area_code"]].astype(str)
    for breakdown in pd.unique(gt[gt != "all"]):
        take = (gt == breakdown) | (gt == "all")
        keys = base[take].assign(breakdown=breakdown)
        space.add_sets(f"{kind}-groups", handles[take], keys, gt[take] == "all")


def _hierarchy_sets(space: CellSpace, frame: pd.DataFrame, handles: dict[str, np.ndarray], parents: pd.Series,
                    cols=("period", "condition", "group_type", "group_value")) -> None:
    """Practices add up to their PCN, PCNs to their ICB (`parents`: each row's parent code), in every set of
    `cols` (e.g. group by group), for each kind of cell in `handles` ({name: handles})."""
    at = frame["area_type"].to_numpy()
    for child, parent in (("practice", "pcn"), ("pcn", "icb")):
        members = (at == child) & parents.notna().to_numpy()
        totals = at == parent
        if not members.any() or not totals.any():
            continue
        keys = pd.concat([frame.loc[members, list(cols)].astype(str).assign(parent=parents[members].astype(str).to_numpy()),
                          frame.loc[totals, list(cols)].astype(str).assign(parent=frame.loc[totals, "area_code"].astype(str))],
                         ignore_index=True)
        for name, kind_handles in handles.items():
            _add_sums(space, f"{name}-{child}-{parent}", kind_handles[members], kind_handles[totals], keys)


def _neighbourhood_sets(space: CellSpace, prev: pd.DataFrame, obs: np.ndarray, pop: np.ndarray,
                        dq: pd.DataFrame | None) -> None:
    """Neighbourhoods plus the people in none add up to the whole dataset (all ICBs together), per condition
    and date; the people in none are never printed per condition, but for registers of all ages they are the
    data-quality 'no neighbourhood' count."""
    allrows = prev[prev["group_type"] == "all"]
    nbh = allrows["area_type"] == "neighbourhood"
    icb = allrows["area_type"] == "icb"
    if not nbh.any() or not icb.any():
        return
    keycols, rests = ["period", "condition"], {}
    for kind, handles in (("observed", obs), ("population", pop)):
        icb_rows, nbh_rows = allrows[icb], allrows[nbh]
        totals = icb_rows.groupby(keycols, sort=False)[kind].sum()
        in_nbh = nbh_rows.groupby(keycols, sort=False)[kind].sum()
        frame = totals.rename("total").to_frame().join(in_nbh.rename("in_nbh")).fillna(0).reset_index()
        frame["area_type"], frame["area_code"] = "dataset", "*"
        dataset = space.add(_key_frame(frame, f"{kind}-dataset", frame["condition"].astype(str)),
                            frame["total"], publishable=False, protected=False)
        rest_values = frame["total"] - frame["in_nbh"]
        detail = _value_detail(rest_values) if kind == "population" else frame["condition"].astype(str)
        rests[kind] = space.add(_key_frame(frame.assign(area_type="no_neighbourhood"), kind, detail), rest_values,
                                publishable=False)
        # dataset = sum of ICBs; dataset = sum of neighbourhoods + rest
        set_key = frame[keycols].astype(str)
        _add_sums(space, f"{kind}-icbs", handles[icb_rows.index.to_numpy()], dataset,
                  pd.concat([icb_rows[keycols].astype(str), set_key], ignore_index=True))
        _add_sums(space, f"{kind}-nbh", np.r_[handles[nbh_rows.index.to_numpy()], rests[kind]], dataset,
                  pd.concat([nbh_rows[keycols].astype(str), set_key, set_key], ignore_index=True))
    space.add_leq(rests["observed"], rests["population"])
    if dq is not None and not dq.empty and (dq["area_type"] == "icb").any():
        d = dq[dq["area_type"] == "icb"]
        none_total = d.groupby("period")["no_neighbourhood"].sum().reset_index()
        none_total["area_type"], none_total["area_code"] = "no_neighbourhood", "*"
        total = space.add(_key_frame(none_total, "population", _value_detail(none_total["no_neighbourhood"])),
                          none_total["no_neighbourhood"], publishable=False)
        members = space.add(_key_frame(d, "dq", "no_neighbourhood"), d["no_neighbourhood"])
        _add_sums(space, "dq-no-neighbourhood", members, total,
                  pd.concat([d[["period"]].astype(str), none_total[["period"]].astype(str)], ignore_index=True))


def _dq_cells(space: CellSpace, dq: pd.DataFrame, parents: pd.Series) -> dict[str, np.ndarray]:
    """Data-quality counts: the 'registered' and 'ethnicity not recorded' counts are the all-ages population
    cells of the area and of its 'Unknown' ethnic group (merged with a register's cells of the same value)."""
    handles = {}
    handles["population"] = space.add(_key_frame(dq, "population", _value_detail(dq["population"])), dq["population"])
    eth = dq.assign(group_type="ethnicity", group_value="Unknown")
    handles["ethnicity_not_recorded"] = space.add(
        _key_frame(eth, "population", _value_detail(dq["ethnicity_not_recorded"])), dq["ethnicity_not_recorded"])
    for col in ("lsoa_missing", "lsoa_unmatched", "no_neighbourhood"):
        handles[col] = space.add(_key_frame(dq, "dq", col), dq[col])
    unknown = dq["lsoa_missing"] + dq["lsoa_unmatched"]
    imd = dq.assign(group_type="imd_quintile", group_value="Unknown")
    unknown_cell = space.add(_key_frame(imd, "population", _value_detail(unknown)), unknown, publishable=False)
    _add_sums(space, "dq-imd-unknown", np.r_[handles["lsoa_missing"], handles["lsoa_unmatched"]], unknown_cell,
              pd.concat([dq[["period", "area_type", "area_code"]].astype(str)] * 3, ignore_index=True))
    for col in DQ_COLUMNS[1:]:
        space.add_leq(handles[col], handles["population"])
    _hierarchy_sets(space, dq, {f"dq-{col}": handles[col] for col in DQ_COLUMNS}, parents, cols=("period",))
    return handles


def _core20_cells(space: CellSpace, core20: pd.DataFrame, prev: pd.DataFrame, period,
                  obs: np.ndarray, pop: np.ndarray) -> dict[str, np.ndarray]:
    """Core20 parts of PCN x group cells (latest date): each part <= its group's cell; recorded <= registered."""
    frame = core20.assign(period=str(period), area_type="pcn")
    handles = {}
    for col, kind in (("core20_population", "population"), ("core20_observed", "observed")):
        detail = frame["condition"].astype(str) + ":core20"
        handles[col] = space.add(_key_frame(frame, f"{kind}-core20", detail), frame[col])
    key = ["condition", "area_code", "group_type", "group_value"]
    rows = prev[(prev["area_type"] == "pcn") & (prev["period"].astype(str) == str(period))][key]
    pos = pd.Series(np.arange(len(prev)), index=prev.index)[rows.index]
    lookup = rows.assign(_pos=pos.to_numpy())
    hit = frame[key].merge(lookup, on=key, how="left")["_pos"].to_numpy()
    ok = ~np.isnan(hit)
    where = hit[ok].astype(int)
    space.add_leq(handles["core20_population"][ok], pop[where])
    space.add_leq(handles["core20_observed"][ok], obs[where])
    space.add_leq(handles["core20_observed"], handles["core20_population"])
    return handles


def _register_lookup(prev: pd.DataFrame, frame: pd.DataFrame, condition: pd.Series, column: str) -> np.ndarray:
    """The register's `column` (observed or population) in the same period, area and group as each row of
    `frame`, for `condition[i]` (NaN where the register has no such row)."""
    key = ["period", "area_type", "area_code", "group_type", "group_value"]
    left = frame[key].astype(str).assign(condition=condition.astype(str).to_numpy())
    right = prev[key + ["condition"]].astype(str).assign(_value=prev[column].to_numpy(dtype=float))
    return left.merge(right, on=key + ["condition"], how="left")["_value"].to_numpy(dtype=float)


def _band_inside_slice(ind: pd.DataFrame) -> np.ndarray:
    """Age-band rows whose band lies wholly inside the indicator's age slice of its register (`slice`: '18-79',
    '80+'): there the slice's register patients are all the register's patients of that band."""
    low = pd.to_numeric(ind["slice"].astype(str).str.extract(r"^(\d+)")[0], errors="coerce").to_numpy(dtype=float)
    high = pd.to_numeric(ind["slice"].astype(str).str.extract(r"-(\d+)$")[0], errors="coerce").to_numpy(dtype=float)
    band = ind["group_value"].astype(str)
    start = pd.to_numeric(band.str.extract(r"^(\d+)")[0], errors="coerce").to_numpy(dtype=float)
    end = np.where(band.str.endswith("+").to_numpy(), np.inf, start + 4)
    with np.errstate(invalid="ignore"):
        return ((ind["group_type"] == "age_band").to_numpy() & (start >= low) & (np.isnan(high) | (end <= high)))


def _slice_range(text: str) -> tuple[int, float]:
    low, _, high = str(text).rstrip("+").partition("-")
    return int(low), (float(high) if high else np.inf)


def _within_register(space: CellSpace, prev: pd.DataFrame, rows: pd.DataFrame, part: np.ndarray, values,
                     detail: pd.Series, protected: bool) -> None:
    """The register's patients in part of its ages (the cells `part`, one per row of `rows`, with true `values`)
    and its patients outside that part add up to its recorded count. Without this a reader who pins the part (e.g.
    people aged 18+ less those not on the register) learns a lower bound on the recorded count, and with its
    siblings un-rounds it. The people outside the part are a count no table prints: `protected` where the part
    starts above the register's minimum age (so that count is of real people, not empty by definition)."""
    register_obs = _register_lookup(prev, rows, rows["denominator"], "observed")
    known = ~np.isnan(register_obs)
    if not known.any():
        return
    rows = rows[known]
    reg = space.add(_key_frame(rows, "observed", rows["denominator"].astype(str)), register_obs[known],
                    publishable=False)
    out_keys = _key_frame(rows, "", ("outside:" + detail[known].astype(str)).to_numpy())
    out_keys["kind"] = "register"
    outside = space.add(out_keys, register_obs[known] - np.asarray(values, dtype=float)[known], publishable=False,
                        protected=protected)
    set_keys = pd.concat([rows[["period", "area_type", "area_code", "group_type", "group_value"]].astype(str)
                          .assign(detail=detail[known].astype(str).to_numpy(),
                                  register=rows["denominator"].astype(str).to_numpy())] * 3, ignore_index=True)
    _add_sums(space, "register-part", np.r_[np.asarray(part)[known], outside], reg, set_keys)


def _tiling_sets(space: CellSpace, ind: pd.DataFrame, den: np.ndarray, prev: pd.DataFrame) -> None:
    """The age slices of one register's care and outcome indicators (e.g. 18-79 and 80+) that tile its ages from
    some age up add up to the register's patients from that age (the cell a case-finding complement uses, or the
    register's recorded cell when that age is the register's own minimum)."""
    register_rows = (ind["kind"] != "case_finding").to_numpy()
    firsts = ind[register_rows].drop_duplicates(["denominator", "slice"])[["condition", "denominator", "slice"]]
    for register, slices in firsts.groupby("denominator"):
        ranges = sorted((_slice_range(v), c) for v, c in zip(slices["slice"], slices["condition"]))
        bounds = [r for r, _ in ranges]
        tiles = len(bounds) > 1 and np.isinf(bounds[-1][1]) and all(
            bounds[i][1] + 1 == bounds[i + 1][0] for i in range(len(bounds) - 1))
        if not tiles:
            continue
        mask = ind["condition"].isin([c for _, c in ranges]).to_numpy()
        rows = ind[mask]
        place = ["period", "area_type", "area_code", "group_type", "group_value"]
        totals = rows.groupby(place, sort=False)["population"].sum().reset_index()
        lowest = bounds[0][0]
        total_keys = _key_frame(totals, "", np.full(len(totals), f"{register}:{lowest}+"))
        total_keys["kind"] = "register"
        total = space.add(total_keys, totals["population"], publishable=False)
        set_keys = pd.concat([rows[place].astype(str), totals[place].astype(str)], ignore_index=True)
        set_keys["condition"] = f"tiling:{register}"
        _add_sums(space, "indicator-tiling", den[mask], total, set_keys)
        # the tiled slices are the register's patients from `lowest` up: at most its recorded count (whether any of
        # its patients are younger is not known here, so those are a plain difference; a case-finding indicator
        # over the same ages protects them)
        _within_register(space, prev, totals.assign(denominator=register), total, totals["population"],
                         pd.Series(np.full(len(totals), f"{register}:{lowest}+")), protected=False)


def _absent(wanted: pd.DataFrame, have: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The rows of `wanted` whose `key` (compared as text) no row of `have` has."""
    present = have[key].astype(str).drop_duplicates().assign(_have=True)
    hit = wanted[key].astype(str).merge(present, on=key, how="left")["_have"]
    return wanted[hit.isna().to_numpy()]


def _complete_group_rows(prev: pd.DataFrame) -> pd.DataFrame:
    """Every group of every ICB and PCN breakdown: the prevalence table has no row for a group with nobody in it,
    and a row missing where other areas or dates have one tells a reader that the group is empty (an exact 0, and
    'at least 1' for every hidden row that is there). So each ICB and PCN breakdown (date, condition) gets a row for
    every group that any of the condition's ICB or PCN breakdowns has at any date, with counts of 0 that the
    protection hides like any other small count. (A group no area has at any date is left out: inventing it would
    only add cells pinned near 0, which the audit would then have to cover by hiding real counts.)"""
    grouped = prev["area_type"].isin(["icb", "pcn"]).to_numpy() & \
        prev["group_type"].isin(["ethnicity", "imd_quintile", "sex", "age_band"]).to_numpy()
    if not grouped.any():
        return prev
    place = ["period", "condition", "area_type", "area_code", "group_type"]
    carried = [c for c in ("area_name", "parent_code") if c in prev.columns]
    shapes = prev.loc[grouped, place + carried].drop_duplicates(place)
    values = prev.loc[grouped, ["condition", "group_type", "group_value"]].drop_duplicates()
    wanted = shapes.merge(values, on=["condition", "group_type"])
    key = place + ["group_value"]
    missing = _absent(wanted, prev, key)
    if missing.empty:
        return prev
    missing = missing.assign(observed=0.0, population=0.0, expected=0.0, missing=0.0)
    rows = pd.concat([prev, missing[[c for c in missing.columns if c in prev.columns]]], ignore_index=True)
    # the protection breaks ties by position: the rows keep the key order the warehouse query gives
    order = rows[key].astype(str).assign(_period=rows["period"])
    return rows.loc[order.sort_values(["_period"] + key[1:], kind="stable").index].reset_index(drop=True)


def _complete_indicator_rows(ind: pd.DataFrame, prev: pd.DataFrame) -> pd.DataFrame:
    """Every group a published indicator could have: a care or outcome indicator has no row where its register has
    nobody in the age range, and a missing row tells a reader (who knows that absent groups have nobody) that the
    register's cell there is 0 (e.g. hypertension aged 20-24 in one PCN: the ICB's bp_control 20-24 denominator is
    then the other PCN's alone), whatever the protection hides. So each group the register's own rows have (same
    date, area and breakdown; age bands that overlap the indicator's ages) gets an indicator row, with counts of 0
    that the protection hides like any other small count."""
    if prev.empty or ind.empty:
        return ind
    place = ["period", "area_type", "area_code", "group_type", "group_value"]
    first = ind.drop_duplicates("condition").set_index("condition")
    shapes = ind[["condition", "period", "area_type", "group_type"]].astype(str).drop_duplicates()
    template = prev[place + [c for c in ("area_name", "parent_code") if c in prev.columns] + ["condition"]]
    template = template.rename(columns={"condition": "denominator"})
    template = template.assign(_period=template["period"].astype(str))
    wanted = first[["denominator", "slice"]].reset_index().merge(template, on="denominator")
    wanted = wanted.merge(shapes.rename(columns={"period": "_period"}), on=["condition", "_period", "area_type",
                                                                            "group_type"])
    bands = wanted["group_type"] == "age_band"
    if bands.any():
        ranges = wanted.loc[bands, "slice"].map(_slice_range)
        values = wanted.loc[bands, "group_value"].astype(str)
        start = values.str.extract(r"^(\d+)")[0].astype(float).to_numpy()
        end = np.where(values.str.endswith("+").to_numpy(), np.inf, start + 4)
        low = np.array([r[0] for r in ranges], dtype=float)
        high = np.array([r[1] for r in ranges], dtype=float)
        overlaps = np.ones(len(wanted), dtype=bool)
        overlaps[bands.to_numpy()] = (end >= low) & (start <= high)
        wanted = wanted[overlaps]
    missing = _absent(wanted, ind, ["condition"] + place).drop(columns=["_period", "slice"])
    if missing.empty:
        return ind
    missing = missing.assign(
        kind=missing["condition"].map(first["kind"]).to_numpy(),
        slice=missing["condition"].map(first["slice"]).to_numpy(),
        own_slice=missing["condition"].map(first["own_slice"]).to_numpy(),
        full_register=missing["condition"].map(first["full_register"]).astype(bool).to_numpy(),
        observed=0.0, population=0.0, expected=0.0)
    # period values keep the indicator rows' type (dates)
    period_of = dict(zip(ind["period"].astype(str), ind["period"]))
    missing["period"] = missing["period"].astype(str).map(period_of).to_numpy()
    return pd.concat([ind, missing[[c for c in missing.columns if c in ind.columns]]], ignore_index=True)


def _cell_keys(rows: pd.DataFrame, times: int) -> pd.DataFrame:
    """The rows' cells (date, indicator, area and group) as set keys, repeated `times`."""
    cell = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]
    return pd.concat([rows[cell].astype(str)] * times, ignore_index=True)


def _indicator_cells(space: CellSpace, ind: pd.DataFrame, prev: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Indicator numerators and denominators as cells, with their relations (see the module docstring).

    `ind` is prevalence-shaped (`condition` = the indicator id) with `kind`, `denominator` (the register's condition
    id), `slice` (the register's age range, e.g. '18-79' or '18+'), `own_slice` (the indicator's own age range, which
    a case-finding denominator covers) and `full_register` (the denominator is the register's whole recorded count),
    and `register_in_range` / `population_in_range` (true counts of the register and of the registered population in
    the indicator's age range) for case-finding rows."""
    obs = space.add(_key_frame(ind, "observed", ind["condition"].astype(str)), ind["observed"])
    # the register's patients in the indicator's age range are its recorded cell when the range is the whole
    # register, and in an age band that lies wholly inside the range
    full = ind["full_register"].to_numpy(dtype=bool) | _band_inside_slice(ind)
    case_finding = (ind["kind"] == "case_finding").to_numpy()
    slice_detail = ind["denominator"].astype(str) + ":" + ind["slice"].astype(str)
    # a case-finding denominator covers the indicator's own ages (not the register's slice of them)
    own = ind["own_slice"]
    own_detail = ind["denominator"].astype(str) + ":" + own.astype(str)
    den_kind = np.where(case_finding, "not-register", np.where(full, "observed", "register"))
    den_detail = np.where(case_finding, own_detail, np.where(full, ind["denominator"].astype(str), slice_detail))
    keys = _key_frame(ind, "", den_detail)
    keys["kind"] = den_kind
    den = space.add(keys, ind["population"])
    space.add_leq(obs, den)
    for kind, handles in (("observed", obs), ("population", den)):
        _group_sets(space, ind, handles, f"indicator-{kind}")
        _hierarchy_sets(space, ind, {f"indicator-{kind}": handles}, ind["parent_code"])
    _neighbourhood_sets(space, ind, obs, den, None)
    # a register's age slice is at most its recorded count
    register_obs = _register_lookup(prev, ind, ind["denominator"], "observed")
    sliced = ~full & ~case_finding & ~np.isnan(register_obs)
    if sliced.any():
        rows = ind[sliced]
        reg = space.add(_key_frame(rows, "observed", rows["denominator"].astype(str)), register_obs[sliced],
                        publishable=False)
        space.add_leq(den[sliced], reg)
        # ... and the register's patients outside the slice (e.g. under 18) are its recorded count less the slice:
        # a count of people no table prints, which the published pair must not give away
        outside = register_obs[sliced] - rows["population"].to_numpy(dtype=float)
        out_keys = _key_frame(rows, "", ("outside:" + slice_detail[sliced]).to_numpy())
        out_keys["kind"] = "register"
        rest = space.add(out_keys, outside, publishable=False)
        _add_sums(space, "indicator-slice", np.r_[den[sliced], rest], reg, _cell_keys(rows, 3))
    _tiling_sets(space, ind, den, prev)
    # case finding: population in the age range = register in the range + the people not on it
    cf = case_finding & ind["register_in_range"].notna().to_numpy() & ind["population_in_range"].notna().to_numpy()
    if cf.any():
        rows = ind[cf]
        in_range = rows["register_in_range"].to_numpy(dtype=float)
        population = rows["population_in_range"].to_numpy(dtype=float)
        whole = full[cf]
        # the diagnosed people in the indicator's own ages are the register's slice only where those ages start
        # at or above the register's minimum; younger ones make it a count of its own
        on_register = (own[cf].astype(str) == rows["slice"].astype(str)).to_numpy()
        reg_keys = _key_frame(rows, "", np.where(whole, rows["denominator"].astype(str),
                                                 np.where(on_register, slice_detail[cf], own_detail[cf])))
        reg_keys["kind"] = np.where(whole, "observed", np.where(on_register, "register", "diagnosed"))
        reg = space.add(reg_keys, in_range, publishable=False)
        pop = space.add(_key_frame(rows, "population", _value_detail(population)), population, publishable=False)
        space.add_leq(reg, pop)
        _add_sums(space, "indicator-complement", np.r_[den[cf], reg], pop, _cell_keys(rows, 3))
        # the register's patients in the range are at most its recorded count (the rest are outside the range)
        part = ~whole & on_register
        if part.any():
            _within_register(space, prev, rows[part], reg[part], in_range[part],
                             pd.Series(slice_detail[cf][part].to_numpy()), protected=True)
    return obs, den


def parent_codes(frame: pd.DataFrame, practices: pd.DataFrame) -> pd.Series:
    """Each row's parent area: a practice's PCN, a PCN's ICB (None for other rows)."""
    parent = pd.Series(None, index=frame.index, dtype=object)
    for child, child_code, parent_code in (("practice", "practice_code", "pcn_code"),
                                           ("pcn", "pcn_code", "icb_code")):
        rows = frame["area_type"] == child
        lookup = dict(zip(practices[child_code], practices[parent_code]))
        parent[rows] = frame.loc[rows, "area_code"].map(lookup)
    return parent


def protect_all(prev: pd.DataFrame, policy: Policy, dq: pd.DataFrame | None = None,
                load_summary: pd.DataFrame | None = None, core20: pd.DataFrame | None = None,
                practices: pd.DataFrame | None = None, latest=None, indicators: pd.DataFrame | None = None) -> Published:
    """Protect every published count of a run at once and return the published frames.

    `prev` holds the published prevalence rows with `parent_code` (practice -> PCN, PCN -> ICB); `indicators` the
    published indicator rows (see :func:`_indicator_cells`)."""
    prev = _complete_group_rows(prev.reset_index(drop=True))
    space = CellSpace()
    obs = space.add(_key_frame(prev, "observed", prev["condition"].astype(str)), prev["observed"])
    pop = space.add(_key_frame(prev, "population", _value_detail(prev["population"])), prev["population"])
    space.add_leq(obs, pop)
    for kind, handles in (("observed", obs), ("population", pop)):
        _group_sets(space, prev, handles, kind)
        _hierarchy_sets(space, prev, {kind: handles}, prev["parent_code"])
    dq_handles = None
    if dq is not None and not dq.empty:
        dq = dq.reset_index(drop=True)
        parents = parent_codes(dq, practices) if practices is not None else \
            pd.Series(None, index=dq.index, dtype=object)
        dq_handles = _dq_cells(space, dq, parents)
    _neighbourhood_sets(space, prev, obs, pop, dq)
    load_handles = None
    if load_summary is not None and not load_summary.empty:
        ls = load_summary.reset_index(drop=True)
        frame = pd.DataFrame(dict(period="", area_type="input", area_code=ls["source"].astype(str)))
        load_handles = {c: space.add(_key_frame(frame, "rows", c), ls[c], zero_is_small=False)
                        for c in ("rows_read", "rows_loaded", "rows_rejected")}
        _add_sums(space, "load", np.r_[load_handles["rows_loaded"], load_handles["rows_rejected"]],
                  load_handles["rows_read"], pd.concat([frame[["area_code"]]] * 3, ignore_index=True))
    c20_handles = None
    if core20 is not None and not core20.empty and latest is not None:
        core20 = core20.reset_index(drop=True)
        c20_handles = _core20_cells(space, core20, prev, latest, obs, pop)
    ind_handles = None
    if indicators is not None and not indicators.empty:
        indicators = _complete_indicator_rows(indicators.reset_index(drop=True), prev)
        ind_handles = _indicator_cells(space, indicators, prev)
    cells = space.finalize()
    result = protect(cells, policy)
    hidden_of = lambda handles: result.hidden[cells.handle_to_cell[handles]]  # noqa: E731

    def counts(frame: pd.DataFrame | None, handles: dict | None) -> pd.DataFrame | None:
        """Published data-quality or input counts (no rates)."""
        return None if handles is None else publish(frame.reset_index(drop=True), policy,
                                                    {c: hidden_of(h) for c, h in handles.items()}, recompute_rates=False)

    published_c20 = None
    if c20_handles is not None:
        published_c20 = core20.copy()
        for col, handles in c20_handles.items():
            v = round_count(core20[col].to_numpy(), policy)
            v[hidden_of(handles)] = np.nan
            published_c20[col] = v
        # Core20 expected is a model value: published rounded, and hidden with the Core20 recorded count
        e = round_count(core20["core20_expected"].to_numpy(), policy)
        e[np.isnan(published_c20["core20_observed"].to_numpy(dtype=float))] = np.nan
        published_c20["core20_expected"] = e
        published_c20 = published_c20.drop(columns=[c for c in ("population", "observed", "expected")
                                                     if c in published_c20.columns])
    published_ind = None if ind_handles is None else publish(
        indicators.drop(columns=["register_in_range", "population_in_range"]), policy,
        {"observed": hidden_of(ind_handles[0]), "population": hidden_of(ind_handles[1])})
    return Published(cells=cells, prev=publish(prev, policy, {"observed": hidden_of(obs), "population": hidden_of(pop)}),
                     data_quality=counts(dq, dq_handles), load_summary=counts(load_summary, load_handles),
                     core20=published_c20, indicators=published_ind)
