"""Indicator definitions at their edges, through the command line (DESIGN.md, Definitions: Indicators), and the
pipeline against the oracle on the same hand-made extract.

One extract, reference date 2024-03-31, 12-month window (2023-03-31, 2024-03-31]:
- a reading exactly on the window's start (outside) and one exactly on its end (inside);
- two readings on the latest date (the lowest counts);
- a value with text in it (the whole event row is rejected, with a reason);
- a patient who leaves the register inside the window (resolved code: out of the register's indicators, into
  the case-finding denominator);
- ages on the boundary of 18-79 and 80+.
"""
from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pandas as pd
import pytest
from conftest import run_pipeline, write_raw
from oracle import compare_indicators, oracle_indicators

from pipeline.warehouse import build, load_macros

D = "2024-03-31"
SYS, DIA, HTN, HTN_RES, CHECK = "72313002", "1091811000000102", "38341003", "162659009", "1366341000000100"

CONFIG = f'''
periods = ["{D}"]

[[conditions]]
id = "htn"
label = "Hypertension"
codelist = "codelists/htn.csv"
resolved_codelist = "codelists/htn_res.csv"
min_age = 18

[[indicators]]
id = "bp"
label = "BP controlled 18-79"
kind = "outcome"
denominator = "htn"
min_age = 18
max_age = 79
criteria = [{{ codelist = "codelists/sys.csv", max_value = 140 }}, {{ codelist = "codelists/dia.csv", max_value = 90 }}]

[[indicators]]
id = "bp80"
label = "BP controlled 80+"
kind = "outcome"
denominator = "htn"
min_age = 80
criteria = [{{ codelist = "codelists/sys.csv", max_value = 150 }}, {{ codelist = "codelists/dia.csv", max_value = 90 }}]

[[indicators]]
id = "check"
label = "Checked"
kind = "care_process"
denominator = "htn"
codelist = "codelists/check.csv"

[[indicators]]
id = "possible_htn"
label = "Possible hypertension"
kind = "case_finding"
denominator = "htn"
min_age = 18
months = 12
evidence_codelist = "codelists/sys.csv"
min_value = 140
min_count = 2
'''

# patient: (date_of_birth, events as (code, date, value))
PEOPLE = {
    # on the register; readings exactly on the window start (high, ignored) and end (controlled): met
    "edge_end": ("1960-01-01", [(HTN, "2010-01-01", ""), (SYS, "2023-03-31", "180"), (DIA, "2023-03-31", "100"),
                                (SYS, D, "130"), (DIA, D, "80"), (CHECK, "2023-03-31", "")]),
    # only a reading on the window start: no reading in the window, not met (stays in the denominator)
    "edge_start": ("1960-01-01", [(HTN, "2010-01-01", ""), (SYS, "2023-03-31", "120"), (DIA, "2023-03-31", "70"),
                                  (CHECK, "2023-04-01", "")]),
    # two systolic readings on the latest date: the lowest (135) counts; diastolic from an earlier date
    "two_same_day": ("1970-05-01", [(HTN, "2015-01-01", ""), (SYS, "2024-01-10", "150"), (SYS, "2024-01-10", "135"),
                                    (DIA, "2023-06-01", "85"), (SYS, "2023-05-01", "120")]),
    # latest systolic too high although an earlier one was fine: not met
    "latest_high": ("1970-05-01", [(HTN, "2015-01-01", ""), (SYS, "2023-05-01", "120"), (SYS, "2024-02-01", "141"),
                                   (DIA, "2024-02-01", "90")]),
    # a value with text: that row is rejected, so the earlier, controlled reading is the latest
    "text_value": ("1970-05-01", [(HTN, "2015-01-01", ""), (SYS, "2023-09-01", "128"), (DIA, "2023-09-01", "88"),
                                  (SYS, "2024-03-01", "142 mmHg"), (DIA, "2024-03-01", "1,234")]),
    # leaves the register inside the window (resolved): out of bp/check, into possible_htn with two high readings
    "resolved": ("1965-01-01", [(HTN, "2012-01-01", ""), (HTN_RES, "2023-10-01", ""), (SYS, "2023-11-01", "150"),
                                (SYS, "2024-01-01", "145"), (DIA, "2024-01-01", "80")]),
    # not on the register: two high readings on one date only count once (min_count 2 not reached)
    "one_date": ("1980-01-01", [(SYS, "2024-01-01", "150"), (SYS, "2024-01-01", "160")]),
    # not on the register: two dates, one of them below min_value and one without a value: not enough
    "low_and_empty": ("1980-01-01", [(SYS, "2024-01-01", "150"), (SYS, "2024-02-01", "139.9"), (SYS, "2024-03-01", "")]),
    # not on the register: exactly min_value on two dates counts (bounds are inclusive)
    "at_bound": ("1980-01-01", [(SYS, "2023-06-01", "140"), (SYS, "2024-03-31", "140.0")]),
    # 79 on the date (80 on 1 April): in bp (18-79), met at 140/90 exactly (inclusive)
    "age_79": ("1944-04-01", [(HTN, "2000-01-01", ""), (SYS, "2024-03-01", "140"), (DIA, "2024-03-01", "90")]),
    # 80 on the date: in bp80 (150/90), met at 148/90
    "age_80": ("1944-03-01", [(HTN, "2000-01-01", ""), (SYS, "2024-03-01", "148"), (DIA, "2024-03-01", "90")]),
    # 17 on the date: in no denominator
    "age_17": ("2006-04-01", [(HTN, "2020-01-01", ""), (SYS, "2024-03-01", "120"), (DIA, "2024-03-01", "70")]),
    # 18 on the date, not on the register: in possible_htn's denominator, high readings on two dates
    "age_18": ("2006-03-01", [(SYS, "2024-03-01", "150"), (SYS, "2024-03-02", "-1.5")]),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("indicator_edges")
    patients, registrations, events = [], [], []
    for pid, (dob, evs) in PEOPLE.items():
        patients.append([pid, "F", dob, "A", "L1", ""])
        registrations.append([pid, "P1", "2000-01-01", ""])
        events += [[pid, code, date, value] for code, date, value in evs]
    raw = write_raw(tmp / "raw", {
        "patients": patients, "registrations": registrations,
        "events": (["patient_id", "code", "date", "value"], events),
        "practices": [["P1", "One", "PCN1", "Pcn", "ICB1", "Icb"]],
        "deprivation": [["L1", "40", "100", "1"]],
        "codelists/htn": [HTN], "codelists/htn_res": [HTN_RES], "codelists/sys": [SYS], "codelists/dia": [DIA],
        "codelists/check": [CHECK],
    })
    cfg = tmp / "config.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    today = "2026-01-01"
    rc, _, err = run_pipeline(raw, tmp / "processed", tmp / "reports", cfg, env={"PIPELINE_TODAY": today})
    assert rc == 0, err[-3000:]
    # the transform counts the denominators without listing them: listed here by the check model
    shutil.copyfile(tmp / "processed" / "warehouse.duckdb", tmp / "copy.duckdb")
    with duckdb.connect(str(tmp / "copy.duckdb")) as con:
        load_macros(con)
        build(con, "checks/int_indicator_denominators", view=True)
        numerators = con.execute("""
            select indicator, patient_id, 'numerator' as part from int_indicator_outcome
            union all select indicator, patient_id, 'numerator' from int_indicator_care_process
            union all select indicator, patient_id, 'numerator' from int_indicator_case_finding
            union all select indicator, patient_id, 'denominator' from int_indicator_denominators""").df()
        rejects = con.execute("select * from rejects where source = 'events'").df()
    table = pd.read_parquet(tmp / "processed" / "indicators.parquet")
    return raw, cfg, dt.date.fromisoformat(today), numerators, rejects, table


def _ids(numerators: pd.DataFrame, indicator: str, part: str) -> set[str]:
    """Denominator patients, or numerator patients (those who meet the rule and are in the denominator)."""
    def of(which):
        m = numerators[(numerators["indicator"] == indicator) & (numerators["part"] == which)]
        return set(m["patient_id"])
    return of("denominator") if part == "denominator" else of("numerator") & of("denominator")


def test_outcome_edges(run):
    *_, numerators, _, _ = run
    assert _ids(numerators, "bp", "denominator") == {"edge_end", "edge_start", "two_same_day", "latest_high",
                                                     "text_value", "age_79"}
    assert _ids(numerators, "bp", "numerator") == {"edge_end", "two_same_day", "text_value", "age_79"}
    assert _ids(numerators, "bp80", "denominator") == {"age_80"}
    assert _ids(numerators, "bp80", "numerator") == {"age_80"}


def test_care_process_window_start_is_outside(run):
    *_, numerators, _, _ = run
    assert "edge_start" in _ids(numerators, "check", "numerator")       # 1 April 2023: inside
    assert "edge_end" not in _ids(numerators, "check", "numerator")     # 31 March 2023: the start, outside
    assert "age_17" not in _ids(numerators, "check", "denominator")     # the register's min_age (18) applies


def test_case_finding_edges(run):
    *_, numerators, _, _ = run
    denominator = _ids(numerators, "possible_htn", "denominator")
    assert {"resolved", "one_date", "low_and_empty", "at_bound", "age_18"} <= denominator
    assert not denominator & {"edge_end", "age_79", "age_80", "age_17"}
    assert _ids(numerators, "possible_htn", "numerator") == {"resolved", "at_bound"}


def test_value_with_text_rejects_the_row(run):
    *_, rejects, _ = run
    assert len(rejects) == 2
    assert rejects["reason"].str.contains("value is not a plain decimal number").all()
    assert set(rejects["value"]) == {"142 mmHg", "1,234"}


def test_edges_agree_with_oracle(run):
    raw, cfg, today, *_, table = run
    want = oracle_indicators(raw, cfg, today)
    problems = compare_indicators(table, want)
    assert not problems, "\n".join(problems)
    icb = table[(table["area_type"] == "icb") & (table["group_type"] == "all")].set_index("indicator")
    assert icb.loc["bp", ["observed", "population"]].tolist() == [4, 6]
    assert icb.loc["possible_htn", "kind"] == "case_finding"


def test_events_without_a_value_column_still_load(tmp_path):
    raw = write_raw(tmp_path / "raw", {
        "patients": [["p1", "F", "1960-01-01", "A", "L1", ""]], "registrations": [["p1", "P1", "2000-01-01", ""]],
        "events": [["p1", HTN, "2010-01-01"], ["p1", CHECK, "2024-01-01"]],
        "practices": [["P1", "One", "PCN1", "Pcn", "ICB1", "Icb"]], "deprivation": [["L1", "40", "100", "1"]],
        "codelists/htn": [HTN], "codelists/htn_res": [HTN_RES], "codelists/sys": [SYS], "codelists/dia": [DIA],
        "codelists/check": [CHECK],
    })
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    rc, _, err = run_pipeline(raw, tmp_path / "processed", tmp_path / "reports", cfg, env={"PIPELINE_TODAY": "2026-01-01"})
    assert rc == 0, err[-3000:]
    table = pd.read_parquet(tmp_path / "processed" / "indicators.parquet")
    icb = table[(table["area_type"] == "icb") & (table["group_type"] == "all")].set_index("indicator")
    assert icb.loc["check", ["observed", "population"]].tolist() == [1, 1]
    assert icb.loc["bp", ["observed", "population"]].tolist() == [0, 1]   # no reading: not met
