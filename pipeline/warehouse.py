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
from .schema import OUTPUT_TABLES

EXPORTED_TABLES = tuple(table.name for table in OUTPUT_TABLES)  # the output contract (pipeline/schema.py)


def connect(path: Path | str = ":memory:", read_only: bool = False, settings=None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection. `settings` (config `[engine]`) caps its memory and names where it spills to disk, so a
    large extract runs within a fixed budget instead of DuckDB's default of 80% of the machine."""
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        if str(path) == ":memory:":
            raise
        reason = str(e).replace(str(path), Path(path).name).split("Error: ", 1)[-1].splitlines()[0]
        if "not a valid DuckDB database" in reason:
            reason = "it is not a DuckDB database file: damaged, or written by another program"
        raise PipelineError(f"the warehouse in the processed directory cannot be opened ({reason}); run the ingest "
                            f"stage again to rebuild it") from None
    if not read_only:
        con.execute("set preserve_insertion_order = true")
        # FSST string compression costs more time to analyse and write than its smaller file is worth here
        # (about 2 of 35 CPU seconds at 1M patients; the warehouse file is about 20% larger)
        con.execute("set disabled_compression_methods = 'fsst'")
    if settings is not None:
        con.execute("set memory_limit = ?", [settings.memory_limit])
        if settings.threads:
            con.execute("set threads = ?", [settings.threads])
    return con


def spill_directory(processed: Path, settings) -> Path:
    """Where DuckDB spills intermediate results that do not fit in its memory limit (made when a stage starts,
    removed when it ends): a folder of this process's own, inside `[engine] temp_directory` when one is configured
    (that folder, and whatever else it holds, is the user's and is never removed), else in the processed directory."""
    if settings is not None and settings.temp_directory:
        return Path(settings.temp_directory) / f"pipeline-spill-{os.getpid()}"
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
    try:
        con = connect(tmp, settings=settings)
    except PipelineError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    spill = spill_directory(processed, settings)
    try:
        try:  # made now, so that a folder that cannot be written stops the stage at once, not when DuckDB first spills
            spill.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PipelineError(f"the folder DuckDB spills to ([engine] temp_directory) cannot be created "
                                f"({e.strerror or type(e).__name__}); name a folder that can be written") from None
        con.execute("set temp_directory = ?", [str(spill)])
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


def require_tables(con, needed, stage: str) -> None:
    """Stop with one sentence when an earlier stage has not been run on this warehouse."""
    have = tables(con)
    lacking = [t for t in needed if t not in have]
    if lacking:
        raise PipelineError(f"the warehouse has no `{lacking[0]}` table yet; run the {stage} stage first")


def require_same_configuration(con, cfg, stage: str) -> None:
    """Stop with one sentence when the warehouse's counts were built (by the transform stage) for other periods or
    conditions than the configuration gives: the statistics and packs would silently describe the old ones."""
    have = tables(con)
    again = ("run the transform stage with this configuration" if stage == "analyse" else
             "run the transform and analyse stages with this configuration")
    if "periods" in have:
        built = sorted(read_table(con, "periods", ["period"])["period"].dt.date)
        wanted = sorted(cfg.periods)
        if built != wanted:
            def words(dates):
                return ", ".join(str(d) for d in dates)
            raise PipelineError(f"the warehouse's counts are for the periods {words(built)}, but the configuration "
                                f"gives {words(wanted)}; {again}")
    if "conditions" in have:
        built = {r.condition: r.min_age for r in read_table(con, "conditions", ["condition", "min_age"]).itertuples()}
        for c in cfg.conditions:
            if c.id not in built:
                raise PipelineError(f"the warehouse's counts have no condition {c.id}; {again}")
            if built[c.id] != c.min_age:
                raise PipelineError(f"the warehouse's counts for condition {c.id} are for min_age {built[c.id]}, but "
                                    f"the configuration gives {c.min_age}; {again}")
        unknown = sorted(set(built) - {c.id for c in cfg.conditions})
        if unknown:
            raise PipelineError(f"the warehouse's counts have condition {unknown[0]}, which the configuration does not "
                                f"give; {again}")


def load_macros(con) -> None:
    for stmt in (SQL_DIR / "macros.sql").read_text().split(";\n"):
        if stmt.strip():
            con.execute(stmt)


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def sql_text(model: str) -> str:
    """The SELECT of a model file, e.g. `staging/stg_patients`."""
    return (SQL_DIR / f"{model}.sql").read_text()


def _bound(sql: str, name: str, params: dict | None) -> dict:
    """The parameters a statement uses (`$name`), taken from `params`; a missing one is a programming error."""
    used = set(_PARAM.findall(sql))
    bound = {k: v for k, v in (params or {}).items() if k in used}
    missing = used - bound.keys()
    if missing:
        raise RuntimeError(f"sql/{name}.sql needs parameters {sorted(missing)}")
    return bound


def build(con, model: str, params: dict | None = None, name: str | None = None, view: bool = False) -> None:
    """Materialise one SQL model (a single SELECT in sql/<model>.sql) as a table named after its file
    (`view`: a temporary view of this connection instead, never materialised nor written to the warehouse file)."""
    sql = sql_text(model)
    table = name or Path(model).name
    bound = _bound(sql, model, params)
    if view:  # a view cannot hold bound parameters
        if bound:
            raise RuntimeError(f"model {model} takes parameters and cannot be built as a view")
        con.execute(f"create or replace temp view {table} as\n{sql}")
        return
    con.execute(f"create or replace table {table} as\n{sql}", bound)


def query(con, name: str, params: dict | None = None):
    """The result of sql/queries/<name>.sql (one SELECT the analyse, report or check stage reads, never
    materialised), parameters bound; a cursor: `.df()`, `.fetchone()`, `.fetchall()`."""
    sql = sql_text(f"queries/{name}")
    return con.execute(sql, _bound(sql, f"queries/{name}", params))


def tables(con) -> set[str]:
    """The names of the tables and views the connection sees."""
    return {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}


def read_table(con, name: str, columns: list[str] | tuple[str, ...] | None = None):
    """`select <columns> from <name>` of one table (all columns when None), as a DataFrame."""
    listed = ", ".join(columns) if columns else "*"
    return con.execute(f"select {listed} from {name}").df()


def write_table(con, name: str, df) -> None:
    """Replace table `name` with a DataFrame's rows, its `period*` columns as dates."""
    con.register(f"{name}_df", df)
    listed = ", ".join(f"cast({c} as date) as {c}" if c.startswith("period") else c for c in df.columns)
    con.execute(f"create or replace table {name} as select {listed} from {name}_df")
    con.unregister(f"{name}_df")


def export_parquet(db_path: Path, processed: Path, exported: tuple[str, ...] = EXPORTED_TABLES) -> None:
    """Export the marts beside the warehouse as Parquet (temporary names first, then swapped in)."""
    con = connect(db_path, read_only=True)
    try:
        present = tables(con)
        pending = []
        for t in exported:
            if t in present:
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
