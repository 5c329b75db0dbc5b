"""NHS England QOF raw data: practice prevalence registers and the geography mapping of the same year."""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd

from ..errors import PipelineError
from ._csv import Adapted, as_count, clean_code, first_reason, make_rejects, read_required

QOF_COLUMNS = {
    "practice_code": ("PRACTICE_CODE",),
    "condition": ("GROUP_CODE",),
    "register": ("REGISTER",),
    "list_type": ("PATIENT_LIST_TYPE",),
    "list_size": ("PRACTICE_LIST_SIZE",),
}

# the columns every practice -> PCN -> ICB mapping is translated into (a superset of practices.csv)
MAPPING_COLUMNS = ["practice_code", "practice_name", "pcn_code", "pcn_name", "sub_icb_code", "icb_code",
                   "icb_ons_code", "icb_name", "region_code", "region_name"]

QOF_MAPPING_SPELLINGS = {
    "practice_code": ("PRACTICE_CODE",),
    "practice_name": ("PRACTICE_NAME",),
    "pcn_code": ("PCN_ODS_CODE", "PCN_CODE"),
    "pcn_name": ("PCN_NAME",),
    "sub_icb_code": ("SUB_ICB_ODS_CODE", "SUB_ICB_LOC_ODS_CODE", "CCG_ODS_CODE"),
    "icb_code": ("ICB_ODS_CODE", "STP_ODS_CODE"),
    "icb_ons_code": ("ICB_ONS_CODE", "STP_ONS_CODE"),
    "icb_name": ("ICB_NAME", "STP_NAME"),
    "region_code": ("REGION_ODS_CODE",),
    "region_name": ("REGION_NAME",),
}

GP_REG_MAP_SPELLINGS = {
    "practice_code": ("PRACTICE_CODE",),
    "practice_name": ("PRACTICE_NAME",),
    "pcn_code": ("PCN_CODE",),
    "pcn_name": ("PCN_NAME",),
    "sub_icb_code": ("SUB_ICB_LOCATION_CODE", "SUB_ICB_CODE", "CCG_CODE"),
    "icb_code": ("ICB_CODE", "STP_CODE"),
    "icb_ons_code": ("ONS_ICB_CODE", "ONS_STP_CODE"),
    "icb_name": ("ICB_NAME", "STP_NAME"),
    "region_code": ("COMM_REGION_CODE",),
    "region_name": ("COMM_REGION_NAME",),
}


def parse_qof_year(year: str) -> tuple[str, date]:
    """'2022-23' -> ('2223', date(2023, 3, 31)): the file suffix and the QOF year end (the period)."""
    m = re.fullmatch(r"\s*(\d{4})\s*[-/]\s*(\d{2}|\d{4})\s*", str(year))
    if not m:
        raise PipelineError(f"--year {year!r} is not a QOF year such as 2022-23.")
    start = int(m.group(1))
    end = int(m.group(2)) if len(m.group(2)) == 4 else (start // 100) * 100 + int(m.group(2))
    if end != start + 1:
        raise PipelineError(f"--year {year!r} is not a QOF year such as 2022-23 (the years must be consecutive).")
    return f"{start % 100:02d}{end % 100:02d}", date(end, 3, 31)


def read_qof_prevalence(path: Path) -> Adapted:
    """QOF `PREVALENCE_YYZZ.csv` -> practice_code, condition (GROUP_CODE), register, list_type, list_size.

    Rejected rows: an empty practice or group code, a register or list size that is not a whole number >= 0,
    a list size of 0, a register larger than its list size, a practice × group that appears twice.
    """
    path = Path(path)
    what = "QOF prevalence"
    df, raw = read_required(path, what, QOF_COLUMNS)
    df["practice_code"] = clean_code(df["practice_code"])
    df["condition"] = clean_code(df["condition"])
    df["list_type"] = clean_code(df["list_type"])
    reg = as_count(df["register"])
    size = as_count(df["list_size"])
    dup = df.duplicated(["practice_code", "condition"], keep="first") & (df["practice_code"] != "")
    reason = first_reason(
        (df["practice_code"] == "", "PRACTICE_CODE is empty"),
        (df["condition"] == "", "GROUP_CODE is empty"),
        (reg.isna(), "REGISTER is not a whole number of 0 or more"),
        (size.isna(), "PRACTICE_LIST_SIZE is not a whole number of 0 or more"),
        (size == 0, "PRACTICE_LIST_SIZE is 0"),
        (reg > size, "REGISTER is larger than PRACTICE_LIST_SIZE"),
        (dup, "PRACTICE_CODE and GROUP_CODE repeat an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    ok = reason.isna()
    data = pd.DataFrame({
        "row_number": df.loc[ok, "row_number"],
        "practice_code": df.loc[ok, "practice_code"],
        "condition": df.loc[ok, "condition"],
        "register": reg[ok].astype("int64"),
        "list_type": df.loc[ok, "list_type"],
        "list_size": size[ok].astype("int64"),
    }).reset_index(drop=True)
    if data.empty:
        raise PipelineError(f"{what} file {path.name} has no usable rows.")
    return Adapted(path.stem, data, rejects, len(df))


def _read_mapping(path: Path, what: str, spellings: dict) -> Adapted:
    path = Path(path)
    df, raw = read_required(path, what, spellings)
    for c in ("practice_code", "pcn_code", "sub_icb_code", "icb_code", "icb_ons_code", "region_code"):
        df[c] = clean_code(df[c])
    dup = df.duplicated("practice_code", keep="first") & (df["practice_code"] != "")
    reason = first_reason(
        (df["practice_code"] == "", f"{spellings['practice_code'][0]} is empty"),
        (df["icb_code"] == "", f"{spellings['icb_code'][0]} is empty"),
        (dup, f"{spellings['practice_code'][0]} repeats an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    data = df.loc[reason.isna(), MAPPING_COLUMNS].reset_index(drop=True)
    data["pcn_code"] = data["pcn_code"].where(data["pcn_code"] != "", "U")
    return Adapted(path.stem, data, rejects, len(df))


def read_qof_mapping(path: Path) -> Adapted:
    """QOF `MAPPING_NHS_GEOGRAPHIES_YYZZ.csv` -> MAPPING_COLUMNS (ODS codes for PCN, sub-ICB, ICB, region)."""
    return _read_mapping(path, "QOF geography mapping", QOF_MAPPING_SPELLINGS)


def read_gp_reg_map(path: Path) -> Adapted:
    """'Patients Registered at a GP Practice' `gp-reg-pat-prac-map.csv` -> MAPPING_COLUMNS.

    Its date is the publication's (EXTRACT_DATE), not the QOF year's: practices that closed or merged before it
    are absent, and ICB codes follow that date's boundaries.
    """
    return _read_mapping(path, "GP registered-patients mapping", GP_REG_MAP_SPELLINGS)
