"""What goes into each pack: a JSON-ready context (all text and numbers formatted, disclosure-controlled),
the charts to draw, and the CSV of the pack's numbers. Rendering is in render.py."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline import stats
from pipeline.disclosure import MARKER, RATE_COLUMNS, RATIO_COLUMNS, for_print, is_small, round_count
from pipeline.schema import GROUP_ORDER, output_columns

from . import charts
from . import published_trend as pt
from . import wording as w
from .data import LOAD_SUMMARY_COLS, Inputs, in_areas

BREAKDOWNS = ("ethnicity", "imd_quintile", "age_band", "sex")
# a pack's CSV: the `prevalence` columns, its counts (what disclosure control rounds) before the rates and ratios
CSV_COLUMNS = sorted(output_columns("prevalence"), key=lambda column: column in RATE_COLUMNS + RATIO_COLUMNS)
# published data (pipeline/public.py): expected is standardised for the practice's deprivation, which the
# comparator names, instead of for age and sex
PUBLISHED_COMPARATOR = "the England rate for practices in the same national deprivation decile"
OVERALL = {"fewer": "fewer than average", "more": "more than average", "similar": "similar to average"}
AREA_COLUMNS = ["Registered", "Recorded", "Rate", "Ratio (95% CI)", "Expected − recorded"]


def like_for_like(inp: Inputs) -> str:
    """What expected numbers are standardised for, in words after the comparator ('' when the comparator says it)."""
    return "" if inp.source == "published" else w.SAME_AGE_SEX


@dataclass
class Pack:
    kind: str                     # pcn / ics / community
    code: str
    template: str                 # template file name
    context: dict
    charts: list[tuple[str, Callable, tuple, dict]] = field(default_factory=list)  # (name, fn, args, kwargs)
    csv: pd.DataFrame | None = None
    extra_csvs: dict[str, pd.DataFrame] = field(default_factory=dict)  # written as <code>_<name>.csv


# ---------------------------------------------------------------------------------------------- helpers

PAGE_CHART_HEIGHT = 600.0   # points: the most a chart image may take so that it fits on a page with its heading


def chart_parts(name: str, fn: Callable, panels: list, kwargs: dict, labels: int = 0) -> list[tuple]:
    """A chart with one panel per condition cut into images that each fit on a page (many conditions, e.g. the
    21 QOF registers): `name`, then `name_part2`, ... `labels`: rows per panel of a dot chart (0 for funnel and
    trend charts, whose panels have a fixed height)."""
    block = 48.0 + 15.0 * labels if labels else 190.0
    per_chart = charts.PANELS_PER_ROW * max(1, int(PAGE_CHART_HEIGHT // block))
    chunks = [panels[i:i + per_chart] for i in range(0, len(panels), per_chart)] or [panels]
    return [(name if i == 0 else f"{name}_part{i + 1}", fn, (chunk,), kwargs) for i, chunk in enumerate(chunks)]


def comparator_name(inp: Inputs) -> str:
    icbs = inp.practices["icb_name"].dropna().unique()
    if len(icbs) == 1:
        return f"the {icbs[0]} average"
    return f"the average across all {len(icbs)} ICBs in the data"


def comparator_for(inp: Inputs, cfg_report: dict) -> tuple[str, bool]:
    """(what expected counts are based on, in words; whether that is true prevalence). Internal reference rates:
    the ICB average. External: the configured basis (`[reference] basis`, else the file's name); only when the
    configuration flags it as true prevalence (`[reference] true_prevalence = true`) may a pack speak of people
    possibly undiagnosed."""
    if inp.source == "published":
        return PUBLISHED_COMPARATOR, False
    rates = str(cfg_report.get("reference_rates", "internal"))
    if rates == "internal":
        return comparator_name(inp), False
    basis = str(cfg_report.get("reference_basis") or f"the reference rates in {rates}")
    return basis, bool(cfg_report.get("true_prevalence", False))


def select(frame: pd.DataFrame, period=None, area_type=None, codes=None, condition=None, group_type=None,
           group_value=None) -> pd.DataFrame:
    """The rows of `frame` that match every criterion given (`codes`: one area code or several; `condition`:
    a condition or indicator id)."""
    keep = np.ones(len(frame), dtype=bool)
    for column, value in (("period", period), ("area_type", area_type), ("condition", condition),
                          ("group_type", group_type), ("group_value", group_value)):
        if value is not None:
            keep &= (frame[column] == value).to_numpy()
    if codes is not None:
        keep &= frame["area_code"].isin([codes] if isinstance(codes, str) else list(codes)).to_numpy()
    return frame[keep]


def labelled(conditions: list[dict], key: str = "condition") -> list[tuple[str, str]]:
    """(label, id) of each condition (or indicator, `key` 'indicator'): what the panels of a chart are."""
    return [(condition["label"], condition[key]) for condition in conditions]


def _hidden(row) -> bool:
    return bool(row.get("observed_redacted", False))


def counts_hidden(row) -> bool:
    """Whether a row's recorded or registered count is hidden (so is its rate)."""
    return _hidden(row) or bool(row.get("population_redacted", False))


def ratio_cell(row) -> str:
    return w.fmt_ratio(row["ratio"], row["ratio_lower"], row["ratio_upper"], hidden=_hidden(row))


def rate_cell(row) -> str:
    return w.fmt_rate(row["rate"], hidden=counts_hidden(row))


def csv_rows(frame: pd.DataFrame, columns=CSV_COLUMNS) -> pd.DataFrame:
    """Rows as a CSV prints them: `columns` (those present), dates as text, rates to 6 decimal places."""
    out = for_print(frame)
    out = out[[column for column in columns if column in out.columns]].copy()
    out["period"] = out["period"].astype(str)
    for column in ("rate", "rate_lower", "rate_upper"):
        if column in out.columns:
            out[column] = [value if isinstance(value, str) or value is None else round(float(value), 6)
                           for value in out[column]]
    return out


def group_frame(frame: pd.DataFrame, period, area_type: str, code: str, group_type: str, item: str,
                order: list[str] | None = None) -> pd.DataFrame:
    """Rows of one breakdown for one area and condition (or indicator), in the breakdown's display order (every
    group of `order` present, NaN where the area has none)."""
    rows = select(frame, period, area_type, code, item, group_type).set_index("group_value")
    order = order or [value for value in GROUP_ORDER[group_type] if value in rows.index]
    rows = rows.reindex(order)
    rows["label"] = [w.group_label(group_type, value) for value in order]
    rows["hidden"] = charts.hidden_flags(rows)
    return rows.reset_index().rename(columns={"index": "group_value"})


def breakdown_charts(frame: pd.DataFrame, period, area_type: str, code: str, items: list[tuple[str, str]],
                     breakdowns, prefix: str = "by", xlabel: str = "Recorded ÷ expected") -> list[tuple]:
    """A dot chart (`prefix`_`breakdown`) of one area's groups per breakdown it has: a panel per item (label,
    condition or indicator id), every group the area has in the breakdown, in the breakdown's order."""
    out = []
    for group_type in breakdowns:
        rows = select(frame, period, area_type, code, group_type=group_type)
        order = [value for value in GROUP_ORDER[group_type] if value in set(rows["group_value"])]
        panels = [(label, group_frame(rows, period, area_type, code, group_type, item, order))
                  for label, item in items] if order else []
        if panels and len(panels[0][1]):
            out.append((f"{prefix}_{group_type}", charts.dot_chart, (panels,), dict(xlabel=xlabel)))
    return out


def area_panels(frame: pd.DataFrame, period, area_type: str, codes, names: dict,
                items: list[tuple[str, str]]) -> list[tuple[str, pd.DataFrame]]:
    """A dot-chart panel per item (label, condition or indicator id): the areas' `all` rows, the highest ratio of
    the first item first."""
    rows = select(frame, period, area_type, codes, group_type="all")

    def of(item):
        return rows[rows["condition"] == item].set_index("area_code")

    first = of(items[0][1])["ratio"]
    order = sorted(codes, key=lambda code: (-(first.get(code) if code in first.index and
                                              math.isfinite(w.number(first.get(code))) else -99), names.get(code, code)))
    panels = []
    for label, item in items:
        area_rows = of(item).reindex(order)
        area_rows["label"] = [names.get(code, code) for code in order]
        area_rows["hidden"] = charts.hidden_flags(area_rows)
        panels.append((label, area_rows.reset_index()))
    return panels


def headlines(prev: pd.DataFrame, inp: Inputs, area_type: str, code: str, max_n: int) -> list[dict]:
    """The largest clear gaps: latest period, ratio upper limit < 1 (as published, 2 dp), ranked by the
    published number missing, each condition's largest gap guaranteed a place; 'Unknown' groups are data
    quality, not inequality, and are left out."""
    rows = select(prev, inp.latest, area_type, code)
    rows = rows[rows["group_type"].isin(BREAKDOWNS) & (rows["group_value"] != "Unknown") & (rows["ratio_upper"] < 1)
                & rows["missing"].notna() & (rows["missing"] > 0) & ~rows["observed_redacted"]]
    rows = rows.sort_values(["missing", "ratio"], ascending=[False, True])
    # every condition's largest gap first (so a common condition cannot crowd out the others), then the rest
    first = ~rows.duplicated("condition")
    rows = pd.concat([rows[first], rows[~first]]).head(max_n).sort_values(["missing", "ratio"], ascending=[False, True])
    return [dict(row) for _, row in rows.iterrows()]


def pack_changes(inp: Inputs, area_type: str, codes, prev: pd.DataFrame | None = None,
                 overlap: str = "trend_overlap") -> pd.DataFrame:
    """The published change between the previous and the latest date for every cell of the areas a pack reports
    on (one family for the FDR control), computed from the controlled counts (published_trend). `prev`: the
    pack's rows, when already sliced (they must hold the areas'), or the indicator rows, with `overlap` the
    Inputs field of their controlled overlap counts (as in _with_changes). Each cell's row is also in
    `attrs['by_cell']`: (area_code, condition, group_type, group_value) -> row (a dict's `get`: pandas would
    deep-copy a dict into every frame derived from `changes`)."""
    changes = pt.published_changes(inp.prev if prev is None else prev, getattr(inp, overlap), inp.previous,
                                   inp.latest, area_type, codes, inp.policy)
    if changes is not None and not changes.empty:
        cell = ["area_code", "condition", "group_type", "group_value"]
        changes.attrs["by_cell"] = {tuple(key): row for key, row in
                                    zip(changes[cell].itertuples(index=False), changes.to_dict("records"))}.get
    return changes


def _change(changes: pd.DataFrame | None, cell: tuple) -> dict:
    """The change of a cell (area_code, condition or indicator, group_type, group_value); {} when there is none."""
    if changes is None or changes.empty:
        return {}
    return changes.attrs["by_cell"](cell) or {}


def _trend_label(changes: pd.DataFrame | None, cell: tuple) -> str:
    return _change(changes, cell).get("label") or "–"


def change_sentence(inp: Inputs, changes, cell: tuple, comparator: str) -> str:
    """The change of a cell since the previous date in words (see wording.change_sentence)."""
    change = _change(changes, cell)
    return w.change_sentence(inp.previous, change.get("ratio_from"), change.get("ratio_to"), change.get("change"),
                             change.get("change_lower"), change.get("change_upper"), change.get("label") or "",
                             comparator)


def _cond(inp: Inputs, cid: str) -> dict:
    return next(condition for condition in inp.conditions if condition["condition"] == cid)


def _published_ratio(row) -> tuple[float, float, float]:
    """A row's ratio and 95% interval recomputed from its controlled counts (the one interval method, stats.isr)."""
    if _hidden(row) or not math.isfinite(float(row["observed"])):
        return (float("nan"),) * 3
    ratio, lower, upper = stats.isr(float(row["observed"]), float(row["expected"]))
    return float(ratio), float(lower), float(upper)


def _whole_area_rows(prev: pd.DataFrame, inp: Inputs, area_type: str, code: str):
    """(condition, the area's `all` row on the latest date) for each condition the area has."""
    rows = select(prev, inp.latest, area_type, code, group_type="all")
    for condition in inp.conditions:
        row = rows[rows["condition"] == condition["condition"]]
        if len(row):
            yield condition, row.iloc[0]


def area_summary(prev, inp: Inputs, area_type: str, code: str, changes, comparator: str,
                 true_prevalence: bool) -> dict:
    """Page 1, part 1: the area as a whole against the comparator, one sentence and one table row per
    condition, with the published change since the previous date."""
    rows, sentences = [], []
    for condition, row in _whole_area_rows(prev, inp, area_type, code):
        ratio, lower, upper = _published_ratio(row)
        shortfall = float(row["missing"]) if not _hidden(row) else float("nan")
        cell = (code, condition["condition"], "all", "All")
        sentences.append(dict(
            text=w.gap_sentence(condition["label"], "all", "All", int(condition["min_age"]) >= 18, ratio, lower, upper,
                                shortfall, comparator, true_prevalence, like=like_for_like(inp)),
            change=change_sentence(inp, changes, cell, comparator)))
        rows.append([condition["label"], w.fmt_count(row["population"]), w.fmt_count(row["observed"]),
                     w.fmt_count(row["expected"]), w.fmt_ratio(ratio, lower, upper, hidden=_hidden(row)),
                     w.fmt_count(row["missing"]), _trend_label(changes, cell)])
    head = ["Condition", "Registered", "Recorded", "Expected", "Ratio (95% CI)", "Expected − recorded", "Change in gap"]
    return dict(sentences=sentences, table=dict(header=head, rows=rows, align="lrrrrrl"))


def within_gaps(prev: pd.DataFrame, inp: Inputs, area_type: str, codes, max_n: int) -> pd.DataFrame:
    """The first `max_n` groups recorded clearly less often than the rest of their own area
    (published_trend.within_area, tier above 0). Patients affected (derived from published counts) are printed
    rounded like a count, so never as an exact number, and hidden where they would read as a small number
    (1..threshold); the ranking keeps the unrounded value."""
    gaps = pt.within_area(prev, inp.latest, area_type, codes, BREAKDOWNS)
    affected = gaps["within_affected"].to_numpy(float)
    shown = round_count(affected, inp.policy)
    shown[is_small(affected, inp.policy)] = np.nan  # nothing published reads as a small number
    gaps["within_affected_shown"] = shown
    return gaps[gaps["tier"] > 0].head(max_n)


def within_items(prev, inp: Inputs, area_type: str, code: str, changes, comparator: str,
                 max_n: int) -> list[dict]:
    """Page 1, part 2: the groups recorded clearly less often than the rest of their own area (within_gaps: the
    group's ratio over the area's, 95% interval below 1), in words, with the change since the previous date."""
    items = []
    for _, gap in within_gaps(prev, inp, area_type, [code], max_n).iterrows():
        condition = _cond(inp, gap["condition"])
        text = w.within_sentence(condition["label"], gap["group_type"], gap["group_value"],
                                 int(condition["min_age"]) >= 18, gap["within_value"], gap["within_lower"],
                                 gap["within_upper"], gap["within_affected_shown"], "the PCN")
        change = change_sentence(inp, changes, (code, gap["condition"], gap["group_type"], gap["group_value"]),
                                 comparator)
        # the page prints `text` and `change` (`ratio`, `lower`, `upper`: the numbers in `text`); the trend
        # chart draws the group; page_one_items ranks by missing_value
        items.append(dict(text=text, change=change, condition=gap["condition"], group_type=gap["group_type"],
                          group_value=gap["group_value"], missing_value=float(gap["within_affected_shown"]),
                          ratio=f"{gap['within_value']:.2f}", lower=f"{gap['within_lower']:.2f}",
                          upper=f"{gap['within_upper']:.2f}"))
    return items


def overview_table(prev, inp: Inputs, area_type, code) -> dict:
    rows = []
    for condition, row in _whole_area_rows(prev, inp, area_type, code):
        direction = w.direction(row["ratio_lower"], row["ratio_upper"]) if not _hidden(row) else ""
        rows.append([condition["label"], w.fmt_count(row["population"]), w.fmt_count(row["observed"]), rate_cell(row),
                     w.fmt_count(row["expected"]), ratio_cell(row), w.fmt_count(row["missing"]),
                     OVERALL.get(direction, MARKER)])
    return dict(header=["Condition", "Registered", "Recorded", "Rate", "Expected", "Ratio (95% CI)", "Expected − recorded",
                        "Overall"], rows=rows, align="lrrrrrrl")


def group_table(prev, inp: Inputs, area_type, code, cond: str) -> dict:
    """One area's rows of every breakdown for one condition, each breakdown named on its first row."""
    rows = []
    for breakdown in BREAKDOWNS:
        title = w.BREAKDOWN_TITLE[breakdown]
        for _, row in group_frame(prev, inp.latest, area_type, code, breakdown, cond).iterrows():
            if not math.isfinite(float(row["population"])) and not bool(row.get("population_redacted", False)):
                continue
            rows.append([title, row["label"], w.fmt_count(row["population"]), w.fmt_count(row["observed"]),
                         rate_cell(row), w.fmt_count(row["expected"]), ratio_cell(row), w.fmt_count(row["missing"])])
            title = ""
    return dict(header=["Breakdown", "Group", "Registered", "Recorded", "Rate", "Expected", "Ratio (95% CI)",
                        "Expected − recorded"], rows=rows, align="llrrrrrr")


def area_tables(prev, inp: Inputs, area_type: str, codes, names: dict | None = None,
                first: str = "Area") -> list[dict]:
    """Per condition, a table of the areas' `all` rows in order of name (`names`: code -> name; None: the rows'
    own area_name)."""
    tables, all_rows = [], select(prev, inp.latest, area_type, codes, group_type="all")
    for condition in inp.conditions:
        rows = all_rows[all_rows["condition"] == condition["condition"]]
        rows = rows.assign(name=list(rows["area_name"]) if names is None
                           else [names.get(code, code) for code in rows["area_code"]]).sort_values("name")
        table = [[f"{row['name']} ({row['area_code']})", w.fmt_count(row["population"]), w.fmt_count(row["observed"]),
                  rate_cell(row), ratio_cell(row), w.fmt_count(row["missing"])] for _, row in rows.iterrows()]
        tables.append(dict(condition=condition["label"],
                           table=dict(header=[first] + AREA_COLUMNS, rows=table, align="lrrrrr")))
    return tables


def dq_rows(inp: Inputs, area_type: str, codes, names: dict) -> dict | None:
    quality = inp.data_quality
    if quality is None or quality.empty:
        return None
    shares = ("ethnicity_not_recorded", "lsoa_missing", "lsoa_unmatched", "no_neighbourhood")
    rows = [[names.get(row["area_code"], row["area_code"]), w.fmt_count(row["population"])]
            + [w.fmt_share(row[column], row["population"]) for column in shares]
            for _, row in select(quality, inp.latest, area_type, codes).sort_values("area_code").iterrows()]
    return dict(header=["Area", "Registered", "Ethnicity not recorded", "No LSOA", "LSOA not matched",
                        "No neighbourhood"], rows=rows, align="lrrrrr")


def load_rows(inp: Inputs) -> dict | None:
    summary = inp.load_summary
    if summary is None or summary.empty:
        return None
    rows = [[str(row["source"]), w.fmt_count(row["rows_read"]), w.fmt_count(row["rows_loaded"]),
             w.fmt_count(row["rows_rejected"])] for _, row in summary.iterrows()]
    return dict(header=["Input file", "Rows read", "Rows loaded", "Rows rejected"], rows=rows, align="lrrr")


def pack_context(inp: Inputs, comparator: str, true_prevalence: bool) -> dict:
    """What every PCN and ICS pack prints alike: the comparator, methods, disclosure note, provenance and
    input rows, and which sections the data allow."""
    return dict(comparator=comparator, methods=methods_text(inp, comparator, true_prevalence),
                disclosure=inp.policy.describe(), provenance=provenance(inp), load=load_rows(inp),
                like=like_for_like(inp), has_patient_groups=inp.has_patient_groups,
                has_funnel=inp.funnel is not None and not inp.funnel.empty)


def provenance(inp: Inputs) -> dict:
    run_info = inp.run_info
    return dict(data_date=w.long_date(inp.latest), pipeline_version=str(run_info.get("pipeline_version", "unknown")),
                input_hash=str(run_info.get("input_hash", "unknown")), run_date=str(run_info.get("run_date", "unknown")),
                periods=", ".join(w.long_date(period) for period in inp.periods))


PUBLISHED_METHODS = [
    "Who is counted. NHS England's published Quality and Outcomes Framework (QOF) registers: the patients on each "
    "practice's disease register at the end of the QOF year, out of the practice's list size for that register's "
    "ages (for example patients aged 18 and over for depression). PCN, ICB and England figures are the sums of "
    "their practices. Published counts are per practice, so there are no breakdowns by patients' own ethnic "
    "group, sex, age or home area; deprivation is the practice's: its national decile of practices by IMD score "
    "(the patients' home areas, population-weighted), each decile holding a tenth of England's patients.",
    "Expected numbers. For each register, England's rate among practices in the same national deprivation decile "
    "applied to the practice's list size; areas add up their practices. 'Expected − recorded' is how many fewer "
    "are recorded than that (negative: more): a gap to England's level for similarly deprived practices, not a "
    "count of undiagnosed people. A Poisson model that also allows for age structure, sex and ethnicity is in the "
    "warehouse for analysts (public_model, public_expected).",
    "Change over time. The change in an area's ratio between two QOF years is worked out on the earlier year's "
    "rates (so a change England shares shows as a change), treating the two years' counts as independent (the "
    "published data cannot say which patients are on a register in both years, so the interval is on the wide "
    "side). 'Narrowed' or 'widened' is called after controlling the false discovery rate (Benjamini-Hochberg, 5%).",
    "Ratios and intervals. The ratio is recorded ÷ expected, with an exact Poisson (below 10) or Byar 95% "
    "interval; rates have Wilson intervals. 'Fewer' or 'more' only when the whole interval is below or above 1. "
    "Funnel plots compare practices and PCNs with their ICB, and ICBs with England. The slope and relative index "
    "of inequality are fitted across practice deprivation quintiles (PCNs, ICBs) and deciles (ICBs, England).",
    "Caveats. Lower recording is not the same as lower illness. Practice deprivation describes the practice's "
    "patients on average, not each patient; a register's list size counts every registered patient of its ages.",
]


def methods_text(inp: Inputs, comparator: str, true_prevalence: bool = False) -> list[str]:
    if inp.source == "published":
        placed = inp.run_info.get("practices_placed")
        return PUBLISHED_METHODS + ([f"Practices placed in the ICB and PCN hierarchy of the latest year: {placed}."]
                                    if placed else [])
    conds = "; ".join(f"{condition['label']} ({'aged ' + str(condition['min_age']) + ' and over' if int(condition['min_age']) else 'all ages'})"
                      for condition in inp.conditions)
    return [
        f"Who is counted. Patients registered with a practice on each date and alive on it. Conditions: {conds}. "
        "A patient counts as having a condition when a diagnosis code from the condition's code list is in their "
        "record on or before the date (and, where a 'resolved' code list exists, the latest diagnosis is later "
        "than the latest resolved code).",
        (f"Expected numbers. For each sex and five-year age band we take the rate in {comparator} and apply it to "
         "the people in each group. 'Expected' is what a group would have if its rate were that reference's for "
         "people of its age and sex. 'Expected − recorded' (the column 'missing' in the CSV files) is how many "
         f"fewer are recorded than {comparator} for people of the same age and sex would give (negative: more). "
         + ("These reference rates are configured as rates of true prevalence, so a shortfall may be people whose "
            "condition is not diagnosed or not recorded, on that basis." if true_prevalence else
            "These are the dataset's own average rates, so across the whole dataset expected − recorded adds up to "
            "0: it is a gap to the average, not a count of undiagnosed people.")),
        "Change over time. The change in a ratio between the last two dates has a 95% interval that allows for "
        "most patients being counted on both dates (worked out from the published, rounded counts of patients "
        "recorded on both dates; the rounding is allowed for). 'Narrowed' or 'widened' says whether the ratio's "
        "distance from 1 (the gap to the average) shrank or grew: a ratio that crosses from 0.90 to 1.12 is about "
        "as far from the average as before and is not called either. A change is only called narrowed or widened "
        "when it is clear after controlling the false discovery rate (Benjamini-Hochberg, 5%) over every "
        "condition and group of the area in this pack.",
        "Groups within the PCN. Page 1 compares each group with the PCN's own standardised level: the group's "
        "ratio divided by the PCN's, so a group is compared with the rest of its own population (age and sex "
        "taken into account), whatever the PCN's level against the ICB. Its 95% interval is the Wilson interval of "
        "the group's share of the PCN's recorded patients; groups are ranked by how large a gap the interval "
        "clearly shows (its upper limit in bands: below 0.80, 0.80–0.90, 0.90–0.95, 0.95–1), then by how many more "
        "patients the group would have at the PCN's own level.",
        "Ratios and intervals. The ratio is recorded ÷ expected (indirect standardisation). Its 95% interval "
        "uses the exact Poisson method below 10 patients and Byar's method otherwise. We only say a group has "
        "'fewer' or 'more' than the average would give when the whole interval is below or above 1; otherwise we say "
        "'about as many'. Rates are the share of registered patients with the condition, with Wilson intervals.",
        "Groups. Ethnicity uses the five ONS high-level groups from the NHS ethnic category code; 'Unknown' means "
        "not recorded. Deprivation quintiles come from the national Index of Multiple Deprivation decile of the "
        "patient's home area (1 = most deprived fifth of England).",
        "Caveats. Lower recording is not the same as lower illness: it can reflect who comes forward, who is "
        "asked, how codes are used, or a different true prevalence. The expected numbers assume every group "
        "should match the average for its age and sex, which may not hold (for example, some conditions are "
        "truly more common in some ethnic groups). Small groups have wide intervals. Missing ethnicity or "
        "home area moves people into 'Unknown'.",
    ]



def _area_points(prev, inp: Inputs, area_type, codes, names, max_names: int = 4,
                 comparator: str = "the ICB average") -> list[str]:
    """One line per condition: how many areas have clearly fewer / more recorded than expected, naming the
    largest shortfalls (at most `max_names`, with their controlled numbers missing)."""
    out = []
    like = " for the same ages and sexes" if like_for_like(inp) else ""
    noun = {"pcn": "PCNs", "neighbourhood": "neighbourhoods", "icb": "ICBs"}.get(area_type, "areas")
    total = len(set(codes))
    rows = select(prev, inp.latest, area_type, codes, group_type="all")
    for condition in inp.conditions:
        area_rows = rows[(rows["condition"] == condition["condition"]) & ~rows["observed_redacted"].astype(bool)]
        low = area_rows[area_rows["ratio_upper"] < 1].sort_values(["missing", "area_code"], ascending=[False, True])
        high = area_rows[area_rows["ratio_lower"] > 1]
        if len(low):
            shown = [f"{names.get(row.area_code, row.area_code)} ({w.about(row.missing)})" for row in low.head(max_names).itertuples()]
            more = f" and {len(low) - max_names} more" if len(low) > max_names else ""
            text = (f"{condition['label']}: in {len(low)} of {total} {noun}, clearly fewer recorded than {comparator} "
                    f"would give{like} ({', '.join(shown)}{more} fewer)")
        else:
            text = (f"{condition['label']}: no {noun[:-1]} has clearly fewer recorded than {comparator} would give{like}")
        if len(high):
            higher_names = sorted(names.get(code, code) for code in high["area_code"])
            text += (f"; clearly more in {len(high)} ({', '.join(higher_names)})" if len(higher_names) <= max_names
                     else f"; clearly more in {len(high)}")
        out.append(text + ".")
    return out


def _sii_hidden(prev: pd.DataFrame, inp: Inputs, area_type: str, dimension: str = "imd_quintile") -> set[tuple[str, str]]:
    """(area_code, condition) pairs whose SII/RII is not shown: a quintile's recorded or registered count is
    hidden (the fitted gradient and the other quintiles' published rates could give a hidden rate back)."""
    quintile_rows = select(prev, inp.latest, area_type, group_type=dimension)
    quintile_rows = quintile_rows[quintile_rows["group_value"].isin(["1", "2", "3", "4", "5"])]
    bad = quintile_rows[quintile_rows["observed_redacted"].astype(bool) | quintile_rows["population_redacted"].astype(bool)]
    return set(zip(bad["area_code"], bad["condition"]))


def _named(names: list[str]) -> str:
    """'2 (A, B)' for up to four names, else their number; 'none'."""
    return f"{len(names)} ({', '.join(names)})" if 0 < len(names) <= 4 else (str(len(names)) if names else "none")


def inequality_section(prev: pd.DataFrame, inp: Inputs, pcns, names: dict, icb: str, icb_name: str,
                       area_type: str = "icb", child_type: str = "pcn") -> dict | None:
    """SII and RII of the crude rate across national deprivation quintiles, for the ICB and each PCN: a table
    per condition (SII in percentage points, RII, both with 95% intervals, and the direction in words), one
    sentence per condition for the ICB, and the chart frames (RII per area). phe_sii convention: quantile 1 =
    most deprived; SII = fitted rate at the least deprived end minus the most deprived end; RII = their ratio.
    An area's values are hidden when one of its quintile counts is hidden by disclosure control."""
    sii_rows = inp.inequality
    if sii_rows is None or sii_rows.empty:
        return None
    dimension = "imd_quintile" if inp.has_patient_groups else "practice_imd_quintile"
    sii_rows = sii_rows[(sii_rows["period"] == inp.latest) & (sii_rows["dimension"] == dimension) & (sii_rows["measure"] == "crude_rate")]
    if sii_rows.empty:
        return None
    hidden = _sii_hidden(prev, inp, child_type, dimension) | _sii_hidden(prev, inp, area_type, dimension)
    # Monte Carlo limits that a rerun could move at the printed precision (PHE reliability_stat) are not shown
    poor = sii_rows[sii_rows["reliability"] == "poor"] if "reliability" in sii_rows.columns else sii_rows.iloc[:0]
    unreliable = set(zip(poor["area_code"], poor["condition"]))
    whole = "England" if area_type == "england" else f"{icb_name} (whole ICB)"
    whole_words = "England as a whole" if area_type == "england" else "the ICB as a whole"
    areas = [(icb, area_type, whole)] + [(pcn, child_type, names.get(pcn, pcn)) for pcn in pcns]
    key = ["area_type", "area_code", "condition"]
    values = sii_rows.drop_duplicates(key).set_index(key)[
        ["sii", "sii_lower", "sii_upper", "rii", "rii_lower", "rii_upper"]]
    tables, words, full, panels, children = [], [], [], [], []
    for condition in inp.conditions:
        rows, frame, more, less, n_shown = [], [], [], [], 0
        for code, at, area_name in areas:
            hid = (code, condition["condition"]) in hidden
            shaky = (code, condition["condition"]) in unreliable
            key = (at, code, condition["condition"])
            vals = [float(v) for v in values.loc[key]] if key in values.index and not (hid or shaky) \
                else [float("nan")] * 6
            shown = math.isfinite(vals[0]) and not hid
            rows.append([area_name, w.fmt_sii(*vals[:3], hidden=hid), w.fmt_ratio(*vals[3:], hidden=hid),
                         MARKER if hid else ("not repeatable" if shaky else
                                             (w.gradient_words(vals[4], vals[5]) if shown else "not calculable"))])
            frame.append(dict(label=area_name, ratio=vals[3], ratio_lower=vals[4], ratio_upper=vals[5], hidden=hid))
            if at == area_type:
                missing = f"{condition['label']}: the gradient for {whole_words} cannot be shown."
                words.append(w.describe_sii(condition["label"], whole_words, *vals, brief=True) if shown else missing)
                full.append(w.describe_sii(condition["label"], whole_words, *vals) if shown else missing)
            elif shown:
                n_shown += 1
                if math.isfinite(vals[5]) and vals[5] < 1:
                    more.append(area_name)
                if math.isfinite(vals[4]) and vals[4] > 1:
                    less.append(area_name)
        tables.append(dict(condition=condition["label"], table=dict(
            header=["Area", "SII, percentage points (95% CI)", "RII (95% CI)", "Recorded rate"], rows=rows,
            align="lrrl")))
        panels.append((condition["label"], pd.DataFrame(frame)))
        # whether a PCN's gradient is clearly steeper or flatter than the ICB's would need a test of the
        # difference; the plain words stay with each PCN's own interval: how many show a clear gradient
        if n_shown:
            more, less = sorted(more), sorted(less)
            children.append(f"{condition['label']}: of the {n_shown} {child_type.upper()}s whose gradient can be shown, "
                            f"{_named(more)} {'has' if len(more) == 1 else 'have'} a clearly higher recorded rate in "
                            f"more deprived areas and {_named(less)} a clearly lower one.")
        else:
            children.append(f"{condition['label']}: no {child_type.upper()}'s gradient can be shown.")
    return dict(tables=tables, words=words, full=full + children, panels=panels)


def _fmt_core20(share, hidden: bool, known: bool, gap: bool = True) -> str:
    """A Core20 share for print: whole percent; for a gap share, 'none' below 0 and 'all' above 100%."""
    if hidden:
        return MARKER
    if not known or not math.isfinite(float(share)):
        return "–"
    if gap and share < 0:
        return "none"
    if gap and share > 1:
        return "all"
    return w.fmt_pct(share)


def short_group(group_type: str, value: str) -> str:
    """A group for a table cell: 'Black', 'IMD 1 (most deprived)', 'Aged 40–44', 'Female'."""
    prefix = {"imd_quintile": "IMD ", "age_band": "Aged "}.get(group_type, "")
    return prefix + w.group_label(group_type, value)


def system_gaps(prev: pd.DataFrame, inp: Inputs, pcns, max_n: int = 10) -> pd.DataFrame:
    """The largest clear gaps across the system, within each PCN (see within_gaps: PCN x group rows of the
    latest date recorded clearly less often than the rest of their own PCN), with their Core20 shares."""
    return core20_shares(inp, within_gaps(prev, inp, "pcn", pcns, max_n).reset_index(drop=True))


def core20_shares(inp: Inputs, gaps: pd.DataFrame) -> pd.DataFrame:
    """Add the Core20 shares of each gap (PCN x group rows), from published counts only:

    * `core20_population_share`: the share of the group's registered patients who live in Core20 areas
      (the most deprived national IMD quintile, '1'; patients with no known home area count as not Core20):
      published Core20 registered ÷ published registered;
    * `core20_missing_share`: the share of the group's shortfall against expected that is among its Core20
      residents: (published Core20 expected − published Core20 recorded) ÷ (published expected − published
      recorded). Below 0: Core20 residents of the group have more recorded than expected; above 1: their
      shortfall exceeds the group's.

    `core20_hidden` is True (both shares hidden) when a Core20 part is hidden by disclosure control, or when a
    part or its remainder (the group less its Core20 part) would read as a small number. NaN shares where the
    warehouse has no stratified counts."""
    out = gaps.assign(core20_population_share=np.nan, core20_missing_share=np.nan, core20_hidden=False,
                      core20_known=False)
    c20 = inp.core20
    if c20 is None or c20.empty or len(out) == 0:
        return out
    key = ["condition", "area_code", "group_type", "group_value"]
    parts = c20[c20["area_type"] == "pcn"][key + ["core20_population", "core20_observed", "core20_expected"]]
    merged = out[key].merge(parts, on=key, how="left", indicator=True)
    pop, obs, exp = (out[c].to_numpy(dtype=float) for c in ("population", "observed", "expected"))
    pop1, obs1, exp1 = (merged[c].to_numpy(dtype=float)
                        for c in ("core20_population", "core20_observed", "core20_expected"))
    gap, gap1 = exp - obs, exp1 - obs1
    hidden = np.isnan(pop1) | np.isnan(obs1) | np.isnan(exp1) | np.isnan(pop) | np.isnan(obs) | np.isnan(exp)
    for part in (gap1, pop - pop1, obs - obs1, gap - gap1):   # the Core20 gap and each remainder
        hidden |= is_small(part, inp.policy)
    known = (merged["_merge"] == "both").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        pop_share = np.where(pop > 0, pop1 / pop, np.nan)
        gap_share = np.where(gap > 0, gap1 / gap, np.nan)
    out["core20_population_share"] = np.where(hidden, np.nan, pop_share)
    out["core20_missing_share"] = np.where(hidden, np.nan, gap_share)
    out["core20_hidden"] = hidden & known
    out["core20_known"] = known
    return out


def _within_cell(row) -> str:
    return w.fmt_ratio(row["within_value"], row["within_lower"], row["within_upper"])


def system_gap_table(gaps: pd.DataFrame, inp: Inputs, names: dict) -> dict:
    rows = []
    for _, row in gaps.iterrows():
        hid, known = bool(row["core20_hidden"]), bool(row["core20_known"])
        rows.append([names.get(row["area_code"], row["area_code"]), _cond(inp, row["condition"])["label"],
                     short_group(row["group_type"], row["group_value"]), w.fmt_count(row["observed"]), _within_cell(row),
                     w.fmt_count(row["within_affected_shown"]),
                     _fmt_core20(row["core20_population_share"], hid, known, gap=False),
                     _fmt_core20(row["core20_missing_share"], hid, known)])
    return dict(header=["PCN", "Condition", "Group", "Recorded", "Ratio to own PCN (95% CI)",
                        "Fewer than at PCN's level", "Core20 share of group", "Core20 share of ICB gap"],
                rows=rows, align="lllrrrrr")


def icb_gap_table(prev: pd.DataFrame, inp: Inputs, icb: str, max_n: int, changes) -> dict | None:
    """The ICB's own groups recorded clearly less often than the ICB as a whole (the same within-area view as the
    PCN pack's page 1), with the published change in their gap since the previous date."""
    gaps = within_gaps(prev, inp, "icb", [icb], max_n)
    if gaps.empty:
        return None
    rows = [[_cond(inp, gap["condition"])["label"], short_group(gap["group_type"], gap["group_value"]),
             w.fmt_count(gap["observed"]), _within_cell(gap), w.fmt_count(gap["within_affected_shown"]),
             _trend_label(changes, (icb, gap["condition"], gap["group_type"], gap["group_value"]))]
            for _, gap in gaps.iterrows()]
    head = ["Condition", "Group", "Recorded", "Ratio to the ICB's own level (95% CI)", "Fewer than at the ICB's level",
            "Change in gap"]
    return dict(header=head, rows=rows, align="llrrrl")


# ---------------------------------------------------------------------------------------------- community

def build_community(inp: Inputs, pcn: str, cfg_report: dict) -> Pack:
    # the packs' own published cells: one set of rules for every publication
    prev = select(inp.prev, area_type="pcn", codes=pcn)
    name = str(inp.practices.loc[inp.practices["pcn_code"] == pcn, "pcn_name"].iloc[0])
    items, found = [], headlines(prev, inp, "pcn", pcn, 3)
    for headline in found:
        condition = _cond(inp, headline["condition"])
        items.append(w.plain_gap(condition["label"], headline["group_type"], headline["group_value"],
                                 int(condition["min_age"]) >= 18, headline["ratio_lower"], headline["ratio_upper"],
                                 headline["missing"]))
    ctx = dict(
        title=f"What the GP records show: {name}",
        heading=f"What the GP records show: {name}",
        subtitle=f"A summary for community partners. Data to {w.long_date(inp.latest)}.",
        findings=items,
        conditions=[condition["label"] for condition in inp.conditions],
        comparator=comparator_name(inp),
        disclosure=inp.policy.describe(),
        provenance=provenance(inp),
    )
    charted = ("ethnicity", "imd_quintile")
    charts_ = breakdown_charts(prev, inp.latest, "pcn", pcn, labelled(inp.conditions), charted)
    # the numbers behind the summary, beside it as CSV (same stricter control; PCN level only, latest date): the
    # charted breakdowns and every breakdown a finding names (a finding on men or an age band prints its group's
    # published `missing`, which must be in the CSV too)
    shown = {"all", *charted, *(headline["group_type"] for headline in found)}
    in_pack = (prev["period"] == inp.latest) & prev["group_type"].isin(sorted(shown))  # prev: this PCN's rows
    return Pack("community", pcn, "community.typ", ctx, charts_, csv_rows(prev[in_pack]))


# ---------------------------------------------------------------------------------------------- PCN pack

def _funnel_points(rows: pd.DataFrame, highlight: bool) -> pd.DataFrame:
    return pd.DataFrame(dict(expected=rows["expected"].to_numpy(dtype=float), ratio=rows["ratio"].to_numpy(dtype=float),
                             highlight=highlight, label=rows["area_name"].to_numpy()))


def _funnel_panels(items: list[tuple[str, str]], grey: pd.DataFrame, highlighted: pd.DataFrame) -> list:
    """A funnel panel per item (label, condition id): the points of the `grey` rows, then the highlighted."""
    return [(label, pd.concat([_funnel_points(grey[grey["condition"] == cid], False),
                               _funnel_points(highlighted[highlighted["condition"] == cid], True)],
                              ignore_index=True))
            for label, cid in items]


def _map_charts(prev: pd.DataFrame, inp: Inputs) -> list[tuple]:
    """The neighbourhoods' map, a panel per condition (none without boundaries)."""
    if inp.geoms is None:
        return []
    rows = select(prev, inp.latest, "neighbourhood", inp.geoms.index, group_type="all")
    panels = [(condition["label"], rows.loc[rows["condition"] == condition["condition"],
                                            ["area_code", "ratio_lower", "ratio_upper"]].rename(columns={"area_code": "code"}))
              for condition in inp.conditions]
    return [("map", charts.map_chart, (inp.geoms, panels), {})]


NO_MAP = "No boundaries were supplied (boundaries.geojson), so there is no map in this pack."


def _extra_csvs(inp: Inputs, areas: list[tuple[str, list]]) -> dict[str, pd.DataFrame]:
    """The pack's other numbers as CSV, as printed: the data-quality counts (latest date) of its first two `areas`
    [(area_type, codes)] (the pack's area and its parts), the input row counts, and the indicator rows of every area
    (the change since the previous date beside the first's)."""
    from .indicator_pages import indicator_csv

    out = {}
    quality = inp.data_quality
    if quality is not None and not quality.empty:
        take = in_areas(quality, areas[:2]) & (quality["period"] == inp.latest).to_numpy()
        out["data_quality"] = csv_rows(quality[take].sort_values(["area_type", "area_code"]),
                                       output_columns("data_quality"))
    if inp.load_summary is not None and not inp.load_summary.empty:
        table = for_print(inp.load_summary)
        out["inputs"] = table[[column for column in LOAD_SUMMARY_COLS if column in table.columns]]
    indicators = indicator_csv(inp, areas)
    if indicators is not None:
        out["indicators"] = indicators
    return out


def build_pcn(inp: Inputs, pcn: str, cfg_report: dict) -> Pack:
    from .indicator_pages import page_one_items, pcn_indicator_pages

    prac = inp.practices[inp.practices["pcn_code"] == pcn]
    name = str(prac["pcn_name"].iloc[0])
    icb_code, icb_name = str(prac["icb_code"].iloc[0]), str(prac["icb_name"].iloc[0])
    icb_practices = inp.practices.loc[inp.practices["icb_code"] == icb_code, "practice_code"]
    # the pack's own areas (its CSV's rows), then the ICB's other practices (funnel) and the neighbourhoods
    areas = [("pcn", [pcn]), ("practice", prac["practice_code"]), ("icb", [icb_code])]
    prev = inp.icb_rows(icb_code)
    prev = prev[in_areas(prev, areas + [("practice", icb_practices), ("neighbourhood", None)])]
    comp, true_prev = comparator_for(inp, cfg_report)
    max_n = int(cfg_report.get("max_headlines", 5))
    changes = pack_changes(inp, "pcn", [pcn], prev)
    codes = prac["practice_code"].tolist()
    ctx: dict = dict(
        title=f"Recording gaps briefing: {name}",
        heading=name,
        subtitle=f"Primary care network {pcn}, {icb_name}. Data to {w.long_date(inp.latest)}.",
        **pack_context(inp, comp, true_prev),
        true_prevalence=true_prev,
        area=area_summary(prev, inp, "pcn", pcn, changes, comp, true_prev),
        headlines=page_one_items(within_items(prev, inp, "pcn", pcn, changes, comp, max_n), inp, "pcn", pcn, max_n,
                                 comp),
        previous=w.long_date(inp.previous) if inp.previous else None,
        group_tables=[dict(condition=condition["label"], table=group_table(prev, inp, "pcn", pcn, condition["condition"]))
                      for condition in inp.conditions] if inp.has_patient_groups else [],
        practice_tables=area_tables(prev, inp, "practice", codes, first="Practice"),
        map_text=("Neighbourhoods are where patients live (their home area), whichever practice they are registered "
                  "with; the map shows every neighbourhood in the data." if inp.geoms is not None else NO_MAP),
    )
    charts_ = breakdown_charts(prev, inp.latest, "pcn", pcn, labelled(inp.conditions), BREAKDOWNS)
    # funnel: this PCN's practices against all practices of the ICB (ratio funnel, published ratios only)
    if ctx["has_funnel"]:
        rows = select(prev, inp.latest, "practice", icb_practices, group_type="all")
        mine = rows["area_code"].isin(codes)
        panels = _funnel_panels(labelled(inp.conditions), rows[~mine], rows[mine])
        charts_ += chart_parts("funnel", charts.funnel_chart, panels, {})
    charts_ += _map_charts(prev, inp)
    # change across periods: overall plus the headline groups
    if len(inp.periods) > 1:
        panels, own = [], select(prev, None, "pcn", pcn)
        for condition in inp.conditions:
            series = [("all", "All", "Everyone")] + [
                (item["group_type"], item["group_value"], w.series_label(item["group_type"], item["group_value"]))
                for item in ctx["headlines"] if item["condition"] == condition["condition"]]
            panels.append((condition["label"], pd.concat([_trend_frame(own, condition["condition"], *one)
                                                          for one in series], ignore_index=True)))
        charts_ += chart_parts("trend", charts.trend_chart, panels, {})
    ctx["trend_rows"] = _per_period_table(prev, inp, "pcn", pcn, changes)
    names = {pcn: name, **dict(zip(prac["practice_code"], prac["practice_name"]))}
    ctx["dq"] = dq_rows(inp, "pcn", [pcn], names)
    ctx["dq_practices"] = dq_rows(inp, "practice", codes, names)
    ctx["indicator_families"], indicator_charts = pcn_indicator_pages(inp, pcn, codes, names, comp)
    charts_ += indicator_charts
    # the pack's numbers
    return Pack("pcn", pcn, "pcn.typ", ctx, charts_,
                _with_changes(csv_rows(prev[in_areas(prev, areas)]), inp, changes, "pcn"),
                extra_csvs=_extra_csvs(inp, areas))


def _trend_frame(own: pd.DataFrame, cond, group_type, group_value, series) -> pd.DataFrame:
    """One series of the trend chart: a cell's ratio at each date (`own`: the PCN's rows)."""
    rows = select(own, None, None, None, cond, group_type, group_value).sort_values("period")
    return pd.DataFrame(dict(series=series, period=[w.short_date(period) for period in rows["period"]],
                             ratio=rows["ratio"].to_numpy(dtype=float), ratio_lower=rows["ratio_lower"].to_numpy(dtype=float),
                             ratio_upper=rows["ratio_upper"].to_numpy(dtype=float)))


def _rate_cell_with_ci(row) -> str:
    if bool(row["observed_redacted"] or row["population_redacted"]):
        return MARKER
    return f"{w.fmt_rate(row['rate'])} ({100 * row['rate_lower']:.1f}–{100 * row['rate_upper']:.1f})"


def _per_period_table(prev, inp: Inputs, area_type, code, changes=None) -> dict | None:
    """One row per condition, a cell per date, of the area's `all` rows. With `changes`: the ratio at each date,
    then the published change (paired 95% interval) and label of the last change. Without: the crude rate
    (Wilson 95%) at each date, for the ICB itself, whose standardised ratio is 1 by construction when it is the
    whole dataset, so the rate is what changes."""
    if len(inp.periods) < 2:
        return None
    area_rows = select(prev, None, area_type, code, group_type="all")
    rows = []
    for condition in inp.conditions:
        by_period = area_rows[area_rows["condition"] == condition["condition"]].set_index("period")
        cell = _rate_cell_with_ci if changes is None else ratio_cell
        cells = [cell(by_period.loc[period]) if period in by_period.index else "–" for period in inp.periods]
        if changes is not None:
            change = _change(changes, (code, condition["condition"], "all", "All"))
            cells.append(w.fmt_ratio(change.get("change"), change.get("change_lower"), change.get("change_upper")))
            cells.append(change.get("label") or "–")
        rows.append([condition["label"]] + cells)
    dates = [w.short_date(period) for period in inp.periods]
    if changes is None:
        return dict(header=["Condition"] + [f"{date} rate (95% CI)" for date in dates], rows=rows,
                    align="l" + "r" * len(inp.periods))
    return dict(header=["Condition"] + dates + [f"Ratio {dates[-2]} → {dates[-1]} (95% CI)", "Gap to average"],
                rows=rows, align="l" + "r" * (len(inp.periods) + 1) + "l")


# ---------------------------------------------------------------------------------------------- ICS pack

RII_CHART = dict(
    xlabel="RII (least ÷ most deprived end)", nan_text="not calculable",
    legend={"lower": "More deprived: higher (RII < 1)", "higher": "More deprived: lower (RII > 1)",
            "similar": "No clear gradient"},
    alt_words={"lower": "recorded rate clearly higher in more deprived areas for",
               "higher": "recorded rate clearly lower in more deprived areas for",
               "none": "no area has a clear gradient"})


def build_ics(inp: Inputs, icb: str, cfg_report: dict, area_type: str = "icb") -> Pack:
    """The ICS pack: an ICB, its PCNs (and neighbourhoods) compared. With area_type 'england' (published data),
    the national summary: England and every ICB compared, in the same layout."""
    from .indicator_pages import ics_indicator_section

    national = area_type == "england"
    if national:
        prac = inp.practices
        prev = inp.prev[in_areas(inp.prev, [("england", [icb]), ("icb", prac["icb_code"].unique()),
                                            ("practice", prac["practice_code"]), ("neighbourhood", None)])]
        name = "England"
        pcns = prac.drop_duplicates("icb_code")[["icb_code", "icb_name"]].rename(
            columns={"icb_code": "pcn_code", "icb_name": "pcn_name"})
        child_type, subtitle = "icb", f"{len(pcns)} integrated care boards and {len(prac)} practices."
    else:
        prac = inp.practices[inp.practices["icb_code"] == icb]
        prev = inp.icb_rows(icb)
        name = str(prac["icb_name"].iloc[0])
        pcns = prac.drop_duplicates("pcn_code")[["pcn_code", "pcn_name"]]
        pcns = pcns[pcns["pcn_code"].isin(prev.loc[prev["area_type"] == "pcn", "area_code"])]
        child_type = "pcn"
        subtitle = f"Integrated care board {icb}: {len(pcns)} primary care networks and {len(prac)} practices."
    comp, true_prev = comparator_for(inp, cfg_report)
    changes = pack_changes(inp, area_type, [icb], prev)
    # PCN league: panels per condition, PCNs ordered by the first condition's ratio
    pcn_codes = pcns["pcn_code"].tolist()
    pnames = dict(zip(pcns["pcn_code"], pcns["pcn_name"]))
    if national:   # 'NHS Kent and Medway Integrated Care Board' -> 'Kent and Medway'
        pnames = {code: str(n).removeprefix("NHS ").removesuffix(" Integrated Care Board").removesuffix(" ICB")
                  for code, n in pnames.items()}
    neighbourhood_rows = select(prev, inp.latest, "neighbourhood")
    ncodes = sorted(neighbourhood_rows["area_code"].unique())
    nnames = {**dict(zip(neighbourhood_rows["area_code"], neighbourhood_rows["area_name"])), **inp.neighbourhood_names}
    # the largest gaps across the system: PCN x group, with their Core20 shares
    gaps = system_gaps(prev, inp, pcn_codes, int(cfg_report.get("max_system_gaps", 10)))
    ctx: dict = dict(
        title=f"Recording gaps across the system: {name}",
        heading=name,
        subtitle=f"{subtitle} Data to {w.long_date(inp.latest)}.",
        child_plural="Integrated care boards" if national else "Primary care networks",
        child_short="ICBs" if national else "PCNs", child_one="ICB" if national else "PCN",
        grandchild_short="PCNs" if national else "practices",
        **pack_context(inp, comp, true_prev),
        overview=overview_table(prev, inp, area_type, icb),
        icb_gaps=icb_gap_table(prev, inp, icb, int(cfg_report.get("max_headlines", 5)), changes),
        previous=w.short_date(inp.previous) if inp.previous else None,
        pcn_points=_area_points(prev, inp, child_type, pcn_codes, pnames,
                                comparator=comp if inp.source == "published" else "the ICB average"),
        pcn_tables=area_tables(prev, inp, child_type, pcn_codes, pnames),
        system_gaps=system_gap_table(gaps, inp, pnames) if len(gaps) else None,
        core20_available=inp.core20 is not None,
        has_neighbourhoods=bool(ncodes),
        map_text=("Neighbourhoods are where patients live. Shading shows whether recording is clearly lower or "
                  "higher than expected." if inp.geoms is not None else NO_MAP),
        trend_rows=_per_period_table(prev, inp, area_type, icb),
        dq=dq_rows(inp, "pcn", pcn_codes, pnames),
        dq_icb=dq_rows(inp, "icb", [icb], {icb: name}),
    )
    league = {}
    if inp.source == "published":   # expected from practice deprivation, not age and sex
        league["legend"] = {"lower": "Fewer than expected", "higher": "More than expected"}
    items = labelled(inp.conditions)
    charts_ = chart_parts("pcn_league", charts.dot_chart, area_panels(prev, inp.latest, child_type, pcn_codes, pnames,
                                                                      items), league, labels=len(pcn_codes))
    if ncodes:
        charts_.append(("nbh_league", charts.dot_chart,
                        (area_panels(prev, inp.latest, "neighbourhood", ncodes, nnames, items),), {}))
        ctx["nbh_points"] = _area_points(prev, inp, "neighbourhood", ncodes, nnames)
        ctx["nbh_tables"] = area_tables(prev, inp, "neighbourhood", ncodes, nnames)
    if ctx["has_funnel"]:
        # practices (PCNs in the national summary) in grey, the pack's child areas highlighted
        grey = select(inp.prev, inp.latest, "pcn", prac["pcn_code"].unique(), group_type="all") if national else \
            select(prev, inp.latest, "practice", prac["practice_code"], group_type="all")
        children = select(prev, inp.latest, child_type, pcn_codes, group_type="all")
        charts_ += chart_parts("funnel", charts.funnel_chart, _funnel_panels(items, grey, children), dict(
            highlight_label=ctx["child_short"], other_label="PCNs" if national else "Practices"))
    ineq = inequality_section(prev, inp, pcn_codes, pnames, icb, name, area_type, child_type)
    if ineq is not None:
        charts_ += chart_parts("rii", charts.dot_chart, ineq.pop("panels"), labels=len(pcn_codes) + 1, kwargs=dict(
            RII_CHART, alt_intro=(
                f"Dot chart of the relative index of inequality (RII) of the recorded rate across deprivation "
                f"quintiles, with 95% intervals, for the ICB and its {len(pcn_codes)} PCNs, one panel per condition; "
                f"below 1 means a higher recorded rate in more deprived areas.")))
    ctx["inequality"] = ineq
    charts_ += _map_charts(prev, inp)
    ctx["indicator_sections"], indicator_charts = ics_indicator_section(inp, icb, pcn_codes, pnames, ncodes, nnames, comp)
    charts_ += indicator_charts
    in_pack = in_areas(prev, [(area_type, [icb]), (child_type, pcn_codes), ("neighbourhood", None)])
    out = csv_rows(prev[in_pack])
    # the system's largest gaps: their rank and Core20 shares (whole percentages, hidden as in the PDF)
    key = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]
    gap_csv = pd.DataFrame(dict(
        period=str(inp.latest), condition=gaps["condition"].astype(str), area_type="pcn",
        area_code=gaps["area_code"].astype(str), group_type=gaps["group_type"].astype(str),
        group_value=gaps["group_value"].astype(str),
        system_gap_rank=pd.array(np.arange(1, len(gaps) + 1), dtype="Int64"),
        **{column: [MARKER if hidden else (round(float(share), 2) if math.isfinite(float(share)) else None)
                    for share, hidden in zip(gaps[column], gaps["core20_hidden"])]
           for column in ("core20_population_share", "core20_missing_share")}),
        columns=key + ["system_gap_rank", "core20_population_share", "core20_missing_share"])
    out = out.merge(gap_csv, on=key, how="left")
    extra = _extra_csvs(inp, [(area_type, [icb]), (child_type, pcn_codes), ("neighbourhood", ncodes)])
    return Pack(area_type if national else "ics", icb, "ics.typ", ctx, charts_,
                _with_changes(out, inp, changes, area_type), extra_csvs=extra)


def _with_changes(out: pd.DataFrame, inp: Inputs, changes: pd.DataFrame, area_type: str,
                  overlap: str = "trend_overlap") -> pd.DataFrame:
    """The published change since the previous date beside the latest date's rows of the pack's area, with the
    count it needs (patients recorded in the cell on both dates, controlled like a count), so that every change,
    interval and label printed can be worked out again from this file. `overlap`: the Inputs field with the
    controlled overlap counts (the registers' trend_overlap, or indicator_overlap)."""
    if inp.previous is None or changes is None or changes.empty:
        return out
    key = ["condition", "area_type", "area_code", "group_type", "group_value"]
    add = changes[key + ["change", "change_lower", "change_upper", "label"]].rename(columns={"label": "change_label"})
    ov = getattr(inp, overlap)
    if ov is not None and not ov.empty:
        ov = ov[(ov["period_from"] == inp.previous) & (ov["period_to"] == inp.latest)]
        add = add.merge(ov[key + ["cases_both"]], on=key, how="left")
        # shown only beside a change that is itself shown (both dates' counts published): never next to a hidden
        # count, which a count of some of its patients would bound from below
        both = add.pop("cases_both").to_numpy(dtype=float)
        shown = np.isfinite(both) & np.isfinite(add["change"].to_numpy(dtype=float))
        add["cases_on_both_dates"] = [int(value) if visible else MARKER for value, visible in zip(both, shown)]
    for column in ("change", "change_lower", "change_upper"):
        add[column] = [round(float(value), 3) if math.isfinite(float(value)) else None for value in add[column]]
    add.insert(0, "period", str(inp.latest))
    add["change_since"] = str(inp.previous)
    add = add[add["area_type"] == area_type]
    return out.merge(add, on=["period"] + key, how="left")
