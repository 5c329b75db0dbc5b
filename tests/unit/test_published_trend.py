"""What the packs print about change and about groups within an area comes from published (controlled) counts."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline import stats
from pipeline.config import load_config
from pipeline.disclosure import Policy
from pipeline.errors import PipelineError
from pipeline.report import published_trend as pt

P1, P2 = dt.date(2024, 3, 31), dt.date(2025, 3, 31)
POLICY = Policy()


def _prev(rows):
    d = pd.DataFrame(rows, columns=["period", "condition", "area_type", "area_code", "group_type", "group_value",
                                    "observed", "expected"])
    d["observed_redacted"] = d["observed"].isna()
    return d


def test_overlap_is_rounded_and_hidden_like_a_count():
    raw = pd.DataFrame(dict(period_from=[P1] * 3, period_to=[P2] * 3, condition="dep", area_type="pcn", area_code="A",
                            group_type="ethnicity", group_value=["Black", "White", "Asian"], cases_both=[283, 6, 0]))
    got = pt.control_overlap(raw, POLICY)["cases_both"].tolist()
    assert got[0] == 285 and np.isnan(got[1]) and got[2] == 0


def test_published_change_uses_controlled_counts_and_a_hidden_overlap_widens_it():
    prev = _prev([(P1, "dep", "pcn", "A", "ethnicity", g, o0, 200.0) for g, o0 in (("Black", 100), ("White", 150),
                                                                                   ("Asian", np.nan))] +
                 [(P2, "dep", "pcn", "A", "ethnicity", g, o1, 200.0) for g, o1 in (("Black", 160), ("White", 150),
                                                                                   ("Asian", 20))])
    overlap = pd.DataFrame(dict(period_from=P1, period_to=P2, condition="dep", area_type="pcn", area_code="A",
                                group_type="ethnicity", group_value=["Black", "White"], cases_both=[95, np.nan]))
    got = pt.published_changes(prev, overlap, P1, P2, "pcn", ["A"], POLICY).set_index("group_value")
    want = stats.paired_ratio_change(100, 200.0, 160, 200.0, 95, count_rounding=5)
    assert got.loc["Black", "change"] == pytest.approx(1.6)
    assert got.loc["Black", "change_lower"] == pytest.approx(float(want.change_lower))
    assert got.loc["Black", "label"] == "narrowed"
    no_overlap = stats.paired_ratio_change(150, 200.0, 150, 200.0, 0, count_rounding=5)
    assert got.loc["White", "change_upper"] == pytest.approx(float(no_overlap.change_upper))  # hidden: taken as 0
    assert np.isnan(got.loc["Asian", "change"]) and got.loc["Asian", "label"] == ""  # hidden on one date
    # q-values over the cells of the pack
    assert (got["q_value"].dropna() >= got["p_value"].dropna() - 1e-15).all()
    assert got.loc["White", "q_value"] == pytest.approx(got.loc["White", "p_value"] * 2 / 2)  # the larger p: q = p


def test_small_group_at_half_its_neighbours_level_ranks_before_a_large_group_at_095():
    rows = [(P2, "dep", "pcn", "A", "all", "All", 3000, 3000.0),
            (P2, "dep", "pcn", "A", "ethnicity", "Black", 40, 80.0),       # half the PCN's level, 40 affected
            (P2, "dep", "pcn", "A", "ethnicity", "White", 2375, 2500.0),   # 0.95 of it, 125 affected
            (P2, "dep", "pcn", "A", "ethnicity", "Unknown", 10, 40.0)]     # data quality: left out
    g = pt.within_area(_prev(rows), P2, "pcn", ["A"], ("ethnicity",))
    assert g["group_value"].tolist() == ["Black", "White"]
    assert g.loc[0, "within_value"] == pytest.approx(0.5) and g.loc[0, "within_affected"] == pytest.approx(40)
    assert g.loc[1, "within_upper"] < 1 and g.loc[0, "tier"] > g.loc[1, "tier"] > 0


def test_true_prevalence_needs_external_rates(tmp_path):
    cfg = tmp_path / "c.toml"
    base = 'periods = ["2024-03-31"]\n[[conditions]]\nid = "dep"\ncodelist = "x.csv"\n'
    cfg.write_text(base + '[reference]\ntrue_prevalence = true\n')
    with pytest.raises(PipelineError, match="true_prevalence needs external"):
        load_config(cfg)
    cfg.write_text(base + '[reference]\nrates = "rates.csv"\ntrue_prevalence = true\nbasis = "modelled prevalence"\n')
    ref = load_config(cfg).reference
    assert ref.true_prevalence and ref.basis == "modelled prevalence"
