"""One warehouse contract, two sources: the patient path (ingest -> transform -> analyse) and the published-data
adapters (pipeline/public.py -> the same analyse) write `funnel`, `inequality` and `trend` with the same meaning,
and the one pack builder renders both. Each test runs once per source on a small warehouse built here (no
realdata needed): patient records written as raw files and run through the CLI stages, published QOF files
written in NHS England's formats and read by `run_public`."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import run_pipeline, write_config, write_raw

from pipeline import stats
from pipeline.indicators import SII_SEED

pypdf = pytest.importorskip("pypdf")

PUBLISHED_YEARS = ("2022-23", "2023-24")
# practice -> (PCN, ICB, IMD 2019 score); two ICBs so that England compares them
PUBLISHED_PRACTICES = {f"K{i:04d}": (f"U{i % 4:05d}", "QAA" if i % 4 < 2 else "QBB", 5.0 + 4.0 * i) for i in range(24)}


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def published_inputs(folder: Path) -> Path:
    """NHS England's files for two QOF years: registers (depression, 18 and over; atrial fibrillation, all ages)
    more common in more deprived practices, the QOF mapping and Fingertips practice IMD 2019 scores."""
    rng = np.random.default_rng(11)
    for year in PUBLISHED_YEARS:
        yy = year[2:4] + year[5:7]
        qof, mapping = [], []
        for code, (pcn, icb, score) in PUBLISHED_PRACTICES.items():
            size = int(rng.integers(3000, 12000))
            for group, list_type, share, rate in (("DEP", "18OV", 0.8, 0.08), ("AF", "TOTAL", 1.0, 0.02)):
                listed = int(size * share)
                qof.append(dict(PRACTICE_CODE=code, GROUP_CODE=group, REGISTER=f"{rng.binomial(listed, rate * (1 + score / 100))}.0",
                                PATIENT_LIST_TYPE=list_type, PRACTICE_LIST_SIZE=listed))
            mapping.append(dict(PRACTICE_CODE=code, PRACTICE_NAME=f"Practice {code}", PCN_ODS_CODE=pcn,
                                PCN_NAME=f"Network {pcn}", SUB_ICB_ODS_CODE=f"{icb}1", ICB_ODS_CODE=icb,
                                ICB_ONS_CODE=f"E5400{icb[-1]}", ICB_NAME=f"NHS {icb} ICB", REGION_ODS_CODE="Y60",
                                REGION_NAME="Region"))
        _write(folder / "qof" / f"PREVALENCE_{yy}.csv", qof)
        _write(folder / "mapping" / f"MAPPING_NHS_GEOGRAPHIES_{yy}.csv", mapping)
    _write(folder / "practice_imd" / "IMD_raw.csv", [
        dict(IndicatorID=93553, Year=2019, AreaCode=code, AreaName=f"Practice {code}", IsAreaCurrent=1, Value=score)
        for code, (_, _, score) in PUBLISHED_PRACTICES.items()])
    return folder


def patient_inputs(folder: Path) -> tuple[Path, Path]:
    """Patient records for two dates: 400 patients in six practices, two PCNs, one ICB, home areas in all five
    national IMD quintiles, depression recorded more often in more deprived areas."""
    patients, registrations, events = [], [], []
    for i in range(400):
        pid = f"p{i:04d}"
        area = i % 5
        patients.append(dict(patient_id=pid, sex="FM"[i % 2], date_of_birth=f"{1940 + i % 60}-0{1 + i % 9}-01",
                             ethnicity="ABHMRZ"[i % 6], lsoa_code=f"L{area}", date_of_death=""))
        registrations.append(dict(patient_id=pid, practice_code=f"A{i % 6}", registered_from="2000-01-01",
                                  registered_to=""))
        if (i * 7) % 10 < 1 + (4 - area):
            events.append(dict(patient_id=pid, code="111", date="2020-05-01" if i % 3 else "2024-06-01"))
    raw = write_raw(folder / "raw", {
        "patients": patients, "registrations": registrations, "events": events,
        "practices": [dict(practice_code=f"A{j}", practice_name=f"Practice {j}", pcn_code=f"P{j % 2}",
                           pcn_name=f"PCN {j % 2}", icb_code="I1", icb_name="ICB One") for j in range(6)],
        "deprivation": [dict(lsoa_code=f"L{j}", imd_score=40 - 8 * j, imd_rank=1000 * j + 1, imd_decile=1 + 2 * j)
                        for j in range(5)],
        "codelists/dep": ["111"],
    })
    cfg = write_config(folder / "config.toml", ["2024-03-31", "2025-03-31"],
                       [dict(id="dep", label="Depression", codelist="codelists/dep.csv", min_age=18)])
    return raw, cfg


@pytest.fixture(scope="module", params=["patient", "published"])
def warehouse(request, tmp_path_factory):
    """(source, processed dir, reports dir, read-only connection) for each source, packs rendered."""
    root = tmp_path_factory.mktemp(request.param)
    processed, reports = root / "processed", root / "reports"
    if request.param == "patient":
        raw, cfg = patient_inputs(root)
        rc, _, err = run_pipeline(raw, processed, reports, cfg, stages=("ingest", "transform", "analyse", "report"))
        assert rc == 0, err
    else:
        from pipeline.public import run_public

        run_public(published_inputs(root / "in"), ",".join(PUBLISHED_YEARS), processed, reports, icb="all")
    con = duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True)
    yield request.param, processed, reports, con
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
    top = trend[trend["area_type"] == "icb"].groupby("condition")[
        ["observed_from", "observed_to", "expected_from", "expected_to"]].sum()
    comparator = (top["observed_to"] / top["expected_to"]) / (top["observed_from"] / top["expected_from"])
    got = trend.groupby("condition")["comparator_change"].first()
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
