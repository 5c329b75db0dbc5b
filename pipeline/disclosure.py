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
* ``expected`` is rounded like a count; standardised ratios, their intervals and ``missing`` (expected -
  observed) are recomputed from the published recorded and expected counts (kept as calculated only for
  already-public counts such as QOF registers) and redacted with the numerator, since expected - missing would
  give it back;
* secondary suppression (:func:`protect`, below): every published number of a run is one set of cells tied by
  the sums a reader of every file knows; more cells are hidden until no hidden cell can be worked out to within a
  few values from the others.

:func:`publish` returns numbers (NaN where hidden, plus ``<column>_redacted`` flags) for charts and wording,
:func:`for_print` turns that into cells ready to print.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MARKER = "[c]"
COUNT_COLUMNS = ("observed", "population", "missing")
RATE_COLUMNS = ("rate", "rate_lower", "rate_upper")
RATIO_COLUMNS = ("ratio", "ratio_lower", "ratio_upper")
GROUP_TYPES = ("ethnicity", "imd_quintile", "sex", "age_band")


@dataclass(frozen=True)
class Policy:
    threshold: int = 7
    rounding: int = 5
    method: str = "round"  # or "midpoint6"

    @classmethod
    def from_config(cls, disclosure, community: bool = False) -> Policy:
        """The policy from `Config.disclosure`. One set of rules for every publication: a `community_threshold`
        above `threshold` raises the threshold of the packs too, so that no publication prints a cell that a
        stricter one hides (`community` is kept for callers and changes nothing)."""
        thr = max(int(disclosure.threshold), int(getattr(disclosure, "community_threshold", None) or 0))
        return cls(threshold=thr, rounding=int(disclosure.rounding), method=str(disclosure.method))

    @property
    def shows_everything(self) -> bool:
        """True for PUBLISHED_COUNTS: counts that are public already, shown as published."""
        return self.threshold == 0 and self.rounding == 1

    def describe(self, zeros_hidden: bool = True) -> str:
        """The policy in plain words, for the packs' disclosure note (`zeros_hidden=False` for publications that
        show true zeros, such as those of already-public registers)."""
        if self.shows_everything:
            return ("The counts in this pack are NHS England's published QOF registers and list sizes, which are "
                    "public already: they are shown as published, unrounded, and a 0 is a true zero. Rates, ratios, "
                    "expected numbers and intervals are worked out from them.")
        if self.method == "midpoint6":
            rnd = ("every other count is rounded with OpenSAFELY's midpoint-6 rounding: it is replaced by the "
                   "midpoint of the band of six it falls in")
        else:
            rnd = f"every other count is rounded to the nearest {self.rounding}"
        low = 0 if zeros_hidden else 1
        hidden = (f"Counts of patients from {low} to {self.threshold} are not shown: they appear as {MARKER}, which "
                  f"means 'between {low} and {self.threshold}', or a larger number hidden to protect a small one.")
        if not zeros_hidden:
            hidden += " A 0 is a true zero."
        return (f"{hidden} {rnd[0].upper() + rnd[1:]}. Rates, ratios, expected numbers, intervals, charts and the "
                f"sentences in this pack are all worked out from the rounded counts, never from the exact ones, so "
                f"they tell nobody more than the rounded counts do. Where a hidden number could be worked out from "
                f"totals, from another table or from another pack, more numbers are hidden too. The same rules apply "
                f"to every pack and summary published from this data, so nothing hidden in one is shown in another.")


PUBLISHED_COUNTS = Policy(threshold=0, rounding=1)  # already-public counts (QOF): nothing hidden, nothing rounded


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
    return sign * out + 0.0  # no -0.0


def redact_round(x, policy: Policy) -> np.ndarray:
    """Primary control of one array of counts: NaN where redacted, rounded elsewhere."""
    out = round_count(x, policy)
    out[is_small(x, policy)] = np.nan
    return out


def publish(df: pd.DataFrame, policy: Policy, redacted: dict, recompute_rates: bool = True,
            ratio_digits: int = 2, from_published: bool = True) -> pd.DataFrame:
    """The published version of a prevalence-shaped frame, given which counts are hidden (`redacted`:
    {column: boolean array}, e.g. from :func:`protect`).

    Counts are rounded (NaN where hidden, with `<column>_redacted` flags). Every derived value is computed from
    the published counts only, so that it tells a reader nothing the counts do not: `expected` is rounded like
    a count and hidden with the recorded or registered count; `missing` = published expected - published
    recorded, rounded like a count (which changes it only under midpoint6; hidden with them, or when it is itself
    1..threshold); the rate and its Wilson interval come from
    the published recorded and registered counts; the ratio is published recorded / published expected with
    its exact (below 10) or Byar interval of the published recorded count."""
    from pipeline.stats import isr, wilson_ci

    out = df.copy()
    n = len(out)

    def hide(column: str, values: np.ndarray, hidden: np.ndarray) -> None:
        values[hidden] = np.nan
        out[column] = values
        out[f"{column}_redacted"] = hidden

    for c, flags in redacted.items():
        if c in out.columns and c != "missing":
            hide(c, round_count(out[c].to_numpy(), policy), np.asarray(flags, dtype=bool))
    obs_red, pop_red = (np.asarray(redacted.get(c, np.zeros(n, dtype=bool)), dtype=bool)
                        for c in ("observed", "population"))
    if from_published and "expected" in out.columns:
        exp_red = obs_red | pop_red
        hide("expected", round_count(out["expected"].to_numpy(), policy), exp_red)
        if "missing" in out.columns and "observed" in out.columns:
            # published expected - published recorded is already on the grid of "round" (both are multiples of
            # `rounding`), but with midpoint6 it is a multiple of 6, never a published count (3 mod 6): it is
            # rounded like every other count
            miss = round_count(out["expected"].to_numpy() - out["observed"].to_numpy(dtype=float), policy)
            hide("missing", miss + 0.0, exp_red | np.isnan(miss) | is_small(miss, policy))
    else:  # already-public counts (or no `expected`): ratios, `missing` as calculated, hidden with recorded
        if "expected" in out.columns:
            out["expected"] = round_count(out["expected"].to_numpy(), policy)
        if "missing" in out.columns:
            missing = out["missing"].to_numpy()
            hide("missing", round_count(missing, policy), obs_red | is_small(missing, policy))
    rate_cols = [c for c in RATE_COLUMNS if c in out.columns]
    if rate_cols and recompute_rates and "observed" in out.columns and "population" in out.columns:
        o, p = out["observed"].to_numpy(dtype=float), out["population"].to_numpy(dtype=float)
        ok = ~(obs_red | pop_red) & (p > 0)
        oo, pp = np.where(ok, np.minimum(o, p), np.nan), np.where(ok, p, np.nan)
        for c, v in zip(RATE_COLUMNS, (oo / pp, *wilson_ci(oo, pp, 0.95))):
            if c in out.columns:
                out[c] = np.asarray(v, dtype=float).reshape(n)
    else:
        for c in rate_cols:
            v = out[c].to_numpy(dtype=float).copy()
            v[obs_red | pop_red] = np.nan
            out[c] = v
    ratio_cols = [c for c in RATIO_COLUMNS if c in out.columns]
    if ratio_cols and from_published and "observed" in out.columns and "expected" in out.columns:
        ratios = isr(out["observed"].to_numpy(dtype=float), out["expected"].to_numpy(dtype=float))
        for c, v in zip(RATIO_COLUMNS, ratios):
            if c in out.columns:
                out[c] = np.asarray(v, dtype=float).reshape(n)
    for c in ratio_cols:
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
    if "expected" in out.columns and "expected_redacted" not in out.columns:
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


def fmt_count(x, marker: str = MARKER) -> str:
    """One controlled count for text: '1,234', '0' or the marker (NaN = redacted)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return marker
    return f"{int(round(float(x))):,}"


# ---------------------------------------------------------------------------------------------- publication model
#
# Everything published for one run is one set of *cells* (counts of people: recorded, registered, data-quality
# counts, Core20 parts, input rows) tied together by *additive relations* (groups add up to the area's total,
# practices to their PCN, PCNs to their ICB, neighbourhoods plus the people without one to the whole dataset, two
# data-quality counts to the 'Unknown' deprivation group, ...) and *inequalities* (recorded <= registered). A
# reader holding every file at once knows all of these. Cells that are the same quantity in two tables (the
# registered population of one group for two conditions with the same minimum age, or the data-quality
# 'registered' count and a register's all-ages population) share one cell, so they are hidden or shown alike.
# Hidden cells are protected by secondary suppression and then by an audit: the publisher runs the reader's own
# interval propagation over every relation and hides more until no hidden cell is pinned to within +-2 and no
# rounded count to one value.


class CellSpace:
    """Collects cells and relations from several tables; `finalize` merges cells with equal keys."""

    KEY = ("kind", "period", "area_type", "area_code", "group_type", "group_value", "detail")

    def __init__(self) -> None:
        self._keys: list[pd.DataFrame] = []
        self._values: list[np.ndarray] = []
        self._publishable: list[np.ndarray] = []
        self._small_rule: list[np.ndarray] = []
        self._protected: list[np.ndarray] = []
        self._n = 0
        self._set_frames: list[tuple[str, pd.DataFrame]] = []   # (namespace, frame of handle + set key + coef)
        self._leq: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: pd.DataFrame, values, publishable=True, zero_is_small: bool = True,
            protected: bool = True) -> np.ndarray:
        """Register cells (one per row of `keys`, whose columns are a subset of KEY); returns their handles.
        `publishable=False`: a cell no table prints; `protected=False`: a cell that may be worked out (a sum of
        published cells, such as the whole dataset), as opposed to a count of people that must stay hidden."""
        n = len(keys)
        frame = pd.DataFrame({k: (keys[k].astype(str).to_numpy() if k in keys.columns else np.full(n, ""))
                              for k in self.KEY})
        self._keys.append(frame)
        self._values.append(_as_float(np.asarray(values)))
        self._publishable.append(np.broadcast_to(np.asarray(publishable, dtype=bool), (n,)).copy())
        self._small_rule.append(np.full(n, bool(zero_is_small)))
        self._protected.append(np.full(n, bool(protected)))
        handles = np.arange(self._n, self._n + n)
        self._n += n
        return handles

    def add_sets(self, namespace: str, handles, set_keys: pd.DataFrame, is_total) -> None:
        """Additive sets: the cells `handles` with equal `set_keys` rows form one set; in each set the cells with
        `is_total` equal the sum of the others."""
        handles = np.asarray(handles)
        if len(handles) == 0:
            return
        frame = set_keys.reset_index(drop=True).astype(str).copy()
        frame.columns = [f"k{i}" for i in range(frame.shape[1])]
        frame["_handle"] = handles
        frame["_coef"] = np.where(np.asarray(is_total, dtype=bool), -1, 1)
        self._set_frames.append((namespace, frame))

    def add_leq(self, smaller, larger) -> None:
        """Inequalities: cell `smaller[i]` <= cell `larger[i]`."""
        self._leq.append((np.asarray(smaller), np.asarray(larger)))

    def finalize(self) -> Cells:
        keys = pd.concat(self._keys, ignore_index=True)
        canon, uniq = pd.MultiIndex.from_frame(keys).factorize()
        n_cells = len(uniq)
        values = np.concatenate(self._values)
        cell_values = np.full(n_cells, np.nan)
        cell_values[canon] = values

        def any_row(flags: list[np.ndarray]) -> np.ndarray:  # a merged cell has a flag if any of its rows has
            merged = np.zeros(n_cells, dtype=bool)
            np.logical_or.at(merged, canon, np.concatenate(flags))
            return merged

        publishable, zero_small, protected = (any_row(flags) for flags in
                                              (self._publishable, self._small_rule, self._protected))
        set_ids, cells, coefs, offset = [], [], [], 0
        for _namespace, frame in self._set_frames:
            key_cols = [c for c in frame.columns if c.startswith("k")]
            sid, suniq = pd.MultiIndex.from_frame(frame[key_cols]).factorize() if len(key_cols) > 1 else \
                pd.factorize(frame[key_cols[0]])
            set_ids.append(sid + offset)
            offset += len(suniq)
            cells.append(canon[frame["_handle"].to_numpy()])
            coefs.append(frame["_coef"].to_numpy())
        if set_ids:
            entries = pd.DataFrame(dict(set_id=np.concatenate(set_ids), cell=np.concatenate(cells),
                                        coef=np.concatenate(coefs))).drop_duplicates(["set_id", "cell"])
            # a set must have a total and at least one member to say anything
            has_total = entries.groupby("set_id")["coef"].transform("min") < 0
            has_member = entries.groupby("set_id")["coef"].transform("max") > 0
            entries = entries[has_total & has_member]
            set_id = pd.factorize(entries["set_id"])[0]
            cell_arr, coef_arr = entries["cell"].to_numpy(), entries["coef"].to_numpy()
        else:
            set_id = cell_arr = coef_arr = np.zeros(0, dtype=np.int64)
        leq_small = canon[np.concatenate([s for s, _ in self._leq])] if self._leq else np.zeros(0, dtype=np.int64)
        leq_large = canon[np.concatenate([b for _, b in self._leq])] if self._leq else np.zeros(0, dtype=np.int64)
        return Cells(values=cell_values, publishable=publishable, zero_is_small=zero_small, protected=protected,
                     handle_to_cell=canon, set_id=np.asarray(set_id, dtype=np.int64), entry_cell=cell_arr,
                     entry_coef=coef_arr, leq_small=leq_small, leq_large=leq_large,
                     keys=uniq.to_frame(index=False))


@dataclass
class Cells:
    values: np.ndarray          # true counts per cell
    publishable: np.ndarray     # False: a cell no table prints (e.g. people with no neighbourhood, per condition)
    zero_is_small: np.ndarray   # True: a 0 is hidden like 1..threshold ("[c]" means 0 to threshold)
    protected: np.ndarray       # a count of people (hidden ones must not be worked out); False: a plain sum
    handle_to_cell: np.ndarray
    set_id: np.ndarray          # relation entries: set, cell, +1 member / -1 total
    entry_cell: np.ndarray
    entry_coef: np.ndarray
    leq_small: np.ndarray
    leq_large: np.ndarray
    keys: pd.DataFrame

    @property
    def n_sets(self) -> int:
        return int(self.set_id.max()) + 1 if len(self.set_id) else 0


def rounding_band(published, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """The whole numbers a published (rounded) count can stand for, as [low, high]."""
    x = _as_float(published)
    if policy.method == "midpoint6":
        low, high = x - 2.0, x + 3.0
    else:
        half = policy.rounding / 2.0
        low, high = np.ceil(x - half), np.ceil(x + half) - 1.0
    low = np.maximum(low, policy.threshold + 1.0)
    return np.where(x == 0, 0.0, low), np.where(x == 0, 0.0, high)


def propagate(low: np.ndarray, high: np.ndarray, cells: Cells, max_rounds: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Interval propagation over every additive set and inequality (what a reader of everything can do with
    sums alone): tightens [low, high] per cell until nothing changes. Integer cells; `high` may be inf."""
    low, high = low.astype(float).copy(), high.astype(float).copy()
    sid, cell, coef = cells.set_id, cells.entry_cell, cells.entry_coef.astype(float)
    n_sets = cells.n_sets
    for _ in range(max_rounds):
        before_low, before_high = low.copy(), high.copy()
        if n_sets:
            # contribution of each entry to sum(coef * x) = 0, at its smallest and largest
            c_low = np.where(coef > 0, low[cell], -high[cell])
            c_high = np.where(coef > 0, high[cell], -low[cell])
            low_inf = ~np.isfinite(c_low)
            high_inf = ~np.isfinite(c_high)
            s_low = np.bincount(sid, np.where(low_inf, 0.0, c_low), n_sets)
            s_high = np.bincount(sid, np.where(high_inf, 0.0, c_high), n_sets)
            n_low_inf = np.bincount(sid, low_inf, n_sets)
            n_high_inf = np.bincount(sid, high_inf, n_sets)
            rest_low = np.where(n_low_inf[sid] - low_inf > 0, -np.inf, s_low[sid] - np.where(low_inf, 0.0, c_low))
            rest_high = np.where(n_high_inf[sid] - high_inf > 0, np.inf, s_high[sid] - np.where(high_inf, 0.0, c_high))
            # coef * x = -(rest): member x in [-rest_high, -rest_low]; total x in [rest_low, rest_high]
            new_low = np.where(coef > 0, -rest_high, rest_low)
            new_high = np.where(coef > 0, -rest_low, rest_high)
            np.maximum.at(low, cell, new_low)
            np.minimum.at(high, cell, new_high)
        if len(cells.leq_small):
            np.minimum.at(high, cells.leq_small, high[cells.leq_large])
            np.maximum.at(low, cells.leq_large, low[cells.leq_small])
        low = np.ceil(low - 1e-9)
        high = np.floor(high + 1e-9)
        if np.array_equal(low, before_low) and np.array_equal(high, before_high):
            break
    return low, high


@dataclass
class Protection:
    hidden: np.ndarray          # per cell
    published: np.ndarray       # per cell: the rounded value (NaN where hidden or not publishable)
    primary: np.ndarray
    reason: np.ndarray          # per cell: 0 shown, 1 small, 2 lone unknown in a set, 3 audit, 4 audit (itself),
    #                             5 safety net (a pin the rounds left)


def reader_bounds(cells: Cells, hidden: np.ndarray, published: np.ndarray, policy: Policy,
                  primary: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What a reader of everything can say about each cell from the published counts and the sums.
    The publisher's own audit passes `primary` (cells hidden for being small, known to be <= threshold)."""
    low, high = rounding_band(published, policy)
    shown = cells.publishable & ~hidden
    low = np.where(shown, low, 0.0)
    high = np.where(shown, high, np.inf)
    if primary is not None:
        high = np.where(primary & cells.publishable, policy.threshold, high)
    return propagate(low, high, cells)


def protect(cells: Cells, policy: Policy, min_hidden_width: int = 5, max_rounds: int = 40) -> Protection:
    """Primary suppression (counts of 1..threshold, and 0 where zeros are small), then secondary suppression
    until no set has exactly one unknown cell and the reader's interval propagation over every relation pins
    no hidden cell to fewer than `min_hidden_width` values and no rounded count to one value."""
    values = cells.values
    small = is_small(values, policy) | (cells.zero_is_small & (np.floor(np.abs(values) + 0.5) == 0))
    primary = small & cells.publishable
    hidden = primary.copy()
    reason = np.where(primary, 1, 0)
    rounded = round_count(values, policy)
    sid, cell = cells.set_id, cells.entry_cell
    n_sets = cells.n_sets
    order = np.lexsort((np.arange(len(values)), np.abs(values)))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    rounds = 0

    def hide(cells_to_hide: np.ndarray, why: int) -> None:  # the first reason a cell was hidden is kept
        hidden[cells_to_hide] = True
        reason[cells_to_hide] = np.where(reason[cells_to_hide] == 0, why, reason[cells_to_hide])

    def needs_cover() -> np.ndarray:  # hidden cells that must not be worked out
        return (hidden & cells.publishable) | (~cells.publishable & cells.protected & small)

    def pinned() -> tuple[np.ndarray, np.ndarray]:  # the reader's propagation over everything published
        published = np.where(hidden | ~cells.publishable, np.nan, rounded)
        low, high = reader_bounds(cells, hidden, published, policy, primary)
        narrow_hidden = needs_cover() & (high - low < min_hidden_width)
        exact_rounded = ~hidden & cells.publishable & (high == low) & (rounded != 0)
        return narrow_hidden, exact_rounded
    while rounds < max_rounds:
        rounds += 1
        changed = False
        # 1. no set with exactly one unknown (hidden or never printed) cell
        for _ in range(100):
            unknown = hidden | ~cells.publishable
            if not n_sets:
                break
            n_unknown = np.bincount(sid, unknown[cell], n_sets)
            n_protected = np.bincount(sid, needs_cover()[cell], n_sets)
            lone = (n_unknown == 1) & (n_protected == 1)
            if not lone.any():
                break
            cand = lone[sid] & ~unknown[cell]
            if not cand.any():
                break
            pick = pd.DataFrame(dict(s=sid[cand], c=cell[cand], r=rank[cell[cand]]))
            hide(pick.sort_values(["s", "r"]).drop_duplicates("s")["c"].to_numpy(), 2)
            changed = True
        # 2. audit: the reader's propagation over everything published
        narrow_hidden, exact_rounded = pinned()
        bad = narrow_hidden | exact_rounded
        if not bad.any():
            break
        # hide the smallest still-published cell sharing a set or an inequality with each offending cell (a hidden
        # denominator is pinned from below by its published numerator, which shares no set with it)
        bad_entries = bad[cell]
        sets_of_bad = pd.DataFrame(dict(bad_cell=cell[bad_entries], s=sid[bad_entries]))
        members = pd.DataFrame(dict(s=sid, c=cell))
        members = members[~(hidden | ~cells.publishable)[cell]]
        cand = sets_of_bad.merge(members, on="s")[["bad_cell", "c"]]
        partners = pd.DataFrame(dict(bad_cell=np.r_[cells.leq_small, cells.leq_large],
                                     c=np.r_[cells.leq_large, cells.leq_small]))
        partners = partners[bad[partners["bad_cell"].to_numpy()] & ~(hidden | ~cells.publishable)[partners["c"].to_numpy()]]
        cand = pd.concat([cand, partners], ignore_index=True)
        cand = cand[cand["c"] != cand["bad_cell"]]
        if not cand.empty:
            cand["r"] = rank[cand["c"].to_numpy()]
            hide(cand.sort_values(["bad_cell", "r"]).drop_duplicates("bad_cell")["c"].unique(), 3)
            changed = True
        lone_bad = np.setdiff1d(np.flatnonzero(exact_rounded), cand["bad_cell"].to_numpy() if not cand.empty else [])
        if len(lone_bad):
            hide(lone_bad, 4)
            changed = True
        if not changed:
            break
    # 3. safety net: a pin the rounds above left (the cell to hide more than one relation away, or the rounds used
    # up) is covered by hiding every published cell related to it, the circle widening until nothing is pinned: at
    # worst more is hidden, never a pin published
    narrow_hidden, exact_rounded = pinned()
    around = narrow_hidden | exact_rounded
    while (narrow_hidden | exact_rounded).any():
        near = np.zeros(len(values), dtype=bool)
        near[cell[np.isin(sid, sid[around[cell]])]] = True
        near[cells.leq_large[around[cells.leq_small]]] = True
        near[cells.leq_small[around[cells.leq_large]]] = True
        near |= exact_rounded
        to_hide = near & ~hidden & cells.publishable
        if to_hide.any():
            hide(np.flatnonzero(to_hide), 5)
            narrow_hidden, exact_rounded = pinned()
            around = narrow_hidden | exact_rounded
        elif (near & ~around).any():
            around |= near
        else:  # everything related is hidden already: nothing published pins it
            break
    published = np.where(hidden | ~cells.publishable, np.nan, rounded)
    return Protection(hidden=hidden, published=published, primary=primary, reason=reason)
