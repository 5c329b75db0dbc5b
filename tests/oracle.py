"""An independent, deliberately plain re-implementation of the `prevalence` contract (DESIGN.md).

It exists only to test the real pipeline against: it imports nothing from `pipeline`, reads the raw
files and the configuration TOML itself, applies the input contract (trimming, empty = missing,
upper-cased codes, row rejections) and the definitions (population, age, case, groups, strata,
internal reference rates, expected, Wilson rate interval, ISR interval, missing) with pandas/numpy
and a Python loop over periods and conditions. Speed is secondary to being obviously right.

Public entry points:

    oracle_prevalence(raw_dir, config_path, today) -> pandas.DataFrame   # the `prevalence` table
    oracle_indicators(raw_dir, config_path, today) -> pandas.DataFrame   # the `indicators` table
    oracle_load(raw_dir, today) -> OracleData                            # the cleaned inputs (for tests)
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm

PREVALENCE_COLUMNS = [
    "period", "condition", "area_type", "area_code", "area_name", "group_type", "group_value",
    "observed", "population", "rate", "rate_lower", "rate_upper", "expected", "ratio", "ratio_lower",
    "ratio_upper", "missing",
]
KEY_COLUMNS = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]

ETHNIC_GROUP = {
    **dict.fromkeys(["A", "B", "C"], "White"),
    **dict.fromkeys(["D", "E", "F", "G"], "Mixed"),
    **dict.fromkeys(["H", "J", "K", "L"], "Asian"),
    **dict.fromkeys(["M", "N", "P"], "Black"),
    **dict.fromkeys(["R", "S"], "Other"),
}
VALID_SEX = ("F", "M", "I", "U")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?)?$")  # a date, or a date and time (to microseconds)
PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")                 # 140, 140.0, -1.5 (not 1,234 or 142 mmHg)
INDICATOR_COLUMNS = ["period", "indicator", "kind"] + PREVALENCE_COLUMNS[2:]


# ----------------------------------------------------------------------------------------------- reading

def _read_table(raw_dir: Path, stem: str) -> pd.DataFrame | None:
    """The raw table as text: every cell a trimmed str, empty string for missing."""
    csv, pq = raw_dir / f"{stem}.csv", raw_dir / f"{stem}.parquet"
    if csv.exists():
        df = pd.read_csv(csv, dtype=str, keep_default_na=False, na_filter=False)
    elif pq.exists():
        df = pd.read_parquet(pq)
        for col in df.columns:
            s = df[col]
            if pd.api.types.is_datetime64_any_dtype(s):
                txt = s.dt.strftime("%Y-%m-%d")
            else:
                txt = s.map(lambda v: v.isoformat() if isinstance(v, date) else v).astype(object)
                txt = txt.where(s.notna(), None).map(lambda v: "" if v is None else str(v))
            df[col] = txt.fillna("").astype(str)
    else:
        return None
    df.columns = [str(c).strip().lower() for c in df.columns]
    return df.apply(lambda s: s.astype(str).str.strip())


_date_cache: dict[str, object] = {}


def _parse_dates(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(datetime64[D] array with NaT for empty or bad, bool array 'bad' = non-empty but unparseable)."""
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.tolist()):
        if v == "":
            continue
        if v not in _date_cache:
            parsed = None
            if ISO_DATE.match(v):
                try:
                    parsed = np.datetime64(date.fromisoformat(v[:10]), "D")
                    if len(v) > 10:
                        text = v.replace("T", " ", 1) if v[10:11] == "T" else v
                        datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f" if "." in text[10:] else "%Y-%m-%d %H:%M:%S")
                except ValueError:
                    parsed = None
            _date_cache[v] = parsed
        p = _date_cache[v]
        if p is None:
            bad[i] = True
        else:
            out[i] = p
    return out, bad


@dataclass
class OracleData:
    patients: pd.DataFrame        # patient_id, sex, dob, dod, ethnic_group, lsoa_code, imd_quintile
    registrations: pd.DataFrame   # patient_id, practice_code, reg_from, reg_to
    events: pd.DataFrame          # patient_id, code, date, value (NaN: none)
    practices: pd.DataFrame       # practice_code, practice_name, pcn_code, pcn_name, icb_code, icb_name
    neighbourhoods: pd.DataFrame  # lsoa_code, neighbourhood_code, neighbourhood_name
    rejected: dict                # source -> list of (row_number, reason)


def oracle_load(raw_dir: Path | str, today: date) -> OracleData:
    raw_dir = Path(raw_dir)
    today64 = np.datetime64(today, "D")
    rejected: dict[str, list[tuple[int, str]]] = {"patients": [], "registrations": [], "events": []}

    # --- reference tables. The contract names no rejection rules for them; like the pipeline, the first row
    # per key wins, a practice needs a PCN and an ICB code, a deprivation row a decile from 1 to 10, and a
    # missing name falls back to the code.
    practices = _read_table(raw_dir, "practices")
    practices = practices[practices["practice_code"] != ""].drop_duplicates("practice_code")
    practices = practices[(practices["pcn_code"] != "") & (practices["icb_code"] != "")].copy()
    for kind in ("practice", "pcn", "icb"):
        name = practices[f"{kind}_name"]
        practices[f"{kind}_name"] = name.where(name != "", practices[f"{kind}_code"])
    deprivation = _read_table(raw_dir, "deprivation")
    deprivation = deprivation[deprivation["lsoa_code"] != ""].drop_duplicates("lsoa_code")
    dec = pd.to_numeric(deprivation["imd_decile"], errors="coerce")
    score = pd.to_numeric(deprivation["imd_score"], errors="coerce")
    rank = pd.to_numeric(deprivation["imd_rank"], errors="coerce")
    deprivation = deprivation[dec.between(1, 10) & (dec == np.floor(dec))
                              & ((deprivation["imd_score"] == "") | score.notna())
                              & ((deprivation["imd_rank"] == "") | (rank == np.floor(rank)))].copy()
    deprivation["imd_decile"] = dec[deprivation.index].astype(int).astype(str)
    neighbourhoods = _read_table(raw_dir, "neighbourhoods")
    if neighbourhoods is None:
        neighbourhoods = pd.DataFrame(columns=["lsoa_code", "neighbourhood_code", "neighbourhood_name"])
    neighbourhoods = neighbourhoods[neighbourhoods["lsoa_code"] != ""].drop_duplicates("lsoa_code")
    neighbourhoods = neighbourhoods[neighbourhoods["neighbourhood_code"] != ""].copy()
    nname = neighbourhoods["neighbourhood_name"]
    neighbourhoods["neighbourhood_name"] = nname.where(nname != "", neighbourhoods["neighbourhood_code"])

    # --- patients: row by row, plainly
    raw_p = _read_table(raw_dir, "patients")
    dob, dob_bad = _parse_dates(raw_p["date_of_birth"])
    dod, dod_bad = _parse_dates(raw_p["date_of_death"])
    seen: set[str] = set()
    keep = []
    for i, row in enumerate(raw_p.itertuples(index=False)):
        pid = row.patient_id
        reasons = []
        if pid == "":
            reasons.append("patient_id is empty")
        elif pid in seen:
            reasons.append("patient_id is duplicated")
        if pid != "":
            seen.add(pid)  # the first occurrence in the file is the one kept (if otherwise valid)
        if row.sex.upper() not in VALID_SEX:
            reasons.append("sex is not F, M, I or U")
        if row.date_of_birth == "" or dob_bad[i]:
            reasons.append("date_of_birth is empty or not a date")
        elif dob[i] > today64:
            reasons.append("date_of_birth is after today")
        if dod_bad[i]:
            reasons.append("date_of_death is not a date")
        elif not np.isnat(dod[i]) and dod[i] > today64:
            reasons.append("date_of_death is after today")
        if reasons:
            rejected["patients"].append((i + 1, "; ".join(reasons)))
        else:
            keep.append(i)
    keep = np.array(keep, dtype=int)
    pats = pd.DataFrame({
        "patient_id": raw_p["patient_id"].to_numpy()[keep],
        "sex": raw_p["sex"].str.upper().to_numpy()[keep],
        "dob": dob[keep],
        "dod": dod[keep],
        "ethnicity": raw_p["ethnicity"].str.upper().to_numpy()[keep],
        "lsoa_code": raw_p["lsoa_code"].to_numpy()[keep],
    })
    pats["ethnic_group"] = pats["ethnicity"].map(ETHNIC_GROUP).fillna("Unknown")
    decile = pd.to_numeric(deprivation.set_index("lsoa_code")["imd_decile"], errors="coerce")
    d = pats["lsoa_code"].map(decile)
    pats["imd_quintile"] = [("Unknown" if (lsoa == "" or pd.isna(x)) else str(math.ceil(x / 2)))
                            for lsoa, x in zip(pats["lsoa_code"], d, strict=False)]
    loaded_ids = set(pats["patient_id"])

    # --- registrations
    raw_r = _read_table(raw_dir, "registrations")
    rf, rf_bad = _parse_dates(raw_r["registered_from"])
    rt, rt_bad = _parse_dates(raw_r["registered_to"])
    known_practices = set(practices["practice_code"])
    keep = []
    for i, row in enumerate(raw_r.itertuples(index=False)):
        reasons = []
        if row.patient_id not in loaded_ids:
            reasons.append("patient_id is not a loaded patient")
        if row.practice_code not in known_practices:
            reasons.append("practice_code is not in practices")
        if row.registered_from == "" or rf_bad[i]:
            reasons.append("registered_from is empty or not a date")
        elif rf[i] > today64:
            reasons.append("registered_from is after today")
        if rt_bad[i]:
            reasons.append("registered_to is not a date")
        elif not np.isnat(rt[i]) and rt[i] > today64:
            reasons.append("registered_to is after today")
        elif not np.isnat(rt[i]) and not np.isnat(rf[i]) and rt[i] < rf[i]:
            reasons.append("registered_to is before registered_from")
        if reasons:
            rejected["registrations"].append((i + 1, "; ".join(reasons)))
        else:
            keep.append(i)
    keep = np.array(keep, dtype=int)
    regs = pd.DataFrame({
        "patient_id": raw_r["patient_id"].to_numpy()[keep],
        "practice_code": raw_r["practice_code"].to_numpy()[keep],
        "reg_from": rf[keep],
        "reg_to": rt[keep],
    })

    # --- events (vectorised: there can be many)
    raw_e = _read_table(raw_dir, "events")
    ed, ed_bad = _parse_dates(raw_e["date"])
    bad_pid = ~raw_e["patient_id"].isin(loaded_ids).to_numpy()
    bad_code = (raw_e["code"] == "").to_numpy()
    bad_date = (raw_e["date"] == "").to_numpy() | ed_bad | (~np.isnat(ed) & (ed > today64))
    value_text = raw_e["value"] if "value" in raw_e.columns else pd.Series([""] * len(raw_e), dtype=object)
    values = np.array([float(v) if PLAIN_DECIMAL.match(v) else np.nan for v in value_text.tolist()], dtype=float)
    bad_value = np.array([v != "" and not PLAIN_DECIMAL.match(v) for v in value_text.tolist()], dtype=bool)
    bad = bad_pid | bad_code | bad_date | bad_value
    for i in np.flatnonzero(bad):
        why = [w for w, b in (("patient_id is not a loaded patient", bad_pid[i]), ("code is empty", bad_code[i]),
                              ("date is empty, not a date or after today", bad_date[i]),
                              ("value is not a plain decimal", bad_value[i])) if b]
        rejected["events"].append((int(i) + 1, "; ".join(why)))
    ok = ~bad
    events = pd.DataFrame({"patient_id": raw_e["patient_id"].to_numpy()[ok],
                           "code": raw_e["code"].to_numpy()[ok], "date": ed[ok], "value": values[ok]})
    return OracleData(pats, regs, events, practices, neighbourhoods, rejected)


def _codelist(raw_dir: Path, rel: str | None) -> set[str]:
    if not rel:
        return set()
    df = pd.read_csv(raw_dir / rel, dtype=str, keep_default_na=False)
    df.columns = [c.strip().lower() for c in df.columns]
    return {c.strip() for c in df["code"] if c.strip() != ""}


# ----------------------------------------------------------------------------------------------- statistics

Z95 = float(norm.ppf(0.975))


def wilson(x: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, float)
    n = np.asarray(n, float)
    p = x / n
    centre = 2 * x + z * z
    half = z * np.sqrt(z * z + 4 * x * (1 - p))
    denom = 2 * (n + z * z)
    lower = (centre - half) / denom
    upper = (centre + half) / denom
    lower = np.where(x == 0, 0.0, lower)
    upper = np.where(x == n, 1.0, upper)
    return lower, upper


def poisson_count_limits(o: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Limits for a Poisson count: exact (chi-square) below 10, Byar from 10 on; 0 -> lower 0."""
    o = np.asarray(o, float)
    alpha = 2 * (1 - norm.cdf(z))
    lo = np.empty_like(o)
    hi = np.empty_like(o)
    for i, x in enumerate(o):
        if x < 10:
            lo[i] = 0.0 if x == 0 else chi2.ppf(alpha / 2, 2 * x) / 2
            hi[i] = chi2.ppf(1 - alpha / 2, 2 * x + 2) / 2
        else:
            lo[i] = x * (1 - 1 / (9 * x) - z / (3 * math.sqrt(x))) ** 3
            hi[i] = (x + 1) * (1 - 1 / (9 * (x + 1)) + z / (3 * math.sqrt(x + 1))) ** 3
    return lo, hi


# ----------------------------------------------------------------------------------------------- definitions

def age_band(age: np.ndarray) -> np.ndarray:
    low = np.minimum(np.asarray(age) // 5, 18) * 5
    return np.array([("90+" if a == 90 else f"{a}-{a + 4}") for a in low], dtype=object)


def completed_years(dob: np.ndarray, d: date) -> np.ndarray:
    dobs = pd.DatetimeIndex(dob.astype("datetime64[ns]"))
    before_birthday = (dobs.month > d.month) | ((dobs.month == d.month) & (dobs.day > d.day))
    return (d.year - dobs.year - before_birthday.astype(int)).to_numpy()


def population_on(data: OracleData, d: date) -> pd.DataFrame:
    """One row per patient in the (age-unrestricted) population at d, with practice, age, groups."""
    d64 = np.datetime64(d, "D")
    r = data.registrations
    covering = r[(r["reg_from"] <= d64) & (np.isnat(r["reg_to"]) | (r["reg_to"] >= d64))]
    # one spell each: latest registered_from, then greatest practice_code
    covering = covering.sort_values(["patient_id", "reg_from", "practice_code"], ascending=[True, False, False])
    chosen = covering.drop_duplicates("patient_id", keep="first")[["patient_id", "practice_code"]]
    p = data.patients.merge(chosen, on="patient_id", how="inner")
    alive = np.isnat(p["dod"].to_numpy()) | (p["dod"].to_numpy() > d64)
    born = p["dob"].to_numpy() <= d64
    p = p[alive & born].copy()
    p["age"] = completed_years(p["dob"].to_numpy(), d)
    p["age_band"] = age_band(p["age"].to_numpy())
    p["sex_group"] = np.where(p["sex"].isin(["F", "M"]), p["sex"], "Unknown")
    p["stratum"] = p["sex"] + "|" + p["age_band"]
    return p


def cases_on(events: pd.DataFrame, diag_codes: set[str], resolved_codes: set[str], d: date) -> set[str]:
    d64 = np.datetime64(d, "D")
    upto = events[events["date"] <= d64]
    diag = upto[upto["code"].isin(diag_codes)].groupby("patient_id")["date"].max()
    if resolved_codes:
        res = upto[upto["code"].isin(resolved_codes)].groupby("patient_id")["date"].max()
        both = pd.concat([diag.rename("diag"), res.rename("res")], axis=1, join="outer")
        both = both[both["diag"].notna()]
        is_case = both["res"].isna() | (both["diag"] > both["res"])
        return set(both.index[is_case])
    return set(diag.index)


AREAS = {
    # area_type -> (code column, name column) once the practice/neighbourhood columns are attached
    "icb": ("icb_code", "icb_name"),
    "pcn": ("pcn_code", "pcn_name"),
    "practice": ("practice_code", "practice_name"),
    "neighbourhood": ("neighbourhood_code", "neighbourhood_name"),
}
GROUPS = {"all": None, "ethnicity": "ethnic_group", "imd_quintile": "imd_quintile",
          "sex": "sex_group", "age_band": "age_band"}


def _with_areas(base: pd.DataFrame, data: OracleData) -> pd.DataFrame:
    prac = data.practices.set_index("practice_code")
    nbhd = data.neighbourhoods.set_index("lsoa_code")
    for col in ("practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"):
        base[col] = base["practice_code"].map(prac[col])
    base["neighbourhood_code"] = base["lsoa_code"].map(nbhd["neighbourhood_code"])
    base["neighbourhood_name"] = base["lsoa_code"].map(nbhd["neighbourhood_name"])
    return base


def _aggregate(pop: pd.DataFrame, d: date, measure_id: str) -> pd.DataFrame:
    """Patient rows with `observed` (0/1) -> observed, population, expected per area x group; the internal
    reference rate of each stratum is over everyone in `pop` (this date's population or denominator)."""
    pop = pop.copy()
    pop["population"] = 1
    ref = pop.groupby("stratum")["observed"].mean()
    pop["expected"] = pop["stratum"].map(ref)
    pop["all_group"] = "All"
    pieces = []
    for area_type, (code_col, name_col) in AREAS.items():
        in_area = pop[pop[code_col].notna()]
        for group_type, gcol in GROUPS.items():
            gcol = gcol or "all_group"
            agg = (in_area.groupby([code_col, gcol], dropna=False)
                   .agg(area_name=(name_col, "first"), observed=("observed", "sum"),
                        population=("population", "sum"), expected=("expected", "sum"))
                   .reset_index()
                   .rename(columns={code_col: "area_code", gcol: "group_value"}))
            agg.insert(0, "period", d)
            agg.insert(1, "condition", measure_id)
            agg.insert(2, "area_type", area_type)
            agg.insert(5, "group_type", group_type)
            pieces.append(agg)
    return pd.concat(pieces, ignore_index=True)


def _statistics(out: pd.DataFrame) -> pd.DataFrame:
    out = out[out["population"] > 0].copy()
    o = out["observed"].to_numpy(float)
    n = out["population"].to_numpy(float)
    e = out["expected"].to_numpy(float)
    out["rate"] = o / n
    out["rate_lower"], out["rate_upper"] = wilson(o, n)
    lo, hi = poisson_count_limits(o)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(e > 0, o / e, np.nan)
        out["ratio_lower"] = np.where(e > 0, lo / e, np.nan)
        out["ratio_upper"] = np.where(e > 0, hi / e, np.nan)
    out["missing"] = e - o
    out["observed"] = out["observed"].astype("int64")
    out["population"] = out["population"].astype("int64")
    out["group_value"] = out["group_value"].astype(str)
    return out


def oracle_prevalence(raw_dir: Path | str, config_path: Path | str, today: date) -> pd.DataFrame:
    raw_dir = Path(raw_dir)
    cfg = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    periods = sorted(p if isinstance(p, date) else date.fromisoformat(str(p)) for p in cfg["periods"])
    data = oracle_load(raw_dir, today)
    pieces = []
    for d in periods:
        base = _with_areas(population_on(data, d), data)
        for cond in cfg["conditions"]:
            pop = base[base["age"] >= int(cond.get("min_age", 0))].copy()
            if pop.empty:
                continue
            cases = cases_on(data.events, _codelist(raw_dir, cond["codelist"]),
                             _codelist(raw_dir, cond.get("resolved_codelist")), d)
            pop["observed"] = pop["patient_id"].isin(cases).astype(int)
            pieces.append(_aggregate(pop, d, cond["id"]))
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PREVALENCE_COLUMNS})
    out = _statistics(pd.concat(pieces, ignore_index=True))
    return out[PREVALENCE_COLUMNS].sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- indicators

def window_start(d: date, months: int) -> np.datetime64:
    """`months` calendar months before d, the day clamped to the month's end (pandas DateOffset does this)."""
    return np.datetime64((pd.Timestamp(d) - pd.DateOffset(months=months)).date(), "D")


def _in_window(events: pd.DataFrame, codes: set[str], d: date, months: int) -> pd.DataFrame:
    d64 = np.datetime64(d, "D")
    start = window_start(d, months)
    return events[events["code"].isin(codes) & (events["date"] > start) & (events["date"] <= d64)]


def indicator_numerator(kind: str, ind: dict, raw_dir: Path, events: pd.DataFrame, d: date) -> set[str]:
    """Patients meeting the indicator's numerator rule on d (before restricting to the denominator)."""
    months = int(ind.get("months", 12))
    if kind == "care_process":
        return set(_in_window(events, _codelist(raw_dir, ind["codelist"]), d, months)["patient_id"])
    if kind == "case_finding":
        ev = _in_window(events, _codelist(raw_dir, ind["evidence_codelist"]), d, months)
        if ind.get("min_value") is not None:
            ev = ev[ev["value"] >= float(ind["min_value"])]   # NaN (no value) is never >= anything
        dates = ev.groupby("patient_id")["date"].nunique()
        return set(dates.index[dates >= int(ind.get("min_count", 1))])
    # outcome: every criterion's latest valued reading (lowest on that date) within its bounds
    met: set[str] | None = None
    for crit in ind["criteria"]:
        ev = _in_window(events, _codelist(raw_dir, crit["codelist"]), d, months)
        ev = ev[ev["value"].notna()]
        latest = ev.groupby("patient_id")["date"].transform("max")
        lowest = ev[ev["date"] == latest].groupby("patient_id")["value"].min()
        ok = pd.Series(True, index=lowest.index)
        if crit.get("min_value") is not None:
            ok &= lowest >= float(crit["min_value"])
        if crit.get("max_value") is not None:
            ok &= lowest <= float(crit["max_value"])
        these = set(lowest.index[ok])
        met = these if met is None else met & these
    return met or set()


def oracle_indicators(raw_dir: Path | str, config_path: Path | str, today: date) -> pd.DataFrame:
    """The `indicators` table: denominators from the register (or, for case_finding, the population not on it)
    in the age band, numerators by kind, and the same statistics as `prevalence` over each indicator's own
    denominator."""
    raw_dir = Path(raw_dir)
    cfg = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    periods = sorted(p if isinstance(p, date) else date.fromisoformat(str(p)) for p in cfg["periods"])
    conditions = {c["id"]: c for c in cfg["conditions"]}
    data = oracle_load(raw_dir, today)
    pieces = []
    for d in periods:
        base = _with_areas(population_on(data, d), data)
        for ind in cfg.get("indicators", []):
            cond = conditions[ind["denominator"]]
            cases = cases_on(data.events, _codelist(raw_dir, cond["codelist"]),
                             _codelist(raw_dir, cond.get("resolved_codelist")), d)
            low = int(ind.get("min_age", 0))
            on_register = base["patient_id"].isin(cases)
            if ind["kind"] == "case_finding":
                keep = ~on_register
            else:
                keep = on_register
                low = max(low, int(cond.get("min_age", 0)))
            keep &= base["age"] >= low
            if ind.get("max_age") is not None:
                keep &= base["age"] <= int(ind["max_age"])
            pop = base[keep].copy()
            if pop.empty:
                continue
            numerator = indicator_numerator(ind["kind"], ind, raw_dir, data.events, d)
            pop["observed"] = pop["patient_id"].isin(numerator).astype(int)
            agg = _aggregate(pop, d, ind["id"])
            agg.insert(2, "kind", ind["kind"])
            pieces.append(agg)
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in INDICATOR_COLUMNS})
    out = _statistics(pd.concat(pieces, ignore_index=True).rename(columns={"condition": "indicator"}))
    return out[INDICATOR_COLUMNS].sort_values(["period", "indicator", "area_type", "area_code", "group_type",
                                               "group_value"], kind="stable").reset_index(drop=True)


def compare_indicators(got: pd.DataFrame, want: pd.DataFrame, atol: float = 1e-6, limit: int = 10) -> list[str]:
    """Differences between the pipeline's `indicators` table and the oracle's (kinds included)."""
    problems = compare_prevalence(got.rename(columns={"indicator": "condition"}),
                                  want.rename(columns={"indicator": "condition"}), atol, limit)
    kinds_got = dict(zip(got["indicator"], got["kind"]))
    kinds_want = dict(zip(want["indicator"], want["kind"]))
    if kinds_got != kinds_want:
        problems.append(f"kinds differ: got {kinds_got}, want {kinds_want}")
    return problems


# ----------------------------------------------------------------------------------------------- comparison

def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """A prevalence table in a comparable form: ISO period text, string keys, sorted by the key."""
    df = df.copy()
    df["period"] = pd.to_datetime(df["period"]).dt.strftime("%Y-%m-%d")
    for c in ("condition", "area_type", "area_code", "area_name", "group_type", "group_value"):
        df[c] = df[c].astype(str)
    return df.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)


def compare_prevalence(got: pd.DataFrame, want: pd.DataFrame, atol: float = 1e-6, limit: int = 10) -> list[str]:
    """Differences between the pipeline's prevalence (`got`) and the oracle's (`want`), as readable lines."""
    problems = []
    missing_cols = [c for c in PREVALENCE_COLUMNS if c not in got.columns]
    if missing_cols:
        return [f"columns missing from the pipeline's table: {missing_cols}"]
    g, w = normalise(got[PREVALENCE_COLUMNS]), normalise(want[PREVALENCE_COLUMNS])
    if g.duplicated(KEY_COLUMNS).any():
        problems.append(f"pipeline has {int(g.duplicated(KEY_COLUMNS).sum())} duplicated keys")
    m = g.merge(w, on=KEY_COLUMNS, how="outer", suffixes=("_got", "_want"), indicator=True)
    only_got = m[m["_merge"] == "left_only"]
    only_want = m[m["_merge"] == "right_only"]
    for _, r in only_got.head(limit).iterrows():
        problems.append(f"extra row in pipeline: {tuple(r[KEY_COLUMNS])} population={r['population_got']}")
    for _, r in only_want.head(limit).iterrows():
        problems.append(f"row missing from pipeline: {tuple(r[KEY_COLUMNS])} population={r['population_want']}")
    if len(only_got) or len(only_want):
        problems.append(f"key sets differ: {len(only_got)} extra, {len(only_want)} missing, of {len(w)} expected")
    both = m[m["_merge"] == "both"]
    for c in ("observed", "population", "area_name"):
        bad = both[both[f"{c}_got"].astype(str) != both[f"{c}_want"].astype(str)]
        for _, r in bad.head(limit).iterrows():
            problems.append(f"{c} differs at {tuple(r[KEY_COLUMNS])}: got {r[f'{c}_got']}, want {r[f'{c}_want']}")
    for c in ("rate", "rate_lower", "rate_upper", "expected", "ratio", "ratio_lower", "ratio_upper", "missing"):
        a = pd.to_numeric(both[f"{c}_got"], errors="coerce").to_numpy(float)
        b = pd.to_numeric(both[f"{c}_want"], errors="coerce").to_numpy(float)
        same = np.isclose(a, b, rtol=1e-9, atol=atol) | (np.isnan(a) & np.isnan(b))
        for _, r in both[~same].head(limit).iterrows():
            problems.append(f"{c} differs at {tuple(r[KEY_COLUMNS])}: got {r[f'{c}_got']!r}, want {r[f'{c}_want']!r} "
                            f"(observed {r['observed_want']}, population {r['population_want']}, "
                            f"expected {r['expected_want']})")
    return problems
