"""The CLI end to end on a small generated extract: every output exists, the contract checker passes, and page 1 of
the planted PCN's pack names the depression gap in Black adults with its patient number.

The run is the session's patient warehouse (conftest `patient_warehouse`: demo-data 30,000 patients, seed 11, then
`run`), shared with the other report tests. Tests that take `warehouse` run on it and on the published warehouse
(pipeline/public.py on NHS England's files written small, tests/warehouses.py)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import duckdb
import pytest
from conftest import REPO_ROOT
from pypdf import PdfReader

CHECKER = REPO_ROOT.parent / "shared" / "tools" / "check_outputs.py"


@pytest.fixture(scope="module")
def run(patient_warehouse):
    """The folder holding raw/, processed/ and reports/ of the session's demo run."""
    return patient_warehouse.processed.parent


def test_outputs_exist(run):
    for t in ("prevalence", "load_summary", "rejects", "inequality", "funnel", "trend", "comparisons", "dsr", "data_quality"):
        assert (run / "processed" / f"{t}.parquet").exists(), t
    pcn = sorted(p.stem for p in (run / "reports" / "pcn").glob("*.pdf"))
    assert len(pcn) == 6 and pcn == sorted(p.stem for p in (run / "reports" / "pcn").glob("U*[0-9].csv"))
    assert all((run / "reports" / "pcn" / f"{code}_data_quality.csv").exists() for code in pcn)
    assert len(list((run / "reports" / "ics").glob("*.pdf"))) == 1
    assert len(list((run / "reports" / "community").glob("*.pdf"))) == 6


def test_log_has_one_line_per_stage(run):
    """Off a terminal, `run` logs one line per stage (rows or packs, and seconds) and nothing else on clean data."""
    lines = (run / "run_stderr.txt").read_text().splitlines()
    stages = [line.split(" INFO ", 1)[1].split(":")[0].split(" done")[0] for line in lines if " INFO " in line]
    assert stages == ["ingest", "transform", "analyse", "report"], lines
    assert len(lines) == 4, lines
    assert re.search(r"report done in [0-9.]+ s \(13 packs: 6 pcn, 1 ics, 6 community\)$", lines[-1]), lines[-1]


# patient data only: the checker holds every published count to the rounding rule (published QOF counts are shown
# as published)
@pytest.mark.skipif(not CHECKER.exists(), reason="../shared/tools/check_outputs.py not available")
def test_contract_checker_passes(run):
    r = subprocess.run([sys.executable, str(CHECKER), str(run / "processed"), str(run / "reports")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 problem(s)" in r.stdout


def test_page_one_names_the_planted_gap(run):
    con = duckdb.connect(str(run / "processed" / "warehouse.duckdb"), read_only=True)
    row = con.execute("""select missing, ratio_upper from prevalence where area_type = 'pcn' and area_code = 'U99005'
                         and condition = 'depression' and group_type = 'ethnicity' and group_value = 'Black'
                         and period = (select max(period) from prevalence)""").fetchone()
    con.close()
    assert row[1] < 1  # the planted gap is clear in the marts
    text = PdfReader(run / "reports" / "pcn" / "U99005.pdf").pages[0].extract_text()
    flat = " ".join(text.split())
    # page 1, part 2: Black adults against the PCN's own level come first (the planted within-PCN gap)
    first_gap = flat.split("Gap 1")[1].split("Gap 2")[0]
    assert first_gap.startswith(" Depression: recorded for Black adults at") and "times the PCN's own level" in first_gap
    assert "fewer than if they were recorded like the PCN as a whole" in first_gap


def test_disclosure_scan_of_every_published_file(warehouse):
    """The independent scanner on everything under reports/, with each source's rule: patient counts hidden from 1
    to 7 and rounded to 5; published QOF counts shown as published (threshold 0, no rounding), where the scanner
    still holds every file to one value per cell, `missing` = expected - recorded, and nothing derived from a hidden
    count."""
    from disclosure_scan import scan_reports

    if warehouse.source == "patient":
        res = scan_reports(warehouse.reports)
        assert res.files >= 26 and res.count_cells > 1000
    else:
        res = scan_reports(warehouse.reports, threshold=0, rounding=1)
        assert res.files >= 20 and res.count_cells > 1000 and res.pdf_count_numbers > 100
    assert not res.problems, res.problems[:5]


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_every_page_of_every_pack_renders(warehouse, tmp_path):
    pdfs = sorted(warehouse.reports.rglob("*.pdf"))
    pages = 0
    for pdf in pdfs:
        n = len(PdfReader(pdf).pages)
        out = tmp_path / pdf.stem
        r = subprocess.run(["pdftoppm", "-png", "-r", "20", str(pdf), str(out)], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), (pdf.name, r.stderr)
        pngs = list(tmp_path.glob(f"{pdf.stem}-*.png"))
        assert len(pngs) == n, pdf.name
        assert all(p.stat().st_size > 500 for p in pngs)
        for p in pngs:
            p.unlink()
        pages += n
    assert pages >= (13 * 2 if warehouse.source == "patient" else 7 * 2)


def test_funnel_comparisons_and_wording_agree_on_every_practice(warehouse):
    """One interval method per quantity: the funnel's significance, the comparisons table's label and the packs'
    direction words never put a practice (or PCN) on different sides, for the ratio and for the rate."""
    from pipeline.report import wording

    con = warehouse.connect()
    rows = con.execute("""
        select f.area_type, f.area_code, f.statistic, f.significance, c.label, p.ratio_lower, p.ratio_upper,
               f.parent_value
        from funnel as f
        join comparisons as c
          on c.period = f.period and c.condition = f.condition and c.area_type = f.area_type
         and c.area_code = f.area_code and c.comparison = (case f.statistic when 'ratio' then 'ratio' else 'rate' end) || '_vs_icb'
        join prevalence as p
          on p.period = f.period and p.condition = f.condition and p.area_type = f.area_type
         and p.area_code = f.area_code and p.group_type = 'all'
        where f.area_type in ('practice', 'pcn')""").fetchall()
    con.close()
    assert len(rows) > (100 if warehouse.source == "patient" else 200)
    side = {"High": "higher", "Low": "lower", "Not": "similar"}
    words = {"more": "higher", "fewer": "lower", "similar": "similar"}
    for area_type, code, statistic, significance, label, lower, upper, parent in rows:
        funnel_side = side[significance.split(" ")[0]]
        assert funnel_side == label, (area_type, code, statistic, significance, label)
        if statistic == "ratio" and warehouse.source == "patient":
            # one ICB: its ratio is 1 with internal rates, so the words (the interval against 1) are the funnel's
            # side; published data have two ICBs, each at its own ratio to England
            assert parent == pytest.approx(1.0)
            assert words[wording.direction(lower, upper)] == funnel_side, (area_type, code, significance)
