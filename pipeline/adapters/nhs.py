"""NHS England 'Patients Registered at a GP Practice' (5-year age bands) and the ODS `epraccur` practice file."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import PipelineError
from ._csv import (
    Adapted,
    as_count,
    clean_code,
    first_reason,
    make_rejects,
    read_required,
    read_text_csv,
    strip_all,
)

# the project's standardisation bands (DESIGN: 0-4, 5-9, ..., 85-89, 90+)
AGE_BANDS = [f"{a}-{a + 4}" for a in range(0, 90, 5)] + ["90+"]
_FILE_AGE = {f"{a}_{a + 4}": f"{a}-{a + 4}" for a in range(0, 90, 5)}
_FILE_AGE.update({"90_94": "90+", "95+": "90+", "90+": "90+"})
_FILE_SEX = {"MALE": "M", "FEMALE": "F", "M": "M", "F": "F"}

REG_SPELLINGS = {
    "org_type": ("ORG_TYPE",),
    "org_code": ("ORG_CODE",),
    "sex": ("SEX",),
    "age_group": ("AGE_GROUP_5", "AGE_GROUP"),
    "patients": ("NUMBER_OF_PATIENTS",),
}


def read_registrations_quin_age(path: Path) -> Adapted:
    """`gp-reg-pat-prac-quin-age.csv` (long format, every organisation level) -> practice_code, sex (F/M),
    age_band (the project's bands; 90-94 and 95+ become 90+), patients.

    Only ORG_TYPE 'GP' rows by MALE/FEMALE and a 5-year band are returned (the other rows are totals, checked
    for readability but not used). Rejected rows: an empty code, an unknown sex or age group, a count that is
    not a whole number >= 0, a practice × sex × age group that appears twice.
    """
    path = Path(path)
    what = "Registered patients by age"
    df, raw = read_required(path, what, REG_SPELLINGS)
    org_type = df["org_type"].str.upper()
    sex = df["sex"].str.upper()
    age = df["age_group"].str.upper()
    n = as_count(df["patients"])
    known_age = age.isin(list(_FILE_AGE) + ["ALL"])
    known_sex = sex.isin(list(_FILE_SEX) + ["ALL"])
    dup = df.duplicated(["org_type", "org_code", "sex", "age_group"], keep="first")
    reason = first_reason(
        (df["org_code"] == "", "ORG_CODE is empty"),
        (~known_sex, "SEX is not MALE, FEMALE or ALL"),
        (~known_age, "AGE_GROUP_5 is not a 5-year band such as 0_4, 95+ or ALL"),
        (n.isna(), "NUMBER_OF_PATIENTS is not a whole number of 0 or more"),
        (dup, "ORG_TYPE, ORG_CODE, SEX and AGE_GROUP_5 repeat an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    keep = reason.isna() & (org_type == "GP") & sex.isin(["MALE", "FEMALE", "M", "F"]) & (age != "ALL")
    data = pd.DataFrame({
        "practice_code": clean_code(df.loc[keep, "org_code"]),
        "sex": sex[keep].map(_FILE_SEX),
        "age_band": age[keep].map(_FILE_AGE),
        "patients": n[keep].astype("int64"),
    })
    if data.empty:
        raise PipelineError(f"{what} file {path.name} has no practice (ORG_TYPE GP) rows by sex and age group.")
    data = data.groupby(["practice_code", "sex", "age_band"], as_index=False, sort=True)["patients"].sum()
    return Adapted(path.stem, data, rejects, len(df))


# ODS epraccur: headerless, 27 columns (https://digital.nhs.uk/services/organisation-data-service)
EPRACCUR_COLUMNS = {
    1: "practice_code", 2: "practice_name", 3: "region_code", 4: "icb_code", 10: "postcode", 11: "open_date",
    12: "close_date", 13: "status", 14: "organisation_sub_type", 15: "sub_icb_code", 26: "prescribing_setting",
}
_ODS_CODE = re.compile(r"^(?=.*\d)[A-Z0-9]{3,8}$")


def read_epraccur(path: Path) -> Adapted:
    """ODS `epraccur.csv` (no header row, 27 columns) -> practice_code, practice_name, region_code, icb_code,
    sub_icb_code, postcode, open_date, close_date (dates), status (A active, C closed, D dormant, P proposed),
    prescribing_setting (4 = GP practice), is_gp_practice.
    """
    path = Path(path)
    what = "ODS epraccur"
    df = strip_all(read_text_csv(path, what, header=False))
    ncol = df.shape[1] - 1
    first = df["col1"].iloc[0] if len(df) else ""
    if not _ODS_CODE.match(first.upper()):
        raise PipelineError(f"{what} file {path.name} starts with {first[:30]!r}, not an organisation code: "
                            "it looks like a file with a header row, and epraccur has none.")
    if ncol != 27:
        raise PipelineError(f"{what} file {path.name} has {ncol} columns where the ODS epraccur format has 27 "
                            "(and no header row).")
    raw = df.copy()
    out = pd.DataFrame({name: df[f"col{i}"] for i, name in EPRACCUR_COLUMNS.items()})
    out["practice_code"] = clean_code(out["practice_code"])
    open_d = pd.to_datetime(out["open_date"], format="%Y%m%d", errors="coerce")
    close_d = pd.to_datetime(out["close_date"], format="%Y%m%d", errors="coerce")
    reason = first_reason(
        (~out["practice_code"].str.match(_ODS_CODE), "column 1 (organisation code) is not an ODS code"),
        ((out["open_date"] != "") & open_d.isna(), "column 11 (open date) is not a date YYYYMMDD"),
        ((out["close_date"] != "") & close_d.isna(), "column 12 (close date) is not a date YYYYMMDD"),
        (~out["status"].isin(["A", "C", "D", "P"]), "column 13 (status) is not A, C, D or P"),
        (out["practice_code"].duplicated(keep="first"), "column 1 (organisation code) repeats an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    ok = reason.isna()
    out["open_date"] = open_d.dt.date
    out["close_date"] = close_d.dt.date
    out["is_gp_practice"] = out["prescribing_setting"] == "4"
    out = out.drop(columns=["organisation_sub_type"])
    return Adapted(path.stem, out.loc[ok].reset_index(drop=True), rejects, len(df))
