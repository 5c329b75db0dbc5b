"""The attacker of tests/disclosure_attack.py against whole runs of the pipeline on 20 generated populations, from
2,000 patients at 3 practices to 50,000 at all 35: it reads only reports/ and must recover no hidden count
exactly, un-round no rounded count, and pin no more hidden cells to within +-2 than the published counts and
zeros alone do. The truth comes from the run's own warehouse. Run with `-s` to see the measures per population.
A planted leak (a ratio interval from true counts) shows the attacker is not blind."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pandas as pd
import pytest
from disclosure_attack import attack, poisson_limits, truth_from_warehouse

from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[2]
MIN_AGES = {"depression": 18, "hypertension": 0, "smi": 0}
# (patients kept, practices kept, seed): the demo's 35 practices trimmed to the first `practices` of a PCN-ordered
# list, with enough patients generated that about `patients` remain
POPULATIONS = [
    (2_000, 3, 101), (2_000, 3, 102), (2_500, 4, 103), (3_000, 5, 104), (3_000, 3, 105),
    (4_000, 6, 106), (5_000, 8, 107), (5_000, 4, 108), (6_000, 10, 109), (7_500, 12, 110),
    (8_000, 6, 111), (10_000, 15, 112), (12_000, 35, 113), (15_000, 20, 114), (18_000, 35, 115),
    (20_000, 25, 116), (25_000, 35, 117), (30_000, 30, 118), (40_000, 35, 119), (50_000, 35, 120),
]
RESULTS: list[dict] = []


def indicator_knowledge(cfg) -> dict:
    """What the packs say about each indicator: kind, register and age range (for a register's indicators, from the
    higher of the indicator's and the register's minimum age)."""
    out = {}
    for ind in cfg.indicators:
        register_min = cfg.condition(ind.denominator).min_age
        low = ind.min_age if ind.kind == "case_finding" else max(ind.min_age, register_min)
        out[ind.id] = (ind.kind, ind.denominator, low, ind.max_age)
    return out


INDICATORS = indicator_knowledge(load_config(REPO / "pipeline" / "default.toml"))


def make_population(root: Path, patients: int, practices: int, seed: int) -> Path:
    """Demo data, trimmed to `practices` practices (whole PCNs first) and their registrations."""
    from pipeline.demo import generate

    raw = root / "raw"
    generate(raw, n_patients=math.ceil(patients * 35 / practices), seed=seed)
    if practices < 35:
        prac = pd.read_csv(raw / "practices.csv", dtype=str).sort_values(["pcn_code", "practice_code"])
        keep = prac.head(practices)
        keep.to_csv(raw / "practices.csv", index=False)
        regs = pd.read_parquet(raw / "registrations.parquet")
        regs = regs[regs["practice_code"].isin(set(keep["practice_code"]))]
        regs.to_parquet(raw / "registrations.parquet", index=False)
        registered = set(regs["patient_id"])
        pats = pd.read_parquet(raw / "patients.parquet")
        pats[pats["patient_id"].isin(registered)].to_parquet(raw / "patients.parquet", index=False)
        events = pd.read_parquet(raw / "events.parquet")
        events[events["patient_id"].isin(registered)].to_parquet(raw / "events.parquet", index=False)
    return raw


def run_stages(raw: Path, root: Path, config: Path | None = None) -> tuple[Path, Path]:
    from pipeline.analyse import analyse
    from pipeline.ingest import ingest
    from pipeline.report.render import render_reports
    from pipeline.transform import transform

    cfg = load_config(config or REPO / "pipeline" / "default.toml")
    processed, reports = root / "processed", root / "reports"
    ingest(raw, processed, cfg)
    transform(processed, cfg)
    analyse(processed, cfg)
    render_reports(processed, reports, cfg)
    return processed, reports


@pytest.fixture(autouse=True, scope="module")
def _print_measures():
    os.environ.setdefault("PIPELINE_TODAY", "2026-11-29")
    yield
    if RESULTS:
        frame = pd.DataFrame(RESULTS)
        print("\n" + frame.to_string(index=False))
        print("totals:", frame.drop(columns=["patients", "practices", "seed"]).sum().to_dict())


@pytest.mark.parametrize("patients,practices,seed", POPULATIONS,
                         ids=[f"{p}p-{k}prac-s{s}" for p, k, s in POPULATIONS])
def test_attacker_recovers_nothing(tmp_path, patients, practices, seed):
    raw = make_population(tmp_path, patients, practices, seed)
    processed, reports = run_stages(raw, tmp_path)
    truth = truth_from_warehouse(processed, MIN_AGES, INDICATORS)
    # the integer program on every hidden cell's relations is run on the smaller populations (where it is cheap);
    # the larger ones get interval propagation over every relation
    outcome = attack(reports, truth, threshold=7, rounding=5, min_ages=MIN_AGES, use_milp=patients <= 6_000,
                     indicators=INDICATORS)
    RESULTS.append(dict(patients=patients, practices=practices, seed=seed, hidden=outcome.hidden,
                        published=outcome.published, exact=outcome.exact, within2=outcome.within2,
                        within2_baseline=outcome.within2_baseline, unrounded=outcome.unrounded))
    assert outcome.hidden > 0 and outcome.published > 0
    assert outcome.unsound == 0, "the attacker's bounds exclude a true value: the attacker is wrong"
    assert outcome.conflicts == 0, "one cell is published with two different values"
    assert outcome.absent_rows == 0, f"rows left out of a breakdown (each says: this group is empty): {outcome.examples[:5]}"
    assert outcome.exact == 0, f"hidden cells recovered exactly: {outcome.examples[:5]}"
    assert outcome.unrounded == 0, f"rounded counts un-rounded: {outcome.examples[:5]}"
    assert outcome.within2 <= outcome.within2_baseline


def test_attacker_finds_a_planted_leak(tmp_path):
    """Replace one published row's ratio interval with the one from its true counts (what the packs printed
    before): the attacker un-rounds that recorded count."""
    raw = make_population(tmp_path, 3_000, 5, 7001)
    processed, reports = run_stages(raw, tmp_path)
    truth = truth_from_warehouse(processed, MIN_AGES)
    before = attack(reports, truth, min_ages=MIN_AGES, use_milp=False)
    assert before.unrounded == 0
    path = next((reports / "pcn").glob("U*[0-9].csv"))
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # a published recorded count from 8 to 30 whose true value is not the rounded one
    for row in rows:
        if row["observed"] in ("", "[c]") or row["expected"] in ("", "[c]") or not 10 <= float(row["observed"]) <= 30:
            continue
        key = ("observed", row["period"], row["condition"], row["area_type"], row["area_code"], row["group_type"],
               row["group_value"])
        true = truth[key]
        if true != float(row["observed"]):
            break
    else:
        pytest.skip("no suitable row")
    expected = float(row["expected"]) + 0.7  # within the rounding band of the published expected
    lower, upper = poisson_limits(int(true))
    row["ratio"], row["ratio_lower"], row["ratio_upper"] = (f"{x / expected:.2f}" for x in (true, lower, upper))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[c for c in rows[0] if c != "_file"])
        writer.writeheader()
        writer.writerows([{k: v for k, v in r.items() if k != "_file"} for r in rows])
    after = attack(reports, truth, min_ages=MIN_AGES, use_milp=False)
    assert after.inverted_rows >= 1
    assert after.unrounded >= 1, "the attacker did not use an interval computed from the true count"


def _published_cells(reports: Path, periods: set[str]) -> dict:
    cells = {}
    for path in sorted(reports.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("period") in periods and "group_type" in row:
                    row.setdefault("condition", f"indicator:{row.get('indicator')}")
                    key = tuple(row[k] for k in ("period", "condition", "area_type", "area_code", "group_type",
                                                 "group_value"))
                    cells[key] = tuple(row[c] for c in ("observed", "population", "expected", "ratio", "ratio_lower",
                                                        "ratio_upper"))
    return cells


def test_a_date_is_published_alike_in_later_runs(tmp_path):
    """A reader holding last year's packs and this year's: the dates both publish are published identically
    (each date is protected on its own), so the two cannot be differenced."""
    raw = make_population(tmp_path / "data", 4_000, 6, 7002)
    text = (REPO / "pipeline" / "default.toml").read_text(encoding="utf-8")
    earlier = tmp_path / "earlier.toml"
    earlier.write_text(text.replace('periods = ["2023-03-31", "2024-03-31", "2025-03-31"]',
                                    'periods = ["2023-03-31", "2024-03-31"]'), encoding="utf-8")
    assert earlier.read_text(encoding="utf-8") != text
    _, reports_then = run_stages(raw, tmp_path / "then", earlier)
    _, reports_now = run_stages(raw, tmp_path / "now")
    both = {"2023-03-31", "2024-03-31"}
    then, now = _published_cells(reports_then, both), _published_cells(reports_now, both)
    shared = set(then) & set(now)
    assert len(shared) > 500
    differ = [k for k in shared if then[k] != now[k]]
    assert not differ, differ[:5]


def test_the_same_counts_in_another_row_order_are_published_alike(patient_warehouse, tmp_path):
    """Secondary suppression breaks ties by a cell's position, and a warehouse's row order is not fixed (DuckDB's
    parallel aggregation returns groups in any order): two runs on the same extract hid different cells, so a reader
    holding both saw more than either allowed. The report stage now reads every table in key order: the same
    warehouse with every table's rows shuffled publishes exactly the same counts."""
    import shutil

    import duckdb

    from pipeline.report.data import load_inputs

    shuffled = tmp_path / "processed"
    shutil.copytree(patient_warehouse.processed, shuffled)
    with duckdb.connect(str(shuffled / "warehouse.duckdb")) as con:
        con.execute("select setseed(0.42)")
        names = con.execute("select table_name from information_schema.tables where table_type = 'BASE TABLE'").fetchall()
        for (name,) in names:
            con.execute(f'create or replace table "{name}" as select * from "{name}" order by random()')
    cfg = patient_warehouse.config()
    before, after = load_inputs(patient_warehouse.processed, cfg), load_inputs(shuffled, cfg)
    compared = 0
    for part in ("prev", "indicators", "data_quality", "core20", "load_summary"):
        want, got = getattr(before, part), getattr(after, part)
        assert want is not None and len(want) == len(got), part
        # what is published, whatever the order of the rows
        in_order = [frame.astype(str).sort_values(list(frame.columns), ignore_index=True) for frame in (want, got)]
        assert in_order[1].equals(in_order[0]), part
        compared += len(want)
    assert compared > 5_000
