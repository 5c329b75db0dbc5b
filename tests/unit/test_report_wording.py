"""Pack wording: direction words come from the interval, never the point estimate alone."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipeline.disclosure import MARKER
from pipeline.report import wording as w
from pipeline.report.charts import significance


@pytest.mark.parametrize("lo,hi,expected", [(0.48, 0.63, "fewer"), (1.05, 1.4, "more"), (0.6, 1.05, "similar"),
                                            (0.95, 1.8, "similar"), (0.0, 0.99, "fewer"), (np.nan, 1.2, "")])
def test_direction_from_interval(lo, hi, expected):
    assert w.direction(lo, hi) == expected


def test_point_estimate_below_one_with_wide_interval_says_about_as_many():
    s = w.gap_sentence("Depression", "ethnicity", "Black", True, 0.70, 0.45, 1.08, 40, "the NHS Test ICB average")
    assert "about as many Black adults as the NHS Test ICB average" in s and "fewer" not in s and "includes 1" in s


def test_gap_sentence_says_what_was_computed():
    s = w.gap_sentence("Depression", "ethnicity", "Black", True, 0.55, 0.48, 0.63, 300, "the ICB average")
    assert s == ("Depression is recorded for about 300 fewer Black adults than the ICB average for people of the "
                 "same age and sex would give (recorded at 0.55 times that, 95% interval 0.48–0.63).")
    assert "undiagnosed" not in s and "expected" not in s


def test_gap_sentence_speaks_of_undiagnosed_only_with_true_prevalence():
    s = w.gap_sentence("Depression", "ethnicity", "Black", True, 0.55, 0.48, 0.63, 300,
                       "the national modelled prevalence rates", true_prevalence=True)
    assert "not diagnosed" in s and "true prevalence" in s


def test_gap_sentence_more():
    s = w.gap_sentence("Hypertension", "imd_quintile", "1", False, 1.3, 1.1, 1.5, -45, "the ICB average")
    assert "about 45 more people living in the most deprived fifth of areas than the ICB average" in s


def test_within_sentence():
    s = w.within_sentence("Depression", "ethnicity", "Black", True, 0.6, 0.5, 0.72, 44.6, "the PCN")
    assert s == ("Depression: recorded for Black adults at 0.60 times the PCN's own level for people of the same "
                 "age and sex (95% interval 0.50–0.72): about 45 fewer than if they were recorded like the PCN as "
                 "a whole.")


def test_group_phrases():
    assert w.group_phrase("sex", "F", True) == "women"
    assert w.group_phrase("sex", "M", False) == "males"
    assert w.group_phrase("age_band", "90+", True) == "people aged 90 and over"
    assert w.group_phrase("age_band", "40-44", True) == "people aged 40–44"
    assert w.group_phrase("ethnicity", "Other", True) == "adults from other ethnic groups"


def test_hidden_numbers_use_the_marker():
    assert w.about(np.nan) == MARKER
    assert w.fmt_count(np.nan) == MARKER
    assert w.fmt_ratio(0.5, 0.4, 0.6, hidden=True) == MARKER
    assert w.fmt_ratio(0.5, 0.4, 0.6) == "0.50 (0.40–0.60)"
    assert w.fmt_count(1234) == "1,234"


def test_change_sentence_uses_the_gap_label():
    s = w.change_sentence(dt.date(2024, 3, 31), 0.60, 0.78, 1.3, 1.2, 1.45, "narrowed", "the ICB average")
    assert s.startswith("Since Mar 2024: ratio to the ICB average 0.60 → 0.78: the gap has narrowed (change ×1.30, 95% "
                        "interval 1.20–1.45;")
    assert "number of comparisons" in s
    s = w.change_sentence(dt.date(2024, 3, 31), 0.9, 0.92, 1.02, 0.95, 1.1, "no clear change", "the ICB average")
    assert "no clear change" in s and "interval" not in s
    assert "cannot be shown" in w.change_sentence(dt.date(2024, 3, 31), np.nan, np.nan, np.nan, np.nan, np.nan, "", "x")
    assert "Only one date" in w.change_sentence(None, 1, 1, 1, 1, 1, None, "x")


def test_chart_significance_matches_wording():
    lo = np.array([0.5, 1.1, 0.8, np.nan])
    hi = np.array([0.9, 1.5, 1.2, np.nan])
    sig = significance(lo, hi)
    assert sig.tolist() == ["lower", "higher", "similar", ""]
    assert [w.direction(a, b) for a, b in zip(lo, hi)] == ["fewer", "more", "similar", ""]


def test_sii_wording_follows_the_phe_sign_convention():
    from pipeline.report import wording as w

    # SII = least deprived end minus most deprived end: negative -> higher in more deprived areas
    assert w.fmt_sii(-0.0603, -0.066, -0.0545) == "−6.0 (−6.6 to −5.5)"
    assert w.fmt_sii(0.01, -0.01, 0.03) == "1.0 (−1.0 to 3.0)"
    assert w.fmt_sii(float("nan"), 0, 0) == "–" and w.fmt_sii(0.1, 0, 0.2, hidden=True) == "[c]"
    assert w.gradient_words(0.57, 0.63) == "higher in more deprived areas"
    assert w.gradient_words(1.07, 1.15) == "lower in more deprived areas"
    assert w.gradient_words(0.9, 1.3) == "no clear gradient"
    s = w.describe_sii("Depression", "the ICB", -0.069, -0.075, -0.063, 0.60, 0.57, 0.63)
    assert "6.9 percentage points higher at the most deprived end" in s and "RII 0.60, 0.57–0.63" in s
    s = w.describe_sii("Hypertension", "the ICB", 0.015, 0.010, 0.021, 1.11, 1.07, 1.15, brief=True)
    assert "1.5 percentage points lower at the most deprived end" in s
    assert "no clear gradient" in w.describe_sii("SMI", "the ICB", 0.001, -0.002, 0.004, 1.02, 0.9, 1.1)
    assert w.fmt_pct(0.344) == "34%" and w.fmt_pct(float("nan")) == "–"
