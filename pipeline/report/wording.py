"""Plain-language wording for the packs. Direction words (fewer / more / about as many) come from the 95%
interval of the ratio, never from the point estimate alone. Numbers are the disclosure-controlled ones."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np

from pipeline.disclosure import MARKER

ETHNIC_PHRASE = {"Unknown": "{} whose ethnicity is not recorded", "Other": "{} from other ethnic groups",
                 "Mixed": "{} of Mixed ethnicity"}   # the others: 'Black adults', …
IMD_PHRASE = {"1": "living in the most deprived fifth of areas", "2": "living in the second most deprived fifth of areas",
              "3": "living in the middle fifth of areas by deprivation",
              "4": "living in the second least deprived fifth of areas",
              "5": "living in the least deprived fifth of areas", "Unknown": "whose area's deprivation is unknown"}
IMD_LABEL = {"1": "1 (most deprived)", "2": "2", "3": "3", "4": "4", "5": "5 (least deprived)", "Unknown": "Unknown"}
SEX_LABEL = {"F": "Female", "M": "Male", "Unknown": "Unknown"}
BREAKDOWN_TITLE = {"all": "Everyone", "ethnicity": "Ethnic group", "imd_quintile": "Deprivation quintile",
                   "sex": "Sex", "age_band": "Age band"}


def direction(lower, upper) -> str:
    """'fewer' when the whole 95% interval is below 1, 'more' when above, else 'similar'; '' if unknown."""
    lo, hi = number(lower), number(upper)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    if hi < 1:
        return "fewer"
    if lo > 1:
        return "more"
    return "similar"


def number(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def long_date(d: dt.date) -> str:
    return f"{d.day} {d:%B %Y}"


def short_date(d: dt.date) -> str:
    return f"{d:%b %Y}"


def group_label(group_type: str, value: str) -> str:
    """Short label for tables and chart axes."""
    if group_type == "imd_quintile":
        return IMD_LABEL.get(value, value)
    if group_type == "sex":
        return SEX_LABEL.get(value, value)
    if group_type == "age_band":
        return value.replace("-", "–")
    return value


def series_label(group_type: str, value: str) -> str:
    """A group named on its own (legends): 'Black', 'IMD quintile 1 (most deprived)', 'Aged 40–44', 'Female'."""
    if group_type == "imd_quintile":
        return f"IMD quintile {IMD_LABEL.get(value, value)}"
    if group_type == "age_band":
        return f"Aged {group_label(group_type, value)}"
    if group_type == "ethnicity":
        return f"{value} ethnic group" if value not in ("Unknown",) else "Ethnicity not recorded"
    return group_label(group_type, value)


def group_phrase(group_type: str, value: str, adults: bool) -> str:
    """The people of a group in words: 'Black adults', 'women', 'people aged 40–44', …"""
    people = "adults" if adults else "people"
    if group_type == "ethnicity":
        return ETHNIC_PHRASE.get(value, f"{value} {{}}").format(people)
    if group_type == "imd_quintile":
        return f"{people} {IMD_PHRASE.get(value, 'in deprivation quintile ' + value)}"
    if group_type == "sex":
        words = {"F": ("women", "females"), "M": ("men", "males")}.get(value)
        return words[not adults] if words else f"{people} whose sex is recorded as unknown or indeterminate"
    if group_type == "age_band":
        v = value.replace("-", "–")
        return f"people aged {v[:-1]} and over" if v.endswith("+") else f"people aged {v}"
    return people


def fmt_count(x) -> str:
    v = number(x)
    return MARKER if not math.isfinite(v) else f"{int(round(v)):,}"


def about(x) -> str:
    """'about 295' for a controlled count; the marker when hidden."""
    v = number(x)
    return MARKER if not math.isfinite(v) else f"about {int(round(abs(v))):,}"


def _estimate(value, lower, upper, hidden: bool, fmt, between: str) -> str:
    """An estimate with its interval, each end written by `fmt`: 'v (lower`between`upper)'; the estimate alone
    without an interval; '–' when there is none; the marker when hidden."""
    if hidden:
        return MARKER
    v, lo, hi = number(value), number(lower), number(upper)
    if not math.isfinite(v):
        return "–"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return fmt(v)
    return f"{fmt(v)} ({fmt(lo)}{between}{fmt(hi)})"


def fmt_ratio(r, lo, hi, hidden: bool = False) -> str:
    return _estimate(r, lo, hi, hidden, "{:.2f}".format, "–")


def fmt_rate(r, hidden: bool = False) -> str:
    if hidden:
        return MARKER
    r = number(r)
    return "–" if not math.isfinite(r) else f"{100 * r:.1f}%"


def fmt_share(num, den) -> str:
    n, d = number(num), number(den)
    if not math.isfinite(n):
        return MARKER
    if not math.isfinite(d) or d <= 0:
        return "–"
    return f"{100 * n / d:.1f}%"


SAME_AGE_SEX = "for people of the same age and sex"


def gap_sentence(label: str, group_type: str, value: str, adults: bool, ratio, lower, upper, missing,
                 comparator: str, true_prevalence: bool = False, like: str = SAME_AGE_SEX) -> str:
    """One sentence on a group against the comparator: how many fewer/more are recorded than the comparator's
    rates for people of the same age and sex would give (controlled, 'about'), the ratio and its interval.
    Direction from the interval. With an external reference of true prevalence, a shortfall is also called
    possibly undiagnosed, saying on what basis."""
    who = group_phrase(group_type, value, adults)
    like_words = f" {like}" if like else ""   # what expected is standardised for ('' when the comparator says it)
    d = direction(lower, upper)
    r = f"{number(ratio):.2f}"
    ci = f"95% interval {number(lower):.2f}–{number(upper):.2f}"
    if d in ("fewer", "more"):
        text = (f"{label} is recorded for {about(missing)} {d} {who} than {comparator}{like_words} would give "
                f"(recorded at {r} times that, {ci}).")
        if d == "fewer" and true_prevalence:
            text += (f" Since {comparator} are rates of true prevalence, these are people who possibly have "
                     f"{label.lower()} that is not diagnosed or not recorded.")
        return text
    if d == "similar":
        return (f"{label} is recorded for about as many {who} as {comparator}{like_words} would give ({r} times "
                f"that, {ci}, which includes 1).")
    return f"{label} for {who}: not enough patients to say (numbers hidden for disclosure control)."


def change_sentence(prev_date: dt.date | None, ratio_from, ratio_to, change, lower, upper,
                    trend_label: str | None, comparator: str) -> str:
    """What changed since the previous date for one cell, from the published paired change: the ratio to the
    comparator then and now, and the label (narrowed / widened / no clear change; claims are FDR-controlled over
    the cells of the pack). The change's own 95% interval is printed only with a claim: a nominal interval that
    excludes 1 next to 'no clear change' (after the FDR control) would read as a contradiction."""
    if prev_date is None:
        return "Only one date is available, so change cannot be shown."
    when = short_date(prev_date)
    r0, r1, c, lo, hi = (number(x) for x in (ratio_from, ratio_to, change, lower, upper))
    if not trend_label or not np.isfinite([r0, r1]).all():
        return f"Change since {when} cannot be shown (numbers too small or hidden on one of the dates)."
    went = f"Since {when}: ratio to {comparator} {r0:.2f} → {r1:.2f}"
    if trend_label in ("narrowed", "widened"):
        ci = f"change ×{c:.2f}, 95% interval {lo:.2f}–{hi:.2f}; " if np.isfinite([c, lo, hi]).all() else ""
        return f"{went}: the gap has {trend_label} ({ci}clear after allowing for the number of comparisons in this pack)."
    return f"{went}: no clear change in the gap."


def within_sentence(label: str, group_type: str, value: str, adults: bool, ratio, lower, upper, affected,
                    area: str) -> str:
    """A group against its own area's standardised level ('the PCN's own level'), from published counts."""
    who = group_phrase(group_type, value, adults)
    r, lo, hi = number(ratio), number(lower), number(upper)
    ci = f"95% interval {lo:.2f}–{hi:.2f}"
    d = direction(lower, upper)
    if d in ("fewer", "more"):   # about() prints the size of the difference, its direction is in the words
        return (f"{label}: recorded for {who} at {r:.2f} times {area}'s own level {SAME_AGE_SEX} ({ci}): "
                f"{about(affected)} {d} than if they were recorded like {area} as a whole.")
    return f"{label}: {who} are recorded about as often as {area} as a whole ({r:.2f}, {ci})."


def plain_gap(label: str, group_type: str, value: str, adults: bool, lower, upper, missing) -> str:
    """Community wording: short, no ratios; 'expect' says from what (the area's average for the same ages)."""
    who = group_phrase(group_type, value, adults)
    d = direction(lower, upper)
    if d == "fewer":
        return (f"Fewer {who} have {label.lower()} recorded by their GP practice than the average across the area "
                f"for people of the same age and sex would give: {about(missing)} fewer.")
    if d == "more":
        return (f"More {who} have {label.lower()} recorded than the average across the area for people of the "
                f"same age and sex would give: {about(missing)} more.")
    return f"About as many {who} have {label.lower()} recorded as the average for people of the same age and sex would give."


def _signed(x: float, digits: int = 1) -> str:
    """A signed number with a true minus sign: '−6.0', '2.3'."""
    s = f"{x:.{digits}f}"
    return s.replace("-", "−") if not s.lstrip("-").strip("0.") == "" else s.lstrip("-")


def fmt_sii(sii, lo, hi, hidden: bool = False) -> str:
    """SII of a proportion in percentage points with its interval: '−6.0 (−6.6 to −5.4)'."""
    return _estimate(sii, lo, hi, hidden, lambda v: _signed(100 * v), " to ")


def gradient_words(lo, hi) -> str:
    """The deprivation gradient of an RII interval in a few words (RII < 1: higher in more deprived areas)."""
    d = direction(lo, hi)
    return {"fewer": "higher in more deprived areas", "more": "lower in more deprived areas",
            "similar": "no clear gradient"}.get(d, "–")


def describe_sii(label: str, where: str, sii, lo, hi, rii, rlo, rhi, brief: bool = False) -> str:
    """One sentence on an area's deprivation gradient (phe_sii convention: SII = fitted rate at the least
    deprived end minus the most deprived end; RII = least ÷ most). Direction from the RII interval."""
    v = number(sii)
    if not math.isfinite(v):
        return f"{label}: the gradient could not be calculated for {where}."
    a, b, r, ra, rb = number(lo), number(hi), number(rii), number(rlo), number(rhi)
    d = direction(rlo, rhi)
    if brief:
        ri = f"RII {r:.2f}, 95% interval {ra:.2f}–{rb:.2f}" if np.isfinite([r, ra, rb]).all() else f"RII {r:.2f}"
        if d in ("fewer", "more"):
            return (f"{label}: recorded rate about {abs(100 * v):.1f} percentage points "
                    f"{'higher' if d == 'fewer' else 'lower'} at the most deprived end than the least ({ri}).")
        return f"{label}: no clear gradient with deprivation ({ri})."
    nums = f"SII {_signed(100 * v)} percentage points"
    if math.isfinite(a) and math.isfinite(b):
        nums += f", 95% interval {_signed(100 * a)} to {_signed(100 * b)}"
    if math.isfinite(r):
        nums += f"; RII {r:.2f}" + (f", {ra:.2f}–{rb:.2f}" if math.isfinite(ra) and math.isfinite(rb) else "")
    if d in ("fewer", "more"):   # RII < 1: a higher rate at the most deprived end
        return (f"{label}: in {where} the recorded rate is about {abs(100 * v):.1f} percentage points "
                f"{'higher' if d == 'fewer' else 'lower'} at the most deprived end than at the least deprived end "
                f"({nums}).")
    return f"{label}: in {where} there is no clear gradient with deprivation ({nums}; the intervals include no difference)."


def fmt_pct(x) -> str:
    """A share as a whole percentage ('34%'); '–' when unknown."""
    v = number(x)
    return "–" if not math.isfinite(v) else f"{100 * v:.0f}%"
