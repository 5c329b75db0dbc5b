"""The public-data packs for one ICB (QHM, QOF 2022-23) on England's real files (../shared/realdata).

One public run (DEP only) for the module, with --icb QHM: the ICS pack and one pack per PCN exist, page-1
numbers are the disclosure-controlled prevalence, every CSV passes the published-count rule, every chart has
alt text, metadata is clean, and the national deprivation gradient in the pack matches the raw files.
Skipped as a whole when ../shared/realdata is absent.
"""
from __future__ import annotations

import csv
import importlib.util
import re
from collections import defaultdict
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = REPO_ROOT.parent / "shared" / "realdata"
if not (REAL / "qof" / "PREVALENCE_2223.csv").is_file():
    pytest.skip("../shared/realdata is not available", allow_module_level=True)

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from pipeline.public import run_public  # noqa: E402

ICB, YEAR = "QHM", "2022-23"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _round5(x: float) -> int:
    """The policy's rounding, written independently: nearest 5, halves up."""
    return int(np.floor(abs(x) / 5 + 0.5) * 5) * (1 if x >= 0 else -1)


def _page_text(pdf: Path, page: int = 0) -> str:
    return " ".join(PdfReader(str(pdf)).pages[page].extract_text().split())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    processed = tmp_path_factory.mktemp("public_packs")
    reports = tmp_path_factory.mktemp("reports")
    summary = run_public(REAL, YEAR, processed, reports, icb=ICB, conditions=("DEP",))
    con = duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True)
    yield processed, reports / ICB, con, summary
    con.close()


def _prev(con, area_type: str, code: str) -> dict:
    cur = con.execute("select * from prevalence where condition = 'DEP' and area_type = ? and area_code = ?",
                      [area_type, code])
    return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))


def test_packs_exist_for_the_icb_and_each_pcn(run):
    processed, out, con, summary = run
    assert summary["packs"] == [str(out / f"ics_{ICB}_{YEAR}.pdf")]
    assert (out / f"ics_{ICB}_{YEAR}.pdf").stat().st_size > 20_000
    assert (out / f"ics_{ICB}_{YEAR}.csv").is_file() and (out / f"ics_{ICB}_{YEAR}_gradient.csv").is_file()
    pcns = {r["PCN_ODS_CODE"] for r in _rows(REAL / "mapping" / "MAPPING_NHS_GEOGRAPHIES_2223.csv")
            if r["ICB_ODS_CODE"] == ICB and r["PCN_ODS_CODE"] != "U"}
    assert len(pcns) == 67
    assert {p.stem for p in (out / "pcn").glob("*.pdf")} == pcns
    assert {p.stem for p in (out / "pcn").glob("*.csv")} == pcns
    # written atomically: no temporary or old folder is left beside it
    assert sorted(p.name for p in out.parent.iterdir()) == [ICB]
    ics = PdfReader(str(out / f"ics_{ICB}_{YEAR}.pdf"))
    assert 4 <= len(ics.pages) <= 7


def test_ics_page_one_numbers_are_the_controlled_prevalence(run):
    _, out, con, _ = run
    i, e = _prev(con, "icb", ICB), _prev(con, "england", "E92000001")
    text = _page_text(out / f"ics_{ICB}_{YEAR}.pdf")
    obs, pop = _round5(i["observed"]), _round5(i["population"])
    assert f"{obs:,} of {pop:,} registered patients aged 18 and over ({100 * obs / pop:.1f}%" in text
    assert f"England's {100 * _round5(e['observed']) / _round5(e['population']):.1f}%" in text
    exp, miss = _round5(i["expected"]), _round5(i["missing"])
    assert f"about {exp:,} would be expected: recorded ÷ expected is {i['ratio']:.2f}" in text
    assert f"about {abs(miss):,} {'fewer' if miss > 0 else 'more'} people than expected" in text
    # the PCN counts on page 1 are interval-based
    rows = con.execute("""select count(*) filter (where ratio_upper < 1), count(*) filter (where ratio_lower > 1),
                                 count(*) from prevalence where condition = 'DEP' and area_type = 'pcn'
                          and area_code in (select distinct parent_pcn from public_expected
                                            where parent_icb = ? and parent_pcn <> 'U')""", [ICB]).fetchone()
    low, high, n = rows
    assert f"Of the ICB's {n} primary care networks, {low} recorded clearly fewer people than expected" in text
    assert f"{high} clearly more" in text
    # the largest gap named first, with its controlled number
    top = con.execute("""select area_name, missing from prevalence where condition = 'DEP' and area_type = 'pcn'
                         and ratio_upper < 1 and area_code in (select distinct parent_pcn from public_expected
                         where parent_icb = ?) order by missing desc limit 1""", [ICB]).fetchone()
    name = re.sub(r" PCN$", "", top[0])
    assert f"Largest gaps: {name} (about {_round5(top[1]):,} fewer;" in text
    # the slope index of inequality, nationally and in the ICB, with its interval
    for code in ("E92000001", ICB):
        sii, lo, hi = con.execute("select sii, sii_lower, sii_upper from inequality where condition = 'DEP' and "
                                  "dimension = 'imd_decile' and area_code = ?", [code]).fetchone()
        assert sii < 0 and hi < 0
        assert (f"(SII) is {-100 * sii:.2f} percentage points (95% interval {-100 * hi:.2f} to {-100 * lo:.2f}), "
                "higher at the most deprived end") in text


def test_pcn_page_one_headline(run):
    _, out, con, _ = run
    for code in ("U45898", "U92223", "U20256"):   # clearly lower, clearly higher, similar (QOF 2022-23)
        p = _prev(con, "pcn", code)
        text = _page_text(out / "pcn" / f"{code}.pdf")
        assert text.startswith(p["area_name"])
        miss = _round5(p["missing"])
        if p["ratio_upper"] < 1:
            assert f"is clearly below expected: about {miss:,} fewer people than expected" in text
        elif p["ratio_lower"] > 1:
            assert f"is clearly above expected: about {-miss:,} more people than expected" in text
        else:
            assert "in line with expected" in text
        obs, pop = _round5(p["observed"]), _round5(p["population"])
        assert f"{obs:,} of {pop:,} registered patients" in text
        assert f"recorded ÷ expected {p['ratio']:.2f} (95% interval {p['ratio_lower']:.2f} to {p['ratio_upper']:.2f})" in text
        # the practices table: every practice of the PCN, with two-decimal ratios
        names = [r[0] for r in con.execute("select area_name from prevalence where condition = 'DEP' and "
                                           "area_type = 'practice' and area_code in (select area_code from "
                                           "public_expected where parent_pcn = ?)", [code]).fetchall()]
        for nm in names:
            assert nm in text
        assert re.search(r"\b1 \(", text) is None  # a ratio is never printed as a bare "1"


def test_csvs_pass_the_count_rule_and_use_prevalence_names(run):
    processed, out, con, _ = run
    csvs = sorted(out.rglob("*.csv"))
    assert len(csvs) == 2 + 67
    bad = []
    for f in csvs:
        for r in _rows(f):
            for c in ("observed", "population", "missing", "missing_model"):
                v = r.get(c)
                if v in (None, "", "[c]"):
                    continue
                x = abs(float(v))
                if x != 0 and (x < 8 or x % 5):
                    bad.append((f.name, c, v))
    assert not bad, bad[:5]
    head = list(_rows(out / f"ics_{ICB}_{YEAR}.csv")[0])
    for c in ("period", "condition", "area_type", "area_code", "area_name", "observed", "population", "rate",
              "rate_lower", "rate_upper", "expected", "ratio", "ratio_lower", "ratio_upper", "missing"):
        assert c in head
    # the ICB row of the CSV is the controlled prevalence
    row = next(r for r in _rows(out / f"ics_{ICB}_{YEAR}.csv") if r["area_type"] == "icb")
    i = _prev(con, "icb", ICB)
    assert int(row["observed"]) == _round5(i["observed"]) and int(row["population"]) == _round5(i["population"])
    assert row["ratio"] == f"{i['ratio']:.2f}"
    spec = importlib.util.spec_from_file_location("check_outputs", REPO_ROOT.parent / "shared" / "tools" / "check_outputs.py")
    if spec is None or not Path(spec.origin).is_file():
        pytest.skip("../shared/tools/check_outputs.py is not available")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(processed, out) == 0


def _figures(node, out):
    node = node.get_object()
    if isinstance(node, list) or type(node).__name__ == "ArrayObject":
        for k in node:
            _figures(k, out)
        return
    if not hasattr(node, "get"):
        return
    if node.get("/S") == "/Figure":
        out.append(str(node.get("/Alt", "")))
    kids = node.get("/K")
    if kids is not None:
        _figures(kids, out)


def test_every_image_has_alt_text_and_metadata_is_clean(run):
    _, out, _, _ = run
    pdfs = [out / f"ics_{ICB}_{YEAR}.pdf"] + sorted((out / "pcn").glob("*.pdf"))[:5]
    for pdf in pdfs:
        r = PdfReader(str(pdf))
        figs: list[str] = []
        _figures(r.trailer["/Root"]["/StructTreeRoot"], figs)
        assert len(figs) == (3 if pdf.name.startswith("ics_") else 1), pdf.name
        assert all(len(a) > 60 for a in figs), figs
        assert r.trailer["/Root"].get("/Lang") in ("en", "en-GB")
        meta = r.metadata
        assert meta.title and "recorded depression" in meta.title
        raw = pdf.read_bytes()
        for bad in (str(Path.home()).encode(), b"/tmp/", b"public-pack-", str(REPO_ROOT).encode()):
            assert bad not in raw, (pdf.name, bad)
        xmp = r.trailer["/Root"].get("/Metadata")
        assert xmp is not None and b"pdfuaid" in xmp.get_object().get_data()


def test_national_gradient_in_the_pack_matches_the_raw_files(run):
    """Deciles recomputed from the raw files with the csv module: practice IMD 2019 score (Fingertips), national
    list-weighted deciles (largest list), DEP registers summed; decile 1 and 10 as the pack prints them."""
    _, out, _, _ = run
    qof = _rows(REAL / "qof" / "PREVALENCE_2223.csv")
    size: dict = defaultdict(int)
    dep: dict = {}
    for r in qof:
        n = int(r["PRACTICE_LIST_SIZE"])
        if float(r["REGISTER"]) > n:
            continue   # the one row the adapter rejects
        size[r["PRACTICE_CODE"]] = max(size[r["PRACTICE_CODE"]], n)
        if r["GROUP_CODE"] == "DEP":
            dep[r["PRACTICE_CODE"]] = (int(float(r["REGISTER"])), n)
    score = {r["AreaCode"]: float(r["Value"]) for r in _rows(REAL / "practice_imd" / "IMD_raw.csv")
             if r["Year"] == "2019" and r["Value"] != ""}
    order = sorted((p for p in size if p in score), key=lambda p: -score[p])
    total = sum(size[p] for p in order)
    cum, sums = 0.0, defaultdict(lambda: [0, 0])
    for p in order:
        w = size[p]
        dec = min(int(10 * (cum + w / 2) / total) + 1, 10)
        cum += w
        o, n = dep[p]
        sums[dec][0] += o
        sums[dec][1] += n
    grad = {int(r["imd_decile"]): r for r in _rows(out / f"ics_{ICB}_{YEAR}_gradient.csv") if r["area_type"] == "england"}
    for d in (1, 10):
        assert int(grad[d]["observed"]) == _round5(sums[d][0]) and int(grad[d]["population"]) == _round5(sums[d][1])
    r1, r10 = sums[1][0] / sums[1][1], sums[10][0] / sums[10][1]
    text = _page_text(out / f"ics_{ICB}_{YEAR}.pdf")
    assert f"England: recorded {100 * r1:.1f}% in the most deprived tenth of practices and {100 * r10:.1f}% in the least" in text
    assert r1 > r10
