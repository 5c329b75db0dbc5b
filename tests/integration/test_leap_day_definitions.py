"""Definitions around 29 February, through the command line (DESIGN.md, Definitions): reference dates on 28 February,
29 February and 1 March, in leap and common years.

The other definition tests use 31 March, where no day is clamped and no birthday falls on a missing day. Here:
- age in completed years of people born on 29 February, judged on 28 February of a common year (the birthday has not
  come yet: a child born 2020-02-29 is 4 on 2025-02-28), against a condition's `min_age`, an indicator's `max_age`
  and the 5-year age bands;
- indicator windows whose start is clamped to the month's end (2024-02-29 less 12 months is 2023-02-28, and a reading
  on that day is outside) and windows that contain the leap day;
- `value` forms at the edge of "a plain decimal number" (no-break spaces and leading zeros load; `+130`, `1e2`,
  `.5`, `5.` reject the row); codes trimmed in codelists and events and compared case-sensitively; a code in both the
  diagnosis and the resolved codelist.
Each case is registered at its own practice, so a practice's `all` row answers it; the counts were worked out by hand.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import run_pipeline, write_raw
from oracle import compare_indicators, compare_prevalence, oracle_indicators, oracle_prevalence

PERIODS = ["2023-02-28", "2024-02-28", "2024-02-29", "2024-03-01", "2025-02-28"]
AST, HTN, HTN_RES, BOTH, LETTERS = "3001", "2001", "2002", "2009", "Ab1x"
SYS, DIA, CHECK = "4001", "4002", "5001"

CONFIG = f'''
periods = [{", ".join(f'"{p}"' for p in PERIODS)}]

[input]
max_reject_share = 1

[[conditions]]
id = "htn"
label = "Hypertension"
codelist = "codelists/htn.csv"
resolved_codelist = "codelists/htn_res.csv"
min_age = 0

[[conditions]]
id = "asthma"
label = "Asthma"
codelist = "codelists/asthma.csv"
min_age = 7

[[indicators]]
id = "bp"
label = "BP controlled 18-79"
kind = "outcome"
denominator = "htn"
min_age = 18
max_age = 79
months = 12
criteria = [{{ codelist = "codelists/sys.csv", max_value = 140 }}, {{ codelist = "codelists/dia.csv", max_value = 90 }}]

[[indicators]]
id = "check"
label = "Checked"
kind = "care_process"
denominator = "htn"
months = 12
codelist = "codelists/check.csv"

[[indicators]]
id = "possible_htn"
label = "Possible hypertension"
kind = "case_finding"
denominator = "htn"
min_age = 18
months = 24
evidence_codelist = "codelists/sys.csv"
min_value = 140
min_count = 2
'''


def controlled(day: str) -> list[tuple[str, str, str]]:
    """A controlled blood pressure (120/80) and a check on `day`."""
    return [(SYS, day, "120"), (DIA, day, "80"), (CHECK, day, "")]


ON_REGISTER = (HTN, "2010-01-01", "")
# practice (one patient each): (date_of_birth, registered_from, events as (code, date, value))
PEOPLE = {
    "LEAP16": ("2016-02-29", "2016-03-01", [(AST, "2020-01-01", "")]),      # 6 on 2023-02-28, 7 on 2024-02-28
    "LEAP20": ("2020-02-29", "2020-03-01", [(HTN, "2021-01-01", "")]),      # 4 on 2025-02-28: band 0-4
    "LEAP44": ("1944-02-29", "2000-01-01", [ON_REGISTER] + controlled("2023-06-01")),  # 79 on 2024-02-28, 80 on 02-29
    "AGE18": ("2006-02-28", "2010-01-01", [ON_REGISTER] + controlled("2023-06-01")),   # 18 on 2024-02-28
    "AGE18MAR": ("2006-03-01", "2010-01-01", [ON_REGISTER] + controlled("2023-06-01")),  # 18 on 2024-03-01
    "W_START": ("1970-01-01", "2000-01-01", [ON_REGISTER] + controlled("2023-02-28")),  # the start for 2024-02-28/29
    "W_INSIDE": ("1970-01-01", "2000-01-01", [ON_REGISTER] + controlled("2023-03-01")),  # the start for 2024-03-01
    "W_LEAP": ("1970-01-01", "2000-01-01", [ON_REGISTER] + controlled("2024-02-29")),   # inside (2024-02-28, 2025-02-28]
    "W_28": ("1970-01-01", "2000-01-01", [ON_REGISTER, (CHECK, "2024-02-28", "")]),      # the start for 2025-02-28
    # not on the register, systolic >= 140 on two dates; 24 months before 2024-02-29 is 2022-02-28 (outside)
    "CF_START": ("1970-01-01", "2000-01-01", [(SYS, "2022-02-28", "150"), (SYS, "2023-07-01", "150")]),
    "CF_INSIDE": ("1970-01-01", "2000-01-01", [(SYS, "2022-03-01", "150"), (SYS, "2023-07-01", "150")]),
    # values: no-break spaces and leading zeros load; the other forms reject their rows, leaving no systolic reading
    "V_OK": ("1970-01-01", "2000-01-01", [ON_REGISTER, (SYS, "2023-06-01", "\u00a0130\u00a0"), (DIA, "2023-06-01", "00080")]),
    "V_FORMS": ("1970-01-01", "2000-01-01", [ON_REGISTER, (SYS, "2023-06-01", "+130"), (SYS, "2023-07-01", "1e2"),
                                             (SYS, "2023-08-01", ".5"), (SYS, "2023-09-01", "5."), (DIA, "2023-06-01", "80")]),
    # codes: trimmed on both sides, compared case-sensitively; a code in both codelists diagnoses and resolves at once
    "C_SPACE": ("1970-01-01", "2000-01-01", [(f"  {HTN}", "2020-01-01", "")]),
    "C_EXACT": ("1970-01-01", "2000-01-01", [(LETTERS, "2020-01-01", "")]),
    "C_CASE": ("1970-01-01", "2000-01-01", [(LETTERS.lower(), "2020-01-01", ""), (LETTERS.upper(), "2020-01-01", "")]),
    "C_BOTH": ("1970-01-01", "2000-01-01", [(BOTH, "2020-01-01", "")]),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leap_day")
    patients, registrations, events = [], [], []
    for practice, (dob, registered_from, practice_events) in PEOPLE.items():
        patient = f"pt_{practice.lower()}"
        patients.append([patient, "F", dob, "A", "L1", ""])
        registrations.append([patient, practice, registered_from, ""])
        events += [[patient, code, day, value] for code, day, value in practice_events]
    raw = write_raw(tmp / "raw", {
        "patients": patients, "registrations": registrations,
        "events": (["patient_id", "code", "date", "value"], events),
        "practices": [[practice, practice.title(), "PCN1", "Pcn", "ICB1", "Icb"] for practice in PEOPLE],
        "deprivation": [["L1", "40", "100", "1"]],
        "codelists/htn": [f" {HTN} ", LETTERS, BOTH], "codelists/htn_res": [HTN_RES, BOTH], "codelists/asthma": [AST],
        "codelists/sys": [SYS], "codelists/dia": [DIA], "codelists/check": [CHECK],
    })
    cfg = tmp / "config.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    today = "2026-01-01"
    rc, _, err = run_pipeline(raw, tmp / "processed", tmp / "reports", cfg, env={"PIPELINE_TODAY": today})
    assert rc == 0, err[-3000:]
    prevalence = pd.read_parquet(tmp / "processed" / "prevalence.parquet")
    indicators = pd.read_parquet(tmp / "processed" / "indicators.parquet")
    rejects = pd.read_parquet(tmp / "processed" / "rejects.parquet")
    return raw, cfg, dt.date.fromisoformat(today), prevalence, indicators, rejects


def practice_cells(table: pd.DataFrame, column: str, measure: str, practice: str, group_type: str = "all") -> dict:
    """{(period, group_value): (observed, population)} of one practice's rows for a condition or an indicator."""
    rows = table[(table[column] == measure) & (table["area_type"] == "practice") & (table["area_code"] == practice)
                 & (table["group_type"] == group_type)]
    return {(str(row.period)[:10], row.group_value): (int(row.observed), int(row.population))
            for row in rows.itertuples(index=False)}


def by_period(cells: dict) -> dict:
    return {period: counts for (period, _), counts in cells.items()}


def test_leap_day_births_on_28_february(run):
    *_, prevalence, indicators, _ = run
    # asthma from 7: born 2016-02-29, 6 on 2023-02-28 (the birthday is 1 March in a common year), 7 on 2024-02-28
    assert by_period(practice_cells(prevalence, "condition", "asthma", "LEAP16")) == {
        p: (1, 1) for p in PERIODS[1:]}
    # born 2020-02-29: 3 on 2024-02-28, 4 from 2024-02-29 to 2025-02-28 (not yet 5): always band 0-4
    assert practice_cells(prevalence, "condition", "htn", "LEAP20", "age_band") == {
        (p, "0-4"): (1, 1) for p in PERIODS}
    # bp is for 18-79: born 1944-02-29 is 79 on 2024-02-28, 80 on 2024-02-29 and still 80 on 2025-02-28
    assert by_period(practice_cells(indicators, "indicator", "bp", "LEAP44")) == {
        "2023-02-28": (0, 1), "2024-02-28": (1, 1)}
    assert by_period(practice_cells(indicators, "indicator", "bp", "AGE18")) == {
        "2024-02-28": (1, 1), "2024-02-29": (1, 1), "2024-03-01": (1, 1), "2025-02-28": (0, 1)}
    assert by_period(practice_cells(indicators, "indicator", "bp", "AGE18MAR")) == {
        "2024-03-01": (1, 1), "2025-02-28": (0, 1)}


def test_windows_around_the_leap_day(run):
    *_, indicators, _ = run
    for indicator in ("bp", "check"):
        met = {practice: {period for period, (observed, _) in by_period(
            practice_cells(indicators, "indicator", indicator, practice)).items() if observed}
            for practice in ("W_START", "W_INSIDE", "W_LEAP")}
        # 2024-02-28 and 2024-02-29 less 12 months are both 2023-02-28: a reading on that day is outside
        assert met["W_START"] == {"2023-02-28"}, indicator
        assert met["W_INSIDE"] == {"2024-02-28", "2024-02-29"}, indicator
        assert met["W_LEAP"] == {"2024-02-29", "2024-03-01", "2025-02-28"}, indicator
    checked = by_period(practice_cells(indicators, "indicator", "check", "W_28"))
    assert {period for period, (observed, _) in checked.items() if observed} == {"2024-02-28", "2024-02-29", "2024-03-01"}
    found = {practice: {period for period, (observed, _) in by_period(
        practice_cells(indicators, "indicator", "possible_htn", practice)).items() if observed}
        for practice in ("CF_START", "CF_INSIDE")}
    assert found == {"CF_START": set(), "CF_INSIDE": {"2024-02-28", "2024-02-29"}}


def test_value_forms_and_codes(run):
    *_, prevalence, indicators, rejects = run
    assert by_period(practice_cells(indicators, "indicator", "bp", "V_OK"))["2024-02-28"] == (1, 1)
    assert by_period(practice_cells(indicators, "indicator", "bp", "V_FORMS"))["2024-02-28"] == (0, 1)
    value_rejects = rejects[rejects["reason"].str.contains("value is not a plain decimal number")]
    assert sorted(value_rejects["value"]) == sorted(["+130", "1e2", ".5", "5."])
    assert len(rejects) == 4
    cases = {practice: by_period(practice_cells(prevalence, "condition", "htn", practice))["2024-02-29"]
             for practice in ("C_SPACE", "C_EXACT", "C_CASE", "C_BOTH")}
    assert cases == {"C_SPACE": (1, 1), "C_EXACT": (1, 1), "C_CASE": (0, 1), "C_BOTH": (0, 1)}


def test_leap_day_agrees_with_oracle(run):
    raw, cfg, today, prevalence, indicators, _ = run
    problems = compare_prevalence(prevalence, oracle_prevalence(raw, cfg, today))
    problems += compare_indicators(indicators, oracle_indicators(raw, cfg, today))
    assert not problems, "\n".join(problems)
