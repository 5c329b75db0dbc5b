"""Analyse: vectorised statistics on the stratified counts -> the `prevalence` table (contract), and the
inequality, funnel, trend and comparison tables built from it."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from . import progress
from .config import Config
from .schema import AREA_TYPES, GROUP_ORDER, GROUP_TYPES, output_columns
from .warehouse import read_table, require_same_configuration, require_tables, staged, tables, write_table

log = logging.getLogger("pipeline.analyse")

PREVALENCE_COLUMNS = output_columns("prevalence")


def prevalence_from_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """observed, population, expected per cell -> the contract's rate, Wilson interval, ratio, exact/Byar interval, missing."""
    from .stats import divide, isr, wilson_ci

    df = counts.copy()
    obs = df["observed"].to_numpy(dtype=float)
    pop = df["population"].to_numpy(dtype=float)
    exp = df["expected"].to_numpy(dtype=float)
    df["rate"] = divide(obs, pop)  # NaN, not inf, for a cell with cases but no population
    df["rate_lower"], df["rate_upper"] = wilson_ci(obs, pop, 0.95)
    df["ratio"], df["ratio_lower"], df["ratio_upper"] = isr(obs, exp, 0.95)
    df["missing"] = exp - obs
    df["observed"] = df["observed"].astype("int64")
    df["population"] = df["population"].astype("int64")
    return sort_prevalence(df[PREVALENCE_COLUMNS])


def sort_prevalence(df: pd.DataFrame) -> pd.DataFrame:
    area_rank = {a: i for i, a in enumerate(AREA_TYPES)}
    group_rank = {g: i for i, g in enumerate(GROUP_TYPES)}
    value_rank = {(g, v): i for g, vals in GROUP_ORDER.items() for i, v in enumerate(vals)}
    key = pd.DataFrame({
        "p": df["period"], "c": df["condition"], "a": df["area_type"].map(area_rank), "code": df["area_code"],
        "g": df["group_type"].map(group_rank),
        "v": [value_rank.get(k, 99) for k in zip(df["group_type"], df["group_value"])],
    })
    order = key.sort_values(["p", "c", "a", "code", "g", "v"], kind="stable").index
    return df.loc[order].reset_index(drop=True)


def analyse(processed: Path, cfg: Config, con=None) -> None:
    if con is None:
        with staged(processed, settings=cfg.engine) as c:
            return analyse(processed, cfg, c)
    # the patient path's marts, or the published-data adapters' tables of the same names (pipeline/public.py)
    require_tables(con, ("prevalence_counts", "practices", "trend_transitions", "trend_expected"), "transform")
    require_same_configuration(con, cfg, "analyse")
    counts = read_table(con, "prevalence_counts")
    prev = prevalence_from_counts(counts)
    from .expectations import validate_prevalence

    validate_prevalence(prev)
    write_table(con, "prevalence", prev)
    log.debug("prevalence: %d rows", len(prev))
    progress.current().update("prevalence", rows=len(prev))
    from .indicators import build_indicator_tables

    build_indicator_tables(con, prev, cfg)
    if "indicator_counts" in tables(con):
        from .indicator_tables import build_indicator_statistics

        build_indicator_statistics(con, cfg)
