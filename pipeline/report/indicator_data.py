"""The indicator rows the packs publish, read from the warehouse and shaped for the publication model
(pipeline/report/publication.py `protect_all`): prevalence-shaped rows with `condition` = the indicator id, plus
what the protection needs to know about each denominator (which register, which age slice, whether it is the
register's whole recorded count) and, for case finding, the true register and population counts in its age range.
"""
from __future__ import annotations

import pandas as pd

from ..warehouse import query
from .data import add_parents


def indicator_meta(con, cfg_indicators=()) -> list[dict]:
    """One dict per configured indicator present in the warehouse: id, label, kind, denominator condition,
    its label, the effective age range and the register's slice label (e.g. '18-79', '80+')."""
    d = query(con, "indicator_settings_with_conditions").df()
    order = [i.id for i in cfg_indicators]
    met = {i.id: i.met for i in cfg_indicators}
    out = []
    for r in d.to_dict("records"):
        r["met"] = met.get(r["indicator"]) or f"met '{r['label']}'"
        max_age = None if pd.isna(r["max_age"]) else int(r["max_age"])
        own_low, register_low = int(r["min_age"]), int(r["condition_min_age"])
        low = max(own_low, register_low)
        case_finding = r["kind"] == "case_finding"
        # `slice`: the register's patients the indicator reaches (its ages within the register's); `own_slice`: the
        # indicator's own ages, which a case-finding denominator covers whatever the register's min_age (DESIGN.md),
        # so two case-finding indicators of one register with different min_ages below its own are different
        # cells. A register indicator whose ages start at or below the register's is its whole recorded count; a
        # case-finding one only when they start at the register's (younger diagnosed people are on no register).
        r.update(min_age=own_low, max_age=max_age, months=int(r["months"]),
                 slice=f"{low}-{max_age}" if max_age is not None else f"{low}+",
                 own_slice=f"{own_low}-{max_age}" if max_age is not None else f"{own_low}+",
                 full_register=max_age is None and (own_low == register_low if case_finding
                                                    else own_low <= register_low))
        out.append(r)
    return sorted(out, key=lambda r: order.index(r["indicator"]) if r["indicator"] in order else 99)


def load_indicator_rows(con, tables: set[str], practices: pd.DataFrame, cfg_indicators=()) -> tuple[pd.DataFrame | None, list[dict]]:
    """The published indicator rows (ICB and PCN rows of every breakdown, practice and neighbourhood `all` rows)
    with parent codes and the protection's columns; (None, []) when the run has no indicators."""
    if not {"indicators", "indicator_settings", "conditions"} <= tables:
        return None, []
    meta = indicator_meta(con, cfg_indicators)
    rows = query(con, "published_indicators").df()
    if rows.empty or not meta:
        return None, []
    rows["period"] = pd.to_datetime(rows["period"]).dt.date
    info = pd.DataFrame(meta).set_index("indicator")
    rows = rows.join(info[["denominator", "slice", "own_slice", "full_register"]], on="condition")
    rows["full_register"] = rows["full_register"].astype(bool)
    slices = query(con, "indicator_case_finding_slices").df() if "indicator_counts" in tables else pd.DataFrame()
    key = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]
    if not slices.empty:
        slices["period"] = pd.to_datetime(slices["period"]).dt.date
        rows = rows.merge(slices, on=key, how="left")
    else:
        rows["register_in_range"] = rows["population_in_range"] = float("nan")
    rows.loc[rows["kind"] != "case_finding", ["register_in_range", "population_in_range"]] = float("nan")
    return add_parents(rows, practices), meta
