"""Statistical methods for public-health indicators: pure, vectorised numpy/scipy functions.

Every function takes scalars or arrays (broadcast together) and returns numpy arrays, numpy scalars or
tuples (NamedTuples) of them. The methods follow the published formulas used by PHEindicatormethods /
PHStatsMethods (OHID "Technical guide: confidence intervals", Dobson 1991, Low & Low 2004,
Spiegelhalter 2005); the reference values in ``../shared/reference/phe_methods`` are the yardstick.

Why NaN instead of exceptions
-----------------------------
These functions run over tens of thousands of area x group cells at once. A zero count, a zero or
missing denominator, an empty group or a quantile with no population is a legitimate state of the data
(a small practice has no patients aged 90+), not a user error. Raising would abort the whole vectorised
computation because of one cell, so such cells get NaN (and an empty label ``""`` for label-valued
functions); NaN propagates through arithmetic, is written as NULL in the marts and is shown as "not
computable" in reports. Only programming errors (an impossible ``confidence``, an unknown option) raise
``ValueError``.

Conventions
-----------
* ``confidence`` is two-sided: ``z = Phi^-1(c + (1 - c) / 2)`` (0.95 -> 1.959964, 0.998 -> 3.090232).
* Proportions are 0-1 unless a ``multiplier`` is given.
* Counts use exact (chi-square) Poisson limits below 10 events and Byar's approximation from 10 on.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special

#: European Standard Population 2013, 19 five-year bands 0-4, 5-9, ..., 85-89, 90+ (sums to 100,000).
ESP2013 = np.array(
    [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000, 7000, 6500, 6000, 5500, 5000, 4000, 2500,
     1500, 1000],
    dtype=float,
)
ESP2013.setflags(write=False)

SIG_HIGH_001 = "High (0.001)"
SIG_HIGH_025 = "High (0.025)"
SIG_NOT = "Not significant"
SIG_LOW_025 = "Low (0.025)"
SIG_LOW_001 = "Low (0.001)"

_FUNNEL_95 = 0.95  # "2s": p = 0.025 in each tail
_FUNNEL_998 = 0.998  # "3s": p = 0.001 in each tail


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _out(a):
    """0-d arrays come back as numpy scalars, everything else unchanged."""
    a = np.asarray(a)
    return a[()] if a.ndim == 0 else a


def _keep(valid, a):
    """``a`` where ``valid``, NaN elsewhere (see :func:`_out`)."""
    return _out(np.where(valid, a, np.nan))


def divide(numerator, denominator):
    """``numerator / denominator`` with NaN (never inf) where the denominator is 0, negative or NaN: a rate
    or ratio of a cell with no population or no expectation is not computable (see module doc)."""
    num, den = np.broadcast_arrays(_f(numerator), _f(denominator))
    with np.errstate(all="ignore"):
        return _out(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))


def z_for(confidence=0.95):
    """Two-sided standard normal quantile ``Phi^-1(c + (1 - c) / 2)``; ``c`` strictly between 0 and 1 (0.95,
    not 95), else ``ValueError``."""
    c = _f(confidence)
    if not np.all((c > 0) & (c < 1)):
        raise ValueError("confidence must be strictly between 0 and 1 (e.g. 0.95)")
    return _out(special.ndtri(c + (1.0 - c) / 2.0))


# ---------------------------------------- Proportions


def wilson_ci(x, n, confidence=0.95):
    """Wilson score interval for a proportion ``x / n`` -> ``(lower, upper)`` on the 0-1 scale:
    ``lower = (2x + z^2 - z sqrt(z^2 + 4x(1 - x/n))) / (2(n + z^2))``, ``upper`` with ``+``; exactly 0 at
    ``x = 0`` and 1 at ``x = n``. ``n <= 0``, ``x < 0``, ``x > n`` or NaN give NaN;
    ``x`` need not be whole."""
    x, n = np.broadcast_arrays(_f(x), _f(n))
    z = _f(z_for(confidence))
    valid = (n > 0) & (x >= 0) & (x <= n)
    with np.errstate(all="ignore"):
        z2 = z * z
        centre = 2.0 * x + z2
        spread = z * np.sqrt(z2 + 4.0 * x * (1.0 - x / n))
        denom = 2.0 * (n + z2)
        lower = np.where(x == 0, 0.0, (centre - spread) / denom)
        upper = np.where(x == n, 1.0, (centre + spread) / denom)
    return _keep(valid, lower), _keep(valid, upper)


def proportion_ci(x, n, confidence=0.95, multiplier=1.0):
    """Proportion with Wilson interval -> ``(value, lower, upper)``, all x ``multiplier``, as
    PHEindicatormethods ``phe_proportion``; invalid cells (``n <= 0``, ``x > n``, NaN) give NaN."""
    x, n = np.broadcast_arrays(_f(x), _f(n))
    with np.errstate(all="ignore"):
        value = np.where((n > 0) & (x >= 0) & (x <= n), x / n, np.nan)
    return tuple(_out(_f(a) * _f(multiplier)) for a in (value, *wilson_ci(x, n, confidence)))


# ---------------------------------------- Counts, rates, ratios


def _byar(x, signed_z):
    with np.errstate(all="ignore"):
        return x * (1.0 - 1.0 / (9.0 * x) + signed_z / (3.0 * np.sqrt(x))) ** 3


def byars_lower(x, confidence=0.95):
    """Pure Byar lower limit for a Poisson count, ``x (1 - 1/(9x) - z/(3 sqrt x))^3`` (no exact switch: see
    :func:`poisson_count_ci`). NaN where it goes negative (``x = 1`` at 99.8%) or ``x <= 0``, as the R
    package's internal ``byars_lower`` gives NA."""
    x = _f(x)
    lower = _byar(x, -_f(z_for(confidence)))
    return _out(np.where((x > 0) & (lower >= 0), lower, np.nan))


def byars_upper(x, confidence=0.95):
    """Pure Byar upper limit: ``(x + 1)(1 - 1/(9(x + 1)) + z/(3 sqrt(x + 1)))^3``; NaN for ``x < 0``."""
    x = _f(x)
    return _out(np.where(x >= 0, _byar(x + 1.0, _f(z_for(confidence))), np.nan))


def exact_poisson_ci(x, confidence=0.95):
    """Exact (chi-square) Poisson limits for a count -> ``(lower, upper)``:
    ``lower = qchisq((1 - c)/2, 2x) / 2`` (0 when ``x = 0``), ``upper = qchisq(c + (1 - c)/2, 2x + 2) / 2``,
    as inverse regularised gamma functions. ``x < 0`` or NaN gives NaN."""
    x = _f(x)
    c = _f(confidence)
    z_for(c)  # validates
    alpha = (1.0 - c) / 2.0
    valid = x >= 0
    with np.errstate(all="ignore"):
        xs = np.where(valid, x, 1.0)
        lower = np.where(xs > 0, special.gammaincinv(np.where(xs > 0, xs, 1.0), alpha), 0.0)
        upper = special.gammaincinv(xs + 1.0, 1.0 - alpha)
    return _keep(valid, lower), _keep(valid, upper)


def poisson_count_ci(x, confidence=0.95):
    """Limits for a count by the PHE rule -> ``(lower, upper)``: exact below 10 events (evaluated for those
    only), Byar from 10. ``x = 0`` gives lower 0; NaN or negative counts give NaN."""
    x = _f(x)
    lower = _f(byars_lower(x, confidence)).copy()
    upper = _f(byars_upper(x, confidence)).copy()
    small = (x < 10) & (x >= 0)
    if np.any(small):
        el, eu = exact_poisson_ci(x[small], confidence)
        lower[small] = el
        upper[small] = eu
    return _out(lower), _out(upper)


def rate_ci(x, denominator, confidence=0.95, multiplier=100000.0):
    """Crude rate ``x / denominator * multiplier`` with PHE count limits -> ``(value, lower, upper)``, as
    PHEindicatormethods ``phe_rate`` (``x > denominator`` allowed). A denominator ``<= 0`` or NaN, or a
    negative or NaN count, gives NaN."""
    return isr(x, denominator, confidence, multiplier)  # the same arithmetic: count x multiplier / denom.


def isr(observed, expected, confidence=0.95, refvalue=1.0):
    """Indirectly standardised ratio ``O / E * refvalue`` -> ``(ratio, lower, upper)``: the limits are
    :func:`poisson_count_ci` of ``O`` over ``E``, as ``calculate_ISRatio``. ``E <= 0`` or NaN gives NaN. For
    the ``statistic = "rate"`` form pass ``refvalue = ref_rate`` (reference crude rate x multiplier)."""
    o, e = np.broadcast_arrays(_f(observed), _f(expected))
    lo, up = poisson_count_ci(o, confidence)
    valid = (e > 0) & (o >= 0)
    with np.errstate(all="ignore"):
        scale = np.where(valid, _f(refvalue) / e, np.nan)
    return _out(o * scale), _out(_f(lo) * scale), _out(_f(up) * scale)


def _groups(group_ids):
    """Sorted unique group ids, the inverse index and the group count (O(n) for small int ids)."""
    g = np.asarray(group_ids).reshape(-1)
    if g.dtype.kind in "iu" and g.size and g.min() >= 0 and g.max() < 4 * g.size + 1024:
        present = np.bincount(g) > 0
        groups = np.flatnonzero(present).astype(g.dtype)
        remap = np.cumsum(present) - 1
        return groups, remap[g], groups.size
    groups, inv = np.unique(g, return_inverse=True)
    return groups, inv.reshape(-1), len(groups)


def _nan0(a) -> np.ndarray:
    a = _f(a)
    return np.where(np.isnan(a), 0.0, a)


def expected_from_strata(pops, refcounts, refpops, group_ids):
    """Expected counts per group, ``sum over strata of pop * refcount / refpop`` -> ``(groups, expected)``,
    from long inputs (one row per group x stratum; ``groups`` sorted unique). NaN populations and reference
    counts count as 0 (as the R package does). A stratum with population 0 contributes nothing; one with a
    positive population but no usable reference population (``<= 0`` or NaN) makes the group's expected NaN.
    """
    groups, inv, k = _groups(group_ids)
    pop = _nan0(pops)
    refc = _nan0(refcounts)
    refp = _f(refpops)
    ok = refp > 0
    with np.errstate(all="ignore"):
        contrib = np.where(pop == 0, 0.0, np.where(ok, pop * refc / np.where(ok, refp, 1.0), np.nan))
    return groups, np.bincount(inv, weights=contrib, minlength=k)


class ISRResult(NamedTuple):
    groups: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def isr_from_strata(counts, pops, refcounts, refpops, group_ids, *, observed=None, confidence=0.95,
                    statistic="ratio", refvalue=1.0, multiplier=100000.0) -> ISRResult:
    """ISR from stratum-level (age band) inputs, as ``calculate_ISRatio`` / ``calculate_ISRate``. ``expected``
    is :func:`expected_from_strata`; ``observed`` defaults to the group sum of ``counts``
    (NaN as 0); pass per-group totals (in the order of ``np.unique(group_ids)``) to use a separate
    observed table. ``statistic="ratio"``: value = O/E * ``refvalue``. ``statistic="rate"``: value =
    O/E * ref_rate with ref_rate = sum(refcount)/sum(refpop) * ``multiplier`` over the group's strata.
    """
    groups, inv, k = _groups(group_ids)
    _, expected = expected_from_strata(pops, refcounts, refpops, group_ids)
    if observed is None:
        obs = np.bincount(inv, weights=_nan0(counts), minlength=k)
    else:
        obs = _f(observed).reshape(-1)
    if statistic == "ratio":
        scale = _f(refvalue)
    elif statistic == "rate":
        refc, refp = (np.bincount(inv, weights=_nan0(a), minlength=k) for a in (refcounts, refpops))
        with np.errstate(all="ignore"):
            scale = np.where(refp > 0, refc / refp, np.nan) * _f(multiplier)
    else:
        raise ValueError("statistic must be 'ratio' or 'rate'")
    value, lower, upper = isr(obs, expected, confidence, scale)
    return ISRResult(groups, obs, expected, _f(value), _f(lower), _f(upper))


# ---------------------------------------- Directly standardised rates (Dobson)


class DSRResult(NamedTuple):
    groups: np.ndarray
    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    total_count: np.ndarray


def dsr_dobson(counts, pops, std_pops, group_ids, confidence=0.95, multiplier=100000.0) -> DSRResult:
    """Directly standardised rate with Dobson limits, per group (sorted unique ``group_ids``) ->
    ``DSRResult``. Long inputs: one row per group x stratum with ``counts``, ``pops`` and the stratum's
    standard population ``std_pops`` (e.g. ``np.tile(ESP2013, n_groups)``).

    ``DSR = sum(x_i w_i / n_i) / sum(w_i)``; ``var = sum(x_i (w_i / n_i)^2) / sum(w_i)^2``; limits
    ``DSR + sqrt(var / O) (Byar(O) - O)`` with ``O`` the group's total count, all x multiplier. Value and
    limits are NaN when ``O < 10`` (too few events for the approximation, as upstream). NaN counts/populations
    are treated as 0; a stratum with population 0 and no events contributes a zero rate (its standard weight
    still counts); a stratum with events but population 0 makes the group NaN (the rate is undefined)."""
    groups, inv, k = _groups(group_ids)
    x, n, w = np.broadcast_arrays(_nan0(counts), _nan0(pops), _f(std_pops))
    bad = (n <= 0) & (x > 0)
    with np.errstate(all="ignore"):
        wn = np.where(n > 0, w / np.where(n > 0, n, 1.0), 0.0)
    s_rate, s_var, s_w, o, n_bad = (np.bincount(inv, weights=a, minlength=k)
                                    for a in (x * wn, x * wn * wn, w, x, bad.astype(float)))
    with np.errstate(all="ignore"):
        dsr = s_rate / s_w
        var = s_var / (s_w * s_w)
        sd_per_event = np.sqrt(var / o)
    ok = (o >= 10) & (n_bad == 0) & (s_w > 0)
    m = _f(multiplier)
    limits = [np.where(ok, (dsr + sd_per_event * (_f(byar(o, confidence)) - o)) * m, np.nan)
              for byar in (byars_lower, byars_upper)]
    return DSRResult(groups, np.where(ok, dsr * m, np.nan), *limits, o)


# ---------------------------------------- Slope and relative index of inequality


class SIIResult(NamedTuple):
    """Per-area SII results. ``*_lower``/``*_upper`` have shape (areas,) for one confidence level and
    (areas, levels) when ``confidence`` is a sequence."""

    sii: np.ndarray
    rii: np.ndarray
    intercept: np.ndarray
    sii_lower: np.ndarray
    sii_upper: np.ndarray
    rii_lower: np.ndarray
    rii_upper: np.ndarray
    sii_mad: np.ndarray | None = None  # reliability (PHE reliability_stat): NaN unless reliability_sets > 1
    rii_mad: np.ndarray | None = None


def _fwd(y, value_type):
    with np.errstate(all="ignore"):
        if value_type == 1:
            return np.log(y)
        if value_type == 2:
            return np.log(y / (1.0 - y))
    return y


def _back(y, value_type):
    if value_type == 1:
        return np.exp(y)
    if value_type == 2:
        return special.expit(y)
    return y


def _simulation_threads() -> int:
    """Threads for the Monte Carlo limits: the cores this process may use (PIPELINE_STATS_THREADS wins)."""
    env = os.environ.get("PIPELINE_STATS_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _quantile7(d, probs):
    """Type-7 (R default, numpy 'linear') quantiles along axis 1 via one partition -> (rows, probs).

    The partition is at the lower ranks only; the element of the next rank up is the smallest of the segment
    that follows (NaN sorts last, as in np.sort), which is cheaper than partitioning at both ranks and gives
    the same order statistics."""
    n = d.shape[1]
    h = (n - 1) * np.asarray(probs)
    lo = np.floor(h).astype(int)
    ranks = np.unique(lo)
    part = np.partition(d, ranks, axis=1)
    lower = part[:, lo]
    upper = np.empty_like(lower)
    for j, r in enumerate(lo):
        if r + 1 >= n:
            upper[:, j] = part[:, r]
            continue
        following = ranks[ranks > r]
        end = following[0] + 1 if following.size else n
        upper[:, j] = np.fmin.reduce(part[:, r + 1:end], axis=1)  # NaN only when the whole rest is NaN
    return lower + (h - lo) * (upper - lower)


def quantile_matrix(group_ids, quantiles, *values, n_quantiles=5):
    """Long -> wide: ``(groups, [matrix, ...])`` with one row per group and one column per quantile.

    ``quantiles`` are 1-based (1 = most deprived). Cells with no input row stay NaN, so an area missing
    a quantile gets NaN SII results.
    """
    groups, inv, k = _groups(group_ids)
    q = np.asarray(quantiles).astype(int).reshape(-1) - 1
    inside = (q >= 0) & (q < n_quantiles)
    out = []
    for v in values:
        mat = np.full((k, n_quantiles), np.nan)
        mat[inv[inside], q[inside]] = _f(v).reshape(-1)[inside]
        out.append(mat)
    return groups, out


def sii(value, population, *, se=None, lower_cl=None, upper_cl=None, count=None, value_type=0,
        transform=False, multiplier=1.0, confidence=0.95, repetitions=100_000, seed=1,
        cl_confidence=0.95, chunk_bytes=32 * 2**20, reliability_sets=0) -> SIIResult:
    """Slope (SII) and relative (RII) index of inequality, Low & Low (2004), as ``phe_sii``.

    Inputs are 2-D arrays ``(areas, quantiles)`` (or 1-D for one area), columns ordered from quantile 1
    = most deprived. For each area: ``a`` = quantile population share, ``b`` = cumulative-share
    midpoint; weighted least squares of ``sqrt(a) y`` on ``[sqrt(a), b sqrt(a)]`` without intercept,
    i.e. ``y = beta0 + beta1 x`` weighted by ``a`` (closed-form 2x2 normal equations, vectorised over
    areas). ``pred(0)`` is the fitted value for the most deprived end, ``pred(1)`` for the least.

    * ``value_type``: 0 other, 1 rate (log scale), 2 proportion 0-1 (logit scale).
    * ``transform=True`` (types 1/2) fits on the log/logit scale and back-transforms the predictions.
    * ``sii = pred(1) - pred(0)``, ``rii = pred(1) / pred(0)``, ``intercept = pred(0)`` (natural scale).
    * ``multiplier`` scales the SII; a negative multiplier flips its sign and inverts the RII.
      The intercept is scaled by ``|multiplier|``.

    Standard errors: ``se`` if given (on the log/logit scale for types 1/2); else from ``lower_cl`` and
    ``upper_cl`` (``cl_confidence`` limits): ``(f(ucl) - f(lcl)) / (2 z)`` with ``f`` log/logit for
    types 1/2; else from ``count``: Wilson limits of ``count/population`` (type 2) or PHE Poisson limits
    of ``count`` (type 1), turned into an SE in the same way.

    Confidence limits (Monte Carlo, as upstream): ``repetitions`` draws of ``normal(f(value), se)`` per
    quantile (``f`` = log/logit for types 1/2, identity for 0); draws are back-transformed before the
    fit when ``transform`` is False, the fit is on the transformed scale when True; limits are type-7
    quantiles of the simulated SII and RII. Where the SII predictions are linear in the draws (type 0,
    or ``transform=True``) the two predictions are drawn directly from their exact bivariate normal
    distribution (same distribution, Q/2 times fewer draws). The standard normal draws come from
    ``np.random.default_rng(seed)`` once and are shared by all areas (common random numbers), so an
    area's limits do not depend on the other areas or on the chunking; areas are processed in chunks
    of about ``chunk_bytes`` of working memory. ``confidence`` may be a sequence (e.g. ``(0.95, 0.98)``).
    ``repetitions=0`` skips the simulation (point estimates only, limits NaN).

    Reliability (PHE's ``reliability_stat``): with ``reliability_sets = 10`` the simulation is run 10 times
    with independent draws (``repetitions`` each; the limits reported are the first set's, unchanged), and
    ``sii_mad`` / ``rii_mad`` are the mean absolute difference of the other sets' lower and upper limits
    from the first set's (first confidence level): how far a rerun could move the limits. NaN otherwise.

    Areas with a missing/non-positive population in any quantile, a missing value, a value outside the
    domain of the transformation, or (for the limits) a missing or non-positive SE give NaN.
    """
    if value_type not in (0, 1, 2):
        raise ValueError("value_type must be 0, 1 or 2")
    transform = bool(transform) and value_type != 0
    v = _f(value)
    single = v.ndim == 1
    v = np.atleast_2d(v)

    def wide(a):
        return np.broadcast_to(np.atleast_2d(_f(a)), v.shape)

    pop = wide(population)
    n_areas, n_q = v.shape
    confs = np.atleast_1d(_f(confidence))
    multi_conf = np.ndim(confidence) > 0
    for c in confs:
        z_for(c)

    # --- design: a, b and the prediction weights w0 (x=0) and w1 (x=1) -------------------------
    with np.errstate(all="ignore"):
        a = pop / pop.sum(axis=1, keepdims=True)
        b = np.cumsum(a, axis=1) - a / 2.0
        s0 = a.sum(axis=1, keepdims=True)
        s1 = (a * b).sum(axis=1, keepdims=True)
        s2 = (a * b * b).sum(axis=1, keepdims=True)
        det = s0 * s2 - s1 * s1
        u = a * (s2 - s1 * b) / det  # beta0 = sum(u y)
        vv = a * (s0 * b - s1) / det  # beta1 = sum(vv y)
    w0 = u
    w1 = u + vv
    ok_design = np.all(np.isfinite(pop) & (pop > 0), axis=1) & (n_q >= 2)

    # --- deterministic fit -------------------------------------------------------------------------
    yfit = _fwd(v, value_type) if transform else v
    ok_value = np.all(np.isfinite(yfit), axis=1) & ok_design
    with np.errstate(all="ignore"):
        p0 = (yfit * w0).sum(axis=1)
        p1 = (yfit * w1).sum(axis=1)
        if transform:
            p0, p1 = _back(p0, value_type), _back(p1, value_type)
        sii_v = p1 - p0
        rii_v = p1 / p0
    sii_v, rii_v, icpt = (np.where(ok_value, a, np.nan) for a in (sii_v, rii_v, p0))

    # --- standard errors on the sampling scale -----------------------------------------------------
    zc = float(z_for(cl_confidence))
    if se is not None:
        se_arr = wide(se)
    else:
        lcl = ucl = np.full(v.shape, np.nan)
        if lower_cl is not None and upper_cl is not None:
            lcl, ucl = wide(lower_cl), wide(upper_cl)
        elif count is not None and value_type == 2:
            lcl, ucl = wilson_ci(wide(count), pop, cl_confidence)
        elif count is not None and value_type == 1:
            lcl, ucl = poisson_count_ci(wide(count), cl_confidence)
        se_arr = (_fwd(_f(ucl), value_type) - _fwd(_f(lcl), value_type)) / (2.0 * zc)
    mean = _fwd(v, value_type)
    with np.errstate(invalid="ignore"):
        ok_mc = ok_value & np.all(np.isfinite(mean) & np.isfinite(se_arr) & (se_arr >= 0), axis=1)

    # --- Monte Carlo ------------------------------------------------------------------------------
    probs = np.concatenate([(1.0 - confs) / 2.0, (1.0 + confs) / 2.0])
    reps = int(repetitions)
    idx = np.flatnonzero(ok_mc) if reps > 0 else np.empty(0, dtype=int)
    linear = not (value_type in (1, 2) and not transform)
    n_draw_rows = 2 if linear else n_q

    def simulate(zmat):
        """Limits (natural scale, before the multiplier) from one matrix of standard normal draws. Chunks of
        areas run on a thread per core (numpy releases the GIL in these loops); each area's arithmetic is the
        same whichever thread does it, so the limits do not depend on the number of threads."""
        qs_sii = np.full((n_areas, probs.size), np.nan)
        qs_rii = np.full((n_areas, probs.size), np.nan)
        per_area = reps * n_draw_rows * 8
        chunk = int(max(1, min(idx.size, chunk_bytes // max(per_area, 1))))
        starts = range(0, idx.size, chunk)
        workers = max(1, min(_simulation_threads(), len(starts)))
        buffers = queue.SimpleQueue()  # reused (no page faults per chunk): one per thread at most
        for _ in range(workers if not linear else 0):
            buffers.put(np.empty((chunk, n_q, reps)))

        def run_chunk(start):
            sel = idx[start:start + chunk]
            m_ = mean[sel]
            s_ = se_arr[sel]
            if linear:
                # predictions at x=0 and x=1 are linear in the draws: exact bivariate normal
                ww0, ww1 = w0[sel], w1[sel]
                mu0 = (m_ * ww0).sum(axis=1)[:, None]
                mu1 = (m_ * ww1).sum(axis=1)[:, None]
                sd0 = np.sqrt((ww0 * ww0 * s_ * s_).sum(axis=1))
                sd1 = np.sqrt((ww1 * ww1 * s_ * s_).sum(axis=1))
                cov = (ww0 * ww1 * s_ * s_).sum(axis=1)
                with np.errstate(all="ignore"):
                    rho = np.where((sd0 > 0) & (sd1 > 0), cov / (sd0 * sd1), 0.0)
                rho = np.clip(rho, -1.0, 1.0)
                d0 = mu0 + sd0[:, None] * zmat[0]
                d1 = mu1 + (sd1 * rho)[:, None] * zmat[0]
                d1 += (sd1 * np.sqrt(1.0 - rho * rho))[:, None] * zmat[1]
                if transform:
                    d0 = _back(d0, value_type)
                    d1 = _back(d1, value_type)
            else:
                # (areas, quantiles, draws): long inner axis keeps the element-wise passes fast
                buf = buffers.get()
                try:
                    y = buf[: sel.size]
                    if value_type == 2:
                        # expit(m + s z) as 1 / (1 + exp(-(m + s z))): the same values to the last bits or so
                        # (order statistics move no further than their inputs) at a third of expit's cost
                        np.multiply(-s_[:, :, None], zmat[None, :, :], out=y)
                        y -= m_[:, :, None]
                        np.exp(y, out=y)
                        y += 1.0
                        np.reciprocal(y, out=y)
                    else:
                        np.multiply(s_[:, :, None], zmat[None, :, :], out=y)
                        y += m_[:, :, None]
                        np.exp(y, out=y)
                    wmat = np.stack([w0[sel], w1[sel]], axis=1)  # (chunk, 2, Q)
                    d = np.einsum("akq,aqr->akr", wmat, y)  # (chunk, 2, reps); Q is small: einsum beats matmul
                finally:
                    buffers.put(buf)
                d0, d1 = d[:, 0, :], d[:, 1, :]
            with np.errstate(all="ignore"):
                s_d = d1 - d0
                r_d = d1 / d0
            qs_sii[sel] = _quantile7(s_d, probs)
            qs_rii[sel] = _quantile7(r_d, probs)

        if workers == 1:
            for start in starts:
                run_chunk(start)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sii") as pool:
                list(pool.map(run_chunk, starts))
        return qs_sii, qs_rii

    k = confs.size
    m = float(multiplier)

    def scaled(qs_sii, qs_rii):
        """The limits with the multiplier applied: (sii_lower, sii_upper, rii_lower, rii_upper)."""
        sl, su = qs_sii[:, :k], qs_sii[:, k:]
        rl, ru = qs_rii[:, :k], qs_rii[:, k:]
        if m >= 0:
            return sl * m, su * m, rl, ru
        with np.errstate(all="ignore"):
            return su * m, sl * m, 1.0 / ru, 1.0 / rl

    # Common random numbers: one matrix of standard normal draws, shared by every area. Each area's
    # draws are still exactly normal(mean, se); sharing only correlates Monte Carlo error across areas
    # and makes an area's limits independent of which other areas are in the call.
    zmat = np.random.default_rng(seed).standard_normal((n_draw_rows, reps))
    sl, su, rl2, ru2 = scaled(*simulate(zmat))
    sii_mad = rii_mad = np.full(n_areas, np.nan)
    if int(reliability_sets) > 1 and idx.size:
        # PHE's reliability_stat: the simulation repeated (independent draws; the first set is the one
        # whose limits are reported), the mean absolute difference of each later set's lower and upper
        # limits from the first set's, over both limits and all later sets (first confidence level)
        diffs_sii, diffs_rii = [], []
        for extra in range(1, int(reliability_sets)):
            z_extra = np.random.default_rng([int(seed), extra]).standard_normal((n_draw_rows, reps))
            sl_k, su_k, rl_k, ru_k = scaled(*simulate(z_extra))
            diffs_sii += [np.abs(sl_k[:, 0] - sl[:, 0]), np.abs(su_k[:, 0] - su[:, 0])]
            diffs_rii += [np.abs(rl_k[:, 0] - rl2[:, 0]), np.abs(ru_k[:, 0] - ru2[:, 0])]
        sii_mad = np.mean(diffs_sii, axis=0)
        rii_mad = np.mean(diffs_rii, axis=0)
    with np.errstate(all="ignore"):
        rii_out = rii_v if m >= 0 else 1.0 / rii_v

    def shape(a, by_level=False):
        a = a[:, 0] if by_level and not multi_conf else a
        return a[0] if single else a

    return SIIResult(*(shape(a) for a in (sii_v * m, rii_out, icpt * abs(m))),
                     *(shape(a, by_level=True) for a in (sl, su, rl2, ru2)), shape(sii_mad), shape(rii_mad))


def sii_crude_rate_proportion(observed, population, *, confidence=0.95, repetitions=100_000, seed=1,
                              multiplier=1.0, chunk_bytes=32 * 2**20, reliability_sets=0) -> SIIResult:
    """SII/RII of a crude rate (a proportion) across deprivation quantiles, as the output contract's
    ``crude_rate`` measure. ``observed`` and ``population`` are ``(areas, quantiles)`` arrays (quantile 1 =
    most deprived; see :func:`quantile_matrix`). value = observed/population, weights = population, SE on the
    logit scale from the 95% Wilson limits, draws back-transformed, no transform of the fit
    (``value_type=2, transform=False``), ``repetitions`` draws. A quantile with 0 cases (or all cases) has an
    infinite logit SE, so that area's limits are NaN (its point SII/RII are still given); an area with an
    unpopulated quantile is NaN throughout."""
    x = _f(observed)
    n = np.broadcast_to(_f(population), x.shape)
    with np.errstate(all="ignore"):
        value = np.where(n > 0, x / n, np.nan)
    lcl, ucl = wilson_ci(x, n, 0.95)
    return sii(value, n, lower_cl=lcl, upper_cl=ucl, value_type=2, transform=False,
               multiplier=multiplier, confidence=confidence, repetitions=repetitions, seed=seed,
               cl_confidence=0.95, chunk_bytes=chunk_bytes, reliability_sets=reliability_sets)


# ---------------------------------------- Funnel plots


class FunnelLimits(NamedTuple):
    lower_95: np.ndarray
    upper_95: np.ndarray
    lower_998: np.ndarray
    upper_998: np.ndarray


def funnel_limits_proportion(baseline_p, denominators, multiplier=1.0) -> FunnelLimits:
    """Funnel control limits for a proportion, as ``calculate_funnel_limits(statistic="proportion")``:
    ``p +/- z sqrt(p(1 - p) / n)`` at 95% and 99.8%, truncated to [0, 1], x ``multiplier``, with ``p`` the
    pooled (parent) proportion (0-1) broadcast against ``denominators``. ``n <= 0`` or NaN gives NaN."""
    p, n = np.broadcast_arrays(_f(baseline_p), _f(denominators))
    valid = (n > 0) & (p >= 0) & (p <= 1)
    with np.errstate(all="ignore"):
        sd = np.sqrt(p * (1.0 - p) / n)

    def limits(confidence):
        z = float(z_for(confidence))
        with np.errstate(all="ignore"):
            return [np.where(valid, np.clip(p + sign * z * sd, 0.0, 1.0), np.nan) * _f(multiplier)
                    for sign in (-1, 1)]

    return _funnel_levels(limits)


def _funnel_levels(limits) -> FunnelLimits:
    """FunnelLimits from ``limits(confidence) -> (lower, upper)`` at the 95% and 99.8% levels."""
    return FunnelLimits(*(_out(limit) for c in (_FUNNEL_95, _FUNNEL_998) for limit in limits(c)))


def _ratio_scale(r, ratio_type):
    if ratio_type == "ratio":
        return r
    if ratio_type == "count":
        return r - 1.0
    if ratio_type == "isr":
        return r * 100.0
    raise ValueError("ratio_type must be 'ratio', 'count' or 'isr'")


def funnel_ratio_exp_events(observed_events) -> FunnelLimits:
    """Expected counts at which ``observed_events`` lies on each funnel limit (upstream's ratio funnel
    axis): the exact Poisson limits of the count. ``lower_95`` is the 95% exact UPPER limit of O (the
    expected count at which O is on the lower funnel line), ``upper_95`` the exact lower limit, etc.
    The ratio limit there is ``O / exp_events``."""
    o = _f(observed_events)
    l95, u95 = exact_poisson_ci(o, _FUNNEL_95)
    l998, u998 = exact_poisson_ci(o, _FUNNEL_998)
    return FunnelLimits(u95, l95, u998, l998)


def _gamma_shape_inv(p, x):
    """Shape ``a`` with ``gammainc(a, x) = p`` (regularised lower incomplete gamma; decreasing in a). Start
    from the Wilson-Hilferty approximation (a few Newton steps of pure arithmetic), refine with secant steps
    on the exact ``gammainc``; anything not converged (tiny ``x``) falls back to scipy's ``gdtrib`` (cdflib
    search, exact but ~30x slower per element)."""
    x_in = _f(x)
    x = np.atleast_1d(x_in).reshape(-1)
    z = special.ndtri(p)
    with np.errstate(all="ignore"):
        s = (-z + np.sqrt(z * z + 4.0 * x)) / 2.0
        a = np.maximum(s * s, 0.5)
        c = np.cbrt(x)
        for _ in range(6):
            ra = np.sqrt(a)
            g = 3.0 * c * a ** (1.0 / 6.0) - 3.0 * ra + 1.0 / (3.0 * ra) - z
            dg = 0.5 * c * a ** (-5.0 / 6.0) - 1.5 / ra - 1.0 / (6.0 * a * ra)
            a = np.maximum(a - g / dg, 0.25 * a)
        a_prev = a * (1.0 + 1e-5)
        f_prev = special.gammainc(a_prev, x) - p
        f = special.gammainc(a, x) - p
        for _ in range(8):
            step = np.where(f != f_prev, -f * (a - a_prev) / (f - f_prev), 0.0)
            a_new = np.where(np.isfinite(step), a + step, a)
            a_new = np.where(a_new > 0, a_new, a / 2.0)
            moving = np.abs(a_new - a) > 1e-12 * np.maximum(a_new, 1.0)
            a_prev, f_prev, a = a, f, a_new
            idx = np.flatnonzero(moving)
            if idx.size == 0:
                break
            f = f.copy()
            f[idx] = special.gammainc(a[idx], x[idx]) - p
        f = special.gammainc(a, x) - p
    bad = ~(np.abs(f) <= 1e-12) & np.isfinite(x)
    if np.any(bad):
        a = a.copy()
        a[bad] = special.gdtrib(1.0, p, x[bad])
    return a.reshape(x_in.shape)


def funnel_limits_ratio(expected, ratio_type="ratio") -> FunnelLimits:
    """Funnel limits for an indirectly standardised ratio at the given expected counts: for each ``E`` the
    limits are the (continuous) observed counts ``O`` whose exact Poisson chi-square interval just reaches
    ``E``: lower ``O_L`` solves ``qchisq(c_hi, 2 O_L + 2)/2 = E`` and upper ``O_U`` solves
    ``qchisq(c_lo, 2 O_U)/2 = E`` (inverse of the regularised gamma function in its shape; ``O_L`` floored at
    0). Returned as ``O/E`` (``ratio_type="ratio"``), ``O/E - 1`` (``"count"``) or ``O/E x 100`` (``"isr"``),
    as ``calculate_funnel_limits(statistic="ratio")``. ``E <= 0`` or NaN gives NaN."""
    e = _f(expected)
    valid = e > 0
    es = np.where(valid, e, 1.0)

    def limits(confidence):
        alpha = (1.0 - confidence) / 2.0
        with np.errstate(all="ignore"):
            observed = (np.maximum(_gamma_shape_inv(1.0 - alpha, es) - 1.0, 0.0), _gamma_shape_inv(alpha, es))
        return [np.where(valid, _ratio_scale(o / es, ratio_type), np.nan) for o in observed]

    return _funnel_levels(limits)


def _significance(limits, reference, valid=None):
    """Funnel labels from an area's own limits (``limits(confidence) -> (lower, upper)``) against
    ``reference``, as ``assign_funnel_significance``: ``High (0.001)`` when the 99.8% lower limit is above it,
    else ``High (0.025)`` when the 95% one is, mirror-wise ``Low (0.001)``/``Low (0.025)`` for upper limits
    below it, else ``Not significant``; ``""`` outside ``valid`` (default: where the 95% lower limit and the
    reference are finite). A numpy array of str."""
    l95, u95 = (_f(a) for a in limits(_FUNNEL_95))
    l998, u998 = (_f(a) for a in limits(_FUNNEL_998))
    with np.errstate(invalid="ignore"):
        labels = [SIG_HIGH_001, SIG_HIGH_025, SIG_LOW_001, SIG_LOW_025]
        lab = np.select([l998 > reference, l95 > reference, u998 < reference, u95 < reference], labels,
                        default=SIG_NOT).astype(object)
    valid = np.isfinite(l95) & np.isfinite(reference) if valid is None else valid
    return _out(np.where(valid, lab, "").astype(str))


def funnel_significance_proportion(x, n, parent_p):
    """Funnel significance of each area's proportion (its Wilson limits) against its parent proportion (0-1),
    as ``assign_funnel_significance(statistic="proportion")``; see :func:`_significance`. ``n <= 0``, NaN:
    ``""``."""
    x, n, p = np.broadcast_arrays(_f(x), _f(n), _f(parent_p))
    return _significance(lambda c: wilson_ci(x, n, c), p)


def funnel_significance_ratio(observed, expected):
    """Funnel significance of an observed count against its expected count, as PHEindicatormethods
    ``assign_funnel_significance(statistic = "ratio")`` (see :func:`_significance`): the count's own limits by
    the PHE rule of :func:`poisson_count_ci` against ``E``. These are the limits of :func:`isr`
    (``ratio_lower = lower(O) / E``), so the funnel, the comparisons table and the packs' wording can never
    label one area differently. ``E <= 0`` or NaN gives ``""``."""
    o, e = np.broadcast_arrays(_f(observed), _f(expected))
    with np.errstate(invalid="ignore"):
        valid = (e > 0) & (o >= 0)
    return _significance(lambda c: poisson_count_ci(o, c), e, valid)


class OverdispersedLimits(NamedTuple):
    target: float
    phi: float
    tau2: float
    z: np.ndarray  # unadjusted z-scores of the areas
    z_adjusted: np.ndarray  # z-scores under the chosen overdispersion model
    lower_95: np.ndarray
    upper_95: np.ndarray
    lower_998: np.ndarray
    upper_998: np.ndarray


def funnel_overdispersion(observed, denominator, *, statistic="proportion", target=None,
                          method="additive", winsor=0.1, at=None, multiplier=1.0) -> OverdispersedLimits:
    """Overdispersion-adjusted funnel limits (Spiegelhalter 2005, Stat Med 24:1185).

    ``statistic="proportion"``: ``y = O/n``, ``target`` defaults to the pooled ``sum O / sum n``,
    ``s_i = sqrt(t(1 - t)/n_i)``. ``statistic="ratio"``: ``denominator`` is the expected count ``E``,
    ``target`` 1, and the square-root transform is used (``y = sqrt(O/E)``, ``s_i = 1/(2 sqrt(E_i))``,
    i.e. ``z = 2(sqrt O - sqrt E)``); limits are squared back to the ratio scale.

    z-scores are Winsorised at the ``winsor`` and ``1 - winsor`` quantiles (10%/90% by default);
    ``phi = mean(z_w^2)``. Multiplicative model: limits ``t +/- z_c sqrt(phi) s`` (phi floored at 1).
    Additive random-effects model: ``tau^2 = (I phi - (I - 1)) / (sum w - sum w^2 / sum w)``,
    ``w = 1/s^2``, floored at 0, limits ``t +/- z_c sqrt(s^2 + tau^2)``. Limits are evaluated at each
    area's denominator, or at ``at`` if given; proportion limits are truncated to [0, 1] and
    x ``multiplier``. Areas with invalid inputs are left out of the estimate and get NaN.
    """
    if statistic not in ("proportion", "ratio"):
        raise ValueError("statistic must be 'proportion' or 'ratio'")
    if method not in ("additive", "multiplicative"):
        raise ValueError("method must be 'additive' or 'multiplicative'")
    proportion = statistic == "proportion"
    o, d = np.broadcast_arrays(_f(observed), _f(denominator))
    valid = (d > 0) & (o >= 0) & np.isfinite(o)
    if proportion:
        valid &= o <= d
        if target is None:
            tot = d[valid].sum()
            target = o[valid].sum() / tot if tot > 0 else np.nan
        t = float(target)
    else:
        t = np.sqrt(1.0 if target is None else float(target))

    def spread(n):  # the standard error of y at denominator n
        with np.errstate(all="ignore"):
            return np.sqrt(t * (1.0 - t) / n) if proportion else 1.0 / (2.0 * np.sqrt(n))

    s = spread(d)
    with np.errstate(all="ignore"):
        y = o / d if proportion else np.sqrt(o / d)
        z = np.where(valid & (s > 0), (y - t) / s, np.nan)
    zv = z[np.isfinite(z)]
    n_i = zv.size
    if n_i > 0:
        lo_q, hi_q = np.quantile(zv, [winsor, 1.0 - winsor])
        zw = np.clip(zv, lo_q, hi_q)
        phi = float(np.mean(zw * zw))
        w = 1.0 / (s[np.isfinite(z)] ** 2)
        denom = w.sum() - (w * w).sum() / w.sum()
        tau2 = float(max(0.0, (n_i * phi - (n_i - 1)) / denom)) if denom > 0 else 0.0
    else:
        phi, tau2 = np.nan, np.nan

    s_at, ok_at = (s, valid) if at is None else (spread(_f(at)), _f(at) > 0)
    with np.errstate(all="ignore"):
        if method == "multiplicative":
            sd_at = np.sqrt(max(phi, 1.0)) * s_at
            z_adj = z / np.sqrt(max(phi, 1.0))
        else:
            sd_at = np.sqrt(s_at * s_at + tau2)
            z_adj = np.where(np.isfinite(z), (y - t) / np.sqrt(s * s + tau2), np.nan)

    def limit(c, sign):  # on the statistic's scale: truncated proportion x multiplier, or squared back
        y_limit = t + sign * float(z_for(c)) * sd_at
        return np.clip(y_limit, 0.0, 1.0) * multiplier if proportion else np.maximum(y_limit, 0.0) ** 2

    lims = [np.where(ok_at, limit(c, sign), np.nan) for c in (_FUNNEL_95, _FUNNEL_998) for sign in (-1, 1)]
    return OverdispersedLimits(float(t if proportion else t * t), phi, tau2, z, z_adj, *lims)


# ---------------------------------------- Comparisons


def rate_ratio(x1, n1, x2, n2, confidence=0.95, kind="proportion"):
    """Ratio of ``x1/n1`` to a reference ``x2/n2`` with a log-method interval -> ``(ratio, lower, upper)``.

    ``SE(log RR) = sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)`` for proportions (``kind="proportion"``, Katz) or
    ``sqrt(1/x1 + 1/x2)`` for Poisson rates (``kind="rate"``). A zero count on either side makes the
    log interval undefined: the limits are NaN (the ratio itself is 0 when ``x1 = 0``; NaN when the
    reference rate is 0). Invalid denominators give NaN.
    """
    x1, n1, x2, n2 = np.broadcast_arrays(_f(x1), _f(n1), _f(x2), _f(n2))
    z = _f(z_for(confidence))
    valid = (n1 > 0) & (n2 > 0) & (x1 >= 0) & (x2 > 0)
    if kind == "proportion":
        valid &= (x1 <= n1) & (x2 <= n2)
    elif kind != "rate":
        raise ValueError("kind must be 'proportion' or 'rate'")
    with np.errstate(all="ignore"):
        rr = (x1 / n1) / (x2 / n2)
        se = np.sqrt(1.0 / x1 - 1.0 / n1 + 1.0 / x2 - 1.0 / n2 if kind == "proportion"
                     else 1.0 / x1 + 1.0 / x2)
        lo, hi = rr * np.exp(-z * se), rr * np.exp(z * se)
    ci_ok = valid & (x1 > 0)
    return _keep(valid, rr), _keep(ci_ok, lo), _keep(ci_ok, hi)


def rate_difference(x1, n1, x2, n2, confidence=0.95, kind="proportion", multiplier=1.0):
    """Difference ``x1/n1 - x2/n2`` with an interval -> ``(difference, lower, upper)`` x ``multiplier``.

    ``kind="proportion"``: Newcombe (1998) hybrid score interval from the two Wilson intervals,
    ``d - sqrt((p1 - l1)^2 + (u2 - p2)^2)`` to ``d + sqrt((u1 - p1)^2 + (p2 - l2)^2)`` (well defined for
    zero counts). ``kind="rate"``: normal approximation with ``SE = sqrt(x1/n1^2 + x2/n2^2)``.
    Invalid denominators give NaN.
    """
    x1, n1, x2, n2 = np.broadcast_arrays(_f(x1), _f(n1), _f(x2), _f(n2))
    m = _f(multiplier)
    valid = (n1 > 0) & (n2 > 0) & (x1 >= 0) & (x2 >= 0)
    with np.errstate(all="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        d = p1 - p2
        if kind == "proportion":
            valid &= (x1 <= n1) & (x2 <= n2)
            l1, u1 = (_f(a) for a in wilson_ci(x1, n1, confidence))
            l2, u2 = (_f(a) for a in wilson_ci(x2, n2, confidence))
            lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
            hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
        elif kind == "rate":
            z = _f(z_for(confidence))
            se = np.sqrt(x1 / n1**2 + x2 / n2**2)
            lo, hi = d - z * se, d + z * se
        else:
            raise ValueError("kind must be 'proportion' or 'rate'")
    return tuple(_out(np.where(valid, a, np.nan) * m) for a in (d, lo, hi))


def compare_to_parent(lower, upper, parent_value):
    """Label each interval against a parent value: ``"higher"`` when ``lower > parent``, ``"lower"``
    when ``upper < parent``, else ``"similar"``; ``""`` when any input is NaN (not comparable).
    Returns a numpy array of str (a numpy str scalar for scalar inputs)."""
    lo, hi, p = np.broadcast_arrays(_f(lower), _f(upper), _f(parent_value))
    lab = np.select([lo > p, hi < p], ["higher", "lower"], default="similar")
    valid = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(p)
    return _out(np.where(valid, lab, "").astype(str))


# ---------------------------------------- Change over time (paired) and multiple comparisons


class PairedChange(NamedTuple):
    """Change between two dates in a standardised ratio, with the gap to a comparator (see
    :func:`paired_ratio_change`). ``direction`` is -1 (gap narrowed), +1 (widened), 0 (no change), NaN."""

    ratio_from: np.ndarray
    ratio_to: np.ndarray
    change: np.ndarray
    change_lower: np.ndarray
    change_upper: np.ndarray
    gap_from: np.ndarray
    gap_to: np.ndarray
    gap_change: np.ndarray
    gap_change_lower: np.ndarray
    gap_change_upper: np.ndarray
    direction: np.ndarray
    p_value: np.ndarray


def paired_ratio_change(observed_from, expected_from, observed_to, expected_to, cases_both,
                        comparator_from=1.0, comparator_to=1.0, confidence=0.95, count_rounding=0.0) -> PairedChange:
    """Change in an indirectly standardised ratio between two dates when mostly the same patients are
    counted on both (a register on consecutive dates), and whether the gap to a comparator narrowed.

    Inputs are counts per cell (broadcast together): observed ``O0``, ``O1`` and expected ``E0``, ``E1`` on
    the earlier and the later date, and ``cases_both`` = ``a``, the patients who are in the cell's population
    on both dates and a case on both (the concordant cases; ``a <= min(O0, O1)``, clipped). The expected
    counts are taken as fixed, as in the ratio's own interval. The two observed counts are modelled as
    sums of Poisson parts sharing ``a`` (``O0 = a + b``, ``O1 = a + c``, with ``b`` the cases seen only on the
    earlier date, leavers' cases included, and ``c`` those seen only on the later), so by the delta method

        ``Var(log O1 - log O0) = 1/O0 + 1/O1 - 2a/(O0 O1) = (b + c) / (O0 O1)``:

    the uncertainty comes from the patients whose status differs between the dates, not from the whole
    register twice (which treating the dates as independent samples, ``1/O0 + 1/O1``, assumes).
    ``count_rounding`` (e.g. 5 for counts published rounded to the nearest 5) adds the variance of a uniform
    rounding error, ``r^2/12``, of each observed count (on the log scale ``r^2/12 (1/O0^2 + 1/O1^2)``).

    * ``ratio_from = O0/E0``, ``ratio_to = O1/E1``, ``change = ratio_to / ratio_from`` with the log-normal
      interval ``change x exp(+-z sqrt(Var))``.
    * The gap to the comparator at each date is ``gap = ratio / comparator`` (``comparator_from`` and
      ``comparator_to``: the comparator's ratio on the same reference rates, taken as fixed: a cell is a
      small part of its comparator, and ignoring the comparator's own variation is the conservative side).
      ``gap_change = gap_to / gap_from`` has the same interval width as ``change``.
    * Narrowed or widened is about the distance from 1, ``|log gap|``: with ``d = log gap_to - log gap_from``
      and ``s = log gap_to + log gap_from``, ``gap_to^2 < gap_from^2`` (on the log scale) exactly when
      ``d s < 0``. ``direction`` is ``sign(d s)``: -1 narrowed, +1 widened. The claim is tested as an
      intersection-union test: it needs both ``d`` (a real movement) and ``s`` (the cell sits clearly on one
      side of the comparator over the two dates) to differ from 0, so ``p_value = max(p_d, p_s)`` (two-sided
      normal tests; ``Var(s) = (O0 + O1 + 2a) / (O0 O1)``). A ratio that moves from 0.90 to 1.12 crossed the
      comparator and stands about as far from it as before: ``s`` is near 0, so no claim is made, where a
      "moved towards 1" rule would have called the crossing a worsening or an improvement.

    The ratios, ``change`` and the gaps are given wherever their divisions are defined (``E > 0``, a positive
    comparator; a date with no case has ratio 0, and ``change`` 0 when that is the later date). The intervals,
    ``direction`` and ``p_value`` need a case on both dates: a zero observed count on either date (log
    undefined), ``E <= 0`` or NaN inputs give NaN there (no claim).
    """
    o0, e0, o1, e1, both, c0, c1 = np.broadcast_arrays(
        _f(observed_from), _f(expected_from), _f(observed_to), _f(expected_to), _f(cases_both),
        _f(comparator_from), _f(comparator_to))
    z = _f(z_for(confidence))
    valid = (o0 > 0) & (o1 > 0) & (e0 > 0) & (e1 > 0) & (c0 > 0) & (c1 > 0) & np.isfinite(both)
    with np.errstate(all="ignore"):
        shared = np.clip(both, 0.0, np.minimum(o0, o1))
        rounding = _f(count_rounding) ** 2 / 12.0 * (1.0 / o0 ** 2 + 1.0 / o1 ** 2)
        var_d = np.maximum((o0 + o1 - 2.0 * shared) / (o0 * o1), 0.0) + rounding
        var_s = (o0 + o1 + 2.0 * shared) / (o0 * o1) + rounding
        ratio_from = divide(o0, e0)
        ratio_to = divide(o1, e1)
        change = divide(ratio_to, ratio_from)
        half = z * np.sqrt(var_d)
        gap_from = divide(ratio_from, c0)
        gap_to = divide(ratio_to, c1)
        gap_change = divide(gap_to, gap_from)
        d = np.log(gap_to) - np.log(gap_from)
        s = np.log(gap_to) + np.log(gap_from)
        # var_d = 0 (the same patients are the cases on both dates): the gap moved only if the expected counts or the
        # comparator did; a |d| of rounding size (a comparator change of 1 - 2e-16) is no movement, else p_d would be
        # 0 and the cell could be labelled on the sign of a rounding error
        p_d = np.where(var_d > 0, 2.0 * special.ndtr(-np.abs(d) / np.sqrt(var_d)),
                       np.where(np.abs(d) <= 1e-12, 1.0, 0.0))
        p_s = 2.0 * special.ndtr(-np.abs(s) / np.sqrt(var_s))
        direction = np.sign(d * s)
        return PairedChange(
            _out(ratio_from), _out(ratio_to), _out(change), _keep(valid, change * np.exp(-half)),
            _keep(valid, change * np.exp(half)), _out(gap_from), _out(gap_to), _out(gap_change),
            _keep(valid, gap_change * np.exp(-half)), _keep(valid, gap_change * np.exp(half)), _keep(valid, direction),
            _keep(valid, np.maximum(p_d, p_s)))


def benjamini_hochberg(p_values, family_ids=None):
    """Benjamini-Hochberg adjusted p-values (q-values), within each family of tests -> array like ``p_values``.

    ``q_(i) = min over j >= i of p_(j) m / j`` with ``p_(1) <= ... <= p_(m)`` the family's sorted p-values
    and ``m`` its number of tests; capped at 1. Claiming every test with ``q <= alpha`` controls the false
    discovery rate of the family at ``alpha`` (independent or positively dependent tests). NaN p-values
    are no test: they get NaN and do not count in ``m``. Vectorised: one sort over all families.
    """
    p = _f(p_values).reshape(-1)
    fam = np.zeros(p.size, dtype=np.int64) if family_ids is None else _groups(family_ids)[1].astype(np.int64)
    q = np.full(p.size, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return _out(q.reshape(np.shape(p_values)))
    pv, fv = p[ok], fam[ok]
    order = np.lexsort((pv, fv))  # by family, then p ascending
    ps, fs = pv[order], fv[order]
    starts = np.r_[0, np.flatnonzero(np.diff(fs)) + 1]
    sizes = np.diff(np.r_[starts, fs.size])
    block = np.repeat(np.arange(starts.size), sizes)
    rank = np.arange(fs.size) - starts[block] + 1
    raw = np.minimum(ps * sizes[block] / rank, 1.0)
    # running minimum from the largest p downwards, within each family (exact: no offsets added and taken off,
    # so a q-value does not depend on the order the families come in)
    adj = pd.Series(raw[::-1]).groupby(block[::-1]).cummin().to_numpy()
    out = np.empty(fs.size)
    out[order] = adj[::-1]
    q[ok] = out
    return _out(q.reshape(np.shape(p_values)))


CHANGE_NARROWED = "narrowed"
CHANGE_WIDENED = "widened"
CHANGE_NONE = "no clear change"


def change_labels(direction, q_values, alpha=0.05):
    """Trend labels: ``"narrowed"`` / ``"widened"`` (the gap to the comparator, see
    :func:`paired_ratio_change`) where the (FDR-adjusted) ``q_values <= alpha``, ``"no clear change"``
    otherwise, ``""`` where the change could not be computed."""
    dirn, q = np.broadcast_arrays(_f(direction), _f(q_values))
    lab = np.select([(q <= alpha) & (dirn < 0), (q <= alpha) & (dirn > 0)], [CHANGE_NARROWED, CHANGE_WIDENED],
                    default=CHANGE_NONE).astype(object)
    return _out(np.where(np.isfinite(dirn) & np.isfinite(q), lab, "").astype(str))


# ---------------------------------------- Groups within an area


class WithinArea(NamedTuple):
    value: np.ndarray       # (O_g / E_g) / (O_a / E_a)
    lower: np.ndarray
    upper: np.ndarray
    lower_998: np.ndarray
    upper_998: np.ndarray
    affected: np.ndarray    # E_g x (O_a / E_a) - O_g: patients short of the area's own level (negative: more)


def within_area_ratio(observed_group, expected_group, observed_area, expected_area, confidence=0.95) -> WithinArea:
    """A group's standardised ratio relative to its own area's (the group is part of the area): how the
    group is recorded compared with the rest of its own population, age and sex taken into account.

    ``value = (O_g / E_g) / (O_a / E_a)``. Given the area's total ``O_a``, the group's count is binomial,
    ``O_g ~ Bin(O_a, pi)``; at the area's own level ``pi0 = E_g / E_a``. The interval is the Wilson interval
    of ``pi = O_g / O_a`` divided by ``pi0`` (the same Wilson method as every proportion here), so it is valid
    for small groups and ``O_g = 0`` gives a lower limit of 0; the 99.8% limits are given for ranking by
    significance. ``affected = E_g O_a / E_a - O_g``: how many more the group would have recorded at its
    area's own standardised level. Invalid inputs (``E <= 0``, ``O_a <= 0``, NaN) give NaN.
    """
    og, eg, oa, ea = np.broadcast_arrays(_f(observed_group), _f(expected_group), _f(observed_area),
                                         _f(expected_area))
    valid = (eg > 0) & (ea > 0) & (oa > 0) & (og >= 0)
    og_c = np.minimum(og, oa)  # published (rounded) counts can put a group a little above its area
    with np.errstate(all="ignore"):
        pi0 = eg / ea
        l95, u95 = (_f(a) for a in wilson_ci(og_c, oa, confidence))
        l998, u998 = (_f(a) for a in wilson_ci(og_c, oa, _FUNNEL_998))
        value = (og / eg) / (oa / ea)
        affected = eg * oa / ea - og
        limits = [limit / pi0 for limit in (l95, u95, l998, u998)]
    return WithinArea(*(_keep(valid, a) for a in (value, *limits, affected)))
