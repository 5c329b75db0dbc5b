"""The test oracle (tests/oracle.py) against small cases worked out by hand."""
from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from conftest import write_config, write_raw
from oracle import age_band, completed_years, oracle_load, oracle_prevalence, poisson_count_limits, wilson

TODAY = date(2025, 1, 1)
D = "2024-03-31"

PRACTICES = [
    ["P1", "Practice One", "PCN1", "Pcn One", "ICB1", "Icb One"],
    ["P2", "Practice Two", "PCN1", "Pcn One", "ICB1", "Icb One"],
]
DEPRIVATION = [["L1", "40.1", "100", "1"], ["L2", "5.0", "30000", "10"]]
NEIGHBOURHOODS = [["L1", "N1", "North"], ["L2", "N1", "North"], ["L3", "N2", "South"]]

# patient_id, sex, date_of_birth, ethnicity, lsoa_code, date_of_death
PATIENTS = [
    ["A", "F", "1980-01-01", "a", "L1", ""],          # 44, White, q1, N1, depression case
    ["B", "f", "1980-06-01", " M ", "L2", ""],        # 43, Black, q5, N1, resolved -> not a case
    ["C", "M", "2006-04-01", "A", "L1", ""],          # 17 on D: not in the 18+ population
    ["D", "M", "2006-03-01", "", "", ""],             # 18 on D, diagnosed on D: case; no LSOA
    ["E", "I", "1950-01-01", "B", "L1", ""],          # spell ended the day before D
    ["F", "U", "1950-01-01", "B", "L1", "2024-03-31"],  # died on D
    ["G", "U", "1960-07-01", "Z", "L3", ""],          # registered on D; LSOA not in deprivation
    ["H", "F", "1982-01-01", "99", "L1", ""],         # two open spells -> P2; same-day resolution
    ["A", "M", "1970-01-01", "A", "L1", ""],          # duplicate patient_id: rejected
    ["", "F", "1970-01-01", "A", "L1", ""],           # empty patient_id: rejected
    ["X", "Q", "1970-01-01", "A", "L1", ""],          # bad sex: rejected
    ["Y", "F", "1970-02-30", "A", "L1", ""],          # bad date: rejected
    ["W", "F", "2026-01-01", "A", "L1", ""],          # born after today: rejected
]
REGISTRATIONS = [
    ["A", "P1", "2000-01-01", ""],
    ["B", "P1", "2010-01-01", ""],
    ["C", "P1", "2010-01-01", ""],
    ["D", "P1", "2020-01-01", ""],
    ["E", "P1", "2000-01-01", "2024-03-30"],
    ["F", "P2", "2000-01-01", ""],
    ["G", "P2", "2024-03-31", ""],
    ["H", "P1", "2010-01-01", ""],
    ["H", "P2", "2015-01-01", ""],
    ["X", "P1", "2010-01-01", ""],           # rejected patient: rejected
    ["A", "P9", "2010-01-01", ""],           # unknown practice: rejected
    ["B", "P1", "2010-01-01", "2009-01-01"],  # to before from: rejected
    ["B", "P1", "", ""],                     # empty from: rejected
]
EVENTS = [
    ["A", "111", "2020-01-01"],
    ["B", "111", "2019-01-01"], ["B", "999", "2021-01-01"],
    ["D", "111", "2024-03-31"],
    ["H", "111", "2022-05-01"], ["H", "999", "2022-05-01"],
    ["C", "222", "2023-01-01"],
    ["E", "222", "2023-01-01"], ["F", "222", "2023-01-01"],
    ["G", "222", "2024-04-01"],              # after D: not a case on D
    ["B", "", "2023-01-01"],                 # empty code: rejected
    ["B", "111", "2024-02-30"],              # bad date: rejected
    ["B", "111", "2025-06-01"],              # after today: rejected
    ["Q", "111", "2020-01-01"],              # unknown patient: rejected
]


@pytest.fixture
def tiny(tmp_path):
    raw = write_raw(tmp_path / "raw", {
        "patients": PATIENTS, "registrations": REGISTRATIONS, "events": EVENTS,
        "practices": PRACTICES, "deprivation": DEPRIVATION, "neighbourhoods": NEIGHBOURHOODS,
        "codelists/dep": ["111"], "codelists/dep_res": ["999"], "codelists/htn": ["222"],
    })
    cfg = write_config(tmp_path / "cfg.toml", [D], [
        {"id": "dep", "label": "Depression", "codelist": "codelists/dep.csv",
         "resolved_codelist": "codelists/dep_res.csv", "min_age": 18},
        {"id": "htn", "label": "Hypertension", "codelist": "codelists/htn.csv", "min_age": 0},
    ])
    return raw, cfg


def _row(df, condition, area_type, area_code, group_type, group_value):
    sel = df[(df.condition == condition) & (df.area_type == area_type) & (df.area_code == area_code)
             & (df.group_type == group_type) & (df.group_value == group_value)]
    assert len(sel) == 1, (condition, area_type, area_code, group_type, group_value, len(sel))
    return sel.iloc[0]


def test_wilson_by_hand():
    # 2 of 3: (2x+z^2 -/+ z sqrt(z^2 + 4x(1-p))) / (2(n+z^2))
    lo, hi = wilson(np.array([2, 0, 5]), np.array([3, 10, 5]))
    assert lo[0] == pytest.approx(0.207659, abs=1e-5) and hi[0] == pytest.approx(0.938509, abs=1e-5)
    assert lo[1] == 0 and hi[1] == pytest.approx(0.277533, abs=1e-5)
    assert hi[2] == 1 and lo[2] == pytest.approx(0.565518, abs=1e-5)


def test_poisson_limits_by_hand():
    lo, hi = poisson_count_limits(np.array([0, 1, 2, 9, 10, 100]))
    assert lo[0] == 0 and hi[0] == pytest.approx(3.688879, abs=1e-5)
    assert lo[1] == pytest.approx(0.025318, abs=1e-5) and hi[1] == pytest.approx(5.571643, abs=1e-5)
    assert lo[2] == pytest.approx(0.242209, abs=1e-5) and hi[2] == pytest.approx(7.224688, abs=1e-5)
    assert lo[3] == pytest.approx(4.115373, abs=1e-5) and hi[3] == pytest.approx(17.084803, abs=1e-5)
    # Byar from 10: x(1 - 1/(9x) - z/(3 sqrt x))^3
    z = 1.959963985
    assert lo[4] == pytest.approx(10 * (1 - 1 / 90 - z / (3 * math.sqrt(10))) ** 3, rel=1e-9)
    assert hi[5] == pytest.approx(101 * (1 - 1 / 909 + z / (3 * math.sqrt(101))) ** 3, rel=1e-9)


def test_age_and_bands():
    dob = np.array(["2006-03-31", "2006-04-01", "2000-02-29", "1900-01-01"], dtype="datetime64[D]")
    assert completed_years(dob, date(2024, 3, 31)).tolist() == [18, 17, 24, 124]
    assert completed_years(dob[2:3], date(2023, 2, 28)).tolist() == [22]
    assert age_band(np.array([0, 4, 5, 17, 89, 90, 120])).tolist() == [
        "0-4", "0-4", "5-9", "15-19", "85-89", "90+", "90+"]


def test_rejections(tiny):
    raw, _ = tiny
    data = oracle_load(raw, TODAY)
    assert [r for r, _ in data.rejected["patients"]] == [9, 10, 11, 12, 13]
    assert [r for r, _ in data.rejected["registrations"]] == [10, 11, 12, 13]
    assert [r for r, _ in data.rejected["events"]] == [11, 12, 13, 14]
    assert sorted(data.patients.patient_id) == list("ABCDEFGH")
    assert data.patients.set_index("patient_id").loc["A", "sex"] == "F"  # the first occurrence is kept


def test_depression_by_hand(tiny):
    raw, cfg = tiny
    df = oracle_prevalence(raw, cfg, TODAY)
    dep = df[df.condition == "dep"]
    # population: A B D (P1), G H (P2); cases: A, D.  Strata: F|40-44 = {A*, B, H}, M|15-19 = {D*}, U|60-64 = {G}
    r = _row(df, "dep", "practice", "P1", "all", "All")
    assert (r.observed, r.population) == (2, 3)
    assert r.expected == pytest.approx(1 / 3 + 1 / 3 + 1)
    assert r.ratio == pytest.approx(2 / (5 / 3))
    assert r.missing == pytest.approx(5 / 3 - 2)
    assert r.rate == pytest.approx(2 / 3)
    assert (r.rate_lower, r.rate_upper) == (pytest.approx(0.207659, abs=1e-5), pytest.approx(0.938509, abs=1e-5))
    assert r.ratio_lower == pytest.approx(0.242209 / (5 / 3), abs=1e-5)
    assert r.ratio_upper == pytest.approx(7.224688 / (5 / 3), abs=1e-5)
    assert r.area_name == "Practice One"

    r = _row(df, "dep", "practice", "P2", "all", "All")
    assert (r.observed, r.population) == (0, 2) and r.expected == pytest.approx(1 / 3)
    assert r.ratio == 0 and r.ratio_lower == 0 and r.rate_lower == 0
    for at, code in (("icb", "ICB1"), ("pcn", "PCN1")):
        r = _row(df, "dep", at, code, "all", "All")
        assert (r.observed, r.population) == (2, 5) and r.expected == pytest.approx(2) and r.ratio == pytest.approx(1)

    def counts(gt, at="icb", code="ICB1"):
        sel = dep[(dep.group_type == gt) & (dep.area_type == at) & (dep.area_code == code)]
        return {v: (o, n) for v, o, n in zip(sel.group_value, sel.observed, sel.population, strict=False)}

    assert counts("sex") == {"F": (1, 3), "M": (1, 1), "Unknown": (0, 1)}
    assert counts("ethnicity") == {"White": (1, 1), "Black": (0, 1), "Unknown": (1, 3)}
    assert counts("imd_quintile") == {"1": (1, 2), "5": (0, 1), "Unknown": (1, 2)}
    assert counts("age_band") == {"40-44": (1, 3), "15-19": (1, 1), "60-64": (0, 1)}
    assert counts("all", "neighbourhood", "N1") == {"All": (1, 3)}
    assert counts("all", "neighbourhood", "N2") == {"All": (0, 1)}
    assert set(dep[dep.area_type == "neighbourhood"].area_code) == {"N1", "N2"}  # D (no LSOA) in none
    r = _row(df, "dep", "icb", "ICB1", "sex", "Unknown")
    assert r.expected == 0 and np.isnan(r.ratio)  # stratum U|60-64 has no cases anywhere
    assert _row(df, "dep", "icb", "ICB1", "sex", "F").expected == pytest.approx(1.0)


def test_hypertension_by_hand(tiny):
    raw, cfg = tiny
    df = oracle_prevalence(raw, cfg, TODAY)
    htn = df[(df.condition == "htn") & (df.area_type == "practice") & (df.group_type == "all")]
    got = {c: (o, n) for c, o, n in zip(htn.area_code, htn.observed, htn.population, strict=False)}
    assert got == {"P1": (1, 4), "P2": (0, 2)}  # A B C D at P1; G H at P2; case C only (G's event is after D)
    r = _row(df, "htn", "practice", "P1", "all", "All")
    assert r.expected == pytest.approx(1.0)  # M|15-19 = {C*, D}: rate 1/2 -> C 0.5 + D 0.5
    assert r.ratio == pytest.approx(1.0)
    assert r.ratio_lower == pytest.approx(0.025318, abs=1e-5)
    assert _row(df, "htn", "practice", "P2", "all", "All").expected == 0


def test_columns_and_types(tiny):
    raw, cfg = tiny
    df = oracle_prevalence(raw, cfg, TODAY)
    assert list(df.columns) == ["period", "condition", "area_type", "area_code", "area_name", "group_type",
                                "group_value", "observed", "population", "rate", "rate_lower", "rate_upper",
                                "expected", "ratio", "ratio_lower", "ratio_upper", "missing"]
    assert set(df.period) == {date(2024, 3, 31)}
    assert df.observed.dtype == np.int64 and df.population.dtype == np.int64
    assert (df.population > 0).all()
    assert not df.duplicated(["period", "condition", "area_type", "area_code", "group_type", "group_value"]).any()
