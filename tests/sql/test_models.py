"""SQL models: given rows -> expected rows, on an in-memory DuckDB (no files, no CLI)."""
from __future__ import annotations

import datetime as dt
import functools

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.warehouse import build

D = dt.date


def table(con, name: str, rows: list[dict], columns: list[str]) -> None:
    df = pd.DataFrame(rows, columns=columns)
    con.register(f"{name}_df", df)
    con.execute(f"create or replace table {name} as select * from {name}_df")


def raw(con, stem: str, rows: list[dict], columns: list[str]) -> None:
    df = pd.DataFrame(rows, columns=columns).astype("string")
    df["_row_number"] = range(1, len(df) + 1)
    con.register(f"raw_{stem}", df)


def test_stg_patients_trims_uppercases_and_rejects(con):
    cols = ["patient_id", "sex", "date_of_birth", "ethnicity", "lsoa_code", "date_of_death"]
    raw(con, "patients", [
        dict(patient_id=" p1 ", sex=" f", date_of_birth="1980-01-01", ethnicity=" m ", lsoa_code=" ", date_of_death=""),
        dict(patient_id="p1", sex="F", date_of_birth="1980-01-01", ethnicity="A", lsoa_code="L1", date_of_death=""),
        dict(patient_id="", sex="F", date_of_birth="1980-01-01", ethnicity="A", lsoa_code="L1", date_of_death=""),
        dict(patient_id="p3", sex="Q", date_of_birth="1980-02-30", ethnicity="", lsoa_code="", date_of_death="2999-01-01"),
        dict(patient_id="p4", sex="u", date_of_birth="2000-06-01", ethnicity="99", lsoa_code="L2", date_of_death="2020-01-01"),
        dict(patient_id="p5", sex="X", date_of_birth="1990-01-01", ethnicity="A", lsoa_code="L1", date_of_death=""),
        dict(patient_id="p5", sex="F", date_of_birth="1990-01-01", ethnicity="A", lsoa_code="L1", date_of_death=""),
    ], cols)
    build(con, "staging/stg_patients", {"today": D(2026, 1, 1), "date_format": "%Y-%m-%d", "date_label": "YYYY-MM-DD"})
    got = con.execute("select * from stg_patients order by row_number").df()
    assert got["patient_id"].tolist()[0] == "p1" and got["sex"].tolist()[0] == "F"
    assert got["ethnic_group"].tolist() == ["Black", "White", "White", "Unknown", "Unknown", "White", "White"]
    assert pd.isna(got.loc[0, "lsoa_code"])
    reasons = got["reject_reason"].tolist()
    assert pd.isna(reasons[0]) and pd.isna(reasons[4])
    assert reasons[1] == "patient_id is duplicated (first in row 1)"
    # the first row is rejected too: the later row's reason still names where the id is first, nothing untrue
    assert reasons[5] == "sex is not a known code (expected F, M, I or U)"
    assert reasons[6] == "patient_id is duplicated (first in row 6)"
    assert reasons[2] == "patient_id is empty"
    assert reasons[3] == ("sex is not a known code (expected F, M, I or U); "
                          "date_of_birth is not a valid date (expected YYYY-MM-DD); date_of_death is after the day of the run")


def test_stg_patients_date_forms(con):
    """Fields without their leading zeros load (as on Spark, tests/integration/test_spark_engine.py); year 0, which
    DuckDB's strptime takes as 1 BC, is no date (Python and pandas refuse it); an ISO 8601 time part after a T loads, and fractions of a
    second (SQL Server's `00:00:00.000`)."""
    cols = ["patient_id", "sex", "date_of_birth", "ethnicity", "lsoa_code", "date_of_death"]
    births = ["1980-1-5", "1980-01-05 7:05:00", "0000-01-01", "0001-01-01", "1980-01-05T00:00:00",
              "1980-01-05 00:00:00.000", "1980-01-05T10:30:00.5"]
    raw(con, "patients", [dict(patient_id=f"p{i}", sex="F", date_of_birth=birth, ethnicity="", lsoa_code="",
                               date_of_death="0000-06-01" if i == 3 else "") for i, birth in enumerate(births)], cols)
    build(con, "staging/stg_patients", {"today": D(2026, 1, 1), "date_format": "%Y-%m-%d", "date_label": "YYYY-MM-DD"})
    got = con.execute("select cast(date_of_birth as varchar), reject_reason from stg_patients order by row_number").fetchall()
    invalid = "date_of_birth is not a valid date (expected YYYY-MM-DD)"
    assert [reason for _, reason in got] == [None, None, invalid,
                                             "date_of_death is not a valid date (expected YYYY-MM-DD)", None, None, None]
    assert [got[i][0] for i in (0, 1, 4, 5, 6)] == ["1980-01-05"] * 5


def test_int_patients_registered_on_date(con):
    table(con, "periods", [dict(period=D(2024, 3, 31))], ["period"])
    table(con, "patients", [
        dict(patient_id="adult18", sex="F", date_of_birth=D(2006, 3, 31), ethnic_group="White", lsoa_code="L1", date_of_death=None),
        dict(patient_id="dies_on_date", sex="M", date_of_birth=D(1950, 1, 1), ethnic_group="Asian", lsoa_code=None, date_of_death=D(2024, 3, 31)),
        dict(patient_id="dies_after", sex="M", date_of_birth=D(1950, 1, 1), ethnic_group="Asian", lsoa_code="LX", date_of_death=D(2024, 4, 1)),
        dict(patient_id="two_spells", sex="I", date_of_birth=D(1990, 5, 1), ethnic_group="Unknown", lsoa_code="L1", date_of_death=None),
        dict(patient_id="tie", sex="U", date_of_birth=D(1990, 5, 1), ethnic_group="Black", lsoa_code="L1", date_of_death=None),
        dict(patient_id="unborn", sex="F", date_of_birth=D(2024, 4, 1), ethnic_group="White", lsoa_code="L1", date_of_death=None),
        dict(patient_id="left", sex="F", date_of_birth=D(1990, 5, 1), ethnic_group="White", lsoa_code="L1", date_of_death=None),
    ], ["patient_id", "sex", "date_of_birth", "ethnic_group", "lsoa_code", "date_of_death"])
    table(con, "registrations", [
        dict(patient_id="adult18", practice_code="A", registered_from=D(2006, 4, 1), registered_to=D(2024, 3, 31)),
        dict(patient_id="dies_on_date", practice_code="A", registered_from=D(2000, 1, 1), registered_to=None),
        dict(patient_id="dies_after", practice_code="A", registered_from=D(2000, 1, 1), registered_to=None),
        dict(patient_id="two_spells", practice_code="B", registered_from=D(2000, 1, 1), registered_to=None),
        dict(patient_id="two_spells", practice_code="A", registered_from=D(2010, 1, 1), registered_to=None),
        dict(patient_id="tie", practice_code="A", registered_from=D(2010, 1, 1), registered_to=None),
        dict(patient_id="tie", practice_code="C", registered_from=D(2010, 1, 1), registered_to=None),
        dict(patient_id="unborn", practice_code="A", registered_from=D(2024, 4, 1), registered_to=None),
        dict(patient_id="left", practice_code="A", registered_from=D(2000, 1, 1), registered_to=D(2024, 3, 30)),
    ], ["patient_id", "practice_code", "registered_from", "registered_to"])
    table(con, "deprivation", [dict(lsoa_code="L1", imd_score=30.0, imd_decile=3, imd_quintile=2)],
          ["lsoa_code", "imd_score", "imd_decile", "imd_quintile"])
    table(con, "neighbourhoods", [dict(lsoa_code="L1", neighbourhood_code="N1")], ["lsoa_code", "neighbourhood_code"])
    con.execute("create table lsoa_lookup (lsoa11_code varchar, lsoa21_code varchar, change varchar)")
    build(con, "intermediate/int_lsoa_deprivation")
    build(con, "intermediate/int_patients_registered_on_date")
    got = con.execute("select patient_id, practice_code, age, imd_quintile, neighbourhood_code "
                      "from int_patients_registered_on_date order by patient_id").fetchall()
    assert got == [
        ("adult18", "A", 18, "2", "N1"),
        ("dies_after", "A", 74, "Unknown", None),
        ("tie", "C", 33, "2", "N1"),
        ("two_spells", "A", 33, "2", "N1"),
    ]


def test_int_condition_cases_resolved_rules(con):
    table(con, "periods", [dict(period=D(2024, 3, 31))], ["period"])
    table(con, "codelists", [dict(condition="dep", kind="diagnosis", code="1"), dict(condition="dep", kind="resolved", code="9")],
          ["condition", "kind", "code"])
    table(con, "events", [
        dict(patient_id="same_day", code="1", date=D(2020, 1, 1)), dict(patient_id="same_day", code="9", date=D(2020, 1, 1)),
        dict(patient_id="rediagnosed", code="1", date=D(2020, 1, 1)), dict(patient_id="rediagnosed", code="9", date=D(2021, 1, 1)),
        dict(patient_id="rediagnosed", code="1", date=D(2022, 1, 1)),
        dict(patient_id="resolved", code="1", date=D(2020, 1, 1)), dict(patient_id="resolved", code="9", date=D(2021, 1, 1)),
        dict(patient_id="on_date", code="1", date=D(2024, 3, 31)),
        dict(patient_id="after_date", code="1", date=D(2024, 4, 1)),
        dict(patient_id="resolved_later", code="1", date=D(2020, 1, 1)), dict(patient_id="resolved_later", code="9", date=D(2024, 4, 1)),
        dict(patient_id="other_code", code="2", date=D(2020, 1, 1)),
    ], ["patient_id", "code", "date"])
    build(con, "intermediate/int_condition_cases")
    got = [r[0] for r in con.execute("select patient_id from int_condition_cases order by 1").fetchall()]
    assert got == ["on_date", "rediagnosed", "resolved_later"]


def test_age_band_macro(con):
    got = con.execute("select age_band(a) from (values (0), (4), (5), (17), (18), (89), (90), (104)) t(a)").fetchall()
    assert [r[0] for r in got] == ["0-4", "0-4", "5-9", "15-19", "15-19", "85-89", "90+", "90+"]


# Unicode space separators (trim removes them), other white space and invisible characters (it keeps them)
SPACES = " \u00a0\u1680\u2000\u2003\u200a\u202f\u205f\u3000\t\r\n\u200b\u180e\u2028\ufeff"


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(texts=st.lists(st.text(alphabet=st.sampled_from(SPACES) | st.characters(exclude_characters="\x00",
                                                                                 exclude_categories=("Cs",)),
                              max_size=6), max_size=30))
def test_trimmed_and_clean_macros_strip_white_space_as_python_does(texts):
    """Text is trimmed as Python's str.strip() trims it (what a reader of the contract, and the test oracle, expect):
    spaces, tabs, line breaks and Unicode spaces at either end; a zero-width space or an emoji is not white space."""
    texts += ["", " ", "x", " x ", "x ", "\u00a0x", "x\u3000", "\tx\t", "e\u0301 ", "\U0001f600", "\u200bx\u200b",
              " 2020-01-05\u00a0", "\u30002020-01-05 10:11:12", "2020-01-05\t", "\r\nx\r\n", "\x1cx\x1f", "\x85x\u2028",
              "\u2029x\x0b\x0c", "\x00x\x00", "\x7fx", "x y", "\x08x"]
    con = _macro_connection()
    con.register("texts_df", pd.DataFrame({"x": pd.array(texts + [None], dtype="string")}))
    got = con.execute("select x, trimmed(x), clean(x), parse_date(x, '%Y-%m-%d') from texts_df").fetchall()
    stripped = [None if x is None else x.strip() for x, *_ in got]
    con.register("stripped_df", pd.DataFrame({"position": range(len(stripped)), "x": pd.array(stripped, dtype="string")}))
    expected_dates = [r[0] for r in con.execute("select cast(coalesce(try_strptime(x, '%Y-%m-%d'), try_strptime(x, "
                                                "'%Y-%m-%d %H:%M:%S')) as date) from stripped_df order by position").fetchall()]
    for (x, trimmed, cleaned, date), plain, expected_date in zip(got, stripped, expected_dates):
        assert (trimmed, cleaned) == (plain, plain or None), repr(x)
        assert date == expected_date, repr(x)


@functools.lru_cache(maxsize=1)
def _macro_connection():
    """One in-memory connection with the macros, for the property test's many examples."""
    from pipeline.warehouse import connect, load_macros

    con = connect()
    load_macros(con)
    return con


def test_stg_deprivation_deciles_must_be_whole_numbers_1_to_10(con):
    cols = ["lsoa_code", "imd_score", "imd_rank", "imd_decile"]
    raw(con, "deprivation", [
        dict(lsoa_code="E1", imd_score="40.2", imd_rank="100", imd_decile="1"),
        dict(lsoa_code="E2", imd_score="", imd_rank="2000.0", imd_decile=" 2.0 "),
        dict(lsoa_code="E3", imd_score="x", imd_rank="1.5", imd_decile="1.5"),
        dict(lsoa_code="E4", imd_score="1", imd_rank="1", imd_decile="11"),
        dict(lsoa_code="E1", imd_score="1", imd_rank="1", imd_decile="3"),
    ], cols)
    build(con, "staging/stg_deprivation")
    got = con.execute("select lsoa_code, imd_decile, imd_quintile, reject_reason from stg_deprivation order by row_number").fetchall()
    assert got[0] == ("E1", 1, 1, None)
    assert got[1] == ("E2", 2, 1, None)
    assert got[2][3] == ("imd_decile is not a whole number from 1 to 10; imd_score is not a number; "
                         "imd_rank is not a whole number")
    assert got[3][3] == "imd_decile is not a whole number from 1 to 10"
    assert got[4][3] == "lsoa_code is duplicated (first in row 1)"


def test_trend_transitions_counts_patients_in_the_cell_on_both_dates(con):
    periods = [D(2023, 3, 31), D(2024, 3, 31), D(2025, 3, 31)]
    table(con, "periods", [dict(period=p) for p in periods], ["period"])
    table(con, "conditions", [dict(condition="dep", label="Depression", min_age=18)], ["condition", "label", "min_age"])
    table(con, "practices", [dict(practice_code="A", pcn_code="P", icb_code="I"),
                             dict(practice_code="B", pcn_code="P", icb_code="I")],
          ["practice_code", "pcn_code", "icb_code"])
    people = {  # patient: (practice on each date or None, case on each date, age on the first date)
        "stays_case": (("A", "A", "A"), (True, True, True), 40),
        "new_case": (("A", "A", "A"), (False, True, True), 50),
        "resolved": (("A", "A", "A"), (True, False, False), 60),
        "moves_practice": (("A", "B", "B"), (True, True, True), 30),
        "leaves": (("A", None, None), (True, None, None), 70),
        "turns_18": (("A", "A", "A"), (False, True, True), 17),
    }
    registered, cases = [], []
    for pid, (practices, flags, age) in people.items():
        for i, (period, practice, flag) in enumerate(zip(periods, practices, flags)):
            if practice is None:
                continue
            registered.append(dict(period=period, patient_id=pid, practice_code=practice, sex="F", age=age + i,
                                   ethnic_group="White", lsoa_code=None, imd_quintile="Unknown", neighbourhood_code=None))
            if flag:
                cases.append(dict(period=period, condition="dep", patient_id=pid))
    table(con, "int_patients_registered_on_date", registered, list(registered[0]))
    table(con, "int_condition_cases", cases, ["period", "condition", "patient_id"])
    build(con, "intermediate/int_period_pairs")
    build(con, "marts/trend_transitions")
    got = con.execute("""select period_from, period_to, area_type, area_code, population_both, cases_both,
                                cases_from_only, cases_to_only
                         from trend_transitions where group_type = 'all' order by 1, 2, 3, 4""").df()
    pairs = sorted(set(zip(got["period_from"].dt.date, got["period_to"].dt.date)))
    assert pairs == [(periods[0], periods[1]), (periods[0], periods[2]), (periods[1], periods[2])]
    first = got[(got["period_from"].dt.date == periods[0]) & (got["period_to"].dt.date == periods[1])].set_index("area_code")
    # practice A: stays_case, new_case, resolved are in it on both dates (moves_practice and leaves are not,
    # turns_18 was not eligible on the first date)
    assert first.loc["A", ["population_both", "cases_both", "cases_from_only", "cases_to_only"]].tolist() == [3, 1, 1, 1]
    # the PCN holds the mover on both dates
    assert first.loc["P", ["population_both", "cases_both", "cases_from_only", "cases_to_only"]].tolist() == [4, 2, 1, 1]
    assert "B" not in first.index


def test_int_lsoa_deprivation_bridges_split_merged_and_unchanged_lsoas(con):
    """2021 codes against a 2011-vintage file, and 2011 codes against a 2021-vintage one, through the ONS lookup:
    one counterpart gives its decile; several give the mean decile rounded, halves towards the more deprived."""
    table(con, "deprivation", [
        dict(lsoa_code="A11", imd_score=40.0, imd_decile=2, imd_quintile=1),   # split into A21a, A21b
        dict(lsoa_code="B11", imd_score=30.0, imd_decile=3, imd_quintile=2),   # merged with C11 into BC21
        dict(lsoa_code="C11", imd_score=20.0, imd_decile=4, imd_quintile=2),
        dict(lsoa_code="U1", imd_score=10.0, imd_decile=9, imd_quintile=5),    # unchanged
    ], ["lsoa_code", "imd_score", "imd_decile", "imd_quintile"])
    table(con, "lsoa_lookup", [
        dict(lsoa11_code="A11", lsoa21_code="A21a", change="S"), dict(lsoa11_code="A11", lsoa21_code="A21b", change="S"),
        dict(lsoa11_code="B11", lsoa21_code="BC21", change="M"), dict(lsoa11_code="C11", lsoa21_code="BC21", change="M"),
        dict(lsoa11_code="U1", lsoa21_code="U1", change="U"),
        dict(lsoa11_code="Z11", lsoa21_code="Z21", change="U"),   # neither in the file: stays unknown
    ], ["lsoa11_code", "lsoa21_code", "change"])
    build(con, "intermediate/int_lsoa_deprivation")
    got = con.execute("select lsoa_code, imd_decile, imd_quintile, basis, counterparts, imd_score "
                      "from int_lsoa_deprivation order by lsoa_code").fetchall()
    assert got == [
        ("A11", 2, 1, "file", 1, 40.0), ("A21a", 2, 1, "lookup", 1, 40.0), ("A21b", 2, 1, "lookup", 1, 40.0),
        ("B11", 3, 2, "file", 1, 30.0), ("BC21", 3, 2, "lookup", 2, 25.0),   # mean decile 3.5 -> 3 (more deprived)
        ("C11", 4, 2, "file", 1, 20.0), ("U1", 9, 5, "file", 1, 10.0),
    ]
    # the other way round: a 2021-vintage file and 2011 codes
    table(con, "deprivation", [
        dict(lsoa_code="A21a", imd_score=40.0, imd_decile=1, imd_quintile=1),
        dict(lsoa_code="A21b", imd_score=20.0, imd_decile=4, imd_quintile=2),
        dict(lsoa_code="BC21", imd_score=30.0, imd_decile=6, imd_quintile=3),
    ], ["lsoa_code", "imd_score", "imd_decile", "imd_quintile"])
    build(con, "intermediate/int_lsoa_deprivation")
    got = dict((r[0], r[1:]) for r in con.execute("select lsoa_code, imd_decile, counterparts from int_lsoa_deprivation "
                                                  "where basis = 'lookup'").fetchall())
    assert got == {"A11": (2, 2), "B11": (6, 1), "C11": (6, 1)}   # split seen from 2011: mean 2.5 -> 2


def test_int_area_names_names_each_practice_pcn_icb_and_neighbourhood_once(con):
    """A practice's own name; a PCN, ICB or neighbourhood named differently on its rows gets the first name in
    alphabetical order (one row per area, so joining to it never repeats a count)."""
    table(con, "practices", [
        dict(practice_code="A", practice_name="Alpha Surgery", pcn_code="P", pcn_name="North PCN", icb_code="I",
             icb_name="Test ICB"),
        dict(practice_code="B", practice_name="Beta Surgery", pcn_code="P", pcn_name="Northern PCN", icb_code="I",
             icb_name="Test ICB"),
        dict(practice_code="C", practice_name="Gamma Surgery", pcn_code="Q", pcn_name="South PCN", icb_code="I",
             icb_name="ICB (old name)"),
    ], ["practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"])
    table(con, "neighbourhoods", [
        dict(lsoa_code="L1", neighbourhood_code="N1", neighbourhood_name="Riverside"),
        dict(lsoa_code="L2", neighbourhood_code="N1", neighbourhood_name="Riverside West"),
        dict(lsoa_code="L3", neighbourhood_code="N2", neighbourhood_name="Hillside"),
    ], ["lsoa_code", "neighbourhood_code", "neighbourhood_name"])
    build(con, "intermediate/int_area_names")
    assert sorted(con.execute("select * from int_area_names").fetchall()) == [
        ("icb", "I", "ICB (old name)"),
        ("neighbourhood", "N1", "Riverside"), ("neighbourhood", "N2", "Hillside"),
        ("pcn", "P", "North PCN"), ("pcn", "Q", "South PCN"),
        ("practice", "A", "Alpha Surgery"), ("practice", "B", "Beta Surgery"), ("practice", "C", "Gamma Surgery"),
    ]


def test_staging_reads_the_declared_date_format(con):
    cols = ["patient_id", "sex", "date_of_birth", "ethnicity", "lsoa_code", "date_of_death"]
    raw(con, "patients", [
        dict(patient_id="p1", sex="F", date_of_birth="31/03/1980", ethnicity="A", lsoa_code="", date_of_death=""),
        dict(patient_id="p2", sex="F", date_of_birth="1980-03-31", ethnicity="A", lsoa_code="", date_of_death="01/02/2020 00:00:00"),
    ], cols)
    build(con, "staging/stg_patients", {"today": D(2026, 1, 1), "date_format": "%d/%m/%Y", "date_label": "DD/MM/YYYY"})
    got = con.execute("select date_of_birth, date_of_death, reject_reason from stg_patients order by row_number").fetchall()
    assert got == [(D(1980, 3, 31), None, None),
                   (None, D(2020, 2, 1), "date_of_birth is not a valid date (expected DD/MM/YYYY)")]


def test_indicator_denominators_are_counted_as_the_listed_patients(con):
    """indicator_stratified_counts counts denominators without listing them (case finding: everyone registered in the
    age range less the register's patients in it); the counts equal those of the listed patients
    (checks/int_indicator_denominators), including ages that split a 5-year band and a stratum that is all on the
    register."""
    period = D(2024, 3, 31)
    table(con, "indicator_settings", [
        dict(indicator="controlled", label="Controlled", kind="outcome", denominator="htn", min_age=18, max_age=79,
             months=12, min_count=1),
        dict(indicator="possible", label="Possible", kind="case_finding", denominator="htn", min_age=18, max_age=None,
             months=24, min_count=2),
    ], ["indicator", "label", "kind", "denominator", "min_age", "max_age", "months", "min_count"])
    people = {  # patient: (age, sex, practice, on the register, meets the outcome rule, meets the case-finding rule)
        "htn_17": (17, "F", "A", True, True, False),     # below both age ranges (band 15-19 is split at 18)
        "htn_18": (18, "F", "A", True, True, False),
        "htn_19": (19, "F", "A", True, False, False),
        "htn_80": (80, "M", "A", True, True, False),     # above the outcome's range
        "adult_17": (17, "F", "A", False, False, True),  # readings, but below the case finding's range
        "adult_18": (18, "F", "A", False, False, True),
        "adult_19": (19, "F", "A", False, False, False),
        "adult_85": (85, "M", "A", False, False, True),
        "htn_high": (40, "M", "B", True, False, True),   # readings, but on the register: not case finding
        "htn_b": (41, "M", "B", True, True, False),       # practice B's men aged 40-44 are all on the register
    }
    registered, cases, outcome, finding = [], [], [], []
    for pid, (age, sex, practice, on_register, meets_outcome, meets_finding) in people.items():
        registered.append(dict(period=period, patient_id=pid, practice_code=practice, sex=sex, age=age,
                               ethnic_group="White", lsoa_code=None, imd_quintile="3", neighbourhood_code=None))
        if on_register:
            cases.append(dict(period=period, condition="htn", patient_id=pid))
        if meets_outcome:
            outcome.append(dict(period=period, indicator="controlled", patient_id=pid))
        if meets_finding:
            finding.append(dict(period=period, indicator="possible", patient_id=pid))
    table(con, "int_patients_registered_on_date", registered, list(registered[0]))
    table(con, "int_condition_cases", cases, ["period", "condition", "patient_id"])
    table(con, "int_indicator_outcome", outcome, ["period", "indicator", "patient_id"])
    table(con, "int_indicator_case_finding", finding, ["period", "indicator", "patient_id"])
    table(con, "int_indicator_care_process", [], ["period", "indicator", "patient_id"])
    for model in ("intermediate/int_indicator_numerators", "intermediate/int_registered_by_age",
                  "intermediate/int_cases_by_age", "marts/indicator_stratified_counts"):
        build(con, model)
    build(con, "checks/int_indicator_denominators", view=True)
    strata = "period, indicator, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age_band"
    got = con.execute(f"select {strata}, population, cases from indicator_stratified_counts where population > 0 "
                      "order by all").df()
    listed = con.execute("""
        select d.period, d.indicator, d.practice_code, d.neighbourhood_code, d.ethnic_group, d.imd_quintile, d.sex,
               age_band(d.age) as age_band, count(*) as population, count(n.patient_id) as cases
        from int_indicator_denominators as d
        left join int_indicator_numerators as n
          on n.period = d.period and n.indicator = d.indicator and n.patient_id = d.patient_id
        group by all order by all""").df()
    pd.testing.assert_frame_equal(got, listed, check_dtype=False)
    by_cell = {(r.indicator, r.practice_code, r.sex, r.age_band): (r.population, r.cases) for r in got.itertuples()}
    assert by_cell == {
        ("controlled", "A", "F", "15-19"): (2, 1),    # htn_18 (met), htn_19
        ("controlled", "B", "M", "40-44"): (2, 1),    # htn_high, htn_b (met)
        ("possible", "A", "F", "15-19"): (2, 1),      # adult_18 (met), adult_19
        ("possible", "A", "M", "85-89"): (1, 1),      # adult_85 (met)
    }
    # the register's patients in a case-finding range, kept where all of a stratum's people are on the register
    register = con.execute("select practice_code, sex, age_band, population, register_in_range "
                           "from indicator_stratified_counts where indicator = 'possible' order by all").df()
    assert register.values.tolist() == [["A", "F", "15-19", 2, 2], ["A", "M", "80-84", 0, 1], ["A", "M", "85-89", 1, 0],
                                        ["B", "M", "40-44", 0, 2]]
    assert set(con.execute("select patient_id from int_indicator_numerators").df()["patient_id"]) == {
        "htn_18", "htn_b", "adult_18", "adult_85"}


def test_area_parents_neighbourhoods_breaks_a_tie_by_icb_code(con):
    """A neighbourhood with as many patients in two ICBs is compared with the first ICB code, whatever order the
    counts come in (an arbitrary pick made two runs, or the two engines, disagree)."""
    from pipeline.warehouse import query

    table(con, "practices", [
        dict(practice_code="B1", pcn_code="PB", icb_code="ICB_B"),
        dict(practice_code="A1", pcn_code="PA", icb_code="ICB_A"),
        dict(practice_code="C1", pcn_code="PC", icb_code="ICB_C"),
    ], ["practice_code", "pcn_code", "icb_code"])
    table(con, "stratified_counts", [  # the larger code first: a first-come pick would choose it
        dict(practice_code="B1", neighbourhood_code="N1", population=40),
        dict(practice_code="A1", neighbourhood_code="N1", population=25),
        dict(practice_code="A1", neighbourhood_code="N1", population=15),
        dict(practice_code="C1", neighbourhood_code="N1", population=39),
        dict(practice_code="C1", neighbourhood_code="N2", population=5),
        dict(practice_code="C1", neighbourhood_code=None, population=99),
    ], ["practice_code", "neighbourhood_code", "population"])
    assert sorted(query(con, "area_parents_neighbourhoods").fetchall()) == [
        ("neighbourhood", "N1", "icb", "ICB_A"), ("neighbourhood", "N2", "icb", "ICB_C"),
    ]
