"""Publishable packs from the public aggregate path (``python -m pipeline public … --icb CODE``).

    reports/<ICB>/ics_<ICB>_<year>.pdf + .csv (+ _gradient.csv)   the ICB's PCNs compared, for ICS leads
    reports/<ICB>/pcn/<PCN_CODE>.pdf + .csv                          one briefing per PCN in the ICB

Inputs are the public warehouse's tables (prevalence, public_expected, funnel, public_gradient, inequality,
public_practice, load_summary, rejects). Every number that reaches a PDF or CSV has been through
:mod:`pipeline.disclosure` once, here, with sibling sets (practices of a PCN; PCNs and unallocated practices
of the ICB; deprivation deciles of an area) so that nothing hidden can be recovered by subtraction. Page-1
words are built from those controlled numbers only.

Charts are SVG written with :mod:`pipeline.report.charts`' canvas (Okabe-Ito colours, marker shapes as well
as colour, alt text for every image). The whole ``reports/<ICB>`` folder is written in a temporary sibling
and swapped in atomically.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline import __version__, paths
from pipeline.disclosure import MARKER, Policy, control, siblings_from_keys
from pipeline.errors import PipelineError
from pipeline.lock import atomic_replace_dir
from pipeline.report.charts import (
    GRID,
    INK,
    MUTED,
    STYLE,
    WIDTH,
    Canvas,
    LinScale,
    LogScale,
    _fmt_tick,
    _log_ticks,
    significance,
    text_width,
)

ENGLAND_CODE = "E92000001"
UNALLOCATED_PCN = "U"

# QOF registers (2022-23 and 2024-25 rules): label and the list the register is counted against
QOF_REGISTERS = {
    "AF": ("Atrial fibrillation", "all ages"), "AST": ("Asthma", "aged 6 and over"), "CAN": ("Cancer", "all ages"),
    "CHD": ("Coronary heart disease", "all ages"), "CKD": ("Chronic kidney disease", "aged 18 and over"),
    "COPD": ("COPD", "all ages"), "DEM": ("Dementia", "all ages"), "DEP": ("Depression", "aged 18 and over"),
    "DM": ("Diabetes", "aged 17 and over"), "EP": ("Epilepsy", "aged 18 and over"),
    "HF": ("Heart failure", "all ages"), "HYP": ("Hypertension", "all ages"),
    "LD": ("Learning disability", "all ages"), "MH": ("Severe mental illness", "all ages"),
    "NDH": ("Non-diabetic hyperglycaemia", "aged 18 and over"), "OB": ("Obesity", "aged 18 and over"),
    "OST": ("Osteoporosis", "aged 50 and over"), "PAD": ("Peripheral arterial disease", "all ages"),
    "PC": ("Palliative care", "all ages"), "RA": ("Rheumatoid arthritis", "aged 16 and over"),
    "STIA": ("Stroke and TIA", "all ages"),
}

CSV_COLUMNS = ["period", "condition", "area_type", "area_code", "area_name", "parent_code", "imd_decile",
               "observed", "population", "rate", "rate_lower", "rate_upper", "expected", "ratio", "ratio_lower",
               "ratio_upper", "missing", "expected_model", "ratio_model", "ratio_model_lower", "ratio_model_upper",
               "missing_model", "significance", "funnel_significance"]
GRADIENT_COLUMNS = ["period", "condition", "area_type", "area_code", "imd_decile", "practices", "observed",
                    "population", "rate", "rate_lower", "rate_upper"]
INEQUALITY_CSV = ["period", "condition", "area_type", "area_code", "dimension", "measure", "sii", "sii_lower",
                  "sii_upper", "rii", "rii_lower", "rii_upper"]
FUNNEL_STYLE = {  # funnel significance -> (marker, fill, stroke); hollow = beyond 95% only
    "Low (0.001)": ("v", STYLE["lower"]["color"], STYLE["lower"]["color"]),
    "Low (0.025)": ("v", "white", STYLE["lower"]["color"]),
    "Not significant": ("o", "#BBBBBB", "#777777"),
    "High (0.025)": ("^", "white", STYLE["higher"]["color"]),
    "High (0.001)": ("^", STYLE["higher"]["color"], STYLE["higher"]["color"]),
}


# ---------------------------------------------------------------------------------------------- formatting

def _tw(s: str, size: float) -> float:
    return text_width(str(s), size)


def _ok(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and x is not pd.NA


def n_(x) -> str:
    """A controlled count: '1,235' or the marker."""
    return f"{int(round(float(x))):,}" if _ok(x) else MARKER


def pct(x, digits: int = 1) -> str:
    return f"{100 * float(x):.{digits}f}%" if _ok(x) else MARKER


def r2(x) -> str:
    """A ratio, always two decimals ('1.00', never '1')."""
    return f"{float(x):.2f}" if _ok(x) else MARKER


def ci_ratio(lo, hi) -> str:
    return f"{r2(lo)} to {r2(hi)}" if _ok(lo) and _ok(hi) else MARKER


def ci_pct(lo, hi) -> str:
    return f"{pct(lo)} to {pct(hi)}" if _ok(lo) and _ok(hi) else MARKER


def short(name: str) -> str:
    s = str(name).strip()
    return s[:-4] if s.upper().endswith(" PCN") else s


def gap_words(missing) -> str:
    """'about 1,220 fewer people than expected' from a controlled `missing` (expected - recorded)."""
    if not _ok(missing):
        return "a number too small to show"
    m = float(missing)
    if m == 0:
        return "about as many people as expected"
    return f"about {abs(m):,.0f} {'fewer' if m > 0 else 'more'} people than expected"


def verdict(lo, hi) -> str:
    s = str(significance([lo], [hi])[0]) if _ok(lo) and _ok(hi) else ""
    return s


# ---------------------------------------------------------------------------------------------- data

def load_controlled(processed: Path, icb: str, condition: str = "DEP", policy: Policy | None = None) -> dict:
    """Read the public warehouse for one ICB and one register and apply disclosure control once.

    Returns {'areas': controlled prevalence-shaped frame (england, icb, pcn, practice rows, numbers as floats,
    NaN = hidden, plus *_model columns and significance), 'gradient', 'inequality', 'registers' (other
    registers, ICB and England rows), 'counts' (data-quality counts for the caveats), 'meta'}."""
    policy = policy or Policy()
    db = Path(processed) / "warehouse.duckdb"
    if not db.is_file():
        raise PipelineError("the processed directory has no warehouse.duckdb: run `python -m pipeline public` first.")
    con = duckdb.connect(str(db), read_only=True)
    try:
        q = lambda sql, *a: con.execute(sql, list(a)).df()  # noqa: E731
        icb_row = q("select area_name from prevalence where condition = ? and area_type = 'icb' and area_code = ?",
                    condition, icb)
        if icb_row.empty:
            raise PipelineError(f"--icb {icb} has no {condition} rows in the public warehouse.")
        pe = q("""
            with pcns as (select distinct parent_pcn from public_expected
                          where condition = ? and area_type = 'practice' and parent_icb = ? and parent_pcn <> ?)
            select p.period, p.condition, p.area_type, p.area_code, p.area_name, e.parent_pcn, e.parent_icb,
                   e.imd_decile, p.observed, p.population, p.rate, p.rate_lower, p.rate_upper, p.expected, p.ratio,
                   p.ratio_lower, p.ratio_upper, p.missing, e.expected_model, e.ratio_model, e.ratio_model_lower,
                   e.ratio_model_upper, e.missing_model, e.model_basis
            from prevalence p join public_expected e using (condition, area_type, area_code)
            where p.condition = ? and p.group_type = 'all' and (
                  p.area_type = 'england' or (p.area_type = 'icb' and p.area_code = ?)
               or (p.area_type = 'pcn' and p.area_code in (select parent_pcn from pcns))
               or (p.area_type = 'practice' and (e.parent_icb = ? or e.parent_pcn in (select parent_pcn from pcns))))
            """, condition, icb, UNALLOCATED_PCN, condition, icb, icb)
        fun = q("select area_code, significance from funnel where condition = ? and statistic = 'proportion' "
                "and area_type = 'practice' and parent_code = ?", condition, icb)
        grad = q("select * from public_gradient where condition = ? and area_code in (?, ?)", condition, icb,
                 ENGLAND_CODE)
        ineq = q("select * from inequality where condition = ? and area_code in (?, ?) and measure = 'crude_rate'",
                 condition, icb, ENGLAND_CODE)
        regs = q("""select p.condition, p.area_type, p.observed, p.population, p.rate, p.rate_lower, p.rate_upper,
                           p.expected, p.ratio, p.ratio_lower,
                           p.ratio_upper, p.missing
                    from prevalence p where p.group_type = 'all' and
                      (p.area_type = 'england' or (p.area_type = 'icb' and p.area_code = ?))""", icb)
        prac = q("select practice_code, pcn_code, icb_code, imd_score, registered_patients, pct_non_white "
                 "from public_practice")
        rej = q("select source, reason, raw_values from rejects")
        load = q("select * from load_summary")
        run = q("select * from public_run")
    finally:
        con.close()

    pe["parent_code"] = np.select([pe["area_type"] == "practice", pe["area_type"] == "pcn", pe["area_type"] == "icb"],
                                  [pe["parent_pcn"], icb, ENGLAND_CODE], None)
    pe["_icbp"] = np.where((pe["area_type"] == "pcn") |
                           ((pe["area_type"] == "practice") & (pe["parent_pcn"] == UNALLOCATED_PCN)
                            & (pe["parent_icb"] == icb)), icb, None)
    at = pe["area_type"].to_numpy()
    sib = [
        # the practices of a PCN add up to the PCN
        siblings_from_keys(pe, at == "practice", ["condition", "parent_pcn"], at == "pcn", ["condition", "area_code"]),
        # the PCNs and the unallocated practices of the ICB add up to the ICB
        siblings_from_keys(pe, pe["_icbp"].notna().to_numpy(), ["condition", "_icbp"], at == "icb",
                           ["condition", "area_code"]),
    ]
    keep = ["period", "condition", "area_type", "area_code", "area_name", "parent_code", "parent_pcn",
            "parent_icb", "imd_decile", "model_basis"]
    base = control(pe[keep + ["observed", "population", "rate", "rate_lower", "rate_upper", "expected", "ratio",
                              "ratio_lower", "ratio_upper", "missing"]], policy, sib, from_published=False)
    model = pe[["observed", "population", "expected_model", "ratio_model", "ratio_model_lower",
                "ratio_model_upper", "missing_model"]].rename(columns=lambda c: c.replace("_model", ""))
    model = control(model, policy, sib, from_published=False)
    for c, name in (("expected", "expected_model"), ("ratio", "ratio_model"), ("ratio_lower", "ratio_model_lower"),
                    ("ratio_upper", "ratio_model_upper"), ("missing", "missing_model")):
        base[name] = model[c].to_numpy()
    base["missing_model_redacted"] = model["missing_redacted"].to_numpy()
    base["significance"] = significance(base["ratio_lower"], base["ratio_upper"])
    base["funnel_significance"] = base["area_code"].map(dict(zip(fun["area_code"], fun["significance"])))
    base.loc[base["area_type"] != "practice", "funnel_significance"] = None
    base.loc[base["observed_redacted"].to_numpy(), "funnel_significance"] = None

    # deprivation deciles: the deciles of an area are siblings (the area total also holds practices without a
    # score, so there is no published total in the set)
    g = grad.copy()
    gsib = [siblings_from_keys(g, np.ones(len(g), bool), ["condition", "area_code"], np.zeros(len(g), bool))]
    gc = control(g, policy, gsib, from_published=False)

    # other registers at ICB and England level (only the rows, no breakdown: no siblings needed)
    rc = control(regs, policy, from_published=False) if len(regs) else regs

    # data-quality counts for the caveats (numbers of practices and rows, not of patients)
    in_icb = prac["icb_code"] == icb
    unmapped = rej.loc[rej["reason"].str.contains("not in the practice mapping", na=False), "raw_values"]
    unmapped_practices = unmapped.str.extract(r"practice_code=([^;]*)")[0].nunique() if len(unmapped) else 0
    counts = {
        "practices_icb": int(in_icb.sum()), "practices_england": int(len(prac)),
        "unallocated_icb": int((in_icb & (prac["pcn_code"] == UNALLOCATED_PCN)).sum()),
        "no_imd_icb": int((in_icb & prac["imd_score"].isna()).sum()),
        "no_imd_england": int(prac["imd_score"].isna().sum()),
        "no_agesex_icb": int((in_icb & prac["registered_patients"].isna()).sum()),
        "no_agesex_england": int(prac["registered_patients"].isna().sum()),
        "no_ethnicity_icb": int((in_icb & prac["pct_non_white"].isna()).sum()),
        "unmapped_practices": int(unmapped_practices),
        "rejected_rows": int(load["rows_rejected"].sum()),
        "rows_read": int(load["rows_read"].sum()),
        "other_rejects": int(len(rej) - len(unmapped)),
        "pcns": int((base["area_type"] == "pcn").sum()),
    }
    r = run.iloc[0]
    period = pd.Timestamp(base["period"].iloc[0]).date()
    meta = {"icb": icb, "icb_name": str(icb_row.iloc[0]["area_name"]), "condition": condition,
            "period": period, "qof_year": str(r["qof_year"]), "qof_file": str(r["qof_file"]),
            "mapping_file": str(r["mapping_file"]), "registrations_file": r.get("registrations_file"),
            "ethnicity_file": r.get("ethnicity_file"), "policy": policy}
    return {"areas": base, "gradient": gc, "inequality": ineq, "registers": rc, "counts": counts, "meta": meta,
            "practice_flags": prac}


# ---------------------------------------------------------------------------------------------- charts

def caterpillar_chart(df: pd.DataFrame, path: Path, icb_ratio: float | None = None, width: float = WIDTH) -> str:
    """PCNs' recorded ÷ expected with 95% intervals, lowest first; colour AND marker by the interval against 1.
    Frame: label, ratio, ratio_lower, ratio_upper (controlled; NaN = hidden). Returns alt text."""
    d = df.sort_values(["ratio", "label"], na_position="last", kind="stable").reset_index(drop=True)
    n = max(len(d), 1)
    size = 6.4 if n > 40 else 7.5
    row_h = 8.5 if n > 40 else 13.0
    top, bottom = 14.0, 40.0
    label_w = max([_tw(s, size) for s in d["label"]] + [30]) + 8
    x0, x1 = label_w, width - 8
    vals = pd.concat([d["ratio_lower"], d["ratio_upper"]]).to_numpy(float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    sc = LogScale(max(float(vals.min()), 0.2) if vals.size else 0.5, min(float(vals.max()), 5.0) if vals.size else 2,
                  x0 + 4, x1 - 4)
    height = top + row_h * n + bottom
    c = Canvas(width, height)
    ys = top + row_h * (np.arange(n) + 0.5)
    for i in range(n):
        if i % 2 == 0:
            c.rect(x0, top + row_h * i, x1 - x0, row_h, fill="#F6F6F6")
    for t in sc.ticks(8):
        xt = float(sc(t))
        c.line(xt, top, xt, top + row_h * n, stroke=GRID, width=0.6)
        c.text(xt, top + row_h * n + 8, _fmt_tick(t), size=7, anchor="middle", fill=MUTED)
    c.line(x0, top + row_h * n, x1, top + row_h * n, stroke="#999999", width=0.6)
    c.line(float(sc(1.0)), top - 4, float(sc(1.0)), top + row_h * n, stroke="#333333", width=0.8, dash="3 2")
    c.text(float(sc(1.0)), 5, "as expected", size=6.5, anchor="middle", fill=MUTED)
    if icb_ratio is not None and math.isfinite(icb_ratio):
        xi = float(sc(icb_ratio))
        c.line(xi, top - 4, xi, top + row_h * n, stroke="#CC79A7", width=0.9, dash="1 1.5")
        c.text(xi + (3 if icb_ratio >= 1 else -3), 5, f"ICB {icb_ratio:.2f}", size=6.5,
               anchor="start" if icb_ratio >= 1 else "end", fill="#A0507F")
    c.text((x0 + x1) / 2, top + row_h * n + 20, "Recorded ÷ expected for the practices' deprivation (log scale)",
           size=7.5, anchor="middle")
    sig = significance(d["ratio_lower"], d["ratio_upper"])
    for i, row in enumerate(d.itertuples()):
        y = ys[i]
        c.text(label_w - 5, y, row.label, size=size, anchor="end")
        if not (_ok(row.ratio) and math.isfinite(row.ratio)):
            c.text((x0 + x1) / 2, y, f"{MARKER} hidden", size=6.5, anchor="middle", fill=MUTED)
            continue
        st = STYLE.get(sig[i], STYLE["similar"])
        if _ok(row.ratio_lower) and _ok(row.ratio_upper):
            c.line(float(sc(max(row.ratio_lower, 1e-9))), y, float(sc(row.ratio_upper)), y, stroke=st["color"],
                   width=1.4)
        c.marker(st["marker"], float(sc(row.ratio)), y, r=3.0, fill=st["color"])
    items = [(s["marker"], s["color"], s["label"]) for s in STYLE.values()]
    widths = [14 + _tw(lab, 7.2) + 14 for _, _, lab in items]
    x = (width - sum(widths)) / 2
    for (mk, col, lab), wd in zip(items, widths):
        c.marker(mk, x + 5, height - 8, fill=col)
        c.text(x + 13, height - 8, lab, size=7.2)
        x += wd
    c.save(path)
    low = d.loc[sig == "lower", "label"].tolist()
    high = d.loc[sig == "higher", "label"].tolist()
    return (f"Caterpillar chart of {len(d)} primary care networks: recorded divided by expected (adjusted for "
            f"practice deprivation) with 95% intervals, lowest first, on a log scale; 1 means as many recorded as "
            f"expected. Clearly lower than expected ({len(low)}): {', '.join(low) or 'none'}. Clearly higher "
            f"({len(high)}): {', '.join(high) or 'none'}. The others' intervals include 1.")


def funnel_proportion_chart(df: pd.DataFrame, parent_rate: float, path: Path, parent_label: str,
                            highlight: pd.Series | None = None, width: float = WIDTH, height: float = 240.0) -> str:
    """Funnel plot of practices' recorded proportion against list size (log scale), with 95% and 99.8% limits
    around the ICB's rate. Frame: label, population, rate (controlled), funnel_significance, and `number`
    (label printed beside highlighted points). `highlight`: boolean mask of the practices to emphasise; without it
    every practice is drawn by its significance."""
    from pipeline.stats import funnel_limits_proportion

    ok = np.isfinite(df["population"].to_numpy(float)) & np.isfinite(df["rate"].to_numpy(float))
    d = df.loc[ok].reset_index(drop=True)
    hl = (highlight.loc[ok].to_numpy(bool) if highlight is not None else np.zeros(len(d), bool))
    left, top, bottom = 40.0, 14.0, 56.0
    x0, x1, y0, y1 = left, width - 10, top, height - bottom
    c = Canvas(width, height)
    pop = d["population"].to_numpy(float)
    rate = d["rate"].to_numpy(float)
    if not len(d) or not math.isfinite(parent_rate):
        c.text(width / 2, height / 2, "Nothing to show", size=8, anchor="middle", fill=MUTED)
        c.save(path)
        return "Funnel plot: nothing to show."
    elo, ehi = max(pop.min() * 0.7, 50.0), pop.max() * 1.4
    grid = np.geomspace(elo, ehi, 80)
    lim = funnel_limits_proportion(parent_rate, grid)
    lo_y = min(float(np.nanmin(rate)), float(np.nanmin(lim.lower_998))) * 100
    hi_y = max(float(np.nanmax(rate)), float(np.nanmax(lim.upper_998))) * 100
    pad = (hi_y - lo_y) * 0.06
    ys = LinScale(max(lo_y - pad, 0.0), hi_y + pad, y1, y0)
    xs = LogScale.__new__(LogScale)
    xs.lo, xs.hi, xs.x0, xs.x1, xs.a, xs.b = elo, ehi, x0, x1, math.log(elo), math.log(ehi)
    for t in ys.ticks(5):
        yy = float(ys(t))
        c.line(x0, yy, x1, yy, stroke=GRID, width=0.6)
        c.text(x0 - 3, yy, f"{t:g}%", size=7, anchor="end", fill=MUTED)
    for t in _log_ticks(elo, ehi):
        xx = float(xs(t))
        c.line(xx, y1, xx, y1 + 3, stroke="#999999", width=0.6)
        c.text(xx, y1 + 9, f"{t:,.0f}", size=7, anchor="middle", fill=MUTED)
    c.line(x0, y1, x1, y1, stroke="#999999", width=0.6)
    c.line(x0, y0, x0, y1, stroke="#999999", width=0.6)
    c.text((x0 + x1) / 2, y1 + 21, "Registered patients in the register's age range (log scale)", size=7.5,
           anchor="middle")
    c.parts.append(f'<text transform="translate({x0 - 30:.1f},{(y0 + y1) / 2:.1f}) rotate(-90)" font-family="DejaVu Sans" '
                   f'font-size="7.5" text-anchor="middle" fill="{INK}">Recorded (%)</text>')
    gx = xs(grid)
    for arr, dash, col in ((lim.lower_95, "3 2", "#888888"), (lim.upper_95, "3 2", "#888888"),
                           (lim.lower_998, None, "#444444"), (lim.upper_998, None, "#444444")):
        c.polyline(gx, ys(100 * np.asarray(arr, float)), stroke=col, width=0.8, dash=dash)
    c.line(x0, float(ys(100 * parent_rate)), x1, float(ys(100 * parent_rate)), stroke="#CC79A7", width=0.9, dash="1 1.5")
    sig = d["funnel_significance"].fillna("Not significant").to_numpy()
    order = np.argsort(hl, kind="stable")  # highlighted last, on top
    for i in order:
        x, y = float(xs(pop[i])), float(ys(100 * rate[i]))
        mk, fill, stroke = FUNNEL_STYLE.get(sig[i], FUNNEL_STYLE["Not significant"])
        if highlight is not None and not hl[i]:
            c.marker("o", x, y, r=2.2, fill="#D0D0D0", stroke="#A0A0A0", width=0.3)
        elif highlight is not None:
            c.marker(mk if mk != "o" else "D", x, y, r=4.0, fill=fill if fill != "#BBBBBB" else "#009E73",
                     stroke="#000000" if mk == "o" else stroke, width=0.9)
            if "number" in d and _ok(d["number"].iloc[i]):
                c.text(x + 5, y - 5, str(int(d["number"].iloc[i])), size=7, fill=INK, bold=True)
        else:
            c.marker(mk, x, y, r=3.0, fill=fill, stroke=stroke, width=0.8)
    # legend
    y = height - 20
    if highlight is not None:
        items = [("v", STYLE["lower"]["color"], STYLE["lower"]["color"], "This PCN's practices: below the funnel"),
                 ("D", "#009E73", "#000000", "within"),
                 ("^", STYLE["higher"]["color"], STYLE["higher"]["color"], "above"),
                 ("o", "#D0D0D0", "#A0A0A0", "Other practices in the ICB")]
    else:
        items = [("v", STYLE["lower"]["color"], STYLE["lower"]["color"], "Below the funnel"),
                 ("o", "#BBBBBB", "#777777", "Within the 95% limits"),
                 ("^", STYLE["higher"]["color"], STYLE["higher"]["color"], "Above the funnel")]
    widths = [14 + _tw(lab, 7.0) + 12 for *_, lab in items]
    extra = [("95% limits", "3 2", "#888888"), ("99.8% limits", None, "#444444"), (parent_label, "1 1.5", "#CC79A7")]
    widths_l = [24 + _tw(lab, 7.0) + 12 for lab, *_ in extra]
    x = (width - sum(widths)) / 2
    for (mk, fill, stroke, lab), wd in zip(items, widths):
        c.marker(mk, x + 5, y, r=3.0, fill=fill, stroke=stroke, width=0.8)
        c.text(x + 12, y, lab, size=7.0)
        x += wd
    x, y = (width - sum(widths_l)) / 2, height - 7
    for (lab, dash, col), wd in zip(extra, widths_l):
        c.line(x, y, x + 18, y, stroke=col, width=0.9, dash=dash)
        c.text(x + 22, y, lab, size=7.0)
        x += wd
    c.save(path)
    labs = d["label"].astype(str).to_numpy()
    pool = hl if highlight is not None else np.ones(len(d), bool)
    below = labs[pool & np.isin(sig, ["Low (0.001)", "Low (0.025)"])].tolist()
    above = labs[pool & np.isin(sig, ["High (0.001)", "High (0.025)"])].tolist()
    who = "this PCN's practices" if highlight is not None else "practices"
    return (f"Funnel plot of recorded prevalence against list size for {len(d)} practices, with 95% and 99.8% "
            f"limits around the {parent_label} ({100 * parent_rate:.1f}%). Of {who}, below the 95% limit: "
            f"{len(below)} ({', '.join(below[:12]) or 'none'}{', …' if len(below) > 12 else ''}); above: "
            f"{len(above)} ({', '.join(above[:12]) or 'none'}{', …' if len(above) > 12 else ''}).")


def gradient_chart(g: pd.DataFrame, path: Path, icb: str, width: float = WIDTH, height: float = 190.0) -> str:
    """Recorded % by practice IMD decile with 95% intervals: England (black circles, solid) and the ICB
    (orange squares, dashed), with the number of the ICB's practices in each decile under the axis."""
    left, top, bottom = 70.0, 12.0, 52.0
    x0, x1, y0, y1 = left, width - 10, top, height - bottom
    c = Canvas(width, height)
    vals = g[["rate_lower", "rate_upper"]].to_numpy(float).ravel()
    vals = vals[np.isfinite(vals)] * 100
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    pad = (hi - lo) * 0.1 + 0.2
    ys = LinScale(max(lo - pad, 0), hi + pad, y1, y0)
    step = (x1 - x0) / 10
    xpos = {d: x0 + (d - 0.5) * step for d in range(1, 11)}
    for t in ys.ticks(5):
        yy = float(ys(t))
        c.line(x0, yy, x1, yy, stroke=GRID, width=0.6)
        c.text(x0 - 3, yy, f"{t:g}%", size=7, anchor="end", fill=MUTED)
    c.line(x0, y1, x1, y1, stroke="#999999", width=0.6)
    for d, xx in xpos.items():
        c.text(xx, y1 + 8, str(d), size=7, anchor="middle", fill=MUTED)
    c.text((x0 + x1) / 2, y1 + 19, "Practice deprivation decile, national (1 = most deprived tenth of patients)",
           size=7.5, anchor="middle")
    c.parts.append(f'<text transform="translate({x0 - 30:.1f},{(y0 + y1) / 2:.1f}) rotate(-90)" font-family="DejaVu Sans" '
                   f'font-size="7.5" text-anchor="middle" fill="{INK}">Recorded (%)</text>')
    series = [(ENGLAND_CODE, "England", "#000000", "o", None, -4.0), (icb, f"{icb} (this ICB)", "#D55E00", "s", "4 2", 4.0)]
    descr = []
    for code, lab, col, mk, dash, off in series:
        s = g.loc[g["area_code"] == code].sort_values("imd_decile")
        if s.empty:
            continue
        xx = np.array([xpos[int(d)] + off for d in s["imd_decile"]])
        r = s["rate"].to_numpy(float) * 100
        c.polyline(xx, ys(r), stroke=col, width=1.1, dash=dash)
        for a, rr, l_, h_ in zip(xx, r, s["rate_lower"].to_numpy(float) * 100, s["rate_upper"].to_numpy(float) * 100):
            if math.isfinite(l_) and math.isfinite(h_):
                c.line(a, float(ys(l_)), a, float(ys(h_)), stroke=col, width=1.0)
            c.marker(mk, a, float(ys(rr)), r=3.0, fill=col)
        descr.append(f"{lab}: " + ", ".join(f"decile {int(d)} {v:.1f}%" if math.isfinite(v) else f"decile {int(d)} hidden"
                                             for d, v in zip(s["imd_decile"], r)))
    s = g.loc[g["area_code"] == icb]
    cnt = dict(zip(s["imd_decile"].astype(int), s["practices"]))
    c.text(x0 - 6, y1 + 30, "ICB practices:", size=6.5, anchor="end", fill=MUTED)
    for d, xx in xpos.items():
        c.text(xx, y1 + 30, str(int(cnt.get(d, 0))), size=6.5, anchor="middle", fill=MUTED)
    x = (width - 300) / 2
    for _, lab, col, mk, dash, _ in series:
        c.line(x, height - 7, x + 18, height - 7, stroke=col, width=1.1, dash=dash)
        c.marker(mk, x + 9, height - 7, r=3.0, fill=col)
        c.text(x + 24, height - 7, lab, size=7.5)
        x += 150
    c.save(path)
    return ("Line chart of recorded prevalence by national practice deprivation decile (1 = most deprived) with 95% "
            "intervals, England and this ICB. " + "; ".join(descr) + ".")


# ---------------------------------------------------------------------------------------------- words

def _gradient_words(gc: pd.DataFrame, ineq: pd.DataFrame, code: str, place: str) -> dict:
    s = gc.loc[gc["area_code"] == code].set_index("imd_decile")
    iq = ineq.loc[(ineq["area_code"] == code) & (ineq["dimension"] == "imd_decile")]
    d1 = s["rate"].get(1, np.nan)
    d10 = s["rate"].get(10, np.nan)
    out = {"decile1": pct(d1), "decile10": pct(d10), "text": ""}
    txt = f"{place}: recorded {pct(d1)} in the most deprived tenth of practices and {pct(d10)} in the least deprived."
    if len(iq):
        r = iq.iloc[0]
        sii, lo, hi = (100 * float(r[k]) for k in ("sii", "sii_lower", "sii_upper"))
        out.update(sii=f"{abs(sii):.2f}", sii_lower=f"{min(abs(lo), abs(hi)):.2f}",
                   sii_upper=f"{max(abs(lo), abs(hi)):.2f}", rii=f"{float(r['rii']):.2f}")
        if lo > 0 or hi < 0:
            end = "most" if sii < 0 else "least"
            txt += (f" Across the whole range the slope index of inequality (SII) is {out['sii']} percentage points "
                    f"(95% interval {out['sii_lower']} to {out['sii_upper']}), higher at the {end} deprived end "
                    f"(relative index {out['rii']}: least ÷ most deprived).")
        else:
            txt += (f" The slope index of inequality ({sii:.2f} percentage points, 95% interval {lo:.2f} to "
                    f"{hi:.2f}) includes no difference.")
    else:
        txt += " (No slope index: not every decile has practices here.)"
    out["text"] = txt
    return out


def _pcn_list(rows: pd.DataFrame, k: int = 6) -> str:
    parts = [f"{short(r.area_name)} ({gap_words(r.missing).replace(' people than expected', '')}; "
             f"ratio {r2(r.ratio)}, {ci_ratio(r.ratio_lower, r.ratio_upper)})" for r in rows.head(k).itertuples()]
    more = len(rows) - k
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _caveats(meta: dict, counts: dict, age: str, brief: bool = False, pcn: dict | None = None) -> list[dict]:
    """The caveats in plain words, with the run's own counts. `brief`: the PCN pack's shorter set; `pcn`: that
    PCN's own practice counts ({'practices', 'dep_only', 'no_imd'})."""
    pol: Policy = meta["policy"]
    c = counts
    files = (f"{c['practices_icb']:,} practices of this ICB are in the QOF year's mapping ({c['unallocated_icb']} "
             f"in no PCN: they count in the ICB's total only). {c['no_agesex_icb']} are missing from the later age/sex "
             f"file (closed or merged since; England: {c['no_agesex_england']:,}) and {c['no_ethnicity_icb']} lack an "
             f"ethnicity estimate: these keep the deprivation-only expectation in the model column. "
             f"{c['no_imd_icb']} here (England: {c['no_imd_england']}) have no deprivation score and are expected at "
             f"the national rate. {c['unmapped_practices']} practices in the QOF file were not in the mapping, and "
             f"{c['other_rejects']} other input row{'s' if c['other_rejects'] != 1 else ''} failed checks "
             f"({c['rejected_rows']:,} of {c['rows_read']:,} input rows rejected in all).")
    if pcn is not None:
        files = (f"This PCN has {pcn['practices']} practice{'s' if pcn['practices'] != 1 else ''} in the QOF year's "
                 f"mapping; {pcn['dep_only']} of them {'is' if pcn['dep_only'] == 1 else 'are'} missing from the later "
                 f"age/sex or ethnicity files (closed or merged since; marked * in the table: deprivation-only "
                 f"expectation) and {pcn['no_imd']} ha{'s' if pcn['no_imd'] == 1 else 've'} no deprivation score. "
                 f"Across the ICB: {c['practices_icb']:,} practices, {c['unallocated_icb']} in no PCN, "
                 f"{c['no_agesex_icb']} missing from the age/sex file. {c['rejected_rows']:,} of {c['rows_read']:,} "
                 f"input rows were rejected nationally ({c['unmapped_practices']} practices not in the mapping).")
    items = [
        ("Registered, not resident.", "Rates are of patients registered with the practices, in the age range of "
         "the QOF list for this register, not of the people who live in the area; practices near boundaries "
         "serve people from neighbouring areas."),
        ("QOF registers.", f"A register counts patients with a coded diagnosis that is still active under QOF's "
         f"rules ({age} for this register: the denominator is the practice's list in that age range). It measures "
         "recording, not how many people have the condition: higher recording can mean more need, better "
         "recognition or both."),
        ("Deprivation.", "A practice's deprivation is the IMD 2019 score of its patients' home areas (LSOA 2011 "
         "boundaries), averaged by OHID Fingertips. Deciles are national deciles of practices weighted by list "
         "size, so each holds about a tenth of England's registered patients; they describe practices, not "
         "individual patients."),
        ("Expected.", "Expected = the national rate among practices in the same deprivation decile × the "
         "practice's list; areas add up their practices. The model expectation also allows for the practice's "
         "age structure, share female and estimated share not White (Poisson regression across England's "
         f"practices); its age/sex file is a later publication ({meta.get('registrations_file') or 'not available'}), "
         "an approximation. When the 95% interval of recorded ÷ expected excludes 1 we call it 'clearly' lower or "
         "higher."),
        ("Practices in the files.", files),
        ("Disclosure control.", pol.describe(zeros_hidden=False)),
        ("Source.", f"NHS England QOF {meta['qof_year']} ({meta['qof_file']}, year ending "
         f"{meta['period'].isoformat()}), practice mapping {meta['mapping_file']}; OHID Fingertips practice IMD "
         f"2019; Census 2021 ethnicity by practice; Open Government Licence v3. Pipeline version {__version__}."),
    ]
    if brief:
        short_text = {
            "Registered, not resident.": "Rates are of registered patients in the register's age range, not of "
                                         "residents.",
            "QOF registers.": f"Registers count coded diagnoses ({age}), i.e. recording, not how many people have "
                              "the condition.",
            "Deprivation.": "Practice IMD 2019 score (patients' home LSOAs, 2011 boundaries; OHID Fingertips), in "
                            "national list-weighted deciles.",
            "Expected.": "National rate of practices in the same deprivation decile × list size; the model also "
                         "allows for age, sex and ethnic mix (a later age/sex file: an approximation). 'Clearly' = "
                         "the 95% interval excludes 1.",
        }
        items = [(t, short_text.get(t, x)) for t, x in items]
    return [{"title": t, "text": x} for t, x in items]


# ---------------------------------------------------------------------------------------------- packs

def _csv_frame(areas: pd.DataFrame) -> pd.DataFrame:
    """Controlled numbers -> printable cells ([c] where hidden), prevalence column names."""
    out = areas.copy()
    out["period"] = pd.to_datetime(out["period"]).dt.date.astype(str)
    obs_red = out["observed_redacted"].to_numpy(bool)
    pop_red = out["population_redacted"].to_numpy(bool)
    for col, red in (("observed", obs_red), ("population", pop_red), ("missing", out["missing_redacted"].to_numpy(bool)),
                     ("missing_model", out["missing_model_redacted"].to_numpy(bool))):
        v = out[col].to_numpy(float)
        out[col] = np.where(red, MARKER, pd.Series(np.floor(v + 0.5)).astype("Int64").astype(str).replace("<NA>", ""))
    for col in ("expected", "expected_model"):
        v = out[col].to_numpy(float)
        out[col] = pd.Series(np.floor(v + 0.5)).astype("Int64").astype(str).replace("<NA>", "").to_numpy()
    for col in ("rate", "rate_lower", "rate_upper"):
        v = out[col].to_numpy(float)
        out[col] = np.where(obs_red | pop_red, MARKER, [f"{x:.6f}" if math.isfinite(x) else "" for x in v])
    for col in ("ratio", "ratio_lower", "ratio_upper", "ratio_model", "ratio_model_lower", "ratio_model_upper"):
        v = out[col].to_numpy(float)
        out[col] = np.where(obs_red, MARKER, [f"{x:.2f}" if math.isfinite(x) else "" for x in v])
    out["imd_decile"] = out["imd_decile"].astype("Int64").astype(str).replace("<NA>", "")
    return out[CSV_COLUMNS]


def _gradient_csv(gc: pd.DataFrame, ineq: pd.DataFrame) -> pd.DataFrame:
    g = gc.copy()
    g["period"] = pd.to_datetime(g["period"]).dt.date.astype(str)
    for col in ("observed", "population"):
        red = g[f"{col}_redacted"].to_numpy(bool)
        g[col] = np.where(red, MARKER, pd.Series(np.floor(g[col].to_numpy(float) + 0.5)).astype("Int64").astype(str))
    red = g["observed_redacted"].to_numpy(bool) | g["population_redacted"].to_numpy(bool)
    for col in ("rate", "rate_lower", "rate_upper"):
        g[col] = np.where(red, MARKER, [f"{x:.6f}" for x in g[col].to_numpy(float)])
    return g.sort_values(["area_type", "imd_decile"])[GRADIENT_COLUMNS]


def _table_rows_pcn(pcns: pd.DataFrame) -> list[list[str]]:
    rows = []
    for r in pcns.itertuples():
        rows.append([short(r.area_name), n_(r.population), n_(r.observed), pct(r.rate),
                     f"{r2(r.ratio)} ({ci_ratio(r.ratio_lower, r.ratio_upper)})", _signed(r.missing),
                     {"lower": "lower", "higher": "higher", "similar": "similar"}.get(r.significance, "–"),
                     r2(r.ratio_model)])
    return rows


def _signed(m) -> str:
    if not _ok(m):
        return MARKER
    m = float(m)
    return f"{m:,.0f}" if m <= 0 else f"+{m:,.0f}"


def _compile(template: str, ctx: dict, charts: dict, pdf: Path, period: dt.date) -> None:
    import typst

    with tempfile.TemporaryDirectory(prefix="public-pack-") as wd:
        wd = Path(wd)
        ctx = dict(ctx)
        ctx["charts"] = {}
        for name, (fn, args, kw) in charts.items():
            f = f"{name}.svg"
            ctx["charts"][name] = {"file": f, "alt": fn(*args, path=wd / f, **kw)}
        (wd / "data.json").write_text(json.dumps(ctx, ensure_ascii=False, default=str), encoding="utf-8")
        (wd / "main.typ").write_text((paths.TEMPLATES_DIR / template).read_text(encoding="utf-8"), encoding="utf-8")
        stamp = dt.datetime.combine(period, dt.time(12, 0), tzinfo=dt.UTC)
        try:
            typst.compile(str(wd / "main.typ"), output=str(pdf), root=str(wd), font_paths=[str(paths.font_dir())],
                          ignore_system_fonts=True, sys_inputs={"data": "data.json"}, pdf_standards=["ua-1"],
                          timestamp=int(stamp.timestamp()))
        except Exception as e:
            raise RuntimeError(f"typst could not render the public pack {pdf.name}: {e}") from None


def ics_context(data: dict) -> dict:
    """Everything the ICS template prints, formatted from the controlled numbers."""
    a, meta, counts = data["areas"], data["meta"], data["counts"]
    icb, cond = meta["icb"], meta["condition"]
    label, age = QOF_REGISTERS.get(cond, (cond, "the register's age range"))
    i = a.loc[a["area_type"] == "icb"].iloc[0]
    e = a.loc[a["area_type"] == "england"].iloc[0]
    pcns = a.loc[a["area_type"] == "pcn"].sort_values("ratio")
    low = pcns.loc[pcns["significance"] == "lower"].sort_values("missing", ascending=False)
    high = pcns.loc[pcns["significance"] == "higher"].sort_values("missing")
    similar = pcns.loc[pcns["significance"] == "similar"]
    hidden = pcns.loc[pcns["significance"] == ""]
    vs_eng = ("higher than" if i["rate_lower"] > e["rate_upper"] else "lower than" if i["rate_upper"] < e["rate_lower"]
              else "similar to")
    v = verdict(i["ratio_lower"], i["ratio_upper"])
    vm = verdict(i["ratio_model_lower"], i["ratio_model_upper"])
    word = {"lower": "clearly lower than", "higher": "clearly higher than", "similar": "similar to", "": "not comparable with"}
    when = meta["period"].strftime("%B %Y").replace(" 0", " ")
    headline = {
        "england": (f"At the end of {when}, {n_(i.observed)} of {n_(i.population)} registered patients {age} "
                    f"({pct(i.rate)}, 95% interval {ci_pct(i.rate_lower, i.rate_upper)}) were on the "
                    f"{label.lower()} registers of the ICB's practices: {vs_eng} England's {pct(e.rate)}."),
        "expected": (f"Given the deprivation of its practices, about {n_(i.expected)} would be expected: recorded ÷ "
                     f"expected is {r2(i.ratio)} (95% interval {ci_ratio(i.ratio_lower, i.ratio_upper)}), "
                     f"{word[v]} expected, {gap_words(i.missing)}."),
        "model": (f"Allowing also for the practices' age structure, sex and ethnic mix (the model), about "
                  f"{n_(i.expected_model)} would be expected: ratio {r2(i.ratio_model)} "
                  f"({ci_ratio(i.ratio_model_lower, i.ratio_model_upper)}), {word[vm]} expected, "
                  f"{gap_words(i.missing_model)}."
                  + (" The two expectations point different ways, so the ICB's overall level depends on what is "
                     "allowed for; the comparison between its PCNs below is the firmer finding."
                     if {v, vm} == {"lower", "higher"} else "")),
    }
    low_total = float(np.nansum(low["missing"].to_numpy(float)))
    high_total = float(np.nansum(high["missing"].to_numpy(float)))
    pcn_text = {
        "summary": (f"Of the ICB's {len(pcns)} primary care networks, {len(low)} recorded clearly fewer people than "
                    f"expected for their practices' deprivation (the whole 95% interval of the ratio below 1), "
                    f"{len(high)} clearly more, and {len(similar)} about as many"
                    + (f" ({len(hidden)} hidden by disclosure control)" if len(hidden) else "") + "."),
        "low": (f"Clearly fewer than expected, about {low_total:,.0f} people in all. Largest gaps: " + _pcn_list(low) + "."
                if len(low) else "No PCN recorded clearly fewer people than expected."),
        "high": (f"Clearly more than expected, about {-high_total:,.0f} people in all. Largest: " + _pcn_list(high) + "."
                 if len(high) else "No PCN recorded clearly more people than expected."),
    }
    gn = _gradient_words(data["gradient"], data["inequality"], ENGLAND_CODE, "England")
    gi = _gradient_words(data["gradient"], data["inequality"], icb, meta["icb_name"])
    regs = []
    rc = data["registers"]
    if len(rc) and rc["condition"].nunique() > 1:
        for cnd, grp in rc.groupby("condition", sort=True):
            ii = grp.loc[grp["area_type"] == "icb"]
            ee = grp.loc[grp["area_type"] == "england"]
            if ii.empty or ee.empty:
                continue
            ii, ee = ii.iloc[0], ee.iloc[0]
            lab, ag = QOF_REGISTERS.get(cnd, (cnd, ""))
            regs.append([f"{lab} ({ag})" if ag != "all ages" else lab, pct(ii.rate), pct(ee.rate), r2(ii.ratio),
                         ci_ratio(ii.ratio_lower, ii.ratio_upper), _signed(ii.missing)])
    practices = a.loc[(a["area_type"] == "practice") & (a["parent_icb"] == icb)]
    fsig = practices["funnel_significance"].value_counts()
    return {
        "title": f"{meta['icb_name']}: recorded {label.lower()}, QOF {meta['qof_year']}",
        "heading": meta["icb_name"], "icb": icb, "label": label, "label_lower": label.lower(), "age": age,
        "year": meta["qof_year"], "period": meta["period"].isoformat(), "when": when,
        "headline": headline, "pcn_text": pcn_text, "gradient": {"england": gn, "icb": gi},
        "registers": regs,
        "pcn_table": _table_rows_pcn(pcns.sort_values("area_name")),
        "funnel_text": (f"{len(practices)} practices: {int(fsig.get('Low (0.001)', 0) + fsig.get('Low (0.025)', 0))} "
                        f"below the 95% limits around the ICB's {pct(i.rate)} "
                        f"({int(fsig.get('Low (0.001)', 0))} below 99.8%), "
                        f"{int(fsig.get('High (0.001)', 0) + fsig.get('High (0.025)', 0))} above "
                        f"({int(fsig.get('High (0.001)', 0))} above 99.8%)."),
        "caveats": _caveats(meta, counts, age),
        "footer": f"{icb} · QOF {meta['qof_year']} · disclosure-controlled · pipeline {__version__}",
    }


def _practice_sentence(pr: pd.DataFrame) -> str:
    """'2 of its 7 practices recorded clearly fewer than expected: A (about 290 fewer); B (…). 3 clearly more.'"""
    low = pr.loc[pr["significance"] == "lower"].sort_values("missing", ascending=False)
    high = pr.loc[pr["significance"] == "higher"]
    n = len(pr)
    names = "; ".join(f"{r.area_name} ({gap_words(r.missing).replace(' people than expected', '')})"
                      for r in low.itertuples())
    first = (f"{len(low)} of its {n} practices recorded clearly fewer than expected: {names}." if len(low)
             else f"None of its {n} practices recorded clearly fewer than expected.")
    hidden = int((pr["significance"] == "").sum())
    return (first + f" {len(high)} recorded clearly more, and {n - len(low) - len(high) - hidden} about as many as "
            "expected" + (f" ({hidden} hidden by disclosure control)." if hidden else "."))


def pcn_context(data: dict, pcn: str) -> dict:
    a, meta, counts = data["areas"], data["meta"], data["counts"]
    icb, cond = meta["icb"], meta["condition"]
    label, age = QOF_REGISTERS.get(cond, (cond, "the register's age range"))
    p = a.loc[(a["area_type"] == "pcn") & (a["area_code"] == pcn)].iloc[0]
    i = a.loc[a["area_type"] == "icb"].iloc[0]
    pr = a.loc[(a["area_type"] == "practice") & (a["parent_pcn"] == pcn)].sort_values("area_name").reset_index(drop=True)
    v = p["significance"]
    vm = verdict(p["ratio_model_lower"], p["ratio_model_upper"])
    when = meta["period"].strftime("%B %Y").replace(" 0", " ")
    vs_icb = ("higher than" if p["rate_lower"] > i["rate"] else "lower than" if p["rate_upper"] < i["rate"]
              else "similar to")
    if v == "lower":
        head = f"Recorded {label.lower()} is clearly below expected: {gap_words(p.missing)}."
    elif v == "higher":
        head = f"Recorded {label.lower()} is clearly above expected: {gap_words(p.missing)}."
    elif v == "similar":
        head = f"Recorded {label.lower()} is in line with expected (the 95% interval includes 1)."
    else:
        head = f"Recorded {label.lower()} cannot be compared with expected here (numbers too small to show)."
    word = {"lower": "clearly below", "higher": "clearly above", "similar": "in line with", "": "not comparable with"}
    detail = [
        (f"At the end of {when}, {n_(p.observed)} of {n_(p.population)} registered patients {age} ({pct(p.rate)}, "
         f"95% interval {ci_pct(p.rate_lower, p.rate_upper)}) were on the {label.lower()} registers of the PCN's "
         f"{len(pr)} practices: {vs_icb} the ICB's {pct(i.rate)}."),
        (f"Given its practices' deprivation, about {n_(p.expected)} would be expected: recorded ÷ expected "
         f"{r2(p.ratio)} (95% interval {ci_ratio(p.ratio_lower, p.ratio_upper)})."),
        (f"Allowing also for age, sex and ethnic mix (model): about {n_(p.expected_model)} expected, ratio "
         f"{r2(p.ratio_model)} ({ci_ratio(p.ratio_model_lower, p.ratio_model_upper)}), {word[vm]} expected, "
         f"{gap_words(p.missing_model)}."),
        _practice_sentence(pr),
    ]
    pr["number"] = np.arange(1, len(pr) + 1)
    dep_only = (pr["model_basis"] != "glm").to_numpy()
    table = [[str(r.number), str(r.area_name), n_(r.population), n_(r.observed),
              f"{pct(r.rate)} ({ci_pct(r.rate_lower, r.rate_upper)})",
              f"{r2(r.ratio)} ({ci_ratio(r.ratio_lower, r.ratio_upper)})", _signed(r.missing),
              r2(r.ratio_model) + ("*" if dep else "")] for r, dep in zip(pr.itertuples(), dep_only)]
    flags = data["practice_flags"]
    mine = flags.loc[flags["pcn_code"] == pcn]
    pcn_counts = {"practices": int(len(mine)), "dep_only": int(dep_only.sum()), "no_imd": int(mine["imd_score"].isna().sum())}
    return {
        "title": f"{p['area_name']}: recorded {label.lower()}, QOF {meta['qof_year']}",
        "heading": str(p["area_name"]), "code": pcn, "icb": icb, "icb_name": meta["icb_name"], "label": label,
        "label_lower": label.lower(), "age": age, "year": meta["qof_year"], "when": when,
        "verdict": v, "headline": head, "detail": detail, "practice_table": table,
        "caveats": _caveats(meta, counts, age, brief=True, pcn=pcn_counts),
        "footer": f"{pcn} · {icb} · QOF {meta['qof_year']} · disclosure-controlled · pipeline {__version__}",
        "_practices": pr,
    }


def write_public_packs(processed: Path, reports: Path, icb: str, year: str, condition: str = "DEP",
                       policy: Policy | None = None) -> dict:
    """Write reports/<ICB>/ics_<ICB>_<year>.pdf/.csv (+ _gradient.csv) and reports/<ICB>/pcn/<PCN>.pdf/.csv for
    every PCN with practices in the ICB, swapping the whole reports/<ICB> folder in atomically.
    Returns {'ics': pdf path, 'pcn': {code: pdf path}, 'seconds': float}."""
    t0 = time.perf_counter()
    icb = icb.strip().upper()
    data = load_controlled(processed, icb, condition, policy)
    a, meta = data["areas"], data["meta"]
    reports = Path(reports)
    final = reports / icb
    reports.mkdir(parents=True, exist_ok=True)
    tmp = reports / f".{icb}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "pcn").mkdir(parents=True)
    period = meta["period"]
    try:
        stem = f"ics_{icb}_{year}"
        _csv_frame(a).to_csv(tmp / f"{stem}.csv", index=False)
        _gradient_csv(data["gradient"], data["inequality"]).to_csv(tmp / f"{stem}_gradient.csv", index=False)
        ctx = ics_context(data)
        i = a.loc[a["area_type"] == "icb"].iloc[0]
        pcns = a.loc[a["area_type"] == "pcn"].assign(label=lambda d: d["area_name"].map(short))
        practices = a.loc[(a["area_type"] == "practice") & (a["parent_icb"] == icb)].assign(
            label=lambda d: d["area_name"].astype(str))
        charts = {
            "caterpillar": (caterpillar_chart, (pcns,), {"icb_ratio": float(i["ratio"]) if _ok(i["ratio"]) else None}),
            "funnel": (funnel_proportion_chart, (practices, float(i["rate"])), {"parent_label": "ICB rate"}),
            "gradient": (gradient_chart, (data["gradient"], ), {"icb": icb}),
        }
        _compile("public_ics.typ", ctx, charts, tmp / f"{stem}.pdf", period)
        out = {"ics": final / f"{stem}.pdf", "pcn": {}}
        for code in sorted(pcns["area_code"]):
            pc = pcn_context(data, code)
            pr = pc.pop("_practices")
            rows = a.loc[((a["area_type"] == "pcn") & (a["area_code"] == code)) |
                         ((a["area_type"] == "practice") & (a["parent_pcn"] == code)) | (a["area_type"] == "icb")]
            _csv_frame(rows).to_csv(tmp / "pcn" / f"{code}.csv", index=False)
            mine = practices["parent_pcn"] == code
            fp = practices.merge(pr[["area_code", "number"]], on="area_code", how="left")
            charts = {"funnel": (funnel_proportion_chart, (fp, float(i["rate"])),
                                 {"parent_label": "ICB rate", "highlight": pd.Series(mine.to_numpy(), index=fp.index)})}
            _compile("public_pcn.typ", pc, charts, tmp / "pcn" / f"{code}.pdf", period)
            out["pcn"][code] = final / "pcn" / f"{code}.pdf"
        (tmp / "README.txt").write_text(
            f"Public-data packs for {meta['icb_name']} ({icb}), QOF {meta['qof_year']}, register {condition}.\n"
            f"{stem}.pdf/.csv: the ICB's PCNs and practices compared; {stem}_gradient.csv: recorded by practice "
            "deprivation decile (England and the ICB).\npcn/<code>.pdf/.csv: one briefing per PCN.\n"
            f"Every number is disclosure-controlled: {meta['policy'].describe(zeros_hidden=False)}\nPipeline version {__version__}.\n",
            encoding="utf-8")
        atomic_replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    out["seconds"] = time.perf_counter() - t0
    return out
