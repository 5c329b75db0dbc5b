"""No patient-level value (patient_id, date of birth) and no local path leaves the secure environment: not in
logs at DEBUG level (bad rows and rejects included), not in anything under reports/ (CSV text, PDF text, PDF
bytes, document metadata and XMP), not in the one-sentence errors of file-level faults."""
from __future__ import annotations

import getpass
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli, write_config, write_raw

N = 48
PIDS = [f"PIDSECRET{i:04d}" for i in range(N)]
# distinctive dates of birth (first of the month, years no report mentions)
DOBS = [f"{1921 + i % 37}-{1 + i % 12:02d}-01" for i in range(N)]
BAD_DOB = "1933-13-01"        # unparseable: a rejected row whose raw value must not be logged
BAD_SEX_PID = "PIDSECRETBADSEX"
ORPHAN_PID = "PIDSECRETORPHAN"
FORBIDDEN_PATH_BITS = ("/root", "/home", "/tmp")


def _raw(tmp_path: Path) -> tuple[Path, Path]:
    pats = [dict(patient_id=p, sex="FM"[i % 2], date_of_birth=d, ethnicity="ABHMRZ"[i % 6], lsoa_code=f"L{i % 3}",
                 date_of_death="2024-06-01" if i == 5 else "") for i, (p, d) in enumerate(zip(PIDS, DOBS, strict=True))]
    pats += [dict(patient_id="PIDSECRETBADDOB", sex="F", date_of_birth=BAD_DOB, ethnicity="A", lsoa_code="L1"),
             dict(patient_id=BAD_SEX_PID, sex="X", date_of_birth="1944-04-01", ethnicity="A", lsoa_code="L1"),
             dict(patient_id=PIDS[0], sex="F", date_of_birth=DOBS[0], ethnicity="A", lsoa_code="L1"),  # duplicate id
             dict(patient_id="", sex="M", date_of_birth="1945-05-01", ethnicity="A", lsoa_code="L1")]
    regs = [dict(patient_id=p, practice_code=f"A{i % 2}", registered_from="2000-01-01", registered_to="")
            for i, p in enumerate(PIDS)]
    regs += [dict(patient_id=ORPHAN_PID, practice_code="A0", registered_from="2000-01-01", registered_to=""),
             dict(patient_id=PIDS[1], practice_code="ZZZ99", registered_from="2000-01-01", registered_to=""),
             dict(patient_id=PIDS[2], practice_code="A0", registered_from="2010-01-01", registered_to="2005-01-01"),
             dict(patient_id=PIDS[3], practice_code="A0", registered_from="2001-02-30", registered_to="")]
    evs = [dict(patient_id=p, code="111", date="2020-05-01") for p in PIDS[::3]]
    evs += [dict(patient_id=PIDS[4], code="", date="2020-05-01"),
            dict(patient_id=ORPHAN_PID, code="111", date="2020-05-01"),
            dict(patient_id=PIDS[6], code="111", date="2099-01-01")]
    raw = write_raw(tmp_path / "raw", {
        "patients": pats, "registrations": regs, "events": evs,
        "practices": [dict(practice_code=f"A{j}", practice_name=f"Practice {'AB'[j]}", pcn_code="P0",
                           pcn_name="Alder PCN", icb_code="I1", icb_name="Test ICB") for j in range(2)],
        "deprivation": [dict(lsoa_code=f"L{j}", imd_score=10 * j, imd_rank=100 * j + 1, imd_decile=1 + 3 * j)
                        for j in range(3)],
        "codelists/dep": ["111"],
    })
    cfg = write_config(tmp_path / "config.toml", ["2024-03-31", "2025-03-31"],
                       [dict(id="dep", label="Depression", codelist="codelists/dep.csv", min_age=0)],
                       input={"max_reject_share": 1.0})  # the planted bad rows are a large share of these few
    return raw, cfg


def _secrets() -> list[str]:
    return ["PIDSECRET", *DOBS, BAD_DOB]


def _assert_clean(text: str, where: str, tmp_path: Path | None = None) -> None:
    hits = [s for s in _secrets() if s in text]
    assert not hits, f"{where}: patient-level values {hits[:5]} appear"
    if tmp_path is not None:
        assert str(tmp_path) not in text, f"{where}: the local path appears"


def _pdf_parts(path: Path) -> dict[str, str]:
    from pypdf import PdfReader

    r = PdfReader(str(path))
    xmp = ""
    md = r.trailer["/Root"].get("/Metadata")
    if md is not None:
        xmp = md.get_object().get_data().decode("utf-8", "replace")
    return dict(text="\n".join(p.extract_text() or "" for p in r.pages),
                metadata="\n".join(f"{k}: {v}" for k, v in (r.metadata or {}).items()), xmp=xmp,
                raw=path.read_bytes().decode("latin-1"))


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("privacy")
    raw, cfg = _raw(tmp)
    code, out, err = run_cli("run", "--raw", raw, "--processed", tmp / "processed", "--reports", tmp / "reports",
                             "--config", cfg, env={"PIPELINE_LOG": "DEBUG", "PIPELINE_TODAY": "2025-06-01"})
    assert code == 0, err[-3000:]
    return tmp, out, err


def test_bad_rows_were_really_rejected(debug_run):
    tmp, _, _ = debug_run
    rej = pd.read_parquet(tmp / "processed" / "rejects.parquet") if (tmp / "processed" / "rejects.parquet").exists() \
        else None
    if rej is None:
        import duckdb

        with duckdb.connect(str(tmp / "processed" / "warehouse.duckdb"), read_only=True) as con:
            rej = con.execute("select * from rejects").df()
    # at least: bad DOB, bad sex, duplicate id, empty id, orphan registration, unknown practice, reversed spell,
    # bad date, empty code, orphan event, future date
    assert len(rej) >= 10, rej


def test_logs_at_debug_hold_no_patient_values(debug_run):
    _, out, err = debug_run
    assert "DEBUG" in err or "INFO" in err  # the log level was honoured
    tmp, _, _ = debug_run
    _assert_clean(out, "stdout", tmp)
    _assert_clean(err, "stderr (DEBUG log)", tmp)
    for bit in FORBIDDEN_PATH_BITS:  # no local path of any kind, including libraries' temporary directories
        assert bit not in err, f"the DEBUG log names a local path ({bit})"


def test_reports_hold_no_patient_values_or_local_paths(debug_run):
    tmp, _, _ = debug_run
    reports = tmp / "reports"
    files = [p for p in reports.rglob("*") if p.is_file()]
    assert any(p.suffix == ".pdf" for p in files) and any(p.suffix == ".csv" for p in files)
    user = getpass.getuser()
    node = os.uname().nodename
    for f in files:
        rel = f.relative_to(reports)
        assert "PIDSECRET" not in f.name
        if f.suffix == ".pdf":
            parts = _pdf_parts(f)
            for name, text in parts.items():
                _assert_clean(text, f"{rel} {name}", tmp)
            meta = parts["metadata"] + "\n" + parts["xmp"]
            for name in ("text", "metadata", "xmp"):
                for bit in FORBIDDEN_PATH_BITS:
                    assert bit not in parts[name], f"{rel} {name}: a local path ({bit}) appears"
            assert "/Title" in parts["metadata"] and parts["metadata"].split("/Title: ")[1].strip(), rel
            for who in {user, node} - {""}:
                assert f"/Author: {who}" not in meta and f">{who}<" not in meta, f"{rel}: the user or host name"
                assert who not in parts["metadata"], f"{rel}: '{who}' in the document metadata"
        else:
            text = f.read_text(encoding="utf-8")
            _assert_clean(text, str(rel), tmp)
            for bit in FORBIDDEN_PATH_BITS:
                assert bit not in text, f"{rel}: a local path ({bit}) appears"


@pytest.mark.parametrize("fault", ["missing_column", "semicolons", "bad_header_value", "unknown_stage_file"])
def test_file_level_faults_name_no_patient_value_and_no_path(tmp_path, fault):
    raw, cfg = _raw(tmp_path)
    p = raw / "patients.csv"
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    if fault == "missing_column":
        df.drop(columns=["date_of_birth"]).to_csv(p, index=False)
    elif fault == "semicolons":
        df.to_csv(p, index=False, sep=";")
    elif fault == "bad_header_value":  # a header that is a patient row (pasted without its header)
        df.iloc[1:].to_csv(p, index=False, header=[str(v) for v in df.iloc[0]])
    elif fault == "unknown_stage_file":
        (raw / "registrations.csv").unlink()
    code, out, err = run_cli("run", "--raw", raw, "--processed", tmp_path / "processed", "--reports",
                             tmp_path / "reports", "--config", cfg, env={"PIPELINE_LOG": "DEBUG"})
    assert code != 0
    assert "Traceback" not in err, err[-2000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors, err[-2000:]
    if fault != "bad_header_value":
        _assert_clean(out + err, f"{fault}: output", tmp_path)
    else:  # the header itself is made of one patient's values; the message may not repeat them either
        _assert_clean("\n".join(errors), f"{fault}: error message", tmp_path)
    assert str(tmp_path) not in err, f"{fault}: the local path appears in stderr"


def test_check_report_and_guard_hold_no_patient_values_or_local_paths(tmp_path):
    """`check` names rows by number, never by value; the reject-rate guard's sentence likewise."""
    raw, cfg = _raw(tmp_path)
    code, out, err = run_cli("check", "--raw", raw, "--config", cfg, env={"PIPELINE_LOG": "DEBUG",
                                                                          "PIPELINE_TODAY": "2025-06-01"})
    assert code in (0, 1) and "Traceback" not in err, err
    assert "verdict:" in out
    _assert_clean(out, "check stdout", tmp_path)
    _assert_clean(err, "check stderr", tmp_path)
    cfg.write_text(cfg.read_text().replace("max_reject_share = 1.0", "max_reject_share = 0.01"))
    code, out, err = run_cli("ingest", "--raw", raw, "--processed", tmp_path / "p", "--config", cfg,
                             env={"PIPELINE_TODAY": "2025-06-01"})
    assert code == 2 and "stopped after ingest" in err, err
    _assert_clean(err, "guard message", tmp_path)
