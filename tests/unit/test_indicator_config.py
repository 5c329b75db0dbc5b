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
min_age = 18
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
    # found by fuzzing configurations (branch config-fuzz): each of these ran on, giving a traceback or numbers
    # that silently meant something else than the configuration says
    ('[[indicators]]\nid = "x"\nkind = "outcome"\ndenominator = "htn"\n'
     'criteria = [{ codelist = "a.csv", min_value = 150, max_value = 140 }]\n', "min_value 150 above max_value 140"),
    ('[[indicators]]\nid = "x"\nkind = "outcome"\ndenominator = "htn"\ncriteria = [{ codelist = "a.csv", max_value = nan }]\n',
     "max_value must be a finite number"),
    ('[[indicators]]\nid = "x"\nkind = "case_finding"\ndenominator = "htn"\nevidence_codelist = "a.csv"\n'
     'min_value = inf\n', "min_value must be a finite number"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\nmin_value = 140\n',
     "`min_value` applies to case_finding indicators only"),
    ('[[indicators]]\nid = "x"\nkind = "outcome"\ndenominator = "htn"\nmin_count = 2\n'
     'criteria = [{ codelist = "a.csv", max_value = 140 }]\n', "`min_count` applies to case_finding"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\n'
     'criteria = [{ codelist = "a.csv", max_value = 140 }]\n', "`criteria` applies to outcome indicators only"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\nmonths = 100000\n',
     "months must be at most 1200"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\nmin_age = 200\n',
     "min_age and max_age must be from 0 to 150"),
    ('[[indicators]]\nid = "x"\nkind = "care_process"\ndenominator = "htn"\ncodelist = "a.csv"\nmax_age = 10\n',
     "max_age 10 is below the min_age 18 of its denominator htn"),
])
def test_bad_indicator_configuration_stops_with_one_sentence(tmp_path, text, words):
    with pytest.raises(PipelineError, match=words):
        _load(tmp_path, text)


def test_case_finding_may_reach_below_the_registers_min_age(tmp_path):
    """"Not on the register" holds whatever the condition's min_age, so a case-finding band below it is sound."""
    cfg = _load(tmp_path, '[[indicators]]\nid = "x"\nkind = "case_finding"\ndenominator = "htn"\n'
                          'evidence_codelist = "a.csv"\nmax_age = 10\n')
    assert cfg.indicator("x").max_age == 10


@pytest.mark.parametrize("text, words", [
    ('periods = ["9999-12-31"]\n[[conditions]]\nid = "a"\ncodelist = "a.csv"\n', "outside the years 1900 to 2200"),
    ('periods = [0001-01-01]\n[[conditions]]\nid = "a"\ncodelist = "a.csv"\n', "outside the years 1900 to 2200"),
    ('periods = ["2024-03-31"]\n[[conditions]]\nid = "a"\ncodelist = "a.csv"\nmin_age = 10000000000\n',
     "min_age must be from 0 to 150"),
])
def test_implausible_periods_and_ages_stop_with_one_sentence(tmp_path, text, words):
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError, match=words):
        load_config(p)


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
