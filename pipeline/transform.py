"""Transform: the SQL models in sql/ (staging was run at ingest), intermediate then marts, one statement per file."""
from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
from pathlib import Path

from . import progress
from .config import Config
from .errors import PipelineError
from .paths import SQL_DIR
from .warehouse import build, query, read_table, staged, tables

log = logging.getLogger("pipeline.transform")

# The tables the models read that no model makes: what ingest loads, and the settings written below.
SETTINGS = ("periods", "conditions", "indicator_settings", "indicator_criteria", "indicator_windows")
INDICATOR_SOURCES = ("indicator_settings", "indicator_criteria", "indicator_windows", "indicator_codelists")
LAYERS = ("staging", "intermediate", "marts")

_TOKEN = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[A-Za-z_][A-Za-z0-9_.]*|\S", re.S)


def references(sql: str) -> set[str]:
    """The tables a model's SELECT reads: each name after `join`, and after a `from` that belongs to a SELECT (not
    `extract(year from x)`), that is not a function call; less the names its own CTEs define."""
    tokens = [t.lower() for t in _TOKEN.findall(sql) if not t.startswith(("--", "/*", "'"))]
    read, defined, selects = set(), set(), [False]
    for at, token in enumerate(tokens):
        after = tokens[at + 1] if at + 1 < len(tokens) else ""
        if token == "(":
            selects.append(False)
        elif token == ")" and len(selects) > 1:
            selects.pop()
        elif token == "select":
            selects[-1] = True
        elif (token == "join" or (token == "from" and selects[-1])) and after[:1].isalpha() and after != "lateral":
            if at + 2 >= len(tokens) or tokens[at + 2] != "(":
                read.add(after.split(".")[-1].strip('"'))
        elif after == "as" and at > 0 and tokens[at - 1] in ("with", "recursive", ",") \
                and at + 2 < len(tokens) and tokens[at + 2] == "(":
            defined.add(token)
    return read - defined


def model_order(sql_dir: Path | None = None, layers: tuple[str, ...] = ("intermediate", "marts")) -> tuple[str, ...]:
    """Every model file of `layers` (`intermediate/int_x`, …), in an order where each comes after the models it reads
    (read from the files themselves); ties by layer (staging → intermediate → marts), then by name. A model that
    reads a table no model makes and nothing loads, or models that read each other in a circle, stop the run."""
    sql_dir = Path(sql_dir or SQL_DIR)
    files = {f.stem: f"{layer}/{f.stem}" for layer in layers for f in sorted((sql_dir / layer).glob("*.sql"))}
    known = set(files) | set(INGESTED) | set(SETTINGS) | set(INDICATOR_SOURCES)
    needs = {}
    for name, model in files.items():
        read = references((sql_dir / f"{model}.sql").read_text())
        unknown = sorted(t for t in read if t not in known and not t.startswith("raw_"))
        if unknown:
            raise PipelineError(f"model sql/{model}.sql reads `{unknown[0]}`, which is no model in sql/ and no table "
                                f"the ingest stage loads")
        needs[name] = {t for t in read if t in files and t != name}
    rank = {name: (LAYERS.index(model.split("/")[0]), name) for name, model in files.items()}
    order, done = [], set()
    while len(order) < len(files):
        ready = [n for n in files if n not in done and needs[n] <= done]
        if not ready:
            circle = sorted(n for n in files if n not in done)
            raise PipelineError(f"the models {', '.join(circle)} read one another in a circle; no build order exists")
        first = min(ready, key=rank.__getitem__)
        order.append(files[first])
        done.add(first)
    return tuple(order)


def indicator_models(order: tuple[str, ...], sql_dir: Path | None = None) -> tuple[str, ...]:
    """The models of `order` that read the indicator settings, directly or through another model: built only when
    the configuration has indicators."""
    sql_dir = Path(sql_dir or SQL_DIR)
    tainted = set(INDICATOR_SOURCES)
    for model in order:
        if references((sql_dir / f"{model}.sql").read_text()) & tainted:
            tainted.add(Path(model).name)
    return tuple(m for m in order if Path(m).name in tainted)



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
    have = tables(con)
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
        loaded = set() if "indicator_codelists" not in tables(con) else \
            {r[0] for r in con.execute("select distinct indicator from indicator_codelists").fetchall()}
        missing = [i.id for i in cfg.indicators if i.id not in loaded]
        if missing:
            raise PipelineError(f"indicator {missing[0]} has no codelist in the warehouse; run the ingest stage with "
                                f"this configuration")


def transform(processed: Path, cfg: Config, con=None, engine: str = "duckdb") -> None:
    if con is None:
        with staged(processed, settings=cfg.engine) as c:
            return transform(processed, cfg, c, engine)
    if "run_info" in tables(con):
        ingested_by = dict(read_table(con, "run_info", ["key", "value"]).itertuples(index=False)).get("engine", "duckdb")
        if ingested_by != engine:
            raise PipelineError(f"the warehouse was ingested with --engine {ingested_by}; run the transform stage with "
                                f"--engine {ingested_by}, or the ingest stage again with --engine {engine}")
    write_settings(con, cfg, engine)
    params = {"by_imd": "imd_quintile" in cfg.reference.extra_strata,
              "by_ethnicity": "ethnicity" in cfg.reference.extra_strata,
              "use_external": cfg.reference.rates != "internal"}
    if params["use_external"] and con.execute("select count(*) from external_rates").fetchone()[0] == 0:
        raise PipelineError("the configuration names external reference rates but none were loaded; run the ingest stage again")
    order = model_order()
    indicator_order = indicator_models(order)
    models = tuple(m for m in order if m not in indicator_order)
    if engine == "spark":
        from . import spark_engine

        spark_engine.transform_models(spark_engine.session(cfg.engine), con, processed, cfg,
                                      models + (indicator_order if cfg.indicators else ()), params)
        _check_external_rates(con, cfg, params)
        _empty_indicator_counts(con, cfg)
        return
    for m in models:
        progress.current().update(Path(m).name, con=con)
        build(con, m, params)
        if m == "marts/reference_rates":
            _check_external_rates(con, cfg, params)
        n = con.execute(f"select count(*) from {Path(m).name}").fetchone()[0]
        progress.current().update(rows=n)
        log.debug("%s: %d rows", Path(m).name, n)
    for m in indicator_order if cfg.indicators else ():
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
        gap = query(con, "reference_rate_gaps").fetchone()
        if gap:
            raise PipelineError(f"reference rates file {cfg.reference.rates} has no rate for condition {gap[0]}, "
                                f"sex {gap[1]}, age band {gap[2]}")
