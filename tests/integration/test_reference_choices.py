"""Reference choices (configuration `[reference]`): external rates and extra standardisation strata."""
from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, run_pipeline, small_raw

from pipeline.config import Config, Reference
from pipeline.errors import PipelineError
from pipeline.ingest import load_external_rates
from pipeline.warehouse import load_macros


def _run(tmp_path, raw, cfg):
    code, _, err = run_pipeline(raw, tmp_path / "p", tmp_path / "r", cfg)   # the data stages, in this process
    assert code == 0, err
    return pd.read_parquet(tmp_path / "p" / "prevalence.parquet")


def _counts(tmp_path):
    con = duckdb.connect(str(tmp_path / "p" / "warehouse.duckdb"), read_only=True)
    df = con.execute("select * from stratified_counts").df()
    con.close()
    return df


def test_external_rates_give_expected_from_the_file(tmp_path):
    raw, cfg = small_raw(tmp_path)
    bands = [f"{a}-{a + 4}" for a in range(0, 90, 5)] + ["90+"]
    rates = pd.DataFrame([dict(condition="dep", sex=s, age_band=b, rate=0.01 * (1 + i % 7)) for s in "FMIU"
                          for i, b in enumerate(bands)])
    rates.to_csv(raw / "national_rates.csv", index=False)
    cfg.write_text(cfg.read_text() + '\n[reference]\nrates = "national_rates.csv"\n')
    prev = _run(tmp_path, raw, cfg)
    sc = _counts(tmp_path).merge(rates, on=["condition", "sex", "age_band"])
    want = sc.groupby("period")[["population"]].apply(lambda g: (g["population"] * sc.loc[g.index, "rate"]).sum())
    got = prev[(prev.area_type == "icb") & (prev.group_type == "all")].set_index("period")["expected"]
    np.testing.assert_allclose(got.sort_index().to_numpy(), want.sort_index().to_numpy(), rtol=1e-12)


def test_external_rates_missing_a_stratum_is_one_sentence(tmp_path):
    raw, cfg = small_raw(tmp_path)
    pd.DataFrame([dict(condition="dep", sex="F", age_band="40-44", rate=0.1)]).to_csv(raw / "r.csv", index=False)
    cfg.write_text(cfg.read_text() + '\n[reference]\nrates = "r.csv"\n')
    code, _, err = run_cli("run", "--raw", raw, "--processed", tmp_path / "p", "--reports", tmp_path / "r", "--config", cfg)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: reference rates file r.csv has no rate for condition dep, sex F")


@pytest.mark.parametrize("lines, words", [
    (["dep,F,40-44,0.1,31/03/2024"], "row 1: period must be an ISO date"),
    (["dep,F,40-44,0.1,", "dep,M,40-44,0.2,", "dep,F, 40 - 44 ,0.3,"], "row 3: gives a second rate for the same "
                                                                      "condition, sex, age band and period as row 1"),
])
def test_external_rates_a_bad_period_or_a_repeated_stratum_is_one_sentence(tmp_path, lines, words):
    """Before, an unreadable period made the row apply to every date, and a stratum given twice took the larger
    rate, both silently (found by fuzzing configurations)."""
    (tmp_path / "r.csv").write_text("condition,sex,age_band,rate,period\n" + "\n".join(lines) + "\n")
    con = duckdb.connect()
    load_macros(con)
    with pytest.raises(PipelineError, match=words):
        load_external_rates(con, tmp_path, Config(periods=(), conditions=(), reference=Reference(rates="r.csv")),
                            hashlib.sha256())


def test_external_rates_read_age_bands_written_with_an_en_dash(tmp_path):
    """DESIGN.md writes the bands "0–4, 5–9, …": a file that copies it gives the same rates as "0-4"."""
    (tmp_path / "r.csv").write_text("condition,sex,age_band,rate\ndep,F,40–44,0.1\ndep,F, 90 + ,0.2\n",
                                    encoding="utf-8")
    con = duckdb.connect()
    load_macros(con)
    load_external_rates(con, tmp_path, Config(periods=(), conditions=(), reference=Reference(rates="r.csv")),
                        hashlib.sha256())
    assert con.execute("select age_band, rate from external_rates order by 1").fetchall() == [("40-44", 0.1),
                                                                                            ("90+", 0.2)]


def test_extra_imd_stratum_changes_expected_but_not_counts(tmp_path):
    raw, cfg = small_raw(tmp_path)
    base = _run(tmp_path, raw, cfg)
    cfg.write_text(cfg.read_text() + '\n[reference]\nextra_strata = ["imd_quintile"]\n')
    adj = _run(tmp_path, raw, cfg)
    key = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]
    m = base.merge(adj, on=key, suffixes=("", "_adj"))
    assert len(m) == len(base) == len(adj)
    assert (m["observed"] == m["observed_adj"]).all() and (m["population"] == m["population_adj"]).all()
    # with IMD quintile as a stratum, each quintile's expected equals its observed at ICB level
    q = adj[(adj.area_type == "icb") & (adj.group_type == "imd_quintile")]
    np.testing.assert_allclose(q["expected"], q["observed"], rtol=1e-12, atol=1e-9)
    assert not np.allclose(m["expected"], m["expected_adj"])
