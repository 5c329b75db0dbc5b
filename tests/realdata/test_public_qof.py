"""The public aggregate path on England's real QOF files (../shared/realdata): every published register and list
size is carried exactly into the prevalence table, intervals are right, and the outputs meet the contract.

Skipped as a whole when ../shared/realdata is absent; the repository never holds copies of those files.
Only the depression register (DEP) is built, to keep the module fast.
"""
from __future__ import annotations

import csv
import importlib.util
from collections import defaultdict
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = REPO_ROOT.parent / "shared" / "realdata"
if not (REAL / "qof" / "PREVALENCE_2223.csv").is_file():
    pytest.skip("../shared/realdata is not available", allow_module_level=True)

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import chi2, norm  # noqa: E402

from pipeline.public import run_public  # noqa: E402


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def out2223(tmp_path_factory):
    processed = tmp_path_factory.mktemp("public2223")
    run_public(REAL, "2022-23", processed, tmp_path_factory.mktemp("reports"), conditions=("DEP",))
    con = duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True)
    yield processed, con
    con.close()


@pytest.fixture(scope="module")
def published_dep():
    """Independent sums from the raw files with the csv module: {(area_type, code): (register, list size)}."""
    qof = [r for r in _rows(REAL / "qof" / "PREVALENCE_2223.csv") if r["GROUP_CODE"] == "DEP"]
    mapping = {r["PRACTICE_CODE"]: r for r in _rows(REAL / "mapping" / "MAPPING_NHS_GEOGRAPHIES_2223.csv")}
    sums: dict = defaultdict(lambda: [0, 0])
    for r in qof:
        reg, size = int(float(r["REGISTER"])), int(r["PRACTICE_LIST_SIZE"])
        m = mapping[r["PRACTICE_CODE"]]
        keys = [("practice", r["PRACTICE_CODE"]), ("icb", m["ICB_ODS_CODE"]), ("england", "E92000001")]
        if m["PCN_ODS_CODE"] != "U":
            keys.append(("pcn", m["PCN_ODS_CODE"]))
        for k in keys:
            sums[k][0] += reg
            sums[k][1] += size
    return {k: tuple(v) for k, v in sums.items()}


def test_every_area_equals_the_published_registers(out2223, published_dep):
    _, con = out2223
    got = {(a, c): (o, p) for a, c, o, p in con.execute(
        "select area_type, area_code, observed, population from prevalence "
        "where condition = 'DEP' and group_type = 'all' and group_value = 'All'").fetchall()}
    assert set(got) == set(published_dep)
    bad = [k for k in published_dep if got[k] != published_dep[k]]
    assert not bad, bad[:5]
    counts = defaultdict(int)
    for a, _ in got:
        counts[a] += 1
    assert counts["practice"] == 6378 and counts["icb"] == 42 and counts["england"] == 1
    assert got[("england", "E92000001")] == (6618681, sum(v[1] for k, v in published_dep.items() if k[0] == "practice"))


def test_period_and_keys(out2223):
    _, con = out2223
    periods = con.execute("select distinct period::varchar from prevalence").fetchall()
    assert periods == [("2023-03-31",)]
    assert con.execute("select count(*) from prevalence where area_type = 'pcn' and area_code = 'U'").fetchone()[0] == 0


def test_wilson_intervals_independent(out2223):
    _, con = out2223
    o, n, r, lo, hi = (np.array(v, float) for v in zip(*con.execute(
        "select observed, population, rate, rate_lower, rate_upper from prevalence").fetchall(), strict=True))
    z = norm.ppf(0.975)
    p = o / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    np.testing.assert_allclose(r, p, rtol=0, atol=1e-15)
    np.testing.assert_allclose(lo, np.where(o == 0, 0.0, (centre - half) / den), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hi, np.where(o == n, 1.0, (centre + half) / den), rtol=1e-9, atol=1e-12)


def test_expected_is_the_decile_rate_times_list_size(out2223):
    _, con = out2223
    df = con.execute("""select p.area_code, x.imd_decile, p.observed, p.population, p.expected, p.ratio,
                               p.ratio_lower, p.ratio_upper, p.missing
                        from prevalence p join public_practice x on x.practice_code = p.area_code
                        where p.area_type = 'practice' and p.condition = 'DEP' and p.group_type = 'all'""").df()
    known = df.loc[df["imd_decile"].notna()]
    rates = known.groupby("imd_decile")[["observed", "population"]].sum()
    rate = (rates["observed"] / rates["population"]).reindex(known["imd_decile"]).to_numpy()
    np.testing.assert_allclose(known["expected"], rate * known["population"], rtol=1e-12)
    unknown = df.loc[df["imd_decile"].isna()]
    national = df["observed"].sum() / df["population"].sum()
    np.testing.assert_allclose(unknown["expected"], national * unknown["population"], rtol=1e-12)
    # national deciles weighted by list size (the practice's largest list): each holds about a tenth of the patients
    largest: dict = defaultdict(int)
    for r in _rows(REAL / "qof" / "PREVALENCE_2223.csv"):
        largest[r["PRACTICE_CODE"]] = max(largest[r["PRACTICE_CODE"]], int(r["PRACTICE_LIST_SIZE"]))
    decile = dict(con.execute("select practice_code, imd_decile from public_practice "
                              "where imd_decile is not null").fetchall())
    total = sum(largest[c] for c in decile)
    share = defaultdict(float)
    for code, d in decile.items():
        share[int(d)] += largest[code] / total
    assert sorted(share) == list(range(1, 11))
    assert all(abs(s - 0.1) < 0.01 for s in share.values())
    # ratio interval: exact below 10 observed, Byar from 10 (independent formulas)
    o, e = df["observed"].to_numpy(float), df["expected"].to_numpy(float)
    z = norm.ppf(0.975)
    byar_lo = o * (1 - 1 / (9 * np.maximum(o, 1)) - z / (3 * np.sqrt(np.maximum(o, 1)))) ** 3
    byar_hi = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * np.sqrt(o + 1))) ** 3
    ex_lo = np.where(o > 0, chi2.ppf(0.025, 2 * o) / 2, 0.0)
    ex_hi = chi2.ppf(0.975, 2 * o + 2) / 2
    lo = np.where(o < 10, ex_lo, byar_lo) / e
    hi = np.where(o < 10, ex_hi, byar_hi) / e
    np.testing.assert_allclose(df["ratio"], o / e, rtol=1e-12)
    np.testing.assert_allclose(df["ratio_lower"], lo, rtol=1e-9)
    np.testing.assert_allclose(df["ratio_upper"], hi, rtol=1e-9)
    np.testing.assert_allclose(df["missing"], e - o, rtol=1e-12, atol=1e-9)


def test_model_expected_and_funnel(out2223):
    _, con = out2223
    basis = dict(con.execute("select model_basis, count(*) from public_expected where area_type = 'practice' "
                             "group by 1").fetchall())
    assert basis.get("glm", 0) > 6000
    # a Poisson GLM with an intercept reproduces the total over the practices it was fitted on
    o, e = con.execute("select sum(observed), sum(expected_model) from public_expected "
                       "where area_type = 'practice' and model_basis = 'glm'").fetchone()
    assert abs(o - e) / o < 1e-8
    sig = dict(con.execute("select significance, count(*) from funnel where statistic = 'proportion' "
                           "group by 1").fetchall())
    assert set(sig) <= {"High (0.001)", "High (0.025)", "Not significant", "Low (0.025)", "Low (0.001)"}
    n_prac = con.execute("select count(*) from funnel where statistic = 'proportion' and area_type = 'practice'").fetchone()[0]
    assert n_prac == 6378
    row = con.execute("""select f.value, f.parent_value, p.rate, i.rate from funnel f
                         join prevalence p on p.area_type = 'practice' and p.area_code = f.area_code
                         join prevalence i on i.area_type = 'icb' and i.area_code = f.parent_code
                         where f.statistic = 'proportion' and f.area_code = 'A81001'""").fetchone()
    assert row[0] == pytest.approx(row[2], abs=1e-15) and row[1] == pytest.approx(row[3], abs=1e-15)


def test_depression_gradient_by_practice_deprivation(out2223):
    _, con = out2223
    rates = dict(con.execute("select group_value, rate from prevalence where condition = 'DEP' "
                             "and area_type = 'england' and group_type = 'practice_imd_decile'").fetchall())
    assert rates["1"] > rates["10"]  # more recorded depression in the most deprived practices, as published
    sii = con.execute("select sii, sii_lower, sii_upper, rii from inequality where condition = 'DEP' "
                      "and area_type = 'england' and dimension = 'practice_imd_decile'").fetchone()
    assert sii[1] <= sii[0] <= sii[2] < 0 and sii[3] < 1


def test_contract_checker_passes(out2223):
    processed, _ = out2223
    spec = importlib.util.spec_from_file_location("check_outputs", REPO_ROOT.parent / "shared" / "tools" / "check_outputs.py")
    if spec is None or not Path(spec.origin).is_file():
        pytest.skip("../shared/tools/check_outputs.py is not available")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(processed, None) == 0


def test_2024_25_places_practices_missing_from_the_registered_patients_map(tmp_path):
    if (REAL / "mapping" / "MAPPING_NHS_GEOGRAPHIES_2425.csv").exists():
        pytest.skip("a 2024-25 QOF mapping is present; this test is about its absence")
    summary = run_public(REAL, "2022-23,2024-25", tmp_path, tmp_path / "reports", conditions=("DEP",))
    assert summary["mapping"] == "gp-reg-pat-prac-map.csv"
    assert summary["periods"] == ["2023-03-31", "2025-03-31"]
    mapped = {r["PRACTICE_CODE"] for r in _rows(REAL / "mapping" / "gp-reg-pat-prac-map.csv")}
    earlier = {r["PRACTICE_CODE"] for r in _rows(REAL / "mapping" / "MAPPING_NHS_GEOGRAPHIES_2223.csv")}
    qof = _rows(REAL / "qof" / "PREVALENCE_2425.csv")
    missing = {r["PRACTICE_CODE"] for r in qof} - mapped
    assert missing, "the July 2026 map no longer misses any 2024-25 practice"
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        placed = dict(con.execute("select practice_code, placed_by from practices").fetchall())
        for code in missing:
            assert placed.get(code) in (("earlier mapping" if code in earlier else "epraccur"), None), code
        assert summary["placed"]["earlier mapping"] == sum(v == "earlier mapping" for v in placed.values()) > 0
        # every 2024-25 register row of a placed practice counts in England's total
        dep = [r for r in qof if r["GROUP_CODE"] == "DEP" and r["PRACTICE_CODE"] in placed]
        o, p = con.execute("select observed, population from prevalence where area_type = 'england' "
                           "and condition = 'DEP' and group_type = 'all' and period = '2025-03-31'").fetchone()
        assert o == sum(int(float(r["REGISTER"])) for r in dep)
        assert p == sum(int(r["PRACTICE_LIST_SIZE"]) for r in dep)
        n = con.execute("select count(*) from rejects where source = 'PREVALENCE_2425' "
                        "and reason like '%placed%' or reason like '%neither%'").fetchone()[0]
        assert n == sum(1 for r in qof if r["PRACTICE_CODE"] not in placed)
        ls = con.execute("select rows_read, rows_loaded, rows_rejected from load_summary "
                         "where source = 'PREVALENCE_2425'").fetchone()
        assert ls[0] == len(qof) and ls[0] == ls[1] + ls[2]
        # the trend from 2022-23 to 2024-25 at England, ICB and PCN level
        levels = {a for (a,) in con.execute("select distinct area_type from trend where condition = 'DEP'").fetchall()}
        assert {"england", "icb", "pcn"} <= levels
    finally:
        con.close()
