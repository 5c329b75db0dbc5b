"""The pipeline against the independent oracle (tests/oracle.py), row for row.

(a) the synthetic demo data (the session's demo run, 30,000 patients) through the command line;
(b) small random messy raw directories (hypothesis) through the stage functions, in process.
Counts must agree exactly, floats to 1e-6, the key sets must be equal, and the rejected rows the same.
"""
from __future__ import annotations

import os
import tempfile
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import REPO_ROOT, write_config, write_raw
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from oracle import compare_indicators, compare_prevalence, oracle_indicators, oracle_load, oracle_prevalence


def run_today() -> date:
    v = os.environ.get("PIPELINE_TODAY")
    return date.fromisoformat(v) if v else date.today()


def rejected_rows(oracle_data) -> dict[str, list[int]]:
    return {s: sorted(r for r, _ in rows) for s, rows in oracle_data.rejected.items()}


# ------------------------------------------------------------------------------------------- (a) demo data

@pytest.fixture(scope="module")
def demo_run(patient_warehouse):
    """The session's demo run (conftest `patient_warehouse`: 30,000 patients through every stage), with the day it
    took as today."""
    return patient_warehouse.raw, patient_warehouse.processed, patient_warehouse.today


def test_demo_data_agrees_with_oracle(demo_run):
    raw, processed, today = demo_run
    got = pd.read_parquet(processed / "prevalence.parquet")
    want = oracle_prevalence(raw, REPO_ROOT / "pipeline" / "default.toml", today)
    assert len(want) > 1000 and want["population"].max() > 10000
    problems = compare_prevalence(got, want)
    assert not problems, "\n".join(problems)


def test_demo_indicators_agree_with_oracle(demo_run):
    raw, processed, today = demo_run
    got = pd.read_parquet(processed / "indicators.parquet")
    want = oracle_indicators(raw, REPO_ROOT / "pipeline" / "default.toml", today)
    assert set(want["kind"]) == {"care_process", "outcome", "case_finding"} and len(want) > 1000
    problems = compare_indicators(got, want)
    assert not problems, "\n".join(problems)


def test_demo_data_rejects_agree_with_oracle(demo_run):
    raw, processed, today = demo_run
    with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
        rej = con.execute("select source, row_number from rejects").df()
    want = rejected_rows(oracle_load(raw, today))
    for source, rows in want.items():
        assert sorted(rej.loc[rej.source == source, "row_number"].tolist()) == rows, source


# ------------------------------------------------------------------------------------------- (b) messy data

PERIODS = [date(2023, 3, 31), date(2024, 3, 31)]
DEP, DEP_RES, HTN = "1001", "1002", "2001"

PRACTICES = [
    ["P1", "One", "PCNA", "Pcn A", "ICBX", "Icb X"],
    ["P2", "", "PCNA", "Pcn A", "ICBX", "Icb X"],       # an empty name falls back to the code
    ["P3", "Three", "PCNB", "Pcn B", "ICBX", "Icb X"],
    ["P4", "Four", "", "", "ICBX", "Icb X"],             # no PCN: the practice is rejected, so are its spells
    ["P1", "One again", "PCNB", "Pcn B", "ICBX", "Icb X"],  # duplicate: the first row is kept
]
DEPRIVATION = [["L1", "40", "100", "1"], ["L2", "20", "2000", "6"], ["L3", "5", "3000", "10"],
               ["LN", "30", "1500", "3"], ["L1", "1", "30000", "9"], ["L9", "", "", ""]]
NEIGHBOURHOODS = [["L1", "N1", "North"], ["L2", "N1", "North"], ["L3", "N2", ""], ["L9", "N3", "Nowhere"]]


def _iso(d: date) -> str:
    return d.isoformat()


EDGE_DATES = [_iso(p + timedelta(days=k)) for p in PERIODS for k in (-1, 0, 1)]
BAD_DATES = ["2099-01-01", "2021-02-30", "31/12/2020", "not a date", "2020-5-5x"]
plain_day = st.dates(min_value=date(1990, 1, 1), max_value=date(2025, 6, 30))
good_date = st.one_of(st.sampled_from(EDGE_DATES), plain_day.map(_iso))


def sometimes_bad(good, one_in: int = 15):
    """`good` most of the time; now and then a date the contract rejects (unparseable or after today)."""
    return st.integers(min_value=1, max_value=one_in).flatmap(
        lambda k: st.sampled_from(BAD_DATES) if k == 1 else good)


dob = sometimes_bad(st.one_of(
    st.dates(min_value=date(1920, 1, 1), max_value=date(2024, 6, 1)).map(lambda d: _iso(d.replace(day=1))),
    st.sampled_from(["2005-03-31", "2005-04-01", "2006-03-31", "2006-04-01", "2023-04-01", "2024-03-31",
                     "1933-03-01", "2022-01-01", " 1980-06-01 "]),
))
dod = st.sampled_from(["", "", "", "", "", "x"]).flatmap(lambda v: sometimes_bad(good_date) if v else st.just(""))


@st.composite
def spell(draw, pid: str):
    start = draw(st.one_of(st.sampled_from([p + timedelta(days=k) for p in PERIODS for k in (-1, 0, 1)]),
                           plain_day, st.just(date(2000, 1, 1))))
    end_kind = draw(st.sampled_from(["open"] * 4 + ["later"] * 4 + ["edge"] * 2 + ["before", "bad"]))
    end = {"open": "", "later": _iso(start + timedelta(days=draw(st.integers(0, 3000)))),
           "edge": draw(st.sampled_from(EDGE_DATES)), "before": _iso(start - timedelta(days=1)),
           "bad": draw(st.sampled_from(BAD_DATES))}[end_kind]
    start_text = draw(st.sampled_from([_iso(start)] * 20 + ["", "bad"]))
    if start_text == "bad":
        start_text = draw(st.sampled_from(BAD_DATES))
    return [
        draw(st.sampled_from([pid] * 15 + ["ghost"])),
        draw(st.sampled_from(["P1", "P2", "P3"] * 5 + [" P2 ", "P4", "PX", ""])),
        start_text,
        end,
    ]


@st.composite
def messy_raw(draw):
    n = draw(st.integers(min_value=5, max_value=40))
    patients, registrations, events = [], [], []
    # three well-formed patients, so that every dataset loads something
    for i in range(3):
        patients.append([f"ok{i}", "FMI"[i], "1970-01-01", "A", "L1", ""])
        registrations.append([f"ok{i}", f"P{i + 1}", "2000-01-01", ""])
    events.append(["ok0", DEP, "2010-01-01"])
    for i in range(n):
        pid = draw(st.sampled_from([f"p{i}"] * 30 + ["p0", " p1 ", "", "ok1"]))
        patients.append([
            pid,
            draw(st.sampled_from(["F", "M"] * 6 + ["I", "U", "f", " m ", "u", "X", ""])),
            draw(dob),
            draw(st.sampled_from(["A", "b", " C ", "D", "h", "M", "p", "R", "s", "Z", "99", "", "X"])),
            draw(st.sampled_from(["L1", "L2", "L3", "LN", "L9", "", " L1 ", "LZ"])),
            draw(dod),
        ])
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3]))):
            registrations.append(draw(spell(pid.strip())))
        for _ in range(draw(st.integers(min_value=0, max_value=4))):
            events.append([
                draw(st.sampled_from([pid.strip()] * 15 + ["ghost"])),
                draw(st.sampled_from([DEP, DEP, DEP_RES, HTN, HTN, "2002", "999", "", f" {DEP} "])),
                draw(sometimes_bad(st.one_of(st.sampled_from(EDGE_DATES + ["2010-01-01", "2018-07-01"]),
                                             plain_day.map(_iso)))),
            ])
        if draw(st.integers(min_value=1, max_value=5)) == 1:  # diagnosed and resolved on the same day
            same = draw(st.sampled_from(EDGE_DATES + ["2010-01-01"]))
            code, resolved = draw(st.sampled_from([(DEP, DEP_RES), (HTN, "2002")]))
            events += [[pid.strip(), code, same], [pid.strip(), resolved, same]]
    return {"patients": patients, "registrations": registrations, "events": events}


def _pipeline_in_process(raw: Path, work: Path, cfg_path: Path, table: str = "prevalence") -> tuple[pd.DataFrame, pd.DataFrame]:
    from pipeline.analyse import analyse
    from pipeline.config import load_config
    from pipeline.ingest import ingest
    from pipeline.transform import transform
    from pipeline.warehouse import connect, load_macros

    cfg = load_config(cfg_path)
    con = connect()
    try:
        load_macros(con)
        ingest(raw, work, cfg, con)
        transform(work, cfg, con)
        analyse(work, cfg, con)
        return con.execute(f"select * from {table}").df(), con.execute("select source, row_number from rejects").df()
    finally:
        con.close()


# no shrinking phase: each example runs the whole pipeline, and shrinking could take minutes
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables=messy_raw())
def test_messy_data_agrees_with_oracle(tables):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = write_raw(tmp / "raw", {
            **tables, "practices": PRACTICES, "deprivation": DEPRIVATION, "neighbourhoods": NEIGHBOURHOODS,
            "codelists/dep": [DEP], "codelists/dep_res": [DEP_RES], "codelists/htn": [HTN, "2002"],
        })
        cfg = write_config(tmp / "config.toml", [p.isoformat() for p in PERIODS], [
            {"id": "dep", "codelist": "codelists/dep.csv", "resolved_codelist": "codelists/dep_res.csv", "min_age": 18},
            {"id": "htn", "codelist": "codelists/htn.csv", "min_age": 0},
        ])
        today = run_today()
        got, rejects = _pipeline_in_process(raw, tmp / "processed", cfg)
        want = oracle_prevalence(raw, cfg, today)
        problems = compare_prevalence(got, want)
        assert not problems, "\n".join(problems)
        for source, rows in rejected_rows(oracle_load(raw, today)).items():
            assert sorted(rejects.loc[rejects.source == source, "row_number"].tolist()) == rows, source


# ------------------------------------------------------------------------------------------- (c) messy readings

SYS, DIA, CHECK, DRUG = "3001", "3002", "3003", "3004"
VALUES = ["120", "120", "130", "140", "140.0", "141", "90", "80", "91", "89.5", "150", "-1.5", "", "", " 135 ",
          "142 mmHg", "1,234", "1e3", ".5", "abc"]
INDICATOR_CONFIG = """
[[indicators]]
id = "bp"
kind = "outcome"
denominator = "htn"
min_age = 18
max_age = 79
criteria = [{ codelist = "codelists/sys.csv", max_value = 140 }, { codelist = "codelists/dia.csv", max_value = 90 }]

[[indicators]]
id = "bp_old"
kind = "outcome"
denominator = "htn"
min_age = 80
months = 6
criteria = [{ codelist = "codelists/sys.csv", min_value = 100, max_value = 150 }]

[[indicators]]
id = "check"
kind = "care_process"
denominator = "dep"
codelist = "codelists/check.csv"

[[indicators]]
id = "possible_htn"
kind = "case_finding"
denominator = "htn"
min_age = 18
months = 24
evidence_codelist = "codelists/sys.csv"
min_value = 140
min_count = 2

[[indicators]]
id = "possible_dep"
kind = "case_finding"
denominator = "dep"
max_age = 64
evidence_codelist = "codelists/drug.csv"
"""


@st.composite
def messy_readings(draw):
    tables = draw(messy_raw())
    ids = ["ok0", "ok1", "ok2"] + sorted({row[0].strip() for row in tables["patients"]})[:4] + ["ghost"]
    events = [row + [""] for row in tables["events"]]
    # always something in every numerator: ok1 on the hypertension register with controlled readings, ok2 with raised
    # readings on two dates and no diagnosis, ok0 (depression) checked; random readings below may change that
    events += [["ok1", HTN, "2015-01-01", ""], ["ok1", SYS, "2023-01-10", "130"], ["ok1", DIA, "2023-01-10", "80"],
               ["ok1", SYS, "2024-01-10", "130"], ["ok1", DIA, "2024-01-10", "80"], ["ok0", CHECK, "2024-01-10", ""],
               ["ok2", SYS, "2022-11-01", "150"], ["ok2", SYS, "2023-02-01", "145"], ["ok2", SYS, "2024-02-01", "141"],
               ["ok2", DRUG, "2023-02-01", ""], ["ok2", DRUG, "2023-03-01", ""]]
    reading_day = st.one_of(st.sampled_from(EDGE_DATES + ["2022-03-31", "2022-04-01", "2023-09-30", "2023-10-01",
                                                          "2022-09-30", "2022-10-01"]),
                            st.dates(min_value=date(2022, 10, 1), max_value=date(2024, 3, 31)).map(_iso),
                            st.dates(min_value=date(2021, 1, 1), max_value=date(2024, 6, 30)).map(_iso))
    for _ in range(draw(st.integers(min_value=20, max_value=120))):
        pid = draw(st.sampled_from(ids))
        day = draw(sometimes_bad(reading_day, one_in=30))
        code = draw(st.sampled_from([SYS, SYS, SYS, DIA, DIA, CHECK, DRUG, DRUG, HTN, DEP]))
        events.append([pid, code, day, draw(st.sampled_from(VALUES))])
        if draw(st.integers(min_value=1, max_value=4)) == 1:   # a second reading the same day
            events.append([pid, code, day, draw(st.sampled_from(VALUES))])
    tables["events"] = (["patient_id", "code", "date", "value"], events)
    return tables


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables=messy_readings())
def test_messy_readings_indicators_agree_with_oracle(tables):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = write_raw(tmp / "raw", {
            **tables, "practices": PRACTICES, "deprivation": DEPRIVATION, "neighbourhoods": NEIGHBOURHOODS,
            "codelists/dep": [DEP], "codelists/dep_res": [DEP_RES], "codelists/htn": [HTN, "2002"],
            "codelists/sys": [SYS], "codelists/dia": [DIA], "codelists/check": [CHECK], "codelists/drug": [DRUG],
        })
        cfg = write_config(tmp / "config.toml", [p.isoformat() for p in PERIODS], [
            {"id": "dep", "codelist": "codelists/dep.csv", "resolved_codelist": "codelists/dep_res.csv", "min_age": 18},
            {"id": "htn", "codelist": "codelists/htn.csv", "min_age": 0},
        ])
        cfg.write_text(cfg.read_text(encoding="utf-8") + INDICATOR_CONFIG, encoding="utf-8")
        today = run_today()
        got, rejects = _pipeline_in_process(raw, tmp / "processed", cfg, table="indicators")
        want = oracle_indicators(raw, cfg, today)
        problems = compare_indicators(got, want)
        assert not problems, "\n".join(problems)
        for source, rows in rejected_rows(oracle_load(raw, today)).items():
            assert sorted(rejects.loc[rejects.source == source, "row_number"].tolist()) == rows, source
