"""dsr_table: the European Standard Population restricted to a condition's ages, and a note for every NA."""
import duckdb
import numpy as np
import pytest

from pipeline import indicators, stats
from pipeline.schema import AGE_BANDS


def _con(rows):
    con = duckdb.connect()
    con.execute("create table area_group_strata (period date, condition varchar, area_type varchar, area_code varchar, "
                "group_type varchar, group_value varchar, sex varchar, age_band varchar, observed bigint, "
                "population bigint)")
    con.executemany("insert into area_group_strata values ('2025-03-31', ?, 'icb', 'I', 'all', 'All', 'F', ?, ?, ?)",
                    rows)
    return con


def test_dsr_weights_the_band_holding_min_age_by_its_share_and_notes_min_age_above_90():
    adult = [("adult", band, index, 100) for index, band in enumerate(AGE_BANDS) if index >= 3]  # 15-19 (18, 19) on
    old = [("old", "90+", 22, 29)]                                         # min_age 91: inside the open 90+ band
    table = indicators.dsr_table(_con(adult + old), {"adult": 18, "old": 91}).set_index("condition")
    weights = stats.ESP2013[3:].astype(float).copy()
    weights[0] *= 2 / 5
    rates = np.arange(3, len(AGE_BANDS)) / 100
    assert table.loc["adult", "dsr"] == pytest.approx(100_000 * np.sum(rates * weights) / weights.sum(), rel=1e-12)
    assert table.loc["adult", "note"] == ""
    assert np.isnan(table.loc["old", "dsr"]) and table.loc["old", "observed"] == 22
    assert table.loc["old", "note"] == "min_age above 90: no standard band to weight"
