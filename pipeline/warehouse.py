"""The DuckDB warehouse, written atomically.

Every stage works on a private copy (`warehouse.duckdb.tmp-<pid>`) and swaps it into place only when it has
finished, so a run killed part-way leaves the previous warehouse intact. Marts are exported beside it as Parquet,
also through temporary files.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import duckdb

from .errors import PipelineError
from .paths import SQL_DIR, warehouse

EXPORTED_TABLES = ("prevalence", "load_summary", "rejects", "inequality", "funnel", "trend", "data_quality",
                   "comparisons", "dsr", "trend_transitions", "trend_expected", "indicators", "indicator_funnel",
                   "indicator_trend", "indicator_inequality")


def connect(path: Path | str = ":memory:", read_only: bool = False, settings=None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection. `settings` (config `[engine]`) caps its memory and names where it spills to disk, so a
    large extract runs within a fixed budget instead of DuckDB's default of 80% of the machine."""
    con = duckdb.connect(str(path), read_only=read_only)
    if not read_only:
        con.execute("set preserve_insertion_order = true")
    if settings is not None:
        con.execute("set memory_limit = ?", [settings.memory_limit])
        if settings.threads:
            con.execute("set threads = ?", [settings.threads])
    return con


def spill_directory(processed: Path, settings) -> Path:
    """Where DuckDB spills intermediate results that do not fit in its memory limit (created when needed)."""
    if settings is not None and settings.temp_directory:
        return Path(settings.temp_directory)
    return Path(processed) / ".duckdb_spill"


@contextlib.contextmanager
def staged(processed: Path, fresh: bool = False, exported: tuple[str, ...] = EXPORTED_TABLES, settings=None):
    """Yield a connection to a private copy of the warehouse; swap it in when the block ends without error.
    `exported` tables are written beside it as Parquet. `settings`: config `[engine]` (memory limit, spill folder)."""
    processed = Path(processed)
    processed.mkdir(parents=True, exist_ok=True)
    final = warehouse(processed)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    for stale in processed.glob(f"{final.name}.tmp-*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    if not fresh:
        if not final.exists():
            raise PipelineError("there is no warehouse in the processed directory yet; run the ingest stage first")
        shutil.copyfile(final, tmp)
    con = connect(tmp, settings=settings)
    spill = spill_directory(processed, settings)
    con.execute("set temp_directory = ?", [str(spill)])
    try:
        load_macros(con)
        yield con
        con.execute("checkpoint")
        con.close()
    except BaseException:
        con.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        shutil.rmtree(spill, ignore_errors=True)
        raise
    shutil.rmtree(spill, ignore_errors=True)
    export_parquet(tmp, processed, exported)
    os.replace(tmp, final)


def require_tables(con, tables, stage: str) -> None:
    """Stop with one sentence when an earlier stage has not been run on this warehouse."""
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    lacking = [t for t in tables if t not in have]
    if lacking:
        raise PipelineError(f"the warehouse has no `{lacking[0]}` table yet; run the {stage} stage first")


def load_macros(con) -> None:
    for stmt in (SQL_DIR / "macros.sql").read_text().split(";\n"):
        if stmt.strip():
            con.execute(stmt)


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def sql_text(model: str) -> str:
    """The SELECT of a model file, e.g. `staging/stg_patients`."""
    return (SQL_DIR / f"{model}.sql").read_text()


def build(con, model: str, params: dict | None = None, name: str | None = None, view: bool = False) -> None:
    """Materialise one SQL model (a single SELECT in sql/<model>.sql) as a table named after its file
    (`view`: a temporary view of this connection instead, never materialised nor written to the warehouse file)."""
    sql = sql_text(model)
    table = name or Path(model).name
    used = set(_PARAM.findall(sql))
    bound = {k: v for k, v in (params or {}).items() if k in used}
    missing = used - bound.keys()
    if missing:
        raise RuntimeError(f"model {model} needs parameters {sorted(missing)}")
    if view:  # a view cannot hold bound parameters
        if bound:
            raise RuntimeError(f"model {model} takes parameters and cannot be built as a view")
        con.execute(f"create or replace temp view {table} as\n{sql}")
        return
    con.execute(f"create or replace table {table} as\n{sql}", bound)


def export_parquet(db_path: Path, processed: Path, exported: tuple[str, ...] = EXPORTED_TABLES) -> None:
    """Export the marts beside the warehouse as Parquet (temporary names first, then swapped in)."""
    con = connect(db_path, read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        pending = []
        for t in exported:
            if t in tables:
                tmp = processed / f".{t}.parquet.tmp-{os.getpid()}"
                con.execute(f"copy (select * from {t}) to '{_quote(tmp)}' (format parquet)")
                pending.append((tmp, processed / f"{t}.parquet"))
    finally:
        con.close()
    for tmp, final in pending:
        os.replace(tmp, final)


def remove_stale_exports(processed: Path, keep: tuple[str, ...]) -> None:
    """Remove the Parquet exports of a previous run that this (stopped) run did not rebuild, so that nothing beside
    the warehouse looks current when it is not."""
    for t in EXPORTED_TABLES:
        if t not in keep:
            with contextlib.suppress(FileNotFoundError):
                (Path(processed) / f"{t}.parquet").unlink()


def _quote(p: Path) -> str:
    return str(p).replace("'", "''")
