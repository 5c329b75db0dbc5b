"""The definitions contract, edge case by edge case, through the real command line.

One tiny raw directory holds every edge case, each at its own practice, so one pipeline run
(`python -m pipeline run`) answers them all: the counts asked for are exact and worked out by hand.
A second part checks rejections (`rejects`, `load_summary`) and the missing-column error.
"""
from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest
from conftest import RAW_COLUMNS, run_cli, run_pipeline, write_config, write_raw

D1, D2 = "2024-03-31", "2025-03-31"
P1, P2 = date(2024, 3, 31), date(2025, 3, 31)
DEP, DEP_RES, HTN = "1001", "1002", "2001"  # SNOMED-like codes: depression, depression resolved, hypertension

# LSOA -> decile; LMISS is in neighbourhoods but not in deprivation, LX is in neither
DEPRIVATION = [["L1", "50.1", "10", "1"], ["L2", "40.2", "4000", "2"], ["L3", "30.3", "7000", "3"],
               ["LN3", "20.0", "12000", "4"], ["L5", "15.5", "16000", "5"], ["L10", "2.1", "32000", "10"]]
NEIGHBOURHOODS = [["L1", "N1", "Riverside"], ["L2", "N1", "Riverside"], ["L3", "N1", "Riverside"],
                  ["L5", "N1", "Riverside"], ["L10", "N1", "Riverside"], ["LN3", "N3", "Hilltop"],
                  ["LMISS", "N2", "Old Town"]]

PATIENTS: list[list] = []
REGISTRATIONS: list[list] = []
EVENTS: list[list] = []
PRACTICE_CODES: list[str] = []


def pt(pid, practice, sex="F", dob="1980-01-01", eth="A", lsoa="L5", dod="", reg_from="2010-01-01", reg_to="",
       events=()):
    PATIENTS.append([pid, sex, dob, eth, lsoa, dod])
    if practice:
        for prac in ([practice] if isinstance(practice, str) else practice):
            code, f, t = (prac, reg_from, reg_to) if isinstance(prac, str) else prac
            REGISTRATIONS.append([pid, code, f, t])
            if code not in PRACTICE_CODES:
                PRACTICE_CODES.append(code)
    EVENTS.extend([pid, c, d] for c, d in events)


pt("p_age_in", "AGEIN", sex="M", dob="2006-03-31", events=[(DEP, "2023-01-01")])      # 18 on D1: in
pt("p_age_out", "AGEOUT", sex="M", dob="2006-04-01", events=[(DEP, "2023-01-01"), (HTN, "2023-01-01")])  # 17: out
pt("p_spell_end", "SPELLEND", reg_to=D1)                                               # spell ends on D1: in
pt("p_spell_pre", "SPELLPRE", reg_to="2024-03-30")                                     # ended the day before: out
pt("p_reg_on", "REGFROM", reg_from=D1)                                                 # registered on D1: in
pt("p_reg_after", "REGAFT", reg_from="2024-04-01")                                     # registered after D1: out
pt("p_death_on", "DEATHON", dod=D1)                                                    # died on D1: out
pt("p_death_after", "DEATHAFT", dod="2024-04-01")                                      # died the day after: in
pt("p_res_same", "RESSAME", events=[(DEP, "2020-01-01"), (DEP_RES, "2020-01-01")])      # same-day resolution
pt("p_rediag", "REDIAG", events=[(DEP, "2019-01-01"), (DEP_RES, "2020-01-01"), (DEP, "2021-01-01")])
pt("p_res_on", "RESON", events=[(DEP, "2019-01-01"), (DEP_RES, D1)])                   # resolved on D1
pt("p_res_after", "RESAFT", events=[(DEP, "2019-01-01"), (DEP_RES, "2024-04-01")])     # resolved after D1
pt("p_diag_after", "DIAGAFT", events=[(DEP, "2024-04-01")])                            # diagnosed after D1
pt("p_diag_on", "DIAGON", events=[(DEP, D1)])                                          # diagnosed on D1
pt("p_overlap", [("OVA", "2010-01-01", ""), ("OVB", "2015-01-01", ""), ("OVC", "2020-01-01", "2023-01-01")],
   events=[(DEP, "2020-06-01")])                                                       # counted once, at OVB
pt("p_tie", [("TIEA", "2015-01-01", ""), ("TIEB", "2015-01-01", "")])                  # tie -> greatest code TIEB
pt("p_born_after", "BORNAFT", dob="2024-04-01", reg_from="2024-01-01")                 # born after D1
pt("p_sex_i", "SEXI", sex="I", dob="1950-01-01", events=[(DEP, "2020-01-01")])         # stratum I|70-74: rate 1
pt("p_sex_u", "SEXU", sex=" u ", dob="1950-01-01")                                     # stratum U|70-74: rate 0
pt("p_sex_f70", "SEXF70", sex="F", dob="1950-01-01")                                   # stratum F|70-74: rate 0
pt("p_sex_m70", "SEXM70", sex="m", dob="1950-01-01", events=[(DEP, "2020-01-01")])      # stratum M|70-74: rate 1
ETHNICITIES = [" a ", "b", "C", "d", " h", "j", "m", "p ", "n", "r", "s", "z", "99", "", "X"]
for i, e in enumerate(ETHNICITIES):
    pt(f"p_eth_{i}", "ETH", eth=e)
IMD_LSOAS = ["L1", "L2", "L3", "LN3", "L10", "LMISS", "", " LX "]
for i, lsoa in enumerate(IMD_LSOAS):
    pt(f"p_imd_{i}", "IMD", lsoa=lsoa)
pt("p_dup", "DUP", sex="F")
pt("p_rej_reg", None)          # its only registration (below) is rejected: in no population
pt("p_ev_rej", "EVREJ")        # its events (below) are rejected: never a case
N_GOOD = {"patients": len(PATIENTS), "registrations": len(REGISTRATIONS), "events": len(EVENTS)}

# Rows that break the input contract, with the column their reason must name.
BAD = {
    "patients": [
        (["", "F", "1980-01-01", "A", "L5", ""], "patient_id"),
        (["p_dup", "M", "1970-01-01", "A", "L5", ""], "patient_id"),          # duplicate: the first row is kept
        (["p_bad_sex", "X", "1980-01-01", "A", "L5", ""], "sex"),
        (["p_no_sex", "", "1980-01-01", "A", "L5", ""], "sex"),
        (["p_bad_dob", "F", "1980-13-01", "A", "L5", ""], "date_of_birth"),
        (["p_future_dob", "F", "2099-01-01", "A", "L5", ""], "date_of_birth"),
        (["p_bad_dod", "F", "1980-01-01", "A", "L5", "notadate"], "date_of_death"),
    ],
    "registrations": [
        (["NOPE", "AGEIN", "2010-01-01", ""], "patient_id"),
        (["p_bad_sex", "AGEIN", "2010-01-01", ""], "patient_id"),            # its patients row was rejected
        (["p_eth_0", "ZZZ", "2010-01-01", ""], "practice_code"),
        (["p_rej_reg", "REJ", "2020-01-01", "2019-01-01"], "registered_to"),  # ends before it starts
        (["p_eth_1", "ETH", "", ""], "registered_from"),
        (["p_eth_2", "ETH", "2024/01/01", ""], "registered_from"),
        (["p_eth_3", "ETH", "2010-01-01", "2099-01-01"], "registered_to"),
    ],
    "events": [
        (["p_eth_0", "", "2020-01-01"], "code"),
        (["p_ev_rej", DEP, ""], "date"),
        (["p_ev_rej", DEP, "2020-02-30"], "date"),
        (["p_ev_rej", DEP, "2099-01-01"], "date"),
        (["NOPE", DEP, "2020-01-01"], "patient_id"),
    ],
}
PRACTICE_CODES.append("REJ")
PRACTICES = [[c, f"Practice {c}", "PCN2" if c[:2] in ("OV", "TI") else "PCN1",
              "Pcn Two" if c[:2] in ("OV", "TI") else "Pcn One", "ICB1", "Icb One"] for c in PRACTICE_CODES]

# Depression (18+, resolved codelist) on D1, practice -> (population, observed); practices not listed have no row.
DEP_D1 = {
    "AGEIN": (1, 1), "SPELLEND": (1, 0), "REGFROM": (1, 0), "DEATHAFT": (1, 0), "RESSAME": (1, 0),
    "REDIAG": (1, 1), "RESON": (1, 0), "RESAFT": (1, 1), "DIAGAFT": (1, 0), "DIAGON": (1, 1), "OVB": (1, 1),
    "TIEB": (1, 0), "SEXI": (1, 1), "SEXU": (1, 0), "SEXF70": (1, 0), "SEXM70": (1, 1), "ETH": (15, 0),
    "IMD": (8, 0), "DUP": (1, 0), "EVREJ": (1, 0),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("definitions")
    tables = {
        "patients": PATIENTS + [r for r, _ in BAD["patients"]],
        "registrations": REGISTRATIONS + [r for r, _ in BAD["registrations"]],
        "events": EVENTS + [r for r, _ in BAD["events"]],
        "practices": PRACTICES, "deprivation": DEPRIVATION, "neighbourhoods": NEIGHBOURHOODS,
        "codelists/dep": [DEP], "codelists/dep_resolved": [DEP_RES], "codelists/htn": [HTN],
    }
    raw = write_raw(tmp / "raw", tables)
    cfg = write_config(tmp / "config.toml", [D1, D2], [
        {"id": "dep", "label": "Depression", "codelist": "codelists/dep.csv",
         "resolved_codelist": "codelists/dep_resolved.csv", "min_age": 18},
        {"id": "htn", "label": "Hypertension", "codelist": "codelists/htn.csv", "min_age": 0},
    ], input={"max_reject_share": 1.0})  # the planted bad rows are a large share of these few
    processed = tmp / "processed"
    rc, out, err = run_pipeline(raw, processed, tmp / "reports", cfg, stages=("run",))  # all stages, PDFs too
    assert rc == 0, err[-3000:]
    prev = pd.read_parquet(processed / "prevalence.parquet")
    prev["period"] = pd.to_datetime(prev["period"]).dt.date
    with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
        rejects = con.execute("select source, row_number, reason from rejects").df()
        summary = con.execute("select source, rows_read, rows_loaded, rows_rejected from load_summary").df()
    return prev, rejects, summary, raw, cfg


def cells(prev, period, condition, area_type, group_type="all"):
    sel = prev[(prev.period == period) & (prev.condition == condition) & (prev.area_type == area_type)
               & (prev.group_type == group_type)]
    assert not sel.duplicated(["area_code", "group_value"]).any()
    return {(a, g): r for a, g, r in zip(sel.area_code, sel.group_value, sel.itertuples(), strict=False)}


def practice_counts(prev, period, condition):
    return {a: (int(r.population), int(r.observed)) for (a, _), r in cells(prev, period, condition, "practice").items()}


def test_practice_counts_on_d1(run):
    prev, *_ = run
    assert practice_counts(prev, P1, "dep") == DEP_D1


def test_totals_on_d1(run):
    prev, *_ = run
    pop, obs = sum(p for p, _ in DEP_D1.values()), sum(o for _, o in DEP_D1.values())
    assert (pop, obs) == (41, 7)
    icb = cells(prev, P1, "dep", "icb")
    assert list(icb) == [("ICB1", "All")]
    r = icb[("ICB1", "All")]
    assert (r.population, r.observed) == (41, 7)
    assert r.expected == pytest.approx(7.0)  # internal reference: the whole dataset's expected = observed
    assert r.ratio == pytest.approx(1.0)
    pcn = {a: (r.population, r.observed) for (a, _), r in cells(prev, P1, "dep", "pcn").items()}
    assert pcn == {"PCN1": (39, 6), "PCN2": (2, 1)}  # the overlapping and tied spells count once each


@pytest.mark.parametrize("practice, present", [
    ("AGEIN", True), ("AGEOUT", False), ("SPELLEND", True), ("SPELLPRE", False), ("REGFROM", True),
    ("REGAFT", False), ("DEATHON", False), ("DEATHAFT", True), ("OVA", False), ("OVB", True), ("OVC", False),
    ("TIEA", False), ("TIEB", True), ("BORNAFT", False), ("REJ", False),
])
def test_population_edges(run, practice, present):
    prev, *_ = run
    assert (practice in practice_counts(prev, P1, "dep")) is present


@pytest.mark.parametrize("practice, observed", [
    ("RESSAME", 0), ("REDIAG", 1), ("RESON", 0), ("RESAFT", 1), ("DIAGAFT", 0), ("DIAGON", 1), ("EVREJ", 0),
])
def test_case_edges(run, practice, observed):
    prev, *_ = run
    assert practice_counts(prev, P1, "dep")[practice] == (1, observed)


def test_second_period(run):
    prev, *_ = run
    dep2 = practice_counts(prev, P2, "dep")
    assert dep2["REGAFT"] == (1, 0)       # registered since
    assert "DEATHAFT" not in dep2         # died since
    assert dep2["RESAFT"] == (1, 0)       # resolved since
    assert dep2["DIAGAFT"] == (1, 1)      # diagnosed since
    assert dep2["AGEOUT"] == (1, 1)       # 18 since, diagnosed before
    assert "SPELLEND" not in dep2
    htn1, htn2 = practice_counts(prev, P1, "htn"), practice_counts(prev, P2, "htn")
    assert htn1["AGEOUT"] == (1, 1)       # no age limit, no resolved codelist
    assert "BORNAFT" not in htn1 and htn2["BORNAFT"] == (1, 0)
    assert cells(prev, P2, "htn", "practice", "age_band")[("BORNAFT", "0-4")].population == 1


def test_sex_groups_and_own_strata(run):
    prev, *_ = run
    sex = cells(prev, P1, "dep", "practice", "sex")
    assert {k for k in sex if k[0] in ("SEXI", "SEXU", "SEXF70", "SEXM70")} == {
        ("SEXI", "Unknown"), ("SEXU", "Unknown"), ("SEXF70", "F"), ("SEXM70", "M")}
    # I and U are standardised in strata of their own: I|70-74 has rate 1, U|70-74 rate 0
    assert sex[("SEXI", "Unknown")].expected == pytest.approx(1.0)
    assert sex[("SEXU", "Unknown")].expected == pytest.approx(0.0, abs=1e-12)
    assert sex[("SEXM70", "M")].expected == pytest.approx(1.0)
    assert sex[("SEXF70", "F")].expected == pytest.approx(0.0, abs=1e-12)
    allrow = cells(prev, P1, "dep", "practice")[("SEXI", "All")]
    assert allrow.expected == pytest.approx(1.0) and allrow.ratio == pytest.approx(1.0)
    icb = {g: (r.population, r.observed) for (_, g), r in cells(prev, P1, "dep", "icb", "sex").items()}
    assert icb["Unknown"] == (2, 1)
    # a duplicated patient_id keeps its first row (F), not the later one (M)
    assert [g for (a, g) in cells(prev, P1, "dep", "practice", "sex") if a == "DUP"] == ["F"]


def test_ethnicity_mapping(run):
    prev, *_ = run
    eth = {g: r.population for (a, g), r in cells(prev, P1, "dep", "practice", "ethnicity").items() if a == "ETH"}
    assert eth == {"White": 3, "Mixed": 1, "Asian": 2, "Black": 3, "Other": 2, "Unknown": 4}


def test_imd_quintiles(run):
    prev, *_ = run
    imd = {g: r.population for (a, g), r in cells(prev, P1, "dep", "practice", "imd_quintile").items() if a == "IMD"}
    assert imd == {"1": 2, "2": 2, "5": 1, "Unknown": 3}  # LMISS, empty and unknown LSOAs -> Unknown


def test_neighbourhoods(run):
    prev, *_ = run
    nb = cells(prev, P1, "dep", "neighbourhood")
    got = {a: (r.population, r.area_name) for (a, _), r in nb.items()}
    # everyone is in N1 but two IMD patients (LN3 -> N3, LMISS -> N2) and two in no neighbourhood (empty, LX)
    assert got == {"N1": (41 - 4, "Riverside"), "N2": (1, "Old Town"), "N3": (1, "Hilltop")}


def test_age_bands(run):
    prev, *_ = run
    ab = {g: r.population for (_, g), r in cells(prev, P1, "dep", "icb", "age_band").items()}
    assert ab == {"15-19": 1, "70-74": 4, "40-44": 36}
    assert set(prev.loc[prev.group_type == "age_band", "group_value"]) <= (
        {f"{a}-{a + 4}" for a in range(0, 90, 5)} | {"90+"})


def test_rejects_name_the_column(run):
    _, rejects, *_ = run
    for source, bad in BAD.items():
        got = rejects[rejects.source == source].set_index("row_number")["reason"]
        want_rows = [N_GOOD[source] + i + 1 for i in range(len(bad))]
        assert sorted(got.index) == want_rows, source
        for row, (_, column) in zip(want_rows, bad, strict=False):
            assert column in got.loc[row], (source, row, got.loc[row])


def test_load_summary_reconciles(run):
    _, rejects, summary, *_ = run
    s = summary.set_index("source")
    assert {"patients", "registrations", "events", "practices", "deprivation", "neighbourhoods"} <= set(s.index)
    assert (s.rows_read == s.rows_loaded + s.rows_rejected).all()
    for source, bad in BAD.items():
        assert s.loc[source, "rows_read"] == N_GOOD[source] + len(bad)
        assert s.loc[source, "rows_rejected"] == len(bad)
    assert s.loc["practices", "rows_read"] == len(PRACTICES)
    counts = rejects.groupby("source").size()
    for source in s.index:
        assert s.loc[source, "rows_rejected"] == counts.get(source, 0)


@pytest.mark.parametrize("stem, column", [("patients", "sex"), ("registrations", "registered_from"),
                                          ("events", "code"), ("practices", "icb_code")])
def test_missing_required_column(tmp_path, stem, column):
    tables = {
        "patients": PATIENTS[:3], "registrations": REGISTRATIONS[:3], "events": EVENTS[:3],
        "practices": PRACTICES, "deprivation": DEPRIVATION,
        "codelists/dep": [DEP], "codelists/dep_resolved": [DEP_RES], "codelists/htn": [HTN],
    }
    cols = [c for c in RAW_COLUMNS[stem] if c != column]
    keep = [RAW_COLUMNS[stem].index(c) for c in cols]
    tables[stem] = (cols, [[r[i] for i in keep] for r in tables[stem]])
    raw = write_raw(tmp_path / "raw", tables)
    cfg = write_config(tmp_path / "config.toml", [D1], [
        {"id": "dep", "codelist": "codelists/dep.csv", "resolved_codelist": "codelists/dep_resolved.csv", "min_age": 18}])
    rc, out, err = run_cli("ingest", "--raw", raw, "--processed", tmp_path / "p", "--reports", tmp_path / "r",
                           "--config", cfg)
    assert rc != 0
    assert "Traceback" not in err and "Traceback" not in out
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "no message on stderr"
    msg = lines[-1]
    assert stem in msg and column in msg, msg
    assert str(tmp_path) not in msg  # no local paths


def test_oracle_agrees(run):
    """The independent oracle (tests/oracle.py) gives the same table, every column, on these edge cases."""
    from oracle import compare_prevalence, oracle_prevalence

    prev, _, _, raw, cfg = run
    problems = compare_prevalence(prev, oracle_prevalence(raw, cfg, date.today()))
    assert not problems, "\n".join(problems)
