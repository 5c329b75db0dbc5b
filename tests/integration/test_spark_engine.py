"""`--engine spark` gives the same tables as DuckDB: prevalence, indicators, rejects and load_summary (counts equal,
floats within 1e-9), on the demo data (with the default indicators), on malformed CSV rows and on messy
hypothesis-generated data (with readings and an indicator of every kind).

Runs when pyspark (the `spark` extra) and Java 17+ are present, and skips cleanly otherwise. One local SparkSession
(local[2]) serves each test process that runs these tests (`make test` runs two: pytest-xdist); the data are small
and the hypothesis examples few, to keep it cheap.
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, run_cli, write_config, write_raw
from hypothesis import HealthCheck, Phase, given, settings

pytestmark = pytest.mark.spark

KEYS = {
    "prevalence": ["period", "condition", "area_type", "area_code", "group_type", "group_value"],
    "rejects": ["source", "row_number"],
    "load_summary": ["source"],
    "data_quality": ["period", "area_type", "area_code"],
    "indicators": ["period", "indicator", "area_type", "area_code", "group_type", "group_value"],
    "indicator_trend": ["period_from", "period_to", "indicator", "area_type", "area_code", "group_type", "group_value"],
}


def _java_major() -> int:
    java = shutil.which("java")
    if not java:
        return 0
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return 0
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return 0
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _spark_missing() -> str | None:
    try:
        import pyspark  # noqa: F401
        import sqlglot  # noqa: F401
    except ImportError:
        return "pyspark/sqlglot not installed (the `spark` extra)"
    if _java_major() < 17:
        return "Java 17 or later is not on the PATH"
    return None


@pytest.fixture(scope="session")
def spark():
    why = _spark_missing()
    if why:
        pytest.skip(why)
    import os

    os.environ.setdefault("PIPELINE_SPARK_PARTITIONS", "2")
    from pipeline import spark_engine
    from pipeline.config import Engine

    # whole-stage code generation compiles Java for every query: on these small tables that costs more than it saves
    # (the demo test: 44 -> 38 s); the results are the same either way
    return spark_engine.session(Engine(spark_master="local[2]", spark_conf=(("spark.sql.codegen.wholeStage", "false"),)))


def run_in_process(raw: Path, work: Path, cfg_path: Path, engine: str) -> dict[str, pd.DataFrame]:
    """ingest, transform and analyse in this process (the shared SparkSession), on an in-memory warehouse."""
    from pipeline.analyse import analyse
    from pipeline.config import load_config
    from pipeline.ingest import ingest
    from pipeline.transform import transform
    from pipeline.warehouse import connect, load_macros

    cfg = load_config(cfg_path)
    work.mkdir(parents=True, exist_ok=True)
    con = connect()
    try:
        load_macros(con)
        ingest(raw, work, cfg, con, engine)
        transform(work, cfg, con, engine)
        analyse(work, cfg, con)
        return {t: con.execute(f"select * from {t}").df() for t in KEYS}
    finally:
        con.close()


def assert_same(duck: dict[str, pd.DataFrame], spark: dict[str, pd.DataFrame]) -> None:
    for table, key in KEYS.items():
        a, b = duck[table], spark[table]
        assert list(a.columns) == list(b.columns), table
        assert len(a) == len(b), f"{table}: {len(a)} rows on DuckDB, {len(b)} on Spark"
        a = a.sort_values(key, kind="stable").reset_index(drop=True)
        b = b.sort_values(key, kind="stable").reset_index(drop=True)
        for c in a.columns:
            x, y = a[c], b[c]
            if x.dtype.kind == "f" or y.dtype.kind == "f":
                x, y = x.to_numpy(float), y.to_numpy(float)
                assert np.array_equal(np.isnan(x), np.isnan(y)), f"{table}.{c}: missing values differ"
                ok = ~np.isnan(x)
                assert np.all(np.abs(x[ok] - y[ok]) <= 1e-9), f"{table}.{c}: differs by {np.max(np.abs(x[ok] - y[ok]))}"
            else:
                xs = x.astype(object).where(x.notna(), None).astype(str).tolist()
                ys = y.astype(object).where(y.notna(), None).astype(str).tolist()
                assert xs == ys, f"{table}.{c} differs"


def test_sql_models_transpile_without_duckdb_only_constructs():
    pytest.importorskip("sqlglot")
    from pipeline.dialect import spark_model, strftime_to_java

    for path in sorted((REPO_ROOT / "sql").glob("*/*.sql")):
        text = spark_model(f"{path.parent.name}/{path.stem}").lower()
        for duckdb_only in ("try_strptime", "trimmed(", "trim_whitespace(", "clean(", "parse_date(", "date_problem(", "ethnic_group(", "sex_group(", "age_band(", "$"):
            assert duckdb_only not in text, f"{path.name}: {duckdb_only}"
    assert strftime_to_java("%Y-%m-%d %H:%M:%S") == "y-M-d H:m:s"
    assert strftime_to_java("%d/%m/%Y") == "d/M/y"
    assert strftime_to_java("%Y%m%d") == "yyyyMMdd"


def test_an_empty_duckdb_table_reaches_spark_with_its_columns(spark):
    """A reference table with no rows (no external rates, no LSOA lookup) becomes an empty Spark view with the
    table's columns and types. Spark Connect cannot infer a schema from no rows, so the schema is given from Arrow
    (without it a run over SPARK_REMOTE stopped at the start of transform)."""
    import duckdb

    from pipeline import spark_engine

    class LikeSparkConnect:  # this local session infers a schema from an empty Arrow table; Spark Connect does not
        def createDataFrame(self, data, schema=None):
            if schema is None and len(data) == 0:
                raise ValueError("[CANNOT_INFER_EMPTY_SCHEMA] Can not infer schema from an empty dataset.")
            return spark.createDataFrame(data, schema=schema)

    con = duckdb.connect()
    con.execute("create table empty_reference (code varchar, rows integer, count bigint, rate double, since date)")
    spark_engine.from_duckdb(LikeSparkConnect(), con, "empty_reference")
    view = spark.table("empty_reference")
    assert view.count() == 0
    assert [(f.name, f.dataType.simpleString()) for f in view.schema.fields] == [
        ("code", "string"), ("rows", "int"), ("count", "bigint"), ("rate", "double"), ("since", "date")]


def test_text_is_trimmed_the_same_on_both_engines(spark):
    """Text is trimmed as Python's str.strip() trims it, on both engines (Spark's trim removes only ' ', DuckDB's
    only the Unicode space separators): a code or id padded with a no-break space or a tab (as text pasted from a
    web page or a spreadsheet often is) loads as the same value on both."""
    import duckdb

    from pipeline.dialect import to_spark
    from pipeline.warehouse import load_macros

    samples = ["a", " a ", "\u00a0a\u00a0", "\u3000a", "a\u2009", "\u1680x\u200a", "\u202fé\u205f", "\u00a0",
               "  ", "", "a b", "\ta\t", "a \n", "\na", "\u00a0a \n", "\u200bzero-width\u200b", "\U0001f600 x ",
               "\x1cx\x85", "\u2028x\u2029\x0b", "\r\n", "\x00x\x7f"]
    duck = duckdb.connect()
    load_macros(duck)
    expected = [duck.execute("select clean(?)", [text]).fetchone()[0] for text in samples]
    assert expected == [text.strip() or None for text in samples]
    spark.createDataFrame(list(enumerate(samples)), "position int, text string").createOrReplaceTempView("samples")
    got = [row[0] for row in spark.sql(to_spark("select clean(text) from samples order by position")).collect()]
    assert got == expected


DATE_SAMPLES = {
    "%Y-%m-%d": ["1980-01-05", "1980-1-5", "1980-01-5", "1980-1-05", "2024-02-29", "2023-02-29", "1980-13-01",
                 "1980-02-30", "1980-01-05x", "+1980-01-05", "0999-12-31", "999-12-31", "0000-01-01", "1980-01-05 10:30:00", "1980-1-5 1:2:3",
                 "1980-01-05 24:00:00", "1980-01-05 10:30", "19800105", "05/01/1980", "",
                 "1980-01-05T10:30:00", "1980-01-05 00:00:00.000", "1980-01-05T10:30:00.5", "1980-01-05 10:30:00.123456",
                 "1980-01-05 10:30:00.1234567", "1980-01-05 10:30:00.", "1980-01-05T10:30:00Z"],
    "%d/%m/%Y": ["05/01/1980", "5/1/1980", "31/1/1980", "5/12/1980", "31/02/1980", "5/1/1980 7:05:00", "1980-01-05",
                 "05/01/1980 00:00:00.000"],
    "%Y%m%d": ["19800105", "19801305", "1980-01-05"],
}


@pytest.mark.parametrize("pattern", list(DATE_SAMPLES))
def test_dates_parse_the_same_on_both_engines(spark, pattern):
    """A date loads as the same day on both engines, or is rejected on both: DuckDB's strptime takes a month, day or
    time field without its leading zero (1980-1-5, 5/1/1980: as Excel writes dates on some machines), so Spark's
    pattern must too (its `MM` demands two digits: those rows were rejected on Spark only). Patterns whose fields
    touch (%Y%m%d) keep fixed widths, where a missing digit (1980015) still loads on DuckDB only. Year 0 (which
    both engines' parsers take, as 1 BC) is no date: rejected on both."""
    import duckdb

    from pipeline.dialect import strftime_to_java, to_spark
    from pipeline.warehouse import load_macros

    samples = DATE_SAMPLES[pattern]
    query = """select cast(parse_date(text, $date_format) as varchar) as parsed,
                      date_problem('date', clean(text), parse_date(text, $date_format), $today, 'the pattern') as problem
               from dates order by position"""
    today = dt.date(2026, 1, 1)
    duck = duckdb.connect()
    load_macros(duck)
    duck.execute("create table dates as select * from (select unnest(?) as text, generate_subscripts(?, 1) as position)",
                 [samples, samples])
    expected = duck.execute(query.replace("$date_format", "$1").replace("$today", "$2"), [pattern, today]).fetchall()
    assert expected[0] == ("1980-01-05", None)
    spark.createDataFrame(list(enumerate(samples)), "position int, text string").createOrReplaceTempView("dates")
    got = [tuple(row) for row in spark.sql(to_spark(query), args={"date_format": strftime_to_java(pattern),
                                                                  "today": today}).collect()]
    # the day where the row loads (year 0 prints as 0000-01-01 on Spark, 0001-01-01 (BC) on DuckDB: both rejected)
    assert {text: (problem, parsed if problem is None else "rejected") for text, (parsed, problem) in zip(samples, got)} == \
        {text: (problem, parsed if problem is None else "rejected") for text, (parsed, problem) in zip(samples, expected)}


def test_demo_data_same_on_both_engines(spark, tmp_path):
    from pipeline.demo import generate

    raw = tmp_path / "raw"
    generate(raw, n_patients=3000, seed=11)   # in this process: the CLI's demo-data is the walkthrough's to test
    cfg = REPO_ROOT / "pipeline" / "default.toml"
    duck = run_in_process(raw, tmp_path / "duck", cfg, "duckdb")
    on_spark = run_in_process(raw, tmp_path / "spark", cfg, "spark")
    assert len(duck["prevalence"]) > 1000 and len(duck["indicators"]) > 1000
    assert_same(duck, on_spark)


def _messy():
    from test_oracle_agreement import messy_readings

    return messy_readings()


@settings(max_examples=2, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(tables=_messy())
def test_messy_data_same_on_both_engines(spark, tables):
    from test_oracle_agreement import (
        CHECK,
        DEP,
        DEP_RES,
        DEPRIVATION,
        DIA,
        DRUG,
        HTN,
        INDICATOR_CONFIG,
        NEIGHBOURHOODS,
        PERIODS,
        PRACTICES,
        SYS,
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = write_raw(tmp / "raw", {
            **tables, "practices": PRACTICES, "deprivation": DEPRIVATION, "neighbourhoods": NEIGHBOURHOODS,
            "codelists/dep": [DEP], "codelists/dep_res": [DEP_RES], "codelists/htn": [HTN, "2002"],
            "codelists/sys": [SYS], "codelists/dia": [DIA], "codelists/check": [CHECK], "codelists/drug": [DRUG],
        })
        cfg = write_config(tmp / "config.toml", [p.isoformat() for p in PERIODS], [
            {"id": "dep", "codelist": "codelists/dep.csv", "resolved_codelist": "codelists/dep_res.csv", "min_age": 18},
            {"id": "htn", "codelist": "codelists/htn.csv", "min_age": 0},
        ])
        cfg.write_text(cfg.read_text(encoding="utf-8") + INDICATOR_CONFIG, encoding="utf-8")
        with open(raw / "patients.csv", "a", encoding="utf-8") as f:  # malformed rows: too few and too many fields
            f.write('m1,F,1975-01-01\n"m2",M,1960-01-01,B,L1,,extra\n')
        with open(raw / "events.csv", "a", encoding="utf-8") as f:
            f.write("ok0,1001\n")
        assert_same(run_in_process(raw, tmp / "duck", cfg, "duckdb"), run_in_process(raw, tmp / "spark", cfg, "spark"))


def test_cli_run_with_spark_engine(spark, tmp_path):
    """The command line: `ingest --engine spark` (transform and analyse are covered in process above), and a stage
    on the other engine stops with one sentence."""
    from conftest import small_raw

    raw, cfg = small_raw(tmp_path)
    opts = ["--raw", raw, "--processed", tmp_path / "processed", "--reports", tmp_path / "reports", "--config", cfg]
    env = {"PIPELINE_SPARK_PARTITIONS": "2", "PIPELINE_LOG": "INFO"}
    rc, out, err = run_cli("ingest", *opts, "--engine", "spark", env=env)
    assert rc == 0, err[-3000:]
    assert str(tmp_path) not in err and "p001" not in err  # logs: no local paths, no patient ids
    assert "Setting default log level" not in err  # Spark's shell notice (pipeline/log4j2-spark.properties)
    lines = [ln for ln in err.splitlines() if " pipeline " in ln]
    assert len(lines) == 1 and "ingest:" in lines[0] and "rows in" in lines[0], err[-2000:]
    assert (tmp_path / "processed" / "load_summary.parquet").exists()
    rc, _, err = run_cli("transform", *opts, env=env)  # DuckDB cannot pick up a Spark ingest
    assert rc == 2 and "--engine spark" in err


def test_spark_storage_is_swapped_in_with_the_warehouse(spark, tmp_path):
    """Spark storage is committed with the warehouse: each ingest writes a new folder that run_info names; an ingest
    that fails leaves the previous warehouse and its folder usable; folders nothing names are removed later."""
    import duckdb
    from conftest import small_raw

    from pipeline.__main__ import run_data_stages
    from pipeline.config import load_config
    from pipeline.errors import PipelineError
    from pipeline.transform import transform

    raw, cfg_path = small_raw(tmp_path)
    cfg = load_config(cfg_path)
    processed = tmp_path / "processed"
    run_data_stages(raw, processed, cfg, "spark")

    def named() -> str:
        con = duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True)
        try:
            return con.execute("select value from run_info where key = 'spark_ingest'").fetchone()[0]
        finally:
            con.close()

    def folders(kind: str) -> list[str]:
        return sorted(p.name for p in (processed / "spark").iterdir() if p.name.startswith(kind + "-"))

    first = named()
    assert folders("ingest") == [first] and len(folders("transform")) == 1
    with open(raw / "events.csv", "a", encoding="utf-8") as f:  # the next ingest stops at the events file (its
        f.write("\tpatient_id\u00a0,code,date\n")  # header again, padded with white space as trimmed values are)
    with pytest.raises(PipelineError, match="repeats its header"):
        run_data_stages(raw, processed, cfg, "spark")
    assert named() == first and (processed / "spark" / first / "patients").is_dir()
    transform(processed, cfg, engine="spark")  # the committed warehouse still reads its own storage
    assert folders("ingest") == [first] and len(folders("transform")) == 1


def ingest_on_spark(tmp_path: Path, raw: Path, cfg: Path) -> tuple[int, str]:
    """`ingest --engine spark` through the command line's main in this process (the shared SparkSession) ->
    (exit status, the printed error lines)."""
    from conftest import run_main

    rc, _, err = run_main("ingest", "--raw", raw, "--processed", tmp_path / "processed", "--reports",
                          tmp_path / "reports", "--config", cfg, "--engine", "spark")
    return rc, err.strip()


def test_two_digit_years_are_refused_on_spark_in_one_sentence(spark, tmp_path):
    """`date_format = "%d/%m/%y"` reads 05/01/80 as 1980-01-05 on DuckDB and as 2080-01-05 on Spark (whose `yy` is
    always 20xx), so every birth of the last century would be rejected as after the day of the run on Spark only: the
    stage stops with one sentence instead (an unsupported directive was a ValueError traceback)."""
    from conftest import small_raw

    raw, cfg = small_raw(tmp_path)
    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[input]\ndate_format = "%d/%m/%y"\n', encoding="utf-8")
    rc, err = ingest_on_spark(tmp_path, raw, cfg)
    assert rc == 2
    assert err == ("error: [input] date_format '%d/%m/%y': date pattern directive %y (a two-digit year) is not "
                   "supported on Spark: Spark reads 80 as 2080 where DuckDB reads 1980; export four-digit years (%Y) "
                   "or run on DuckDB")


def test_spark_storage_that_cannot_be_written_is_one_sentence(spark, tmp_path):
    """A storage no executor can write (here a file system Spark has no connector for; on a cluster a name node
    that does not resolve, or no permission) stops the stage with one sentence naming the setting, not a traceback."""
    from conftest import small_raw

    raw, cfg = small_raw(tmp_path)
    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[engine]\nspark_storage = "nosuchfs://store/spark"\n',
                   encoding="utf-8")
    rc, err = ingest_on_spark(tmp_path, raw, cfg)
    assert rc != 0
    assert err == ('error: the Spark storage cannot be written (UnsupportedFileSystemException: No FileSystem '
                           'for scheme "nosuchfs"); set [engine] spark_storage to a folder that the driver and every '
                           'executor can write (hdfs://, s3a:// or a shared mount)')


def test_spark_connect_server_that_does_not_answer_is_one_sentence(tmp_path):
    """SPARK_REMOTE naming a server that is not there stops the run at once with one sentence (the Connect client
    would otherwise retry in silence for many minutes)."""
    import socket

    from conftest import run_cli, small_raw

    pytest.importorskip("pyspark")
    pytest.importorskip("sqlglot")
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    raw, cfg = small_raw(tmp_path)
    rc, _, err = run_cli("ingest", "--raw", raw, "--processed", tmp_path / "processed", "--reports",
                         tmp_path / "reports", "--config", cfg, "--engine", "spark", timeout=120,
                         env={"SPARK_REMOTE": f"sc://127.0.0.1:{port}"})
    assert rc != 0
    assert err.strip().splitlines()[-1] == ("error: Spark could not start (no answer from the Spark Connect server that "
                                            "SPARK_REMOTE names within 10 s); check that it is up and reachable from here")


def test_raw_file_the_executors_cannot_see_is_one_sentence(spark, tmp_path, monkeypatch):
    """On a cluster whose nodes do not share the raw extract's folder, the driver reads a file's header but the
    executors find no file: one sentence naming the file and the shared-mount rule, not a traceback. Simulated by
    removing the file after the driver has planned its read (as a node without the mount sees it)."""
    from conftest import small_raw

    from pipeline import spark_engine

    raw, cfg = small_raw(tmp_path)
    plan = spark_engine.read_raw

    def read_then_lose(session, path, source, *options, **keywords):
        frame = plan(session, path, source, *options, **keywords)
        if path.name == "registrations.csv":
            path.unlink()
        return frame

    monkeypatch.setattr(spark_engine, "read_raw", read_then_lose)
    rc, err = ingest_on_spark(tmp_path, raw, cfg)
    assert rc != 0
    assert err == ("error: the Spark executors cannot read registrations.csv: the raw extract must be at the same "
                           "absolute path on the driver and on every node (a shared mount; see the README's steps for "
                           "a cluster)")


def test_input_options_are_read_on_spark_as_on_duckdb(spark, tmp_path):
    """[input] encoding and [input.columns] reach the Spark engine's reader, and typed Parquet dates are written in
    the declared date_format (which the staging models read). Before, Spark read every CSV as UTF-8 and with the
    file's own headers, so a cp1252 extract stopped the run ('practices.csv is not UTF-8 text') and a column map
    ('missing the column'), and a declared format rejected every typed Parquet date (found by fuzzing
    configurations)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.config import Input
    from pipeline.dialect import strftime_to_java
    from pipeline.ingest import read_table
    from pipeline.schema import SOURCE_BY_STEM
    from pipeline.spark_engine import read_raw

    written = strftime_to_java("%d/%m/%Y", padded=True)   # typed dates as DuckDB writes them: 05/01/1980, not 5/1/1980
    assert written == "dd/MM/yyyy"

    inp = Input(date_format="%d/%m/%Y", date_format_declared=True, encoding="cp1252",
                columns={"practices": {"practice_name": "Surgery Name"}, "patients": {"date_of_birth": "DOB"}})
    (tmp_path / "practices.csv").write_bytes(
        "practice_code,Surgery Name,pcn_code,pcn_name,icb_code,icb_name\nA1,Café Ærø,P1,North,Q1,ICB\n".encode("cp1252"))
    pq.write_table(pa.table({"patient_id": ["p1"], "sex": ["F"], "DOB": pa.array([dt.date(1980, 1, 5)], pa.date32()),
                             "ethnicity": ["A"], "lsoa_code": ["E1"],
                             "date_of_death": pa.array([dt.datetime(2024, 3, 31, 10)], pa.timestamp("s"))}),
                   tmp_path / "patients.parquet")
    for stem in ("practices", "patients"):
        path = next(tmp_path.glob(f"{stem}.*"))
        source = SOURCE_BY_STEM[stem]
        duck = read_table(path, source, inp)[0].to_pylist()[0]
        row = read_raw(spark, path, source, inp).collect()[0].asDict()
        assert {c: row[c] for c in duck if c != "_row_number"} == {c: v for c, v in duck.items() if c != "_row_number"}
    assert duck["date_of_birth"] == "05/01/1980" and row["date_of_death"] == "31/03/2024 10:00:00"


# ---------------------------------------------------------------------------------------------------------------
# Bad input and unusual extracts: the same outcome on both engines (the CLI's ingest, in this process)

def _ingest_both(tmp_path: Path, raw: Path, cfg: Path) -> dict:
    """`ingest` on each engine through the command line's main -> {engine: (exit status, error lines, tables)}: the
    tables are rejects and load_summary (the Parquet exports) and the loaded patients, registrations and events (the
    DuckDB warehouse's, or the Spark storage its run_info names), sorted, every value as text."""
    import duckdb
    from conftest import run_main

    def text(frame: pd.DataFrame) -> list:
        rows = [tuple(None if v is None or (not isinstance(v, str) and pd.isna(v)) else
                      (v.strftime("%Y-%m-%d") if hasattr(v, "strftime") else str(v)) for v in row)
                for row in frame[sorted(frame.columns)].itertuples(index=False)]
        return [sorted(frame.columns), sorted(rows, key=lambda r: tuple("" if v is None else v for v in r))]

    out = {}
    for engine in ("duckdb", "spark"):
        processed = tmp_path / f"processed_{engine}"
        rc, _, err = run_main("ingest", "--raw", raw, "--processed", processed, "--reports", tmp_path / "reports",
                              "--config", cfg, "--engine", engine)
        tables = {t: text(pd.read_parquet(processed / f"{t}.parquet")) for t in ("rejects", "load_summary")
                  if (processed / f"{t}.parquet").exists()}
        if rc == 0:
            with duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True) as con:
                stored = con.execute("select value from run_info where key = 'spark_ingest'").fetchone()
                for t in ("patients", "registrations", "events"):
                    frame = pd.read_parquet(processed / "spark" / stored[0] / t) if stored else con.table(t).df()
                    tables[t] = text(frame)
        out[engine] = (rc, [ln for ln in err.splitlines() if ln.startswith("error:")], tables)
    return out


def _parquet(raw: Path, stem: str, **columns) -> None:
    """Replace raw/<stem>.csv by <stem>.parquet: the CSV's columns as text, then `columns` (arrays) set or added."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.read_csv(raw / f"{stem}.csv", dtype=str, keep_default_na=False),
                                 preserve_index=False)
    for name, values in columns.items():
        table = (table.set_column(table.column_names.index(name), name, values) if name in table.column_names
                 else table.append_column(name, values))
    (raw / f"{stem}.csv").unlink()
    pq.write_table(table, raw / f"{stem}.parquet", compression="zstd")


def _typed_parquet_dmy_cp1252(raw: Path, cfg: Path) -> str:
    """An extract as real exports write it: typed Parquet (registration dates as timestamps in Europe/London at local
    midnight, stored as 23:00 UTC the day before in summer, beside a nested column the contract does not know; event
    dates as dates; readings as floats: 140.0, 7.5, 12345678.5, 0.0001, rows of a patient not in patients, so that
    their text is in rejects), text dates as 05/01/1980 (date_format %d/%m/%Y), an export's own header for
    date_of_birth ([input.columns]), and cp1252 text with non-ASCII practice names, one holding a line break in its
    quotes. Before, Spark: registrations a day early; typed dates written as YYYY-MM-DD (every row rejected, the guard
    stopped the run on Spark only); 140.0 and 1.2345678E7 where DuckDB writes 140 and 12345678.5 (a reading DuckDB
    loads rejected); the nested column kept; the column map ignored ('missing the required column'); the files read
    as UTF-8 ('not UTF-8 text'); the quoted name cut into two rows."""
    import pyarrow as pa

    patients = raw / "patients.csv"
    patients.write_text(re.sub(r"(\d{4})-(\d\d)-(\d\d)", r"\3/\2/\1", patients.read_text()).replace("date_of_birth", "DOB", 1))
    n = len(pd.read_csv(raw / "registrations.csv", dtype=str))
    london = pa.array([pd.Timestamp("2000-06-01", tz="Europe/London")] * n, pa.timestamp("ms", tz="Europe/London"))
    _parquet(raw, "registrations", registered_from=london, flags=pa.array([[1, 2]] * n, pa.list_(pa.int32())))
    events = pd.read_csv(raw / "events.csv", dtype=str)
    values = [140.0, 7.5, 12345678.5, 0.0001, None, -0.5]
    n = len(events)
    _parquet(raw, "events", patient_id=pa.array([("nobody" if i < len(values) else pid) for i, pid in
                                                 enumerate(events["patient_id"])]),
             date=pa.array(list(pd.to_datetime(events["date"]).dt.date), pa.date32()),
             value=pa.array((values + [None] * n)[:n], pa.float64()))
    practices = raw / "practices.csv"
    text = practices.read_text().replace("Practice 0", "Pr\u00e4ctice Caf\u00e9").replace("Practice 1", '"Practice\nOne, Upper"')
    practices.write_bytes(text.encode("cp1252"))
    return ('[input]\ndate_format = "%d/%m/%Y"\nencoding = "cp1252"\nmax_reject_share = 1.0\n'
            '[input.columns.patients]\ndate_of_birth = "DOB"\n')


def _damaged_pages(raw: Path, cfg: Path) -> None:
    """Damaged Parquet pages (the footer intact): before, a Spark traceback naming the file's full path."""
    import pyarrow.parquet as pq

    practices = raw / "practices.csv"  # rows enough for a data page worth damaging (a damaged file is never loaded)
    practices.write_text(practices.read_text() + "".join(f"Z{i},Name {i},P0,PCN 0,I1,ICB One\n" for i in range(3000)))
    _parquet(raw, "practices")
    path = raw / "practices.parquet"
    chunk = pq.read_metadata(path).row_group(0).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start + 12: start + chunk.total_compressed_size - 2] = b"\xaa" * (chunk.total_compressed_size - 14)
    path.write_bytes(bytes(data))


def _zero_byte_parquet(raw: Path, cfg: Path) -> None:
    """Before: Spark said the 0-byte file 'looks like text'."""
    (raw / "practices.csv").unlink()
    (raw / "practices.parquet").write_bytes(b"")


def _not_utf8_after_the_first_block(raw: Path, cfg: Path) -> None:
    """A byte that is not UTF-8 beyond the first 64 KiB (which the header check reads): DuckDB stops; before, Spark
    read it as U+FFFD and loaded the row."""
    practices = raw / "practices.csv"
    practices.write_bytes((practices.read_text() + "".join(f"Z{i},Name {i},P0,PCN 0,I1,ICB One\n" for i in range(3000))).encode()
                          + "Z,Caf\u00e9,P0,PCN 0,I1,ICB One\n".encode("cp1252"))


def _lines_of_blanks(raw: Path, cfg: Path) -> str:
    """Lines of only spaces, a tab, spaces before a Windows line end, between empty lines: DuckDB rejects each as a
    row with the wrong number of fields; before, Spark's line-by-line reader dropped them (not in rejects, and the
    later rows' numbers one lower)."""
    for stem, blanks in (("events", ["   ", "\t", " \r"]), ("registrations", ["", "  ", ""])):
        path = raw / f"{stem}.csv"
        lines = path.read_text().splitlines()
        for offset, blank in enumerate(blanks):
            lines.insert(3 + 4 * offset, blank)
        path.write_text("\n".join(lines) + "\n")
    return "[input]\nmax_reject_share = 1.0\n"


def test_a_contract_column_twice_stops_both_engines(spark, tmp_path):
    """events with `value` twice (Value, value): which is meant is unknown, so both engines stop with one sentence;
    before, DuckDB read the first and Spark ended in a traceback (COLUMN_ALREADY_EXISTS)."""
    import pyarrow as pa
    from conftest import small_raw

    from pipeline import spark_engine
    from pipeline.errors import PipelineError
    from pipeline.ingest import read_table
    from pipeline.schema import SOURCE_BY_STEM

    raw, _ = small_raw(tmp_path)
    n = len(pd.read_csv(raw / "events.csv", dtype=str))
    _parquet(raw, "events", Value=pa.array([1.0] * n), value=pa.array([2.0] * n))
    for read in (lambda: read_table(raw / "events.parquet", SOURCE_BY_STEM["events"]),
                 lambda: spark_engine.read_raw(spark, raw / "events.parquet", SOURCE_BY_STEM["events"])):
        with pytest.raises(PipelineError) as stop:
            read()
        assert str(stop.value) == "events.parquet has the column `value` twice in its header"


BAD_INPUT = {
    "typed_parquet_dmy_cp1252": (_typed_parquet_dmy_cp1252, None),
    "damaged_pages": (_damaged_pages, "error: practices.parquet could not be read as Parquet: it is truncated or "
                                      "damaged; export the table again"),
    "lines_of_blanks": (_lines_of_blanks, None),
    "zero_byte_parquet": (_zero_byte_parquet, "error: practices.parquet is empty (0 bytes)"),
    "not_utf8_after_the_first_block": (_not_utf8_after_the_first_block, "error: practices.csv is not UTF-8 text; save "
                                       "it as UTF-8, or declare its encoding in the configuration (e.g. encoding = "
                                       "\"cp1252\" under [input])"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gives_the_same_outcome_on_both_engines(spark, tmp_path, case):
    """Each case through `ingest` on DuckDB and on Spark: the same exit status and error sentence (no traceback), or,
    when it loads, the same rejects, load_summary and loaded rows, value for value (the audit of 29 Nov 2026 redone
    with --engine spark; each case failed on the old Spark reader, see the builders' notes)."""
    from conftest import small_raw

    raw, cfg = small_raw(tmp_path)
    build, expected = BAD_INPUT[case]
    extra = build(raw, cfg)
    if extra:
        cfg.write_text(cfg.read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    got = _ingest_both(tmp_path, raw, cfg)
    duck, on_spark = got["duckdb"], got["spark"]
    if expected is None:
        assert duck[:2] == (0, []), duck[1]
        assert on_spark[:2] == (0, []), on_spark[1]
        assert duck[2].keys() == on_spark[2].keys() == {"rejects", "load_summary", "patients", "registrations", "events"}
        for table in duck[2]:
            assert on_spark[2][table] == duck[2][table], table
    else:
        assert duck[:2] == (2, [expected]), duck[1]
        assert on_spark[:2] == (2, [expected]), on_spark[1]


def test_failed_spark_tasks_print_no_stack_trace(spark):
    """A task that fails on a damaged raw file was logged by Spark's executor with its Java stack trace and the file's
    full path (and by the scheduler), before the one-sentence error: those two loggers are off."""
    log_manager = spark._jvm.org.apache.logging.log4j.LogManager
    for name in ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager"):
        assert str(log_manager.getLogger(name).getLevel()) == "OFF", name


def test_utf16_text_reads_the_same_rows_on_both_engines(spark, tmp_path):
    """`encoding = "utf-16"` (as some Windows tools save text): Spark split lines at the byte \\n, which in UTF-16 is
    half a character, so every row was broken (each reference file lost all its rows); the file is now read whole.
    Spark's rows equal DuckDB's reader's, value for value."""
    from conftest import small_raw

    from pipeline import spark_engine
    from pipeline.config import Input
    from pipeline.ingest import read_table
    from pipeline.schema import SOURCE_BY_STEM

    raw, _ = small_raw(tmp_path)
    practices = raw / "practices.csv"
    practices.write_bytes(practices.read_text().replace("Practice 1", '"Pr\u00e4ctice\nOne"').encode("utf-16"))
    source, inp = SOURCE_BY_STEM["practices"], Input(encoding="utf-16")
    duck = read_table(practices, source, inp)[0].to_pandas()
    on_spark = spark_engine.read_raw(spark, practices, source, inp).drop("_malformed").toPandas()
    assert len(duck) == 3 and "Pr\u00e4ctice\nOne" in set(duck["practice_name"])
    assert on_spark.to_dict("records") == duck.to_dict("records")
