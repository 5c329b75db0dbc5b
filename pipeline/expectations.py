"""Great Expectations suites on what is small: reference tables, per-file summaries and the marts.

Row-level checks of the big patient tables are set-based SQL (sql/staging); these suites confirm that what was
loaded and what was built keep the contract (columns, types, allowed values, uniqueness, referential integrity).
A failure here is a bug in the pipeline, not in the user's data, and stops the run.
"""
from __future__ import annotations

import functools
import logging
import os
import sys

import pandas as pd

from .schema import (
    AREA_TYPES,
    GROUP_ORDER,
    GROUP_TYPES,
    OUTPUT_BY_NAME,
    output_columns,
    source_columns,
)
from .warehouse import query, read_table

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
log = logging.getLogger("pipeline.expectations")


class ExpectationFailed(RuntimeError):
    pass


def _import_gx():
    """great_expectations imports pyspark.sql.connect whenever pyspark (the spark extra) is installed. That module
    takes a __main__ with neither __spec__ nor __file__ (`python -c`, a pytest-xdist worker) for its own doctest
    runner and, without grpc, calls sys.exit(0): the run would end silently, half done. With a __file__ in place for
    the import (os.devnull), it raises ImportError instead, which GX handles as in any script."""
    main = sys.modules.get("__main__")
    lend = main is not None and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
    if lend:
        main.__file__ = os.devnull
    try:
        import great_expectations as gx
    finally:
        if lend:
            del main.__file__
    return gx


@functools.lru_cache(maxsize=1)
def _context():
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")] + ["great_expectations"]:
        logging.getLogger(name).setLevel(logging.WARNING)  # its INFO lines name temporary paths
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx, ctx.data_sources.add_pandas("frames")


def validate(name: str, df: pd.DataFrame, expectations: list) -> None:
    gx = _import_gx()
    ctx, ds = _context()
    asset = ds.add_dataframe_asset(name=f"{name}_{len(ds.assets)}")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name=f"{name}_{len(ds.assets)}", expectations=expectations)
    res = batch.validate(suite)
    if not res.success:
        failed = [f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column') or ''})"
                  for r in res.results if not r.success]
        raise ExpectationFailed(f"internal check failed on `{name}`: {', '.join(failed)}")
    log.debug("expectations on %s: %d passed", name, len(res.results))


def E():
    return _import_gx().expectations


def validate_loaded(con, patient_level: dict | None = None) -> None:
    """Suites on the reference tables and on the per-file summaries after ingest. `patient_level`: the summaries of
    the patient-level tables when another engine holds them (frames named as below); else they come from `con`."""
    patient_level = patient_level or {}
    e = E()
    practices = read_table(con, "practices")
    validate("practices", practices, [
        e.ExpectTableColumnsToMatchSet(column_set=source_columns("practices")),
        e.ExpectColumnValuesToBeUnique(column="practice_code"),
        *[e.ExpectColumnValuesToNotBeNull(column=c) for c in ("practice_code", "pcn_code", "icb_code")],
    ])
    dep = read_table(con, "deprivation")
    validate("deprivation", dep, [
        e.ExpectColumnValuesToBeUnique(column="lsoa_code"),
        e.ExpectColumnValuesToNotBeNull(column="lsoa_code"),
        e.ExpectColumnValuesToBeBetween(column="imd_decile", min_value=1, max_value=10),
        e.ExpectColumnValuesToBeBetween(column="imd_quintile", min_value=1, max_value=5),
    ])
    nb = read_table(con, "neighbourhoods")
    validate("neighbourhoods", nb, [
        e.ExpectColumnValuesToBeUnique(column="lsoa_code"),
        e.ExpectColumnValuesToNotBeNull(column="neighbourhood_code"),
    ])
    summary = read_table(con, "load_summary")
    summary["rows_accounted"] = summary["rows_loaded"] + summary["rows_rejected"]
    validate("load_summary", summary, [
        e.ExpectColumnPairValuesToBeEqual(column_A="rows_read", column_B="rows_accounted"),
        e.ExpectColumnValuesToBeUnique(column="source"),
    ])
    # referential integrity, summarised per file: the distinct keys each child table uses
    reg_practices = patient_level.get("registrations_practices")
    if reg_practices is None:
        reg_practices = query(con, "registrations_practices").df()
    validate("registrations_practices", reg_practices, [
        e.ExpectColumnValuesToBeInSet(column="practice_code", value_set=practices["practice_code"].tolist()),
    ])
    orphans = patient_level.get("orphans")
    orphans = orphans if orphans is not None else query(con, "orphans").df()
    validate("orphans", orphans, [e.ExpectColumnValuesToBeBetween(column="orphans", min_value=0, max_value=0)])
    pats = patient_level.get("patients_summary")
    pats = pats if pats is not None else query(con, "patients_summary").df()
    validate("patients_summary", pats, [
        e.ExpectColumnPairValuesToBeEqual(column_A="n", column_B="n_distinct"),
        e.ExpectColumnValuesToBeBetween(column="bad_sex", min_value=0, max_value=0),
    ])


def declared_shape(name: str, df: pd.DataFrame) -> list:
    """The expectations every output table meets as OUTPUT_TABLES declares it: its columns in their order (the
    optional ones where the frame has them), its key unique and never empty."""
    e = E()
    table = OUTPUT_BY_NAME[name]
    columns = output_columns(name) + [c for c, _ in table.optional if c in df.columns]
    shape = [] if table.open_ended else [e.ExpectTableColumnsToMatchOrderedList(column_list=columns)]
    if table.key:
        shape.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(table.key)))
        shape += [e.ExpectColumnValuesToNotBeNull(column=c) for c in table.key]
    return shape


def validate_output(name: str, df: pd.DataFrame) -> None:
    """Stop when a table the analyse stage built is not what OUTPUT_TABLES declares (a bug, never the data's fault)."""
    validate(name, df, declared_shape(name, df))


def validate_prevalence(df: pd.DataFrame) -> None:
    e = E()
    allowed = {group_type: list(values) for group_type, values in GROUP_ORDER.items()}
    exps = [
        e.ExpectColumnValuesToBeInSet(column="area_type", value_set=list(AREA_TYPES)),
        e.ExpectColumnValuesToBeInSet(column="group_type", value_set=list(GROUP_TYPES)),
        e.ExpectColumnValuesToBeBetween(column="population", min_value=1),
        e.ExpectColumnValuesToBeBetween(column="observed", min_value=0),
        e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="population", column_B="observed", or_equal=True),
        e.ExpectColumnValuesToBeBetween(column="rate", min_value=0, max_value=1),
        e.ExpectColumnValuesToBeBetween(column="rate_lower", min_value=0, max_value=1),
        e.ExpectColumnValuesToBeBetween(column="rate_upper", min_value=0, max_value=1),
        *declared_shape("prevalence", df),
    ]
    validate("prevalence", df, exps)
    for gt, values in allowed.items():
        sub = df.loc[df["group_type"] == gt, ["group_value"]]
        if len(sub):
            validate(f"prevalence_{gt}", sub, [e.ExpectColumnValuesToBeInSet(column="group_value", value_set=values)])
