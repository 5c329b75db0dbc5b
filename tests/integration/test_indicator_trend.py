"""Change over time for indicators: a change planted between two reference dates is found, in the warehouse's
`indicator_trend` (paired counts: the same patients meet the indicator in the same cell on both dates) and in the
PCN pack (published counts only).

Five practices, one per PCN, 200 people on the hypertension register each. A care process (a check within 12
months) is recorded for 160 of each practice's people in the year to the first date; in the year to the second,
again for 160 (120 of them the same people) everywhere except practice P5, where only 60 of the first 160 had it.
"""
from __future__ import annotations

import pytest
from conftest import write_raw

from pipeline.config import load_config

HTN, CHECK = "38341003", "1366341000000100"
PRACTICES = ("P1", "P2", "P3", "P4", "P5")
DROPPED = "P5"
PER_PRACTICE, CHECKED, CHECKED_AFTER_DROP, CHECKED_BOTH_STEADY = 200, 160, 60, 120

CONFIG = '''
periods = ["2024-03-31", "2025-03-31"]

[[conditions]]
id = "htn"
label = "Hypertension"
codelist = "codelists/htn.csv"
min_age = 18

[[indicators]]
id = "check"
label = "Checked"
met = "a check recorded in the last 12 months"
kind = "care_process"
denominator = "htn"
months = 12
codelist = "codelists/check.csv"
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pipeline.analyse import analyse
    from pipeline.ingest import ingest
    from pipeline.report.data import load_inputs
    from pipeline.transform import transform
    from pipeline.warehouse import staged

    tmp = tmp_path_factory.mktemp("indicator_trend")
    patients, registrations, events = [], [], []
    for practice in PRACTICES:
        for number in range(PER_PRACTICE):
            pid = f"{practice}_{number:03d}"
            patients.append([pid, "FM"[number % 2], "1974-01-01", "A", "L1", ""])
            registrations.append([pid, practice, "2000-01-01", ""])
            events.append([pid, HTN, "2010-01-01"])
            if number < CHECKED:
                events.append([pid, CHECK, "2023-10-01"])
            if (number < CHECKED_AFTER_DROP) if practice == DROPPED else (number >= PER_PRACTICE - CHECKED):
                events.append([pid, CHECK, "2024-10-01"])
    raw = write_raw(tmp / "raw", {
        "patients": patients, "registrations": registrations, "events": events,
        "practices": [[p, f"Practice {p}", f"N{p}", f"PCN {p}", "I1", "ICB One"] for p in PRACTICES],
        "deprivation": [["L1", "40", "100", "1"]],
        "codelists/htn": [HTN], "codelists/check": [CHECK],
    })
    (tmp / "config.toml").write_text(CONFIG, encoding="utf-8")
    cfg = load_config(tmp / "config.toml")
    with staged(tmp / "processed", fresh=True) as con:
        ingest(raw, tmp / "processed", cfg, con)
        transform(tmp / "processed", cfg, con)
        analyse(tmp / "processed", cfg, con)
        trend = con.execute("select * from indicator_trend where area_type = 'pcn' and group_type = 'all'").df()
    return trend.set_index("area_code"), load_inputs(tmp / "processed", cfg), cfg


def test_planted_drop_is_found_with_paired_counts(run):
    trend, _, _ = run
    dropped, steady = trend.loc[f"N{DROPPED}"], trend.loc["NP1"]
    # the same patients met the indicator on both dates: the paired overlap
    assert dropped["cases_both"] == CHECKED_AFTER_DROP and steady["cases_both"] == CHECKED_BOTH_STEADY
    # on the first date's rates (160 of 200 everywhere): 160 expected on both dates
    assert dropped["expected_from"] == pytest.approx(CHECKED) and dropped["expected_to"] == pytest.approx(CHECKED)
    assert dropped["change"] == pytest.approx(CHECKED_AFTER_DROP / CHECKED)
    assert dropped["change_upper"] < 1 and dropped["label"] == "widened"
    assert steady["change"] == pytest.approx(1.0) and steady["change_lower"] < 1 < steady["change_upper"]
    # the whole dataset fell from 800 to 700 of 1,000: the comparator's own change
    assert dropped["comparator_change"] == pytest.approx(700 / 800)


def test_pcn_pack_prints_the_published_change(run):
    from pipeline.report.indicator_pages import indicator_csv
    from pipeline.report.packs import build_pcn

    _, inp, cfg = run
    pack = build_pcn(inp, f"N{DROPPED}", cfg.report)
    summary = pack.context["indicator_families"][0]["indicators"][0]["summary"]
    assert "the gap has widened" in summary
    assert any("Checked" in item["text"] and "the gap has widened" in item["change"]
               for item in pack.context["headlines"])
    steady = build_pcn(inp, "NP1", cfg.report).context["indicator_families"][0]["indicators"][0]["summary"]
    assert "widened" not in steady and "narrowed" not in steady and "Since" in steady
    rows = indicator_csv(inp, [("pcn", [f"N{DROPPED}"]), ("icb", ["I1"])])
    own = rows[(rows["area_type"] == "pcn") & (rows["group_type"] == "all") & (rows["period"] == "2025-03-31")]
    assert own["change_label"].tolist() == ["widened"]
    assert own["cases_on_both_dates"].tolist() == [CHECKED_AFTER_DROP]
