"""The Spark engine (`--engine spark`): the same sql/ models, run on Apache Spark.

- Spark reads the raw Parquet or CSV files itself (every column as text, with each row's 1-based number in its
  file), runs sql/staging (transpiled by pipeline.dialect), and keeps the loaded patient-level tables as Parquet
  under the Spark storage folder (`[engine] spark_storage`; default `<processed>/spark`).
- Storage is written as the DuckDB warehouse is, atomically: each ingest writes a new folder `ingest-<id>` (each
  transform `transform-<id>`), and the id is recorded in the warehouse's `run_info` (`spark_ingest`), which is
  swapped in only when the stage succeeds. A stage that fails leaves the previous warehouse pointing at the previous
  folder; folders no committed warehouse names are removed when the next stage starts.
- Small results are collected into the DuckDB warehouse as Arrow: the reference tables, `rejects` and
  `load_summary` at ingest; the count marts at transform. The statistics (analyse) and the packs then run exactly
  as for DuckDB.
- The session: SPARK_REMOTE (a Spark Connect URL) when set, else `[engine] spark_master` (default `local[*]`).

File-level checks (a missing column, a repeated header, a file that is not UTF-8 ...) read the file's first bytes
on the driver, as the DuckDB engine does, when the file is on a local path.
"""
from __future__ import annotations

import csv
import logging
import os
import re
import warnings
from pathlib import Path

import pyarrow as pa

from . import progress
from .dialect import WHITESPACE_AT_EDGES, spark_model, strftime_to_java
from .errors import PipelineError
from .schema import Source
from .warehouse import tables

log = logging.getLogger("pipeline.spark")

_session = None

# settings every session gets: exact decimals (expected is summed as decimal(38,18), as on DuckDB), UTC dates
SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.csv.parser.columnPruning.enabled": "false",  # else a row with too few fields is not always flagged
    # [input] encoding names any charset Java reads (cp1252, as Excel on Windows saves), as on DuckDB; Spark 4 allows
    # only a few UTF and ISO names in its CSV reader otherwise
    "spark.sql.legacy.javaCharsets": "true",
    # inferring filters from a union's constraints fails inside Spark on int_indicator_numerators ("key not found:
    # indicator#..." in UnionBase.rewriteConstraints); the optimisation only adds filters, results are the same
    "spark.sql.constraintPropagation.enabled": "false",
}


def spark_available() -> bool:
    try:
        import pyspark  # noqa: F401
        import sqlglot  # noqa: F401
    except ImportError:
        return False
    return True


def _error_text(error: Exception) -> str:
    """A Spark error's own words: the Java exception behind a py4j error (whose text says only which call failed)."""
    return str(error.java_exception.toString()) if hasattr(error, "java_exception") else str(error)


def _reason(error: Exception) -> str:
    """What went wrong, in a few words for an error sentence: the Java exception's class and message behind a py4j
    error (its own text says only which call failed), the message left out when it names a path."""
    first = (_error_text(error).strip().splitlines() or [""])[0]
    java = re.match(r"([\w.$]+(?:Exception|Error)):\s*(.*)", first)
    kind, words = (java.group(1).rsplit(".", 1)[-1], java.group(2)) if java else (type(error).__name__, first)
    return f"{kind}: {words[:200]}" if words and "/" not in words and "\\" not in words else kind


CONNECT_WAIT_S = 10  # how long a Spark Connect server has to accept a connection


def _server_answers(remote: str, seconds: float = CONNECT_WAIT_S) -> bool:
    """Whether the host and port of a Spark Connect URL (sc://host:port/;options, port 15002 by default) accept a
    connection within `seconds`; True when the URL has no host (Spark then says what is wrong with it)."""
    import socket
    from urllib.parse import urlparse

    try:
        parsed = urlparse(remote)
        host, port = parsed.hostname, parsed.port or 15002
    except ValueError:
        return True
    if not host:
        return True
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError:
        return False
    return True


def _file_missing(error: Exception) -> bool:
    """Whether a Spark error says that a file does not exist where an executor looked."""
    text = _error_text(error)
    return "FILE_NOT_EXIST" in text or "FileNotFoundException" in text


def _unreadable_file(error: Exception) -> bool:
    """Whether a Spark error says that an executor could not read a raw file's contents (a damaged Parquet page, a
    truncated file): Spark's FAILED_READ_FILE error class, or Parquet's decoding errors."""
    text = _error_text(error)
    return any(k in text for k in ("FAILED_READ_FILE", "ParquetDecodingException", "CANNOT_READ_FILE_FOOTER"))


def session(settings=None):
    """The SparkSession for this process (created once): Spark Connect when SPARK_REMOTE is set, else the
    configured master."""
    global _session
    if _session is not None:
        return _session
    if not spark_available():
        raise PipelineError("--engine spark needs the optional Spark dependencies: run `uv sync --extra spark` "
                            "(or pip install 'pipeline[spark]'), with Java 17 or later on the PATH")
    from pyspark.sql import SparkSession

    remote = os.environ.get("SPARK_REMOTE")
    builder = SparkSession.builder.appName("health-inequalities")
    if remote:
        if not _server_answers(remote):  # the Connect client would retry, silently, for many minutes
            raise PipelineError("Spark could not start (no answer from the Spark Connect server that SPARK_REMOTE names "
                                f"within {CONNECT_WAIT_S} s); check that it is up and reachable from here")
        builder = builder.remote(remote)
        # Spark Connect's client warns of "serious performance degradation" for any window without a partition; the
        # only one here runs over one row per file partition (read_raw), and the warning names a local path
        warnings.filterwarnings("ignore", message=".*No Partition Defined for Window operation")
    else:
        master = settings.spark_master if settings is not None else "local[*]"
        log4j = Path(__file__).resolve().parent / "log4j2-spark.properties"
        builder = (builder.master(master).config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
                   .config("spark.sql.shuffle.partitions", os.environ.get("PIPELINE_SPARK_PARTITIONS", "8")))
    for k, v in (settings.spark_conf if settings is not None else ()):
        builder = builder.config(k, v)
    try:
        _session = builder.getOrCreate()
    except Exception as e:  # no Java, a cluster that cannot be reached ...
        hint = ("the Spark Connect server named by SPARK_REMOTE is up and reachable from here" if remote else
                "the cluster named by [engine] spark_master is up and reachable from here, and Java 17+ is on the PATH")
        raise PipelineError(f"Spark could not start ({_reason(e)}); check that {hint}") from None
    for k, v in SQL_CONF.items():
        _session.conf.set(k, v)
    if not remote:
        _session.sparkContext.setLogLevel("ERROR")
    return _session


def storage(processed: Path, settings) -> str:
    if settings is not None and settings.spark_storage:
        return settings.spark_storage.rstrip("/")
    return str(Path(processed).resolve() / "spark")


def _uri(base: str, name: str) -> str:
    return f"{base}/{name}"


def new_version(kind: str) -> str:
    """A fresh storage folder name for one run of a stage: `ingest-<id>` or `transform-<id>`."""
    import uuid

    return f"{kind}-{uuid.uuid4().hex[:12]}"


def ingested_version(con) -> str:
    """The storage folder of the ingest this warehouse was built from (its run_info's `spark_ingest`)."""
    got = con.execute("select value from run_info where key = 'spark_ingest'").fetchone() \
        if "run_info" in tables(con) else None
    if got is None:
        raise PipelineError("the warehouse does not name its Spark storage (it was ingested by an older version); "
                            "run the ingest stage again with --engine spark")
    return got[0]


def committed_version(processed: Path) -> str | None:
    """The ingest folder named by the warehouse now in place (None when there is none)."""
    import duckdb

    from .paths import warehouse

    final = warehouse(processed)
    if not final.exists():
        return None
    try:
        con = duckdb.connect(str(final), read_only=True)
    except duckdb.Error:
        return None
    try:
        return ingested_version(con)
    except (PipelineError, duckdb.Error):
        return None
    finally:
        con.close()


def remove_stale_versions(spark, base: str, keep: set[str]) -> None:
    """Remove the `ingest-*` and `transform-*` folders under the storage that no committed warehouse names (left by
    earlier runs, or by a stage that failed). Local folders are removed directly; others through Spark's Hadoop
    file system when the session has one (not over Spark Connect, where they are left in place)."""
    import shutil

    # only names new_version makes (`ingest-` or `transform-` and 12 hex digits): a folder of the user's own in a
    # shared storage, even one called `ingest-2024`, is never removed
    stale = lambda name: re.fullmatch(r"(ingest|transform)-[0-9a-f]{12}", name) is not None and name not in keep  # noqa: E731
    local = Path(base[len("file:"):] if base.startswith("file:") else base)
    if "://" not in base or base.startswith("file:"):
        if local.is_dir():
            for child in local.iterdir():
                if child.is_dir() and stale(child.name):
                    shutil.rmtree(child, ignore_errors=True)
        return
    try:
        jvm = spark._jvm
        hadoop_path = jvm.org.apache.hadoop.fs.Path(base)
        fs = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())
        if not fs.exists(hadoop_path):
            return
        for status in fs.listStatus(hadoop_path):
            if status.isDirectory() and stale(status.getPath().getName()):
                fs.delete(status.getPath(), True)
    except Exception:  # Spark Connect (no JVM here), or a file system that refuses: leave them
        log.debug("old Spark storage folders left in place")


def run_model(spark, model: str, params: dict | None = None):
    """The DataFrame of one sql/ model (Spark dialect generated from the DuckDB file), parameters bound."""
    text = spark_model(model)
    used = {k: v for k, v in (params or {}).items() if f":{k}" in text}
    return spark.sql(text, args=used) if used else spark.sql(text)


def save(spark, df, base: str, name: str, keep: bool = False):
    """Materialise a DataFrame and register it as the view `name`: as Parquet under the storage folder when a later
    stage (another process) reads it (`keep`), else as a local checkpoint (computed once, lineage cut)."""
    if keep:
        df.write.mode("overwrite").parquet(_uri(base, name))
        out = spark.read.parquet(_uri(base, name))
    else:
        out = df.localCheckpoint(eager=True)
    out.createOrReplaceTempView(name)
    return out


def check_storage(spark, base: str) -> None:
    """Stop with one sentence when the Spark storage cannot be written (a name node that does not resolve, no
    permission, a file system Spark has no connector for), before any work: a one-row write into the new folder,
    which goes with it when the folder is removed. The error's own words are kept unless they name a path."""
    try:
        spark.range(1).write.mode("overwrite").parquet(_uri(base, "_writable"))
    except Exception as e:
        raise PipelineError(f"the Spark storage cannot be written ({_reason(e)}); set [engine] spark_storage to a folder that "
                            "the driver and every executor can write (hdfs://, s3a:// or a shared mount)") from None


def use_stored(spark, base: str, names) -> None:
    for n in names:
        try:
            spark.read.parquet(_uri(base, n)).createOrReplaceTempView(n)
        except Exception:
            raise PipelineError(f"the Spark storage has no `{n}` table; run the ingest stage with --engine spark first") from None


def to_duckdb(con, df, table: str, temp: bool = False) -> int:
    """Collect a (small) Spark DataFrame into a DuckDB table, through Arrow."""
    t = df.toArrow()
    con.register(f"{table}_spark", t)
    con.execute(f"create or replace {'temp ' if temp else ''}table {table} as select * from {table}_spark")
    con.unregister(f"{table}_spark")
    return t.num_rows


def from_duckdb(spark, con, table: str) -> None:
    """A (small) DuckDB table as a Spark view of the same name."""
    t = con.execute(f"select * from {table}").fetch_arrow_table()
    if t.num_rows == 0:  # Spark Connect cannot infer a schema from no rows (classic Spark can): give it Arrow's
        from pyspark.sql.pandas.types import from_arrow_schema

        spark.createDataFrame([], schema=from_arrow_schema(t.schema)).createOrReplaceTempView(table)
        return
    spark.createDataFrame(t).createOrReplaceTempView(table)


# ---------------------------------------------------------------------------------------------------------- ingest

def _file_uri(path: Path) -> str:
    """A raw file as an explicit `file://` URI: on a cluster a bare path would be looked up on the cluster's default
    file system (HDFS), not on the shared mount where the raw extract is."""
    return "file://" + str(Path(path).resolve())  # not as_uri(): Hadoop paths take the characters as they are


def _java_charset(spark, encoding: str) -> str:
    """The Java name of the configuration's text encoding (a Python codec name: "cp1252", "latin-1", "utf-8"), for
    Spark's CSV reader; one sentence when the JVM has no such charset."""
    import codecs

    name = codecs.lookup(encoding).name  # Python's canonical name: cp1252, iso8859-1, utf-8, utf-16, mac-roman ...
    java = {"mac-roman": "x-MacRoman", "utf-8": "UTF-8", "utf-8-sig": "UTF-8"}.get(name, name)
    try:
        supported = bool(spark._jvm.java.nio.charset.Charset.isSupported(java))
    except Exception:  # Spark Connect: no JVM here; Spark says so if it cannot read the charset
        supported = True
    if not supported:
        raise PipelineError(f"[input] encoding {encoding!r} cannot be read on Spark (Java has no charset of that name); "
                            f"save the files as UTF-8, or run on DuckDB")
    return java


def _read_parquet(spark, path: Path, source: Source, inp, header_map: dict):
    """A raw Parquet file as text columns, each value written as the DuckDB engine writes it (pipeline.ingest): dates
    ISO (or in the declared date_format), timestamps with their time, on their zone's clock when they carry a time
    zone, whole floats without '.0'. The file's schema (with Arrow's types and time zones) is read on the driver."""
    from pyspark.sql import functions as F

    from .config import ISO_DATE
    from .ingest import _check_columns, _damaged_parquet, parquet_header

    schema, names = parquet_header(path, source, header_map)
    _check_columns(path.name, names, source)
    known = set(source.columns) | set(source.optional_columns)
    # Spark cannot read a file holding two columns of one name (its names ignore case): the file is read with the
    # other columns' schema, and such a column, which the contract does not know, is left out
    spark_names = [f.name.lower() for f in schema]
    repeated = {n for n in spark_names if spark_names.count(n) > 1}
    reader = spark.read
    if repeated:
        from pyspark.sql.pandas.types import from_arrow_schema

        keep = [i for i, n in enumerate(spark_names) if n not in repeated]
        for i, n in enumerate(spark_names):
            if n in repeated and names[i] in known:
                raise PipelineError(f"{path.name} has the column `{names[i]}` twice in its header")
        log.info("%s: %d columns that the input contract does not know share a name (ignoring case); ignored",
                 path.name, len(spark_names) - len(keep))
        schema = pa.schema([schema.field(i) for i in keep])
        names = [names[i] for i in keep]
        reader = reader.schema(from_arrow_schema(schema))
    try:
        df = reader.parquet(_file_uri(path))
    except Exception as e:
        if _file_missing(e):
            raise
        raise PipelineError(_damaged_parquet(path)) from None
    declared = None if inp.date_format == ISO_DATE else strftime_to_java(inp.date_format, padded=True)
    cols, seen = [], set()
    for field, n in zip(schema, names):
        if n in seen:
            continue
        typ = field.type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if pa.types.is_nested(typ):
            if n not in known:  # a column the contract does not know is ignored, whatever its type
                log.info("%s: column `%s` (%s) is not in the input contract and is not text; ignored", path.name, n, typ)
                continue
            raise PipelineError(f"{path.name}: column `{n}` has a type that cannot be read as text ({typ})")
        seen.add(n)
        value = F.col("`" + field.name.replace("`", "``") + "`")
        if pa.types.is_timestamp(typ):
            if typ.tz is not None:  # a moment in a time zone: the date on that zone's clock (the session is UTC)
                value = F.from_utc_timestamp(value, typ.tz)
            value = F.date_format(value, (declared or "yyyy-MM-dd") + " HH:mm:ss")
        elif pa.types.is_date(typ):
            value = F.date_format(value, declared) if declared else value.cast("string")
        elif pa.types.is_floating(typ):
            value = _float_text(value)
        else:
            value = value.cast("string")
        cols.append(value.alias(n))
    return df.select(*cols, (F.col("_metadata.row_index") + 1).alias("_row_number"),
                     F.lit(None).cast("string").alias("_malformed"))


def _float_text(number):
    """A float column as text, as the DuckDB engine writes it (pipeline.ingest._float_text): a whole number below 10^10
    without '.0' (140.0 -> '140'), others as Python's repr writes them (7.5, 1500000000000.0, 1e-05, 1.5e+16), not in
    Java's forms (1.5E12, 1.0E-5), so that a value loads, or is rejected with the same text, as on DuckDB."""
    from pyspark.sql import functions as F

    java = number.cast("string")  # the shortest digits that read back the same, in Java's form (d.dddE[-]n outside 10^-3..10^7)
    fixed = F.regexp_replace(java.cast("decimal(38,18)").cast("string"), "0+$", "")
    fixed = F.when(fixed.endswith("."), F.concat(fixed, F.lit("0"))).otherwise(fixed)
    exponent = F.regexp_extract(java, r"E(-?[0-9]+)$", 1).cast("int")
    scientific = F.concat(F.regexp_replace(F.regexp_extract(java, r"^(-?[0-9.]+)E", 1), r"\.0$", ""), F.lit("e"),
                          F.when(exponent < 0, F.lit("-")).otherwise(F.lit("+")), F.lpad(F.abs(exponent).cast("string"), 2, "0"))
    size = F.abs(number)
    return (F.when(F.isnan(number), F.lit("nan")).when(number == float("inf"), F.lit("inf"))
            .when(number == float("-inf"), F.lit("-inf"))
            .when((size < 1e10) & (number == number.cast("long")), number.cast("long").cast("string"))
            .when((size >= 1e16) | (size < 1e-4), scientific)
            .otherwise(fixed))


def read_raw(spark, path: Path, source: Source, inp=None, multi_line: bool = False):
    """A raw file as a DataFrame of text columns (the contract's names, lower case, the export's own headers mapped by
    `[input.columns]`) plus `_row_number` (1-based data row) and `_malformed` (the row's text when it has the wrong
    number of fields; CSV only). The file-level checks and the text of each value are the DuckDB engine's
    (pipeline.ingest): `inp` is the configuration's [input]."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    from .config import Input
    from .ingest import _check_columns, _header, _map_headers

    inp = inp or Input()
    header_map = inp.header_map(source.stem)
    if path.suffix == ".parquet":
        return _read_parquet(spark, path, source, inp, header_map)

    names = _map_headers(path.name, _header(path, inp.encoding), source, header_map)
    _check_columns(path.name, names, source)
    # Spark splits lines at the byte \n: text whose line break is other bytes (UTF-16, UTF-32) is read whole; so is a
    # file with a line of only blanks, which Spark's line-by-line reader drops where DuckDB's rejects it as a row
    ascii_lines = "\n\n".encode(inp.encoding).endswith(b"\n\n")
    multi_line = multi_line or not ascii_lines or _has_line_of_blanks(path)
    unique = []
    for i, n in enumerate(names):
        unique.append(n if n not in unique else f"{n}__{i}")
    schema = StructType([StructField(n, StringType()) for n in unique] + [StructField("_malformed", StringType())])
    df = (spark.read.schema(schema).option("header", "false").option("mode", "PERMISSIVE")
          .option("columnNameOfCorruptRecord", "_malformed").option("escape", '"')
          .option("encoding", _java_charset(spark, inp.encoding)).option("multiLine", multi_line).csv(_file_uri(path)))
    # 1-based row numbers in file order: the position within each partition plus the rows of earlier partitions
    df = df.withColumn("_part", F.spark_partition_id()).withColumn("_id", F.monotonically_increasing_id())
    from pyspark.sql import Window

    counts = df.groupBy("_part").agg(F.count("*").alias("_n"), F.min("_id").alias("_first"))
    counts = counts.withColumn("_before", F.coalesce(F.sum("_n").over(Window.orderBy("_part").rowsBetween(
        Window.unboundedPreceding, -1)), F.lit(0)))  # one row per partition: one partition is right (see session)
    df = df.join(F.broadcast(counts), "_part").withColumn("_row_number", F.col("_id") - F.col("_first") + F.col("_before"))
    df = df.where(F.col("_row_number") > 0)  # row 0 is the header line
    # an empty field is an empty string, as the DuckDB engine reads it (Spark's CSV reader makes it null)
    return df.select(*[F.coalesce(F.col(n), F.lit("")).alias(n) for n in unique], "_row_number", "_malformed")


# a line holding only characters Java's String.trim removes (code points up to the space), not the line break alone
_LINE_OF_BLANKS = re.compile(rb"\n(?!\r?\n)[\x00-\x09\x0b-\x20]+(?=\n)")


def _has_line_of_blanks(path: Path, block_bytes: int = 1 << 24) -> bool:
    """Whether a CSV file (in an encoding whose line break is the byte \\n) has a line of only spaces, tabs or other
    blanks, which Spark's line-by-line CSV reader skips like an empty line (read on the driver, in blocks, as
    `_require_text` does; a regular expression over bytes, not a loop over rows)."""
    carry = b""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(block_bytes), b""):
            data = carry + block
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            if _LINE_OF_BLANKS.search(data, 0, cut + 1):
                return True
            carry = data[cut:]
    return bool(_LINE_OF_BLANKS.search(carry + b"\n"))


def ingest_sources(spark, con, raw: Path, processed: Path, cfg, files: dict, today, sources) -> list:
    """Load every source file on Spark: loaded tables to the Spark storage (and the small ones to DuckDB), rejects
    into DuckDB as `rejects_<stem>` temp tables. Returns load_summary's rows."""
    from .ingest import staging_params

    root = storage(processed, cfg.engine)
    committed = committed_version(processed)
    remove_stale_versions(spark, root, {committed} if committed else set())
    version = new_version("ingest")
    base = _uri(root, version)
    check_storage(spark, base)
    params = staging_params(cfg, today)
    try:
        params["date_format"] = strftime_to_java(params["date_format"])  # Spark reads Java datetime patterns
    except ValueError as e:
        raise PipelineError(f"[input] date_format {params['date_format']!r}: {e}") from None
    summary = []
    for s in sources:
        path = files[s.stem]
        try:
            n_read, n_loaded, n_rej = _ingest_source(spark, con, s, path, base, params, cfg.input)
        except PipelineError:
            raise
        except Exception as e:  # a file the driver sees but an executor does not: the extract is not on a shared mount
            if path is not None and _file_missing(e):
                raise PipelineError(f"the Spark executors cannot read {path.name}: the raw extract must be at the same "
                                    "absolute path on the driver and on every node (a shared mount; see the README's "
                                    "steps for a cluster)") from None
            if path is not None and path.suffix == ".parquet" and _unreadable_file(e):
                from .ingest import _damaged_parquet

                raise PipelineError(_damaged_parquet(path)) from None
            raise
        if path is not None:
            summary.append((s.stem, path.name, n_read, n_loaded, n_rej))
        progress.current().update(s.stem, rows=n_read)
        log.debug("%s: %d rows read, %d loaded, %d rejected", s.stem, n_read, n_loaded, n_rej)
    con.execute("create or replace temp table spark_storage_version as select ? as version", [version])
    return summary


def _trimmed(column: str):
    """A column trimmed as the staging models trim it (sql/macros.sql trim_whitespace)."""
    from pyspark.sql import functions as F

    return F.regexp_replace(F.col(column), WHITESPACE_AT_EDGES, "")


def _ingest_source(spark, con, s: Source, path: Path | None, base: str, params: dict,
                   inp) -> tuple[int, int, int]:
    """One source file (or, when `path` is None, an empty table of its columns) through its staging model on Spark:
    the loaded rows to the storage, its rejects to DuckDB. Returns (rows read, loaded, rejected)."""
    from pyspark.sql import functions as F

    if path is None:
        from pyspark.sql.types import LongType, StringType, StructField, StructType

        df = spark.createDataFrame([], StructType([StructField(c, StringType()) for c in s.columns + s.optional_columns]
                                                  + [StructField("_row_number", LongType()),
                                                     StructField("_malformed", StringType())]))
        in_file = len(s.columns)
    else:
        df = read_raw(spark, path, s, inp)
        in_file = len([c for c in df.columns if c not in ("_row_number", "_malformed")])
    n_read, n_malformed, repeat, undecoded = _scan(df, s, path)
    bad = df.where(F.col("_malformed").isNotNull()).orderBy("_row_number").collect() if n_malformed else []
    # (whole rows: Spark refuses a query of the malformed-record column alone)
    if any((r["_malformed"] or "").count('"') % 2 for r in bad):
        # a quoted value holding a line break (a practice name): Spark read the file line by line and cut the row in
        # two; read it again as DuckDB reads it, records across lines (one task for the file: only when needed)
        df = read_raw(spark, path, s, inp, multi_line=True)
        n_read, n_malformed, repeat, undecoded = _scan(df, s, path)
        bad = df.where(F.col("_malformed").isNotNull()).orderBy("_row_number").collect() if n_malformed else []
    if undecoded:
        _require_text(path, inp.encoding)
    if repeat is not None and path is not None:
        raise PipelineError(f"{path.name} repeats its header as data row {repeat}; remove the extra header line")
    for col in s.optional_columns:  # an optional column the file leaves out reads as empty
        if col not in df.columns:
            df = df.withColumn(col, F.lit(None).cast("string"))
    good = df.where(F.col("_malformed").isNull()).drop("_malformed")
    good.createOrReplaceTempView(f"raw_{s.stem}")
    stg = save(spark, run_model(spark, f"staging/stg_{s.stem}", params), base, f"stg_{s.stem}")
    keep = [c for c in stg.columns if c not in ("row_number", "reject_reason")]
    loaded = save(spark, stg.where(F.col("reject_reason").isNull()).select(*keep), base, s.stem, keep=True)
    raw_cols = [c for c in good.columns if c != "_row_number"]
    rej = (stg.where(F.col("reject_reason").isNotNull()).select("row_number", F.col("reject_reason").alias("reason"))
           .join(good.withColumnRenamed("_row_number", "row_number"), "row_number")
           .select(F.lit(s.stem).alias("source"), "row_number", "reason", *raw_cols))
    n_rej = to_duckdb(con, rej, f"rejects_{s.stem}", temp=True)
    if n_malformed:
        rows = [{"source": s.stem, "row_number": r["_row_number"],
                 "reason": f"row has {_fields(r['_malformed'])} fields, expected {in_file}"} for r in bad]
        con.register("bad_rows_arrow", pa.Table.from_pylist(rows))
        con.execute(f"insert into rejects_{s.stem} by name select * from bad_rows_arrow")
        con.unregister("bad_rows_arrow")
    n_loaded = stg.where(F.col("reject_reason").isNull()).count()
    n_rej += n_malformed
    if n_read != n_loaded + n_rej:
        raise RuntimeError(f"{s.stem}: rows do not reconcile ({n_read} != {n_loaded} + {n_rej})")
    if s.stem in ("practices", "deprivation", "neighbourhoods"):
        to_duckdb(con, loaded, s.stem)
    return n_read, n_loaded, n_rej


def _scan(df, s: Source, path: Path | None) -> tuple:
    """One pass over a raw file's rows: (rows, malformed rows, the first data row that repeats the header, whether
    any value holds U+FFFD (CSV only: Spark's reader writes it for a byte that is not text in the file's encoding,
    where DuckDB's stops; the driver then reads the file to tell such a byte from a U+FFFD written in it))."""
    from pyspark.sql import functions as F

    a, b = s.columns[:2]
    header_again = (F.lower(_trimmed(a)) == a) & (F.lower(_trimmed(b)) == b) & F.col("_malformed").isNull()
    replaced = F.lit(False)
    for name in df.columns if path is not None and path.suffix == ".csv" else ():
        if name != "_row_number":
            replaced = replaced | F.coalesce(F.col(name).contains("\ufffd"), F.lit(False))
    return tuple(df.agg(F.count(F.lit(1)), F.count("_malformed"), F.min(F.when(header_again, F.col("_row_number"))),
                        F.max(replaced.cast("int"))).first())


def _require_text(path: Path, encoding: str) -> None:
    """Stop with the DuckDB engine's sentence when a CSV file is not text in `encoding` (read on the driver, in blocks;
    the extract is at the same path on the driver and every node)."""
    import codecs

    from .ingest import _is_utf8, _not_text

    decoder = codecs.getincrementaldecoder("utf-8-sig" if _is_utf8(encoding) else encoding)()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeError:
        raise PipelineError(_not_text(path.name, encoding)) from None


def _fields(text: str | None) -> int:
    if text is None:
        return 0
    try:
        return len(next(csv.reader([text])))
    except (csv.Error, StopIteration):
        return text.count(",") + 1


def loaded_summaries(spark, con, processed: Path, cfg) -> dict:
    """The patient-level facts the ingest checks need (DuckDB computes them on its own tables), from Spark."""
    base = _uri(storage(processed, cfg.engine), ingested_version(con))
    use_stored(spark, base, ("patients", "registrations", "events"))
    return {name: run_model(spark, f"queries/{name}").toPandas()
            for name in ("orphans", "patients_summary", "registrations_practices")}


# ------------------------------------------------------------------------------------------------------- transform

PATIENT_TABLES = ("patients", "registrations", "events")
SMALL_TABLES = ("practices", "deprivation", "neighbourhoods", "codelists", "external_rates", "lsoa_lookup", "periods",
                "conditions")
INDICATOR_SETTINGS = ("indicator_settings", "indicator_criteria", "indicator_windows", "indicator_codelists")
COLLECTED = ("stratified_counts", "reference_rates", "area_group_strata", "prevalence_counts", "data_quality",
             "trend_transitions", "trend_expected", "indicator_counts", "indicator_trend_transitions",
             "indicator_trend_expected")


def transform_models(spark, con, processed: Path, cfg, models, params: dict) -> None:
    """Run the intermediate and mart models on Spark; the count marts are collected into DuckDB."""
    root = storage(processed, cfg.engine)
    ingested = ingested_version(con)
    remove_stale_versions(spark, root, {ingested})  # earlier transforms' marts are never read again
    use_stored(spark, _uri(root, ingested), PATIENT_TABLES)
    base = _uri(root, new_version("transform"))
    check_storage(spark, base)
    for t in SMALL_TABLES + (INDICATOR_SETTINGS if cfg.indicators else ()):
        from_duckdb(spark, con, t)
    for m in models:
        name = Path(m).name
        progress.current().update(name)
        df = save(spark, run_model(spark, m, params), base, name, keep=name in COLLECTED)
        if name in COLLECTED:
            n = to_duckdb(con, df, name)
            progress.current().update(rows=n)
            log.debug("%s: %d rows", name, n)
