"""Transform: the SQL models in sql/ (staging was run at ingest), intermediate then marts, one statement per file."""
from __future__ import annotations

import calendar
import datetime as dt
import logging
from pathlib import Path

from . import progress
from .config import Config
from .errors import PipelineError
from .warehouse import build, staged

log = logging.getLogger("pipeline.transform")

MODELS = (
    "intermediate/int_lsoa_deprivation",
    "intermediate/int_patients_registered_on_date",
    "intermediate/int_condition_cases",
    "marts/stratified_counts",
    "marts/reference_rates",
    "marts/area_group_strata",
    "marts/prevalence_counts",
    "marts/data_quality",
    "marts/trend_transitions",
    "marts/trend_expected",
)


INDICATOR_MODELS = (
    "intermediate/int_indicator_care_process",
    "intermediate/int_indicator_outcome",
    "intermediate/int_indicator_case_finding",
    "intermediate/int_indicator_numerators",
    "marts/indicator_stratified_counts",
    "marts/indicator_reference_rates",
    "marts/indicator_counts",
    "marts/indicator_trend_transitions",
    "marts/indicator_trend_expected",
)


def window_start(period: dt.date, months: int) -> dt.date:
    """The exclusive start of an indicator's window (start, period]: `months` calendar months before the date,
    the day clamped to the month's end (31 March less 1 month is 29 February in a leap year)."""
    total = period.year * 12 + (period.month - 1) - months
    year, month = divmod(total, 12)
    return dt.date(year, month + 1, min(period.day, calendar.monthrange(year, month + 1)[1]))


INGESTED = ("patients", "registrations", "events", "practices", "deprivation", "neighbourhoods", "codelists",
            "external_rates", "lsoa_lookup", "load_summary", "rejects", "run_info")


def write_settings(con, cfg: Config, engine: str = "duckdb") -> None:
    """The configuration's reference dates and conditions, as tables the models join to."""
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    on_spark = ("patients", "registrations", "events")  # the Spark engine keeps these in its own storage
    lacking = [t for t in INGESTED if t not in have and not (engine == "spark" and t in on_spark)]
    if lacking:
        raise PipelineError(f"the warehouse has no `{lacking[0]}` table (it was built by an older version or an "
                            f"interrupted ingest); run the ingest stage again")
    con.execute("create or replace table periods (period date primary key)")
    con.executemany("insert into periods values (?)", [(p,) for p in cfg.periods])
    con.execute("create or replace table conditions (condition varchar primary key, label varchar, min_age integer)")
    con.executemany("insert into conditions values (?, ?, ?)", [(c.id, c.label, c.min_age) for c in cfg.conditions])
    write_indicator_settings(con, cfg)
    loaded = {r[0] for r in con.execute("select distinct condition from codelists").fetchall()}
    missing = [c.id for c in cfg.conditions if c.id not in loaded]
    if missing:
        raise PipelineError(f"condition {missing[0]} has no codelist in the warehouse; run the ingest stage with this configuration")


def write_indicator_settings(con, cfg: Config) -> None:
    """The configuration's indicators as tables the indicator models join to: `indicator_settings` (kind,
    denominator condition, effective age limits, min_count), `indicator_criteria` (value bounds per criterion) and
    `indicator_windows` (each reference date's window start)."""
    con.execute("create or replace table indicator_settings (indicator varchar primary key, label varchar, "
                "kind varchar, denominator varchar, min_age integer, max_age integer, months integer, min_count integer)")
    con.execute("create or replace table indicator_criteria (indicator varchar, criterion integer, min_value double, "
                "max_value double)")
    con.execute("create or replace table indicator_windows (period date, indicator varchar, window_start date)")
    settings, criteria, windows = [], [], []
    for ind in cfg.indicators:
        condition_min_age = cfg.condition(ind.denominator).min_age
        min_age = ind.min_age if ind.kind == "case_finding" else max(ind.min_age, condition_min_age)
        settings.append((ind.id, ind.label, ind.kind, ind.denominator, min_age, ind.max_age, ind.months, ind.min_count))
        criteria += [(ind.id, number, c.min_value, c.max_value) for number, c in enumerate(ind.criteria, start=1)]
        windows += [(p, ind.id, window_start(p, ind.months)) for p in cfg.periods]
    if settings:
        con.executemany("insert into indicator_settings values (?, ?, ?, ?, ?, ?, ?, ?)", settings)
        con.executemany("insert into indicator_criteria values (?, ?, ?, ?)", criteria)
        con.executemany("insert into indicator_windows values (?, ?, ?)", windows)
        have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        loaded = set() if "indicator_codelists" not in have else \
            {r[0] for r in con.execute("select distinct indicator from indicator_codelists").fetchall()}
        missing = [i.id for i in cfg.indicators if i.id not in loaded]
        if missing:
            raise PipelineError(f"indicator {missing[0]} has no codelist in the warehouse; run the ingest stage with "
                                f"this configuration")


def transform(processed: Path, cfg: Config, con=None, engine: str = "duckdb") -> None:
    if con is None:
        with staged(processed, settings=cfg.engine) as c:
            return transform(processed, cfg, c, engine)
    if con.execute("select count(*) from information_schema.tables where table_name = 'run_info'").fetchone()[0]:
        ingested_by = dict(con.execute("select key, value from run_info").fetchall()).get("engine", "duckdb")
        if ingested_by != engine:
            raise PipelineError(f"the warehouse was ingested with --engine {ingested_by}; run the transform stage with "
                                f"--engine {ingested_by}, or the ingest stage again with --engine {engine}")
    write_settings(con, cfg, engine)
    params = {"by_imd": "imd_quintile" in cfg.reference.extra_strata,
              "by_ethnicity": "ethnicity" in cfg.reference.extra_strata,
              "use_external": cfg.reference.rates != "internal"}
    if params["use_external"] and con.execute("select count(*) from external_rates").fetchone()[0] == 0:
        raise PipelineError("the configuration names external reference rates but none were loaded; run the ingest stage again")
    if engine == "spark":
        from . import spark_engine

        spark_engine.transform_models(spark_engine.session(cfg.engine), con, processed, cfg,
                                      MODELS + (INDICATOR_MODELS if cfg.indicators else ()), params)
        _check_external_rates(con, cfg, params)
        _empty_indicator_counts(con, cfg)
        return
    for m in MODELS:
        progress.current().update(Path(m).name, con=con)
        build(con, m, params)
        if m == "marts/reference_rates":
            _check_external_rates(con, cfg, params)
        n = con.execute(f"select count(*) from {Path(m).name}").fetchone()[0]
        progress.current().update(rows=n)
        log.debug("%s: %d rows", Path(m).name, n)
    for m in INDICATOR_MODELS if cfg.indicators else ():
        # denominators are counted, never listed (millions of rows); checks/int_indicator_denominators lists them
        build(con, m, params)
        log.debug("%s: %d rows", Path(m).name, con.execute(f"select count(*) from {Path(m).name}").fetchone()[0])
    _empty_indicator_counts(con, cfg)


def _empty_indicator_counts(con, cfg: Config) -> None:
    if not cfg.indicators:  # no indicators configured: an empty table keeps later stages uniform
        con.execute("create or replace table indicator_counts (period date, indicator varchar, kind varchar, "
                    "area_type varchar, area_code varchar, area_name varchar, group_type varchar, group_value varchar, "
                    "observed bigint, population bigint, expected double, register_in_range bigint)")


def _check_external_rates(con, cfg: Config, params: dict) -> None:
    if params["use_external"]:
        gap = con.execute("select condition, sex, age_band from reference_rates where rate is null "
                          "and population > 0 order by 1, 2, 3 limit 1").fetchone()
        if gap:
            raise PipelineError(f"reference rates file {cfg.reference.rates} has no rate for condition {gap[0]}, "
                                f"sex {gap[1]}, age band {gap[2]}")
