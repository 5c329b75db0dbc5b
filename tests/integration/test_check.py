"""`python -m pipeline check`: the pre-flight report, through the real CLI.

It runs the staging SQL on an in-memory DuckDB and writes nothing; it reports per file rows, columns, date format
and rejects by reason; codelist coverage; practices without a PCN or ICB; LSOAs missing from the deprivation file
with the likely cause (including 2021 LSOA codes beside a 2011-vintage deprivation file, bridged by the ONS
lookup); and ends with one verdict line. Exit status 0 when the run would go ahead, 1 when it would stop.
"""
from __future__ import annotations

import hashlib

import duckdb
import pandas as pd
import pytest
from conftest import REPO_ROOT, run_cli, run_pipeline, small_raw


def tree_hash(d) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(d)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_extracts):
    """A folder with raw/ and raw_dmy/: the session's demo extracts (conftest `demo_extracts`, 2,000 patients),
    linked, not copied (the tests only read them)."""
    tmp = tmp_path_factory.mktemp("check")
    (tmp / "raw").symlink_to(demo_extracts / "iso", target_is_directory=True)
    (tmp / "raw_dmy").symlink_to(demo_extracts / "dmy", target_is_directory=True)
    return tmp


def test_check_on_the_demo_data_says_ready_and_writes_nothing(demo, tmp_path, monkeypatch):
    before = tree_hash(demo / "raw")
    repo_processed = sorted((REPO_ROOT / "data" / "processed").glob("*"))
    code, out, err = run_cli("check", "--raw", demo / "raw")
    assert code == 0, err
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    assert lines[-1] == "verdict: ready to run"
    assert lines[0] == ("check of the raw directory raw/ (configuration default.toml; dates read as YYYY-MM-DD "
                        "(the default); encoding utf-8; a file may lose at most 5% of its rows); nothing is written")
    assert "patients.parquet: 2,000 rows; 2,000 would load, 0 rejected (0.0%)" in lines
    assert "  dates in date_of_birth: YYYY-MM-DD (%Y-%m-%d; 100.0% of distinct values read)" in lines
    assert any(ln.startswith("  depression (diagnosis, codelists/depression.csv): 16 codes; ") for ln in lines)
    assert "practices: every practice has a PCN and an ICB, and every registration's practice is listed" in lines
    assert any(ln.startswith("LSOAs: ") and "not in the deprivation file" in ln for ln in lines)
    assert tree_hash(demo / "raw") == before
    assert sorted((REPO_ROOT / "data" / "processed").glob("*")) == repo_processed
    assert str(demo) not in out + err


def test_check_on_a_mis_dated_copy_names_the_format_and_says_not_ready(demo):
    code, out, err = run_cli("check", "--raw", demo / "raw_dmy")
    assert code == 1, err
    lines = out.strip().splitlines()
    assert lines[-1] == (
        "verdict: NOT READY: the run would stop: patients.csv: dates (date_of_birth, date_of_death) are written "
        "DD/MM/YYYY but the configuration reads YYYY-MM-DD; declare date_format = \"%d/%m/%Y\" under [input] "
        "(6 problems in all, listed above)")
    assert "patients.csv: 2,000 rows; 0 would load, 2,000 rejected (100.0%)" in lines
    assert "    2,000 x date_of_birth is not a valid date (expected YYYY-MM-DD) (rows 1, 2, 3)" in lines
    assert "  PROBLEM: patients.csv would lose 100.0% of its rows, more than the 5% allowed (input.max_reject_share)" in lines
    cfg = demo / "dmy.toml"
    cfg.write_text((REPO_ROOT / "pipeline" / "default.toml").read_text() + '\n[input]\ndate_format = "%d/%m/%Y"\n')
    code, out, err = run_cli("check", "--raw", demo / "raw_dmy", "--config", cfg)
    assert code == 0, out + err
    assert out.strip().splitlines()[-1] == "verdict: ready to run"


def test_check_reports_columns_rejects_and_practices(tmp_path):
    raw, cfg = small_raw(tmp_path)
    pats = pd.read_csv(raw / "patients.csv", dtype=str, keep_default_na=False)
    pats = pats.drop(columns=["sex"]).assign(nhs_region="X")
    pats.to_csv(raw / "patients.csv", index=False)
    prac = pd.read_csv(raw / "practices.csv", dtype=str, keep_default_na=False)
    prac.loc[2, "pcn_code"] = ""
    prac.to_csv(raw / "practices.csv", index=False)
    code, out, err = run_cli("check", "--raw", raw, "--config", cfg)
    assert code == 1, err
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    assert "  columns found: patient_id, date_of_birth, ethnicity, lsoa_code, date_of_death" in lines
    assert "  columns unknown (ignored): nhs_region" in lines
    assert "  PROBLEM: patients.csv is missing the required column `sex`" in lines
    assert "    60 x sex is empty (expected F, M, I or U) (rows 1, 2, 3)" in lines
    assert ("  warning: 1 practices without a PCN (pcn_code is empty; practices file row 3): they and their "
            "registrations are rejected") in lines
    assert ("  warning: 20 registrations name 1 practices that are not in the practices file (e.g. A2)") in lines
    assert lines[-1] == ("verdict: NOT READY: the run would stop: patients.csv is missing the required column `sex` "
                         "(5 problems in all, listed above)")


def _vintage_2021(src, dst, lookup_name="lookups/lsoa11_lsoa21.csv"):
    """A copy of a demo extract whose patients carry '2021' LSOA codes beside the (2011-vintage) deprivation file:
    the first 30 LSOAs split in two, the next 40 merged in pairs; an ONS-style lookup says so. Returns the number of
    patients whose LSOA is truly unknown (empty or outside the deprivation file before the change)."""
    import shutil

    shutil.copytree(src, dst)
    dep = pd.read_csv(dst / "deprivation.csv", dtype=str)
    codes = sorted(dep["lsoa_code"])
    rows, to_new, n = [], {}, 0

    def new_code():
        nonlocal n
        n += 1
        return f"E0197{n:04d}"

    for c in codes[:30]:                                   # split
        a, b = new_code(), new_code()
        rows += [(c, a, "S"), (c, b, "S")]
        to_new[c] = (a, b)
    for c1, c2 in zip(codes[30:70:2], codes[31:70:2]):      # merged in pairs
        m = new_code()
        rows += [(c1, m, "M"), (c2, m, "M")]
        to_new[c1] = to_new[c2] = (m,)
    rows += [(c, c, "U") for c in codes[70:]]
    (dst / "lookups").mkdir()
    pd.DataFrame(rows, columns=["F_LSOA11CD", "LSOA21CD", "CHGIND"]).to_csv(dst / lookup_name, index=False)
    pats = pd.read_parquet(dst / "patients.parquet")
    truly_unknown = int((pats["lsoa_code"].isna() | ~pats["lsoa_code"].isin(set(codes))).sum())
    pats["lsoa_code"] = [to_new[c][i % len(to_new[c])] if c in to_new else c for i, c in enumerate(pats["lsoa_code"])]
    pats.to_parquet(dst / "patients.parquet", index=False)
    nb = pd.read_csv(dst / "neighbourhoods.csv", dtype=str)   # the local neighbourhood file follows the 2021 codes
    nb = pd.concat([nb[~nb["lsoa_code"].isin(to_new)]] + [nb[nb["lsoa_code"] == c].assign(lsoa_code=k)
                                                         for c, new in to_new.items() for k in new])
    nb.drop_duplicates("lsoa_code").to_csv(dst / "neighbourhoods.csv", index=False)
    return truly_unknown


def _truly_unknown(processed, original_raw, lookup) -> pd.DataFrame:
    """Registered patients per period whose LSOA is empty or is neither in the original deprivation file nor a
    2021 code the lookup knows: the Unknown quintile of the original extract, counted in the changed run."""
    known = set(pd.read_csv(original_raw / "deprivation.csv", dtype=str)["lsoa_code"])
    known |= set(pd.read_csv(lookup, dtype=str)["LSOA21CD"])
    with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
        con.register("known", pd.DataFrame({"code": sorted(known)}))
        return con.execute("""select period, count(*) as population from int_patients_registered_on_date
            where lsoa_code is null or lsoa_code not in (select code from known) group by period order by period""").df()


def _unknown_quintile(processed) -> pd.DataFrame:
    """Registered patients (all ages) in the Unknown IMD quintile per period: the population behind every
    prevalence row with imd_quintile Unknown (the transform stage is enough)."""
    with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("""select period, count(*) as population from int_patients_registered_on_date
            where imd_quintile = 'Unknown' group by period order by period""").df()


def test_2021_lsoas_with_a_2011_deprivation_file_are_reported_and_bridged(demo, tmp_path):
    truly_unknown = _vintage_2021(demo / "raw", tmp_path / "raw21")
    raw = tmp_path / "raw21"
    cfg = tmp_path / "lookup.toml"
    cfg.write_text((REPO_ROOT / "pipeline" / "default.toml").read_text()
                   + '\n[input]\nlsoa_lookup = "lookups/lsoa11_lsoa21.csv"\n')
    code, out, err = run_cli("check", "--raw", raw, "--config", cfg)
    assert code == 0, err
    lsoa = out[out.index("\nLSOAs: "):].strip().splitlines()
    assert lsoa[1] == "  the deprivation file has 224 LSOAs: 2011 LSOAs, as IoD 2019"
    assert lsoa[2].startswith("  likely cause: ") and lsoa[2].endswith(
        "have 2021 LSOA codes with an IoD 2019 file (2011 LSOAs): use IoD 2025, or the ONS 2011->2021 lookup "
        "(lsoa_lookup under [input])")
    assert lsoa[-3].startswith("  with the lookup (lsoa11_lsoa21.csv): ")
    assert "still unknown" in lsoa[-3]
    # the run: without the lookup the Unknown quintile swells; with it, it shrinks to the truly unknown
    stages = ("ingest", "transform")
    plain = tmp_path / "p_plain"
    assert run_pipeline(raw, plain, tmp_path / "r", stages=stages)[0] == 0
    bridged = tmp_path / "p_lookup"
    code, _, err = run_pipeline(raw, bridged, tmp_path / "r", cfg, stages=stages)
    assert code == 0, err
    u_plain, u_bridged = (_unknown_quintile(p) for p in (plain, bridged))
    u_base = _truly_unknown(plain, demo / "raw", raw / "lookups" / "lsoa11_lsoa21.csv")
    assert (u_plain["population"] > u_base["population"] * 2).all()
    pd.testing.assert_frame_equal(u_bridged, u_base)
    print(f"\nUnknown IMD quintile, registered patients of all ages (per period): without lookup {u_plain['population'].tolist()}, "
          f"with lookup {u_bridged['population'].tolist()}, truly unknown (original extract) "
          f"{u_base['population'].tolist()}; patients with no or an outside LSOA: {truly_unknown}")
