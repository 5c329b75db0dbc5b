"""Indicators in the publication model and the packs: one small demo run (default indicators plus one whose
denominator is a register's whole recorded count), the controlled rows, page 1's choice and the pack pages."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_config
from pipeline.paths import DEFAULT_CONFIG

EXTRA = '''
[[indicators]]
id = "smi_check_all"
label = "SMI check, all ages"
kind = "care_process"
denominator = "smi"
codelist = "codelists/smi_health_check.csv"
'''


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from pipeline.analyse import analyse
    from pipeline.demo import generate
    from pipeline.ingest import ingest
    from pipeline.report.data import load_inputs
    from pipeline.transform import transform
    from pipeline.warehouse import staged

    tmp = tmp_path_factory.mktemp("indicator_packs")
    generate(tmp / "raw", n_patients=6_000, seed=5)
    cfg_path = tmp / "config.toml"
    cfg_path.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace("[reference]", EXTRA + "\n[reference]"),
                        encoding="utf-8")
    cfg = load_config(cfg_path)
    with staged(tmp / "processed", fresh=True) as con:
        ingest(tmp / "raw", tmp / "processed", cfg, con)
        transform(tmp / "processed", cfg, con)
        analyse(tmp / "processed", cfg, con)
    return load_inputs(tmp / "processed", cfg), cfg


def test_full_register_denominator_is_the_registers_recorded_cell(inputs):
    inp, _ = inputs
    ind = inp.indicators
    key = ["period", "area_type", "area_code", "group_type", "group_value"]
    check = ind[ind["condition"] == "smi_check_all"].set_index(key)
    smi = inp.prev[inp.prev["condition"] == "smi"].set_index(key)
    both = check.join(smi[["observed", "observed_redacted"]], rsuffix="_register", how="inner")
    assert len(both) == len(check) > 20
    assert (both["population_redacted"] == both["observed_redacted_register"]).all()
    shown = ~both["population_redacted"]
    assert (both.loc[shown, "population"] == both.loc[shown, "observed_register"]).all()


def test_published_indicator_values_come_from_published_counts(inputs):
    inp, _ = inputs
    ind = inp.indicators
    shown = ~ind["observed_redacted"] & ~ind["population_redacted"]
    assert shown.any() and ind["observed_redacted"].any()
    o, p = ind.loc[shown, "observed"], ind.loc[shown, "population"]
    assert (o <= p).all()
    assert np.allclose(ind.loc[shown, "rate"], np.minimum(o, p) / p)
    assert ind.loc[ind["observed_redacted"], ["rate", "ratio", "ratio_lower", "missing"]].isna().all().all()
    counts = ind[["observed", "population"]].to_numpy(dtype=float)
    counts = counts[~np.isnan(counts)]
    assert (counts % 5 == 0).all() and not ((counts > 0) & (counts <= 7)).any()
    assert set(ind["kind"]) == {"care_process", "outcome", "case_finding"}


def test_pcn_pack_has_a_page_per_family_and_counts_not_lists(inputs):
    from pipeline.report.packs import build_ics, build_pcn

    inp, cfg = inputs
    pack = build_pcn(inp, "U99005", cfg.report)
    families = [f["title"] for f in pack.context["indicator_families"]]
    assert families == ["Care processes", "Outcomes: treatment to target",
                        "Possible undiagnosed conditions (case finding)"]
    case = pack.context["indicator_families"][2]["indicators"][0]
    assert "but no diagnosis" in case["summary"] and "not on the hypertension register" in case["summary"]
    table = pack.extra_csvs["indicators"]
    assert {"indicator", "kind", "observed", "population", "ratio"} <= set(table.columns)
    assert not any("patient" in c for c in table.columns)
    ics = build_ics(inp, "QXX", cfg.report)
    sections = ics.context["indicator_sections"]
    assert [len(s["indicators"]) for s in sections] == [2, 2, 2]
    assert all(s["indicators"][0]["neighbourhoods"]["rows"] for s in sections)
    assert any(name.startswith("ind_outcome_neighbourhood") for name, *_ in ics.charts)


def test_page_one_gives_each_family_its_largest_gap():
    from pipeline.report.indicator_pages import page_one_items

    latest = dt.date(2025, 3, 31)
    meta = [dict(indicator="bp", label="BP controlled", kind="outcome", denominator_label="Hypertension",
                 min_age=18, max_age=79, condition_min_age=0, met="blood pressure at target"),
            dict(indicator="find", label="Possible hypertension", kind="case_finding",
                 denominator_label="Hypertension", min_age=18, max_age=None, condition_min_age=0,
                 met="readings suggesting hypertension but no diagnosis")]

    def row(iid, kind, gv, observed, population, missing, ratio, lower, upper):
        return dict(period=latest, condition=iid, kind=kind, area_type="pcn", area_code="P1", group_type="ethnicity",
                    group_value=gv, observed=observed, population=population, rate=observed / population,
                    expected=observed + missing, missing=missing, ratio=ratio, ratio_lower=lower, ratio_upper=upper,
                    observed_redacted=False, population_redacted=False)

    ind = pd.DataFrame([row("bp", "outcome", "Asian", 60, 165, 40, 0.6, 0.46, 0.77),
                        row("bp", "outcome", "Black", 50, 100, 10, 0.83, 0.6, 0.99),
                        row("find", "case_finding", "Black", 30, 470, -20, 3.0, 2.0, 4.3),
                        row("find", "case_finding", "Unknown", 30, 470, -25, 3.0, 2.0, 4.3)])
    inp = SimpleNamespace(indicators=ind, indicator_meta=meta, latest=latest, previous=None, indicator_trend=None)
    registers = [dict(text=f"register gap {k}", change="", condition="dep", group_type="ethnicity", group_value="X",
                      missing=str(100 - k), missing_value=100.0 - k) for k in range(5)]
    items = page_one_items(registers, inp, "pcn", "P1", 5, "the ICB average")
    assert len(items) == 5
    families = [i.get("family") for i in items]
    assert families.count("outcome") == 1 and families.count("case_finding") == 1 and families[0] == "register"
    outcome = next(i for i in items if i["family"] == "outcome")
    assert outcome["text"].startswith("BP controlled: 60 of 165 Asian adults on the hypertension register aged 18–79")
    assert "about 40 fewer than expected" in outcome["text"] and "the ICB average" in outcome["text"]
    found = next(i for i in items if i["family"] == "case_finding")
    assert "30 of 470 Black adults aged 18 and over not on the hypertension register" in found["text"]
    assert "readings suggesting hypertension but no diagnosis" in found["text"] and "about 20 more" in found["text"]
