"""[[indicators]] in the configuration: parsing, checks with one-sentence errors, and the window start."""
from __future__ import annotations

import datetime as dt

import pytest
from oracle import window_start as oracle_window_start

from pipeline.config import load_config
from pipeline.errors import PipelineError
from pipeline.transform import window_start

BASE = '''periods = ["2024-03-31"]
[[conditions]]
id = "htn"
codelist = "codelists/htn.csv"
'''


def _load(tmp_path, text: str):
    p = tmp_path / "c.toml"
    p.write_text(BASE + text, encoding="utf-8")
    return load_config(p)


def test_default_configuration_has_the_five_indicators():
    cfg = load_config()
    kinds = {i.id: i.kind for i in cfg.indicators}
    assert kinds == {"bp_control": "outcome", "bp_control_80": "outcome", "smi_health_check": "care_process",
                     "possible_hypertension": "case_finding", "possible_depression": "case_finding"}
    bp = cfg.indicator("bp_control")
    assert (bp.min_age, bp.max_age, bp.months) == (18, 79, 12)
    assert [(c.max_value, c.min_value) for c in bp.criteria] == [(140, None), (90, None)]
    assert cfg.indicator("bp_control_80").criteria[0].max_value == 150
    ph = cfg.indicator("possible_hypertension")
    assert (ph.months, ph.min_count, ph.criteria[0].min_value) == (24, 2, 140)
    assert cfg.indicator("possible_depression").min_count == 2


@pytest.mark.parametrize("text, words", [
    ('[[indicators]]\nid = "x"\nkind = "other"\ndenominator = "htn"\ncodelist = "a.csv"\n', "kind must be"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "nope"\ncodelist = "a.csv"\n', "not a condition id"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\n', "has no `codelist`"),
    ('[[indicators]]\nid = "x"\nkind = "case_finding"\ndenominator = "htn"\n', "has no `evidence_codelist`"),
    ('[[indicators]]\nid = "x"\nkind = "outcome"\ndenominator = "htn"\n', "needs `criteria`"),
    ('[[indicators]]\nid = "x"\nkind = "outcome"\ndenominator = "htn"\ncriteria = [{ codelist = "a.csv" }]\n',
     "no min_value or max_value"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\nmin_age = 50\n'
     'max_age = 40\n', "max_age must be at least min_age"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\nmonths = 1.5\n',
     "months must be a whole number"),
    ('[[indicators]]\nid = "htn"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\n', "share an id"),
])
def test_bad_indicator_configuration_stops_with_one_sentence(tmp_path, text, words):
    with pytest.raises(PipelineError, match=words):
        _load(tmp_path, text)


def test_configuration_without_indicators_has_none(tmp_path):
    assert _load(tmp_path, "").indicators == ()


@pytest.mark.parametrize("period, months, start", [
    ("2024-03-31", 12, "2023-03-31"), ("2024-03-31", 1, "2024-02-29"), ("2023-03-31", 1, "2023-02-28"),
    ("2024-02-29", 12, "2023-02-28"), ("2025-03-31", 24, "2023-03-31"), ("2024-05-31", 3, "2024-02-29"),
    ("2024-04-30", 1, "2024-03-30"), ("2024-01-15", 13, "2022-12-15"),
])
def test_window_start_clamps_the_day_to_the_month_end(period, months, start):
    d = dt.date.fromisoformat(period)
    assert window_start(d, months) == dt.date.fromisoformat(start)
    assert str(oracle_window_start(d, months)) == start
