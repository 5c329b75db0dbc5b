"""The published-data packs for one ICB (QUY, QOF 2022-23 and 2024-25) on England's real files (../shared/realdata).

One run (three registers) for the module, with --icb QUY: the same pack builder as the patient path writes the
ICS pack and one pack per PCN; their numbers are the published QOF counts, unrounded; the sections without
data (ethnicity, neighbourhoods, data quality) are left out; the change between the QOF years is there; every
chart has alt text and the metadata is clean. Skipped as a whole when ../shared/realdata is absent.
"""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = REPO_ROOT.parent / "shared" / "realdata"
if not (REAL / "qof" / "PREVALENCE_2425.csv").is_file():
    pytest.skip("../shared/realdata is not available", allow_module_level=True)

import duckdb  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from pipeline.public import run_public  # noqa: E402

ICB, YEARS, REGISTERS = "QUY", "2022-23,2024-25", ("DEP", "DM", "HYP")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _text(pdf: Path) -> str:
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(str(pdf)).pages)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    processed = tmp_path_factory.mktemp("public_packs")
    reports = tmp_path_factory.mktemp("reports")
    summary = run_public(REAL, YEARS, processed, reports, icb=ICB, conditions=REGISTERS)
    con = duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True)
    yield processed, reports, con, summary
    con.close()


def test_packs_exist_for_the_icb_and_each_pcn(run):
    _, out, con, summary = run
    pcns = {c for (c,) in con.execute("""select distinct p.pcn_code from practices p join prevalence v
                                         on v.area_type = 'pcn' and v.area_code = p.pcn_code
                                         where p.icb_code = ?""", [ICB]).fetchall()}
    assert {p.stem for p in (out / "pcn").glob("*.pdf")} == pcns
    assert (out / "ics" / f"{ICB}.pdf").is_file()
    assert summary["packs"] == {"pcn": len(pcns), "ics": 1}
    assert not (out / "community").exists()   # no patient groups in published data: no community summaries


def test_pack_numbers_are_the_published_counts_unrounded(run):
    _, out, con, _ = run
    pcn = sorted((out / "pcn").glob("*.csv"))[0]
    rows = [r for r in _rows(pcn) if r["period"] == "2025-03-31"]
    assert {r["condition"] for r in rows} == set(REGISTERS)
    for r in rows:
        o, p = con.execute("select observed, population from prevalence where period = '2025-03-31' and condition = ? "
                           "and area_type = ? and area_code = ? and group_type = ? and group_value = ?",
                           [r["condition"], r["area_type"], r["area_code"], r["group_type"], r["group_value"]]).fetchone()
        assert (int(r["observed"]), int(r["population"])) == (o, p)
    assert any(int(r["observed"]) % 5 for r in rows)   # not rounded
    text = _text(pcn.with_suffix(".pdf"))
    assert "public already" in text and "unrounded" in text
    for absent in ("Neighbourhoods", "Data quality", "By ethnic group", "Appendix"):
        assert absent not in text, absent
    assert "Change over time" in text and "31 Mar 2023" in text.replace("March", "Mar")


def test_every_image_has_alt_text_and_metadata_is_clean(run):
    _, out, _, _ = run
    for pdf in [out / "ics" / f"{ICB}.pdf"] + sorted((out / "pcn").glob("*.pdf"))[:3]:
        reader = PdfReader(str(pdf))
        figures: list[str] = []
        _figures(reader.trailer["/Root"]["/StructTreeRoot"], figures)
        assert figures and all(len(alt) > 40 for alt in figures), (pdf.name, figures)
        assert reader.metadata.title
        raw = pdf.read_bytes()
        for bad in (str(Path.home()).encode(), b"/tmp/", str(REPO_ROOT).encode()):
            assert bad not in raw, (pdf.name, bad)


def test_contract_checker_passes(run):
    processed, _, _, _ = run
    spec = importlib.util.spec_from_file_location("check_outputs", REPO_ROOT.parent / "shared" / "tools" / "check_outputs.py")
    if spec is None or not Path(spec.origin).is_file():
        pytest.skip("../shared/tools/check_outputs.py is not available")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(processed, None) == 0


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
