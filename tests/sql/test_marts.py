"""Every mart in sql/marts/: small hand-made input rows -> the exact rows it must give (in-memory DuckDB)."""
from __future__ import annotations

import datetime as dt
import itertools

import pandas as pd
import pytest

from pipeline.paths import SQL_DIR
from pipeline.warehouse import build

D = dt.date
DATE_0, DATE_1 = D(2024, 3, 31), D(2025, 3, 31)
NO_STRATA = {"by_imd": False, "by_ethnicity": False}
REGISTERED = ["period", "patient_id", "practice_code", "sex", "age", "ethnic_group", "lsoa_code", "imd_quintile",
              "neighbourhood_code"]
STRATIFIED = ["period", "condition", "practice_code", "neighbourhood_code", "ethnic_group", "imd_quintile", "sex",
              "sex_group", "age_band", "population", "cases"]
RATES = ["period", "condition", "sex", "age_band", "imd_stratum", "ethnicity_stratum", "population", "cases",
         "internal_rate", "external_rate", "rate"]


def given(con, name: str, columns: list[str], rows: list[tuple]) -> None:
    """Table `name` holding exactly these rows (tuples in `columns` order)."""
    frame = pd.DataFrame(rows, columns=columns)
    con.register(f"{name}_given", frame)
    con.execute(f"create or replace table {name} as select * from {name}_given")
    con.unregister(f"{name}_given")


def rows(con, sql: str) -> list[tuple]:
    return [tuple(row) for row in con.execute(sql).fetchall()]


def sum_types(con, table: str) -> set[str]:
    """The types of a table's summed count columns (bigint: a 128-bit column is several times slower to read)."""
    return {kind for name, kind, *_ in con.execute(f"describe {table}").fetchall()
            if name in ("cases", "population", "register_in_range")}


def practices(con) -> None:
    given(con, "practices", ["practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"],
          [("A", "Alpha Surgery", "P", "North PCN", "I", "Test ICB"),
           ("B", "Beta Surgery", "P", "North PCN", "I", "Test ICB")])
    given(con, "neighbourhoods", ["lsoa_code", "neighbourhood_code", "neighbourhood_name"], [("L1", "N1", "Riverside")])


def every_group(ethnic_group: str, imd_quintile: str, sex_group: str, age_band: str) -> list[tuple[str, str]]:
    return [("all", "All"), ("ethnicity", ethnic_group), ("imd_quintile", imd_quintile), ("sex", sex_group),
            ("age_band", age_band)]


def test_every_mart_file_has_a_test_here():
    tested = {"stratified_counts", "reference_rates", "area_group_rate_strata", "area_group_strata", "prevalence_counts",
              "data_quality", "trend_expected", "indicator_stratified_counts", "indicator_area_group_rate_strata",
              "indicator_reference_rates", "indicator_counts", "indicator_trend_transitions",
              "indicator_trend_expected"}
    elsewhere = {"trend_transitions"}  # tests/sql/test_models.py
    assert {path.stem for path in (SQL_DIR / "marts").glob("*.sql")} == tested | elsewhere


def test_stratified_counts_counts_people_of_age_and_cases_per_stratum(con):
    given(con, "conditions", ["condition", "label", "min_age"], [("dep", "Depression", 18)])
    given(con, "int_patients_registered_on_date", REGISTERED, [
        (DATE_0, "p1", "A", "F", 40, "White", "L1", "1", "N1"),
        (DATE_0, "p2", "A", "F", 44, "White", "L1", "1", "N1"),
        (DATE_0, "p3", "B", "I", 30, "Asian", None, "Unknown", None),
        (DATE_0, "too_young", "A", "M", 17, "White", "L1", "1", "N1"),
    ])
    given(con, "int_condition_cases", ["period", "condition", "patient_id"],
          [(DATE_0, "dep", "p1"), (DATE_0, "dep", "p3"), (DATE_0, "dep", "too_young")])
    build(con, "intermediate/int_registered_by_age")
    build(con, "intermediate/int_cases_by_age")
    build(con, "marts/stratified_counts")
    assert rows(con, "select * from stratified_counts order by practice_code") == [
        (DATE_0, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 2, 1),
        (DATE_0, "dep", "B", None, "Asian", "Unknown", "I", "Unknown", "30-34", 1, 1),
    ]


@pytest.fixture()
def three_strata(con):
    given(con, "stratified_counts", STRATIFIED, [
        (DATE_0, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 4, 1),
        (DATE_0, "dep", "B", None, "Asian", "Unknown", "F", "F", "40-44", 6, 2),
        (DATE_0, "dep", "B", None, "Asian", "Unknown", "M", "M", "40-44", 5, 0),
    ])
    given(con, "external_rates", ["period", "condition", "sex", "age_band", "rate"], [
        (None, "dep", "F", "40-44", 0.25),          # any date
        (DATE_0, "dep", "M", "40-44", 0.1),         # this date
        (DATE_1, "dep", "M", "40-44", 0.9),         # another date: not used
    ])
    given(con, "periods", ["period"], [(DATE_0,)])
    build(con, "intermediate/int_external_rates_on_date")


def test_reference_rates_internal_external_and_by_imd(con, three_strata):
    build(con, "marts/reference_rates", {**NO_STRATA, "use_external": False})
    assert rows(con, "select * from reference_rates order by sex") == [
        (DATE_0, "dep", "F", "40-44", "*", "*", 10, 3, 0.3, 0.25, 0.3),
        (DATE_0, "dep", "M", "40-44", "*", "*", 5, 0, 0.0, 0.1, 0.0),
    ]
    build(con, "marts/reference_rates", {**NO_STRATA, "use_external": True})
    assert rows(con, "select sex, rate from reference_rates order by sex") == [("F", 0.25), ("M", 0.1)]
    build(con, "marts/reference_rates", {"by_imd": True, "by_ethnicity": False, "use_external": False})
    assert rows(con, "select sex, imd_stratum, population, cases, rate from reference_rates order by sex, imd_stratum") == [
        ("F", "1", 4, 1, 0.25), ("F", "Unknown", 6, 2, 1 / 3), ("M", "Unknown", 5, 0, 0.0)]


def test_external_rate_for_the_date_wins_over_the_rate_for_every_date(con, three_strata):
    """A file may give a stratum's rate for every date (empty period) and for one date: that date's rate applies
    there, whatever the two values (the old code took the larger; found by fuzzing configurations)."""
    con.execute("insert into external_rates values (?, 'dep', 'F', '40-44', 0.05)", [DATE_0])
    build(con, "intermediate/int_external_rates_on_date")
    assert rows(con, "select sex, rate from int_external_rates_on_date order by sex") == [("F", 0.05), ("M", 0.1)]
    build(con, "marts/reference_rates", {**NO_STRATA, "use_external": True})
    assert rows(con, "select sex, rate from reference_rates order by sex") == [("F", 0.05), ("M", 0.1)]


def test_area_group_rate_strata_sums_cells_per_area_group_and_rate_stratum(con):
    practices(con)
    given(con, "stratified_counts", STRATIFIED, [
        (DATE_0, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 10, 3),
        (DATE_0, "dep", "B", None, "White", "5", "F", "F", "40-44", 6, 2),
    ])
    build(con, "marts/area_group_rate_strata", {"by_imd": True, "by_ethnicity": False})
    got = rows(con, "select area_type, area_code, group_type, group_value, imd_stratum, ethnicity_stratum, cases, "
                    "population from area_group_rate_strata where group_type in ('all', 'imd_quintile')")
    expected = [("practice", "A", "all", "All", "1", "*", 3, 10), ("practice", "A", "imd_quintile", "1", "1", "*", 3, 10),
                ("practice", "B", "all", "All", "5", "*", 2, 6), ("practice", "B", "imd_quintile", "5", "5", "*", 2, 6),
                ("neighbourhood", "N1", "all", "All", "1", "*", 3, 10),
                ("neighbourhood", "N1", "imd_quintile", "1", "1", "*", 3, 10)]
    for area_type, code in (("pcn", "P"), ("icb", "I")):  # both practices: one row per rate stratum
        expected += [(area_type, code, "all", "All", "1", "*", 3, 10), (area_type, code, "all", "All", "5", "*", 2, 6),
                     (area_type, code, "imd_quintile", "1", "1", "*", 3, 10),
                     (area_type, code, "imd_quintile", "5", "5", "*", 2, 6)]
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert sum_types(con, "area_group_rate_strata") == {"BIGINT"}
    build(con, "marts/area_group_rate_strata", NO_STRATA)  # unstratified: one '*' stratum holds both practices
    assert rows(con, "select imd_stratum, cases, population from area_group_rate_strata "
                     "where area_type = 'pcn' and group_type = 'all'") == [("*", 5, 16)]


def test_area_group_strata_puts_each_stratum_in_its_areas_and_groups(con):
    practices(con)
    given(con, "stratified_counts", STRATIFIED, [
        (DATE_0, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 10, 3),
        (DATE_0, "dep", "B", None, "Asian", "Unknown", "I", "Unknown", "30-34", 5, 1),
    ])
    given(con, "reference_rates", RATES, [
        (DATE_0, "dep", "F", "40-44", "*", "*", 10, 3, 0.3, None, 0.2),
        (DATE_0, "dep", "I", "30-34", "*", "*", 5, 1, 0.2, None, 0.4),
    ])
    build(con, "marts/area_group_rate_strata", NO_STRATA)
    build(con, "marts/area_group_strata")
    got = rows(con, "select period, condition, area_type, area_code, group_type, group_value, sex, age_band, "
                    "observed, population, cast(expected as double) from area_group_strata")
    first = [(DATE_0, "dep", area_type, code, group_type, value, "F", "40-44", 3, 10, 2.0)
             for (area_type, code), (group_type, value) in itertools.product(
                 [("practice", "A"), ("pcn", "P"), ("icb", "I"), ("neighbourhood", "N1")],
                 every_group("White", "1", "F", "40-44"))]
    second = [(DATE_0, "dep", area_type, code, group_type, value, "I", "30-34", 1, 5, 2.0)
              for (area_type, code), (group_type, value) in itertools.product(
                  [("practice", "B"), ("pcn", "P"), ("icb", "I")], every_group("Asian", "Unknown", "Unknown", "30-34"))]
    assert sorted(got, key=str) == sorted(first + second, key=str)


def test_prevalence_counts_sums_strata_names_areas_and_drops_empty_cells(con):
    practices(con)
    given(con, "area_group_strata", ["period", "condition", "area_type", "area_code", "group_type", "group_value",
                                     "sex", "age_band", "observed", "population", "expected"], [
        (DATE_0, "dep", "pcn", "P", "all", "All", "F", "40-44", 3, 10, 2.0),
        (DATE_0, "dep", "pcn", "P", "all", "All", "M", "30-34", 1, 5, 2.5),
        (DATE_0, "dep", "practice", "A", "all", "All", "F", "40-44", 0, 0, 0.0),
        (DATE_0, "dep", "neighbourhood", "N1", "sex", "F", "F", "40-44", 3, 10, 2.0),
    ])
    build(con, "intermediate/int_area_names")
    build(con, "marts/prevalence_counts")
    assert rows(con, "select * from prevalence_counts order by area_type") == [
        (DATE_0, "dep", "neighbourhood", "N1", "Riverside", "sex", "F", 3, 10, 2.0),
        (DATE_0, "dep", "pcn", "P", "North PCN", "all", "All", 4, 15, 4.5),
    ]


def test_data_quality_counts_what_is_missing_per_area(con):
    practices(con)
    given(con, "int_patients_registered_on_date", REGISTERED, [
        (DATE_0, "complete", "A", "F", 40, "White", "L1", "2", "N1"),
        (DATE_0, "no_ethnicity_no_lsoa", "A", "M", 50, "Unknown", None, "Unknown", None),
        (DATE_0, "unmatched_lsoa", "B", "F", 60, "Asian", "LX", "Unknown", None),
    ])
    build(con, "marts/data_quality")
    assert rows(con, "select * from data_quality order by area_type, area_code") == [
        (DATE_0, "icb", "I", 3, 1, 1, 1, 2),
        (DATE_0, "pcn", "P", 3, 1, 1, 1, 2),
        (DATE_0, "practice", "A", 2, 1, 1, 0, 1),
        (DATE_0, "practice", "B", 1, 0, 0, 1, 1),
    ]


def build_trend_expected_on_internal_rates(con):
    build(con, "intermediate/int_period_pairs")
    build(con, "marts/area_group_rate_strata", NO_STRATA)
    con.execute("create table external_rates (period date, condition varchar, sex varchar, age_band varchar, "
                "rate double)")  # internal rates: the ingest leaves it empty
    build(con, "intermediate/int_external_rates_on_date")
    build(con, "marts/trend_expected", {"use_external": False})


def test_trend_expected_applies_the_earlier_dates_rates_to_both_dates(con):
    practices(con)
    given(con, "periods", ["period"], [(DATE_0,), (DATE_1,)])
    given(con, "stratified_counts", STRATIFIED, [
        (DATE_0, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 10, 1),
        (DATE_1, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 20, 9),
    ])
    given(con, "reference_rates", RATES, [
        (DATE_0, "dep", "F", "40-44", "*", "*", 10, 1, 0.1, None, 0.1),
        (DATE_1, "dep", "F", "40-44", "*", "*", 20, 9, 0.45, None, 0.45),  # the later date's own rate: not used
    ])
    build_trend_expected_on_internal_rates(con)
    got = rows(con, "select * from trend_expected")
    expected = [(DATE_0, DATE_1, "dep", area_type, code, group_type, value, 1.0, 2.0)
                for (area_type, code), (group_type, value) in itertools.product(
                    [("practice", "A"), ("pcn", "P"), ("icb", "I"), ("neighbourhood", "N1")],
                    every_group("White", "1", "F", "40-44"))]
    assert sorted(got, key=str) == sorted(expected, key=str)


def test_trend_expected_is_zero_where_the_later_dates_people_have_no_earlier_rate(con):
    """README "Change over time": a stratum with nobody in it on the earlier date has no earlier rate, so its people
    on the later date add nothing: a cell made only of them has expected_to 0 (it was NULL)."""
    practices(con)
    given(con, "periods", ["period"], [(DATE_0,), (DATE_1,)])
    given(con, "stratified_counts", STRATIFIED, [
        (DATE_0, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 10, 1),
        (DATE_1, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 10, 1),
        (DATE_0, "dep", "A", "N1", "White", "1", "I", "Unknown", "40-44", 4, 2),
        (DATE_1, "dep", "A", "N1", "White", "1", "U", "Unknown", "40-44", 3, 0),  # sex U: nobody on the earlier date
    ])
    given(con, "reference_rates", RATES, [
        (DATE_0, "dep", "F", "40-44", "*", "*", 10, 1, 0.1, None, 0.1),
        (DATE_0, "dep", "I", "40-44", "*", "*", 4, 2, 0.5, None, 0.5),
        (DATE_1, "dep", "F", "40-44", "*", "*", 10, 1, 0.1, None, 0.1),
        (DATE_1, "dep", "U", "40-44", "*", "*", 3, 0, 0.0, None, 0.0),
    ])
    build_trend_expected_on_internal_rates(con)
    got = rows(con, "select area_type, group_type, group_value, expected_from, expected_to from trend_expected "
                    "where area_type = 'practice' and group_type in ('all', 'sex')")
    assert sorted(got, key=str) == [("practice", "all", "All", 3.0, 1.0), ("practice", "sex", "F", 1.0, 1.0),
                                    ("practice", "sex", "Unknown", 2.0, 0.0)]


def test_trend_expected_applies_external_rates_to_strata_absent_on_the_earlier_date(con):
    """External reference rates are known for every stratum: a stratum with nobody in it on the earlier date still
    has the file's rate (for the earlier date, else for every date), so expected_to equals the later date's own
    expected when the file gives one rate for every date (it counted such people as 0)."""
    practices(con)
    given(con, "periods", ["period"], [(DATE_0,), (DATE_1,)])
    given(con, "stratified_counts", STRATIFIED, [
        (DATE_0, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 10, 1),
        (DATE_1, "dep", "A", "N1", "White", "1", "F", "F", "40-44", 10, 1),
        (DATE_1, "dep", "A", "N1", "White", "1", "M", "M", "40-44", 4, 0),  # no man on the earlier date
    ])
    given(con, "external_rates", ["period", "condition", "sex", "age_band", "rate"], [
        (None, "dep", "F", "40-44", 0.1), (None, "dep", "M", "40-44", 0.25)])
    given(con, "reference_rates", RATES, [
        (DATE_0, "dep", "F", "40-44", "*", "*", 10, 1, 0.1, 0.1, 0.1),
        (DATE_1, "dep", "F", "40-44", "*", "*", 10, 1, 0.1, 0.1, 0.1),
        (DATE_1, "dep", "M", "40-44", "*", "*", 4, 0, 0.0, 0.25, 0.25),
    ])
    build(con, "intermediate/int_period_pairs")
    build(con, "marts/area_group_rate_strata", NO_STRATA)
    build(con, "intermediate/int_external_rates_on_date")
    build(con, "marts/trend_expected", {"use_external": True})
    got = rows(con, "select group_type, group_value, expected_from, expected_to from trend_expected "
                    "where area_type = 'practice' and group_type in ('all', 'sex')")
    assert sorted(got, key=str) == [("all", "All", 1.0, 2.0), ("sex", "F", 1.0, 1.0), ("sex", "M", None, 1.0)]


INDICATOR_SETTINGS = ["indicator", "label", "kind", "denominator", "min_age", "max_age", "months", "min_count"]


def test_indicator_stratified_counts_counts_denominator_and_numerator_of_each_kind(con):
    """Denominators are counted from the registered patients and the registers: outcome / care process = the
    register's patients in the age range; case finding = everyone registered in the range less the register's
    patients in it (`register_in_range`), a stratum all on the register kept with population 0."""
    given(con, "indicator_settings", INDICATOR_SETTINGS, [
        ("bp_control", "BP control", "outcome", "htn", 18, 79, 12, 1),
        ("smi_check", "SMI check", "care_process", "smi", 18, None, 12, 1),
        ("possible_htn", "Possible hypertension", "case_finding", "htn", 18, None, 24, 1),
    ])
    given(con, "int_patients_registered_on_date", REGISTERED, [
        (DATE_0, "p1", "A", "F", 60, "White", "L1", "1", "N1"),          # on both registers
        (DATE_0, "p2", "A", "F", 62, "White", "L1", "1", "N1"),          # on the htn register
        (DATE_0, "htn_82", "A", "M", 82, "White", "L1", "1", "N1"),      # on the htn register, over bp_control's range
        (DATE_0, "p3", "B", "U", 45, "Black", None, "Unknown", None),    # on no register
        (DATE_0, "p4", "B", "U", 47, "Black", None, "Unknown", None),    # on no register
        (DATE_0, "child", "B", "U", 12, "Black", None, "Unknown", None),  # under every range
    ])
    given(con, "int_condition_cases", ["period", "condition", "patient_id"], [
        (DATE_0, "htn", "p1"), (DATE_0, "htn", "p2"), (DATE_0, "htn", "htn_82"), (DATE_0, "smi", "p1")])
    numerator = ["period", "indicator", "patient_id"]
    given(con, "int_indicator_outcome", numerator, [(DATE_0, "bp_control", "p2"), (DATE_0, "bp_control", "htn_82")])
    given(con, "int_indicator_care_process", numerator, [(DATE_0, "smi_check", "p1")])
    given(con, "int_indicator_case_finding", numerator, [
        (DATE_0, "possible_htn", "p3"),
        (DATE_0, "possible_htn", "p1"),     # on the register: not in the case-finding denominator
        (DATE_0, "possible_htn", "child"),  # under the age range
    ])
    build(con, "intermediate/int_indicator_numerators")
    build(con, "intermediate/int_registered_by_age")
    build(con, "intermediate/int_cases_by_age")
    build(con, "marts/indicator_stratified_counts")
    assert rows(con, "select * from indicator_stratified_counts order by indicator, practice_code, sex") == [
        # htn register aged 18-79: p1, p2 (htn_82 is over 79); p2 meets it
        (DATE_0, "bp_control", "A", "N1", "White", "1", "F", "F", "60-64", 2, 1, 0),
        # registered aged 18+ less the htn register: A's are all on it; p3, p4 in B, p3 meets it
        (DATE_0, "possible_htn", "A", "N1", "White", "1", "F", "F", "60-64", 0, 0, 2),
        (DATE_0, "possible_htn", "A", "N1", "White", "1", "M", "M", "80-84", 0, 0, 1),
        (DATE_0, "possible_htn", "B", None, "Black", "Unknown", "U", "Unknown", "45-49", 2, 1, 0),
        # smi register aged 18+: p1, who meets it
        (DATE_0, "smi_check", "A", "N1", "White", "1", "F", "F", "60-64", 1, 1, 0),
    ]


INDICATOR_STRATIFIED = ["period", "indicator", "practice_code", "neighbourhood_code", "ethnic_group", "imd_quintile",
                        "sex", "sex_group", "age_band", "population", "cases", "register_in_range"]
INDICATOR_RATES = ["period", "indicator", "sex", "age_band", "imd_stratum", "ethnicity_stratum", "population", "cases",
                   "rate"]


def test_indicator_area_group_rate_strata_sums_cells_per_area_group_and_rate_stratum(con):
    """Numerator, denominator and register_in_range of the cells summed per area x group x rate stratum: the rate
    stratum is the recorded sex (the group the sex group) and, here, the ethnic group but not the IMD quintile."""
    practices(con)
    given(con, "indicator_stratified_counts", INDICATOR_STRATIFIED, [
        (DATE_0, "possible_htn", "A", "N1", "White", "1", "F", "F", "60-64", 3, 1, 2),
        (DATE_0, "possible_htn", "A", "N1", "White", "2", "F", "F", "60-64", 4, 2, 1),  # same rate stratum as above
        (DATE_0, "possible_htn", "B", None, "Asian", "5", "F", "F", "60-64", 6, 3, 0),
        (DATE_0, "possible_htn", "B", None, "Asian", "5", "I", "Unknown", "60-64", 0, 0, 1),  # all on the register
    ])
    build(con, "marts/indicator_area_group_rate_strata", {"by_imd": False, "by_ethnicity": True})
    got = rows(con, "select area_type, area_code, group_type, group_value, sex, age_band, imd_stratum, "
                    "ethnicity_stratum, cases, population, register_in_range from indicator_area_group_rate_strata")
    # A's two cells differ only in IMD quintile: one rate stratum, except in the IMD groups
    in_a = [(group_type, value, "F", "White", 3, 7, 3) for group_type, value in every_group("White", "-", "F", "60-64")
            if group_type != "imd_quintile"]
    in_a += [("imd_quintile", "1", "F", "White", 1, 3, 2), ("imd_quintile", "2", "F", "White", 2, 4, 1)]
    in_b = [(group_type, value, "F", "Asian", 3, 6, 0) for group_type, value in every_group("Asian", "5", "F", "60-64")]
    in_b += [(group_type, value, "I", "Asian", 0, 0, 1)
             for group_type, value in every_group("Asian", "5", "Unknown", "60-64")]
    expected = [(area_type, code, group_type, value, sex, "60-64", "*", ethnicity, cases, population, register)
                for area_type, code, groups in (("practice", "A", in_a), ("neighbourhood", "N1", in_a),
                                                ("practice", "B", in_b), ("pcn", "P", in_a + in_b),
                                                ("icb", "I", in_a + in_b))
                for group_type, value, sex, ethnicity, cases, population, register in groups]
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert sum_types(con, "indicator_area_group_rate_strata") == {"BIGINT"}
    build(con, "marts/indicator_area_group_rate_strata", NO_STRATA)  # unstratified: one stratum per sex x age band
    assert rows(con, "select sex, ethnicity_stratum, cases, population, register_in_range "
                     "from indicator_area_group_rate_strata where area_type = 'icb' and group_type = 'all' "
                     "order by sex") == [("F", "*", 6, 13, 3), ("I", "*", 0, 0, 1)]


def test_indicator_reference_rates_pool_the_dataset_per_stratum(con):
    given(con, "indicator_stratified_counts", INDICATOR_STRATIFIED, [
        (DATE_0, "bp_control", "A", "N1", "White", "1", "F", "F", "60-64", 4, 1, 0),
        (DATE_0, "bp_control", "B", None, "Asian", "5", "F", "F", "60-64", 6, 5, 0),
        (DATE_0, "bp_control", "B", None, "Asian", "5", "M", "M", "60-64", 2, 0, 0),
    ])
    build(con, "marts/indicator_reference_rates", NO_STRATA)
    assert rows(con, "select * from indicator_reference_rates order by sex") == [
        (DATE_0, "bp_control", "F", "60-64", "*", "*", 10, 6, 0.6),
        (DATE_0, "bp_control", "M", "60-64", "*", "*", 2, 0, 0.0),
    ]
    build(con, "marts/indicator_reference_rates", {"by_imd": False, "by_ethnicity": True})
    assert rows(con, "select sex, ethnicity_stratum, rate from indicator_reference_rates order by sex, 2") == [
        ("F", "Asian", 5 / 6), ("F", "White", 0.25), ("M", "Asian", 0.0)]


def test_indicator_counts_observed_population_expected_per_area_and_group(con):
    """Expected = denominator x the indicator's reference rate per stratum, summed into areas and groups; for case
    finding `register_in_range` is summed too, and a group whose denominator is empty is left out."""
    practices(con)
    given(con, "indicator_settings", INDICATOR_SETTINGS, [
        ("bp_control", "BP control", "outcome", "htn", 18, 79, 12, 1),
        ("possible_htn", "Possible hypertension", "case_finding", "htn", 18, None, 24, 1),
    ])
    given(con, "indicator_stratified_counts", INDICATOR_STRATIFIED, [
        (DATE_0, "bp_control", "A", "N1", "White", "1", "F", "F", "60-64", 4, 1, 0),
        (DATE_0, "bp_control", "B", None, "Asian", "5", "F", "F", "60-64", 6, 5, 0),
        (DATE_0, "possible_htn", "A", "N1", "White", "1", "F", "F", "60-64", 0, 0, 2),  # all on the register
        (DATE_0, "possible_htn", "A", "N1", "White", "1", "M", "M", "60-64", 3, 1, 1),
    ])
    given(con, "indicator_reference_rates", INDICATOR_RATES, [
        (DATE_0, "bp_control", "F", "60-64", "*", "*", 10, 6, 0.6),
        (DATE_0, "possible_htn", "F", "60-64", "*", "*", 0, 0, None),  # nobody in the denominator: no rate
        (DATE_0, "possible_htn", "M", "60-64", "*", "*", 4, 2, 0.5),   # rates pool the whole dataset
    ])
    build(con, "intermediate/int_area_names")
    build(con, "marts/indicator_area_group_rate_strata", NO_STRATA)
    build(con, "marts/indicator_counts")
    got = rows(con, "select * from indicator_counts")
    # bp_control: A 1 of 4 (expected 4 x 0.6), B 5 of 6 (6 x 0.6); the PCN and ICB hold both practices
    by_practice = {"A": ("Alpha Surgery", "White", "1", 1, 4, 2.4), "B": ("Beta Surgery", "Asian", "5", 5, 6, 3.6)}
    expected = []
    for code, (name, ethnic_group, quintile, observed, population, expected_count) in by_practice.items():
        for group_type, value in every_group(ethnic_group, quintile, "F", "60-64"):
            expected.append((DATE_0, "bp_control", "outcome", "practice", code, name, group_type, value, observed,
                             population, expected_count, 0))
    for group_type, value in every_group("White", "1", "F", "60-64"):
        expected.append((DATE_0, "bp_control", "outcome", "neighbourhood", "N1", "Riverside", group_type, value, 1, 4,
                         2.4, 0))
    for area_type, code, name in (("pcn", "P", "North PCN"), ("icb", "I", "Test ICB")):
        expected += [(DATE_0, "bp_control", "outcome", area_type, code, name, "all", "All", 6, 10, 6.0, 0),
                     (DATE_0, "bp_control", "outcome", area_type, code, name, "sex", "F", 6, 10, 6.0, 0),
                     (DATE_0, "bp_control", "outcome", area_type, code, name, "age_band", "60-64", 6, 10, 6.0, 0)]
        for ethnic_group, quintile, observed, population, expected_count in (("White", "1", 1, 4, 2.4),
                                                                              ("Asian", "5", 5, 6, 3.6)):
            expected += [(DATE_0, "bp_control", "outcome", area_type, code, name, "ethnicity", ethnic_group, observed,
                          population, expected_count, 0),
                         (DATE_0, "bp_control", "outcome", area_type, code, name, "imd_quintile", quintile, observed,
                          population, expected_count, 0)]
    # possible_htn, all in practice A / N1: the men 1 of 3 (expected 3 x 0.5), 1 of them on the register; the women
    # all on the register (2): no denominator, so no sex F row, but their 2 count in the groups that hold the men too
    for area_type, code, name in (("practice", "A", "Alpha Surgery"), ("pcn", "P", "North PCN"),
                                  ("icb", "I", "Test ICB"), ("neighbourhood", "N1", "Riverside")):
        for group_type, value, register_in_range in (("all", "All", 3), ("ethnicity", "White", 3),
                                                     ("imd_quintile", "1", 3), ("sex", "M", 1),
                                                     ("age_band", "60-64", 3)):
            expected.append((DATE_0, "possible_htn", "case_finding", area_type, code, name, group_type, value, 1, 3,
                             1.5, register_in_range))
    assert sorted(got, key=str) == sorted(expected, key=str)


NUMERATORS = ["period", "indicator", "patient_id", "practice_code", "neighbourhood_code", "ethnic_group",
              "imd_quintile", "sex", "age"]


def test_indicator_trend_transitions_counts_patients_meeting_the_indicator_in_the_cell_on_both_dates(con):
    practices(con)
    given(con, "periods", ["period"], [(DATE_0,), (DATE_1,)])
    given(con, "int_indicator_numerators", NUMERATORS, [
        (DATE_0, "bp_control", "stays", "A", "N1", "White", "1", "F", 60),
        (DATE_1, "bp_control", "stays", "A", "N1", "White", "1", "F", 61),
        (DATE_0, "bp_control", "moves_practice", "A", "N1", "Asian", "2", "M", 40),   # to B, out of N1
        (DATE_1, "bp_control", "moves_practice", "B", None, "Asian", "2", "M", 41),
        (DATE_0, "bp_control", "moves_band", "A", "N1", "White", "1", "F", 64),       # 60-64 -> 65-69
        (DATE_1, "bp_control", "moves_band", "A", "N1", "White", "1", "F", 65),
        (DATE_0, "bp_control", "first_only", "A", "N1", "White", "1", "F", 50),
        (DATE_0, "bp_control", "other_indicator_later", "A", "N1", "White", "1", "F", 70),
        (DATE_1, "smi_check", "other_indicator_later", "A", "N1", "White", "1", "F", 71),
    ])
    build(con, "intermediate/int_period_pairs")
    build(con, "marts/indicator_trend_transitions")
    got = rows(con, "select * from indicator_trend_transitions")
    # practice A and N1: stays and moves_band (not in the same age band on both dates)
    in_a = [("all", "All", 2), ("ethnicity", "White", 2), ("imd_quintile", "1", 2), ("sex", "F", 2),
            ("age_band", "60-64", 1)]
    # the PCN and ICB hold moves_practice on both dates too; practice B holds nobody on both
    in_a_and_b = [("all", "All", 3), ("ethnicity", "White", 2), ("ethnicity", "Asian", 1), ("imd_quintile", "1", 2),
                  ("imd_quintile", "2", 1), ("sex", "F", 2), ("sex", "M", 1), ("age_band", "60-64", 1),
                  ("age_band", "40-44", 1)]
    expected = [(DATE_0, DATE_1, "bp_control", area_type, code, group_type, value, cases_both)
                for area_type, code, groups in (("practice", "A", in_a), ("neighbourhood", "N1", in_a),
                                                ("pcn", "P", in_a_and_b), ("icb", "I", in_a_and_b))
                for group_type, value, cases_both in groups]
    assert sorted(got, key=str) == sorted(expected, key=str)


def test_indicator_trend_expected_applies_the_earlier_dates_rates_to_both_dates(con):
    practices(con)
    given(con, "periods", ["period"], [(DATE_0,), (DATE_1,)])
    given(con, "indicator_stratified_counts", INDICATOR_STRATIFIED, [
        (DATE_0, "bp_control", "A", "N1", "White", "1", "F", "F", "40-44", 10, 1, 0),
        (DATE_1, "bp_control", "A", "N1", "White", "1", "F", "F", "40-44", 20, 9, 0),
        (DATE_0, "bp_control", "B", None, "Asian", "Unknown", "M", "M", "50-54", 5, 1, 0),
        (DATE_1, "bp_control", "B", None, "Asian", "Unknown", "M", "M", "50-54", 8, 4, 0),
    ])
    given(con, "indicator_reference_rates", INDICATOR_RATES, [
        (DATE_0, "bp_control", "F", "40-44", "*", "*", 10, 1, 0.1),
        (DATE_0, "bp_control", "M", "50-54", "*", "*", 5, 1, 0.2),
        (DATE_1, "bp_control", "F", "40-44", "*", "*", 20, 9, 0.45),  # the later date's own rates: not used
        (DATE_1, "bp_control", "M", "50-54", "*", "*", 8, 4, 0.5),
    ])
    build(con, "intermediate/int_period_pairs")
    build(con, "marts/indicator_area_group_rate_strata", NO_STRATA)
    build(con, "marts/indicator_trend_expected")
    got = rows(con, "select * from indicator_trend_expected")
    # A: 10 x 0.1 and 20 x 0.1; B: 5 x 0.2 and 8 x 0.2; the PCN and ICB the sums
    expected = [(DATE_0, DATE_1, "bp_control", area_type, code, group_type, value, 1.0, 2.0)
                for (area_type, code), (group_type, value) in itertools.product(
                    [("practice", "A"), ("neighbourhood", "N1")], every_group("White", "1", "F", "40-44"))]
    expected += [(DATE_0, DATE_1, "bp_control", "practice", "B", group_type, value, 1.0, 1.6)
                 for group_type, value in every_group("Asian", "Unknown", "M", "50-54")]
    for area_type, code in (("pcn", "P"), ("icb", "I")):
        expected.append((DATE_0, DATE_1, "bp_control", area_type, code, "all", "All", 2.0, 3.6))
        for (group_type, first_value, second_value) in (("ethnicity", "White", "Asian"),
                                                        ("imd_quintile", "1", "Unknown"), ("sex", "F", "M"),
                                                        ("age_band", "40-44", "50-54")):
            expected += [(DATE_0, DATE_1, "bp_control", area_type, code, group_type, first_value, 1.0, 2.0),
                         (DATE_0, DATE_1, "bp_control", area_type, code, group_type, second_value, 1.0, 1.6)]
    assert sorted(got, key=str) == sorted(expected, key=str)
