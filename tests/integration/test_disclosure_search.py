"""Search for disclosure breaches: many small, skewed populations through the whole pipeline, every published
file scanned by an independent scanner (tests/disclosure_scan.py), plus checks that the scanner itself sees
planted breaches. Run with `-s` to see the totals scanned."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config, write_raw
from disclosure_scan import ScanResult, scan_reports
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

TOTALS = dict(datasets=0, result=ScanResult())
PERIODS = ["2024-03-31", "2025-03-31"]
NAMES = ["Alder", "Birch", "Cedar", "Damson"]
ETHNIC_CODES = ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z", "99", ""]


def make_raw(root: Path, seed: int, n: int, n_practices: int, n_pcns: int, skew: float, death_rate: float,
             prevalence: float, method: str = "round") -> tuple[Path, Path]:
    """A small raw directory: `n` patients at 2-4 practices in 1-2 PCNs, ethnic groups skewed (`skew` = share
    of White British, the rest spread thinly), deaths, moves between practices, resolved diagnoses."""
    rng = np.random.default_rng(seed)
    pids = np.array([f"p{i:04d}" for i in range(n)])
    w = np.full(len(ETHNIC_CODES), (1 - skew) / (len(ETHNIC_CODES) - 1))
    w[0] = skew
    eth = rng.choice(ETHNIC_CODES, size=n, p=w)
    sex = rng.choice(["F", "M", "U", "I"], size=n, p=[0.49, 0.49, 0.015, 0.005])
    dob_y = rng.integers(1925, 2024, size=n)
    dob_m = rng.integers(1, 13, size=n)
    lsoas = [f"E0100{j:04d}" for j in range(8)]
    lsoa = rng.choice(lsoas + [""], size=n, p=[0.115] * 8 + [0.08])
    dead = rng.random(n) < death_rate
    dod_y = rng.integers(2022, 2026, size=n)
    patients = [dict(patient_id=p, sex=s, date_of_birth=f"{y}-{m:02d}-01", ethnicity=e, lsoa_code=l_,
                     date_of_death=f"{max(dy, y)}-{rng.integers(1, 13):02d}-15" if d else "")
                for p, s, y, m, e, l_, d, dy in zip(pids, sex, dob_y, dob_m, eth, lsoa, dead, dod_y, strict=True)]
    pcodes = [f"Y{j:05d}" for j in range(n_practices)]
    # names without digits, so that any small number in the packs' text is a number the pipeline wrote
    practices = [dict(practice_code=c, practice_name=f"{NAMES[j]} Surgery", pcn_code=f"U{j % n_pcns:05d}",
                      pcn_name=f"{NAMES[j % n_pcns]} PCN", icb_code="QXX", icb_name="Test ICB")
                 for j, c in enumerate(pcodes)]
    # practice sizes uneven: one large practice and small ones
    pw = rng.dirichlet(np.full(n_practices, 0.8))
    prac = rng.choice(pcodes, size=n, p=pw)
    regs = []
    for p, pr, y in zip(pids, prac, dob_y, strict=True):
        start = max(int(y), 2000)
        r = rng.random()
        if r < 0.1:  # moved practice in 2024
            other = pcodes[(pcodes.index(pr) + 1) % n_practices]
            regs.append(dict(patient_id=p, practice_code=other, registered_from=f"{start}-01-01", registered_to="2024-06-30"))
            regs.append(dict(patient_id=p, practice_code=pr, registered_from="2024-07-01", registered_to=""))
        elif r < 0.15:  # left
            regs.append(dict(patient_id=p, practice_code=pr, registered_from=f"{start}-01-01", registered_to="2024-12-31"))
        else:
            regs.append(dict(patient_id=p, practice_code=pr, registered_from=f"{start}-01-01", registered_to=""))
    events = []
    # ethnic skew in recording: Black and Asian groups recorded less
    eth_factor = np.where(np.isin(eth, ["M", "N", "P"]), 0.3, np.where(np.isin(eth, ["H", "J", "K", "L"]), 0.6, 1.0))
    for _cond, dx, res_code, scale in (("dep", "111", "119", 1.0), ("htn", "222", "229", 1.5)):
        has = rng.random(n) < np.clip(prevalence * scale * eth_factor, 0, 1)
        for p, y in zip(pids[has], dob_y[has], strict=True):
            yy = int(rng.integers(max(int(y), 2005), 2025))
            events.append(dict(patient_id=p, code=dx, date=f"{yy}-{rng.integers(1, 13):02d}-10"))
            if rng.random() < 0.1:
                events.append(dict(patient_id=p, code=res_code, date=f"{min(yy + 1, 2025)}-01-20"))
    deprivation = [dict(lsoa_code=c, imd_score=30 - 3 * j, imd_rank=1000 * j + 1, imd_decile=1 + j) for j, c in
                   enumerate(lsoas[:7])]  # the last LSOA is not in the deprivation file
    neighbourhoods = [dict(lsoa_code=c, neighbourhood_code=f"NH{j % 3}", neighbourhood_name=f"{NAMES[j % 3]} Hood")
                      for j, c in enumerate(lsoas[:6])]
    raw = write_raw(root / "raw", {
        "patients": patients, "registrations": regs, "events": events, "practices": practices,
        "deprivation": deprivation, "neighbourhoods": neighbourhoods,
        "codelists/dep": ["111"], "codelists/dep_res": ["119"], "codelists/htn": ["222"], "codelists/htn_res": ["229"],
    })
    cfg = write_config(root / "config.toml", PERIODS, [
        dict(id="dep", label="Depression", codelist="codelists/dep.csv", resolved_codelist="codelists/dep_res.csv",
             min_age=18),
        dict(id="htn", label="Hypertension", codelist="codelists/htn.csv", resolved_codelist="codelists/htn_res.csv",
             min_age=0),
    ])
    if method != "round":
        with open(cfg, "a", encoding="utf-8") as fh:
            fh.write(f'\n[disclosure]\nthreshold = 7\nrounding = 5\nmethod = "{method}"\n')
    return raw, cfg


def run_all(raw: Path, cfg_path: Path, root: Path) -> Path:
    from pipeline.analyse import analyse
    from pipeline.config import load_config
    from pipeline.ingest import ingest
    from pipeline.report.render import render_reports
    from pipeline.transform import transform

    cfg = load_config(cfg_path)
    processed, reports = root / "processed", root / "reports"
    ingest(raw, processed, cfg)
    transform(processed, cfg)
    analyse(processed, cfg)
    render_reports(processed, reports, cfg)
    return reports


def scan_and_record(reports: Path, **kw) -> ScanResult:
    res = scan_reports(reports, **kw)
    TOTALS["datasets"] += 1
    TOTALS["result"] += res
    return res


@pytest.fixture(autouse=True, scope="module")
def _report_totals():
    yield
    r = TOTALS["result"]
    print(f"\ndisclosure search: {TOTALS['datasets']} datasets; {r.summary()}; "
          f"{TOTALS.get('known', 0)} of the problems are known leaks awaiting a fix")
    for u in r.unexplained[:20]:
        print("  unexplained small number:", u)


def assert_clean(res: ScanResult, what: str) -> None:
    assert res.csv_files and res.pdf_files, f"{what}: nothing published?"
    assert res.cells > 0 and res.count_cells > 0 and res.table_rows > 0
    known = [p for p in res.problems if any(k in p for k in KNOWN_LEAKS)]
    TOTALS["known"] = TOTALS.get("known", 0) + len(known)
    problems = [p for p in res.problems if p not in known]
    assert not problems, f"{what}: {len(res.problems)} disclosure problems, e.g.\n" + "\n".join(problems[:15])


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing dataset is printed as drawn
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(30, 300), n_practices=st.integers(2, 4),
       n_pcns=st.integers(1, 2), skew=st.floats(0.55, 0.95), death_rate=st.floats(0.0, 0.1),
       prevalence=st.floats(0.02, 0.3))
def test_no_breach_on_small_skewed_populations(tmp_path_factory, seed, n, n_practices, n_pcns, skew, death_rate,
                                               prevalence):
    root = tmp_path_factory.mktemp("ds")
    raw, cfg = make_raw(root, seed, n, n_practices, n_pcns, skew, death_rate, prevalence)
    reports = run_all(raw, cfg, root)
    res = scan_and_record(reports, threshold=7, rounding=5, method="round", community_threshold=7)
    assert_clean(res, f"dataset seed={seed} n={n} practices={n_practices} pcns={n_pcns}")


@pytest.mark.parametrize("seed, n", [(11, 120), (12, 260)])
def test_no_breach_with_midpoint6(tmp_path, seed, n):
    raw, cfg = make_raw(tmp_path, seed, n, 3, 2, 0.7, 0.05, 0.15, method="midpoint6")
    from pipeline.config import load_config

    assert load_config(cfg).disclosure.method == "midpoint6"
    reports = run_all(raw, cfg, tmp_path)
    res = scan_and_record(reports, threshold=7, rounding=5, method="midpoint6", community_threshold=7)
    assert_clean(res, f"midpoint6 seed={seed}")
    # the packs really used midpoint-6: every published non-zero count is 3 mod 6
    vals = []
    for f in reports.rglob("*.csv"):
        with open(f, newline="", encoding="utf-8") as fh:
            vals += [float(r["population"]) for r in csv.DictReader(fh) if r.get("population") not in ("[c]", "", None)]
    assert vals and all(v == 0 or v % 6 == 3 for v in vals)


# ---------------------------------------------------------------------------------------------- the scanner itself

HEADER = ["period", "condition", "area_type", "area_code", "area_name", "group_type", "group_value", "observed",
          "population", "expected", "missing", "rate", "rate_lower", "rate_upper", "ratio", "ratio_lower",
          "ratio_upper"]


def _row(gt, gv, obs, pop, code="U00001", at="pcn", leak=()):
    """A pack CSV row; a hidden `obs` hides everything that depends on it, except the columns in `leak`."""
    # expected (= recorded here), missing (expected - recorded), rates, ratios
    on_grid = obs == "[c]" or float(obs) % 5 == 0
    dep = [obs if on_grid else "[c]", "0", "0.1", "0.05", "0.2", "1.0", "0.5", "1.5"]
    cols = ["expected", "missing", "rate", "rate_lower", "rate_upper", "ratio", "ratio_lower", "ratio_upper"]
    if obs == "[c]":
        dep = [v if c in leak else "[c]" for c, v in zip(cols, dep, strict=True)]
    return ["2025-03-31", "dep", at, code, "Area", gt, gv, obs, pop] + dep


def _write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)


def test_scanner_catches_planted_problems(tmp_path):
    rep = tmp_path / "reports"
    _write(rep / "pcn" / "U00001.csv", [
        _row("all", "All", "100", "500"),
        _row("ethnicity", "White", "80", "400"),
        _row("ethnicity", "Black", "[c]", "60"),  # the only hidden one
        _row("ethnicity", "Asian", "20", "40"),
        _row("sex", "F", "3", "250"),      # a small count published
        _row("sex", "M", "12", "250"),     # not rounded to 5
    ])
    res = scan_reports(rep)
    text = "\n".join(res.problems)
    assert "small count 3" in text
    assert "count 12 not rounded" in text
    assert "the only hidden member ethnicity=Black" in text and "subtraction" in text
    # and nothing else (`missing` is derived from the published counts: not a sibling-protected count)
    others = [p for p in res.problems if not any(k in p for k in ("small count 3", "count 12 not rounded",
                                                                    "ethnicity=Black"))]
    assert not others, others
    assert sum("ethnicity=Black" in p for p in res.problems) == 1  # observed


def test_scanner_catches_dependent_and_crossfile_leaks(tmp_path):
    rep = tmp_path / "reports"
    _write(rep / "pcn" / "U00001.csv", [
        _row("all", "All", "100", "500"),
        _row("ethnicity", "White", "[c]", "400", leak=("ratio",)),   # the ratio of a hidden count
        _row("ethnicity", "Asian", "[c]", "100"),
        _row("all", "All", "90", "470", code="Y1", at="practice"),  # practices of U00001: one hidden
        _row("all", "All", "[c]", "30", code="Y2", at="practice"),
    ])
    _write(rep / "ics" / "QXX.csv", [_row("all", "All", "105", "500")])  # same cell, other value
    _write(rep / "pcn" / "U00002.csv", [
        _row("all", "All", "[c]", "500", code="U00002"),  # the hidden total only
        _row("sex", "F", "50", "250", code="U00002"), _row("sex", "M", "50", "250", code="U00002"),
    ])
    res = scan_reports(rep)
    text = "\n".join(res.problems)
    assert "`observed` hidden but ['ratio']" in text
    assert "published as" in text
    assert "hidden total (all members shown)" in text
    assert "the only hidden member all=All of practice Y2" in text


def test_scanner_reads_pdf_text(tmp_path):
    """Planted small counts in a PDF table row and in a sentence, and a data-quality column with a single hidden
    cell under a shown total, are found; harmless small numbers are not."""
    pytest.importorskip("typst")
    import typst

    src = tmp_path / "t.typ"
    src.write_text("""#set document(title: "t")
Page 1: the largest gaps

Condition Registered Recorded Rate Expected Ratio (95% CI) Missing Overall

Depression 55 3 5.5% 10 0.30 (0.06–0.88) 7 fewer than expected

Hypertension 75 [c] [c] 10 [c] [c] [c]

Depression is recorded for about 4 fewer Black adults than expected.

Age band 5–9, quintile 1 (most deprived), 31 March 2025, aged 18 and over.

Area Registered Ethnicity not recorded No LSOA LSOA not matched No neighbourhood

Test ICB 60 16.7% 0.0% 38.3% 0.0%

Area Registered Ethnicity not recorded No LSOA LSOA not matched No neighbourhood

Alder PCN 30 33.3% 0.0% 66.7% 0.0%

Birch PCN 30 [c] 0.0% [c] 0.0%
""", encoding="utf-8")
    rep = tmp_path / "reports" / "pcn"
    rep.mkdir(parents=True)
    typst.compile(str(src), output=str(rep / "X.pdf"))
    res = scan_reports(tmp_path / "reports")
    text = "\n".join(res.problems)
    assert "small count 3" in text and "small count 7" in text and "small count 4" in text, text
    assert "'Ethnicity not recorded': 'Birch PCN' is the only hidden cell" in text, text
    assert "'LSOA not matched': 'Birch PCN' is the only hidden cell" in text, text
    assert len(res.problems) == 5, text
    assert not res.unexplained, res.unexplained


# ---------------------------------------------------------------------------------------------- regression
# A leak this search found (fixed in pipeline/report/data.py, commit e2cd198): the data-quality counts were
# secondarily suppressed only among the practices of a PCN, not among the PCNs of an ICB. The ICS pack prints
# the ICB's data-quality row above its PCNs' rows, and the PCNs add up to the ICB, so a PCN whose count was the
# only one hidden in a column was the ICB's count minus the others. Problems listed in KNOWN_LEAKS are
# tolerated by the search above (so that it keeps looking for others while a found leak awaits its fix).
KNOWN_LEAKS: tuple[str, ...] = ()


def test_data_quality_of_pcns_in_an_icb_not_recoverable(tmp_path):
    """The reproduction: one ICB, two PCNs of one practice each, 30 patients each; 20 patients of PCN A and
    3 of PCN B live in an LSOA missing from the deprivation file; rounding = 1 makes the recovery exact. The ICS
    pack showed 'LSOA not matched' for the ICB (23 of 60) and PCN A (20 of 30) and hid PCN B: 23 - 20 = 3."""
    pats, regs = [], []
    for i in range(60):
        pcn_a = i < 30
        unmatched = (i < 20) if pcn_a else (30 <= i < 33)
        pats.append(dict(patient_id=f"p{i:03d}", sex="FM"[i % 2], date_of_birth=f"{1950 + i % 40}-01-01",
                         ethnicity="A", lsoa_code="E01999999" if unmatched else "E01000001", date_of_death=""))
        regs.append(dict(patient_id=f"p{i:03d}", practice_code="Y00001" if pcn_a else "Y00002",
                         registered_from="2000-01-01", registered_to=""))
    raw = write_raw(tmp_path / "raw", {
        "patients": pats, "registrations": regs, "events": [dict(patient_id="p000", code="111", date="2020-01-01")],
        "practices": [dict(practice_code="Y00001", practice_name="Alder Surgery", pcn_code="U00001",
                           pcn_name="Alder PCN", icb_code="QXX", icb_name="Test ICB"),
                      dict(practice_code="Y00002", practice_name="Birch Surgery", pcn_code="U00002",
                           pcn_name="Birch PCN", icb_code="QXX", icb_name="Test ICB")],
        "deprivation": [dict(lsoa_code="E01000001", imd_score=20, imd_rank=1000, imd_decile=3)],
        "codelists/dep": ["111"],
    })
    cfg = write_config(tmp_path / "config.toml", ["2025-03-31"],
                       [dict(id="dep", label="Depression", codelist="codelists/dep.csv", min_age=0)])
    with open(cfg, "a", encoding="utf-8") as fh:
        fh.write('\n[disclosure]\nthreshold = 7\nrounding = 1\nmethod = "round"\n')
    reports = run_all(raw, cfg, tmp_path)
    res = scan_reports(reports, threshold=7, rounding=1)
    leaks = [p for p in res.problems if "data quality" in p]
    assert res.sibling_sets > 0
    assert not leaks, "LEAK (pipeline/report/data.py data-quality control):\n" + "\n".join(leaks)
