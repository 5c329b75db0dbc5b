"""Read the warehouse (read-only) and apply disclosure control once, for every pack alike.

Control is applied once to everything any pack publishes, so the same cell is hidden or rounded the same
way in every pack (different suppression patterns of one table in two packs could be differenced).
Published prevalence rows: ICB and PCN rows of every breakdown, practice and neighbourhood `all` rows.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.config import Config
from pipeline.disclosure import PUBLISHED_COUNTS, Policy, publish
from pipeline.errors import PipelineError
from pipeline.report.published_trend import control_overlap
from pipeline.schema import OUTPUT_TABLES, output_columns, source_columns
from pipeline.warehouse import connect, query, read_table, require_same_configuration
from pipeline.warehouse import tables as warehouse_tables

from .publication import Published, parent_codes, protect_all

log = logging.getLogger("pipeline.report")

PREV_COLS = output_columns("prevalence")
PRACTICE_COLS = source_columns("practices")
NEIGHBOURHOOD_COLS = source_columns("neighbourhoods")
# the input files' names stay in the warehouse: a pack names its sources by stem only
LOAD_SUMMARY_COLS = [c for c in output_columns("load_summary") if c != "file"]
NBH_SET = "all-neighbourhoods"


@dataclass
class Inputs:
    prev: pd.DataFrame                 # controlled (numeric, NaN = hidden, *_redacted flags), with parent_code
    practices: pd.DataFrame
    conditions: list[dict]
    periods: list[dt.date]
    run_info: dict
    load_summary: pd.DataFrame | None  # controlled counts
    data_quality: pd.DataFrame | None  # controlled counts
    funnel: pd.DataFrame | None         # the warehouse's funnel table (whether there is one: the packs draw their own)
    inequality: pd.DataFrame | None
    neighbourhood_names: dict = field(default_factory=dict)
    geoms: object | None = None        # GeoDataFrame of neighbourhoods (index code, column name) or None
    policy: Policy = field(default_factory=Policy)
    core20: pd.DataFrame | None = None  # latest period, PCN x group: true counts split into Core20 / the rest
    trend_overlap: pd.DataFrame | None = None  # controlled cases on both dates per cell (published_trend)
    indicators: pd.DataFrame | None = None  # controlled indicator rows (`condition` = indicator id, `kind`), or None
    indicator_meta: list = field(default_factory=list)  # one dict per indicator (label, kind, denominator, ages)
    indicator_overlap: pd.DataFrame | None = None  # as trend_overlap, for the indicators

    @property
    def source(self) -> str:
        """'published' (NHS England's practice-level files, pipeline/public.py) or 'patient' (patient records)."""
        return str(self.run_info.get("source", "patient"))

    @functools.cached_property
    def has_patient_groups(self) -> bool:
        """Whether the data break areas down by patients' own groups (ethnicity, sex, age, home-area IMD)."""
        return bool(self.prev["group_type"].isin(["ethnicity", "imd_quintile", "sex", "age_band"]).any())

    def icb_rows(self, icb: str) -> pd.DataFrame:
        """The rows of one ICB's areas (the ICB, its PCNs and practices) and every neighbourhood, found once per ICB
        (a pack then filters a few thousand rows, not the whole of England's)."""
        cache = self.__dict__.setdefault("_icb_rows", {})
        if icb not in cache:
            mine = self.practices[self.practices["icb_code"] == icb]
            areas = [("icb", [icb]), ("pcn", mine["pcn_code"]), ("practice", mine["practice_code"]),
                     ("neighbourhood", None)]
            cache[icb] = self.prev[in_areas(self.prev, areas)]
        return cache[icb]

    @property
    def latest(self) -> dt.date:
        return self.periods[-1]

    @property
    def previous(self) -> dt.date | None:
        return self.periods[-2] if len(self.periods) > 1 else None


def in_areas(frame: pd.DataFrame, areas) -> np.ndarray:
    """Whether each row is of one of `areas` [(area_type, codes)]; codes None: every area of that type."""
    area_types, codes = frame["area_type"].to_numpy(), frame["area_code"]
    keep = np.zeros(len(frame), dtype=bool)
    for area_type, wanted in areas:
        keep |= (area_types == area_type) & (True if wanted is None else codes.isin(list(wanted)).to_numpy())
    return keep


def add_parents(prev: pd.DataFrame, practices: pd.DataFrame) -> pd.DataFrame:
    """parent_code: practice -> its PCN, PCN -> its ICB, neighbourhood -> one set of all neighbourhoods
    (neighbourhoods do not add up to a published total, but hiding a second one is the safe side)."""
    parent = parent_codes(prev, practices)
    parent[prev["area_type"] == "neighbourhood"] = NBH_SET
    return prev.assign(parent_code=parent)


def published_inequality(ctl: pd.DataFrame) -> pd.DataFrame:
    """SII/RII (crude rate) of each published ICB and PCN from its published quintile counts; an area with a
    hidden quintile count gets no row."""
    from pipeline.indicators import SII_DIMENSIONS, inequality_table

    q = ctl[ctl["area_type"].isin(["england", "icb", "pcn"]) & ctl["group_type"].isin(list(SII_DIMENSIONS))].copy()
    hidden = q["observed"].isna() | q["population"].isna()
    q.loc[hidden, "population"] = np.nan
    out = inequality_table(q)
    if not out.empty:
        out["period"] = pd.to_datetime(out["period"]).dt.date
    return out


def load_inputs(processed: Path, cfg: Config) -> Inputs:
    db = paths.warehouse(processed)
    if not db.exists():
        raise PipelineError("the processed directory has no warehouse.duckdb; run the earlier stages first")
    policy = Policy.from_config(cfg.disclosure)
    con = connect(db, read_only=True)
    try:
        tables = warehouse_tables(con)
        for t in ("prevalence", "practices"):
            if t not in tables:
                raise PipelineError(f"the warehouse has no `{t}` table; run the analyse stage first")
        require_same_configuration(con, cfg, "report")
        prev = query(con, "published_prevalence").df()[list(PREV_COLS)]
        practices = read_table(con, "practices", PRACTICE_COLS).sort_values("practice_code", ignore_index=True)
        if "conditions" in tables:
            conds = read_table(con, "conditions", ["condition", "label", "min_age"]).to_dict("records")
        else:
            conds = [dict(condition=c.id, label=c.label, min_age=c.min_age) for c in cfg.conditions]
        present = set(prev["condition"].unique())
        order = [c.id for c in cfg.conditions]
        conds = sorted([c for c in conds if c["condition"] in present],
                       key=lambda c: order.index(c["condition"]) if c["condition"] in order else 99)
        run_info = dict(read_table(con, "run_info", ["key", "value"]).itertuples(index=False)) \
            if "run_info" in tables else {}
        # every table the protection reads comes in key order (the queries order theirs): secondary suppression
        # breaks ties by position, and the warehouse's row order is not fixed, so the same counts must always give
        # the same publication (two runs that hid different cells would, read together, show more than either)
        keys = {table.name: list(table.key) for table in OUTPUT_TABLES}
        ls = read_table(con, "load_summary", LOAD_SUMMARY_COLS).sort_values(keys["load_summary"], ignore_index=True) \
            if "load_summary" in tables else None
        dq, funnel, ineq = (read_table(con, name).sort_values(keys[name], ignore_index=True) if name in tables else None
                            for name in ("data_quality", "funnel", "inequality"))
        latest = pd.Timestamp(prev["period"].max()).date() if len(prev) else None
        # PCN x group counts of the latest date split into Core20 (national IMD quintile 1) and the rest (true
        # values, never published as they are: the packs show shares of unredacted parts only)
        core20 = query(con, "core20_split", {"latest_date": latest}).df().assign(area_type="pcn") \
            if {"stratified_counts", "reference_rates"} <= tables else None
        from .indicator_data import load_indicator_rows

        ind_rows, ind_meta = load_indicator_rows(con, tables, practices, cfg.indicators)
        overlaps = {table: query(con, name).df() if table in tables else None
                    for table, name in (("trend_transitions", "trend_overlap"),
                                        ("indicator_trend_transitions", "indicator_trend_overlap"))}
        nbh = read_table(con, "neighbourhoods", NEIGHBOURHOOD_COLS) if "neighbourhoods" in tables \
            else pd.DataFrame(columns=NEIGHBOURHOOD_COLS)
    finally:
        con.close()
    if prev.empty:
        raise PipelineError("the warehouse's `prevalence` table is empty; nothing to report")
    prev["period"] = pd.to_datetime(prev["period"]).dt.date
    periods = sorted(prev["period"].unique())
    prev = add_parents(prev, practices)
    if dq is not None and not dq.empty:
        dq["period"] = pd.to_datetime(dq["period"]).dt.date
    if run_info.get("source") == "published":
        # NHS England's published counts are public already: shown as published (unrounded, true zeros), ratios
        # and `missing` as calculated (disclosure.publish with from_published=False); the warehouse's own SII/RII
        # are then those of the published counts
        policy = PUBLISHED_COUNTS
        shown = np.zeros(len(prev), dtype=bool)
        published = Published(cells=None, prev=publish(prev, policy, {"observed": shown, "population": shown},
                                                        from_published=False),
                              data_quality=None, load_summary=ls, core20=None)
        if ineq is not None:
            ineq = ineq[ineq["area_type"].isin(["england", "icb", "pcn"])].copy()
            ineq["period"] = pd.to_datetime(ineq["period"]).dt.date
    else:
        # every count published anywhere (packs, ICS summary, community summaries, their CSVs) is protected at
        # once, against every relation between them; every derived value is then computed from the published counts
        published = protect_all(prev, policy, dq=dq, load_summary=ls, core20=core20, practices=practices,
                                latest=periods[-1], indicators=ind_rows)
        # the deprivation gradient of what is published (SII/RII from the published quintile counts), never of
        # the true counts; the true `inequality` table stays in the warehouse for analysts
        ineq = published_inequality(published.prev)
    names = dict(zip(nbh["neighbourhood_code"], nbh["neighbourhood_name"]))
    inputs = Inputs(prev=published.prev, practices=practices, conditions=conds, periods=periods,
                    run_info=run_info, load_summary=published.load_summary, data_quality=published.data_quality,
                    funnel=funnel, inequality=ineq, neighbourhood_names=names, policy=policy,
                    core20=published.core20, indicators=published.indicators, indicator_meta=ind_meta)
    inputs.geoms = load_geoms(Path(processed) / "boundaries.geojson", nbh)
    inputs.trend_overlap, inputs.indicator_overlap = (None if raw is None else control_overlap(raw, policy)
                                                      for raw in overlaps.values())
    return inputs


def load_geoms(path: Path, nbh: pd.DataFrame):
    """Neighbourhood polygons from boundaries.geojson (by `neighbourhood_code`, or LSOAs dissolved through
    the neighbourhoods table); None when there are no usable boundaries."""
    if not path.exists():
        return None
    try:
        import geopandas as gpd

        g = gpd.read_file(path)
    except Exception as e:  # a broken optional file should not stop the packs
        log.warning("boundaries.geojson could not be read (%s); maps are left out", type(e).__name__)
        return None
    if "neighbourhood_code" not in g.columns and "lsoa_code" in g.columns and not nbh.empty:
        g = g.merge(nbh[["lsoa_code", "neighbourhood_code"]], on="lsoa_code", how="inner")
    if "neighbourhood_code" not in g.columns:
        return None
    g = g[g["neighbourhood_code"].notna()]
    if g.empty:
        return None
    d = g[["neighbourhood_code", "geometry"]].dissolve(by="neighbourhood_code")
    names = dict(zip(nbh["neighbourhood_code"], nbh["neighbourhood_name"]))
    if "neighbourhood_name" in g.columns:
        names = {**dict(zip(g["neighbourhood_code"], g["neighbourhood_name"])), **names}
    d["name"] = [names.get(c, c) for c in d.index]
    return d
