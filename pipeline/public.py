"""The published-data path: adapters from England's published practice-level files to the warehouse tables the
patient path's marts write, so that the same `analyse` and report code builds every output from them.

    python -m pipeline public --in DIR --year 2022-23[,2024-25] --processed P --reports R [--icb QHM|all]

DIR holds England's published files as downloaded: flat, in zip archives (read by member name), or in the
sub-folders qof/, mapping/, registrations/, practice_imd/, census/ (pipeline/public_inputs.py;
`python -m pipeline public --sources --year 2022-23`; docs/public-data.md). Several QOF years, comma-separated,
give the `trend` table and the packs' change section; the latest year is the one the packs report.

Tables the adapters write (the patient path's mart names, so `analyse` reads them unchanged):

* ``practices``: one row per practice in any loaded QOF year, placed in the latest year's hierarchy (its QOF
  mapping, or the registered-patients map when the QOF year has none). A practice missing from that mapping is
  placed by an earlier loaded year's QOF mapping (its PCN, in the ICB that PCN belongs to now), else by ODS
  epraccur (its sub-ICB's current ICB; PCN 'U'); ``placed_by`` says which, and the run's log and the packs'
  notes give the number placed each way. PCN 'U' ("Unallocated") is not a network: no PCN row.
* ``prevalence_counts``: period (QOF year end) x register x area (england, icb, pcn, practice) x group:
  ``all``, ``practice_imd_quintile`` (England, ICBs, PCNs) and ``practice_imd_decile`` (England, ICBs), where a
  practice's group is its national decile of practices by IMD score weighted by list size (1 = most deprived;
  no score: 'Unknown'). ``observed`` = REGISTER, ``population`` = the register's list size (e.g. patients 18+
  for DEP); ``expected`` = the year's national rate in the practice's IMD decile x its list size (the national
  rate without a score).
* ``trend_expected``: per pair of loaded years, the expected counts of both years on the EARLIER year's decile
  rates (as the patient path's trend_expected, with the practice's IMD decile of each year in place of the
  sex x age stratum); ``trend_transitions`` is empty: published counts have no patient-level pairing, so the
  trend's variance treats the two years as independent counts (cases_both = 0, the conservative side).
* ``conditions`` (the 21 QOF registers), ``run_info``, ``load_summary``, ``rejects``.
* Specific to this path: ``public_model`` (one row per register x term of a Poisson GLM, log link, offset
  log(list size), on IMD decile, age-band shares, share female and share not White (+ square), fitted by IRLS)
  and ``public_expected`` (latest year: each practice and area's model-expected count, its ratio with exact or
  Byar limits, ``model_basis`` and ``model_coverage``); ``public_practice`` (mapping, IMD, covariates).

IMD: IMD 2019 (Fingertips 93553) for QOF years to 2023-24, IMD 2025 (Fingertips 94240) from 2024-25.
Published QOF counts are public already: the packs show them unrounded, true zeros included (disclosure
``from_published``).
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from . import adapters as A
from .config import Condition, Config, load_config
from .errors import PipelineError
from .ingest import _file_hash, run_date
from .public_inputs import find_input, missing_message
from .warehouse import query, read_table, staged

log = logging.getLogger("pipeline.public")

ENGLAND_CODE, ENGLAND_NAME = "E92000001", "England"
UNALLOCATED_PCN = "U"
COUNT_COLUMNS = ["period", "condition", "area_type", "area_code", "area_name", "group_type", "group_value",
                 "observed", "population", "expected"]
PRACTICE_COLUMNS = ["practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"]
# QOF register (GROUP_CODE) -> label; the minimum age comes from the register's list type (18OV: 18 and over)
QOF_REGISTERS = {
    "AF": "Atrial fibrillation", "AST": "Asthma", "CAN": "Cancer", "CHD": "Coronary heart disease",
    "CKD": "Chronic kidney disease", "COPD": "COPD", "DEM": "Dementia", "DEP": "Depression",
    "DM": "Diabetes mellitus", "EP": "Epilepsy", "HF": "Heart failure", "HYP": "Hypertension",
    "LD": "Learning disability", "MH": "Mental health (psychoses)", "NDH": "Non-diabetic hyperglycaemia",
    "OB": "Obesity", "OST": "Osteoporosis", "PAD": "Peripheral arterial disease", "PC": "Palliative care",
    "RA": "Rheumatoid arthritis", "STIA": "Stroke and TIA"}
IMD_2025_FROM = date(2025, 3, 31)   # QOF years ending on or after this use IMD 2025
PLACED_BY = ("mapping", "earlier mapping", "epraccur")

# broad age bands for the model (shares of all registered patients); 25-44 is the reference band
MODEL_AGE_BANDS = {"0-14": ["0-4", "5-9", "10-14"], "15-24": ["15-19", "20-24"],
                   "25-44": ["25-29", "30-34", "35-39", "40-44"], "45-64": ["45-49", "50-54", "55-59", "60-64"],
                   "65-74": ["65-69", "70-74"], "75-84": ["75-79", "80-84"], "85+": ["85-89", "90+"]}
MODEL_AGE_REFERENCE = "25-44"


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------

def locate_inputs(in_dir: Path, year: str, tmp: Path) -> dict:
    """The files for a QOF year, found as downloaded (pipeline/public_inputs.py: in the input directory, its layout
    sub-folders, or as members of zip archives there, copied into `tmp`) and checked to exist: {'period', 'yy',
    'qof', 'mapping', 'mapping_kind', 'imd', 'imd_year', 'registrations', 'ethnicity', 'epraccur' (or None)}."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise PipelineError(f"the input directory given to --in ({in_dir.name}) does not exist.")
    yy, period = A.parse_qof_year(year)
    qof = find_input(in_dir, "qof", year, tmp)
    if qof is None:
        raise PipelineError(missing_message("qof", year))
    mapping, kind = find_input(in_dir, "mapping", year, tmp), "qof"
    if mapping is None:
        mapping, kind = find_input(in_dir, "mapping_gp_reg", year, tmp), "gp_reg"
        if mapping is None:
            raise PipelineError(f"there is no practice mapping for {year}: neither mapping/MAPPING_NHS_GEOGRAPHIES_{yy}.csv "
                                "(NHS England, the QOF raw data zip) nor mapping/gp-reg-pat-prac-map.csv (NHS England, "
                                "\"Patients Registered at a GP Practice\", gp-reg-pat-prac-map.zip) is in the input "
                                "directory or a zip archive there.")
        log.warning("no QOF mapping for %s: using %s (practice -> PCN -> ICB at that file's date)", year, mapping.name)
    imd_key, imd_year = ("imd2025", 2025) if period >= IMD_2025_FROM else ("imd", 2019)
    imd = find_input(in_dir, imd_key, year, tmp)
    if imd is None:
        raise PipelineError(missing_message(imd_key, year))
    return {"period": period, "yy": yy, "qof": qof, "mapping": mapping, "mapping_kind": kind, "imd": imd,
            "imd_year": imd_year, "registrations": find_input(in_dir, "registrations", year, tmp),
            "ethnicity": find_input(in_dir, "ethnicity", year, tmp), "epraccur": find_input(in_dir, "epraccur", year, tmp)}


def load_inputs(in_dir: Path, year: str) -> dict:
    """Read and adapt every input for the year -> {'files': locate_inputs(...), 'adapted': {name: Adapted}}. Zip
    members are copied into a temporary folder that is removed once they are read."""
    with tempfile.TemporaryDirectory(prefix="public-inputs-") as tmp:
        files = locate_inputs(in_dir, year, Path(tmp))
        read_imd = A.read_fingertips_imd_2025 if files["imd_year"] == 2025 else \
            (lambda path: A.read_fingertips_practice_imd(path, 2019))
        adapted = {
            "qof": A.read_qof_prevalence(files["qof"]),
            "mapping": (A.read_qof_mapping if files["mapping_kind"] == "qof" else A.read_gp_reg_map)(files["mapping"]),
            "imd": read_imd(files["imd"]),
        }
        for key, reader in (("registrations", A.read_registrations_quin_age), ("ethnicity", A.read_practice_ethnicity),
                            ("epraccur", A.read_epraccur)):
            if files[key] is not None:
                adapted[key] = reader(files[key])
        digest = hashlib.sha256()
        for key in ("qof", "mapping", "imd", "registrations", "ethnicity", "epraccur"):
            if files[key] is not None:
                _file_hash(files[key], digest)
    return {"files": files, "adapted": adapted, "hash": digest.hexdigest()}


def qof_conditions(qof: pd.DataFrame) -> tuple[Condition, ...]:
    """The registers in the QOF file as the configuration's conditions (label, minimum age from the list type)."""
    list_type = qof.drop_duplicates("condition").set_index("condition")["list_type"]
    out = []
    for code in sorted(list_type.index, key=lambda c: (c not in QOF_REGISTERS, list(QOF_REGISTERS).index(c)
                                                        if c in QOF_REGISTERS else 0, c)):
        kind = str(list_type[code])
        min_age = int(kind[:2]) if kind[:2].isdigit() else 0
        label = QOF_REGISTERS.get(code, code) + (f" (aged {min_age} and over)" if min_age else "")
        out.append(Condition(id=code, label=label, codelist=f"QOF register {code}", min_age=min_age))
    return tuple(out)


def practice_deciles(score: np.ndarray, weight: np.ndarray, n: int = 10) -> np.ndarray:
    """National quantiles of practices weighted by list size: 1 = highest score (most deprived).

    Practices are ordered by score (descending; ties by the given order); a practice's quantile is the one holding
    the midpoint of its cumulative weight: ``floor(n * (cum_before + w/2) / total) + 1``. NaN score -> 0.
    """
    score = np.asarray(score, float)
    weight = np.asarray(weight, float)
    out = np.zeros(score.shape, dtype="int64")
    ok = np.isfinite(score) & np.isfinite(weight) & (weight >= 0)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(-score[idx], kind="stable")]
    w = weight[order]
    total = w.sum()
    if total <= 0:
        return out
    mid = np.cumsum(w) - w / 2.0
    out[order] = np.minimum(np.floor(n * mid / total).astype("int64") + 1, n)
    return out


# ------------------------------------------------------------------------------------------------
# the model: Poisson GLM by IRLS
# ------------------------------------------------------------------------------------------------

def poisson_glm(y: np.ndarray, X: np.ndarray, offset: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> dict:
    """Poisson regression with log link and an offset, by iteratively reweighted least squares.

    Returns {'coef', 'se' (model-based), 'se_quasi' (x sqrt(dispersion)), 'fitted', 'deviance', 'dispersion'
    (Pearson chi-square / (n - p)), 'iterations', 'converged'}. X must include the intercept column.
    """
    y = np.asarray(y, float)
    X = np.asarray(X, float)
    offset = np.asarray(offset, float)
    n, p = X.shape

    def deviance(coef: np.ndarray) -> float:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            fitted = np.exp(X @ coef + offset)
            return float(2.0 * np.sum(np.where(y > 0, y * np.log(y / fitted), 0.0) - (y - fitted)))

    beta = np.zeros(p)
    beta[0] = np.log(max(y.sum(), 1e-12) / np.exp(offset).sum())   # column 0 is the intercept
    dev_old = dev = deviance(beta)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        eta = X @ beta + offset
        mu = np.exp(eta)
        z = (eta - offset) + (y - mu) / mu
        XtW = X.T * mu
        step = np.linalg.solve(XtW @ X, XtW @ z)
        dev = deviance(step)
        # step halving (as R's glm.fit): a step that overflows or raises the deviance goes half way back
        for _ in range(60):
            if np.isfinite(dev) and dev <= dev_old * (1 + 1e-12) + 1e-12:
                break
            step = (step + beta) / 2.0
            dev = deviance(step)
        beta = step
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            converged = True
            break
        dev_old = dev
    mu = np.exp(X @ beta + offset)
    cov = np.linalg.inv((X.T * mu) @ X)
    se = np.sqrt(np.diag(cov))
    dispersion = float(np.sum((y - mu) ** 2 / mu) / max(n - p, 1))
    return {"coef": beta, "se": se, "se_quasi": se * np.sqrt(max(dispersion, 1.0)), "fitted": mu,
            "deviance": float(dev), "dispersion": dispersion, "iterations": it, "converged": converged}


def model_design(practice: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Design matrix for the expected-prevalence model from practice covariates -> (X, term names, usable rows).

    Terms: intercept; IMD decile 2..10 (decile 1 = reference); age-band shares (25-44 reference), share female,
    share not White and its square (continuous terms centred and scaled by their SD, so coefficients are per SD).
    """
    cols, names = [np.ones(len(practice))], ["intercept"]
    dec = practice["imd_decile"].to_numpy()
    for d in range(2, 11):
        cols.append((dec == d).astype(float))
        names.append(f"imd_decile_{d}")
    cont = [f"age_{b}" for b in MODEL_AGE_BANDS if b != MODEL_AGE_REFERENCE] + ["share_female", "pct_non_white"]
    usable = (dec > 0) & practice[cont].notna().all(axis=1).to_numpy()
    for c in cont:
        v = practice[c].to_numpy(float)
        mu, sd = np.nanmean(v[usable]), np.nanstd(v[usable])
        cols.append((v - mu) / (sd if sd > 0 else 1.0))
        names.append(c)
    nw = (practice["pct_non_white"].to_numpy(float) - np.nanmean(practice["pct_non_white"].to_numpy(float)[usable]))
    sd = np.nanstd(nw[usable])
    cols.append((nw / (sd if sd > 0 else 1.0)) ** 2)
    names.append("pct_non_white_sq")
    return np.column_stack(cols), names, usable


def _practice_covariates(practices: pd.DataFrame, reg: pd.DataFrame | None, eth: pd.DataFrame | None) -> pd.DataFrame:
    out = practices[["practice_code"]].copy()
    age_cols = [f"age_{b}" for b in MODEL_AGE_BANDS]
    if reg is not None and len(reg):
        band_to_broad = {fine: broad for broad, fines in MODEL_AGE_BANDS.items() for fine in fines}
        r = reg.assign(broad=reg["age_band"].map(band_to_broad))
        total = r.groupby("practice_code")["patients"].sum()
        wide = r.pivot_table(index="practice_code", columns="broad", values="patients", aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=list(MODEL_AGE_BANDS), fill_value=0).div(total, axis=0)
        wide.columns = age_cols
        fem = r.loc[r["sex"] == "F"].groupby("practice_code")["patients"].sum().reindex(total.index, fill_value=0)
        wide["share_female"] = fem / total
        wide["registered_patients"] = total
        wide = wide.loc[total > 0]
        out = out.merge(wide, left_on="practice_code", right_index=True, how="left")
    else:
        for c in age_cols + ["share_female", "registered_patients"]:
            out[c] = np.nan
    if eth is not None and len(eth):
        out = out.merge(eth[["practice_code", "pct_non_white"]], on="practice_code", how="left")
    else:
        out["pct_non_white"] = np.nan
    return out


# ------------------------------------------------------------------------------------------------
# the adapters: practices placed in one hierarchy, counts per area x group
# ------------------------------------------------------------------------------------------------

def _majority(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """For each `key`, the `value` most of its rows have (ties: the first code in order)."""
    counts = frame.groupby([key, value]).size().reset_index(name="rows")
    counts = counts.sort_values([key, "rows", value], ascending=[True, False, True])
    return counts.drop_duplicates(key).set_index(key)[value]


def place_practices(codes, mapping: pd.DataFrame, earlier: list[pd.DataFrame],
                    epraccur: pd.DataFrame | None) -> pd.DataFrame:
    """Each practice code in `codes` placed in `mapping`'s hierarchy (the latest year's): by `mapping`; else by an
    earlier year's mapping (its PCN, in the ICB that PCN is in now, or its old ICB's successor: the current ICB
    holding most of its old practices); else by epraccur (its sub-ICB's current ICB, PCN 'U'). Practices none of
    them knows are left out. Columns: PRACTICE_COLUMNS + placed_by."""
    wanted = pd.Index(pd.unique(np.asarray(codes, dtype=object)))
    current = mapping.drop_duplicates("practice_code").assign(placed_by=PLACED_BY[0])
    pcn_icb = _majority(current.loc[current["pcn_code"] != UNALLOCATED_PCN], "pcn_code", "icb_code")
    icb_names = current.drop_duplicates("icb_code").set_index("icb_code")["icb_name"]
    parts = [current.loc[current["practice_code"].isin(wanted)]]
    placed = set(parts[0]["practice_code"])
    for old in earlier:
        successor = _majority(old.merge(current[["practice_code", "icb_code"]], on="practice_code",
                                        suffixes=("", "_now")), "icb_code", "icb_code_now")
        rows = old.loc[old["practice_code"].isin(wanted) & ~old["practice_code"].isin(placed)].copy()
        rows["icb_code"] = rows["pcn_code"].map(pcn_icb).fillna(rows["icb_code"].map(successor)).fillna(rows["icb_code"])
        rows["icb_name"] = rows["icb_code"].map(icb_names).fillna(rows["icb_name"])
        parts.append(rows.assign(placed_by=PLACED_BY[1]))
        placed |= set(rows["practice_code"])
    if epraccur is not None:
        sub_icb = _majority(current, "sub_icb_code", "icb_code") if "sub_icb_code" in current else pd.Series(dtype=object)
        rows = epraccur.loc[epraccur["practice_code"].isin(wanted) & ~epraccur["practice_code"].isin(placed)].copy()
        rows["icb_code"] = rows["sub_icb_code"].map(sub_icb).fillna(rows["icb_code"])
        rows = rows.loc[rows["icb_code"].isin(icb_names.index)]
        rows = rows.assign(pcn_code=UNALLOCATED_PCN, pcn_name="Unallocated", icb_name=rows["icb_code"].map(icb_names),
                           placed_by=PLACED_BY[2])
        parts.append(rows)
    out = pd.concat([p[PRACTICE_COLUMNS + ["placed_by"]] for p in parts], ignore_index=True)
    out["practice_name"] = out["practice_name"].where(out["practice_name"] != "", out["practice_code"])
    return out.sort_values("practice_code", kind="stable").reset_index(drop=True)


def year_practices(qof: pd.DataFrame, imd: pd.DataFrame, practices: pd.DataFrame, period: date) -> pd.DataFrame:
    """One QOF year's practice rows: condition, practice, observed (REGISTER), population (list size), the
    practice's national IMD decile and quintile of that year (0 = no score) and expected (the year's national
    rate in the decile x list size)."""
    size = qof.groupby("practice_code")["list_size"].max()
    score = imd.drop_duplicates("practice_code").set_index("practice_code")["imd_score"].reindex(size.index)
    decile = pd.Series(practice_deciles(score.to_numpy(), size.to_numpy()), index=size.index)
    prac = qof.loc[qof["practice_code"].isin(set(practices["practice_code"])),
                   ["condition", "practice_code", "register", "list_size"]]
    prac = prac.rename(columns={"register": "observed", "list_size": "population"})
    prac["period"] = period
    prac["imd_decile"] = prac["practice_code"].map(decile).fillna(0).astype("int64")
    prac["imd_quintile"] = np.where(prac["imd_decile"] > 0, (prac["imd_decile"] + 1) // 2, 0)
    prac["expected"] = prac["population"] * decile_rates(prac, prac)
    return prac.reset_index(drop=True)


def decile_rates(rates_from: pd.DataFrame, cells: pd.DataFrame) -> np.ndarray:
    """The national register rate of `rates_from` in each `cells` row's IMD decile (its national rate when the
    decile is unknown or has no practice in `rates_from`)."""
    known = rates_from.loc[rates_from["imd_decile"] > 0]
    by_decile = known.groupby(["condition", "imd_decile"])[["observed", "population"]].sum()
    national = rates_from.groupby("condition")[["observed", "population"]].sum()
    keys = pd.MultiIndex.from_arrays([cells["condition"], cells["imd_decile"]])
    rate = (by_decile["observed"] / by_decile["population"]).reindex(keys).to_numpy(float)
    fallback = (national["observed"] / national["population"]).reindex(cells["condition"]).to_numpy(float)
    return np.where(np.isfinite(rate), rate, fallback)


def area_cells(prac: pd.DataFrame, practices: pd.DataFrame, values: list[str], keys: list[str]) -> pd.DataFrame:
    """Practice rows summed into areas and groups: every area's `all` row, practice-IMD-quintile rows for England,
    ICBs and PCNs, and practice-IMD-decile rows for England and ICBs. `keys` (e.g. period, condition) are kept."""
    rows = prac.merge(practices[PRACTICE_COLUMNS], on="practice_code")
    rows["england"] = ENGLAND_CODE
    rows["quintile"] = np.where(rows["imd_quintile"] > 0, rows["imd_quintile"].astype(str), "Unknown")
    rows["decile"] = np.where(rows["imd_decile"] > 0, rows["imd_decile"].astype(str), "Unknown")
    rows["all"] = "All"
    networks = rows.loc[rows["pcn_code"] != UNALLOCATED_PCN]
    levels = (("england", "england", ("all", "quintile", "decile"), rows),
              ("icb", "icb_code", ("all", "quintile", "decile"), rows),
              ("pcn", "pcn_code", ("all", "quintile"), networks),
              ("practice", "practice_code", ("all",), rows))
    group_types = {"all": "all", "quintile": "practice_imd_quintile", "decile": "practice_imd_decile"}
    parts = []
    for area_type, code, groups, source in levels:
        for group in groups:
            summed = source.groupby(keys + [code, group], as_index=False)[values].sum()
            parts.append(summed.rename(columns={code: "area_code", group: "group_value"})
                         .assign(area_type=area_type, group_type=group_types[group]))
    out = pd.concat(parts, ignore_index=True)
    names = pd.concat([practices.set_index("practice_code")["practice_name"],
                       practices.drop_duplicates("pcn_code").set_index("pcn_code")["pcn_name"],
                       practices.drop_duplicates("icb_code").set_index("icb_code")["icb_name"],
                       pd.Series({ENGLAND_CODE: ENGLAND_NAME})])
    out["area_name"] = out["area_code"].map(names[~names.index.duplicated()])
    return out


def trend_expected(years: list[pd.DataFrame], practices: pd.DataFrame) -> pd.DataFrame:
    """Per pair of loaded years (consecutive, and first to last when more than two), each area's `all` expected
    count on both dates with the EARLIER year's national decile rates (the patient path's trend_expected)."""
    ordered = sorted(years, key=lambda y: y["period"].iloc[0])
    pairs = list(zip(ordered, ordered[1:], strict=False))
    if len(ordered) > 2:
        pairs.append((ordered[0], ordered[-1]))
    parts = []
    for first, last in pairs:
        both = pd.concat([first.assign(expected_from=first["expected"], expected_to=0.0),
                          last.assign(expected_from=0.0, expected_to=last["population"] * decile_rates(first, last))])
        both = both.assign(period_from=first["period"].iloc[0], period_to=last["period"].iloc[0])
        cells = area_cells(both, practices, ["expected_from", "expected_to"], ["period_from", "period_to", "condition"])
        parts.append(cells.loc[cells["group_type"] == "all"])
    if not parts:
        return pd.DataFrame(columns=["period_from", "period_to", "condition", "area_type", "area_code", "group_type",
                                     "group_value", "expected_from", "expected_to"])
    out = pd.concat(parts, ignore_index=True)
    return out[["period_from", "period_to", "condition", "area_type", "area_code", "group_type", "group_value",
                "expected_from", "expected_to"]]


def model_tables(prac: pd.DataFrame, practices: pd.DataFrame, covariates: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The GLM of the latest year: `public_model` (one row per register x term) and `public_expected` (each
    practice and area: the model's expected count, its ratio with exact/Byar limits, the basis and coverage).
    A practice lacking a covariate keeps the decile-based expected count (`model_basis` = 'deprivation')."""
    from .stats import isr

    period = prac["period"].iloc[0]
    design_rows = covariates.merge(prac.drop_duplicates("practice_code")[["practice_code", "imd_decile"]],
                                   on="practice_code")
    covariate_columns = [c for c in design_rows.columns if c.startswith("age_")] + ["share_female", "pct_non_white"]
    fit_any = bool(design_rows[covariate_columns].notna().all(axis=1).any())   # no registrations file: no model
    X_all, terms, usable = model_design(design_rows) if fit_any else (None, [], None)
    row_of = pd.Series(np.arange(len(design_rows)), index=design_rows["practice_code"])
    prac = prac.loc[prac["practice_code"].isin(row_of.index) & (prac["population"] > 0)].copy()
    prac["expected_model"] = np.nan
    model_rows = []
    for cond, idx in (prac.groupby("condition").indices.items() if fit_any else ()):
        sub = prac.iloc[idx]
        rows = row_of.loc[sub["practice_code"]].to_numpy()
        use = usable[rows]
        if use.sum() <= len(terms) + 10:
            continue
        X = X_all[rows[use]]
        keep_cols = X.std(axis=0) > 0
        keep_cols[0] = True
        fit = poisson_glm(sub["observed"].to_numpy(float)[use], X[:, keep_cols],
                          np.log(sub["population"].to_numpy(float)[use]))
        if not fit["converged"]:
            log.warning("the model of register %s did not converge in %d iterations", cond, fit["iterations"])
        fitted = np.full(len(sub), np.nan)
        fitted[use] = fit["fitted"]
        prac.loc[prac.index[idx], "expected_model"] = fitted
        for term, coef, se, se_quasi in zip(np.array(terms)[keep_cols], fit["coef"], fit["se"], fit["se_quasi"],
                                            strict=True):
            model_rows.append({"period": period, "condition": cond, "term": term, "estimate": coef, "std_error": se,
                               "std_error_quasi": se_quasi,
                               "rate_ratio": float(np.exp(coef)) if term != "intercept" else np.nan,
                               "practices": int(use.sum()), "deviance": fit["deviance"],
                               "dispersion": fit["dispersion"], "converged": fit["converged"]})
    prac["model_population"] = np.where(prac["expected_model"].notna(), prac["population"], 0)
    prac["expected_model"] = prac["expected_model"].fillna(prac["expected"])
    cells = area_cells(prac, practices, ["observed", "population", "expected_model", "model_population"],
                       ["period", "condition"])
    cells = cells.loc[cells["group_type"] == "all"].reset_index(drop=True)
    ratio, lower, upper = isr(cells["observed"].to_numpy(float), cells["expected_model"].to_numpy(float), 0.95)
    cells["ratio_model"], cells["ratio_model_lower"], cells["ratio_model_upper"] = (
        np.asarray(v, float) for v in (ratio, lower, upper))
    cells["missing_model"] = cells["expected_model"] - cells["observed"]
    cells["model_coverage"] = cells["model_population"] / cells["population"]
    cells["model_basis"] = np.where(cells["model_coverage"] >= 1, "glm",
                                    np.where(cells["model_coverage"] > 0, "glm and deprivation", "deprivation"))
    expected = cells[["period", "condition", "area_type", "area_code", "area_name", "observed", "population",
                      "expected_model", "ratio_model", "ratio_model_lower", "ratio_model_upper", "missing_model",
                      "model_basis", "model_coverage"]]
    model_columns = ["period", "condition", "term", "estimate", "std_error", "std_error_quasi", "rate_ratio",
                     "practices", "deviance", "dispersion", "converged"]
    return {"public_model": pd.DataFrame(model_rows, columns=model_columns), "public_expected": expected}


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

def _reject_unplaced(adapted: A.Adapted, placed: set, mapping_name: str) -> None:
    rows = adapted.data.loc[~adapted.data["practice_code"].isin(placed)]
    if len(rows):
        extra = pd.DataFrame({
            "source": adapted.source, "row_number": rows["row_number"].to_numpy(),
            "reason": f"PRACTICE_CODE is in neither {mapping_name}, an earlier year's mapping nor epraccur",
            "raw_values": A._csv.raw_values(rows.astype(str), ["practice_code", "condition", "register", "list_type",
                                                                "list_size"]).to_numpy()})
        adapted.rejects = pd.concat([adapted.rejects, extra], ignore_index=True).sort_values("row_number", kind="stable")
        log.warning("%d practices in %s are placed by no mapping: rejected", rows["practice_code"].nunique(),
                    adapted.source)


def build_tables(loaded: list[dict], conditions: tuple[str, ...] | None = None) -> dict[str, pd.DataFrame]:
    """From the adapted inputs of one or more QOF years (load_inputs, oldest first) to every warehouse table the
    adapters write (pure: no files)."""
    latest = loaded[-1]
    adapted = latest["adapted"]
    qofs = [inp["adapted"]["qof"].data for inp in loaded]
    if conditions is not None:
        wanted = {c.upper() for c in conditions}
        qofs = [q.loc[q["condition"].isin(wanted)] for q in qofs]
        if qofs[-1].empty:
            raise PipelineError(f"none of the registers {list(conditions)} is in the QOF file.")
    epraccur = next((inp["adapted"]["epraccur"].data for inp in reversed(loaded) if "epraccur" in inp["adapted"]), None)
    practices = place_practices(pd.concat([q["practice_code"] for q in qofs]), adapted["mapping"].data,
                                [inp["adapted"]["mapping"].data for inp in loaded[:-1]], epraccur)
    placed = set(practices["practice_code"])
    for inp in loaded:
        _reject_unplaced(inp["adapted"]["qof"], placed, latest["files"]["mapping"].name)
    years = [year_practices(q, inp["adapted"]["imd"].data, practices, inp["files"]["period"])
             for q, inp in zip(qofs, loaded, strict=True)]
    counts = pd.concat([area_cells(y, practices, ["observed", "population", "expected"], ["period", "condition"])
                        for y in years], ignore_index=True)
    counts = counts.loc[counts["population"] > 0, COUNT_COLUMNS].reset_index(drop=True)
    counts["observed"] = counts["observed"].astype("int64")
    counts["population"] = counts["population"].astype("int64")
    covariates = _practice_covariates(practices.loc[practices["practice_code"].isin(set(years[-1]["practice_code"]))],
                                      adapted["registrations"].data if "registrations" in adapted else None,
                                      adapted["ethnicity"].data if "ethnicity" in adapted else None)
    imd_now = years[-1].drop_duplicates("practice_code").set_index("practice_code")
    public_practice = practices.merge(covariates, on="practice_code", how="left")
    public_practice["imd_decile"] = public_practice["practice_code"].map(imd_now["imd_decile"]).replace(0, np.nan)
    trend_cols = ["period_from", "period_to", "condition", "area_type", "area_code", "group_type", "group_value",
                  "cases_both"]
    return {"practices": practices, "prevalence_counts": counts, "trend_expected": trend_expected(years, practices),
            "trend_transitions": pd.DataFrame({c: pd.Series(dtype="int64" if c == "cases_both" else object)
                                               for c in trend_cols}),
            "public_practice": public_practice, **model_tables(years[-1], practices, covariates)}


def placement_summary(practices: pd.DataFrame) -> dict[str, int]:
    """How many practices each source placed ({'mapping': n, 'earlier mapping': n, 'epraccur': n})."""
    counts = practices["placed_by"].value_counts()
    return {how: int(counts.get(how, 0)) for how in PLACED_BY}


def published_config(con) -> Config:
    """The configuration of a published-data warehouse (what `analyse` and the packs read): its registers as the
    conditions, its QOF year ends as the periods, source 'published'."""
    conditions = tuple(Condition(id=code, label=label, codelist=f"QOF register {code}", min_age=int(min_age))
                       for code, label, min_age in read_table(con, "conditions", ["condition", "label", "min_age"])
                       .itertuples(index=False))
    periods = tuple(pd.to_datetime(query(con, "published_periods").df()["period"]).dt.date)
    return replace(load_config(), conditions=conditions, periods=periods, source="published")


def run_public(in_dir: Path, year: str, processed: Path, reports: Path, icb: str | None = None, *,
               conditions: tuple[str, ...] | None = None) -> dict:
    """Adapt the published files for one or more QOF years (`year`: '2022-23' or '2022-23,2024-25') into
    processed/warehouse.duckdb, run the same `analyse` as the patient path on it and, with `icb` (an ICB code or
    'all'), write the same packs as the patient path into `reports`. Returns a summary (row counts, periods,
    practices placed each way, packs)."""
    from .analyse import analyse

    processed, reports = Path(processed), Path(reports)
    years = sorted({y.strip() for y in str(year).split(",") if y.strip()}, key=lambda y: A.parse_qof_year(y)[1])
    loaded = [load_inputs(in_dir, y) for y in years]
    latest = loaded[-1]
    icbs = None
    if icb is not None and icb.strip().lower() != "all":
        icbs = [code.strip().upper() for code in icb.split(",")]
        unknown = sorted(set(icbs) - set(latest["adapted"]["mapping"].data["icb_code"]))
        if unknown:
            raise PipelineError(f"--icb {unknown[0]} is not an ICB code in {latest['files']['mapping'].name}.")
    tables = build_tables(loaded, conditions)
    placed = placement_summary(tables["practices"])
    log.info("practices placed: %s", ", ".join(f"{n} by {how}" for how, n in placed.items()))
    every = [a for inp in loaded for a in inp["adapted"].values()]
    tables["load_summary"] = pd.DataFrame([a.summary() for a in every]).astype(
        {"rows_read": "int64", "rows_loaded": "int64", "rows_rejected": "int64"})
    rejects = pd.concat([a.rejects for a in every], ignore_index=True)
    tables["rejects"] = rejects.astype({"row_number": "int64"}) if len(rejects) else pd.DataFrame(
        {"source": pd.Series(dtype=str), "row_number": pd.Series(dtype="int64"), "reason": pd.Series(dtype=str),
         "raw_values": pd.Series(dtype=str)})
    conds = qof_conditions(pd.concat([inp["adapted"]["qof"].data for inp in loaded]))
    if conditions is not None:
        conds = tuple(c for c in conds if c.id in {x.upper() for x in conditions})
    tables["conditions"] = pd.DataFrame({"condition": [c.id for c in conds], "label": [c.label for c in conds],
                                         "min_age": [c.min_age for c in conds]})
    tables["run_info"] = pd.DataFrame(list(run_facts(loaded, placed).items()), columns=["key", "value"])
    with staged(processed, fresh=True) as con:
        for name, frame in tables.items():
            con.register("adapted_frame", frame)
            con.execute(f'create table "{name}" as select * from adapted_frame')
            con.unregister("adapted_frame")
        cfg = published_config(con)
        analyse(processed, cfg, con)
    periods = cfg.periods
    summary = {"periods": [p.isoformat() for p in periods], "mapping": latest["files"]["mapping"].name,
               "placed": placed, "rows": {k: int(len(v)) for k, v in tables.items()}}
    if icb is not None:
        from .report.render import render_reports

        summary["packs"] = render_reports(processed, reports, cfg, icbs=icbs)
    log.info("public: %s", summary)
    return summary


def run_facts(loaded: list[dict], placed: dict[str, int]) -> dict[str, str]:
    """The run's choices in words (`run_info`), read by the packs' notes."""
    latest = loaded[-1]["files"]
    inputs = hashlib.sha256("".join(inp["hash"] for inp in loaded).encode())
    return {
        "source": "published",
        "pipeline_version": __version__,
        "input_hash": inputs.hexdigest()[:16],   # the files read, year by year, as the patient path's input_hash
        "run_date": run_date().isoformat(),
        "qof_years": ", ".join(f"{inp['files']['qof'].name} ({inp['files']['period'].isoformat()})" for inp in loaded),
        "mapping_file": latest["mapping"].name,
        "practice_imd": ", ".join(f"{inp['files']['imd'].name} (IMD {inp['files']['imd_year']})" for inp in loaded),
        "practices_placed": "; ".join(f"{n} by {how}" for how, n in placed.items()),
        "expected": "the QOF year's national register rate in the practice's IMD decile (weighted by list size) x "
                    "the register's list size",
        "model": "Poisson GLM, log link, offset log(list size): IMD decile + age-band shares + share female + "
                 "share not White (+ square); IRLS (public_model, public_expected)",
    }
