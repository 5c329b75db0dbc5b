"""The aggregate path: England's published practice-level data -> the same warehouse tables as the patient path.

    python -m pipeline public --in DIR --year 2022-23 --processed P --reports R [--icb QHM]

DIR holds England's published files as downloaded: flat, in zip archives (read by member name), or in the
sub-folders qof/, mapping/, registrations/, practice_imd/, census/. Publisher, publication, file names and the
vintage for each QOF year are in pipeline/public_inputs.py (`python -m pipeline public --sources --year 2022-23`;
docs/public-data.md). Inputs:

* ``qof/PREVALENCE_YYZZ.csv``: QOF registers and list sizes per practice and register (GROUP_CODE) — the counts.
* ``mapping/MAPPING_NHS_GEOGRAPHIES_YYZZ.csv`` (practice -> PCN -> ICB for that QOF year); when absent (as for
  2024-25) ``mapping/gp-reg-pat-prac-map.csv`` is used instead: its date is the registered-patients
  publication's, so ICBs follow that date's boundaries and practices closed by then are rejected.
* ``practice_imd/IMD_raw.csv`` (Fingertips practice IMD, long format): the practice's IMD 2019 score.
* ``registrations/gp-reg-pat-prac-quin-age.csv``: practice age/sex structure (model covariates only).
* ``census/practice_ethnicity.csv``: estimated share of patients not White (model covariate only).

Definitions used here (documented for analysts):

* ``observed`` = REGISTER, ``population`` = PRACTICE_LIST_SIZE of that register's list type (e.g. patients
  aged 18+ for DEP); area rows (PCN, ICB, England) are sums of their practices. ``period`` = the QOF year end.
  PCN code 'U' ("Unallocated") is not a network, so it has no PCN row (its practices count in ICB and England).
* **Practice IMD decile**: national deciles of practices by IMD 2019 score (1 = most deprived), *weighted by
  list size* (the practice's largest list, TOTAL): practices are ordered by score and each decile holds about a
  tenth of England's registered patients, not a tenth of practices. A practice goes to the decile that holds
  the midpoint of its patients. Practices without a score are 'Unknown'.
* **Expected (deprivation-adjusted)** — ``prevalence.expected``: the national rate of the register in the
  practice's IMD decile × the practice's list size; practices without a score get the national rate. Area
  expected = sum of practices'. ``ratio`` = observed / expected with exact/Byar limits; ``missing`` =
  expected - observed.
* **Expected (model)** — ``public_expected.expected_model``: a Poisson GLM per register, log link, offset
  log(list size), on IMD decile (factor), age structure (share of registered patients in broad age bands),
  share female, and estimated share not White (+ its square), fitted by IRLS over practices with every
  covariate; practices lacking a covariate keep the deprivation-adjusted value (`model_basis`). The age/sex
  file is the current publication (not the QOF year's): a documented approximation.

Tables written to processed/warehouse.duckdb (Parquet beside it for all but public_practice and public_run):

* ``prevalence`` (output contract; area_type england/icb/pcn/practice; group_type 'all' only, because the
  practice-IMD breakdown is by practice, not by patient as the contract's imd_quintile is).
* ``load_summary`` (source = file stem, rows_read, rows_loaded, rows_rejected) and ``rejects`` (source,
  row_number, reason, raw_values = 'COL=value; ...').
* ``funnel`` (contract): practices and PCNs against their ICB; statistic 'proportion' (Wilson significance
  against the ICB rate) and 'ratio' (observed against deprivation-adjusted expected, exact Poisson limits).
  A PCN spanning two ICBs is compared with the ICB holding most of its patients.
* ``inequality`` (contract): measure crude_rate, dimension imd_decile (England and every ICB with all ten
  national deciles populated) and imd_quintile (England).
* ``public_expected``: every prevalence row with expected_deprivation / expected_model, their ratios (exact or
  Byar 95% limits) and missing, plus imd_score/imd_decile for practices, model_basis, model_coverage.
* ``public_model``: one row per register × model term (estimate on the log scale, per SD for continuous terms;
  std_error, std_error_quasi scaled by the Pearson dispersion, rate_ratio, deviance, dispersion).
* ``public_gradient``: observed, population, rate and Wilson limits by practice IMD decile, England and ICBs.
* ``public_practice``: one row per mapped practice: mapping, total_list_size, imd_score, imd_decile,
  imd_quintile, the model covariates.
* ``public_run``: the choices made for this run, in words.

With ``--icb`` packs are written to reports/<ICB>/: ``ics_<ICB>_<year>.pdf`` (+ CSV) comparing the ICB's PCNs and
practices, and ``pcn/<PCN_CODE>.pdf`` (+ CSV) for each of its PCNs (pipeline/report/public_packs.py), every number
disclosure-controlled.
"""
from __future__ import annotations

import logging
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from . import adapters as A
from .errors import PipelineError
from .public_inputs import find_input, missing_message
from .warehouse import staged

log = logging.getLogger("pipeline.public")

PREVALENCE_COLUMNS = ["period", "condition", "area_type", "area_code", "area_name", "group_type", "group_value",
                      "observed", "population", "rate", "rate_lower", "rate_upper", "expected", "ratio",
                      "ratio_lower", "ratio_upper", "missing"]
FUNNEL_COLUMNS = ["period", "condition", "area_type", "area_code", "parent_type", "parent_code", "statistic",
                  "observed", "denominator", "value", "parent_value", "lower_95", "upper_95", "lower_998",
                  "upper_998", "significance"]
INEQUALITY_COLUMNS = ["period", "condition", "area_type", "area_code", "dimension", "measure", "sii", "sii_lower",
                      "sii_upper", "rii", "rii_lower", "rii_upper"]
ENGLAND_CODE, ENGLAND_NAME = "E92000001", "England"
UNALLOCATED_PCN = "U"
AREA_ORDER = {"england": 0, "icb": 1, "pcn": 2, "practice": 3}

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
    'qof', 'mapping', 'mapping_kind', 'imd', 'registrations' (or None), 'ethnicity' (or None)}."""
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
    imd = find_input(in_dir, "imd", year, tmp)
    if imd is None:
        raise PipelineError(missing_message("imd", year))
    return {"period": period, "yy": yy, "qof": qof, "mapping": mapping, "mapping_kind": kind, "imd": imd,
            "registrations": find_input(in_dir, "registrations", year, tmp),
            "ethnicity": find_input(in_dir, "ethnicity", year, tmp)}


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
    beta = np.zeros(p)
    beta[0] = np.log(max(y.sum(), 1e-12) / np.exp(offset).sum())   # column 0 is the intercept
    dev_old = np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        eta = X @ beta + offset
        mu = np.exp(eta)
        z = (eta - offset) + (y - mu) / mu
        XtW = X.T * mu
        beta = np.linalg.solve(XtW @ X, XtW @ z)
        mu = np.exp(X @ beta + offset)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 2.0 * np.sum(np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
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


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

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


def _rate_cols(df: pd.DataFrame) -> pd.DataFrame:
    from .stats import isr, wilson_ci

    obs = df["observed"].to_numpy(float)
    pop = df["population"].to_numpy(float)
    exp = df["expected"].to_numpy(float)
    df["rate"] = obs / pop
    lo, hi = wilson_ci(obs, pop, 0.95)
    df["rate_lower"], df["rate_upper"] = np.asarray(lo, float), np.asarray(hi, float)
    r, rl, ru = isr(obs, exp, 0.95)
    df["ratio"], df["ratio_lower"], df["ratio_upper"] = (np.asarray(a, float) for a in (r, rl, ru))
    df["missing"] = exp - obs
    return df


def _aggregate(prac: pd.DataFrame, key: str, area_type: str, names: pd.Series | None,
               value_cols: list[str]) -> pd.DataFrame:
    g = prac.groupby(["condition", key], as_index=False, sort=True)[value_cols].sum(min_count=1)
    g = g.rename(columns={key: "area_code"})
    g["area_type"] = area_type
    g["area_name"] = g["area_code"].map(names) if names is not None else ENGLAND_NAME
    return g


def build_tables(qof: pd.DataFrame, mapping: pd.DataFrame, imd: pd.DataFrame, covariates_reg: pd.DataFrame | None,
                 eth: pd.DataFrame | None, period: date, mapping_source: str,
                 conditions: tuple[str, ...] | None = None) -> dict[str, pd.DataFrame]:
    """From adapted inputs to every output table (pure: no files). `qof` must already be restricted to mapped
    practices; `conditions` (QOF group codes) limits the registers reported (deciles still use every list)."""
    from .stats import (
        funnel_limits_proportion,
        funnel_limits_ratio,
        funnel_significance_proportion,
        funnel_significance_ratio,
        isr,
    )

    # practices: mapping + IMD decile (weighted by the practice's largest list) + covariates
    size = qof.groupby("practice_code")["list_size"].max().rename("total_list_size")
    practices = mapping.merge(size, left_on="practice_code", right_index=True, how="inner")
    practices = practices.merge(imd[["practice_code", "imd_score"]], on="practice_code", how="left")
    practices["imd_decile"] = practice_deciles(practices["imd_score"].to_numpy(), practices["total_list_size"].to_numpy())
    practices["imd_quintile"] = np.where(practices["imd_decile"] > 0, (practices["imd_decile"] + 1) // 2, 0)
    practices = practices.merge(_practice_covariates(practices, covariates_reg, eth), on="practice_code", how="left")

    if conditions is not None:
        qof = qof.loc[qof["condition"].isin([c.upper() for c in conditions])]
        if qof.empty:
            raise PipelineError(f"none of the registers {list(conditions)} is in the QOF file.")
    prac = qof.merge(practices[["practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name",
                                "imd_score", "imd_decile", "imd_quintile"]], on="practice_code", how="inner")
    prac = prac.rename(columns={"register": "observed", "list_size": "population"})

    # (a) deprivation-adjusted expected: national rate in the practice's IMD decile x its list size
    dec_rate = prac.loc[prac["imd_decile"] > 0].groupby(["condition", "imd_decile"])[["observed", "population"]].sum()
    dec_rate = (dec_rate["observed"] / dec_rate["population"]).rename("decile_rate")
    nat = prac.groupby("condition")[["observed", "population"]].sum()
    nat_rate = (nat["observed"] / nat["population"]).rename("national_rate")
    prac = prac.merge(dec_rate, left_on=["condition", "imd_decile"], right_index=True, how="left")
    prac = prac.merge(nat_rate, left_on="condition", right_index=True, how="left")
    prac["expected_deprivation"] = prac["decile_rate"].fillna(prac["national_rate"]) * prac["population"]

    # (b) model-based expected, one Poisson GLM per register
    X_all, terms, usable = model_design(practices)
    row_of = pd.Series(np.arange(len(practices)), index=practices["practice_code"])
    prac["expected_model"] = np.nan
    model_rows = []
    for cond, idx in prac.groupby("condition").indices.items():
        sub = prac.iloc[idx]
        rows = row_of.loc[sub["practice_code"]].to_numpy()
        use = usable[rows]
        if use.sum() <= len(terms) + 10:
            continue
        y = sub["observed"].to_numpy(float)[use]
        X = X_all[rows[use]]
        keep_cols = X.std(axis=0) > 0
        keep_cols[0] = True
        fit = poisson_glm(y, X[:, keep_cols], np.log(sub["population"].to_numpy(float)[use]))
        fitted = np.full(len(sub), np.nan)
        fitted[use] = fit["fitted"]
        prac.loc[prac.index[idx], "expected_model"] = fitted
        for t, b, s, sq in zip(np.array(terms)[keep_cols], fit["coef"], fit["se"], fit["se_quasi"], strict=True):
            model_rows.append({"period": period, "condition": cond, "term": t, "estimate": b, "std_error": s,
                               "std_error_quasi": sq, "rate_ratio": float(np.exp(b)) if t != "intercept" else np.nan,
                               "practices": int(use.sum()), "deviance": fit["deviance"],
                               "dispersion": fit["dispersion"], "converged": fit["converged"]})
    public_model = pd.DataFrame(model_rows)

    # practices the model could not cover (a covariate missing) keep the deprivation-adjusted expectation
    prac["model_basis"] = np.where(prac["expected_model"].notna(), "glm", "deprivation")
    prac["model_population"] = np.where(prac["expected_model"].notna(), prac["population"], 0)
    prac["expected_model"] = prac["expected_model"].fillna(prac["expected_deprivation"])

    # area rows: sums of practices
    prac["expected"] = prac["expected_deprivation"]
    vals = ["observed", "population", "expected", "expected_deprivation", "expected_model", "model_population"]
    pcn_names = mapping.drop_duplicates("pcn_code").set_index("pcn_code")["pcn_name"]
    icb_names = mapping.drop_duplicates("icb_code").set_index("icb_code")["icb_name"]
    keep = ["condition", "area_type", "area_code", "area_name"] + vals
    p_rows = prac.assign(area_type="practice", area_code=prac["practice_code"], area_name=prac["practice_name"],
                         pcn_code=prac["pcn_code"], icb_code=prac["icb_code"])
    eng = _aggregate(prac.assign(eng=ENGLAND_CODE), "eng", "england", None, vals)
    icb = _aggregate(prac, "icb_code", "icb", icb_names, vals)
    pcn = _aggregate(prac.loc[prac["pcn_code"] != UNALLOCATED_PCN], "pcn_code", "pcn", pcn_names, vals)
    allrows = pd.concat([eng, icb, pcn, p_rows[keep + ["pcn_code", "icb_code", "imd_score", "imd_decile",
                                                       "model_basis"]]], ignore_index=True)
    allrows["period"] = period
    allrows["group_type"] = "all"
    allrows["group_value"] = "All"
    allrows = allrows.loc[allrows["population"] > 0]
    allrows = _rate_cols(allrows)
    allrows["observed"] = allrows["observed"].astype("int64")
    allrows["population"] = allrows["population"].astype("int64")
    allrows["_a"] = allrows["area_type"].map(AREA_ORDER)
    allrows = allrows.sort_values(["condition", "_a", "area_code"], kind="stable").reset_index(drop=True)
    prevalence = allrows[PREVALENCE_COLUMNS].copy()

    # public_expected: both expectations with O/E, intervals and missing, for every prevalence row
    pe = allrows.copy()
    obs = pe["observed"].to_numpy(float)
    for which in ("deprivation", "model"):
        e = pe[f"expected_{which}"].to_numpy(float)
        r, lo, hi = isr(obs, e, 0.95)
        pe[f"ratio_{which}"], pe[f"ratio_{which}_lower"], pe[f"ratio_{which}_upper"] = (
            np.asarray(v, float) for v in (r, lo, hi))
        pe[f"missing_{which}"] = e - obs
    pe["model_coverage"] = pe["model_population"] / pe["population"]
    pe["imd_decile"] = pe["imd_decile"].astype("Int64").replace(0, pd.NA)
    pe = pe.rename(columns={"pcn_code": "parent_pcn", "icb_code": "parent_icb"})
    public_expected = pe[["period", "condition", "area_type", "area_code", "area_name", "parent_pcn", "parent_icb",
                          "imd_score", "imd_decile", "observed", "population",
                          "expected_deprivation", "ratio_deprivation", "ratio_deprivation_lower",
                          "ratio_deprivation_upper", "missing_deprivation",
                          "expected_model", "ratio_model", "ratio_model_lower", "ratio_model_upper",
                          "missing_model", "model_basis", "model_coverage"]].reset_index(drop=True)

    # funnel: practices and PCNs against their ICB
    icb_rate = icb.set_index(["condition", "area_code"])
    icb_p = (icb_rate["observed"] / icb_rate["population"]).rename("parent_value")
    pcn_parent = (prac.loc[prac["pcn_code"] != UNALLOCATED_PCN]
                  .groupby(["pcn_code", "icb_code"])["population"].sum().reset_index()
                  .sort_values(["pcn_code", "population", "icb_code"], ascending=[True, False, True])
                  .drop_duplicates("pcn_code").set_index("pcn_code")["icb_code"])
    fun_src = pd.concat([
        prac.assign(area_type="practice", area_code=prac["practice_code"], parent_code=prac["icb_code"])
        [["condition", "area_type", "area_code", "parent_code", "observed", "population", "expected"]],
        pcn.assign(parent_code=pcn["area_code"].map(pcn_parent))
        [["condition", "area_type", "area_code", "parent_code", "observed", "population", "expected"]],
    ], ignore_index=True)
    fun_src = fun_src.loc[fun_src["population"] > 0]
    fun_src = fun_src.merge(icb_p, left_on=["condition", "parent_code"], right_index=True, how="left")
    x = fun_src["observed"].to_numpy(float)
    n = fun_src["population"].to_numpy(float)
    pv = fun_src["parent_value"].to_numpy(float)
    lim = funnel_limits_proportion(pv, n)
    prop = pd.DataFrame({
        "period": period, "condition": fun_src["condition"].to_numpy(), "area_type": fun_src["area_type"].to_numpy(),
        "area_code": fun_src["area_code"].to_numpy(), "parent_type": "icb", "parent_code": fun_src["parent_code"].to_numpy(),
        "statistic": "proportion", "observed": x, "denominator": n, "value": x / n, "parent_value": pv,
        "lower_95": lim.lower_95, "upper_95": lim.upper_95, "lower_998": lim.lower_998, "upper_998": lim.upper_998,
        "significance": funnel_significance_proportion(x, n, pv)})
    e = fun_src["expected"].to_numpy(float)
    rl = funnel_limits_ratio(e, "ratio")
    ratio = pd.DataFrame({
        "period": period, "condition": fun_src["condition"].to_numpy(), "area_type": fun_src["area_type"].to_numpy(),
        "area_code": fun_src["area_code"].to_numpy(), "parent_type": "icb", "parent_code": fun_src["parent_code"].to_numpy(),
        "statistic": "ratio", "observed": x, "denominator": e, "value": np.where(e > 0, x / np.where(e > 0, e, 1), np.nan),
        "parent_value": 1.0, "lower_95": rl.lower_95, "upper_95": rl.upper_95, "lower_998": rl.lower_998,
        "upper_998": rl.upper_998, "significance": funnel_significance_ratio(x, e)})
    funnel = pd.concat([prop, ratio], ignore_index=True)[FUNNEL_COLUMNS]

    # gradient by practice IMD decile (England and each ICB), and SII/RII across deciles and quintiles
    known = prac.loc[prac["imd_decile"] > 0]
    grad_parts = []
    for area_type, key in (("england", None), ("icb", "icb_code")):
        k = known.assign(area_code=ENGLAND_CODE if key is None else known[key])
        g = k.groupby(["condition", "area_code", "imd_decile"], as_index=False).agg(
            practices=("practice_code", "nunique"), observed=("observed", "sum"), population=("population", "sum"))
        grad_parts.append(g.assign(area_type=area_type))
    grad = pd.concat(grad_parts, ignore_index=True)
    from .stats import wilson_ci

    gl, gu = wilson_ci(grad["observed"].to_numpy(float), grad["population"].to_numpy(float), 0.95)
    grad["rate"] = grad["observed"] / grad["population"]
    grad["rate_lower"], grad["rate_upper"] = np.asarray(gl, float), np.asarray(gu, float)
    grad["period"] = period
    public_gradient = grad[["period", "condition", "area_type", "area_code", "imd_decile", "practices", "observed",
                            "population", "rate", "rate_lower", "rate_upper"]]

    inequality = _inequality(grad, period)

    practice_table = practices.assign(period=period, mapping_source=mapping_source)
    practice_table["imd_decile"] = practice_table["imd_decile"].astype("Int64").replace(0, pd.NA)
    practice_table["imd_quintile"] = practice_table["imd_quintile"].astype("Int64").replace(0, pd.NA)

    return {"prevalence": prevalence, "public_expected": public_expected, "public_model": public_model,
            "funnel": funnel, "inequality": inequality, "public_gradient": public_gradient,
            "public_practice": practice_table}


def _inequality(grad: pd.DataFrame, period: date) -> pd.DataFrame:
    """SII/RII of the crude rate across practice IMD deciles (England and each ICB) and quintiles (England), for
    areas with every quantile populated (an ICB without practices in some national decile has no row)."""
    from .stats import quantile_matrix, sii_crude_rate_proportion

    parts = []
    for dim, nq in (("imd_decile", 10), ("imd_quintile", 5)):
        g = grad.assign(q=grad["imd_decile"] if nq == 10 else (grad["imd_decile"] + 1) // 2)
        if nq == 5:   # quintiles nationally only (each Monte Carlo SII costs ~0.02-0.03 s; deciles cover the ICBs)
            g = g.loc[g["area_type"] == "england"]
        g = g.groupby(["condition", "area_type", "area_code", "q"], as_index=False)[["observed", "population"]].sum()
        full = g.groupby(["condition", "area_type", "area_code"])["q"].transform("nunique") == nq
        g = g.loc[full]
        if g.empty:
            continue
        key = g["condition"] + "|" + g["area_type"] + "|" + g["area_code"]
        groups, (obs, pop) = quantile_matrix(key.to_numpy(), g["q"].to_numpy(), g["observed"].to_numpy(float),
                                             g["population"].to_numpy(float), n_quantiles=nq)
        res = sii_crude_rate_proportion(obs, pop)
        cond, atype, acode = zip(*(str(s).split("|") for s in groups), strict=True)
        parts.append(pd.DataFrame({
            "period": period, "condition": cond, "area_type": atype, "area_code": acode, "dimension": dim,
            "measure": "crude_rate", "sii": res.sii, "sii_lower": res.sii_lower, "sii_upper": res.sii_upper,
            "rii": res.rii, "rii_lower": res.rii_lower, "rii_upper": res.rii_upper}))
    if not parts:
        return pd.DataFrame(columns=INEQUALITY_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["_a"] = out["area_type"].map(AREA_ORDER)
    return out.sort_values(["condition", "dimension", "_a", "area_code"], kind="stable")[INEQUALITY_COLUMNS].reset_index(drop=True)


def _write_warehouse(tables: dict[str, pd.DataFrame], processed: Path, parquet: tuple[str, ...]) -> None:
    """Write every table into processed/warehouse.duckdb and the listed ones as Parquet, atomically."""
    with staged(processed, fresh=True, exported=parquet) as con:
        for name, df in tables.items():
            con.register("_df", df)
            con.execute(f'create table "{name}" as select * from _df')
            con.unregister("_df")


def load_inputs(in_dir: Path, year: str) -> dict:
    """Read and adapt every input for the year -> {'files': locate_inputs(...), 'adapted': {name: Adapted}}. Zip
    members are copied into a temporary folder that is removed once they are read."""
    with tempfile.TemporaryDirectory(prefix="public-inputs-") as tmp:
        files = locate_inputs(in_dir, year, Path(tmp))
        adapted = {
            "qof": A.read_qof_prevalence(files["qof"]),
            "mapping": (A.read_qof_mapping if files["mapping_kind"] == "qof" else A.read_gp_reg_map)(files["mapping"]),
            "imd": A.read_fingertips_practice_imd(files["imd"], 2019),
        }
        if files["registrations"] is not None:
            adapted["registrations"] = A.read_registrations_quin_age(files["registrations"])
        if files["ethnicity"] is not None:
            adapted["ethnicity"] = A.read_practice_ethnicity(files["ethnicity"])
    return {"files": files, "adapted": adapted}


def run_public(in_dir: Path, year: str, processed: Path, reports: Path, icb: str | None = None, *,
               conditions: tuple[str, ...] | None = None) -> dict:
    """Build processed/warehouse.duckdb (+ Parquet) from the public files for one QOF year.

    Tables: prevalence (output contract; area types england/icb/pcn/practice, group 'all'), load_summary,
    rejects, funnel, inequality, public_expected, public_model, public_gradient, public_practice, public_run.
    Returns a small summary dict (row counts, the period, the mapping used).
    """
    processed, reports = Path(processed), Path(reports)
    inp = load_inputs(in_dir, year)
    files, ad = inp["files"], inp["adapted"]
    period = files["period"]
    if icb is not None:
        icb = icb.strip().upper()
        if icb not in set(ad["mapping"].data["icb_code"]):
            raise PipelineError(f"--icb {icb} is not an ICB code in {files['mapping'].name}.")

    # QOF rows for practices missing from the mapping are rejected (they belong to no PCN or ICB)
    qof = ad["qof"].data
    mapped = qof["practice_code"].isin(set(ad["mapping"].data["practice_code"]))
    unmapped = qof.loc[~mapped]
    qof_ad = ad["qof"]
    if len(unmapped):
        extra = pd.DataFrame({
            "source": qof_ad.source, "row_number": unmapped["row_number"].to_numpy(),
            "reason": f"PRACTICE_CODE is not in the practice mapping {files['mapping'].name}",
            "raw_values": A._csv.raw_values(unmapped.astype(str), ["practice_code", "condition", "register", "list_type",
                                                                   "list_size"]).to_numpy()})
        qof_ad.rejects = pd.concat([qof_ad.rejects, extra], ignore_index=True).sort_values("row_number", kind="stable")
        log.warning("%d practices in %s are not in %s: rejected", unmapped["practice_code"].nunique(),
                    files["qof"].name, files["mapping"].name)

    tables = build_tables(qof.loc[mapped], ad["mapping"].data, ad["imd"].data,
                          ad["registrations"].data if "registrations" in ad else None,
                          ad["ethnicity"].data if "ethnicity" in ad else None, period, files["mapping"].name,
                          conditions)

    tables["load_summary"] = pd.DataFrame([a.summary() for a in ad.values()]).astype(
        {"rows_read": "int64", "rows_loaded": "int64", "rows_rejected": "int64"})
    rej = pd.concat([a.rejects for a in ad.values()], ignore_index=True)
    tables["rejects"] = rej.astype({"row_number": "int64"}) if len(rej) else pd.DataFrame(
        {"source": pd.Series(dtype=str), "row_number": pd.Series(dtype="int64"), "reason": pd.Series(dtype=str),
         "raw_values": pd.Series(dtype=str)})
    tables["public_run"] = pd.DataFrame([{
        "qof_year": year, "period": period, "qof_file": files["qof"].name, "mapping_file": files["mapping"].name,
        "practice_imd": "Fingertips 93553 IMD 2019 score (IMD_raw.csv, Year 2019)",
        "decile_weighting": "national deciles of practices weighted by list size (largest list, TOTAL)",
        "expected": "prevalence.expected = national rate in the practice's IMD decile x list size",
        "model": "Poisson GLM, log link, offset log(list size): IMD decile + age-band shares + share female + "
                 "share not White (+ square); IRLS",
        "registrations_file": files["registrations"].name if files["registrations"] else None,
        "ethnicity_file": files["ethnicity"].name if files["ethnicity"] else None,
        "icb": icb,
    }])
    parquet = ("prevalence", "load_summary", "rejects", "funnel", "inequality", "public_expected", "public_gradient",
               "public_model")
    _write_warehouse(tables, processed, parquet)
    summary = {"period": period.isoformat(), "mapping": files["mapping"].name,
               "rows": {k: int(len(v)) for k, v in tables.items()}}
    log.info("public: %s", summary["rows"])
    if icb is not None:
        for cond in PACK_CONDITIONS:
            if conditions is None or cond in {c.upper() for c in conditions}:
                summary.setdefault("packs", []).append(str(write_public_pack(processed, reports, icb, year, cond)))
    return summary


PACK_CONDITIONS = {"DEP": "depression (aged 18 and over)"}


def write_public_pack(processed: Path, reports: Path, icb: str, year: str, condition: str = "DEP") -> Path:
    """The publishable packs for one ICB from the public-data warehouse (see pipeline.report.public_packs):
    reports/<ICB>/ics_<ICB>_<year>.pdf + .csv (+ _gradient.csv) and reports/<ICB>/pcn/<PCN>.pdf + .csv, every
    number under the default disclosure policy, the folder swapped in atomically. Returns the ICS PDF path."""
    from .report.public_packs import write_public_packs

    out = write_public_packs(processed, reports, icb, year, condition)
    log.info("public packs for %s: 1 ICS pack and %d PCN packs in %.1f s", icb, len(out["pcn"]), out["seconds"])
    return out["ics"]
