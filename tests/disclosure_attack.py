"""An attacker who holds everything published under reports/ at once and knows the methods.

Independent of the pipeline's own disclosure code (it imports nothing from `pipeline`): it reads only the CSVs
under a reports directory (the packs' numbers, the ICS summary, the community summaries, their data-quality and
input tables) and what the packs' methods pages say (the conditions' minimum ages, the rounding and threshold,
internal reference rates). It then does what a careful reader can:

* every additive relation: the groups of a breakdown add up to the area's total; practices to their PCN; PCNs to
  their ICB; neighbourhoods plus the people in none (the data-quality count, for all-ages registers) to the whole
  dataset; registers with the same minimum age share their registered populations (and an age band wholly above
  both minimum ages is the same population); the data-quality 'registered' and 'ethnicity not recorded' counts
  are the all-ages population of the area and of its 'Unknown' ethnic group, 'no LSOA' + 'LSOA not matched' its
  'Unknown' deprivation group; rows read = loaded + rejected; recorded <= registered;
* indicators (what the packs' pages say about each: its kind, its register and its age range): a care or outcome
  indicator's denominator is its register's patients in the age range, so the register's own recorded cell when
  the range is the whole register (or an age band lies wholly inside it), at most that cell otherwise, and the
  same cell for every indicator with the same register and range; slices that tile a register's ages from some
  age up add up to the register's patients from that age; a case-finding denominator (not on the register) plus
  the register's patients in its age range is everyone registered in that range (a registered population when
  the range is open-ended);
* "[c]" means 1 to threshold when the publication never hides a zero, 0 to threshold otherwise (it checks);
* expected against observed: with internal reference rates, for the whole dataset and any group made of whole
  sex x age-band strata (all, sex, age band) expected equals recorded;
* inversion of every published interval: Wilson (rate) and exact / Byar (ratio), and of `missing`
  (expected - recorded): for each row, the true counts consistent with the printed values, unless the printed
  values are exactly what the published counts give (then they carry nothing more);
* interval propagation over all of it, then an integer program (`scipy.optimize.milp`) on each hidden cell's
  neighbourhood of relations.

`attack(reports, truth)` returns the measures the issue asks for; `truth` (true counts by cell key) comes from
the processed warehouse (see `truth_from_warehouse`).
"""
from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import optimize, sparse, stats

MARKER = "[c]"
Z95 = 1.959963984540054


# ------------------------------------------------------------------------------------------------ methods

def wilson(o: float, n: float) -> tuple[float, float]:
    p = o / n
    centre = p + Z95 ** 2 / (2 * n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n))
    den = 1 + Z95 ** 2 / n
    return (centre - half) / den, (centre + half) / den


def poisson_limits(o: int) -> tuple[float, float]:
    """95% limits of a Poisson count: exact (chi-square) below 10, Byar from 10."""
    if o < 10:
        lower = 0.0 if o == 0 else stats.chi2.ppf(0.025, 2 * o) / 2
        upper = stats.chi2.ppf(0.975, 2 * o + 2) / 2
        return lower, upper
    lower = o * (1 - 1 / (9 * o) - Z95 / (3 * math.sqrt(o))) ** 3
    upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + Z95 / (3 * math.sqrt(o + 1))) ** 3
    return lower, upper


# ------------------------------------------------------------------------------------------------ reading

def _num(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip()
    if text in ("", MARKER):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _age_start(band: str) -> int:
    return int(re.match(r"(\d+)", band).group(1))


@dataclass
class Model:
    threshold: int
    rounding: int
    min_ages: dict[str, int]
    index: dict[tuple, int] = field(default_factory=dict)
    shown: dict[int, float] = field(default_factory=dict)      # published (rounded) value
    hidden: set[int] = field(default_factory=set)
    conflicts: int = 0
    sums: list[tuple[int, list[int]]] = field(default_factory=list)   # total = sum(members)
    leq: list[tuple[int, int]] = field(default_factory=list)
    extra_low: dict[int, float] = field(default_factory=dict)
    extra_high: dict[int, float] = field(default_factory=dict)
    inverted_rows: int = 0
    reproduced_rows: int = 0
    # indicator id -> (kind, register condition, lowest age, highest age or None), ages as the packs state them
    indicators: dict[str, tuple] = field(default_factory=dict)

    def cell(self, key: tuple) -> int:
        if key not in self.index:
            self.index[key] = len(self.index)
        return self.index[key]

    def observe(self, key: tuple, text: str | None) -> int:
        cid = self.cell(key)
        value = _num(text)
        if text is not None and text.strip() == MARKER:
            if cid in self.shown:
                self.conflicts += 1
            self.hidden.add(cid)
        elif value is not None:
            if cid in self.hidden or (cid in self.shown and self.shown[cid] != value):
                self.conflicts += 1
            self.shown[cid] = value
        return cid

    def narrow(self, cid: int, low: float, high: float) -> None:
        self.extra_low[cid] = max(self.extra_low.get(cid, -math.inf), low)
        self.extra_high[cid] = min(self.extra_high.get(cid, math.inf), high)

    def band(self, value: float) -> tuple[float, float]:
        if value == 0:
            return 0.0, 0.0
        half = self.rounding / 2
        return max(math.ceil(value - half), self.threshold + 1), math.ceil(value + half) - 1


def pop_key(model: Model, period, condition, area_type, area_code, group_type, group_value) -> tuple:
    """Registered populations are shared by registers of the same minimum age; an age band starting at or above
    a register's minimum age is the same population whatever that age. An indicator's denominator: see
    `indicator_population_key`."""
    if str(condition).startswith("indicator:"):
        return indicator_population_key(model, period, str(condition).removeprefix("indicator:"), area_type,
                                         area_code, group_type, group_value)
    return population_range_key(model, period, model.min_ages.get(condition, 0), None, area_type, area_code,
                                group_type, group_value)


def _band_range(band: str) -> tuple[int, float]:
    start = _age_start(band)
    return start, (math.inf if band.endswith("+") else start + 4)


def population_range_key(model: Model, period, low: int, high, area_type, area_code, group_type, group_value) -> tuple:
    """Everyone registered aged low..high (high None: no upper limit): a published registered population when
    open-ended (that of the registers with minimum age `low`); an age band wholly inside the range is the band's
    whole population."""
    if group_type == "age_band":
        start, end = _band_range(group_value)
        if start >= low and (high is None or end <= high):
            return ("population", period, 0, area_type, area_code, group_type, group_value)
    if high is None:
        return ("population", period, low, area_type, area_code, group_type, group_value)
    return ("population-range", period, low, high, area_type, area_code, group_type, group_value)


def register_range_key(model: Model, period, condition, low: int, high, area_type, area_code, group_type,
                       group_value) -> tuple:
    """A register's patients aged low..high: the register's published recorded cell when that is the whole register
    from its minimum age (or the age band lies wholly inside both), an unpublished cell otherwise."""
    register_min = model.min_ages.get(condition, 0)
    recorded = ("observed", period, condition, area_type, area_code, group_type, group_value)
    if group_type == "age_band":
        start, end = _band_range(group_value)
        if start >= max(low, register_min) and (high is None or end <= high):
            return recorded
    if max(low, 0) == register_min and high is None:
        return recorded
    return ("register-range", period, condition, low, high, area_type, area_code, group_type, group_value)


def indicator_population_key(model: Model, period, indicator, area_type, area_code, group_type, group_value) -> tuple:
    """A care or outcome indicator's denominator is its register's patients in its age range (the same cell for
    every indicator with that register and range); a case-finding one is the people in its range not on it."""
    if indicator not in model.indicators:   # nothing known about it: its own cell
        return ("indicator-population", period, indicator, area_type, area_code, group_type, group_value)
    kind, condition, low, high = model.indicators[indicator]
    if kind == "case_finding":
        return ("not-on-register", period, condition, low, high, area_type, area_code, group_type, group_value)
    return register_range_key(model, period, condition, low, high, area_type, area_code, group_type, group_value)


def indicator_relations(model: Model, cells: set[tuple]) -> None:
    """The relations between indicator denominators, registers and registered populations, for every
    (period, area, group) in which an indicator is published (`cells`: (period, indicator, area_type, area_code,
    group_type, group_value))."""
    slices = defaultdict(set)   # register -> the age ranges of its care / outcome indicators
    for kind, condition, low, high in model.indicators.values():
        if kind != "case_finding":
            slices[condition].add((low, high))
    for period, indicator, at, code, gt, gv in cells:
        if indicator not in model.indicators:
            continue
        kind, condition, low, high = model.indicators[indicator]
        place = (at, code, gt, gv)
        own = model.cell(indicator_population_key(model, period, indicator, *place))
        recorded = model.cell(("observed", period, condition, *place))
        if kind == "case_finding":
            on_register = model.cell(register_range_key(model, period, condition, low, high, *place))
            model.sums.append((model.cell(population_range_key(model, period, low, high, *place)), [own, on_register]))
            # the register's patients in the range are at most all of them (younger diagnosed people, below the
            # register's minimum age, are on no register)
            if on_register != recorded and low >= model.min_ages.get(condition, 0):
                model.leq.append((on_register, recorded))
            continue
        if own != recorded:
            model.leq.append((own, recorded))
        # slices tiling the register's ages from their lowest age up add up to the register from that age
        ranges = sorted(slices[condition], key=lambda r: r[0])
        tiled = all(ranges[i][1] is not None and ranges[i][1] + 1 == ranges[i + 1][0] for i in range(len(ranges) - 1))
        if len(ranges) > 1 and tiled and ranges[-1][1] is None:
            members = [model.cell(register_range_key(model, period, condition, lo, hi, *place)) for lo, hi in ranges]
            whole = model.cell(register_range_key(model, period, condition, ranges[0][0], None, *place))
            if [whole] != members:
                model.sums.append((whole, members))
            if whole != recorded:   # the register's patients from that age up are at most all of them
                model.leq.append((whole, recorded))


def read_reports(reports: Path, model: Model) -> list[dict]:
    rows = []
    for path in sorted(Path(reports).rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                row["_file"] = path.relative_to(reports).as_posix()
                if "indicator" in row:   # indicator rows (`<code>_indicators.csv`): their own cells
                    row["condition"] = f"indicator:{row['indicator']}"
                rows.append(row)
    return rows


def build(reports: Path, model: Model, use_derived: bool = True) -> None:
    rows = read_reports(reports, model)
    prevalence = [r for r in rows if "group_type" in r and "observed" in r]
    dq = [r for r in rows if "lsoa_missing" in r]
    load = [r for r in rows if "rows_read" in r]
    groups = defaultdict(dict)            # (period, condition, area_type, area_code, group_type) -> {value: row}
    practice_parent, pcn_parent = {}, {}
    icbs = set()
    indicator_cells = set()
    for r in prevalence:
        if r["condition"].startswith("indicator:"):
            indicator_cells.add((r["period"], r["condition"].removeprefix("indicator:"), r["area_type"],
                                 r["area_code"], r["group_type"], r["group_value"]))
        k = (r["period"], r["condition"], r["area_type"], r["area_code"])
        o = model.observe(("observed",) + k + (r["group_type"], r["group_value"]), r.get("observed"))
        p = model.observe(pop_key(model, *k, r["group_type"], r["group_value"]), r.get("population"))
        model.leq.append((o, p))
        groups[k + (r["group_type"],)][r["group_value"]] = (o, p, r)
        folder = r["_file"].split("/")[0]
        stem = r["_file"].split("/")[-1].removesuffix(".csv").removesuffix("_indicators")
        if r["area_type"] == "practice" and folder == "pcn":
            practice_parent[r["area_code"]] = stem
        if r["area_type"] == "pcn" and folder == "ics":
            pcn_parent[r["area_code"]] = stem
        if r["area_type"] == "icb":
            icbs.add(r["area_code"])
    # groups of each breakdown add up to the `all` row (absent groups have nobody registered)
    for (period, condition, at, code, gt), members in groups.items():
        if gt == "all":
            continue
        total = groups.get((period, condition, at, code, "all"), {}).get("All")
        if total is None:
            continue
        for j in (0, 1):
            model.sums.append((total[j], [m[j] for m in members.values()]))
    # practices -> PCN; PCNs -> ICB; neighbourhoods + the people in none -> the dataset
    by_parent = defaultdict(list)
    for (period, condition, at, code, gt), members in groups.items():
        for gv, cells in members.items():
            if at == "practice" and code in practice_parent:
                by_parent[(period, condition, "pcn", practice_parent[code], gt, gv)].append(cells)
            elif at == "pcn" and code in pcn_parent:
                by_parent[(period, condition, "icb", pcn_parent[code], gt, gv)].append(cells)
    for (period, condition, at, code, gt, gv), kids in by_parent.items():
        total = groups.get((period, condition, at, code, gt), {}).get(gv)
        if total is None:
            continue
        for j in (0, 1):
            model.sums.append((total[j], [kid[j] for kid in kids]))
    # data quality
    dq_cells = defaultdict(dict)
    for r in dq:
        k = (r["period"], r["area_type"], r["area_code"])
        pop = model.observe(("population", r["period"], 0, r["area_type"], r["area_code"], "all", "All"),
                            r["population"])
        eth = model.observe(("population", r["period"], 0, r["area_type"], r["area_code"], "ethnicity", "Unknown"),
                            r["ethnicity_not_recorded"])
        cells = {"population": pop, "ethnicity_not_recorded": eth}
        for col in ("lsoa_missing", "lsoa_unmatched", "no_neighbourhood"):
            cells[col] = model.observe(("dq", col) + k, r[col])
            model.leq.append((cells[col], pop))
        unknown = model.cell(("population", r["period"], 0, r["area_type"], r["area_code"], "imd_quintile", "Unknown"))
        model.sums.append((unknown, [cells["lsoa_missing"], cells["lsoa_unmatched"]]))
        dq_cells[k] = cells
    dq_parent = defaultdict(list)
    for (period, at, code), cells in dq_cells.items():
        if at == "practice" and code in practice_parent:
            dq_parent[(period, "pcn", practice_parent[code])].append(cells)
        elif at == "pcn" and code in pcn_parent:
            dq_parent[(period, "icb", pcn_parent[code])].append(cells)
    for k, kids in dq_parent.items():
        if k in dq_cells:
            for col in dq_cells[k]:
                model.sums.append((dq_cells[k][col], [kid[col] for kid in kids]))
    # the whole dataset: the ICBs together; neighbourhoods + the people in none
    periods_conditions = {(k[0], k[1]) for k in groups}
    for period, condition in periods_conditions:
        for j, kind in ((0, "observed"), (1, "population")):
            dataset = model.cell((f"{kind}-dataset", period, condition))
            icb_cells = [groups[(period, condition, "icb", code, "all")]["All"][j]
                         for code in icbs if "All" in groups.get((period, condition, "icb", code, "all"), {})]
            if not icb_cells:
                continue
            model.sums.append((dataset, icb_cells))
            nbh = [v["All"][j] for (pp, cc, at, code, gt), v in groups.items()
                   if pp == period and cc == condition and at == "neighbourhood" and gt == "all" and "All" in v]
            if not nbh:
                continue
            rest = model.cell((f"{kind}-no-neighbourhood", period, condition))
            model.sums.append((dataset, nbh + [rest]))
            if kind == "population" and model.min_ages.get(condition, 0) == 0 and not condition.startswith("indicator:"):
                none = [dq_cells[(period, "icb", code)]["no_neighbourhood"] for code in icbs
                        if (period, "icb", code) in dq_cells]
                if none and len(none) == len(icbs):
                    model.sums.append((rest, none))
        o_rest = model.index.get(("observed-no-neighbourhood", period, condition))
        p_rest = model.index.get(("population-no-neighbourhood", period, condition))
        if o_rest is not None and p_rest is not None:
            model.leq.append((o_rest, p_rest))
    for r in load:
        cells = [model.observe(("rows", r["source"], c), r[c]) for c in ("rows_read", "rows_loaded", "rows_rejected")]
        model.sums.append((cells[0], cells[1:]))
    indicator_relations(model, indicator_cells)
    if use_derived:
        derived(model, prevalence, icbs)


def derived(model: Model, prevalence: list[dict], icbs: set) -> None:
    """Narrow counts with the printed derived values: expected = recorded for whole-strata groups of the whole
    dataset; Wilson, exact/Byar and `missing` inverted, unless they are exactly what the published counts give."""
    single_icb = len(icbs) == 1
    for r in prevalence:
        k = (r["period"], r["condition"], r["area_type"], r["area_code"], r["group_type"], r["group_value"])
        o = model.index[("observed",) + k]
        p = model.index[pop_key(model, *k)]
        expected = _num(r.get("expected"))
        if single_icb and r["area_type"] == "icb" and r["group_type"] in ("all", "sex", "age_band") \
                and expected is not None:
            model.narrow(o, math.ceil(expected - 2.5), math.floor(expected + 2.5))
        o_pub, p_pub = model.shown.get(o), model.shown.get(p)
        if o_pub is None:
            continue
        o_band = range(int(model.band(o_pub)[0]), int(model.band(o_pub)[1]) + 1)
        # Wilson interval of the rate
        rate, lo, hi = (_num(r.get(c)) for c in ("rate", "rate_lower", "rate_upper"))
        if rate is not None and lo is not None and p_pub:
            if _wilson_matches(o_pub, p_pub, rate, lo, hi):
                model.reproduced_rows += 1
            else:
                p_band = range(int(model.band(p_pub)[0]), int(model.band(p_pub)[1]) + 1)
                fits = [(oo, pp) for oo in o_band for pp in p_band if pp >= oo > -1 and pp > 0
                        and _wilson_matches(oo, pp, rate, lo, hi)]
                if fits:
                    model.inverted_rows += 1
                    model.narrow(o, min(f[0] for f in fits), max(f[0] for f in fits))
                    model.narrow(p, min(f[1] for f in fits), max(f[1] for f in fits))
        # exact / Byar interval of the ratio, with `missing`
        ratio, rlo, rhi = (_num(r.get(c)) for c in ("ratio", "ratio_lower", "ratio_upper"))
        missing = _num(r.get("missing"))
        if ratio is None or rhi is None:
            continue
        if expected is not None and _ratio_matches(o_pub, expected, ratio, rlo, rhi) and \
                (missing is None or abs(missing - (expected - o_pub)) < 1e-9):
            model.reproduced_rows += 1
            continue
        e_low, e_high = (expected - 2.5, expected + 2.5) if expected is not None else (1e-9, math.inf)
        fits = []
        for oo in o_band:
            window = _ratio_window(oo, ratio, rlo, rhi)
            if window is None:
                continue
            low, high = max(window[0], e_low), min(window[1], e_high)
            if missing is not None:
                low, high = max(low, oo + missing - 2.5), min(high, oo + missing + 2.5)
            if low <= high:
                fits.append(oo)
        if fits:
            model.inverted_rows += 1
            model.narrow(o, min(fits), max(fits))


def _wilson_matches(o, n, rate, lo, hi) -> bool:
    if n <= 0 or o > n:
        return False
    wl, wh = wilson(o, n)
    return all(abs(x - y) <= 5e-7 + 1e-12 for x, y in ((o / n, rate), (wl, lo), (wh, hi)))


def _ratio_matches(o, e, ratio, lo, hi) -> bool:
    if e <= 0:
        return False
    pl, ph = poisson_limits(int(o))
    return all(abs(x / e - y) <= 0.005 + 1e-9 for x, y in ((o, ratio), (pl, lo), (ph, hi)))


def _ratio_window(o: int, ratio, lo, hi) -> tuple[float, float] | None:
    """Expected values E for which o/E, and the limits of o over E, print as the given 2-dp values."""
    pl, ph = poisson_limits(o)
    low, high = 1e-9, math.inf
    for x, y in ((o, ratio), (pl, lo), (ph, hi)):
        if x == 0:
            if y != 0:
                return None
            continue
        # round(x / E, 2) == y  <=>  y - 0.005 <= x / E < y + 0.005
        high = min(high, x / (y - 0.005)) if y - 0.005 > 0 else high
        low = max(low, x / (y + 0.005))
    return (low, high) if low <= high else None


# ------------------------------------------------------------------------------------------------ solving

def bounds(model: Model, zero_hidden: bool) -> tuple[np.ndarray, np.ndarray]:
    n = len(model.index)
    low, high = np.zeros(n), np.full(n, np.inf)
    for cid, value in model.shown.items():
        low[cid], high[cid] = model.band(value)
    for cid in model.hidden:
        low[cid] = 0 if zero_hidden else 1
    for cid, v in model.extra_low.items():
        low[cid] = max(low[cid], v)
    for cid, v in model.extra_high.items():
        high[cid] = min(high[cid], v)
    return propagate(model, low, high)


def propagate(model: Model, low, high, rounds: int = 300):
    """Bound tightening: for total = sum(members), each member lies between the total's bounds less the others'
    and the total between the members' sums; then recorded <= registered."""
    low, high = low.astype(float).copy(), high.astype(float).copy()
    if model.sums:
        relation = np.concatenate([[i] * (len(m) + 1) for i, (_, m) in enumerate(model.sums)]).astype(int)
        member = np.concatenate([[t] + list(m) for t, m in model.sums]).astype(int)
        sign = np.concatenate([[-1.0] + [1.0] * len(m) for _, m in model.sums])
    n_rel = len(model.sums)
    small = np.array([a for a, _ in model.leq], dtype=int)
    large = np.array([b for _, b in model.leq], dtype=int)
    for _ in range(rounds):
        before_low, before_high = low.copy(), high.copy()
        if n_rel:
            # sum(sign * x) = 0 over each relation; the least and most each term can add
            least = np.where(sign > 0, low[member], -high[member])
            most = np.where(sign > 0, high[member], -low[member])
            inf_least, inf_most = np.isinf(least), np.isinf(most)
            total_least = np.bincount(relation, np.where(inf_least, 0, least), n_rel)
            total_most = np.bincount(relation, np.where(inf_most, 0, most), n_rel)
            count_least = np.bincount(relation, inf_least, n_rel)
            count_most = np.bincount(relation, inf_most, n_rel)
            others_least = np.where(count_least[relation] > inf_least, -np.inf,
                                    total_least[relation] - np.where(inf_least, 0, least))
            others_most = np.where(count_most[relation] > inf_most, np.inf,
                                   total_most[relation] - np.where(inf_most, 0, most))
            # sign * x = -(others): x in [-others_most, -others_least] / sign
            term_low, term_high = -others_most, -others_least
            cand_low = np.where(sign > 0, term_low, -term_high)
            cand_high = np.where(sign > 0, term_high, -term_low)
            np.maximum.at(low, member, cand_low)
            np.minimum.at(high, member, cand_high)
        if len(small):
            np.minimum.at(high, small, high[large])
            np.maximum.at(low, large, low[small])
        low, high = np.ceil(low - 1e-9), np.floor(high + 1e-9)
        if np.array_equal(before_low, low) and np.array_equal(before_high, high):
            break
    return low, high


def milp_refine(model: Model, low, high, targets, max_vars: int = 400):
    """Tighten each target cell with an integer program over the relations within two steps of it."""
    touching = defaultdict(list)
    for i, (total, members) in enumerate(model.sums):
        for cid in [total] + members:
            touching[cid].append(i)
    for cid in targets:
        if high[cid] - low[cid] < 1:
            continue
        sums = set(touching[cid])
        cells = {c for s in sums for c in [model.sums[s][0]] + model.sums[s][1]}
        for c in list(cells):
            sums |= set(touching[c])
        cells = {c for s in sums for c in [model.sums[s][0]] + model.sums[s][1]}
        if len(cells) > max_vars:
            continue
        cells = sorted(cells)
        pos = {c: i for i, c in enumerate(cells)}
        rows, cols, vals = [], [], []
        for r, s in enumerate(sorted(sums)):
            total, members = model.sums[s]
            rows.append(r), cols.append(pos[total]), vals.append(-1.0)
            for m in members:
                rows.append(r), cols.append(pos[m]), vals.append(1.0)
        a = sparse.csr_array((vals, (rows, cols)), shape=(len(sums), len(cells)))
        lb = np.array([low[c] for c in cells])
        ub = np.array([min(high[c], 1e7) for c in cells])
        cons = optimize.LinearConstraint(a, 0, 0)
        integrality = np.ones(len(cells))
        found = []
        for sign in (1.0, -1.0):
            cost = np.zeros(len(cells))
            cost[pos[cid]] = sign
            res = optimize.milp(cost, constraints=cons, integrality=integrality,
                                bounds=optimize.Bounds(lb, ub), options={"time_limit": 2})
            found.append(res.x[pos[cid]] if res.success else None)
        if found[0] is not None:
            low[cid] = max(low[cid], round(found[0]))
        if found[1] is not None:
            high[cid] = min(high[cid], round(found[1]))
    return low, high


# ------------------------------------------------------------------------------------------------ measures

@dataclass
class Outcome:
    hidden: int = 0
    exact: int = 0
    within2: int = 0
    within2_baseline: int = 0
    unrounded: int = 0
    published: int = 0
    unsound: int = 0
    conflicts: int = 0
    inverted_rows: int = 0
    absent_rows: int = 0
    examples: list = field(default_factory=list)


def absent_rows(reports: Path) -> list[tuple]:
    """Rows a file leaves out of its own grid: a breakdown (date, condition or indicator, area, group type) that
    lacks a group the same file shows for another area of that type. A reader who knows that the warehouse has no
    row for an empty group reads the gap as an exact 0 (and every hidden row that is there as 'at least 1')."""
    missing = []
    for path in sorted(Path(reports).rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if "group_type" in r and "observed" in r]
        measure = "indicator" if rows and "indicator" in rows[0] else "condition"
        grid, present = defaultdict(set), defaultdict(set)
        for r in rows:
            grid[(r[measure], r["area_type"], r["group_type"])].add(r["group_value"])
            present[(r["period"], r[measure], r["area_type"], r["area_code"], r["group_type"])].add(r["group_value"])
        for (period, name, area_type, code, group_type), values in present.items():
            for value in sorted(grid[(name, area_type, group_type)] - values):
                missing.append((path.name, period, name, area_type, code, group_type, value))
    return missing


def keys_kind(model: Model, cid: int) -> str:
    if not hasattr(model, "_kinds"):
        model._kinds = {c: k[0] for k, c in model.index.items()}
    return model._kinds[cid]


def attack(reports: Path, truth: dict, threshold: int = 7, rounding: int = 5, min_ages: dict | None = None,
           use_milp: bool = True, indicators: dict | None = None) -> Outcome:
    """`indicators`: id -> (kind, register, lowest age, highest age or None), as the packs describe them."""
    out = Outcome()
    results = {}
    for use_derived in (False, True):
        model = Model(threshold=threshold, rounding=rounding, min_ages=min_ages or {}, indicators=indicators or {})
        build(Path(reports), model, use_derived=use_derived)
        # does the publication ever hide a zero? if a hidden cell can be 0, "[c]" is 0..threshold
        zero_hidden = not any(value == 0 for cid, value in model.shown.items()
                              if keys_kind(model, cid) in ("observed", "population", "dq"))
        low, high = bounds(model, zero_hidden)
        hidden = [cid for cid in model.hidden]
        if use_milp and use_derived:
            narrowish = [cid for cid in hidden if high[cid] - low[cid] <= 12]
            low, high = milp_refine(model, low, high, narrowish)
        results[use_derived] = (model, low, high)
    model, low, high = results[True]
    _, base_low, base_high = results[False]
    keys = {cid: k for k, cid in model.index.items()}
    out.conflicts = model.conflicts
    out.inverted_rows = model.inverted_rows
    absent = absent_rows(Path(reports))
    out.absent_rows = len(absent)
    out.examples += absent[:5]
    for cid in model.hidden:
        true = truth.get(keys[cid])
        out.hidden += 1
        if true is not None and not (low[cid] <= true <= high[cid]):
            out.unsound += 1
        if high[cid] == low[cid] and true is not None and low[cid] == true:
            out.exact += 1
            out.examples.append((keys[cid], true))
        if high[cid] - low[cid] <= 4:
            out.within2 += 1
        if base_high[cid] - base_low[cid] <= 4:
            out.within2_baseline += 1
    for cid, value in model.shown.items():
        out.published += 1
        true = truth.get(keys[cid])
        if value != 0 and high[cid] == low[cid] and true is not None and low[cid] == true:
            out.unrounded += 1
            out.examples.append((keys[cid], true))
    return out


def truth_from_warehouse(processed: Path, min_ages: dict, indicators: dict | None = None) -> dict:
    """True counts by the attacker's cell keys, from the processed warehouse (the secure side). An indicator's
    denominator that the attacker takes for a register's recorded cell must have that cell's true count."""
    import duckdb

    con = duckdb.connect(str(Path(processed) / "warehouse.duckdb"), read_only=True)
    truth = {}
    try:
        prev = con.execute("select cast(period as varchar), condition, area_type, area_code, group_type, "
                           "group_value, observed, population from prevalence").fetchall()
        model = Model(threshold=0, rounding=1, min_ages=min_ages, indicators=indicators or {})
        for period, condition, at, code, gt, gv, observed, population in prev:
            truth[("observed", period, condition, at, code, gt, gv)] = observed
            truth[pop_key(model, period, condition, at, code, gt, gv)] = population
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        if "indicators" in tables:
            for period, iid, at, code, gt, gv, observed, population in con.execute(
                    "select cast(period as varchar), indicator, area_type, area_code, group_type, group_value, "
                    "observed, population from indicators").fetchall():
                condition = f"indicator:{iid}"
                truth[("observed", period, condition, at, code, gt, gv)] = observed
                key = pop_key(model, period, condition, at, code, gt, gv)
                if truth.setdefault(key, population) != population:
                    raise AssertionError(f"the attacker's model of {iid}'s denominator is wrong: {key}")
        dq = con.execute("select cast(period as varchar), area_type, area_code, population, ethnicity_not_recorded, "
                         "lsoa_missing, lsoa_unmatched, no_neighbourhood from data_quality").fetchall()
        for period, at, code, population, eth, missing, unmatched, none in dq:
            truth[("population", period, 0, at, code, "all", "All")] = population
            truth[("population", period, 0, at, code, "ethnicity", "Unknown")] = eth
            for col, v in (("lsoa_missing", missing), ("lsoa_unmatched", unmatched), ("no_neighbourhood", none)):
                truth[("dq", col, period, at, code)] = v
        for source, read, loaded, rejected in con.execute(
                "select source, rows_read, rows_loaded, rows_rejected from load_summary").fetchall():
            for col, v in (("rows_read", read), ("rows_loaded", loaded), ("rows_rejected", rejected)):
                truth[("rows", source, col)] = v
    finally:
        con.close()
    return truth
