"""Deprivation: Fingertips practice IMD scores, MHCLG IoD 2019 LSOA files, the ONS LSOA 2011 -> 2021 lookup."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import PipelineError
from ._csv import (
    Adapted,
    as_number,
    clean_code,
    first_reason,
    make_rejects,
    read_required,
    read_text_csv,
    require_columns,
    strip_all,
)

DEPRIVATION_COLUMNS = ["lsoa_code", "imd_score", "imd_rank", "imd_decile"]   # input contract deprivation.csv


def read_fingertips_practice_imd(path: Path, year: int | str = 2019) -> Adapted:
    """Fingertips practice deprivation, long format (`IMD_raw.csv`: IndicatorID, Year, AreaCode, AreaName,
    IsAreaCurrent, Value) -> practice_code, practice_name, imd_year, imd_score for the IMD `year` (2010, 2015,
    2019). The score is the population-weighted IMD score of the practice's registered patients' LSOAs.

    Rejected rows: an empty area code, a Year that is not a year, a Value that is not a number, a practice that
    appears twice for a year. All years are checked; rows of other years are loaded but not returned.
    """
    path = Path(path)
    what = "Fingertips practice IMD"
    df, raw = read_required(path, what, {
        "area_code": ("AreaCode", "Area Code"), "area_name": ("AreaName", "Area Name"),
        "year": ("Year", "Time period"), "value": ("Value",)})
    df["area_code"] = clean_code(df["area_code"])
    yr = pd.to_numeric(df["year"].str[:4], errors="coerce")
    val = as_number(df["value"])
    reason = first_reason(
        (df["area_code"] == "", "AreaCode is empty"),
        (yr.isna(), "Year is not a year"),
        (val.isna() & (df["value"] != ""), "Value is not a number"),
        (df.duplicated(["area_code", "year"], keep="first"), "AreaCode and Year repeat an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    keep = reason.isna() & (yr == int(year)) & val.notna()
    data = pd.DataFrame({"practice_code": df.loc[keep, "area_code"], "practice_name": df.loc[keep, "area_name"],
                         "imd_year": int(year), "imd_score": val[keep]}).reset_index(drop=True)
    if data.empty:
        raise PipelineError(f"{what} file {path.name} has no scores for Year {year}.")
    return Adapted(path.stem, data, rejects, len(df))


def read_fingertips_imd_2025(path: Path) -> Adapted:
    """`fingertips-imd-2025-gp-practice.csv` (PRACTICE_CODE, PRACTICE_NAME, IMD_YEAR, IMD_SCORE)
    -> practice_code, practice_name, imd_year, imd_score."""
    path = Path(path)
    what = "Fingertips practice IMD 2025"
    df, raw = read_required(path, what, {
        "practice_code": ("PRACTICE_CODE",), "practice_name": ("PRACTICE_NAME",), "imd_year": ("IMD_YEAR",),
        "imd_score": ("IMD_SCORE",)})
    df["practice_code"] = clean_code(df["practice_code"])
    score = as_number(df["imd_score"])
    yr = pd.to_numeric(df["imd_year"], errors="coerce")
    reason = first_reason(
        (df["practice_code"] == "", "PRACTICE_CODE is empty"),
        (score.isna(), "IMD_SCORE is not a number"),
        (yr.isna(), "IMD_YEAR is not a year"),
        (df["practice_code"].duplicated(keep="first"), "PRACTICE_CODE repeats an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    ok = reason.isna()
    data = pd.DataFrame({"practice_code": df.loc[ok, "practice_code"], "practice_name": df.loc[ok, "practice_name"],
                         "imd_year": yr[ok].astype("int64"), "imd_score": score[ok]}).reset_index(drop=True)
    return Adapted(path.stem, data, rejects, len(df))


def read_iod2019_lsoa(path: Path) -> Adapted:
    """An IoD 2019 LSOA (2011) file -> the input contract's deprivation table (lsoa_code, imd_score, imd_rank,
    imd_decile; national decile, 1 = most deprived).

    Two layouts are understood: mySociety's composite `UK_IMD_E.csv` (nation, lsoa, overall_local_score =
    IMD 2019 score, original_decile; English rows only, rank computed from the score, highest = 1), and the
    MHCLG-style rank/decile file (`imd_england_lsoa.csv`: lsoa_code, IMD_rank, IMD_decile; no score, so
    imd_score is missing). MHCLG's own File 1/5/7 headers ('LSOA code (2011)', 'Index of Multiple Deprivation
    (IMD) Score/Rank/Decile') are accepted too.
    """
    path = Path(path)
    what = "IoD 2019 LSOA"
    df = strip_all(read_text_csv(path, what))
    upper = {c.upper() for c in df.columns}
    raw = df.copy()
    if {"NATION", "LSOA", "OVERALL_LOCAL_SCORE"} <= upper:
        df = require_columns(df, {"nation": ("nation",), "lsoa_code": ("lsoa",), "imd_score": ("overall_local_score",),
                                  "imd_decile": ("original_decile",)}, what, path.name)
        england = df["nation"].str.upper() == "E"
        df, raw = df.loc[england], raw.loc[england]
        df = df.assign(imd_rank="")
    else:
        df = require_columns(df, {
            "lsoa_code": ("lsoa_code", "LSOA code (2011)", "lsoa11cd"),
            "imd_rank": ("IMD_rank", "Index of Multiple Deprivation (IMD) Rank",
                         "Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived)"),
            "imd_decile": ("IMD_decile", "Index of Multiple Deprivation (IMD) Decile",
                           "Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs)"),
        }, what, path.name)
        score_col = next((c for c in df.columns if c.upper() == "INDEX OF MULTIPLE DEPRIVATION (IMD) SCORE"), None)
        df = df.assign(imd_score=df[score_col] if score_col else "")
    df["lsoa_code"] = clean_code(df["lsoa_code"])
    score = as_number(df["imd_score"])
    rank = as_number(df["imd_rank"])
    dec = as_number(df["imd_decile"])
    reason = first_reason(
        (~df["lsoa_code"].str.match(r"^E01\d{6}$"), "the LSOA code is not an English LSOA code (E01 and 6 digits)"),
        ((df["imd_score"] != "") & score.isna(), "the IMD score is not a number"),
        ((df["imd_rank"] != "") & rank.isna(), "the IMD rank is not a number"),
        (~dec.isin(range(1, 11)), "the IMD decile is not a whole number from 1 to 10"),
        (df["lsoa_code"].duplicated(keep="first"), "the LSOA code repeats an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    ok = reason.isna()
    out = pd.DataFrame({"lsoa_code": df.loc[ok, "lsoa_code"], "imd_score": score[ok], "imd_rank": rank[ok],
                        "imd_decile": dec[ok].astype("int64")}).reset_index(drop=True)
    if out["imd_rank"].isna().all() and out["imd_score"].notna().all():
        out["imd_rank"] = out["imd_score"].rank(ascending=False, method="min")
    out["imd_rank"] = out["imd_rank"].astype("Int64")
    return Adapted(path.stem, out[DEPRIVATION_COLUMNS], rejects, len(raw))  # English rows only


def read_lsoa11_to_lsoa21(path: Path) -> Adapted:
    """ONS 'LSOA (2011) to LSOA (2021) to LAD (2022)' lookup -> lsoa11_code, lsoa21_code, change (U unchanged,
    S split, M merged, X complex), lad22_code, lad22_name. One row per 2011 × 2021 pair."""
    path = Path(path)
    what = "ONS LSOA 2011 to 2021 lookup"
    df, raw = read_required(path, what, {
        "lsoa11_code": ("LSOA11CD", "F_LSOA11CD"), "lsoa21_code": ("LSOA21CD",), "change": ("CHGIND",),
        "lad22_code": ("LAD22CD",), "lad22_name": ("LAD22NM",)})
    for c in ("lsoa11_code", "lsoa21_code", "change", "lad22_code"):
        df[c] = clean_code(df[c])
    reason = first_reason(
        (~df["lsoa11_code"].str.match(r"^[EW]01\d{6}$"), "LSOA11CD is not an LSOA code"),
        (~df["lsoa21_code"].str.match(r"^[EW]01\d{6}$"), "LSOA21CD is not an LSOA code"),
        (~df["change"].isin(["U", "S", "M", "X"]), "CHGIND is not U, S, M or X"),
        (df.duplicated(["lsoa11_code", "lsoa21_code"], keep="first"), "the LSOA pair repeats an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    ok = reason.isna()
    out = df.loc[ok, ["lsoa11_code", "lsoa21_code", "change", "lad22_code", "lad22_name"]].reset_index(drop=True)
    return Adapted(path.stem, out, rejects, len(df))


def combine_iod2019(scores: pd.DataFrame, ranks: pd.DataFrame) -> pd.DataFrame:
    """Deprivation contract rows from both IoD 2019 files: the score from the composite file, the official rank
    and decile from the rank file (ranks recomputed from the composite's 3-decimal scores differ from MHCLG's for
    ~30% of LSOAs through ties, and 3 deciles change). LSOAs in only one file keep what that file has."""
    m = ranks[["lsoa_code", "imd_rank", "imd_decile"]].merge(scores[["lsoa_code", "imd_score"]], on="lsoa_code",
                                                                how="outer")
    only_scores = m["imd_decile"].isna()
    if only_scores.any():
        fill = scores.set_index("lsoa_code")
        m.loc[only_scores, "imd_rank"] = m.loc[only_scores, "lsoa_code"].map(fill["imd_rank"])
        m.loc[only_scores, "imd_decile"] = m.loc[only_scores, "lsoa_code"].map(fill["imd_decile"])
    m["imd_rank"] = m["imd_rank"].astype("Int64")
    m["imd_decile"] = m["imd_decile"].astype("Int64")
    return m[DEPRIVATION_COLUMNS].sort_values("lsoa_code").reset_index(drop=True)
