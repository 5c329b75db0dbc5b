"""Ethnicity estimates per practice and OpenCodelists downloads."""
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
    strip_all,
)


def read_practice_ethnicity(path: Path) -> Adapted:
    """Estimated share of a practice's patients who are not White (Census 2021 by LSOA × GP patients by LSOA;
    `practice_ethnicity.csv`: practice_code, non_white_popn, reg_popn, pct_non_white as a proportion 0-1)
    -> practice_code, pct_non_white (0-1). Rejected rows: an empty or repeated code, a share outside 0-1 or
    not a number (an empty share is loaded as missing)."""
    path = Path(path)
    what = "Practice ethnicity"
    df, raw = read_required(path, what, {"practice_code": ("practice_code", "PRACTICE_CODE"),
                                         "pct_non_white": ("pct_non_white",)})
    df["practice_code"] = clean_code(df["practice_code"])
    blank = df["pct_non_white"].isin(["", "NA", "NaN"])
    share = as_number(df["pct_non_white"].mask(blank, ""))
    reason = first_reason(
        (df["practice_code"] == "", "practice_code is empty"),
        (~blank & (share.isna() | (share < 0) | (share > 1)), "pct_non_white is not a proportion from 0 to 1"),
        (df["practice_code"].duplicated(keep="first"), "practice_code repeats an earlier row"),
    )
    rejects = make_rejects(raw, reason, path.stem)
    ok = reason.isna()
    data = pd.DataFrame({"practice_code": df.loc[ok, "practice_code"], "pct_non_white": share[ok]})
    return Adapted(path.stem, data.reset_index(drop=True), rejects, len(df))


def read_opencodelist(path: Path) -> Adapted:
    """An OpenCodelists CSV download -> code (text; SNOMED CT ids keep every digit), term when present.
    The code column may be called code, id, snomedcode or dmd_id. Rejected rows: an empty code."""
    path = Path(path)
    what = "Codelist"
    df = strip_all(read_text_csv(path, what))
    cols = {c.lower(): c for c in df.columns}
    code_col = next((cols[c] for c in ("code", "id", "snomedcode", "snomed_code", "dmd_id") if c in cols), None)
    if code_col is None:
        raise PipelineError(f"{what} file {path.name} has no code column.")
    term_col = next((cols[c] for c in ("term", "description", "dmd_name") if c in cols), None)
    reason = first_reason((df[code_col] == "", f"{code_col} is empty"),
                          (df[code_col].str.contains(r"[eE]\+|\.0$", regex=True),
                           f"{code_col} looks like a number mangled by a spreadsheet"))
    rejects = make_rejects(df, reason, path.stem)
    ok = reason.isna()
    data = pd.DataFrame({"code": df.loc[ok, code_col],
                         "term": df.loc[ok, term_col] if term_col else ""}).drop_duplicates("code")
    return Adapted(path.stem, data.reset_index(drop=True), rejects, len(df))
