"""Disclosure control for everything published under reports/ (contract in DESIGN.md).

One policy, one module, on by default:

* a count (``observed``, ``population`` or the derived ``missing``) of 1..threshold is *redacted*: shown as
  :data:`MARKER` (``[c]``, the ONS convention for "confidential"), never as 0; in CSVs the cell holds the
  marker, which does not parse as a number;
* every other count is rounded: ``method="round"`` to the nearest multiple of ``rounding`` (half up, 8 -> 10,
  12 -> 10, 13 -> 15); ``method="midpoint6"`` is OpenSAFELY's midpoint-6 rounding,
  ``ceil(x / 6) * 6 - 3`` for x > 0 (1-6 -> 3, 7-12 -> 9, 13-18 -> 15), 0 stays 0;
* rates are recomputed from the published (rounded) numerator and denominator, so that rate x population
  cannot undo the rounding; they are redacted when either count is; their Wilson interval likewise;
* standardised ratios and their intervals stay as calculated (the policy allows them) but are redacted when
  the numerator is; ``missing`` (expected - observed) is redacted with its numerator too, since
  expected - missing would give the numerator back; ``expected`` is rounded like a count;
* secondary suppression: within each set of sibling cells that add up to a published total (the ethnic
  groups of an area, its sexes, quintiles, age bands; the practices of a PCN), a single redacted cell could be
  recovered by subtraction, so while exactly one cell of a set (the total included) is redacted, the
  smallest non-zero published sibling is redacted too (or the total, when no sibling is left).

Everything is vectorised over pandas/numpy; :func:`control` returns numbers (NaN where redacted, plus
``<column>_redacted`` flags) for charts and wording, :func:`for_print` turns that into cells ready to print.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MARKER = "[c]"
COUNT_COLUMNS = ("observed", "population", "missing")
RATE_COLUMNS = ("rate", "rate_lower", "rate_upper")
RATIO_COLUMNS = ("ratio", "ratio_lower", "ratio_upper")
GROUP_TYPES = ("ethnicity", "imd_quintile", "sex", "age_band")
PREVALENCE_KEY = ("period", "condition", "area_type", "area_code")


@dataclass(frozen=True)
class Policy:
    threshold: int = 7
    rounding: int = 5
    method: str = "round"  # or "midpoint6"

    @classmethod
    def from_config(cls, disclosure, community: bool = False) -> Policy:
        """The policy from `Config.disclosure`; `community=True` uses its stricter `community_threshold`."""
        thr = disclosure.community_threshold if community else disclosure.threshold
        return cls(threshold=int(max(thr, disclosure.threshold)), rounding=int(disclosure.rounding),
                   method=str(disclosure.method))

    def describe(self) -> str:
        """The policy in plain words, for the packs' disclosure note."""
        if self.method == "midpoint6":
            rnd = ("every other count is rounded with OpenSAFELY's midpoint-6 rounding: it is replaced by the "
                   "midpoint of the band of six it falls in")
        else:
            rnd = f"every other count is rounded to the nearest {self.rounding}"
        return (f"Counts of patients from 1 to {self.threshold} (recorded, registered, or the number of "
                f"patients 'missing' compared with expected) are not shown: they appear as {MARKER}. "
                f"A 0 is a true zero. {rnd[0].upper() + rnd[1:]}. Rates are calculated from the rounded counts; "
                f"rates and ratios of hidden counts are hidden too. Where a hidden number could be worked "
                f"out by subtraction from a total, the next smallest number is hidden as well.")


# ---------------------------------------------------------------------------------------------- primitives

def _as_float(x) -> np.ndarray:
    return np.asarray(pd.to_numeric(pd.Series(np.asarray(x).ravel()), errors="coerce"), dtype=float).reshape(np.shape(x))


def is_small(x, policy: Policy) -> np.ndarray:
    """True where a count (or derived count such as `missing`, any sign) rounds to 1..threshold, or where its
    published (rounded) value would itself be 1..threshold (e.g. 11 shown as 9 under midpoint-6 with a
    threshold of 10): nothing published ever reads as a small number."""
    a = np.abs(_as_float(x))
    whole = np.floor(a + 0.5)
    shown = np.abs(round_count(a, policy))
    return ((whole >= 1) & (whole <= policy.threshold)) | ((whole >= 1) & (shown <= policy.threshold))


def round_count(x, policy: Policy) -> np.ndarray:
    """Round counts by the policy's method, keeping the sign (for `missing`); NaN stays NaN."""
    v = _as_float(x)
    sign = np.sign(v)
    a = np.abs(v)
    if policy.method == "midpoint6":
        whole = np.floor(a + 0.5)
        out = np.ceil(whole / 6.0) * 6.0 - 3.0 * (whole != 0)
    else:
        r = float(policy.rounding)
        out = np.floor(a / r + 0.5) * r if r > 0 else np.floor(a + 0.5)
    res = sign * out
    return res + 0.0  # no -0.0


def redact_round(x, policy: Policy) -> np.ndarray:
    """Primary control of one array of counts: NaN where redacted, rounded elsewhere."""
    out = round_count(x, policy)
    out[is_small(x, policy)] = np.nan
    return out


# ---------------------------------------------------------------------------------------------- sibling sets

@dataclass(frozen=True)
class Siblings:
    """One partition into sibling sets: rows with `member_id[i] >= 0` belong to set `member_id[i]`; rows with
    `total_id[i] >= 0` are the published total of set `total_id[i]` (ids are 0..n_sets-1)."""

    member_id: np.ndarray
    total_id: np.ndarray
    n_sets: int


def siblings_from_keys(df: pd.DataFrame, member_mask, member_keys: Sequence[str], total_mask,
                       total_keys: Sequence[str] | None = None) -> Siblings:
    """Build a partition: members grouped by `member_keys`; totals matched on `total_keys` (same order)."""
    total_keys = list(total_keys or member_keys)
    member_mask = np.asarray(member_mask, dtype=bool)
    total_mask = np.asarray(total_mask, dtype=bool)
    mk = df.loc[member_mask, list(member_keys)].astype(str)
    tk = df.loc[total_mask, total_keys].astype(str)
    tk.columns = list(member_keys)
    both = pd.concat([mk, tk], ignore_index=True)
    if len(both) == 0:
        n = len(df)
        return Siblings(np.full(n, -1), np.full(n, -1), 0)
    ids, uniq = pd.MultiIndex.from_frame(both).factorize()
    member_id = np.full(len(df), -1, dtype=np.int64)
    total_id = np.full(len(df), -1, dtype=np.int64)
    member_id[member_mask] = ids[: len(mk)]
    total_id[total_mask] = ids[len(mk):]
    return Siblings(member_id, total_id, len(uniq))


def prevalence_siblings(df: pd.DataFrame, hierarchy: Iterable[tuple[str, str]] = (),
                        parent_column: str = "parent_code") -> list[Siblings]:
    """The sibling sets of a prevalence-shaped frame.

    * the groups of one breakdown (`group_type`) within period × condition × area add up to the `all` row;
    * for each (child_type, parent_type) in `hierarchy`, the child areas (their `parent_column` naming the
      parent's `area_code`) add up, group by group, to the parent area's row.
    """
    parts = []
    gt = df["group_type"].to_numpy()
    is_all = gt == "all"
    key = [c for c in PREVALENCE_KEY if c in df.columns]
    for g in GROUP_TYPES:
        m = gt == g
        if m.any():
            parts.append(siblings_from_keys(df, m, key, is_all))
    at = df["area_type"].to_numpy()
    for child, parent in hierarchy:
        m = (at == child) & df[parent_column].notna().to_numpy()
        t = at == parent
        if m.any():
            k = ["period", "condition", parent_column, "group_type", "group_value"]
            k = [c for c in k if c in df.columns]
            tk = [("area_code" if c == parent_column else c) for c in k]
            parts.append(siblings_from_keys(df, m, k, t, tk))
    return parts


def _secondary(values: np.ndarray, red: np.ndarray, parts: Sequence[Siblings]) -> bool:
    """One pass of secondary suppression over every partition; updates `red` in place; True if it changed."""
    changed = False
    absval = np.abs(values)
    order_idx = np.arange(len(values))
    for p in parts:
        if p.n_sets == 0:
            continue
        mem = p.member_id >= 0
        tot = p.total_id >= 0
        cnt = np.bincount(p.member_id[mem & red], minlength=p.n_sets) + \
            np.bincount(p.total_id[tot & red], minlength=p.n_sets)
        single = cnt == 1
        if not single.any():
            continue
        # a zero member is hidden only when its set has nothing else to hide (e.g. a hidden total of 0 whose
        # members are all 0 would otherwise be recovered by addition)
        cand = mem & ~red & ~np.isnan(values)
        cand &= single[np.where(mem, p.member_id, 0)]
        ci = order_idx[cand]
        has_cand = np.zeros(p.n_sets, dtype=bool)
        if ci.size:
            sid = p.member_id[ci]
            o = np.lexsort((ci, absval[ci], absval[ci] == 0, sid))  # by set, non-zero first, smallest, first row
            ci, sid = ci[o], sid[o]
            first = np.r_[True, sid[1:] != sid[:-1]]
            red[ci[first]] = True
            has_cand[sid[first]] = True
            changed = True
        # no sibling to hide: hide the total instead (only useful when the lone redaction is a member)
        need_total = single & ~has_cand
        if need_total.any():
            hit = tot & ~red & need_total[np.where(tot, p.total_id, 0)] & ~np.isnan(values)
            if hit.any():
                red[hit] = True
                changed = True
    return changed


# ---------------------------------------------------------------------------------------------- control

def control(df: pd.DataFrame, policy: Policy, siblings: Sequence[Siblings] = (),
            count_columns: Sequence[str] = COUNT_COLUMNS, recompute_rates: bool = True,
            ratio_digits: int = 2, start_redacted: dict | None = None) -> pd.DataFrame:
    """Apply the policy to a prevalence-shaped frame (any subset of its columns).

    Returns a new frame: count columns rounded (float, NaN where redacted) with boolean `<col>_redacted`
    flags; `expected` rounded; rates recomputed from the rounded counts (Wilson 95%) and NaN where a count
    is redacted; ratios and intervals rounded to `ratio_digits` and NaN where `observed` is redacted.
    `start_redacted` ({column: boolean array}) marks cells hidden before anything else, e.g. the cells another,
    less strict publication of the same rows hides, so that a stricter version never reveals what it hides.
    """
    out = df.copy()
    n = len(out)
    cols = [c for c in count_columns if c in out.columns]
    raw = {c: _as_float(out[c].to_numpy()) for c in cols}
    red = {c: is_small(raw[c], policy) for c in cols}
    for c, flags in (start_redacted or {}).items():
        if c in red:
            red[c] = red[c] | np.asarray(flags, dtype=bool)
    if "missing" in red and "observed" in red:
        red["missing"] |= red["observed"]
    for _ in range(50):
        changed = False
        for c in cols:
            changed |= _secondary(raw[c], red[c], siblings)
        if "missing" in red and "observed" in red:
            before = red["missing"].copy()
            red["missing"] |= red["observed"]
            changed |= bool((red["missing"] != before).any())
        if not changed:
            break
    for c in cols:
        v = round_count(raw[c], policy)
        v[red[c]] = np.nan
        out[c] = v
        out[f"{c}_redacted"] = red[c]
    if "expected" in out.columns:
        out["expected"] = round_count(out["expected"].to_numpy(), policy)
    obs_red = red.get("observed", np.zeros(n, dtype=bool))
    pop_red = red.get("population", np.zeros(n, dtype=bool))
    rate_cols = [c for c in RATE_COLUMNS if c in out.columns]
    if rate_cols:
        if recompute_rates and "observed" in out.columns and "population" in out.columns:
            from pipeline.stats import wilson_ci

            o, p = out["observed"].to_numpy(dtype=float), out["population"].to_numpy(dtype=float)
            ok = ~(obs_red | pop_red) & (p > 0)
            rate = np.full(n, np.nan)
            lo = np.full(n, np.nan)
            hi = np.full(n, np.nan)
            if ok.any():
                oo, pp = np.minimum(o[ok], p[ok]), p[ok]
                rate[ok] = oo / pp
                l_, u_ = wilson_ci(oo, pp, 0.95)
                lo[ok], hi[ok] = np.asarray(l_, dtype=float), np.asarray(u_, dtype=float)
            for c, v in zip(RATE_COLUMNS, (rate, lo, hi)):
                if c in out.columns:
                    out[c] = v
        else:
            for c in rate_cols:
                v = out[c].to_numpy(dtype=float).copy()
                v[obs_red | pop_red] = np.nan
                out[c] = v
    for c in RATIO_COLUMNS:
        if c in out.columns:
            v = np.round(out[c].to_numpy(dtype=float), ratio_digits)
            v[obs_red] = np.nan
            out[c] = v
    return out


def for_print(controlled: pd.DataFrame, marker: str = MARKER, drop_flags: bool = True) -> pd.DataFrame:
    """Cells ready to print: redacted counts -> `marker`; rates/ratios of redacted numerators -> `marker`;
    whole-number counts as int. Other missing values (e.g. no ratio where nothing was expected) stay empty."""
    out = controlled.copy()
    flags = [c for c in out.columns if c.endswith("_redacted")]
    obs_red = out["observed_redacted"].to_numpy() if "observed_redacted" in out else np.zeros(len(out), bool)
    pop_red = out["population_redacted"].to_numpy() if "population_redacted" in out else np.zeros(len(out), bool)
    for f in flags:
        c = f[: -len("_redacted")]
        if c in out.columns:
            out[c] = _cells(out[c], out[f].to_numpy(), marker)
    if "expected" in out.columns:
        out["expected"] = _cells(out["expected"], np.zeros(len(out), bool), marker)
    for c in RATE_COLUMNS:
        if c in out.columns:
            out[c] = _cells(out[c], obs_red | pop_red, marker, whole=False)
    for c in RATIO_COLUMNS:
        if c in out.columns:
            out[c] = _cells(out[c], obs_red, marker, whole=False)
    if drop_flags:
        out = out.drop(columns=flags)
    return out


def _cells(col: pd.Series, red: np.ndarray, marker: str, whole: bool = True) -> np.ndarray:
    v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(v)
    cells = np.full(len(v), None, dtype=object)
    if whole:
        cells[ok] = [int(x) for x in np.floor(v[ok] + 0.5)]
    else:
        cells[ok] = v[ok].tolist()
    cells[np.asarray(red, dtype=bool)] = marker
    return cells


def disclose(df: pd.DataFrame, policy: Policy, siblings: Sequence[Siblings] = (), **kw) -> pd.DataFrame:
    """`for_print(control(...))`: a new frame with string-or-number columns, ready to print or write."""
    return for_print(control(df, policy, siblings, **kw))


def fmt_count(x, marker: str = MARKER) -> str:
    """One controlled count for text: '1,234', '0' or the marker (NaN = redacted)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return marker
    return f"{int(round(float(x))):,}"
