"""Indicator content of the packs (care processes, outcomes, case finding), from the controlled indicator rows
(`Inputs.indicators`: every count rounded or hidden by the publication model, every derived value worked out from
the published counts). Case finding is shown as counts and rates of people, never as lists.

- :func:`page_one_items`: page 1's clearest gaps across registers and indicators;
- :func:`pcn_indicator_pages`: one PCN pack page per indicator family (tables and charts);
- :func:`ics_indicator_section`: the ICS pack's comparison of PCNs and neighbourhoods on each indicator;
- :func:`indicator_csv`: the pack's indicator numbers as CSV (prevalence column names, `indicator` and `kind`).

Change since the previous date is worked out as for registers (published_trend): from the published counts of both
dates and the published number of people who met the indicator in the same cell on both dates
(indicator_trend_transitions), with the false discovery rate controlled over the indicator cells of the pack's area.
"""
from __future__ import annotations

import math

import pandas as pd

from pipeline.disclosure import MARKER
from pipeline.schema import GROUP_ORDER

from . import charts, packs
from . import wording as w
from .data import Inputs, in_areas

FAMILIES = (  # kind, page title, intro
    ("care_process", "Care processes",
     "The share of people on a register who had a care process recorded in the window, compared with what "
     "{comparator} would give for people of the same age and sex. A ratio below 1 means fewer received it than "
     "expected."),
    ("outcome", "Outcomes: treatment to target",
     "The share of people on a register whose latest reading in the window met the target (no reading counts as "
     "not met), compared with what {comparator} would give for people of the same age and sex. A ratio below 1 "
     "means fewer at target than expected."),
    ("case_finding", "Possible undiagnosed conditions (case finding)",
     "How many people who are not on a register have records suggesting the condition: counts and rates of "
     "people, never lists of patients. A ratio above 1 means more such people than {comparator} would give for "
     "people of the same age and sex: a place to look for undiagnosed patients."),
)
BREAKDOWNS = ("ethnicity", "imd_quintile", "sex")
CSV_COLUMNS = ["period", "indicator", "kind", "area_type", "area_code", "area_name", "group_type", "group_value",
               "observed", "population", "expected", "missing", "rate", "rate_lower", "rate_upper", "ratio",
               "ratio_lower", "ratio_upper"]


def _families(inp: Inputs):
    """(kind, title, intro, the family's indicators) of each indicator family the run has."""
    for kind, title, intro in FAMILIES:
        metas = [m for m in inp.indicator_meta if m["kind"] == kind]
        if metas:
            yield kind, title, intro, metas


def _ages(m: dict) -> str:
    low = max(int(m["min_age"]), int(m["condition_min_age"])) if m["kind"] != "case_finding" else int(m["min_age"])
    if m["max_age"] is not None:
        return f"aged {low}–{m['max_age']}"
    return f"aged {low} and over" if low else "of all ages"


def denominator_phrase(m: dict, who: str) -> str:
    """'Asian adults on the hypertension register aged 18–79' / 'Black adults aged 18 and over not on the …'."""
    register = f"the {m['denominator_label'].lower()} register"
    if m["kind"] == "case_finding":
        return f"{who} {_ages(m)} not on {register}"
    return f"{who} on {register} {_ages(m)}"


def gap_text(m: dict, row, comparator: str, area_words: str = "") -> str:
    """One gap in plain words with its published patient numbers and comparator (direction from the interval)."""
    adults = int(m["min_age"]) >= 18 or int(m["condition_min_age"]) >= 18
    gt, gv = str(row["group_type"]), str(row["group_value"])
    who = w.group_phrase(gt, gv, adults) if gt != "all" else ("adults" if adults else "people")
    den = denominator_phrase(m, who)
    ratio = (f"{w.number(row['ratio']):.2f} times the expected rate, 95% interval "
             f"{w.number(row['ratio_lower']):.2f}–{w.number(row['ratio_upper']):.2f}")
    tail = f"compared with {comparator} for people of the same age and sex"
    counts = f"{w.fmt_count(row['observed'])} of {w.fmt_count(row['population'])} {den}{area_words}"
    if m["kind"] == "case_finding":
        return (f"{m['label']}: {counts} ({w.fmt_rate(row['rate'])}) have {m['met']} — {w.about(row['missing'])} more "
                f"people than expected ({ratio}), {tail}.")
    return (f"{m['label']}: {counts} ({w.fmt_rate(row['rate'])}) had {m['met']} — {w.about(row['missing'])} fewer "
            f"than expected ({ratio}), {tail}.")


def indicator_gaps(inp: Inputs, area_type: str, code: str) -> pd.DataFrame:
    """Clear gaps of one area on the latest date: care and outcome rows whose whole 95% interval is below 1 with
    fewer than expected, case-finding rows whose interval is above 1 with more than expected ('Unknown' groups are
    data quality and left out); `patients` = the published number fewer (or more) than expected."""
    ind = inp.indicators
    if ind is None or ind.empty:
        return pd.DataFrame()
    d = packs.select(ind, inp.latest, area_type, code)
    d = d[(d["group_value"] != "Unknown") & ~d["observed_redacted"].astype(bool) &
          ~d["population_redacted"].astype(bool) & d["missing"].notna()]
    cf = d["kind"] == "case_finding"
    gap = (~cf & (d["ratio_upper"] < 1) & (d["missing"] > 0)) | (cf & (d["ratio_lower"] > 1) & (d["missing"] < 0))
    d = d[gap].copy()
    d["patients"] = d["missing"].abs()
    return d.sort_values(["patients", "ratio"], ascending=[False, True])


def _json_ready(item: dict) -> dict:
    """The item with None for NaN (the items go into the pack's JSON)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in item.items()}


def page_one_items(register_items: list[dict], inp: Inputs, area_type: str, code: str, max_n: int,
                   comparator: str) -> list[dict]:
    """Page 1: the clearest gaps across registers and indicators, largest number of patients first; the largest
    gap of each family (registers, care processes, outcomes, case finding) is guaranteed a place."""
    gaps = indicator_gaps(inp, area_type, code)
    if gaps.empty:
        return [_json_ready(item) for item in register_items]
    changes = indicator_changes(inp, area_type, [code])
    metas = {m["indicator"]: m for m in inp.indicator_meta}
    candidates = [dict(item, family="register", patients=w.number(item.get("missing_value", item.get("missing"))))
                  for item in register_items]
    for r in gaps.to_dict("records"):
        cell = (code, r["condition"], r["group_type"], r["group_value"])
        candidates.append(dict(text=gap_text(metas[r["condition"]], r, comparator),
                               change=packs.change_sentence(inp, changes, cell, comparator),
                               condition=r["condition"], group_type=r["group_type"], group_value=r["group_value"],
                               family=r["kind"], patients=float(r["patients"])))
    for c in candidates:
        if not math.isfinite(c["patients"]):
            c["patients"] = 0.0
    ranked = sorted(candidates, key=lambda c: -c["patients"])
    # the largest gap of each family (the first of its family in the ranking), then the rest
    first_of_family: dict[str, dict] = {}
    for c in ranked:
        first_of_family.setdefault(c["family"], c)
    firsts = list(first_of_family.values())
    rest = [c for c in ranked if first_of_family[c["family"]] is not c]
    chosen = (firsts + rest)[:max(max_n, len(firsts))]
    return [_json_ready(c) for c in sorted(chosen, key=lambda c: -c["patients"])]


def indicator_changes(inp: Inputs, area_type: str, codes) -> pd.DataFrame | None:
    """The published change between the previous and the latest date of every indicator cell of the areas `codes`
    (one family for the false discovery rate), from the controlled counts and the controlled paired overlap."""
    if inp.indicators is None or inp.indicators.empty or inp.previous is None:
        return None
    return packs.pack_changes(inp, area_type, codes, inp.indicators, "indicator_overlap")


def _row_cells(r) -> list[str]:
    return [w.fmt_count(r["population"]), w.fmt_count(r["observed"]), packs.rate_cell(r), w.fmt_count(r["expected"]),
            packs.ratio_cell(r)]


def _header(m: dict) -> list[str]:
    return ["Not on register" if m["kind"] == "case_finding" else "On register", "People", "Rate", "Expected",
            "Ratio (95% CI)"]


def _indicator_group_table(inp: Inputs, area_type: str, code: str, m: dict) -> dict:
    d = packs.select(inp.indicators, inp.latest, area_type, code, m["indicator"])
    rows = []
    for gt in ("all",) + BREAKDOWNS:
        part = d[d["group_type"] == gt]
        rank = {v: i for i, v in enumerate(GROUP_ORDER.get(gt, ()))}
        part = part.assign(_o=part["group_value"].map(rank).fillna(99)).sort_values(["_o", "group_value"])
        for k, (_, r) in enumerate(part.iterrows()):
            rows.append([w.BREAKDOWN_TITLE[gt] if k == 0 else "", w.group_label(gt, r["group_value"]) if gt != "all" else "All"]
                        + _row_cells(r))
    return dict(header=["Breakdown", "Group"] + _header(m), rows=rows, align="llrrrrr")


def _indicator_area_table(inp: Inputs, area_type: str, codes, names: dict, m: dict) -> dict:
    d = packs.select(inp.indicators, inp.latest, area_type, codes, m["indicator"], "all")
    d = d.assign(_name=d["area_code"].map(lambda c: names.get(c, c))).sort_values("_name")
    rows = []
    for _, r in d.iterrows():
        verdict = w.direction(r["ratio_lower"], r["ratio_upper"]) if not bool(r.get("observed_redacted", False)) else ""
        words = {"fewer": "clearly lower", "more": "clearly higher", "similar": "similar"}.get(verdict, MARKER)
        rows.append([f"{r['_name']}"] + _row_cells(r) + [words])
    return dict(header=["Area"] + _header(m) + ["Against expected"], rows=rows, align="lrrrrrl")


def _summary(inp: Inputs, area_type: str, code: str, m: dict, comparator: str, place: str,
             changes: pd.DataFrame | None = None) -> str:
    """The area's level on the indicator in a sentence, and its change since the previous date."""
    d = packs.select(inp.indicators, inp.latest, area_type, code, m["indicator"], "all")
    den = denominator_phrase(m, "people")
    verb = "have" if m["kind"] == "case_finding" else "had"
    if d.empty:
        text = f"No one in {place} is in this indicator's denominator."
    elif bool(d.iloc[0].get("population_redacted", False)):
        text = f"In {place}, the numbers of {den} are too small to show (disclosure control)."
    elif packs.counts_hidden(d.iloc[0]):
        text = (f"In {place}, of {w.fmt_count(d.iloc[0]['population'])} {den}, the number who {verb} {m['met']} is too "
                f"small to show (disclosure control).")
    else:
        r = d.iloc[0]
        words = {"fewer": "clearly fewer than expected", "more": "clearly more than expected",
                 "similar": "about as many as expected"}.get(w.direction(r["ratio_lower"], r["ratio_upper"]), "")
        text = (f"In {place}, {w.fmt_count(r['observed'])} of {w.fmt_count(r['population'])} {den} "
                f"({w.fmt_rate(r['rate'])}) {verb} {m['met']}: {words} (ratio "
                f"{w.fmt_ratio(r['ratio'], r['ratio_lower'], r['ratio_upper'])}), compared with {comparator} for people "
                f"of the same age and sex.")
    if inp.previous is None:
        return text
    return f"{text} {packs.change_sentence(inp, changes, (code, m['indicator'], 'all', 'All'), comparator)}"


def _xlabel(kind: str) -> str:
    return "People found ÷ expected" if kind == "case_finding" else "Achieved ÷ expected"


def pcn_indicator_pages(inp: Inputs, pcn: str, practice_codes, names: dict, comparator: str) -> tuple[list[dict], list]:
    """One page per indicator family for a PCN pack: a summary sentence, a table by group and by practice for
    each indicator, and dot charts by ethnic group and deprivation. Returns (families, charts)."""
    if inp.indicators is None or inp.indicators.empty:
        return [], []
    families, charts_ = [], []
    changes = indicator_changes(inp, "pcn", [pcn])
    for kind, title, intro, metas in _families(inp):
        mine = packs.breakdown_charts(inp.indicators, inp.latest, "pcn", pcn, packs.labelled(metas, "indicator"),
                                      ("ethnicity", "imd_quintile"), f"ind_{kind}", _xlabel(kind))
        charts_ += mine
        families.append(dict(
            kind=kind, title=title, intro=intro.format(comparator=comparator),
            charts=[dict(key=key, caption=f"{title}: {_xlabel(kind).lower()} by "
                         f"{w.BREAKDOWN_TITLE[key.removeprefix(f'ind_{kind}_')].lower()}, {w.long_date(inp.latest)}.")
                    for key, *_ in mine],
            indicators=[dict(label=m["label"], summary=_summary(inp, "pcn", pcn, m, comparator, "this PCN", changes),
                             groups=_indicator_group_table(inp, "pcn", pcn, m),
                             practices=_indicator_area_table(inp, "practice", practice_codes, names, m))
                        for m in metas]))
    return families, charts_


def ics_indicator_section(inp: Inputs, icb: str, pcns, pnames: dict, ncodes, nnames: dict, comparator: str) -> tuple[list[dict], list]:
    """The ICS pack's comparison of PCNs and neighbourhoods on each indicator: a sentence for the ICB, a dot chart
    of PCNs and of neighbourhoods per family, and the numbers behind them. Returns (indicators, charts)."""
    if inp.indicators is None or inp.indicators.empty:
        return [], []
    out, charts_ = [], []
    changes = indicator_changes(inp, "icb", [icb])
    for kind, title, _, metas in _families(inp):
        for area_type, codes, names in (("pcn", pcns, pnames), ("neighbourhood", ncodes, nnames)):
            if len(codes):
                panels = packs.area_panels(inp.indicators, inp.latest, area_type, codes, names,
                                           packs.labelled(metas, "indicator"))
                charts_.append((f"ind_{kind}_{area_type}", charts.dot_chart, (panels,), dict(xlabel=_xlabel(kind))))
        out.append(dict(kind=kind, title=title, pcn_chart=f"ind_{kind}_pcn",
                        nbh_chart=f"ind_{kind}_neighbourhood" if len(ncodes) else None,
                        indicators=[dict(label=m["label"],
                                         summary=_summary(inp, "icb", icb, m, comparator, "the ICB", changes),
                                         pcns=_indicator_area_table(inp, "pcn", pcns, pnames, m),
                                         neighbourhoods=_indicator_area_table(inp, "neighbourhood", ncodes, nnames, m)
                                         if len(ncodes) else None)
                                    for m in metas]))
    return out, charts_


def indicator_csv(inp: Inputs, areas) -> pd.DataFrame | None:
    """The pack's indicator rows as printed (controlled), `areas` = [(area_type, codes), ...]; beside the latest rows
    of the first (the pack's own area), the published change since the previous date and the count it needs, as in
    the pack's main CSV."""
    ind = inp.indicators
    if ind is None or ind.empty:
        return None
    out = packs.csv_rows(ind[in_areas(ind, areas)], ["condition"] + CSV_COLUMNS)
    own_type, own_codes = areas[0]
    out = packs._with_changes(out, inp, indicator_changes(inp, own_type, own_codes), own_type, "indicator_overlap")
    out = out.rename(columns={"condition": "indicator"})
    return out[[c for c in CSV_COLUMNS if c in out.columns] + [c for c in out.columns if c not in CSV_COLUMNS]]
