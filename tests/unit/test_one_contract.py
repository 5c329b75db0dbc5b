"""One warehouse contract, two sources: the patient path (ingest -> transform -> analyse) and the published-data
adapters (pipeline/public.py -> the same analyse) write `funnel`, `inequality` and `trend` with the same meaning,
and the one pack builder renders both. Each test runs once per source, on the session's two warehouses (conftest
`warehouse`, tests/warehouses.py; no realdata needed): the demo records run through the CLI stages, and published
QOF files written in NHS England's formats and read by `run_public`."""
from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd
import pytest

from pipeline import stats
from pipeline.indicators import SII_SEED

pypdf = pytest.importorskip("pypdf")


@pytest.fixture(scope="module")
def warehouse(warehouse):
    """(source, processed dir, reports dir, read-only connection) for each source (conftest `warehouse`: the demo
    records and the small published files of tests/warehouses.py, each built once per session, packs rendered)."""
    con = warehouse.connect()
    yield warehouse.source, warehouse.processed, warehouse.reports, con
    con.close()


def _all_rows(con) -> pd.DataFrame:
    return con.execute("select period, condition, area_type, area_code, observed, population, expected "
                       "from prevalence where group_type = 'all'").df()


def test_funnel_compares_each_area_with_its_parents_own_level(warehouse):
    """proportion rows: against the parent's rate; ratio rows: against the parent's own ratio (not 1), with
    limits centred on it, on both sources."""
    source, _, _, con = warehouse
    funnel = con.execute("select * from funnel").df()
    assert len(funnel) and set(funnel["statistic"]) == {"proportion", "ratio"}
    parent = _all_rows(con).rename(columns={"area_type": "parent_type", "area_code": "parent_code",
                                            "observed": "parent_observed", "population": "parent_population",
                                            "expected": "parent_expected"})
    merged = funnel.merge(parent, on=["period", "condition", "parent_type", "parent_code"])
    assert len(merged) == len(funnel)
    prop = merged[merged["statistic"] == "proportion"]
    np.testing.assert_allclose(prop["parent_value"], prop["parent_observed"] / prop["parent_population"], rtol=1e-12)
    ratio = merged[merged["statistic"] == "ratio"]
    np.testing.assert_allclose(ratio["parent_value"], ratio["parent_observed"] / ratio["parent_expected"].astype(float),
                               rtol=1e-9)
    if source == "published":   # two ICBs, each at its own ratio to England (the patient data have one ICB)
        assert (ratio["parent_value"] != 1.0).any()
    assert ((ratio["lower_95"] <= ratio["parent_value"] + 1e-12) & (ratio["parent_value"] <= ratio["upper_95"] + 1e-12)).all()


def test_ratio_funnel_limits_are_exact_poisson_around_the_parent(warehouse):
    """README and docs/public-data.md: ratio limits at an area's expected count E are PHE's exact (chi-square)
    ones around the parent's ratio R, i.e. the observed count at the lower limit has an exact upper 95% limit of
    R x E (and the upper limit's count an exact lower limit of R x E), at every count; the label compares the
    area's own interval with R."""
    from scipy.stats import chi2

    _, _, _, con = warehouse
    ratio = con.execute("select * from funnel where statistic = 'ratio' and denominator > 0").df()
    events = ratio["parent_value"] * ratio["denominator"]
    for tag, conf in (("95", 0.95), ("998", 0.998)):
        tail = (1 - conf) / 2
        at_lower = ratio[f"lower_{tag}"] * ratio["denominator"]
        at_upper = ratio[f"upper_{tag}"] * ratio["denominator"]
        positive = at_lower > 0   # below the exact upper limit of 0 cases (3.69 at 95%) no count reaches R x E
        np.testing.assert_allclose(chi2.ppf(1 - tail, 2 * at_lower[positive] + 2) / 2, events[positive], rtol=1e-7)
        assert (chi2.ppf(1 - tail, 2) / 2 >= events[~positive] - 1e-9).all()
        reached = at_upper > 0
        np.testing.assert_allclose(chi2.ppf(tail, 2 * at_upper[reached]) / 2, events[reached], rtol=1e-7)
    _, own_lower, own_upper = stats.isr(ratio["observed"].to_numpy(float), ratio["denominator"].to_numpy(float), 0.95)
    low = np.asarray(own_upper, float) < ratio["parent_value"].to_numpy()
    high = np.asarray(own_lower, float) > ratio["parent_value"].to_numpy()
    assert (ratio.loc[low, "significance"].str.startswith("Low")).all()
    assert (ratio.loc[high, "significance"].str.startswith("High")).all()
    assert (ratio.loc[~low & ~high, "significance"] == "Not significant").all()


def test_inequality_is_the_one_simulation(warehouse):
    """Every SII/RII is the crude-rate SII of its area's quantile rows, 100,000 draws with the one seed."""
    source, _, _, con = warehouse
    ineq = con.execute("select * from inequality").df()
    assert len(ineq)
    expected_dimensions = {"imd_quintile"} if source == "patient" else {"practice_imd_quintile", "practice_imd_decile"}
    assert set(ineq["dimension"]) == expected_dimensions
    groups = con.execute("select period, condition, area_type, area_code, group_type, group_value, observed, population "
                         "from prevalence where group_value <> 'Unknown'").df()
    for row in ineq.head(4).itertuples():
        cell = groups[(groups["period"] == row.period) & (groups["condition"] == row.condition)
                      & (groups["area_type"] == row.area_type) & (groups["area_code"] == row.area_code)
                      & (groups["group_type"] == row.dimension)]
        cell = cell.assign(quantile=cell["group_value"].astype(int)).sort_values("quantile")
        res = stats.sii_crude_rate_proportion(cell["observed"].to_numpy(float)[None, :],
                                              cell["population"].to_numpy(float)[None, :],
                                              repetitions=100_000, seed=SII_SEED)
        for name in ("sii", "sii_lower", "sii_upper", "rii", "rii_lower", "rii_upper"):
            np.testing.assert_allclose(getattr(row, name), np.asarray(getattr(res, name), float)[0], rtol=1e-12,
                                       err_msg=name)


def test_trend_is_the_change_on_the_earlier_dates_rates(warehouse):
    """ratio_from is the earlier date's own standardised ratio, change = ratio_to / ratio_from, and the
    comparator's change is that of the whole data on the same fixed rates, on both sources."""
    _, _, _, con = warehouse
    trend = con.execute("select * from trend where group_type = 'all'").df()
    assert len(trend)
    earlier = _all_rows(con).rename(columns={"period": "period_from", "observed": "o0", "expected": "e0"})
    merged = trend.merge(earlier[["period_from", "condition", "area_type", "area_code", "o0", "e0"]],
                         on=["period_from", "condition", "area_type", "area_code"])
    assert len(merged) == len(trend)
    merged = merged[merged["o0"] > 0]   # no ratio to change from where nothing was recorded
    np.testing.assert_allclose(merged["expected_from"].astype(float), merged["e0"].astype(float), rtol=1e-9)
    np.testing.assert_allclose(merged["ratio_from"], merged["o0"] / merged["e0"].astype(float), rtol=1e-9)
    np.testing.assert_allclose(merged["change"], merged["ratio_to"] / merged["ratio_from"], rtol=1e-9)
    pair = ["period_from", "period_to", "condition"]   # the demo data have three dates: three pairs
    top = trend[trend["area_type"] == "icb"].groupby(pair)[
        ["observed_from", "observed_to", "expected_from", "expected_to"]].sum()
    comparator = (top["observed_to"] / top["expected_to"]) / (top["observed_from"] / top["expected_from"])
    assert len(comparator) and trend.groupby(pair)["comparator_change"].nunique().max() == 1
    got = trend.groupby(pair)["comparator_change"].first()
    np.testing.assert_allclose(got.loc[comparator.index], comparator, rtol=1e-9)


def test_every_pack_has_alt_text_and_no_local_paths(warehouse):
    source, processed, reports, _ = warehouse
    pdfs = sorted(reports.rglob("*.pdf"))
    kinds = {p.parent.name for p in pdfs}
    assert {"pcn", "ics"} <= kinds
    assert ("england" in kinds) == (source == "published")   # the national summary: published data only
    for pdf in pdfs:
        reader = pypdf.PdfReader(str(pdf))
        assert reader.metadata.title
        raw = pdf.read_bytes()
        assert str(processed.parent).encode() not in raw and b"/tmp/" not in raw
        alts = re.findall(rb"/Alt \((.*?)\)", raw)
        assert all(len(a) > 20 for a in alts)


def test_pack_csv_counts_follow_the_sources_disclosure_rule(warehouse):
    """Patient counts are rounded and small ones hidden; published QOF counts are shown as published."""
    source, _, reports, con = warehouse
    pcn_csv = sorted((reports / "pcn").glob("*.csv"))[0]
    rows = [r for r in csv.DictReader(open(pcn_csv, encoding="utf-8")) if r["observed"] not in ("", "[c]")]
    assert rows
    for r in rows:
        observed = float(r["observed"])
        true = con.execute("select observed from prevalence where period = ? and condition = ? and area_type = ? "
                           "and area_code = ? and group_type = ? and group_value = ?",
                           [r["period"], r["condition"], r["area_type"], r["area_code"], r["group_type"],
                            r["group_value"]]).fetchone()[0]
        if source == "published":
            assert observed == true
        else:
            assert observed % 5 == 0 and abs(observed - true) <= 2.5
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(str(pcn_csv.with_suffix(".pdf"))).pages)
    assert ("public already" in " ".join(text.split())) == (source == "published")


def test_reports_readme_gives_the_sources_meaning_of_expected(warehouse):
    """README.txt beside the packs says what `expected`, `missing` and `change` mean for the data the packs were made
    from. The published path's expected is England's rate in the practice's IMD decile (no sex or age: QOF counts
    have none) and its change treats the two years as independent; its README used to give the patient path's
    meaning (sex by five-year age band, the ICB average, cases on both dates) and list community summaries and
    data-quality files that the published path never writes."""
    source, _, reports, _ = warehouse
    readme = " ".join((reports / "README.txt").read_text(encoding="utf-8").split())
    if source == "published":
        assert "IMD decile" in readme and "independent" in readme
        for patient_only in ("sex by five-year age band", "ICB average", "cases_on_both_dates", "community/",
                             "neighbourhoods", "_data_quality.csv"):
            assert patient_only not in readme, patient_only
        assert not (reports / "community").exists()
    else:
        assert "sex by five-year age band" in readme and "cases_on_both_dates" in readme
        assert (reports / "community").is_dir()


def test_run_info_names_the_version_inputs_and_day_on_both_sources(warehouse):
    """Every pack says which pipeline version made it from which inputs on which day: the published path's
    run_info used to lack all three, so its packs and README.txt printed 'unknown'."""
    source, _, reports, con = warehouse
    from pipeline import __version__

    info = dict(con.execute("select key, value from run_info").fetchall())
    assert info["pipeline_version"] == __version__
    assert re.fullmatch(r"[0-9a-f]{16}", info["input_hash"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", info["run_date"])
    assert "unknown" not in (reports / "README.txt").read_text(encoding="utf-8").splitlines()[2]
    pdf = sorted((reports / "ics").glob("*.pdf"))[0]
    text = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(str(pdf)).pages).split())
    assert info["input_hash"] in text and "version unknown" not in text.lower()


def test_poisson_glm_halves_steps_that_overshoot():
    """Rates spanning e^30 across a covariate (as palliative care across England's practices did): plain IRLS from
    the intercept-only start overflowed and never converged; with step halving the fit converges to the truth and
    numpy warns of nothing."""
    import warnings

    from pipeline.public import poisson_glm

    rng = np.random.default_rng(3)
    covariate = rng.uniform(0, 30, 200)
    population = np.full(200, 5000.0)
    observed = rng.poisson(population * np.exp(-12 + covariate)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = poisson_glm(observed, np.column_stack([np.ones(200), covariate]), np.log(population))
    assert fit["converged"] and fit["iterations"] < 50
    assert fit["coef"] == pytest.approx([-12.0, 1.0], abs=1e-3)
    gradient = np.column_stack([np.ones(200), covariate]).T @ (observed - fit["fitted"])
    assert np.abs(gradient).max() <= 1e-6 * observed.sum()
