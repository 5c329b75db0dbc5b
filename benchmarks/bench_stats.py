"""Benchmark of pipeline.stats on synthetic data (a script, not a test).

    .venv/bin/python benchmarks/bench_stats.py [--cells 100000] [--reps 100000] [--no-mc]

Cells are area x group (here: area x IMD quintile, so cells/5 areas). Times every statistic the
analyse stage needs for that many cells: Wilson rate intervals, ISR (expected from 38 sex x age strata
per cell, then the ratio and its interval), funnel limits + significance against the parent, DSR
(19 ESP2013 bands per cell), comparisons, and the SII point estimates. The target is < 1 s for all of
that; the SII Monte-Carlo limits (100,000 draws per area, chunked) are timed separately.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from pipeline import stats as S


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=100_000, help="SII Monte-Carlo draws per area")
    ap.add_argument("--no-mc", action="store_true", help="skip the SII Monte-Carlo timing")
    ap.add_argument("--mc-areas", type=int, default=None, help="limit the SII Monte Carlo to N areas")
    ap.add_argument("--repeats", type=int, default=3, help="report the best of N runs of each step")
    args = ap.parse_args()

    rng = np.random.default_rng(42)
    n_q = 5
    n_areas = args.cells // n_q
    cells = n_areas * n_q
    n_strata = 38  # sex (2) x 19 age bands
    n_parents = 42

    # synthetic inputs -------------------------------------------------------------------------------
    pop_s = rng.integers(0, 400, (cells, n_strata)).astype(float)  # population by stratum
    ref_rate = np.tile(np.linspace(0.01, 0.3, 19), 2)  # reference prevalence by stratum
    cases_s = rng.binomial(pop_s.astype(int), ref_rate * rng.uniform(0.7, 1.3, (cells, 1))).astype(float)
    population = pop_s.sum(axis=1)
    observed = cases_s.sum(axis=1)
    parent = rng.integers(0, n_parents, cells)
    cell_id = np.repeat(np.arange(cells), n_strata)
    refcount = np.tile(ref_rate * 1e6, cells)
    refpop = np.full(cells * n_strata, 1e6)

    timings: dict[str, float] = {}
    cold: dict[str, float] = {}

    def timed(name, fn):
        """Best of ``--repeats`` runs (the first, cold run - page faults on fresh arrays - kept apart)."""
        runs = []
        for _ in range(max(1, args.repeats)):
            t = time.perf_counter()
            out = fn()
            runs.append(time.perf_counter() - t)
        cold[name] = runs[0]
        timings[name] = min(runs)
        return out

    timed("wilson rate CI", lambda: S.proportion_ci(observed, population))
    _, expected = timed("expected from 38 strata (3.8M rows)",
                        lambda: S.expected_from_strata(pop_s.ravel(), refcount, refpop, cell_id))
    timed("ISR + interval", lambda: S.isr(observed, expected))

    def funnel():
        pobs = np.bincount(parent, weights=observed, minlength=n_parents)
        ppop = np.bincount(parent, weights=population, minlength=n_parents)
        pp = (pobs / ppop)[parent]
        lim = S.funnel_limits_proportion(pp, population)
        sig = S.funnel_significance_proportion(observed, population, pp)
        return lim, sig

    timed("funnel limits + significance, proportion vs parent", funnel)
    timed("funnel limits, ratio (exact Poisson at E)", lambda: S.funnel_limits_ratio(expected))
    timed("funnel significance, ratio", lambda: S.funnel_significance_ratio(observed, expected))

    def dsr():
        bands_pop = pop_s[:, :19] + pop_s[:, 19:]
        bands_x = cases_s[:, :19] + cases_s[:, 19:]
        return S.dsr_dobson(bands_x.ravel(), bands_pop.ravel(), np.tile(S.ESP2013, cells),
                            np.repeat(np.arange(cells), 19))

    timed("DSR Dobson (19 bands, 1.9M rows)", dsr)

    def compare():
        pobs = np.bincount(parent, weights=observed, minlength=n_parents)[parent]
        ppop = np.bincount(parent, weights=population, minlength=n_parents)[parent]
        lo, up = S.wilson_ci(observed, population)
        return (S.compare_to_parent(lo, up, pobs / ppop), S.rate_ratio(observed, population, pobs, ppop),
                S.rate_difference(observed, population, pobs, ppop))

    timed("comparisons (labels, ratio, Newcombe difference)", compare)

    x_m = observed.reshape(n_areas, n_q)
    n_m = population.reshape(n_areas, n_q)
    timed(f"SII/RII point estimates ({n_areas} areas x {n_q})",
          lambda: S.sii_crude_rate_proportion(x_m, n_m, repetitions=0))

    total = sum(timings.values())
    width = max(len(k) for k in timings)
    print(f"pipeline.stats benchmark: {cells:,} cells ({n_areas:,} areas x {n_q} quintiles)")
    for k, v in timings.items():
        print(f"  {k:<{width}}  {v * 1000:8.1f} ms")
    print(f"  {'TOTAL (excluding SII Monte Carlo)':<{width}}  {total * 1000:8.1f} ms  "
          f"[target < 1000 ms: {'met' if total < 1 else 'NOT met'}]  (best of {args.repeats}; "
          f"first cold run {sum(cold.values()) * 1000:.0f} ms)")

    if not args.no_mc:
        mc_areas = n_areas if args.mc_areas is None else min(args.mc_areas, n_areas)
        t = time.perf_counter()
        res = S.sii_crude_rate_proportion(x_m[:mc_areas], n_m[:mc_areas], repetitions=args.reps)
        dt = time.perf_counter() - t
        ok = np.isfinite(res.sii_lower).sum()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"SII Monte Carlo: {mc_areas:,} areas x {args.reps:,} draws x {n_q} quintiles "
              f"(chunked, ~32 MiB working set): {dt:.1f} s ({dt / max(mc_areas, 1) * 1000:.2f} ms/area), "
              f"{ok:,} areas with limits; peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
