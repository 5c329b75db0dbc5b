"""Adapters for the official public formats: a file that is not what it claims stops with one clear sentence
naming the file and the column; bad rows go to rejects with a reason. Most cases use tiny files written here;
those marked `real` read ../shared/realdata and skip when it is absent."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import adapters as A
from pipeline.errors import PipelineError
from pipeline.public import poisson_glm, practice_deciles, run_public

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = REPO_ROOT.parent / "shared" / "realdata"
real = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/realdata is not available")

QOF_HEADER = "PRACTICE_CODE,GROUP_CODE,REGISTER,PATIENT_LIST_TYPE,PRACTICE_LIST_SIZE\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _one_sentence(msg: str) -> None:
    assert msg.count("\n") == 0 and "/" not in msg.split(" file ")[-1].split(" ")[0]


def test_qof_missing_register_column(tmp_path):
    f = _write(tmp_path / "PREVALENCE_2223.csv", "PRACTICE_CODE,GROUP_CODE,PATIENT_LIST_TYPE,PRACTICE_LIST_SIZE\n"
               "A81001,DEP,18OV,3000\n")
    with pytest.raises(PipelineError) as e:
        A.read_qof_prevalence(f)
    assert str(e.value) == "QOF prevalence file PREVALENCE_2223.csv has no REGISTER column."
    assert str(tmp_path) not in str(e.value)


def test_qof_bad_rows_are_rejected_with_reasons(tmp_path):
    f = _write(tmp_path / "PREVALENCE_2223.csv", QOF_HEADER +
               "A81001,DEP,112.0,18OV,3000\n"     # fine ('112.0' is a whole number)
               "A81001,DEP,5,18OV,3000\n"         # repeated practice x group
               "A81002,DEP,x,18OV,3000\n"         # register not a number
               "A81003,DEP,10.5,18OV,3000\n"      # register not whole
               "A81004,LD,121,TOTAL,118\n"        # register above list size
               "A81005,DEP,0,18OV,0\n"            # list size 0
               ",DEP,1,18OV,10\n"                 # no practice code
               " a81006 ,dep,3,18OV,30\n")        # trimmed and upper-cased
    a = A.read_qof_prevalence(f)
    assert a.rows_read == 8 and a.rows_loaded == 2 and a.rows_rejected == 6
    reasons = dict(zip(a.rejects["row_number"], a.rejects["reason"], strict=True))
    assert reasons == {2: "PRACTICE_CODE and GROUP_CODE repeat an earlier row",
                       3: "REGISTER is not a whole number of 0 or more",
                       4: "REGISTER is not a whole number of 0 or more",
                       5: "REGISTER is larger than PRACTICE_LIST_SIZE",
                       6: "PRACTICE_LIST_SIZE is 0",
                       7: "PRACTICE_CODE is empty"}
    assert a.rejects.loc[a.rejects["row_number"] == 3, "raw_values"].item().startswith("practice_code=A81002;")
    assert a.data[["practice_code", "condition", "register", "list_size"]].values.tolist() == [
        ["A81001", "DEP", 112, 3000], ["A81006", "DEP", 3, 30]]


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(PipelineError, match=r"^QOF prevalence file PREVALENCE_2223.csv was not found\.$"):
        A.read_qof_prevalence(tmp_path / "PREVALENCE_2223.csv")
    with pytest.raises(PipelineError, match="is empty"):
        A.read_qof_prevalence(_write(tmp_path / "PREVALENCE_2223.csv", ""))


EPRACCUR_ROW = ('"A81001","THE DENSHAM SURGERY","Y63","QHM","THE HEALTH CENTRE","LAWSON STREET","STOCKTON-ON-TEES",'
                '"CLEVELAND","","TS18 1HU","19740401","","A","B","16C","20200401","","01642 672351","","","","0","",'
                '"16C","","4",""\n')


def test_epraccur_headerless_reads(tmp_path):
    a = A.read_epraccur(_write(tmp_path / "epraccur.csv", EPRACCUR_ROW + EPRACCUR_ROW.replace("A81001", "A81002")))
    assert a.data["practice_code"].tolist() == ["A81001", "A81002"]
    assert a.data.loc[0, "icb_code"] == "QHM" and a.data.loc[0, "status"] == "A" and a.data.loc[0, "is_gp_practice"]
    assert str(a.data.loc[0, "open_date"]) == "1974-04-01"


def test_epraccur_with_a_header_row_is_refused(tmp_path):
    header = ",".join(["Organisation Code", "Name"] + [f"Field {i}" for i in range(3, 28)]) + "\n"
    with pytest.raises(PipelineError) as e:
        A.read_epraccur(_write(tmp_path / "epraccur.csv", header + EPRACCUR_ROW))
    msg = str(e.value)
    assert msg.startswith("ODS epraccur file epraccur.csv starts with 'Organisation Code'") and "header row" in msg
    _one_sentence(msg)


def test_epraccur_wrong_column_count(tmp_path):
    with pytest.raises(PipelineError, match=r"epraccur.csv has 5 columns where the ODS epraccur format has 27"):
        A.read_epraccur(_write(tmp_path / "epraccur.csv", "A81001,X,Y63,QHM,Z\n"))


@real
def test_real_headered_csv_given_as_epraccur(tmp_path):
    """A real headered mapping file passed where headerless epraccur is expected."""
    src = (REAL / "mapping" / "gp-reg-pat-prac-map.csv").read_text(encoding="utf-8-sig").splitlines()[:5]
    with pytest.raises(PipelineError, match=r"^ODS epraccur file epraccur\.csv starts with 'PUBLICATION'"):
        A.read_epraccur(_write(tmp_path / "epraccur.csv", "\n".join(src) + "\n"))


@real
def test_real_qof_without_register_column(tmp_path):
    lines = (REAL / "qof" / "PREVALENCE_2223.csv").read_text().splitlines()[:50]
    cut = "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 2) for line in lines) + "\n"
    with pytest.raises(PipelineError, match=r"^QOF prevalence file PREVALENCE_2223\.csv has no REGISTER column\.$"):
        A.read_qof_prevalence(_write(tmp_path / "PREVALENCE_2223.csv", cut))


def test_registrations_missing_column_and_bands(tmp_path):
    with pytest.raises(PipelineError, match=r"gp-reg-pat-prac-quin-age.csv has no NUMBER_OF_PATIENTS column"):
        A.read_registrations_quin_age(_write(tmp_path / "gp-reg-pat-prac-quin-age.csv",
                                             "ORG_TYPE,ORG_CODE,SEX,AGE_GROUP_5\nGP,A81001,MALE,0_4\n"))
    f = _write(tmp_path / "gp-reg-pat-prac-quin-age.csv",
               "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,ONS_CODE,POSTCODE,SEX,AGE_GROUP_5,NUMBER_OF_PATIENTS\n"
               "P,2026-07-01,GP,A81001,,TS1,MALE,0_4,10\n"
               "P,2026-07-01,GP,A81001,,TS1,FEMALE,90_94,3\n"
               "P,2026-07-01,GP,A81001,,TS1,FEMALE,95+,2\n"
               "P,2026-07-01,GP,A81001,,TS1,ALL,ALL,15\n"
               "P,2026-07-01,ICB,QHM,,,MALE,0_4,10\n"
               "P,2026-07-01,GP,A81001,,TS1,MALE,3_7,1\n")
    a = A.read_registrations_quin_age(f)
    assert a.rows_read == 6 and a.rows_rejected == 1
    assert a.rejects["reason"].item().startswith("AGE_GROUP_5 is not a 5-year band")
    assert a.data.values.tolist() == [["A81001", "F", "90+", 5], ["A81001", "M", "0-4", 10]]


def test_fingertips_practice_imd(tmp_path):
    f = _write(tmp_path / "IMD_raw.csv", "\ufeffIndicatorID,Year,AreaCode,AreaName,IsAreaCurrent,Value\n"
               "93553,2015,A81001,X,1,20.1\n93553,2019,A81001,X,1,32.5\n93553,2019,A81002,Y,0,abc\n")
    a = A.read_fingertips_practice_imd(f, 2019)
    assert a.data[["practice_code", "imd_score"]].values.tolist() == [["A81001", 32.5]]
    assert a.rejects["reason"].tolist() == ["Value is not a number"]
    with pytest.raises(PipelineError, match=r"^Fingertips practice IMD file IMD_raw.csv has no scores for Year 2010\.$"):
        A.read_fingertips_practice_imd(f, 2010)
    with pytest.raises(PipelineError, match=r"IMD_raw.csv has no Value column"):
        A.read_fingertips_practice_imd(_write(tmp_path / "IMD_raw.csv", "IndicatorID,Year,AreaCode,AreaName\n1,2019,A,B\n"))


def test_iod_lsoa_layouts(tmp_path):
    comp = _write(tmp_path / "UK_IMD_E.csv", "nation,lsoa,overall_local_score,income_score,original_decile\n"
                  "E,E01000002,10.5,1,8\nE,E01000001,40.2,1,1\nW,W01000001,30,1,2\n")
    a = A.read_iod2019_lsoa(comp)
    assert a.data.values.tolist() == [["E01000002", 10.5, 2, 8], ["E01000001", 40.2, 1, 1]]
    ranks = _write(tmp_path / "imd_england_lsoa.csv", "lsoa_code,IMD_decile,IMD_rank\nE01000001,1,10\nE01000002,11,20\n")
    b = A.read_iod2019_lsoa(ranks)
    assert b.rows_loaded == 1 and "decile" in b.rejects["reason"].item()
    with pytest.raises(PipelineError, match=r"^IoD 2019 LSOA file other.csv has no lsoa_code column\.$"):
        A.read_iod2019_lsoa(_write(tmp_path / "other.csv", "code,score\nE01000001,1\n"))


def test_lsoa_lookup_and_ethnicity_and_codelist(tmp_path):
    lk = _write(tmp_path / "lookup.csv", "\ufeffF_LSOA11CD,LSOA11NM,LSOA21CD,LSOA21NM,CHGIND,LAD22CD,LAD22NM\n"
                "E01011949,a,E01011949,a,U,E06000001,Hartlepool\nE01011950,b,E01011950,b,Q,E06000001,Hartlepool\n")
    a = A.read_lsoa11_to_lsoa21(lk)
    assert a.rows_loaded == 1 and a.rejects["reason"].item() == "CHGIND is not U, S, M or X"
    eth = _write(tmp_path / "practice_ethnicity.csv", "practice_code,pct_non_white\nA1,0.2\nA2,NA\nA3,1.5\n")
    e = A.read_practice_ethnicity(eth)
    assert e.rows_loaded == 2 and np.isnan(e.data.loc[1, "pct_non_white"])
    cl = _write(tmp_path / "depr_cod.csv", "code,term\n104851000119103,x\n1.04851E+14,y\n")
    c = A.read_opencodelist(cl)
    assert c.data["code"].tolist() == ["104851000119103"] and c.rows_rejected == 1
    with pytest.raises(PipelineError, match=r"^Codelist file bad.csv has no code column\.$"):
        A.read_opencodelist(_write(tmp_path / "bad.csv", "term\nx\n"))


def test_qof_year_parsing():
    assert A.parse_qof_year("2022-23")[0] == "2223" and str(A.parse_qof_year("2024-25")[1]) == "2025-03-31"
    for bad in ("2022", "2022-24", "22-23", "twenty"):
        with pytest.raises(PipelineError, match="is not a QOF year"):
            A.parse_qof_year(bad)


def test_run_public_without_the_year_file(tmp_path):
    (tmp_path / "qof").mkdir()
    with pytest.raises(PipelineError, match=r"no QOF prevalence file qof/PREVALENCE_2122.csv for 2021-22"):
        run_public(tmp_path, "2021-22", tmp_path / "p", tmp_path / "r")


def test_cli_exit_status_and_message(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipeline", "public", "--in", str(tmp_path), "--year", "2022-23",
                        "--processed", str(tmp_path / "p"), "--reports", str(tmp_path / "r")],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "PREVALENCE_2223.csv" in r.stderr and "Traceback" not in r.stderr


def test_practice_deciles_weighted_by_list_size():
    score = np.array([50.0, 40, 30, 20, 10, np.nan])
    weight = np.array([10.0, 10, 60, 10, 10, 5])
    d = practice_deciles(score, weight, n=5)
    # cumulative midpoints 5, 15, 50, 85, 95 of 100 -> quintiles 1, 1, 3, 5, 5; no score -> 0
    assert d.tolist() == [1, 1, 3, 5, 5, 0]


def test_poisson_glm_matches_direct_likelihood():
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    n = 400
    size = rng.integers(500, 20000, n).astype(float)
    x = rng.normal(size=(n, 2))
    X = np.column_stack([np.ones(n), x])
    true = np.array([-2.0, 0.3, -0.2])
    y = rng.poisson(size * np.exp(X @ true)).astype(float)
    fit = poisson_glm(y, X, np.log(size))
    nll = lambda b: np.sum(size * np.exp(X @ b) - y * (X @ b))  # noqa: E731
    ref = minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    assert fit["converged"]
    np.testing.assert_allclose(fit["coef"], ref, atol=1e-5)
    np.testing.assert_allclose(fit["fitted"].sum(), y.sum(), rtol=1e-10)
    np.testing.assert_allclose(fit["coef"], true, atol=0.05)


def test_combine_iod2019_prefers_official_ranks():
    import pandas as pd

    scores = pd.DataFrame({"lsoa_code": ["E01000001", "E01000002", "E01000003"], "imd_score": [40.0, 40.0, 5.0],
                           "imd_rank": [1, 1, 3], "imd_decile": [1, 1, 10]})
    ranks = pd.DataFrame({"lsoa_code": ["E01000001", "E01000002"], "imd_score": [np.nan, np.nan],
                          "imd_rank": [2, 1], "imd_decile": [1, 1]})
    out = A.combine_iod2019(scores, ranks)
    assert out.values.tolist() == [["E01000001", 40.0, 2, 1], ["E01000002", 40.0, 1, 1], ["E01000003", 5.0, 3, 10]]
