"""Shared reading helpers for the public-data adapters.

Every adapter reads its file as text (nothing is guessed), checks that the columns it needs are there (names
compared trimmed and case-insensitively, a UTF-8 byte-order mark ignored) and returns an `Adapted`: the rows
translated into the project's contract, the rejected rows with a reason, and the counts for `load_summary`.
Messages name the file (never a local path) and the column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import PipelineError

REJECT_COLUMNS = ["source", "row_number", "reason", "raw_values"]


@dataclass
class Adapted:
    """What an adapter hands back: contract rows, rejected rows, and the file's load summary."""

    source: str                      # the file's stem, as in load_summary.source
    data: pd.DataFrame               # rows in the contract
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECT_COLUMNS))
    rows_read: int = 0

    @property
    def rows_rejected(self) -> int:
        return int(len(self.rejects))

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_rejected

    def summary(self) -> dict:
        return {"source": self.source, "rows_read": self.rows_read, "rows_loaded": self.rows_loaded,
                "rows_rejected": self.rows_rejected}


def read_text_csv(path: Path, what: str, header: bool = True) -> pd.DataFrame:
    """Read a CSV file as text (empty cells -> ''); a row_number column (1-based data row) added. Values are
    trimmed by `require_columns` (the columns an adapter uses) or by `strip_all`."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{what} file {path.name} was not found.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                         header=0 if header else None, skipinitialspace=False)
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{what} file {path.name} is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PipelineError(f"{what} file {path.name} is not a readable CSV file ({type(e).__name__}).") from None
    if header:
        df.columns = [str(c).strip() for c in df.columns]
    else:
        df.columns = [f"col{i + 1}" for i in range(df.shape[1])]
    df.insert(0, "row_number", np.arange(1, len(df) + 1, dtype="int64"))
    return df


def require_columns(df: pd.DataFrame, wanted: dict[str, tuple[str, ...]], what: str, name: str) -> pd.DataFrame:
    """Rename the first matching column for each canonical name; raise naming the first one that is absent.

    `wanted` maps canonical name -> accepted spellings (compared case-insensitively).
    """
    lookup = {c.upper(): c for c in df.columns}
    rename = {}
    for canon, spellings in wanted.items():
        hit = next((lookup[s.upper()] for s in spellings if s.upper() in lookup), None)
        if hit is None:
            raise PipelineError(f"{what} file {name} has no {spellings[0]} column.")
        rename[hit] = canon
    df = df.rename(columns=rename)
    for canon in wanted:
        df[canon] = df[canon].str.strip()
    return df


def read_required(path: Path, what: str, wanted: dict[str, tuple[str, ...]]
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`read_text_csv` then `require_columns`: the frame to clean, and an untouched copy (for the rejects)."""
    df = require_columns(read_text_csv(path, what), wanted, what, Path(path).name)
    return df, df.copy()


def strip_all(df: pd.DataFrame) -> pd.DataFrame:
    for c in df.columns:
        if c != "row_number":
            df[c] = df[c].str.strip()
    return df


def raw_values(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    """The raw cells of each row as one text value, `COL=value; COL=value` (for the rejects table)."""
    out = pd.Series("", index=df.index, dtype=object)
    for i, c in enumerate(cols):
        out = out + (f"{c}=" if i == 0 else f"; {c}=") + df[c].astype(str)
    return out


def make_rejects(df: pd.DataFrame, reason: pd.Series, source: str) -> pd.DataFrame:
    """Rows of df (as read) whose reason is not null, in the rejects layout."""
    bad = reason.notna()
    sub = df.loc[bad]
    return pd.DataFrame({
        "source": source,
        "row_number": sub["row_number"].astype("int64").to_numpy(),
        "reason": reason[bad].astype(str).to_numpy(),
        "raw_values": raw_values(sub, [c for c in df.columns if c != "row_number"]).to_numpy(),
    }, columns=REJECT_COLUMNS)


def first_reason(*conds: tuple[pd.Series, str]) -> pd.Series:
    """Per row, the first reason whose condition holds (None when none does)."""
    reason = pd.Series(None, index=conds[0][0].index, dtype=object)
    for cond, text in reversed(conds):
        reason = reason.mask(cond.fillna(False).astype(bool), text)
    return reason


def as_count(s: pd.Series) -> pd.Series:
    """Text -> float where it is a whole, non-negative number ('112.0' counts), NaN otherwise."""
    x = pd.to_numeric(s, errors="coerce")
    return x.where((x >= 0) & (np.floor(x) == x))


def as_number(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def clean_code(s: pd.Series) -> pd.Series:
    return s.str.strip().str.upper()
