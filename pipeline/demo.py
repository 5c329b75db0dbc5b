"""Synthetic raw directory in the input contract (DESIGN.md): `python -m pipeline demo-data`.

    generate(out, n_patients=250_000, seed=20240331) -> None

Writes `patients.parquet`, `registrations.parquet`, `events.parquet`, `practices.csv`,
`deprivation.csv`, `neighbourhoods.csv`, `codelists/*.csv`, `boundaries.geojson` and `README.txt`
into `out` (created if needed; other files there are left alone). Everything is synthetic: no real
person, practice, PCN, LSOA or place. The same seed gives byte-identical files. Everything is
vectorised numpy (no Python loop over patients or events); 1M patients take a few seconds.

The made-up ICS
---------------
One ICB (`QXX`, "NHS Demo ICB"), 6 PCNs (`U99001`..`U99006`, names ending in "Demo PCN"),
35 practices (`Y9nnnn` codes), 24 neighbourhoods (`NH01`..`NH24`, 4 per PCN area) made of 224
synthetic LSOAs (`E0199nnnn`: format-valid, outside the real range) laid out as squares on a grid
in the North Sea (lon 1.6-1.92 E, lat 53.8-54.0 N) so no map can be mistaken for a real place.
The geography (practices, PCNs, neighbourhoods, LSOAs, deprivation) is fixed; the seed drives
patients, registrations and events. Deprivation is skewed like an urban ICS (about 24% of LSOAs and
23% of patients in national IMD deciles 1-2, mean LSOA decile 4.6); ranks lie in the right decile
band out of 32,844 and scores follow the IMD 2019 rank-score curve.

Patients are drawn LSOA first (gravity model: nearby, larger practices attract more). Age/sex follow
England's registered-patient pyramid (NHS Digital, 5-year bands); dates of birth are the first of a
month. Sex: F/M, with about 0.04% I and 0.2% U. Ethnicity (NHS ethnic category codes) follows Census
2021 England by IMD decile, tilted by area (more diverse in the deprived urban PCNs); 8-10% are not
recorded (Z, 99 or empty), from 3% to 20% by practice. About 1% of patients have no LSOA and 0.5% an
LSOA outside the ICS (in neither deprivation.csv nor neighbourhoods.csv).

Registrations (window 2022-04-01 .. 2025-12-31; nothing is dated after 2025-12-31): most patients one
open spell; about 18% joined during the window, newborns register after birth, about 15% left (closed
spell), 4% moved practice (closed spell then a new one, some overlapping, a few starting on the same
day), 1% only have a spell that ended before the window; some spells end or start exactly on a
period date (2023-03-31, 2024-03-31, 2025-03-31); deaths follow a Gompertz hazard (some exactly on
a period date; after death the spell is closed on the day, within 30 days, or left open).

Conditions (true state, then recording):
* depression: adults recorded about 12.4%, 13.0%, 13.8% at the three periods; women about 1.65x men;
  most deprived quintile about 1.6x the least; resolved codes for ~22% of cases, some re-diagnosed
  later, some resolved on the day of diagnosis;
* hypertension: about 14% of all ages (~1% under 40, ~35% in the 60s, ~57% at 80+); Black 1.45x,
  South Asian 1.3x; a few resolved;
* SMI: about 1% of all ages; Black 2.5x, most deprived quintile 1.7x; some remission codes;
* social prescribing referrals (871731000000106, codelists/social_prescribing.csv; not in the
  default config) and noise events (blood pressure, weight, BMI, smoking) in no codelist.

PLANTED INEQUALITIES (what the packs must find)
-----------------------------------------------
Ratios quoted are observed/expected, indirectly standardised by sex x 5-year age band against the
whole ICS, grouped by recorded ethnicity, as the pipeline computes them.
1. Depression under-recorded in Black patients (true ethnic category M, N or P) whose practice is in
   two PCNs. Their true depression risk is 0.82x White's for the same sex, age and deprivation, which
   offsets their more deprived LSOAs: elsewhere their observed/expected ratio is about 0.93.
   * U99002 "Central Demo PCN": a true case is recorded with probability 0.40 by 2023-03-31, 0.54 by
     2024-03-31 and 0.70 by 2025-03-31 (catch-up codes dated between the periods): improving.
     Observed/expected for Black adults (seed 20240331, 250k patients): 0.43, 0.60, 0.76.
   * U99005 "Riverside Demo PCN": recorded with probability 0.42 at every period: not improving.
     Observed/expected: 0.49, 0.53, 0.53.
   * everywhere else a true case is recorded with probability 0.95 x the practice's own factor
     (lognormal, sd 0.06, capped at 1).
2. Hypertension under-recorded in the most deprived IMD quintile (national decile 1-2, by the
   patient's LSOA) across the ICS: a true case is recorded with probability 0.95 x 0.70 there and
   0.95 elsewhere (x the practice factor). True prevalence is 1.12x in quintile 1 and 1.06x in
   quintile 2, so quintile 1's observed/expected ratio is about 0.85 against about 1.12 in quintile 2
   (the recorded gradient is reversed at the most deprived end).
3. Funnel outlier: practice Y97130 "Orchard Lane Surgery" (U99006 "Fenwick Demo PCN") records all
   three conditions at 0.6x the usual probability (observed/expected about 0.65 for each condition).

Readings and care codes (events with a `value`; indicators in pipeline/default.toml), from 2021-04-01:
* blood pressure (systolic 72313002 and diastolic 1091811000000102 on the same day, about 12% of checks with a
  second, lower pair the same day): people on the hypertension register have an annual check (86%) and
  sometimes an extra one (15%); each check is at target (below 140/90, or 150/90 from 81) with probability 0.74;
  adults not on the register: 8% have a routine check; HbA1c (999791000000106, mmol/mol) for 6% of people
  aged 40+; SMI annual physical health checks (1366341000000100) for 66% of the SMI register each year;
  antidepressant issues (dm+d products, courses of 1-7 four-weekly issues) for 35% of people with recorded
  depression, and 1% of other adults.
4. PLANTED care and outcome gaps:
   * lower BP control: a check is at target with probability 0.74 x 0.72 in the most deprived IMD quintile, and
     0.74 x 0.62 for Asian patients of U99003 "Eastgate Demo PCN";
   * SMI health checks in "Hollins Medical Centre" (U99003): 25% a year instead of 66%;
   * raised BP readings (systolic 141 and over, on 1-4 dates) without a hypertension diagnosis: 40% of adults with
     true, unrecorded hypertension (85% in the "Millbank Estate" neighbourhood, U99005 area) and 0.6% of other
     adults (5% in Millbank Estate);
   * antidepressants without a depression code: people with true, unrecorded depression get courses with
     probability 0.25, Black patients 0.55 (and Black patients' depression is under-recorded, gap 1 above).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .config import is_date_pattern
from .errors import PipelineError

# --------------------------------------------------------------------------------------------- constants


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


PERIODS = np.array([_day("2023-03-31"), _day("2024-03-31"), _day("2025-03-31")], dtype=np.int64)
WINDOW_START = _day("2022-04-01")
EXTRACT = _day("2025-12-31")          # the latest date written anywhere (contract: never in the future)
EXTRACT_MONTH = np.datetime64("2025-12", "M").astype(np.int64)   # ages are drawn as at Dec 2025
YEAR = 365.25
GEO_SEED = 1729                         # the fixed geography

ICB_CODE, ICB_NAME = "QXX", "NHS Demo ICB"

# England's registered patients by sex x 5-year age band (thousands; NHS Digital "Patients Registered
# at a GP Practice", 2026, rounded). Bands 0-4 .. 90-94, then 95+.
PYRAMID_F = np.array([1402.6, 1633.9, 1828.8, 1873.5, 1904.7, 2168.2, 2295.5, 2347.6, 2179.3, 1965.1,
                      1877.7, 2008.1, 1953.4, 1657.9, 1388.2, 1350.6, 950.7, 575.0, 279.6, 93.7])
PYRAMID_M = np.array([1474.9, 1716.9, 1922.3, 1964.2, 1925.6, 2206.6, 2343.2, 2418.3, 2267.9, 2074.5,
                      1962.5, 2039.7, 1947.2, 1605.6, 1278.7, 1180.1, 772.5, 405.0, 160.6, 36.3])
SEX_CODES = np.array(["F", "M", "I", "U"])
SEX_P = np.array([0.4990, 0.4986, 0.0004, 0.0020])

# NHS ethnic category codes, their ONS high-level group (DESIGN.md) and the within-group split for
# England (Census 2021 TS021, % of all residents; Chinese is R, i.e. "Other", in the NHS 2001 codes).
ETH_CODES = np.array(list("ABCDEFGHJKLMNPRS"))
ETH_GROUP = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4])
ETH_WITHIN = np.array([74.42, 0.85, 6.43, 0.86, 0.42, 0.82, 0.78, 3.13, 2.66, 1.08, 1.63,
                       1.05, 2.50, 0.50, 0.75, 2.11])
# Census 2021 England: % White, Mixed, Asian (incl. Chinese), Black, Other by IMD 2019 decile of the LSOA.
ETH_BY_DECILE = np.array([
    [72.0, 3.4, 14.5, 7.1, 3.0], [70.7, 3.7, 13.9, 8.6, 3.2], [73.2, 3.5, 12.9, 7.3, 3.1],
    [78.0, 3.2, 11.1, 5.1, 2.6], [81.9, 2.9, 9.3, 3.8, 2.1], [84.8, 2.7, 7.9, 2.7, 1.9],
    [87.1, 2.5, 6.8, 2.0, 1.6], [88.6, 2.4, 6.0, 1.6, 1.4], [89.4, 2.4, 5.6, 1.4, 1.3],
    [90.0, 2.4, 5.6, 1.0, 1.1]])
# IMD 2019 score at national rank quantiles (0 = most deprived), for rank -> score.
IMD_Q = np.array([0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1])
IMD_SCORE_Q = np.array([92.73, 68.4, 63.06, 53.72, 43.86, 33.25, 26.57, 21.55, 17.65, 14.24, 11.3, 8.62,
                        5.91, 4.32, 3.08, 2.44, 0.54])
N_LSOA_ENGLAND = 32_844

# ------------------------------------------------------------------------------------------ the places

PCNS = (  # code, name, grid block (column, row) of its 4 neighbourhoods
    ("U99001", "Westbrook Demo PCN", (0, 0)),
    ("U99002", "Central Demo PCN", (1, 0)),
    ("U99003", "Eastgate Demo PCN", (2, 0)),
    ("U99004", "Southvale Demo PCN", (0, 1)),
    ("U99005", "Riverside Demo PCN", (1, 1)),
    ("U99006", "Fenwick Demo PCN", (2, 1)),
)
PCN_CODES = [code for code, _, _ in PCNS]
PLANTED_DEP_IMPROVING = "U99002"
PLANTED_DEP_FLAT = "U99005"
DEP_BLACK_IMPROVING = (0.40, 0.54, 0.70)     # share of true cases recorded by each period
DEP_BLACK_FLAT = 0.42
HYP_Q1_FACTOR = 0.70
OUTLIER_PRACTICE = "Y97130"
OUTLIER_FACTOR = 0.60
READINGS_START = _day("2021-04-01")          # readings and care codes are written from this date on
BP_CONTROLLED = 0.74                          # share of a hypertensive patient's readings at target
BP_Q1_FACTOR = 0.72                           # planted: most deprived quintile
BP_PLANTED_PCN, BP_PLANTED_GROUP, BP_PLANTED_FACTOR = "U99003", 2, 0.62   # planted: Asian patients in Eastgate
SMI_CHECK_P, SMI_CHECK_PRACTICE, SMI_CHECK_PRACTICE_P = 0.66, "Hollins Medical Centre", 0.25
HIGH_BP_NEIGHBOURHOOD = "Millbank Estate"    # planted: high readings without a diagnosis

# per PCN: the 4 neighbourhood names and mean IMD deciles, and multipliers on the ethnic codes
NEIGHBOURHOODS = {
    "U99001": (("Westbrook", 7.5), ("Ashcombe", 9.0), ("Beechwood", 6.5), ("Kingsmead", 9.5)),
    "U99002": (("Castle Quarter", 1.3), ("Market Fields", 2.0), ("St Anne's", 1.5), ("Foundry Lane", 2.8)),
    "U99003": (("Eastgate Park", 3.0), ("Hollins", 4.5), ("Moorbridge", 2.6), ("Victoria Road", 5.0)),
    "U99004": (("Southvale", 7.0), ("Little Easton", 8.5), ("Harrowden", 5.5), ("Meadow Vale", 8.0)),
    "U99005": (("Wharfside", 1.8), ("Millbank Estate", 3.2), ("Riverside North", 1.5), ("Tannery Row", 4.0)),
    "U99006": (("Fenwick", 4.5), ("Lark Hill", 6.0), ("Cotes End", 3.5), ("Brackley Green", 5.5)),
}
ETH_TILT = {  # code letters -> multiplier (missing letters: 1)
    "U99001": {**dict.fromkeys("HJKLMNPRS", 0.5), **dict.fromkeys("DEFG", 0.8)},
    "U99002": {"M": 1.4, "N": 1.4, "P": 1.4, "D": 1.3, "E": 1.3, "H": 0.8, "J": 0.8, "K": 0.8, "S": 1.1},
    "U99003": {"H": 1.3, "J": 1.9, "K": 1.9, "L": 1.1, "M": 0.6, "N": 0.6, "P": 0.6},
    "U99004": {**dict.fromkeys("HJKLMNPRS", 0.5), **dict.fromkeys("DEFG", 0.8)},
    "U99005": {"M": 1.35, "N": 1.35, "P": 1.35, "D": 1.3, "E": 1.3, "H": 0.7, "J": 0.7, "K": 0.7},
    "U99006": {**dict.fromkeys("HJKLMNPRS", 0.75), **dict.fromkeys("DEFG", 0.9)},
}
PRACTICE_NAMES = {
    "U99001": ("Westbrook Surgery", "Ashcombe Medical Practice", "Beechwood Health Centre",
               "Kingsmead Family Practice", "The Willows Surgery", "Elm Tree Medical Centre"),
    "U99002": ("Castle Street Surgery", "Market Fields Medical Centre", "St Anne's Health Centre",
               "Foundry Lane Practice", "Cathedral View Surgery", "Old Mill Medical Group",
               "Queen's Road Surgery"),
    "U99003": ("Eastgate Park Surgery", "Hollins Medical Centre", "Moorbridge Health Centre",
               "Victoria Road Surgery", "Station Road Practice", "Greenway Medical Centre"),
    "U99004": ("Southvale Surgery", "Little Easton Practice", "Harrowden Medical Centre",
               "Meadow Vale Surgery", "The Old Rectory Surgery"),
    "U99005": ("Wharfside Medical Centre", "Millbank Surgery", "Riverside North Health Centre",
               "Tannery Row Practice", "Bridge Street Surgery", "Canal Side Medical Centre"),
    "U99006": ("Fenwick Surgery", "Lark Hill Medical Centre", "Cotes End Practice",
               "Brackley Green Surgery", "Orchard Lane Surgery"),
}

# ---------------------------------------------------------------------------------------------- codes
# (code, term, relative weight when drawn; weight 0 = in the codelist but never used)
DEPRESSION = (
    ("35489007", "Depressive disorder", 22), ("370143000", "Major depressive disorder", 8),
    ("310495003", "Mild depression", 15), ("310496002", "Moderate depression", 14),
    ("310497006", "Severe depression", 5), ("36923009", "Major depression, single episode", 6),
    ("191616006", "Recurrent depression", 8), ("87414006", "Reactive depression (situational)", 7),
    ("78667006", "Dysthymia", 4), ("192080009", "Chronic depression", 4),
    ("231504006", "Mixed anxiety and depressive disorder", 7),
    ("832007", "Moderate major depression", 0), ("40379007", "Mild recurrent major depression", 0),
    ("18818009", "Moderate recurrent major depression", 0),
    ("268621008", "Recurrent major depressive episodes", 0), ("247803002", "Seasonal affective disorder", 0),
)
DEPRESSION_RESOLVED = (("196381000000100", "Depression resolved", 1),)
HYPERTENSION = (
    ("38341003", "Hypertensive disorder, systemic arterial", 50), ("59621000", "Essential hypertension", 32),
    ("1201005", "Benign essential hypertension", 10), ("10725009", "Benign hypertension", 6),
    ("78975002", "Malignant essential hypertension", 2),
)
HYPERTENSION_RESOLVED = (("162659009", "Hypertension resolved", 1),)
SMI = (
    ("58214004", "Schizophrenia", 30), ("64905009", "Paranoid schizophrenia", 10),
    ("13746004", "Bipolar disorder", 25), ("371596008", "Bipolar I disorder", 8),
    ("83225003", "Bipolar II disorder", 5), ("69322001", "Psychotic disorder", 15),
    ("68890003", "Schizoaffective disorder", 7),
)
SMI_REMISSION = (
    ("4926007", "Schizophrenia in remission", 4), ("85248005", "Bipolar disorder in remission", 3),
    ("41836007", "Bipolar disorder in full remission", 3),
)
SOCIAL_PRESCRIBING = (("871731000000106", "Referral to social prescribing service", 1),)
NOISE = (  # in no codelist
    ("271649006", "Systolic blood pressure", 25), ("271650006", "Diastolic blood pressure", 25),
    ("75367002", "Blood pressure", 10), ("27113001", "Body weight", 14), ("60621009", "Body mass index", 12),
    ("77176002", "Smoker", 4), ("8517006", "Ex-smoker", 4), ("266919005", "Never smoked tobacco", 6),
)
# readings (events with a value) and care codes for the indicators (codes and terms for illustration)
SYSTOLIC_BP = (("72313002", "Systolic arterial pressure", 1), ("407554009", "Sitting systolic blood pressure", 0))
DIASTOLIC_BP = (("1091811000000102", "Diastolic arterial pressure", 1),
                ("407555005", "Sitting diastolic blood pressure", 0))
HBA1C = (("999791000000106", "Haemoglobin A1c level - IFCC standardised", 1),)
SMI_HEALTH_CHECK = (("1366341000000100", "Serious mental illness annual physical health check", 1),)
ANTIDEPRESSANTS = (  # dm+d products
    ("39113611000001102", "Sertraline 50mg tablets", 30), ("39105211000001100", "Citalopram 20mg tablets", 22),
    ("39112111000001102", "Fluoxetine 20mg capsules", 18), ("39116111000001107", "Mirtazapine 15mg tablets", 14),
    ("39108611000001103", "Amitriptyline 10mg tablets", 10), ("39695211000001102", "Venlafaxine 75mg tablets", 6),
)
CODELISTS = {
    "depression": DEPRESSION, "depression_resolved": DEPRESSION_RESOLVED,
    "hypertension": HYPERTENSION, "hypertension_resolved": HYPERTENSION_RESOLVED,
    "smi": SMI, "smi_remission": SMI_REMISSION, "social_prescribing": SOCIAL_PRESCRIBING,
    "systolic_bp": SYSTOLIC_BP, "diastolic_bp": DIASTOLIC_BP, "hba1c": HBA1C, "smi_health_check": SMI_HEALTH_CHECK,
    "antidepressants": ANTIDEPRESSANTS,
}
ALL_CODES = [c for group in (*CODELISTS.values(), NOISE) for c, _, _ in group]
CODE_INDEX = {c: i for i, c in enumerate(ALL_CODES)}

# --------------------------------------------------------------------------------------- geography


@dataclass(frozen=True)
class Geography:
    lsoa_codes: list[str]
    lsoa_nb: np.ndarray          # neighbourhood index per LSOA
    lsoa_decile: np.ndarray
    lsoa_rank: np.ndarray
    lsoa_score: np.ndarray
    lsoa_weight: np.ndarray      # share of the population
    lsoa_eth_cum: np.ndarray     # (n_lsoa, 16) cumulative ethnic-code probabilities
    lsoa_xy: np.ndarray          # cell (column, row)
    nb_codes: list[str]
    nb_names: list[str]
    nb_pcn: np.ndarray
    prac_codes: list[str]
    prac_names: list[str]
    prac_pcn: np.ndarray
    prac_cum: np.ndarray         # (n_lsoa, n_practices) cumulative P(practice | LSOA)
    prac_other: np.ndarray       # another practice of the same PCN (for movers)
    prac_eth_missing: np.ndarray
    prac_record: np.ndarray      # recording factor (outlier 0.6)
    outside_codes: list[str]     # LSOA codes outside the ICS


N_COL, N_ROW = 16, 14
CELL_LON, CELL_LAT = 0.02, 0.0145
LON0, LAT0 = 1.60, 54.0


def _geography() -> Geography:
    g = np.random.default_rng(GEO_SEED)
    # 24 neighbourhood seeds on a jittered 6 x 4 grid; PCN = 2 x 2 block of seeds
    nb_codes, nb_names, nb_pcn, nb_dec, seeds = [], [], [], [], []
    for pi, (pcn, _, (bx, by)) in enumerate(PCNS):
        for k, (name, dec) in enumerate(NEIGHBOURHOODS[pcn]):
            gx, gy = 2 * bx + k % 2, 2 * by + k // 2
            seeds.append(((gx + 0.5) * N_COL / 6 + g.uniform(-0.6, 0.6), (gy + 0.5) * N_ROW / 4 + g.uniform(-0.6, 0.6)))
            nb_codes.append(f"NH{len(nb_codes) + 1:02d}")
            nb_names.append(name)
            nb_pcn.append(pi)
            nb_dec.append(dec)
    seeds_a, nb_pcn_a, nb_dec_a = np.array(seeds), np.array(nb_pcn), np.array(nb_dec)
    cx, cy = np.meshgrid(np.arange(N_COL) + 0.5, np.arange(N_ROW) + 0.5)
    cells = np.column_stack([cx.ravel(), cy.ravel()])
    d2 = ((cells[:, None, :] - seeds_a[None, :, :]) ** 2).sum(-1)
    cell_nb = d2.argmin(1)
    order = np.lexsort((np.arange(len(cells)), cell_nb))     # LSOAs numbered by neighbourhood
    cells, cell_nb = cells[order], cell_nb[order]
    n_lsoa = len(cells)
    nums = np.sort(g.choice(np.arange(1000, 9999), size=n_lsoa + 40, replace=False))
    perm = g.permutation(n_lsoa + 40)
    lsoa_codes = [f"E0199{nums[i]:04d}" for i in perm[:n_lsoa]]
    outside_codes = [f"E0199{nums[i]:04d}" for i in perm[n_lsoa:]]
    # deprivation: decile around the neighbourhood's mean, rank within the decile band, score from rank
    dec = np.clip(np.rint(nb_dec_a[cell_nb] + g.normal(0, 1.3, n_lsoa)), 1, 10).astype(np.int64)
    lo = np.floor((dec - 1) * N_LSOA_ENGLAND / 10).astype(np.int64) + 1
    hi = np.floor(dec * N_LSOA_ENGLAND / 10).astype(np.int64)
    rank = lo + np.floor(g.random(n_lsoa) * (hi - lo + 1)).astype(np.int64)
    for _ in range(5):   # make ranks distinct
        _, first = np.unique(rank, return_index=True)
        dup = np.setdiff1d(np.arange(n_lsoa), first)
        if dup.size == 0:
            break
        rank[dup] = np.minimum(rank[dup] + 1, hi[dup])
    score = np.round(np.interp((rank - 0.5) / N_LSOA_ENGLAND, IMD_Q, IMD_SCORE_Q), 3)
    weight = np.exp(g.normal(0, 0.18, n_lsoa))
    weight /= weight.sum()
    # ethnicity: census mix for the decile x the PCN's tilt
    pcn_of_lsoa = nb_pcn_a[cell_nb]
    tilt = np.ones((len(PCNS), len(ETH_CODES)))
    for pi, (pcn, _, _) in enumerate(PCNS):
        for letter, mult in ETH_TILT[pcn].items():
            tilt[pi, list(ETH_CODES).index(letter)] = mult
    within = ETH_WITHIN / np.bincount(ETH_GROUP, weights=ETH_WITHIN)[ETH_GROUP]
    p = ETH_BY_DECILE[dec - 1][:, ETH_GROUP] * within[None, :] * tilt[pcn_of_lsoa]
    p *= np.exp(g.normal(0, 0.25, p.shape))
    p /= p.sum(1, keepdims=True)
    eth_cum = np.cumsum(p, 1)
    eth_cum[:, -1] = 1.0
    # practices: placed in their PCN's neighbourhoods; P(practice | LSOA) ~ size x exp(-distance / 1.3 cells)
    prac_codes, prac_names, prac_pcn, prac_xy = [], [], [], []
    nums = g.choice(np.arange(10, 9999), size=60, replace=False)
    for pi, (pcn, _, _) in enumerate(PCNS):
        nbs = np.flatnonzero(nb_pcn_a == pi)
        for k, name in enumerate(PRACTICE_NAMES[pcn]):
            home = nbs[k % len(nbs)]
            prac_names.append(name)
            prac_pcn.append(pi)
            prac_xy.append(seeds_a[home] + g.uniform(-0.8, 0.8, 2))
    codes = [f"Y9{n:04d}" for n in nums[: len(prac_names)]]
    codes[prac_names.index("Orchard Lane Surgery")] = OUTLIER_PRACTICE
    prac_codes = codes
    prac_pcn_a, prac_xy_a = np.array(prac_pcn), np.array(prac_xy)
    size = np.exp(g.normal(0, 0.45, len(prac_codes)))
    dist = np.sqrt(((cells[:, None, :] - prac_xy_a[None, :, :]) ** 2).sum(-1))
    attract = size[None, :] * np.exp(-dist / 1.3)
    prac_cum = np.cumsum(attract / attract.sum(1, keepdims=True), 1)
    prac_cum[:, -1] = 1.0
    other = np.empty(len(prac_codes), dtype=np.int64)
    for i in range(len(prac_codes)):
        same = np.flatnonzero(prac_pcn_a == prac_pcn_a[i])
        other[i] = same[(np.searchsorted(same, i) + 1) % len(same)]
    missing = np.clip(np.exp(g.normal(np.log(0.085), 0.45, len(prac_codes))), 0.03, 0.20)
    record = np.minimum(np.exp(g.normal(0, 0.06, len(prac_codes))), 1.0 / 0.95)
    record[prac_codes.index(OUTLIER_PRACTICE)] = OUTLIER_FACTOR
    return Geography(lsoa_codes, cell_nb, dec, rank, score, weight, eth_cum, cells, nb_codes, nb_names,
                     nb_pcn_a, prac_codes, prac_names, prac_pcn_a, prac_cum, other, missing, record,
                     outside_codes)


def _rowwise_choice(rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per element of `rows` from the categorical distribution in row `rows[i]` of `cum`."""
    r, k = cum.shape
    flat = (cum + np.arange(r)[:, None]).ravel()
    idx = np.searchsorted(flat, rows + rng.random(rows.size), side="right") - rows * k
    return np.clip(idx, 0, k - 1)


# --------------------------------------------------------------------------------------------- patients


@dataclass
class Patients:
    sex: np.ndarray          # index into SEX_CODES
    dob: np.ndarray          # days
    lsoa: np.ndarray         # true LSOA index (for the models)
    lsoa_out: np.ndarray     # what is written: >= 0 LSOA index, -1 empty, -2 - k outside code k
    eth: np.ndarray          # true ethnic code index
    eth_out: np.ndarray      # written: code index, 16 = Z, 17 = 99, -1 empty
    prac: np.ndarray         # first practice
    quint: np.ndarray        # true IMD quintile 1..5


def _patients(rng: np.random.Generator, geo: Geography, n: int) -> Patients:
    sex = rng.choice(4, size=n, p=SEX_P).astype(np.int8)
    bands = np.empty(n, dtype=np.int64)
    for s, pyr in ((0, PYRAMID_F), (1, PYRAMID_M), (2, PYRAMID_F + PYRAMID_M), (3, PYRAMID_F + PYRAMID_M)):
        m = sex == s
        bands[m] = rng.choice(pyr.size, size=int(m.sum()), p=pyr / pyr.sum())
    months = bands * 60 + rng.integers(0, 60, n)
    old = bands == PYRAMID_F.size - 1     # 95+: 95 plus an exponential, capped at 106
    months[old] = 95 * 12 + np.minimum(rng.exponential(36, int(old.sum())), 11 * 12).astype(np.int64)
    dob = (EXTRACT_MONTH - months).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    lsoa = rng.choice(len(geo.lsoa_codes), size=n, p=geo.lsoa_weight)
    prac = _rowwise_choice(rng, geo.prac_cum, lsoa)
    eth = _rowwise_choice(rng, geo.lsoa_eth_cum, lsoa)
    u = rng.random(n)
    lsoa_out = lsoa.copy()
    lsoa_out[u < 0.010] = -1
    outside = (u >= 0.010) & (u < 0.015)
    lsoa_out[outside] = -2 - rng.integers(0, len(geo.outside_codes), int(outside.sum()))
    eth_out = eth.copy()
    miss = rng.random(n) < geo.prac_eth_missing[prac]
    kind = rng.choice(3, size=int(miss.sum()), p=[0.45, 0.10, 0.45])
    eth_out[miss] = np.array([16, 17, -1])[kind]
    quint = (geo.lsoa_decile[lsoa] + 1) // 2
    return Patients(sex, dob, lsoa, lsoa_out, eth, eth_out, prac, quint)


# ------------------------------------------------------------------------------------------ registrations


def _registrations(rng: np.random.Generator, geo: Geography, p: Patients):
    n = p.dob.size
    u = rng.random(n)
    newborn = p.dob + 60 > WINDOW_START
    historical = ~newborn & (u < 0.01)
    incoming = ~newborn & (u >= 0.01) & (u < 0.19)      # the rest (81%) were registered before the window

    frm = np.empty(n, dtype=np.int64)
    delay = rng.integers(7, 61, n)
    back = np.rint(rng.exponential(12 * YEAR, n)).astype(np.int64)
    frm[:] = np.maximum(WINDOW_START - 1 - back, p.dob + delay)
    frm[newborn] = np.minimum(p.dob[newborn] + delay[newborn], EXTRACT)
    win_lo = np.maximum(WINDOW_START, p.dob + delay)
    frm[incoming] = np.minimum(win_lo[incoming] + (rng.random(int(incoming.sum())) * (EXTRACT - win_lo[incoming])).astype(np.int64), EXTRACT)
    # a few join exactly on a period date
    on_p = incoming & (rng.random(n) < 0.02)
    pdate = PERIODS[rng.integers(0, 3, n)]
    ok = on_p & (pdate >= p.dob)
    frm[ok] = pdate[ok]

    to = np.full(n, -1, dtype=np.int64)
    hist_end = frm + (rng.random(n) * np.maximum(WINDOW_START - 1 - frm, 0)).astype(np.int64)
    to[historical] = hist_end[historical]
    v = rng.random(n)
    active = ~historical
    leaver = active & (v < 0.15)
    mover = active & (v >= 0.15) & (v < 0.19)
    lo = np.maximum(frm, WINDOW_START)
    end = lo + (rng.random(n) * (EXTRACT - lo)).astype(np.int64)
    # some close exactly on a period date
    on_p = (leaver | mover) & (rng.random(n) < 0.03) & (pdate >= lo)
    end[on_p] = pdate[on_p]
    to[leaver | mover] = end[leaver | mover]

    # movers: a second spell at another practice, usually after a short gap, sometimes overlapping
    mi = np.flatnonzero(mover)
    m = mi.size
    prac2 = _rowwise_choice(rng, geo.prac_cum, p.lsoa[mi])
    same = prac2 == p.prac[mi]
    prac2[same] = geo.prac_other[prac2[same]]
    w = rng.random(m)
    gap = rng.integers(0, 91, m)
    frm2 = end[mi] + gap
    overlap = w < 0.12
    frm2[overlap] = np.maximum(end[mi][overlap] - rng.integers(1, 91, int(overlap.sum())), frm[mi][overlap])
    same_day = w < 0.006
    frm2[same_day] = frm[mi][same_day]
    frm2 = np.minimum(frm2, EXTRACT)

    # deaths (Gompertz), for patients whose last spell is open
    last_from = frm.copy()
    last_from[mi] = frm2
    is_open = active & ~leaver
    age_mid = (EXTRACT - 2 * YEAR - p.dob) / YEAR
    hazard = np.exp(-10.2 + 0.092 * np.clip(age_mid, 0, 110))
    start = np.maximum(WINDOW_START, last_from)
    exposure = np.maximum(EXTRACT - start, 0)
    die = is_open & (rng.random(n) < 1 - np.exp(-hazard * exposure / YEAR))
    dod = np.full(n, -1, dtype=np.int64)
    dod_all = start + (rng.random(n) * exposure).astype(np.int64)
    on_p = rng.random(n) < 0.02
    ok = on_p & (pdate >= start)
    dod_all[ok] = pdate[ok]
    dod[die] = dod_all[die]
    # after death: closed the same day (25%), within 30 days (45%) or left open (30%)
    r = rng.random(n)
    dto = np.where(r < 0.25, dod, np.where(r < 0.70, np.minimum(dod + rng.integers(1, 31, n), EXTRACT), -1))
    to2 = np.full(m, -1, dtype=np.int64)
    die_m = die[mi]
    to2[die_m] = dto[mi][die_m]
    single_dead = die.copy()
    single_dead[mi] = False
    to[single_dead] = dto[single_dead]

    reg_pid = np.concatenate([np.arange(n), mi])
    reg_prac = np.concatenate([p.prac, prac2])
    reg_from = np.concatenate([frm, frm2])
    reg_to = np.concatenate([to, to2])
    order = np.lexsort((reg_from, reg_pid))
    return (reg_pid[order], reg_prac[order], reg_from[order], reg_to[order]), dod


# ------------------------------------------------------------------------------------------------ events


def _code_sampler(group, rng, size):
    used = [(c, w) for c, _, w in group if w > 0]
    pr = np.array([w for _, w in used], dtype=float)
    idx = rng.choice(len(used), size=size, p=pr / pr.sum())
    return np.array([CODE_INDEX[c] for c, _ in used], dtype=np.int16)[idx]


def _single(group) -> int:
    return CODE_INDEX[group[0][0]]


def _uniform_between(rng, lo, hi, size=None):
    """Whole days uniform on [lo, hi] (arrays, or numbers with `size`)."""
    return lo + (rng.random(np.size(lo) if size is None else size) * (hi - lo + 1)).astype(np.int64)


def _events(rng: np.random.Generator, geo: Geography, p: Patients, dod: np.ndarray, truth: dict | None = None):
    """Diagnosis, resolution, referral and noise events. `truth` (when given) receives who truly has and who has a
    recorded depression, hypertension and SMI, for the readings drawn afterwards (pipeline.demo._readings)."""
    truth = {} if truth is None else truth
    n = p.dob.size
    pid_parts, code_parts, date_parts = [], [], []

    def add(pidx, codes, dates):
        pid_parts.append(np.asarray(pidx, dtype=np.int64))
        code_parts.append(np.broadcast_to(np.asarray(codes, dtype=np.int16), np.shape(pidx)).copy())
        date_parts.append(np.asarray(dates, dtype=np.int64))

    age_ext = (EXTRACT - p.dob) / YEAR
    grp = ETH_GROUP[p.eth]
    black = grp == 3
    south_asian = np.isin(p.eth, [7, 8, 9])        # H, J, K
    pcn = geo.prac_pcn[p.prac]
    prac_rec = geo.prac_record[p.prac]

    # ---------------------------------------------------------------- depression
    sex_rr = np.array([1.0, 0.60, 0.8, 0.8])[p.sex]
    imd_rr = np.array([0, 1.35, 1.18, 1.0, 0.9, 0.82])[p.quint]
    eth_rr = np.array([1.0, 1.1, 0.8, 0.82, 0.8])[grp]
    age_rr = np.interp(age_ext, [16, 24, 30, 45, 65, 80, 90], [0.75, 0.85, 1.1, 1.1, 0.85, 0.7, 0.65])
    q = np.clip(0.222 * sex_rr * imd_rr * eth_rr * age_rr, 0, 0.9)
    true = (age_ext >= 16) & (rng.random(n) < q)
    ti = np.flatnonzero(true)
    start = np.maximum(p.dob[ti] + int(16 * YEAR), _day("1990-01-01"))
    d1 = start + ((EXTRACT - start) * rng.random(ti.size)).astype(np.int64)
    # recording: usual, practice factor, and the planted under-recording of Black patients
    rec_p = np.clip(0.95 * prac_rec[ti], 0, 1)
    u = rng.random(ti.size)
    rec = u < rec_p
    planted_imp = black[ti] & (pcn[ti] == PCN_CODES.index(PLANTED_DEP_IMPROVING))
    planted_flat = black[ti] & (pcn[ti] == PCN_CODES.index(PLANTED_DEP_FLAT))
    f1, f2, f3 = DEP_BLACK_IMPROVING
    rec[planted_flat] = u[planted_flat] < DEP_BLACK_FLAT
    rec[planted_imp] = u[planted_imp] < f3
    catch1 = planted_imp & (u >= f1) & (u < f2)
    catch2 = planted_imp & (u >= f2) & (u < f3)
    d1[catch1] = np.maximum(d1[catch1], _uniform_between(rng, PERIODS[0] + 1, PERIODS[1], int(catch1.sum())))
    d1[catch2] = np.maximum(d1[catch2], _uniform_between(rng, PERIODS[1] + 1, PERIODS[2], int(catch2.sum())))
    ri, d1 = ti[rec], d1[rec]
    truth["dep_true"], truth["dep_rec"] = ti, ri
    add(ri, _code_sampler(DEPRESSION, rng, ri.size), d1)
    # resolution (some the same day), re-diagnosis, extra codes before resolution
    k = ri.size
    res = rng.random(k) < 0.22
    res_date = d1 + np.rint(rng.exponential(700, k)).astype(np.int64)
    sameday = res & (rng.random(k) < 0.02)
    res_date[sameday] = d1[sameday]
    res &= res_date <= EXTRACT
    add(ri[res], _single(DEPRESSION_RESOLVED), res_date[res])
    rediag = res & (rng.random(k) < 0.30)
    d2 = res_date + 1 + np.rint(rng.exponential(500, k)).astype(np.int64)
    rediag &= d2 <= EXTRACT
    add(ri[rediag], _code_sampler(DEPRESSION, rng, int(rediag.sum())), d2[rediag])
    extra = (rng.random(k) < 0.35) & ~(res & (res_date == d1))
    upper = np.where(res, res_date - 1, EXTRACT)
    ex = extra & (upper >= d1)
    add(ri[ex], _code_sampler(DEPRESSION, rng, int(ex.sum())), _uniform_between(rng, d1[ex], upper[ex]))

    # ---------------------------------------------------------------- hypertension (onset age, life course)
    hyp_age = np.array([0, 18, 30, 40, 50, 60, 70, 80, 90, 110])
    hyp_cum = np.array([0, 0.001, 0.012, 0.05, 0.16, 0.32, 0.50, 0.63, 0.72, 0.77])
    sex_rr = np.array([0.93, 1.08, 1.0, 1.0])[p.sex]
    eth_rr = np.where(black, 1.45, np.where(south_asian, 1.30, np.where(p.eth == 10, 1.15, 1.0)))
    imd_rr = np.array([0, 1.12, 1.06, 1.0, 1.0, 0.95])[p.quint]
    m = sex_rr * eth_rr * imd_rr
    v = rng.random(n) / m
    has = v < hyp_cum[-1]
    hi_ = np.flatnonzero(has)
    onset_age = np.interp(v[hi_], hyp_cum, hyp_age)
    d1 = p.dob[hi_] + np.rint(onset_age * YEAR + rng.exponential(300, hi_.size)).astype(np.int64)
    rec_p = np.clip(0.95 * prac_rec[hi_] * np.where(p.quint[hi_] == 1, HYP_Q1_FACTOR, 1.0), 0, 1)
    rec = (rng.random(hi_.size) < rec_p) & (d1 <= EXTRACT)
    truth["htn_unrecorded"] = hi_[~rec & (d1 <= EXTRACT)]
    ri, d1 = hi_[rec], d1[rec]
    truth["htn_rec"], truth["htn_rec_date"] = ri, d1
    add(ri, _code_sampler(HYPERTENSION, rng, ri.size), d1)
    k = ri.size
    res_date = d1 + np.rint(rng.exponential(3 * YEAR, k)).astype(np.int64)
    res = (rng.random(k) < 0.04) & (res_date <= EXTRACT)
    add(ri[res], _single(HYPERTENSION_RESOLVED), res_date[res])
    d2 = res_date + 1 + np.rint(rng.exponential(2 * YEAR, k)).astype(np.int64)
    rediag = res & (rng.random(k) < 0.2) & (d2 <= EXTRACT)
    add(ri[rediag], _code_sampler(HYPERTENSION, rng, int(rediag.sum())), d2[rediag])
    upper = np.where(res, res_date - 1, EXTRACT)
    ex = (rng.random(k) < 0.40) & (upper >= d1)
    add(ri[ex], _code_sampler(HYPERTENSION, rng, int(ex.sum())), _uniform_between(rng, d1[ex], upper[ex]))

    # ---------------------------------------------------------------- SMI
    smi_age = np.array([0, 14, 18, 25, 35, 50, 110])
    smi_cum = np.array([0, 0, 0.0012, 0.0055, 0.0095, 0.0125, 0.0135])
    sex_rr = np.array([0.92, 1.08, 1.0, 1.0])[p.sex]
    eth_rr = np.array([1.0, 1.4, 1.0, 2.5, 1.2])[grp]
    imd_rr = np.array([0, 1.7, 1.3, 1.0, 0.8, 0.65])[p.quint]
    v = rng.random(n) / (sex_rr * eth_rr * imd_rr)
    has = v < smi_cum[-1]
    si = np.flatnonzero(has)
    onset_age = np.interp(v[si], smi_cum[1:], smi_age[1:])
    d1 = p.dob[si] + np.rint(onset_age * YEAR + rng.exponential(200, si.size)).astype(np.int64)
    rec = (rng.random(si.size) < np.clip(0.95 * prac_rec[si], 0, 1)) & (d1 <= EXTRACT)
    ri, d1 = si[rec], d1[rec]
    truth["smi_rec"], truth["smi_rec_date"] = ri, d1
    add(ri, _code_sampler(SMI, rng, ri.size), d1)
    k = ri.size
    rem_date = d1 + np.rint(rng.exponential(4 * YEAR, k)).astype(np.int64)
    rem = (rng.random(k) < 0.10) & (rem_date <= EXTRACT)
    add(ri[rem], _code_sampler(SMI_REMISSION, rng, int(rem.sum())), rem_date[rem])
    upper = np.where(rem, rem_date - 1, EXTRACT)
    ex = (rng.random(k) < 0.6) & (upper >= d1)
    add(ri[ex], _code_sampler(SMI, rng, int(ex.sum())), _uniform_between(rng, d1[ex], upper[ex]))

    # ---------------------------------------------------------------- social prescribing referrals
    sp = (age_ext >= 18) & (rng.random(n) < np.array([0, 0.045, 0.035, 0.025, 0.02, 0.015])[p.quint])
    spi = np.flatnonzero(sp)
    two = rng.random(spi.size) < 0.2
    spi = np.concatenate([spi, spi[two]])
    add(spi, _single(SOCIAL_PRESCRIBING), _uniform_between(rng, _day("2021-01-01"), EXTRACT, spi.size))

    # ---------------------------------------------------------------- noise (codes in no codelist)
    lam = np.interp(age_ext, [0, 17, 18, 40, 65, 110], [0.2, 0.3, 0.8, 1.2, 2.5, 3.0])
    cnt = rng.poisson(lam)
    ni = np.repeat(np.arange(n), cnt)
    lo = np.maximum(p.dob[ni], _day("2016-01-01"))
    add(ni, _code_sampler(NOISE, rng, ni.size), _uniform_between(rng, lo, EXTRACT))

    pid = np.concatenate(pid_parts)
    code = np.concatenate(code_parts)
    date = np.minimum(np.concatenate(date_parts), EXTRACT)
    keep = (dod[pid] < 0) | (date <= dod[pid])      # nothing after death
    pid, code, date = pid[keep], code[keep], date[keep]
    order = np.lexsort((code, date, pid))
    return pid[order], code[order], date[order]


def _readings(rng: np.random.Generator, geo: Geography, p: Patients, dod: np.ndarray, truth: dict):
    """Events with values and care codes for the indicators: blood pressure (systolic and diastolic on the same
    day, sometimes twice that day), HbA1c, SMI health checks and antidepressant issues (dm+d), with the planted
    gaps in the module docstring. Returns (patient index, code index, date, value) arrays (value NaN: none)."""
    pid_parts, code_parts, date_parts, value_parts = [], [], [], []

    def add(pidx, codes, dates, values=None):
        pidx = np.asarray(pidx, dtype=np.int64)
        pid_parts.append(pidx)
        code_parts.append(np.broadcast_to(np.asarray(codes, dtype=np.int16), pidx.shape).copy())
        date_parts.append(np.asarray(dates, dtype=np.int64))
        value_parts.append(np.full(pidx.size, np.nan) if values is None else np.round(np.asarray(values, float), 1))

    n = p.dob.size
    age_ext = (EXTRACT - p.dob) / YEAR
    adult = age_ext >= 18
    pcn = geo.prac_pcn[p.prac]
    sys_code, dia_code = _single(SYSTOLIC_BP), _single(DIASTOLIC_BP)

    def bp_pairs(pidx, dates, systolic, diastolic):
        add(pidx, sys_code, dates, np.rint(systolic))
        add(pidx, dia_code, dates, np.rint(diastolic))

    # ---------------------------------------------------------------- hypertension register: annual checks
    reg, reg_from = truth["htn_rec"], truth["htn_rec_date"]
    controlled_p = np.full(reg.size, BP_CONTROLLED)
    controlled_p[p.quint[reg] == 1] *= BP_Q1_FACTOR
    planted = (pcn[reg] == PCN_CODES.index(BP_PLANTED_PCN)) & (ETH_GROUP[p.eth[reg]] == BP_PLANTED_GROUP)
    controlled_p[planted] *= BP_PLANTED_FACTOR
    target = np.where(age_ext[reg] >= 81, 150.0, 140.0)
    offset = rng.integers(0, 365, reg.size)
    for year_start in (_day("2022-04-01"), _day("2023-04-01"), _day("2024-04-01"), _day("2025-04-01")):
        for extra in (False, True):
            attend = rng.random(reg.size) < (0.15 if extra else 0.86)
            day = year_start + (rng.integers(0, 365, reg.size) if extra else offset)
            take = attend & (day >= reg_from) & (day <= EXTRACT)
            ti = np.flatnonzero(take)
            ok = rng.random(ti.size) < controlled_p[ti]
            systolic = np.where(ok, np.minimum(rng.normal(127, 7, ti.size), target[ti]),
                                target[ti] + 1 + rng.exponential(11, ti.size))
            diastolic = np.where(ok, np.minimum(rng.normal(77, 6, ti.size), 90), rng.normal(86, 7, ti.size))
            bp_pairs(reg[ti], day[ti], systolic, diastolic)
            again = rng.random(ti.size) < 0.12       # a second reading the same day, usually lower
            ai = ti[again]
            bp_pairs(reg[ai], day[ai], systolic[again] - rng.exponential(6, ai.size), diastolic[again] - rng.exponential(3, ai.size))

    # ---------------------------------------------------------------- raised readings without a diagnosis
    hot = geo.lsoa_nb[p.lsoa] == geo.nb_names.index(HIGH_BP_NEIGHBOURHOOD)
    unrec = truth["htn_unrecorded"]
    unrec = unrec[adult[unrec]]
    raised = np.concatenate([unrec[rng.random(unrec.size) < np.where(hot[unrec], 0.85, 0.40)],
                             np.flatnonzero(adult & (rng.random(n) < np.where(hot, 0.05, 0.006)))])
    k = rng.integers(1, 5, raised.size)
    ri = np.repeat(raised, k)
    day = _uniform_between(rng, READINGS_START, EXTRACT, ri.size)
    bp_pairs(ri, day, 141 + rng.exponential(12, ri.size), rng.normal(88, 8, ri.size))

    # ---------------------------------------------------------------- routine checks of other adults
    routine = np.flatnonzero(adult & (rng.random(n) < 0.08))
    day = _uniform_between(rng, READINGS_START, EXTRACT, routine.size)
    bp_pairs(routine, day, rng.normal(124, 13, routine.size), rng.normal(78, 9, routine.size))

    # ---------------------------------------------------------------- HbA1c (not in the default indicators)
    tested = np.flatnonzero((age_ext >= 40) & (rng.random(n) < 0.06))
    ti = np.repeat(tested, rng.integers(1, 4, tested.size))
    add(ti, _single(HBA1C), _uniform_between(rng, READINGS_START, EXTRACT, ti.size),
        np.maximum(rng.normal(48, 10, ti.size), 25))

    # ---------------------------------------------------------------- SMI annual health checks
    smi, smi_from = truth["smi_rec"], truth["smi_rec_date"]
    check_p = np.where(p.prac[smi] == geo.prac_names.index(SMI_CHECK_PRACTICE), SMI_CHECK_PRACTICE_P, SMI_CHECK_P)
    for year_start in (_day("2022-04-01"), _day("2023-04-01"), _day("2024-04-01"), _day("2025-04-01")):
        day = year_start + rng.integers(0, 365, smi.size)
        take = (rng.random(smi.size) < check_p) & (day >= smi_from) & (day <= EXTRACT)
        add(smi[take], _code_sampler(SMI_HEALTH_CHECK, rng, int(take.sum())), day[take])

    # ---------------------------------------------------------------- antidepressant issues (courses of 28 days)
    black = ETH_GROUP[p.eth] == 3
    dep_true, dep_rec = truth["dep_true"], truth["dep_rec"]
    untreated_record = np.setdiff1d(dep_true, dep_rec)
    courses = np.concatenate([
        dep_rec[rng.random(dep_rec.size) < 0.35],
        untreated_record[rng.random(untreated_record.size) < np.where(black[untreated_record], 0.55, 0.25)],
        np.flatnonzero(adult & (rng.random(n) < 0.01)),          # e.g. for pain or sleep
    ])
    k = rng.integers(1, 8, courses.size)
    ci = np.repeat(courses, k)
    start = np.repeat(_uniform_between(rng, READINGS_START, EXTRACT, courses.size), k)
    step = np.arange(ci.size) - np.repeat(np.cumsum(k) - k, k)
    drug = np.repeat(_code_sampler(ANTIDEPRESSANTS, rng, courses.size), k)
    add(ci, drug, start + 28 * step)

    pid = np.concatenate(pid_parts)
    code = np.concatenate(code_parts)
    date = np.concatenate(date_parts)
    value = np.concatenate(value_parts)
    keep = (date <= EXTRACT) & (date >= p.dob[pid]) & ((dod[pid] < 0) | (date <= dod[pid]))
    return pid[keep], code[keep], date[keep], value[keep]


# ------------------------------------------------------------------------------------------------ writing


def _patient_ids(n: int, seed: int) -> pa.Array:
    """12 lower-case hex characters, distinct (an odd multiplier mod 2**48 is a bijection)."""
    g = np.random.default_rng([seed, 48])
    mult = np.uint64(int(g.integers(1 << 40, 1 << 47)) | 1)
    add = np.uint64(int(g.integers(0, 1 << 47)))
    with np.errstate(over="ignore"):
        vals = (np.arange(n, dtype=np.uint64) * mult + add) & np.uint64((1 << 48) - 1)
    shifts = np.arange(44, -1, -4, dtype=np.uint64)
    digits = ((vals[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.uint8)
    data = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[digits]
    offsets = np.arange(0, 12 * (n + 1), 12, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes()))


def _labels(labels: list[str], idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    ind = pa.array(idx.astype(np.int32), mask=null)
    return pa.array(labels, type=pa.string()).take(ind)


def _dates(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=null).cast(pa.date32())


def _write_extract(table: pa.Table, out: Path, stem: str, date_format: str | None) -> None:
    """ISO dates in Parquet (the default), or CSV with dates in `date_format`; a stale twin of the other kind is
    removed so that the directory never holds both."""
    for suffix in (".csv", ".parquet"):
        (out / f"{stem}{suffix}").unlink(missing_ok=True)
    if date_format is None:
        pq.write_table(table, out / f"{stem}.parquet", compression="zstd", row_group_size=1 << 20)
        return
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if name in ("date_of_birth", "date_of_death", "registered_from", "registered_to", "date"):
            col = pc.strftime(col.cast(pa.timestamp("s")), format=date_format)
        elif not pa.types.is_string(col.type):  # numbers (the readings' values) are written as text
            col = pc.cast(col, pa.string())
        cols[name] = pc.fill_null(col, "")
    pacsv.write_csv(pa.table(cols), out / f"{stem}.csv", pacsv.WriteOptions(quoting_style="none"))


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _boundaries(geo: Geography) -> dict:
    feats = []
    for i, code in enumerate(geo.lsoa_codes):
        c, r = geo.lsoa_xy[i] - 0.5
        x0, y1 = LON0 + c * CELL_LON, LAT0 - r * CELL_LAT
        x1, y0 = x0 + CELL_LON, y1 - CELL_LAT
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        ring = [[round(x, 5), round(y, 5)] for x, y in ring]
        nb = int(geo.lsoa_nb[i])
        feats.append({"type": "Feature",
                      "properties": {"lsoa_code": code, "neighbourhood_code": geo.nb_codes[nb],
                                     "neighbourhood_name": geo.nb_names[nb]},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "name": "demo_lsoa_boundaries", "features": feats}


SYNTHETIC_HEADING = "SYNTHETIC DATA - NOT REAL PATIENTS, PRACTICES OR PLACES"  # README.txt's first line


def _refuse_a_real_extract(out: Path) -> None:
    """Raw data is never overwritten: a folder that already holds an extract file demo-data did not write (its
    README.txt is not the synthetic data's) is refused; an earlier demo extract there is replaced."""
    found = [f"{stem}{suffix}" for stem in ("patients", "registrations", "events") for suffix in (".csv", ".parquet")
             if (out / f"{stem}{suffix}").exists()]
    if not found:
        return
    readme = out / "README.txt"
    try:
        ours = readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith(SYNTHETIC_HEADING)
    except OSError:
        ours = False
    if not ours:
        raise PipelineError(f"demo-data --out names a folder that already holds an extract ({found[0]}) that demo-data "
                            f"did not write; give it an empty folder (raw data is never overwritten)")


def generate(out: Path, n_patients: int = 250_000, seed: int = 20240331, date_format: str | None = None) -> None:
    """Write a synthetic raw directory (input contract, DESIGN.md) for `n_patients` patients into `out`.

    `date_format` (a strftime pattern, e.g. "%d/%m/%Y"): write patients, registrations and events as CSV with their
    dates in that format instead of ISO Parquet, as many GP system exports do (to try `check` and `[input]`)."""
    if int(n_patients) < 100:
        raise PipelineError("demo-data needs --patients of at least 100.")
    if int(seed) < 0:
        raise PipelineError("demo-data needs a non-negative --seed.")
    n, seed = int(n_patients), int(seed)
    if date_format is not None and not is_date_pattern(date_format):
        raise PipelineError(f"demo-data --date-format {date_format!r} is not a strftime pattern with a day, month "
                            f"and year (e.g. %d/%m/%Y).")
    out = Path(out)
    _refuse_a_real_extract(out)
    try:
        (out / "codelists").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(f"demo-data cannot create the output folder ({exc.strerror}).") from None
    geo = _geography()
    rng_p, rng_r, rng_e, rng_v = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    pats = _patients(rng_p, geo, n)
    (r_pid, r_prac, r_from, r_to), dod = _registrations(rng_r, geo, pats)
    truth: dict = {}
    e_pid, e_code, e_date = _events(rng_e, geo, pats, dod, truth)
    v_pid, v_code, v_date, v_value = _readings(rng_v, geo, pats, dod, truth)
    e_value = np.concatenate([np.full(e_pid.size, np.nan), v_value])
    e_pid, e_code, e_date = (np.concatenate(pair) for pair in ((e_pid, v_pid), (e_code, v_code), (e_date, v_date)))
    order = np.lexsort((e_value, e_code, e_date, e_pid))
    e_pid, e_code, e_date, e_value = e_pid[order], e_code[order], e_date[order], e_value[order]

    ids = _patient_ids(n, seed)
    lsoa_labels = geo.lsoa_codes + geo.outside_codes
    lsoa_idx = np.where(pats.lsoa_out >= 0, pats.lsoa_out, len(geo.lsoa_codes) + (-2 - pats.lsoa_out))
    eth_labels = list(ETH_CODES) + ["Z", "99"]
    patients = pa.table({
        "patient_id": ids,
        "sex": _labels(list(SEX_CODES), pats.sex.astype(np.int32)),
        "date_of_birth": _dates(pats.dob),
        "ethnicity": _labels(eth_labels, np.maximum(pats.eth_out, 0), pats.eth_out < 0),
        "lsoa_code": _labels(lsoa_labels, np.maximum(lsoa_idx, 0), pats.lsoa_out == -1),
        "date_of_death": _dates(np.maximum(dod, 0), dod < 0),
    })
    _write_extract(patients, out, "patients", date_format)
    registrations = pa.table({
        "patient_id": ids.take(pa.array(r_pid)),
        "practice_code": _labels(geo.prac_codes, r_prac),
        "registered_from": _dates(r_from),
        "registered_to": _dates(np.maximum(r_to, 0), r_to < 0),
    })
    _write_extract(registrations, out, "registrations", date_format)
    del registrations
    events = pa.table({
        "patient_id": ids.take(pa.array(e_pid)),
        "code": _labels(ALL_CODES, e_code.astype(np.int32)),
        "date": _dates(e_date),
        "value": pa.array(e_value, type=pa.float64(), mask=np.isnan(e_value)),
    })
    _write_extract(events, out, "events", date_format)
    n_events = events.num_rows
    del events

    pcn_name = [name for _, name, _ in PCNS]
    _write_csv(out / "practices.csv", ["practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"],
               sorted((geo.prac_codes[i], geo.prac_names[i], PCN_CODES[geo.prac_pcn[i]], pcn_name[geo.prac_pcn[i]],
                       ICB_CODE, ICB_NAME) for i in range(len(geo.prac_codes))))
    order = np.argsort(geo.lsoa_codes)
    _write_csv(out / "deprivation.csv", ["lsoa_code", "imd_score", "imd_rank", "imd_decile"],
               ((geo.lsoa_codes[i], f"{geo.lsoa_score[i]:.3f}", int(geo.lsoa_rank[i]), int(geo.lsoa_decile[i]))
                for i in order))
    _write_csv(out / "neighbourhoods.csv", ["lsoa_code", "neighbourhood_code", "neighbourhood_name"],
               ((geo.lsoa_codes[i], geo.nb_codes[geo.lsoa_nb[i]], geo.nb_names[geo.lsoa_nb[i]]) for i in order))
    for name, group in CODELISTS.items():
        _write_csv(out / "codelists" / f"{name}.csv", ["code", "term"], ((c, t) for c, t, _ in group))
    with open(out / "boundaries.geojson", "w", encoding="utf-8") as f:
        json.dump(_boundaries(geo), f, separators=(",", ":"))
        f.write("\n")
    (out / "README.txt").write_text(_readme(n, seed, patients.num_rows, r_pid.size, n_events, geo), encoding="utf-8")


def _readme(n: int, seed: int, n_pat: int, n_reg: int, n_ev: int, geo: Geography) -> str:
    doc = __doc__.split("The made-up ICS", 1)[1]
    return (
        f"{SYNTHETIC_HEADING}\n"
        "=======================================================\n\n"
        f"Made by `python -m pipeline demo-data --patients {n} --seed {seed}` (pipeline/demo.py).\n"
        "Every value is drawn from seeded random numbers and simple models calibrated on published\n"
        "England figures; the same command gives byte-identical files.\n\n"
        f"Rows: patients {n_pat}, registrations {n_reg}, events {n_ev}; practices {len(geo.prac_codes)}, "
        f"PCNs {len(PCNS)}, neighbourhoods {len(geo.nb_codes)}, LSOAs {len(geo.lsoa_codes)}.\n"
        "Periods it is built around: 2023-03-31, 2024-03-31, 2025-03-31 (pipeline/default.toml).\n"
        "Files follow the input contract (docs/input-contract.md in the repository); codelists/*.csv are in OpenCodelists format (code,term).\n\n"
        "The made-up ICS" + doc
    )
