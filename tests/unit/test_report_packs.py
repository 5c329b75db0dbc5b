"""Report stage: packs exist, numbers match the disclosure-controlled marts, every chart has alt text, published
CSV counts are safe, failures leave the previous reports intact.

Tests that take `warehouse` run on both of the session's warehouses (conftest; tests/warehouses.py): the demo
records (patient) and NHS England's published files (published). Tests that take `run` use a small fake patient
warehouse built here, with a planted gap and named areas they look for."""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.config import Condition, Config, Disclosure
from pipeline.disclosure import MARKER
from pipeline.stats import isr, wilson_ci, within_area_ratio

pypdf = pytest.importorskip("pypdf")

PERIODS = (dt.date(2024, 3, 31), dt.date(2025, 3, 31))
ETH = ["White", "Mixed", "Asian", "Black", "Other", "Unknown"]
IMD = ["1", "2", "3", "4", "5", "Unknown"]
AGES = ["20-24", "40-44", "60-64", "80-84"]
PRACTICES = pd.DataFrame({
    "practice_code": ["A1", "A2", "A3", "B1", "B2"],
    "practice_name": ["Alder Surgery", "Ash Practice", "Aspen Health Centre", "Birch Surgery", "Beech Practice"],
    "pcn_code": ["P1", "P1", "P1", "P2", "P2"], "pcn_name": ["North Test PCN"] * 3 + ["South Test PCN"] * 2,
    "icb_code": ["QAA"] * 5, "icb_name": ["NHS Test ICB"] * 5,
})
NBH = {"N1": "Riverside", "N2": "Hilltop", "N3": "Old Town"}
CONDS = [("depression", "Depression", 18), ("smi", "Severe mental illness", 0)]


def _config() -> Config:
    return Config(periods=PERIODS, conditions=tuple(Condition(c, lab, f"codelists/{c}.csv", None, a) for c, lab, a in CONDS),
                  disclosure=Disclosure(), report={"max_headlines": 5})


def _cells(seed: int = 7) -> pd.DataFrame:
    """Fine cells: period x condition x practice x neighbourhood x ethnicity x imd x sex x age, with a built-in
    gap (depression recorded at half the rate for Black patients in PCN P1)."""
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product([PERIODS, [c for c, _, _ in CONDS], PRACTICES["practice_code"], list(NBH),
                                      ETH, IMD, ["F", "M"], AGES],
                                     names=["period", "condition", "practice", "nbh", "ethnicity", "imd", "sex", "age"])
    d = idx.to_frame(index=False)
    d["population"] = rng.poisson(9, len(d))
    base = np.where(d["condition"] == "depression", 0.14, 0.012) * np.where(d["sex"] == "F", 1.3, 0.8)
    base *= d["age"].map({"20-24": 0.8, "40-44": 1.1, "60-64": 1.2, "80-84": 0.9}).to_numpy()
    gap = (d["condition"] == "depression") & (d["ethnicity"] == "Black") & d["practice"].str.startswith("A")
    base = np.where(gap, base * 0.45, base)
    d["observed"] = rng.binomial(d["population"], np.clip(base, 0, 1))
    return d


def _prevalence(cells: pd.DataFrame) -> pd.DataFrame:
    ref = cells.groupby(["period", "condition", "sex", "age"])[["observed", "population"]].transform("sum")
    cells = cells.assign(expected=cells["population"] * ref["observed"] / ref["population"].where(ref["population"] > 0))
    cells = cells.merge(PRACTICES[["practice_code", "pcn_code", "icb_code"]], left_on="practice", right_on="practice_code")
    areas = {"icb": "icb_code", "pcn": "pcn_code", "practice": "practice", "neighbourhood": "nbh"}
    groups = {"all": None, "ethnicity": "ethnicity", "imd_quintile": "imd", "sex": "sex", "age_band": "age"}
    names = {**dict(zip(PRACTICES["practice_code"], PRACTICES["practice_name"])),
             **dict(zip(PRACTICES["pcn_code"], PRACTICES["pcn_name"])), "QAA": "NHS Test ICB", **NBH}
    out = []
    for at, acol in areas.items():
        for gt, gcol in groups.items():
            keys = ["period", "condition", acol] + ([gcol] if gcol else [])
            g = cells.groupby(keys, as_index=False)[["observed", "population", "expected"]].sum()
            g = g.rename(columns={acol: "area_code"})
            g["group_value"] = g[gcol] if gcol else "All"
            g["area_type"], g["group_type"] = at, gt
            out.append(g[["period", "condition", "area_type", "area_code", "group_type", "group_value", "observed",
                          "population", "expected"]])
    p = pd.concat(out, ignore_index=True)
    p = p[p["population"] > 0].reset_index(drop=True)
    p["area_name"] = p["area_code"].map(names)
    o, n, e = (p[c].to_numpy(dtype=float) for c in ("observed", "population", "expected"))
    p["rate"] = o / n
    p["rate_lower"], p["rate_upper"] = wilson_ci(o, n, 0.95)
    p["ratio"], p["ratio_lower"], p["ratio_upper"] = isr(o, e, 0.95)
    p["missing"] = e - o
    cols = ["period", "condition", "area_type", "area_code", "area_name", "group_type", "group_value", "observed",
            "population", "rate", "rate_lower", "rate_upper", "expected", "ratio", "ratio_lower", "ratio_upper", "missing"]
    return p[cols]


def _strata(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """stratified_counts and reference_rates (internal, no extra strata) as the transform stage makes them."""
    sc = pd.DataFrame(dict(period=cells["period"], condition=cells["condition"], practice_code=cells["practice"],
                           neighbourhood_code=cells["nbh"], ethnic_group=cells["ethnicity"], imd_quintile=cells["imd"],
                           sex=cells["sex"], sex_group=cells["sex"], age_band=cells["age"],
                           population=cells["population"].astype("int64"), cases=cells["observed"].astype("int64")))
    rr = sc.groupby(["period", "condition", "sex", "age_band"], as_index=False)[["population", "cases"]].sum()
    rr["imd_stratum"], rr["ethnicity_stratum"] = "*", "*"
    rr["internal_rate"] = rr["cases"] / rr["population"]
    rr["external_rate"] = np.nan
    rr["rate"] = rr["internal_rate"]
    return sc, rr


def build_fake_warehouse(processed: Path, *, optional_tables: bool = True, boundaries: bool = True) -> pd.DataFrame:
    processed.mkdir(parents=True, exist_ok=True)
    cells = _cells()
    prev = _prevalence(cells)
    con = duckdb.connect(str(processed / "warehouse.duckdb"))
    try:
        con.register("p", prev)
        con.execute("create table prevalence as select * from p")
        con.register("pr", PRACTICES)
        con.execute("create table practices as select * from pr")
        con.execute("create table neighbourhoods as select * from (values ('E01000001', 'N1', 'Riverside'), "
                    "('E01000002', 'N2', 'Hilltop'), ('E01000003', 'N3', 'Old Town')) t(lsoa_code, neighbourhood_code, "
                    "neighbourhood_name)")
        con.execute("create table conditions as select * from (values ('depression', 'Depression', 18), "
                    "('smi', 'Severe mental illness', 0)) t(condition, label, min_age)")
        con.execute("create table periods as select * from (values (date '2024-03-31'), (date '2025-03-31')) t(period)")
        con.execute("create table load_summary as select * from (values ('patients', 1000, 997, 3), "
                    "('events', 5000, 5000, 0)) t(source, rows_read, rows_loaded, rows_rejected)")
        con.execute("create table rejects (source varchar, row_number bigint, reason varchar)")
        dq = prev[(prev.group_type == "all") & (prev.condition == "smi") & (prev.area_type != "neighbourhood")]
        dq = dq[["period", "area_type", "area_code", "population"]].copy()
        # consistent with the cells: everyone has an ethnic group, a matched LSOA and a neighbourhood (the
        # protection knows 'ethnicity not recorded' is the 'Unknown' group and 'no LSOA' + 'not matched' the
        # deprivation 'Unknown' group, so counts that contradicted the breakdowns left it no consistent reading)
        dq["ethnicity_not_recorded"] = dq["lsoa_missing"] = dq["lsoa_unmatched"] = dq["no_neighbourhood"] = 0
        con.register("dq", dq)
        con.execute("create table data_quality as select * from dq")
        con.execute("create table run_info as select * from (values ('pipeline_version', '9.9.9'), "
                    "('input_hash', 'abc123def4567890'), ('data_date', '2025-03-31'), ('run_date', '2025-06-01')) t(key, value)")
        if optional_tables:
            sc, rr = _strata(cells)
            con.register("sc", sc)
            con.execute("create table stratified_counts as select * from sc")
            con.register("rr", rr)
            con.execute("create table reference_rates as select * from rr")
            con.execute("""create table dsr as select period, condition, area_type, area_code, group_type, group_value,
                           observed, population, case when observed >= 10 then 1e5 * rate end as dsr,
                           case when observed >= 10 then 1e5 * rate_lower end dsr_lower,
                           case when observed >= 10 then 1e5 * rate_upper end dsr_upper, 'ESP2013' as standard,
                           case when observed >= 10 then '' else 'fewer than 10 cases' end as note
                           from prevalence where group_type in ('all', 'ethnicity')""")
            con.execute("""create table funnel as select period, condition, area_type, area_code, 'icb' parent_type,
                           'QAA' parent_code, 'ratio' statistic, observed::double observed, expected denominator,
                           ratio as "value", 1.0 parent_value, 0.5 lower_95, 1.5 upper_95, 0.3 lower_998, 1.8 upper_998,
                           'Not significant' significance
                           from prevalence where area_type in ('practice', 'pcn') and group_type = 'all'""")
            con.execute("""create table trend as select date '2024-03-31' period_from, date '2025-03-31' period_to,
                           condition, area_type, area_code, group_type, group_value, ratio ratio_from, ratio ratio_to,
                           0.0 as "change", -0.1 change_lower, 0.1 change_upper, missing missing_from, missing missing_to,
                           'no clear change' as "label" from prevalence where period = date '2025-03-31'""")
            con.execute("""create table inequality as select period, condition, area_type, area_code,
                           'imd_quintile' dimension, 'crude_rate' measure, 0.01 sii, -0.01 sii_lower, 0.03 sii_upper,
                           1.1 rii, 0.9 rii_lower, 1.3 rii_upper
                           from prevalence where area_type in ('icb', 'pcn') and group_type = 'all'""")
    finally:
        con.close()
    if boundaries:
        feats = []
        for i, code in enumerate(NBH):
            x = 1.6 + 0.02 * i
            feats.append({"type": "Feature", "properties": {"neighbourhood_code": code},
                          "geometry": {"type": "Polygon", "coordinates": [[[x, 54.0], [x + 0.02, 54.0], [x + 0.02, 54.02],
                                                                           [x, 54.02], [x, 54.0]]]}})
        (processed / "boundaries.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return prev


def pdf_text(path: Path) -> str:
    r = pypdf.PdfReader(str(path))
    return re.sub(r"\s+", " ", " ".join(p.extract_text() or "" for p in r.pages))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pipeline.report.render import render_reports

    root = tmp_path_factory.mktemp("report")
    processed, reports = root / "processed", root / "reports"
    build_fake_warehouse(processed)
    cfg = _config()
    render_reports(processed, reports, cfg)
    return processed, reports, cfg


# ---------------------------------------------------------------------------------------------- tests

def test_packs_and_csvs_exist(run):
    processed, reports, _ = run
    for f in ("pcn/P1.pdf", "pcn/P1.csv", "pcn/P2.pdf", "pcn/P2.csv", "ics/QAA.pdf", "ics/QAA.csv",
              "community/P1.pdf", "community/P1.csv", "community/P2.pdf", "community/P2.csv"):
        assert (reports / f).exists(), f
    assert not list(reports.parent.glob(".reports.tmp-*"))


# patient data only: published data have no community summaries (no neighbourhoods, no patient-level groups)
def test_community_csv_hides_at_least_what_the_packs_hide(run):
    _, reports, _ = run
    key = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]
    main = pd.concat([pd.read_csv(f, dtype=str) for f in (reports / "ics").glob("*.csv")])
    compared = 0
    for f in (reports / "community").glob("*.csv"):
        com = pd.read_csv(f, dtype=str)
        assert set(com["area_type"]) == {"pcn"}
        m = com.merge(main, on=key, suffixes=("_com", ""))
        for c in ("observed", "population", "missing"):
            hidden_in_main = m[c] == "[c]"
            assert (m.loc[hidden_in_main, f"{c}_com"] == "[c]").all(), (f.name, c)
            shown = m[f"{c}_com"] != "[c]"
            assert (m.loc[shown, f"{c}_com"] == m.loc[shown, c]).all(), (f.name, c)
            compared += len(m)
    assert compared > 0


def test_published_counts_are_safe(warehouse):
    """The contract checker's published-count rule on every CSV of the patient data: no 1-7, every count a multiple
    of 5. Published data (public already, shown as published): every count is a whole number, and the
    controlled-marts test below checks it is the warehouse's own."""
    reports = warehouse.reports
    bad, seen = [], 0
    for f in reports.rglob("*.csv"):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for c in ("observed", "population", "missing"):
                    v = row.get(c)
                    try:
                        x = abs(float(v))
                    except (TypeError, ValueError):
                        assert v in ("", MARKER, None), (f.name, c, v)
                        continue
                    seen += 1
                    if x % 1 or (warehouse.source == "patient" and x != 0 and (x < 8 or x % 5)):
                        bad.append((f.name, c, v))
    assert seen > 100 and not bad


def test_csv_numbers_are_the_controlled_marts(run):
    processed, reports, cfg = run
    from pipeline.report.data import load_inputs

    inp = load_inputs(processed, cfg)
    got = pd.read_csv(reports / "pcn" / "P1.csv", dtype=str, keep_default_na=False)
    ctl = inp.prev
    row = ctl[(ctl.area_type == "pcn") & (ctl.area_code == "P1") & (ctl.group_type == "all") &
              (ctl.condition == "depression") & (ctl.period == PERIODS[-1])].iloc[0]
    g = got[(got.area_type == "pcn") & (got.group_type == "all") & (got.condition == "depression") &
            (got.period == "2025-03-31")].iloc[0]
    assert int(g["observed"]) == int(row["observed"]) and int(g["population"]) == int(row["population"])
    assert float(g["ratio"]) == pytest.approx(row["ratio"])
    # the CSV holds this PCN, its practices and its ICB only
    assert set(got["area_code"]) == {"P1", "A1", "A2", "A3", "QAA"}
    assert list(got.columns[:7]) == ["period", "condition", "area_type", "area_code", "area_name", "group_type",
                                     "group_value"]


def test_every_csv_count_is_the_controlled_marts(warehouse):
    """Every count in every PCN and ICS CSV is the publication's controlled value (load_inputs: rounded or hidden for
    patient data, the warehouse's own for published data), and every row is a row of the controlled marts."""
    from pipeline.report.data import load_inputs

    inp = load_inputs(warehouse.processed, warehouse.config())
    key = ["period", "condition", "area_type", "area_code", "group_type", "group_value"]
    ctl = inp.prev.assign(period=inp.prev["period"].astype(str))
    compared = 0
    with warehouse.connect() as con:
        true = con.execute("select * from prevalence").df()
    true = true.assign(period=true["period"].astype(str))
    indicators = None if inp.indicators is None else inp.indicators.assign(period=inp.indicators["period"].astype(str))
    for path in sorted(warehouse.reports.glob("pcn/*.csv")) + sorted(warehouse.reports.glob("ics/*.csv")):
        got = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "group_value" not in got.columns:   # the data-quality and inputs tables beside each pack
            continue
        rows = ctl
        if "indicator" in got.columns:   # the indicator tables beside the patient packs: `condition` = indicator id
            got, rows = got.rename(columns={"indicator": "condition"}), indicators
        merged = got.merge(rows, on=key, how="left", suffixes=("", "_ctl"), indicator=True)
        assert (merged["_merge"] == "both").all(), (path.name, merged.loc[merged["_merge"] != "both", key].head())
        for column in ("observed", "population"):
            hidden = merged[column] == MARKER
            assert merged.loc[hidden, f"{column}_redacted"].all(), (path.name, column)
            shown = merged[~hidden]
            np.testing.assert_array_equal(shown[column].astype(float).to_numpy(), shown[f"{column}_ctl"].to_numpy(float),
                                          err_msg=f"{path.name} {column}")
            compared += len(shown)
        if warehouse.source == "published":   # public already: shown as published, nothing hidden
            assert not (merged[["observed", "population"]] == MARKER).any().any()
            back = merged.merge(true, on=key, suffixes=("", "_true"))
            np.testing.assert_array_equal(back["observed"].astype(float), back["observed_true"].astype(float))
    assert compared > 100


def test_headline_numbers_in_pdf_match_controlled_marts(run):
    processed, reports, cfg = run
    from pipeline.report import packs
    from pipeline.report.data import load_inputs

    inp = load_inputs(processed, cfg)
    changes = packs.pack_changes(inp, "pcn", ["P1"])
    items = packs.within_items(inp.prev, inp, "pcn", "P1", changes, "the NHS Test ICB average", 5)
    assert items, "the fake data has a built-in gap"
    top = items[0]
    assert (top["condition"], top["group_type"], top["group_value"]) == ("depression", "ethnicity", "Black")
    text = pdf_text(reports / "pcn" / "P1.pdf")
    # part 2: the group against the PCN's own level, from the controlled counts
    prev = inp.prev[(inp.prev["period"] == inp.latest) & (inp.prev["area_code"] == "P1") &
                    (inp.prev["condition"] == "depression")]
    group = prev[(prev["group_type"] == "ethnicity") & (prev["group_value"] == "Black")].iloc[0]
    whole = prev[prev["group_type"] == "all"].iloc[0]
    want = (group["observed"] / group["expected"]) / (whole["observed"] / whole["expected"])
    assert top["ratio"] == f"{want:.2f}"
    assert (f"Depression: recorded for Black adults at {top['ratio']} times the PCN's own level for people of the "
            f"same age and sex (95% interval {top['lower']}–{top['upper']})") in text
    assert "fewer than if they were recorded like the PCN as a whole" in text
    # part 1: the PCN as a whole against the ICB, in words that say what was computed
    assert "than the NHS Test ICB average for people of the same age and sex would give" in text
    assert "than expected" not in text.split("Page 2")[0]
    # provenance and the disclosure note
    assert "9.9.9" in text and "abc123def4567890" in text and "31 March 2025" in text
    assert "0 to 7" in text


def _struct_figures(reader) -> list:
    root = reader.trailer["/Root"]
    out = []

    def walk(node, depth=0):
        node = node.get_object() if hasattr(node, "get_object") else node
        if depth > 200:
            return
        if isinstance(node, dict):
            if node.get("/S") == "/Figure":
                out.append(node)
            k = node.get("/K")
            if k is not None:
                walk(k, depth + 1)
        elif isinstance(node, list):
            for x in node:
                walk(x, depth + 1)

    walk(root["/StructTreeRoot"])
    return out


def test_every_figure_has_alt_text(warehouse):
    """Every pack of each warehouse is a tagged PDF whose figures all carry alt text."""
    kinds = set()
    for pdf in sorted(warehouse.reports.rglob("*.pdf")):
        r = pypdf.PdfReader(str(pdf))
        figs = _struct_figures(r)
        assert figs, f"{pdf.name}: a tagged PDF with figures"
        for f in figs:
            alt = f.get("/Alt")
            assert alt and len(str(alt)) > 40, (pdf.name, alt)
        meta = r.metadata
        assert meta.title and "pipeline" in (meta.author or "").lower(), pdf.name
        kinds.add(pdf.parent.name)
    assert kinds == ({"pcn", "ics", "community"} if warehouse.source == "patient" else {"pcn", "ics", "england"})


def test_templates_give_every_image_alt_text():
    from pipeline import paths

    for t in paths.TEMPLATES_DIR.glob("*.typ"):
        src = t.read_text(encoding="utf-8")
        for m in re.finditer(r"image\(", src):
            call = src[m.start(): src.find(")", m.start()) + 1]
            assert "alt:" in call, (t.name, call)
        if t.name != "common.typ":
            # document title and language come from common.setup, or are set in the template itself
            assert "setup.with(title:" in src or ("set document(title:" in src and 'lang: "en"' in src), t.name
    common = (paths.TEMPLATES_DIR / "common.typ").read_text(encoding="utf-8")
    assert 'set document(title:' in common and 'lang: "en"' in common


@pytest.mark.slow  # renders a set of packs of its own
def test_rendered_charts_have_alt_text(warehouse, tmp_path):
    """One pack of each kind, built and rendered here: every chart has alt text that says what it shows; the PCN
    pack has its neighbourhood map where the data have neighbourhoods (patient data; published data have none)."""
    from pipeline.report.data import load_inputs
    from pipeline.report.render import build_pack, pack_jobs, render_pack

    cfg = warehouse.config()
    inp = load_inputs(warehouse.processed, cfg)
    first = {}
    for kind, code in pack_jobs(inp):
        first.setdefault(kind, code)
    assert set(first) == ({"pcn", "ics", "community"} if warehouse.source == "patient" else {"pcn", "ics", "england"})
    for kind, code in first.items():
        ctx = render_pack(build_pack(inp, kind, code, cfg.report), tmp_path / f"check-{kind}.pdf", inp.latest)
        assert ctx["charts"], kind
        for name, c in ctx["charts"].items():
            alt = c["alt"].lower()
            assert len(alt) > 40 and ("ratio" in alt or "neighbourhood" in alt or "inequality" in alt), (kind, name)
        if kind == "pcn":
            assert ("map" in ctx["charts"]) == (warehouse.source == "patient")


def test_no_identifiers_or_local_paths(warehouse):
    processed, reports = warehouse.processed, warehouse.reports
    files = list(reports.rglob("*.pdf")) + list(reports.rglob("*.csv"))
    assert len(files) >= 10
    for f in files:
        data = f.read_bytes()
        assert str(processed).encode() not in data and str(reports.parent).encode() not in data
        assert b"/tmp/" not in data and b"pack-" not in data
    for pdf in sorted(reports.glob("pcn/*.pdf"))[:2]:
        text = pdf_text(pdf)
        assert "patient_id" not in text and "date_of_birth" not in text


# patient data only: published data have no community summaries
def test_community_pack_has_no_practice_numbers(run):
    _, reports, _ = run
    text = pdf_text(reports / "community" / "P1.pdf")
    for name in PRACTICES["practice_name"]:
        assert name not in text
    assert "0 to 7" in text and "same rules apply to every pack" in text  # one set of rules, stated
    assert len(pypdf.PdfReader(str(reports / "community" / "P1.pdf")).pages) <= 2


@pytest.mark.slow  # renders a set of packs of its own
def test_missing_optional_tables_and_boundaries(tmp_path):
    from pipeline.report.render import render_reports

    processed = tmp_path / "processed"
    build_fake_warehouse(processed, optional_tables=False, boundaries=False)
    render_reports(processed, tmp_path / "reports", _config())
    text = pdf_text(tmp_path / "reports" / "pcn" / "P1.pdf")
    assert "No boundaries were supplied" in text
    assert "funnel table was not produced" in text


@pytest.mark.slow  # renders a set of packs of its own
def test_failed_render_keeps_previous_reports(tmp_path, monkeypatch):
    from pipeline.report import render

    processed, reports = tmp_path / "processed", tmp_path / "reports"
    build_fake_warehouse(processed, optional_tables=False, boundaries=False)
    reports.mkdir()
    (reports / "README.txt").write_text("previous run")  # a previous run's file (a folder holding others is refused)

    def boom(*a, **k):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(render, "build_pack", boom)
    monkeypatch.setattr(render, "default_workers", lambda *args: 1)  # boom is patched in this process only
    with pytest.raises(RuntimeError):
        render.render_reports(processed, reports, _config())
    assert (reports / "README.txt").read_text() == "previous run"
    assert not list(tmp_path.glob(".reports.tmp-*"))


@pytest.mark.slow  # renders the fake warehouse's packs twice, once in two worker processes
def test_worker_processes_write_the_same_reports(tmp_path, monkeypatch):
    from pipeline.report import render

    processed = tmp_path / "processed"
    build_fake_warehouse(processed, optional_tables=False, boundaries=False)
    written = {}
    for workers in (1, 2):
        monkeypatch.setattr(render, "default_workers", lambda *args, workers=workers: workers)
        reports = tmp_path / f"reports_{workers}"
        render.render_reports(processed, reports, _config())
        written[workers] = {path.relative_to(reports): path.read_bytes() for path in sorted(reports.rglob("*"))
                            if path.is_file() and path.suffix == ".csv"}
        assert sorted(p.name for p in reports.rglob("*.pdf"))
    assert written[1] and written[2] == written[1]


def test_headlines_give_each_condition_its_largest_gap():
    from types import SimpleNamespace

    from pipeline.report.packs import headlines

    rows = []
    for cond, gv, missing, upper in [("hyp", "1", 400, 0.9), ("hyp", "2", 300, 0.95), ("hyp", "3", 200, 0.9),
                                     ("dep", "Black", 75, 0.86), ("dep", "Asian", 50, 1.02), ("hyp", "4", 150, 0.97)]:
        rows.append(dict(period=PERIODS[-1], condition=cond, area_type="pcn", area_code="P1",
                         group_type="ethnicity" if cond == "dep" else "imd_quintile", group_value=gv,
                         missing=float(missing), ratio=0.8, ratio_lower=0.7, ratio_upper=upper, observed_redacted=False))
    got = headlines(pd.DataFrame(rows), SimpleNamespace(latest=PERIODS[-1]), "pcn", "P1", 3)
    assert [(h["condition"], h["group_value"]) for h in got] == [("hyp", "1"), ("hyp", "2"), ("dep", "Black")]


def test_community_csv_holds_the_group_of_every_finding():
    """A community finding on a group outside the charted breakdowns (here men, by sex) prints that group's
    published `missing` ('about 60 fewer'): its row must be in the CSV beside the summary (it was not: the CSV held
    the ethnic and deprivation groups only)."""
    from pipeline.disclosure import Policy, publish
    from pipeline.report.data import Inputs
    from pipeline.report.packs import build_community

    groups = [("all", "All", 1000, 5000, 1000.0), ("ethnicity", "White", 800, 4000, 800.0),
              ("ethnicity", "Black", 200, 1000, 200.0), ("imd_quintile", "1", 500, 2500, 500.0),
              ("imd_quintile", "5", 500, 2500, 500.0), ("sex", "F", 600, 2500, 500.0), ("sex", "M", 400, 2500, 500.0)]
    true = pd.DataFrame([dict(period=PERIODS[-1], condition="depression", area_type="pcn", area_code="P1",
                              area_name="North Test PCN", group_type=gt, group_value=gv, observed=float(o),
                              population=float(n), expected=e, missing=e - o, rate=np.nan, rate_lower=np.nan,
                              rate_upper=np.nan, ratio=np.nan, ratio_lower=np.nan, ratio_upper=np.nan,
                              parent_code="QAA") for gt, gv, o, n, e in groups])
    shown = np.zeros(len(true), dtype=bool)
    community = publish(true, Policy(), {"observed": shown, "population": shown})
    inp = Inputs(prev=community, practices=PRACTICES,
                 conditions=[dict(condition="depression", label="Depression", min_age=18)], periods=list(PERIODS),
                 run_info={}, load_summary=None, data_quality=None, funnel=None, inequality=None)
    pack = build_community(inp, "P1", {})
    assert any(re.search(r"\bmen\b", finding) for finding in pack.context["findings"])
    men = pack.csv[(pack.csv["group_type"] == "sex") & (pack.csv["group_value"] == "M")]
    assert len(men) == 1 and float(men["missing"].iloc[0]) == 100
    assert set(pack.csv["group_type"]) == {"all", "ethnicity", "imd_quintile", "sex"}


# ---------------------------------------------------------------------------------------------- ICS pack

def _published_sii(reports: Path, condition: str, area_type: str, area_code: str):
    """SII/RII of an area from its published quintile counts in the ICS CSV (what the packs must print)."""
    from pipeline.stats import sii_crude_rate_proportion

    got = pd.read_csv(reports / "ics" / "QAA.csv", dtype=str, keep_default_na=False)
    q = got[(got["condition"] == condition) & (got["area_type"] == area_type) & (got["area_code"] == area_code) &
            (got["group_type"] == "imd_quintile") & (got["period"] == got["period"].max()) &
            got["group_value"].isin(list("12345"))].sort_values("group_value")
    if (q[["observed", "population"]] == MARKER).any().any() or len(q) < 5:
        return None
    res = sii_crude_rate_proportion(q["observed"].astype(float).to_numpy()[None, :],
                                    q["population"].astype(float).to_numpy()[None, :], repetitions=100_000,
                                    seed=20240331)
    return {k: float(np.asarray(getattr(res, k))[0]) for k in ("sii", "sii_lower", "sii_upper", "rii", "rii_lower",
                                                               "rii_upper")}


def test_ics_pack_has_the_sii_section(run):
    _, reports, _ = run
    text = pdf_text(reports / "ics" / "QAA.pdf")
    assert "Deprivation gradient in each PCN (SII and RII)" in text
    assert "slope index of inequality" in text and "relative index of inequality" in text
    # the warehouse's (true-count) inequality table is not what the pack prints: the gradient is worked out from
    # the published quintile counts
    assert "1.0 (−1.0 to 3.0)" not in text
    ref = _published_sii(reports, "depression", "icb", "QAA")
    assert ref is not None
    assert f"{ref['rii']:.2f} ({ref['rii_lower']:.2f}–{ref['rii_upper']:.2f})" in text
    assert "North Test PCN" in text and "NHS Test ICB (whole ICB)" in text


def _independent_core20(processed: Path, condition: str, pcn: str, group_type: str, group_value: str) -> dict:
    """Core20 parts of one PCN x group from the warehouse's stratified counts, with pandas (not the packs' SQL)."""
    con = duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True)
    try:
        sc = con.execute("select * from stratified_counts").df()
        rr = con.execute("select * from reference_rates").df()
        pr = con.execute("select practice_code, pcn_code from practices").df()
    finally:
        con.close()
    latest = sc["period"].max()
    sc = sc[(sc["period"] == latest) & (sc["condition"] == condition)].merge(pr, on="practice_code")
    sc = sc[sc["pcn_code"] == pcn]
    col = {"ethnicity": "ethnic_group", "imd_quintile": "imd_quintile", "sex": "sex_group", "age_band": "age_band"}
    sc = sc[sc[col[group_type]] == group_value]
    sc = sc.merge(rr[(rr["period"] == latest) & (rr["condition"] == condition)][["sex", "age_band", "rate"]],
                  on=["sex", "age_band"])
    sc["expected"] = sc["population"] * sc["rate"]
    core = sc[sc["imd_quintile"] == "1"]
    return dict(core20_population=core["population"].sum(), core20_observed=core["cases"].sum(),
                core20_expected=core["expected"].sum())


def _round5(x: float) -> float:
    return math.floor(x / 5 + 0.5) * 5


def test_core20_share_of_the_top_gap_matches_the_warehouse(run):
    processed, reports, _ = run
    got = pd.read_csv(reports / "ics" / "QAA.csv", dtype=str, keep_default_na=False)
    top = got[got["system_gap_rank"] == "1"]
    assert len(top) == 1
    top = top.iloc[0]
    # the planted gap: depression in Black patients of the P1 practices
    assert (top["condition"], top["area_code"], top["group_type"], top["group_value"]) == \
        ("depression", "P1", "ethnicity", "Black")
    parts = _independent_core20(processed, "depression", "P1", "ethnicity", "Black")
    # shares of the published (rounded) parts over the published group counts
    pop_share = _round5(parts["core20_population"]) / float(top["population"])
    gap = float(top["expected"]) - float(top["observed"])
    gap_share = (_round5(parts["core20_expected"]) - _round5(parts["core20_observed"])) / gap
    assert 0 < gap_share < 1
    assert float(top["core20_population_share"]) == pytest.approx(round(pop_share, 2), abs=1e-9)
    assert float(top["core20_missing_share"]) == pytest.approx(round(gap_share, 2), abs=1e-9)
    text = pdf_text(reports / "ics" / "QAA.pdf")
    assert "Largest gaps across the system" in text and "Core20 share of ICB gap" in text
    # the within-PCN view: the group's ratio over its PCN's, from the published (controlled) counts in the CSV
    whole = got[(got["period"] == top["period"]) & (got["condition"] == "depression") & (got["area_code"] == "P1") &
                (got["group_type"] == "all")].iloc[0]
    within = within_area_ratio(float(top["observed"]), float(top["expected"]), float(whole["observed"]),
                               float(whole["expected"]))
    row = (f"North Test PCN Depression Black {int(float(top['observed'])):,} "
           f"{float(within.value):.2f} ({float(within.lower):.2f}–{float(within.upper):.2f}) "
           f"{5 * round(float(within.affected) / 5):,} {100 * pop_share:.0f}% {100 * gap_share:.0f}%")
    assert row.replace(" ", "") in text.replace(" ", ""), row  # narrow columns can lose their spaces in the text
    # ranks run 1..n on the latest period's PCN rows only
    ranked = got[got["system_gap_rank"] != ""]
    assert sorted(ranked["system_gap_rank"].astype(int)) == list(range(1, len(ranked) + 1))
    assert set(ranked["area_type"]) == {"pcn"} and set(ranked["period"]) == {"2025-03-31"}
    miss = ranked.sort_values("system_gap_rank", key=lambda s: s.astype(int))["missing"].astype(float).to_numpy()
    assert (np.diff(miss) <= 0).all()


@pytest.mark.slow  # loads and controls the warehouse again (load_inputs)
def test_core20_shares_hidden_when_a_part_is_small(run):
    processed, _, cfg = run
    from pipeline.report.data import load_inputs
    from pipeline.report.packs import core20_shares

    inp = load_inputs(processed, cfg)
    key = ["condition", "area_code", "group_type", "group_value"]
    prev = inp.prev[(inp.prev["period"] == inp.latest) & (inp.prev["area_type"] == "pcn")]
    gaps = pd.DataFrame(dict(condition=["depression", "depression"], area_code=["P1", "P1"],
                             group_type=["ethnicity", "ethnicity"], group_value=["Black", "White"]))
    gaps = gaps.merge(prev, on=key, how="left")
    c20 = inp.core20.copy()
    m = (c20["area_code"] == "P1") & (c20["condition"] == "depression") & (c20["group_type"] == "ethnicity") & \
        (c20["group_value"] == "White")
    c20.loc[m, "core20_observed"] = np.nan  # a Core20 part hidden by disclosure control
    inp.core20 = c20
    out = core20_shares(inp, gaps)
    assert not out["core20_hidden"].iloc[0] and np.isfinite(out["core20_missing_share"].iloc[0])
    assert out["core20_hidden"].iloc[1] and np.isnan(out["core20_missing_share"].iloc[1])
    assert np.isnan(out["core20_population_share"].iloc[1])


@pytest.mark.slow  # loads and controls the warehouse again (load_inputs)
def test_sii_hidden_when_a_quintile_is_hidden(run):
    processed, reports, cfg = run
    from pipeline.report.data import load_inputs
    from pipeline.report.packs import inequality_section

    inp = load_inputs(processed, cfg)
    prev = inp.prev.copy()
    m = (prev["area_type"] == "pcn") & (prev["area_code"] == "P1") & (prev["group_type"] == "imd_quintile") & \
        (prev["group_value"] == "5") & (prev["condition"] == "depression") & (prev["period"] == inp.latest)
    prev.loc[m, "observed_redacted"] = True
    sec = inequality_section(prev, inp, ["P1", "P2"], {"P1": "North Test PCN", "P2": "South Test PCN"}, "QAA",
                             "NHS Test ICB")
    rows = {r[0]: r for r in next(t["table"]["rows"] for t in sec["tables"] if t["condition"] == "Depression")}
    assert rows["North Test PCN"][1:] == [MARKER, MARKER, MARKER]
    ref = _published_sii(reports, "depression", "pcn", "P2")
    if ref is not None:
        assert rows["South Test PCN"][2] == f"{ref['rii']:.2f} ({ref['rii_lower']:.2f}–{ref['rii_upper']:.2f})"
    frame = dict(sec["panels"])["Depression"]
    assert frame.set_index("label").loc["North Test PCN", "hidden"]


@pytest.mark.slow  # loads and controls the warehouse again (load_inputs)
def test_undiagnosed_only_with_a_true_prevalence_reference(run):
    processed, _, cfg = run
    from pipeline.report import packs
    from pipeline.report.data import load_inputs

    inp = load_inputs(processed, cfg)
    plain = packs.build_pcn(inp, "P1", {"max_headlines": 5})
    assert "not diagnosed" not in str(plain.context)
    assert any("not a count of undiagnosed people" in m for m in plain.context["methods"])
    basis = "the national modelled prevalence rates"
    true = packs.build_pcn(inp, "P1", {"max_headlines": 5, "reference_rates": "national.csv", "true_prevalence": True,
                                       "reference_basis": basis})
    assert true.context["comparator"] == basis and true.context["true_prevalence"]
    assert any("true prevalence" in m for m in true.context["methods"])
    external = packs.build_pcn(inp, "P1", {"max_headlines": 5, "reference_rates": "national.csv"})
    assert "not diagnosed" not in str(external.context)


@pytest.mark.slow  # loads and controls the warehouse again (load_inputs)
def test_sii_hidden_when_its_simulation_is_not_repeatable(run):
    processed, _, cfg = run
    from pipeline.report.data import load_inputs
    from pipeline.report.packs import inequality_section

    inp = load_inputs(processed, cfg)
    inp.inequality = inp.inequality.assign(reliability="good")
    poor = (inp.inequality["area_code"] == "P2") & (inp.inequality["condition"] == "depression")
    inp.inequality.loc[poor, "reliability"] = "poor"
    sec = inequality_section(inp.prev, inp, ["P1", "P2"], {"P1": "North Test PCN", "P2": "South Test PCN"}, "QAA",
                             "NHS Test ICB")
    rows = {r[0]: r for r in next(t["table"]["rows"] for t in sec["tables"] if t["condition"] == "Depression")}
    assert rows["South Test PCN"][1:] == ["–", "–", "not repeatable"]
    assert rows["North Test PCN"][1] not in ("–", MARKER) and rows["North Test PCN"][3] != "not repeatable"
    # the published gradient carries its own repeatability (computed on the published counts)
    assert set(load_inputs(processed, cfg).inequality["reliability"]) <= {"good", "poor", ""}


def test_published_files_pass_the_disclosure_scanner(run):
    """The fake warehouse's packs (its planted small cells); both real warehouses: test_end_to_end."""
    from disclosure_scan import scan_reports

    _, reports, _ = run
    res = scan_reports(reports)
    assert res.pdf_files >= 5 and res.csv_files >= 3
    assert not res.problems, res.problems[:10]


# patient data only: published registers have no age bands
def test_pcn_pack_has_age_bands_and_no_standardised_rates(run):
    """Age bands are there; directly standardised rates are not published (they need stratum counts that are
    not published, so they could not be worked out from the published counts)."""
    _, reports, _ = run
    text = pdf_text(reports / "pcn" / "P1.pdf")
    assert "By age band" in text and "Age-standardised rates by ethnic group" not in text


def test_pdf_metadata(warehouse):
    import getpass

    pdfs = sorted(warehouse.reports.rglob("*.pdf"))
    assert len(pdfs) >= 5
    for pdf in pdfs:
        r = pypdf.PdfReader(str(pdf))
        meta = r.metadata
        assert meta.title and len(meta.title) > 10, pdf.name
        author = meta.author or ""
        assert getpass.getuser() not in author and "/" not in author, pdf.name
        for v in meta.values():
            assert str(warehouse.processed.parent) not in str(v) and "/tmp/" not in str(v), pdf.name
        root = r.trailer["/Root"]
        assert str(root.get("/Lang", "")).lower().startswith("en"), pdf.name


def test_a_ratio_hidden_because_its_population_is_hidden_is_drawn_as_hidden_not_as_no_patients(tmp_path):
    """Recorded can be shown while registered (and so expected and the ratio) is hidden: the chart must say the
    value is hidden, never that the group has no patients."""
    from pipeline.report import charts

    nan = float("nan")
    frame = pd.DataFrame({"label": ["Female", "Male"], "ratio": [nan, 1.1], "ratio_lower": [nan, 0.9],
                          "ratio_upper": [nan, 1.3], "population": [nan, 1200.0], "observed": [175.0, 150.0],
                          "observed_redacted": [False, False], "population_redacted": [True, False],
                          "expected_redacted": [True, False]})
    frame["hidden"] = charts.hidden_flags(frame)
    assert frame["hidden"].tolist() == [True, False]
    svg = tmp_path / "chart.svg"
    charts.dot_chart([("Depression", frame)], svg)
    text = svg.read_text()
    assert "hidden" in text and "no patients" not in text
