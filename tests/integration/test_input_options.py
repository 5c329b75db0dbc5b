"""The configuration's [input] section and the reject-rate guard, through the real CLI.

A DD/MM/YYYY extract stops after ingest with one sentence that says what to do; with `date_format` declared it
runs and matches the ISO run exactly. Export headers load through column maps, Windows-1252 text through
`encoding`. A file losing more than `max_reject_share` of its rows stops the run after ingest, with rejects and
load_summary kept. Every message is asserted word for word.
"""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from conftest import REPO_ROOT, allow_rejects, run_cli, run_pipeline, small_raw, write_config

DEMO_PATIENTS = 2000


def error_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    """Row order is not part of the contract: compare tables sorted on every column."""
    return df.sort_values(list(df.columns), kind="stable").reset_index(drop=True)


def config_with_input(path, extra: str):
    path.write_text((REPO_ROOT / "pipeline" / "default.toml").read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_pair(tmp_path_factory, demo_extracts):
    """The same demo extract twice: ISO dates in Parquet, and DD/MM/YYYY dates in CSV (as GP exports write them);
    the session's demo extracts (conftest `demo_extracts`, DEMO_PATIENTS patients) linked into a folder of this
    module's own, where its runs write."""
    tmp = tmp_path_factory.mktemp("dates")
    for name in ("iso", "dmy"):
        (tmp / name).symlink_to(demo_extracts / name, target_is_directory=True)
    return tmp


def test_dd_mm_yyyy_extract_stops_after_ingest_with_one_sentence(demo_pair):
    tmp = demo_pair
    assert (tmp / "dmy" / "patients.csv").read_text().splitlines()[1].count("/") >= 2
    processed = tmp / "p_stopped"
    code, _, err = run_cli("run", "--raw", tmp / "dmy", "--processed", processed, "--reports", tmp / "r_stopped")
    assert error_line(code, err) == (
        f"error: patients.csv lost 100% of its rows ({DEMO_PATIENTS:,} of {DEMO_PATIENTS:,}), more than the 5% allowed "
        "(input.max_reject_share), so the run stopped after ingest; the commonest reason is \"date_of_birth is not a "
        f"valid date (expected YYYY-MM-DD)\" ({DEMO_PATIENTS:,} rows, e.g. row 1); its dates look like DD/MM/YYYY, so "
        "declare date_format = \"%d/%m/%Y\" under [input] in the configuration; run `python -m pipeline check --raw "
        "<raw directory>` for the full picture (rejects and load_summary are in the warehouse)")
    # nothing is lost: rejects and load_summary are written, no mart is, and no report
    assert sorted(p.name for p in processed.glob("*.parquet")) == ["load_summary.parquet", "rejects.parquet"]
    assert not any((tmp / "r_stopped").glob("**/*.pdf"))
    with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from rejects where source = 'patients'").fetchone()[0] == DEMO_PATIENTS
        assert con.execute("select sum(rows_read) = sum(rows_loaded + rows_rejected) from load_summary").fetchone()[0]
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    assert "prevalence" not in tables
    # the ingest stage alone stops the same way
    code, _, err2 = run_cli("ingest", "--raw", tmp / "dmy", "--processed", tmp / "p_ingest")
    assert error_line(code, err2) == error_line(code, err)


def _marts(processed) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
        return {t: _sorted(con.execute(f"select * from {t}").df())
                for t in ("prevalence_counts", "stratified_counts", "data_quality", "rejects")}


def test_declared_date_format_matches_the_iso_run_exactly(demo_pair):
    """Counts after transform are identical (the full runs' prevalence tables are compared in the walkthrough,
    tests/integration/test_walkthrough.py, on 10,000 patients)."""
    tmp = demo_pair
    cfg = config_with_input(tmp / "dmy.toml", '[input]\ndate_format = "%d/%m/%Y"\n')
    stages = ("ingest", "transform")
    assert run_pipeline(tmp / "iso", tmp / "p_iso", tmp / "r_iso", stages=stages)[0] == 0
    code, _, err = run_pipeline(tmp / "dmy", tmp / "p_dmy", tmp / "r_dmy", cfg, stages=stages)
    assert code == 0, err
    iso, dmy = _marts(tmp / "p_iso"), _marts(tmp / "p_dmy")
    for table in iso:
        pd.testing.assert_frame_equal(iso[table], dmy[table])
    assert len(iso["prevalence_counts"]) > 1000 and len(iso["rejects"]) == 0
    # typed Parquet dates are unambiguous: the declared format does not stop them loading
    code, _, err = run_pipeline(tmp / "iso", tmp / "p_iso_declared", tmp / "r", cfg, stages=("ingest",))
    assert code == 0, err
    with duckdb.connect(str(tmp / "p_iso_declared" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select sum(rows_rejected) from load_summary").fetchone()[0] == 0


def test_export_headers_and_windows_1252_text_load_through_input(tmp_path):
    raw, cfg = small_raw(tmp_path / "base")
    raw2, _ = small_raw(tmp_path / "export")
    for r in (raw, raw2):  # a practice name that is not ASCII
        p = r / "practices.csv"
        p.write_text(p.read_text(encoding="utf-8").replace("Practice 1", "Practice Pontefract Café"), encoding="utf-8")
    # the export: its own headers, and every file saved from a spreadsheet as Windows-1252
    renames = {"patients": {"date_of_birth": "DOB", "patient_id": "Patient ID"},
               "registrations": {"registered_from": "Registered Date", "patient_id": "Patient ID"}}
    for stem, ren in renames.items():
        df = pd.read_csv(raw2 / f"{stem}.csv", dtype=str, keep_default_na=False)
        df.rename(columns=ren).to_csv(raw2 / f"{stem}.csv", index=False)
    for p in raw2.glob("*.csv"):
        p.write_bytes(p.read_text(encoding="utf-8").encode("cp1252"))
    assert b"Caf\xe9" in (raw2 / "practices.csv").read_bytes()
    code, _, err = run_pipeline(raw2, tmp_path / "p_plain", tmp_path / "r", cfg, stages=("ingest",))
    assert error_line(code, err) == ("error: practices.csv is not UTF-8 text (first bad byte on line 3); save it as "
                                     "UTF-8, or declare its encoding in the configuration (e.g. encoding = \"cp1252\" "
                                     "under [input])")
    cfg2 = write_config(tmp_path / "export.toml", ["2024-03-31", "2025-03-31"],
                        [dict(id="dep", label="Depression", codelist="codelists/dep.csv", min_age=18)])
    with open(cfg2, "a", encoding="utf-8") as fh:
        fh.write('[input]\nencoding = "cp1252"\n[input.columns.patients]\ndate_of_birth = "DOB"\npatient_id = "Patient ID"\n'
                 '[input.columns.registrations]\nregistered_from = "Registered Date"\npatient_id = "Patient ID"\n')
    stages = ("ingest", "transform")
    assert run_pipeline(raw, tmp_path / "p_base", tmp_path / "r", cfg, stages=stages)[0] == 0
    code, _, err = run_pipeline(raw2, tmp_path / "p_export", tmp_path / "r", cfg2, stages=stages)
    assert code == 0, err
    base, export = _marts(tmp_path / "p_base"), _marts(tmp_path / "p_export")
    for table in base:
        pd.testing.assert_frame_equal(base[table], export[table])
    with duckdb.connect(str(tmp_path / "p_export" / "warehouse.duckdb"), read_only=True) as con:
        assert "Practice Pontefract Café" in {r[0] for r in con.execute("select practice_name from practices").fetchall()}
    # a mapped header the file lacks is named with its mapping
    (raw2 / "patients.csv").write_bytes((raw2 / "patients.csv").read_bytes().replace(b"DOB", b"Birth"))
    code, _, err = run_pipeline(raw2, tmp_path / "p_export", tmp_path / "r", cfg2, stages=("ingest",))
    assert error_line(code, err) == ("error: patients.csv has no column `dob` (the configuration's "
                                     "[input.columns.patients] maps it to `date_of_birth`)")


@pytest.mark.parametrize("section, expected", [
    ('[input]\ndate_fromat = "%d/%m/%Y"\n',
     "error: configuration file c.toml: [input] has an unknown key `date_fromat` (known: columns, date_format, "
     "encoding, lsoa_lookup, max_reject_share)"),
    ('[input]\ndate_format = "DD/MM/YYYY"\n',
     "error: configuration file c.toml: input.date_format 'DD/MM/YYYY' is not a strftime pattern with a day, month "
     "and year (e.g. \"%d/%m/%Y\")"),
    ('[input]\nencoding = "windows-9999"\n',
     "error: configuration file c.toml: input.encoding 'windows-9999' is not a known text encoding (e.g. \"utf-8\", "
     "\"cp1252\")"),
    ('[input]\nmax_reject_share = 5\n',
     "error: configuration file c.toml: input.max_reject_share must be a share from 0 to 1 (e.g. 0.05)"),
    ('[input.columns.patient]\ndate_of_birth = "DOB"\n',
     "error: configuration file c.toml: [input.columns.patient] names no input file (files: practices, deprivation, "
     "neighbourhoods, patients, registrations, events)"),
    ('[input.columns.patients]\ndob = "DOB"\n',
     "error: configuration file c.toml: [input.columns.patients] maps `dob`, which is not a column of patients "
     "(columns: patient_id, sex, date_of_birth, ethnicity, lsoa_code, date_of_death)"),
    ('[input]\nlsoa_lookup = "lookups/none.csv"\n',
     "error: the LSOA lookup lookups/none.csv (input.lsoa_lookup) is missing from the raw directory; it is the ONS "
     "\"LSOA (2011) to LSOA (2021) to Local Authority District (2022) Lookup for England and Wales\" (Open Geography "
     "Portal)"),
])
def test_input_section_errors_are_one_sentence(tmp_path, section, expected):
    raw, cfg = small_raw(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text((tmp_path / "config.toml").read_text() + "\n" + section)
    code, _, err = run_cli("ingest", "--raw", raw, "--processed", tmp_path / "p", "--config", cfg)
    assert error_line(code, err) == expected


def test_reject_share_guard_is_configurable(tmp_path):
    raw, cfg = small_raw(tmp_path)   # 60 patients, 20 events
    with open(raw / "events.csv", "a") as fh:
        fh.write("p001,111,2020-13-01\np002,,2020-01-01\np003,111,2020-13-02\n")
    code, _, err = run_cli("run", "--raw", raw, "--processed", tmp_path / "p", "--reports", tmp_path / "r", "--config", cfg)
    assert error_line(code, err) == (
        "error: events.csv lost 13.0% of its rows (3 of 23), more than the 5% allowed (input.max_reject_share), so the "
        "run stopped after ingest; the commonest reason is \"date is not a valid date (expected YYYY-MM-DD)\" (2 rows, "
        "e.g. row 21); run `python -m pipeline check --raw <raw directory>` for the full picture (rejects and "
        "load_summary are in the warehouse)")
    allow_rejects(cfg, 0.2)
    code, _, err = run_cli("run", "--raw", raw, "--processed", tmp_path / "p", "--reports", tmp_path / "r", "--config", cfg)
    assert code == 0, err
    assert len(pd.read_parquet(tmp_path / "p" / "rejects.parquet")) == 3
