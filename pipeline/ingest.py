"""Ingest: read the raw files (CSV or Parquet), check them against the input contract, load them into DuckDB.

Row-level checks are set-based SQL (sql/staging/stg_*.sql). Rows that break the contract go to `rejects` with a
reason; `load_summary` reconciles each file. File-level faults stop the run with one sentence naming the file and
the column or row. Raw files are only read, never changed.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import __version__, progress
from .config import ISO_DATE, Config, Input, date_format_label
from .errors import PipelineError
from .schema import SOURCE_BY_STEM, SOURCES, Source
from .warehouse import build, query, remove_stale_exports, staged

log = logging.getLogger("pipeline.ingest")

_DELIMS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def run_date() -> dt.date:
    """The day of the run (dates after it are rejected). PIPELINE_TODAY=YYYY-MM-DD overrides it for tests."""
    v = os.environ.get("PIPELINE_TODAY")
    return dt.date.fromisoformat(v) if v else dt.date.today()


def require_raw_directory(raw: Path) -> None:
    """One sentence when --raw names nothing, or a file (a user may give one of the extract's files)."""
    if not raw.exists():
        raise PipelineError("the raw directory does not exist")
    if not raw.is_dir():
        raise PipelineError(f"--raw names the file {raw.name}, not a folder; give the folder that holds the extract's "
                            f"files")


def find_file(raw: Path, stem: str, optional: bool = False) -> Path | None:
    csv_p, pq_p = raw / f"{stem}.csv", raw / f"{stem}.parquet"
    if csv_p.exists() and pq_p.exists():
        raise PipelineError(f"both {stem}.csv and {stem}.parquet are in the raw directory; keep only one")
    for candidate in (csv_p, pq_p):
        if candidate.exists() and not candidate.is_file():
            raise PipelineError(f"{candidate.name} is a folder, not a file (a Parquet dataset, as Spark writes one, is "
                                f"a folder): give the table as one .csv or .parquet file")
    if csv_p.exists():
        return csv_p
    if pq_p.exists():
        return pq_p
    if optional:
        return None
    raise PipelineError(f"{stem}.csv (or {stem}.parquet) is missing from the raw directory")


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


# The first bytes of files that are not CSV text, though named .csv: (signature, what the file is)
_NOT_CSV = ((b"PK\x03\x04", "an Excel workbook (or another zip archive), not CSV text; save it from Excel as "
                              "\"CSV UTF-8 (Comma delimited)\""),
            (b"\xd0\xcf\x11\xe0", "an old-style Excel workbook (.xls), not CSV text; save it from Excel as "
                                  "\"CSV UTF-8 (Comma delimited)\""))
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _header(path: Path, encoding: str = "utf-8", label: str | None = None) -> list[str]:
    """The header row of a CSV file, names trimmed and lower-cased; one sentence (naming the file as `label`, default
    its name) when the file is empty, not text in the configured encoding, or not CSV at all."""
    label = label or path.name
    if not path.is_file():
        raise PipelineError(f"{label} is a folder, not a file")
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if not head.strip():
        raise PipelineError(f"{label} is empty (no header row)")
    if head.startswith(b"PAR1"):
        raise PipelineError(f"{label} is a Parquet file with a .csv name")
    for magic, what in _NOT_CSV:
        if head.startswith(magic):
            raise PipelineError(f"{label} is {what}")
    enc = "utf-8-sig" if _is_utf8(encoding) else encoding
    if head.startswith(_UTF16_BOMS) and not codecs.lookup(encoding).name.startswith("utf-16"):
        raise PipelineError(f"{label} is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8, or "
                            f"declare encoding = \"utf-16\" under [input] in the configuration")
    try:
        text = head.decode(enc)
    except UnicodeError as e:
        start = getattr(e, "start", 0)
        if len(head) == 1 << 16 and start > len(head) - 4:  # a multi-byte character cut at the end of the sample
            text = head[:start].decode(enc)
        else:
            line = head[:start].count(b"\n") + 1
            raise PipelineError(_not_text(label, encoding, line)) from None
    first = text.splitlines()[0] if text.splitlines() else ""
    return [c.strip().lower() for c in next(csv.reader([first]))]


def _not_text(name: str, encoding: str, line: int | None = None) -> str:
    where = f" (first bad byte on line {line})" if line else ""
    if _is_utf8(encoding):
        return (f"{name} is not UTF-8 text{where}; save it as UTF-8, or declare its encoding in the configuration "
                f"(e.g. encoding = \"cp1252\" under [input])")
    return f"{name} is not {encoding} text{where}; check encoding under [input] in the configuration"


def _map_headers(name: str, names: list[str], source: Source, header_map: dict[str, str]) -> list[str]:
    """Rename the export's own headers to the contract's columns ([input.columns.<file>])."""
    if not header_map:
        return names
    for header, col in header_map.items():
        if header not in names:
            raise PipelineError(f"{name} has no column `{header}` (the configuration's [input.columns.{source.stem}] "
                                f"maps it to `{col}`)")
    return [header_map.get(n, n) for n in names]


def column_report(names: list[str], source: Source) -> dict[str, list[str]]:
    """Columns found, missing and unknown (neither in the contract nor known extras) after mapping."""
    allowed = set(source.columns) | set(source.optional_columns)
    return {"found": [c for c in source.columns + source.optional_columns if c in names],
            "missing": [c for c in source.columns if c not in names],
            "unknown": [c for c in dict.fromkeys(names) if c not in allowed]}


def _check_parquet_magic(path: Path) -> None:
    """A .parquet file that is empty or does not start as Parquet files do stops the run with one sentence."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if not magic:
        raise PipelineError(f"{path.name} is empty (0 bytes)")
    if magic != b"PAR1":
        raise PipelineError(f"{path.name} is not a Parquet file (it looks like text; is it CSV with a .parquet name?)")


@contextlib.contextmanager
def _unreadable_parquet(path: Path | None):
    """A Parquet file streamed by DuckDB (`path`; None for a file read into memory) whose pages cannot be read
    (damaged, truncated, an unknown compression) stops the run with one sentence naming the file: DuckDB's own error
    names the file's full path, or nothing a user could act on ("Variable-length int over 10 bytes")."""
    try:
        yield
    except duckdb.Error as e:
        # a reading error, not one of the SQL (a binder or parser error would be the same on every file)
        reading = type(e) is duckdb.Error or isinstance(e, (duckdb.IOException, duckdb.InvalidInputException))
        if path is None or not (reading or path.name in str(e)):
            raise
        # DuckDB's reason (e.g. a decompression failure) helps no one and its message names the full path
        raise PipelineError(_damaged_parquet(path)) from None


def _damaged_parquet(path: Path) -> str:
    return f"{path.name} could not be read as Parquet: it is truncated or damaged; export the table again"


def _ident(name: str) -> str:
    """A column name as a quoted SQL identifier (a header may hold any character, quotes included)."""
    return '"' + name.replace('"', '""') + '"'


def _check_duplicates(name: str, cols: list[str], source: Source) -> set[str]:
    seen = set()
    for c in cols:
        if c in seen and (c in source.columns or c in source.optional_columns):
            raise PipelineError(f"{name} has the column `{c}` twice in its header")
        seen.add(c)
    return seen


def _check_columns(name: str, cols: list[str], source: Source) -> None:
    seen = _check_duplicates(name, cols, source)
    for c in source.columns:
        if c not in seen:
            if len(cols) == 1:
                for d, words in _DELIMS.items():
                    if d in cols[0]:
                        raise PipelineError(f"{name} seems to be separated by {words}, not commas (its header is one column); "
                                            f"the required column `{c}` was not found")
            raise PipelineError(f"{name} is missing the required column `{c}`")


def read_table(path: Path, source: Source, inp: Input | None = None,
               lenient: bool = False) -> tuple[pa.Table, list[dict], list[str]]:
    """Read one raw file as text columns plus `_row_number` (1-based data row), the export's headers mapped to the
    contract's columns. Returns (table, malformed rows, column names as found after mapping). `lenient` (the
    `check` command): a missing required column is added empty instead of stopping."""
    inp = inp or Input()
    header_map = inp.header_map(source.stem)
    t, bad = _read_table(path, source, inp, header_map, lenient)
    found = [c for c in t.column_names if c != "_row_number"]
    if lenient:
        for c in source.columns:
            if c not in found:
                t = t.append_column(c, pa.array([None] * t.num_rows, pa.string()))
    return t, bad, found


def parquet_header(path: Path, source: Source, header_map: dict[str, str]) -> tuple[pa.Schema, list[str]]:
    """A raw Parquet file's schema and its columns' names as the contract's (trimmed, lower case, the export's own
    headers mapped by `[input.columns]`); one sentence when the file is not Parquet or is damaged. Both engines' readers
    start here."""
    _check_parquet_magic(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        raise PipelineError(_damaged_parquet(path)) from None
    return schema, _map_headers(path.name, [n.strip().lower() for n in schema.names], source, header_map)


def _read_table(path: Path, source: Source, inp: Input, header_map: dict[str, str],
                lenient: bool) -> tuple[pa.Table, list[dict]]:
    bad: list[dict] = []
    check = (lambda name, cols, src: _check_duplicates(name, cols, src)) if lenient else _check_columns
    if path.suffix == ".parquet":
        # the header first: a missing or repeated column is named before the rows are read
        schema, names = parquet_header(path, source, header_map)
        check(path.name, names, source)
        try:
            t = pq.read_table(path)
        except (pa.ArrowException, OSError):
            raise PipelineError(_damaged_parquet(path)) from None
        known = set(source.columns) | set(source.optional_columns)
        cols = {}
        for n, col in zip(names, t.columns):
            if n in cols:
                continue
            if pa.types.is_timestamp(col.type):
                if col.type.tz is not None:  # a moment in a time zone: the date is the one on that zone's clock
                    col = pc.local_timestamp(col)
                col = col.cast(pa.timestamp("s"), safe=False)
            if inp.date_format != ISO_DATE and (pa.types.is_date(col.type) or pa.types.is_timestamp(col.type)):
                # a typed date is unambiguous: write it in the declared format, which the staging SQL reads
                time_part = " %H:%M:%S" if pa.types.is_timestamp(col.type) else ""
                col = pc.strftime(col.cast(pa.timestamp("s")), format=inp.date_format + time_part)
            if pa.types.is_floating(col.type):
                col = _float_column_text(col)
            try:
                cols[n] = col.cast(pa.string())
            except pa.ArrowException:
                if n not in known:  # a column the contract does not know is ignored, whatever its type
                    log.info("%s: column `%s` (%s) is not in the input contract and is not text; ignored",
                             path.name, n, col.type)
                    continue
                raise PipelineError(f"{path.name}: column `{n}` has a type that cannot be read as text ({col.type})") from None
        t = pa.table(cols)
        t = t.append_column("_row_number", pa.array(range(1, t.num_rows + 1), pa.int64()))
        return t, bad

    names = _map_headers(path.name, _header(path, inp.encoding), source, header_map)
    check(path.name, names, source)
    # read every column as text; columns beyond the contract are kept for `rejects` but otherwise ignored
    unique = []
    for i, n in enumerate(names):
        unique.append(n if n not in unique else f"{n}__{i}")
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in unique}, strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    read_opts = pacsv.ReadOptions(column_names=unique, skip_rows=1, encoding="utf8" if _is_utf8(inp.encoding) else inp.encoding,
                                  block_size=1 << 24)

    def handler(row):
        try:
            text = row.text
        except UnicodeDecodeError:  # the row is malformed and not UTF-8 either: keep what can be kept
            text = None
        bad.append({"number": row.number, "text": text, "expected": row.expected_columns, "actual": row.actual_columns})
        return "skip"

    try:
        t = pacsv.read_csv(path, read_options=read_opts, convert_options=convert,
                           parse_options=pacsv.ParseOptions(invalid_row_handler=handler))
        if bad:  # line numbers of malformed rows are only known when reading on one thread
            bad.clear()
            read_opts.use_threads = False
            t = pacsv.read_csv(path, read_options=read_opts, convert_options=convert,
                               parse_options=pacsv.ParseOptions(invalid_row_handler=handler))
    except (pa.ArrowInvalid, UnicodeError) as e:
        raise _unreadable_csv(path.name, inp.encoding, e) from None
    n_total = t.num_rows + len(bad)
    if bad:
        bad_numbers = {b["number"] - 1 for b in bad}  # pyarrow counts the header as row 1
        good = [i for i in range(1, n_total + 1) if i not in bad_numbers]
        for b in bad:
            b["row_number"] = b["number"] - 1
    else:
        good = range(1, n_total + 1)
    t = t.append_column("_row_number", pa.array(good, pa.int64()))
    return t, bad


# Parquet types DuckDB can stream as text: what it writes is exactly pyarrow's cast to string (the in-memory reader's)
# for text, dates, integers and naive timestamps; for floats see _float_text
def _streamable(t: pa.DataType) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_date32(t) or pa.types.is_integer(t)
            or pa.types.is_floating(t) or (pa.types.is_timestamp(t) and t.tz is None))


def _float_text(ident: str) -> str:
    """A float column as text, as pyarrow writes it for every value a reading can take: a whole number without '.0'
    (140.0 -> '140'), others as DuckDB writes a double: the shortest decimal that reads back the same (7.5 -> '7.5'),
    with an exponent for very small values (1e-05, which the `value` check then rejects as not a plain number). The
    in-memory reader writes its float columns with this too (`_float_column_text`)."""
    return (f"case when isfinite({ident}) and {ident} = trunc({ident}) and abs({ident}) < 1e10 "
            f"then cast(cast({ident} as bigint) as varchar) else cast({ident} as varchar) end")


def _float_column_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A float column as the streamed reader writes it (`_float_text`, run by DuckDB here too), so that a value loads,
    or is rejected with the same text, whichever reader reads its file (and as Spark writes it: spark_engine)."""
    with duckdb.connect() as con:
        con.register("floats", pa.table({"value": column}))
        return con.sql(f"select {_float_text('value')} as value from floats").arrow().read_all().column(0)


def scan_parquet(con, path: Path, source: Source):
    """A Parquet raw file as a DuckDB view `raw_<stem>_arrow` of text columns plus `_row_number`, read by DuckDB
    as the queries run (streamed, within its memory limit). Returns the view's relation, or None when a column has
    a type whose text would differ from the in-memory reader's (that file is read by `read_table`)."""
    if path.suffix != ".parquet":
        return None
    with open(path, "rb") as fh:
        if fh.read(4) != b"PAR1":
            return None
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return None
    names = [n.strip().lower() for n in schema.names]
    _check_columns(path.name, names, source)
    if "_row_number" in names or not all(_streamable(f.type) for f in schema):
        return None
    cols, seen = [], set()
    for field, n in zip(schema, names):
        if n in seen:
            continue
        seen.add(n)
        ident = _ident(field.name)
        if pa.types.is_timestamp(field.type):
            cols.append(f"strftime({ident}, '%Y-%m-%d %H:%M:%S') as {_ident(n)}")
        elif pa.types.is_floating(field.type):
            cols.append(f"{_float_text(ident)} as {_ident(n)}")
        else:
            cols.append(f"cast({ident} as varchar) as {_ident(n)}")
    cols += [f"cast(null as varchar) as \"{c}\"" for c in source.optional_columns if c not in seen]
    con.read_parquet(str(path), file_row_number=True).create_view(f"raw_{source.stem}_file")
    return con.sql(f"create or replace temp view raw_{source.stem}_arrow as select {', '.join(cols)}, "
                   f"file_row_number + 1 as _row_number from raw_{source.stem}_file") or con.table(f"raw_{source.stem}_arrow")


def _file_hash(path: Path, h) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def _unreadable_csv(label: str, encoding: str, e: Exception) -> PipelineError:
    """The sentence for a CSV file Arrow could not read: text not in `encoding`, or Arrow's first line of reason."""
    msg = str(e)
    if isinstance(e, UnicodeError) or "UTF8" in msg or "UTF-8" in msg:
        return PipelineError(_not_text(label, encoding))
    return PipelineError(f"{label} could not be read as CSV: {msg.splitlines()[0][:160]}")


def read_small_csv(path: Path, names: list[str], label: str, encoding: str = "utf-8") -> pa.Table:
    """A small reference CSV (a codelist, reference rates, the LSOA lookup) as text columns c0, c1, ... (in the order
    of `names`, its header). A row with the wrong number of fields, or text not in `encoding`, stops the run with one
    sentence naming the file (as `label`) and the row: unlike the extract's tables, these files have no `rejects`."""
    columns = [f"c{i}" for i in range(len(names))]
    bad: list[tuple[int, int, int]] = []

    def handler(row):
        bad.append((row.number, row.actual_columns, row.expected_columns))
        return "skip"

    try:
        t = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=columns, skip_rows=1, use_threads=False,
                                                                encoding="utf8" if _is_utf8(encoding) else encoding),
                           parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
                           convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns}))
    except (pa.ArrowInvalid, UnicodeError) as e:
        raise _unreadable_csv(label, encoding, e) from None
    if bad:
        number, actual, expected = bad[0]
        raise PipelineError(f"{label} row {number - 1} has {actual} fields, expected {expected}; put a value that holds "
                            f"a comma in double quotes")
    return t


# Codes as a spreadsheet writes a number: "35489007.0", or "3.5489E+07" (scientific notation: digits are lost).
_SPREADSHEET_NUMBER = re.compile(r"^\d+\.0+$|^\d+(\.\d+)?[eE]\+?\d+$")


def read_codelist(raw: Path, rel: str, condition: str, encoding: str = "utf-8", owner: str = "condition",
                  required: bool = False) -> list[str]:
    """The codes of one codelist (trimmed, distinct, sorted); `required`: a codelist without codes stops the run (a
    diagnosis or indicator codelist; a resolved codelist may be empty)."""
    p = raw / rel
    if not p.exists():
        raise PipelineError(f"codelist {rel} ({owner} {condition}) is missing from the raw directory")
    label = f"codelist {rel}"
    names = _header(p, encoding, label=label)
    if "code" not in names:
        raise PipelineError(f"codelist {rel} is missing the required column `code`")
    codes = read_small_csv(p, names, label, encoding).column(names.index("code")).to_pylist()
    for number, code in enumerate(codes, start=1):
        if code and _SPREADSHEET_NUMBER.match(code.strip()):
            raise PipelineError(f"codelist {rel} row {number}: code `{code.strip()}` is written as a spreadsheet writes "
                                f"a number (SNOMED CT and dm+d ids are whole numbers written in full); download the "
                                f"codelist again and save it without opening it in a spreadsheet")
    codes = sorted({c.strip() for c in codes if c and c.strip()})
    if required and not codes:
        raise PipelineError(f"codelist {rel} ({owner} {condition}) has no codes")
    return codes


def staging_params(cfg: Config, today: dt.date) -> dict:
    """The values the staging models bind: the day of the run and the extract's date format."""
    return {"today": today, "date_format": cfg.input.date_format, "date_label": cfg.input.date_label}


def load_source(con, s: Source, path: Path | None, cfg: Config, today: dt.date, lenient: bool = False,
                on_raw=None) -> dict:
    """Read one raw file, run its staging model and leave two tables: `<stem>` (the rows that load) and
    `rejects_<stem>` (one row per rejected row: source, row_number, reason, the raw values). Returns what was found:
    {'file', 'rows_read', 'rows_loaded', 'rows_rejected', 'columns_found'}. `lenient` (the `check` command): a
    missing required column is read as empty rather than stopping."""
    t = None
    if path is None:  # optional file absent: an empty table with the contract's columns
        t = pa.table({c: pa.array([], pa.string()) for c in s.columns + s.optional_columns}
                     | {"_row_number": pa.array([], pa.int64())})
        bad, found = [], []
    elif not lenient and not cfg.input.header_map(s.stem) and cfg.input.date_format == ISO_DATE:
        t = scan_parquet(con, path, s)  # large Parquet files are streamed by DuckDB, never held in memory
        bad = []
        if t is not None:
            found = [c for c in t.columns if c != "_row_number"]
    if t is None:
        t, bad, found = read_table(path, s, cfg.input, lenient=lenient)
    if isinstance(t, pa.Table):
        for col in s.optional_columns:  # an optional column the file leaves out reads as empty
            if col not in t.column_names:
                t = t.append_column(col, pa.nulls(t.num_rows, pa.string()))
        con.register(f"raw_{s.stem}_arrow", t)
    # Arrow holds a file's text outside DuckDB's memory limit while it loads, so DuckDB gets the rest of the
    # budget (a 10M-patient events CSV is 2 GB of text: the run peaked at 8.6 GB with a 6 GB limit); not for
    # `check`, whose in-memory database keeps DuckDB's own default
    budgeted = isinstance(t, pa.Table) and path is not None and not lenient
    if budgeted:
        budget = cfg.engine.memory_bytes
        con.execute("set memory_limit = ?", [f"{max(budget - t.nbytes, budget // 4)}B"])
    with _unreadable_parquet(None if isinstance(t, pa.Table) else path):  # DuckDB reads the pages as queries run
        con.execute(f"create or replace temp view raw_{s.stem} as select * from raw_{s.stem}_arrow")
        _check_header_repeats(con, s, path)
        if on_raw is not None:  # the `check` command looks at the raw text (e.g. to detect the date format)
            on_raw(con, f"raw_{s.stem}")
        # the staging model is built as the loaded table itself: its rejected rows are copied out, then deleted, and the
        # two staging columns dropped (the file's rows are written once, not staged and then copied)
        build(con, f"staging/stg_{s.stem}", staging_params(cfg, today), name=s.stem)
        raw_names = t.column_names if isinstance(t, pa.Table) else t.columns
        raw_cols = ", ".join(f"r.{_ident(c)}" for c in raw_names if c != "_row_number")
        con.execute(f"create or replace temp table rejects_{s.stem} as "
                    f"select '{s.stem}' as source, s.row_number, s.reject_reason as reason, {raw_cols} "
                    f"from {s.stem} s join raw_{s.stem} r on r._row_number = s.row_number "
                    f"where s.reject_reason is not null")
        con.execute(f"delete from {s.stem} where reject_reason is not null")
        for staging_column in ("row_number", "reject_reason"):
            con.execute(f"alter table {s.stem} drop column {staging_column}")
        if bad:
            rows = [{"source": s.stem, "row_number": b["row_number"],
                     "reason": f"row has {b['actual']} fields, expected {b['expected']}", "raw_text": b["text"]} for b in bad]
            con.register("bad_rows_arrow", pa.Table.from_pylist(rows))
            con.execute(f"insert into rejects_{s.stem} by name select * exclude (raw_text) from bad_rows_arrow")
            con.unregister("bad_rows_arrow")
        n_rows = t.num_rows if isinstance(t, pa.Table) else con.execute(f"select count(*) from raw_{s.stem}").fetchone()[0]
        n_read = n_rows + len(bad)
        n_rej = con.execute(f"select count(*) from rejects_{s.stem}").fetchone()[0]
        n_loaded = con.execute(f"select count(*) from {s.stem}").fetchone()[0]
    if n_read != n_loaded + n_rej:
        raise RuntimeError(f"{s.stem}: rows do not reconcile ({n_read} != {n_loaded} + {n_rej})")
    con.execute(f"drop view raw_{s.stem}")
    if isinstance(t, pa.Table):
        con.unregister(f"raw_{s.stem}_arrow")
        # the file's text is no longer needed: hand its memory back to the system now (Arrow's allocator keeps freed
        # pages for reuse: 2 GB of them after that events CSV, on top of DuckDB's whole limit in the transform)
        t = None
        pa.default_memory_pool().release_unused()
    else:
        con.execute(f"drop view raw_{s.stem}_arrow")
        con.execute(f"drop view raw_{s.stem}_file")
    if budgeted:
        con.execute("set memory_limit = ?", [cfg.engine.memory_limit])
    progress.current().update(s.stem, rows=n_read)
    log.debug("%s: %d rows read, %d loaded, %d rejected", s.stem, n_read, n_loaded, n_rej)
    return {"file": path.name if path else None, "rows_read": n_read, "rows_loaded": n_loaded, "rows_rejected": n_rej,
            "columns_found": found}


def ingest(raw: Path, processed: Path, cfg: Config, con=None, engine: str = "duckdb") -> str | None:
    """Load the raw directory into the warehouse. Returns None, or the reject-rate guard's sentence when a file
    lost more than `[input] max_reject_share` of its rows (the warehouse still holds rejects and load_summary;
    the caller stops the run after committing it). The `ingest` command raises that sentence itself."""
    raw = Path(raw)
    require_raw_directory(raw)
    if con is None:
        with staged(processed, fresh=True, settings=cfg.engine) as c:
            stop = ingest(raw, processed, cfg, c, engine)
        if stop:
            remove_stale_exports(processed, keep=("load_summary", "rejects"))
            raise PipelineError(stop)
        return None

    today = run_date()
    later = [p.isoformat() for p in cfg.periods if p > today]
    if later:  # no event or registration can be dated then (rows dated after today are rejected)
        log.warning("the period%s %s %s after the day of the run (%s): %s counts are today's registers and codes, "
                    "the patients aged on to that date, not a measurement", "s" * (len(later) > 1), ", ".join(later),
                    "are" if len(later) > 1 else "is", today.isoformat(), "their" if len(later) > 1 else "its")
    _prewarm_expectations()
    files = {s.stem: find_file(raw, s.stem, s.optional_file) for s in SOURCES}
    codelists = read_configured_codelists(raw, cfg)
    h = hashlib.sha256()
    summary, reject_parts = [], []
    if engine == "spark":  # the same staging models, run on Spark (pipeline/spark_engine.py)
        from . import spark_engine

        summary = spark_engine.ingest_sources(spark_engine.session(cfg.engine), con, raw, processed, cfg, files, today, SOURCES)
        for path in files.values():
            if path is not None:
                _file_hash(path, h)
        reject_parts = [f"rejects_{row[0]}" for row in summary]
    for s in SOURCES if engine == "duckdb" else ():
        path = files[s.stem]
        if path is not None:
            _file_hash(path, h)
        got = load_source(con, s, path, cfg, today)
        if path is not None:
            summary.append((s.stem, path.name, got["rows_read"], got["rows_loaded"], got["rows_rejected"]))
            reject_parts.append(f"rejects_{s.stem}")

    con.execute("create or replace table load_summary (source varchar, file varchar, rows_read bigint, "
                "rows_loaded bigint, rows_rejected bigint)")
    con.executemany("insert into load_summary values (?, ?, ?, ?, ?)", summary)
    stop = reject_guard(con, cfg)
    if reject_parts:
        con.execute("create or replace table rejects as " + " union all by name ".join(f"select * from {p}" for p in reject_parts)
                    + " order by source, row_number")
    else:
        con.execute("create or replace table rejects (source varchar, row_number bigint, reason varchar)")

    # codelists named by the configuration (read, and checked, before the extract's tables)
    for path in codelists.files:
        _file_hash(path, h)
    con.execute("create or replace table codelists (condition varchar, kind varchar, code varchar)")
    con.executemany("insert into codelists values (?, ?, ?)", codelists.conditions)
    con.execute("create or replace table indicator_codelists (indicator varchar, criterion integer, code varchar)")
    if codelists.indicators:
        con.executemany("insert into indicator_codelists values (?, ?, ?)", codelists.indicators)

    load_external_rates(con, raw, cfg, h)
    load_lsoa_lookup(con, raw, cfg, h)

    boundaries = raw / "boundaries.geojson"
    if boundaries.exists():
        shutil.copyfile(boundaries, Path(processed) / "boundaries.geojson")
    elif (Path(processed) / "boundaries.geojson").exists():
        (Path(processed) / "boundaries.geojson").unlink()
    con.execute("create or replace table run_info (key varchar, value varchar)")
    con.executemany("insert into run_info values (?, ?)", [
        ("pipeline_version", __version__), ("input_hash", h.hexdigest()[:16]), ("run_date", today.isoformat()),
        ("boundaries", "yes" if boundaries.exists() else "no"), ("date_format", cfg.input.date_format),
        ("lsoa_lookup", "yes" if cfg.input.lsoa_lookup else "no"), ("engine", engine),
    ] + ([("spark_ingest", con.execute("select version from spark_storage_version").fetchone()[0])]
         if engine == "spark" else []))
    if stop:
        return stop
    from .expectations import validate_loaded

    if engine == "spark":
        from . import spark_engine

        validate_loaded(con, spark_engine.loaded_summaries(spark_engine.session(cfg.engine), con, processed, cfg))
    else:
        validate_loaded(con)
    return None


# Date formats tried, in this order, when an extract's dates are not in the declared format (UK forms before US).
DATE_CANDIDATES = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%Y/%m/%d", "%d.%m.%Y", "%Y%m%d", "%d/%m/%y",
                   "%d-%b-%Y", "%d %b %Y", "%d-%b-%y")


def detect_date_format(con, relation: str, column: str | tuple[str, ...], sample: int = 20_000) -> tuple[str, float, bool] | None:
    """The candidate format that reads most of the non-empty values of one column (or several, together) ->
    (format, share read, ambiguous with its day/month swap), or None when no candidate reads at least half of them.
    Set-based, in DuckDB; the formats are bound as parameters."""
    columns = (column,) if isinstance(column, str) else tuple(column)
    values = " union ".join(f'select clean(cast("{c}" as varchar)) as x from {relation} '
                            f'where clean(cast("{c}" as varchar)) is not null' for c in columns)
    counts = ", ".join("count(*) filter (where parse_date(x, ?) is not null)" for _ in DATE_CANDIDATES)
    got = con.execute(f"""
        with v as (select distinct x from ({values}) limit {int(sample)})
        select count(*), {counts} from v""", list(DATE_CANDIDATES)).fetchone()
    n_all = got[0]
    rows = sorted(((pos, fmt, got[pos + 1], n_all) for pos, fmt in enumerate(DATE_CANDIDATES)),
                  key=lambda r: (-r[2], r[0]))
    if not rows or rows[0][3] == 0 or rows[0][2] < 0.5 * rows[0][3]:
        return None
    pos, fmt, n_read, n_all = rows[0]
    swapped = fmt.replace("%d", "%D").replace("%m", "%d").replace("%D", "%m")
    ambiguous = swapped != fmt and any(r[1] == swapped and r[2] == n_read for r in rows)
    return fmt, n_read / n_all, ambiguous


def reject_guard(con, cfg: Config) -> str | None:
    """The first file (in load order) that lost more than `max_reject_share` of its rows -> one sentence naming the
    file, the share, the commonest reason with a sample row number and what to do; None when every file is within."""
    limit = cfg.input.max_reject_share
    over = con.execute("select source, file, rows_read, rows_rejected from load_summary "
                       "where rows_read > 0 and rows_rejected > ? * rows_read", [limit]).fetchall()
    if not over:
        return None
    order = [s.stem for s in SOURCES]
    stem, name, n_read, n_rej = min(over, key=lambda r: order.index(r[0]))
    reason, count, row = commonest_reason(con, f"rejects_{stem}")
    hint = ""
    col = reason.split(" ", 1)[0]
    if "is not a valid date" in reason and col in SOURCE_BY_STEM[stem].date_columns:
        found = detect_date_format(con, f"rejects_{stem}", SOURCE_BY_STEM[stem].date_columns)
        if found and found[0] != cfg.input.date_format:
            fmt, _, ambiguous = found
            hint = (f"; its dates look like {date_format_label(fmt)}"
                    + (" (or month first: no day is above 12)" if ambiguous else "")
                    + f", so declare date_format = \"{fmt}\" under [input] in the configuration")
        if not hint:
            hint = _missing_word_hint(con, stem, col, count)
    return (f"{name} lost {_pct(n_rej, n_read)} of its rows ({n_rej:,} of {n_read:,}), more than the "
            f"{_pct(limit, 1)} allowed (input.max_reject_share), so the run stopped after ingest; the commonest reason "
            f"is \"{reason}\" ({count:,} row{'s' * (count != 1)}, e.g. row {row}){hint}; run `python -m pipeline check --raw <raw directory>` "
            f"for the full picture (rejects and load_summary are in the warehouse)")


# Words some exports write where a value is missing (SQL Server's NULL, a spreadsheet's N/A): the contract's missing
# value is an empty field, so such a date is unreadable, and the guard says why.
MISSING_WORDS = ("NULL", "NA", "N/A", "NONE", "NAN", "NAT", "-", "UNKNOWN")


def _missing_word_hint(con, stem: str, column: str, count: int) -> str:
    """'; N of them hold the text NULL ...' when at least half of a reason's rows hold one such word, else ''."""
    word, n = con.execute(f"""select upper(clean(cast({_ident(column)} as varchar))) as word, count(*) as n
        from rejects_{stem} where list_contains(?, upper(clean(cast({_ident(column)} as varchar))))
        group by 1 order by 2 desc, 1 limit 1""", [list(MISSING_WORDS)]).fetchone() or (None, 0)
    if not word or 2 * n < count:
        return ""
    return (f"; {n:,} of them hold the text {word} where the value is missing: write a missing value as an empty "
            f"field")


def _pct(n: float, d: float) -> str:
    v = 100.0 * n / d
    return f"{v:.0f}%" if v == round(v) else f"{v:.1f}%"


def commonest_reason(con, relation: str) -> tuple[str, int, int]:
    """(reason, rows, first row number) of the commonest single reason among a file's rejects (a row's reasons
    are split at '; ')."""
    return con.execute(f"""
        with parts as (select row_number, unnest(string_split(reason, '; ')) as part from {relation})
        select part, count(*) as n, min(row_number) as first_row from parts
        group by part order by n desc, first_row limit 1""").fetchone()


def reasons_by_count(con, relation: str, examples: int = 3) -> list[tuple[str, int, list[int]]]:
    """Every single reason among a file's rejects: (reason, rows, the first `examples` row numbers)."""
    rows = con.execute(f"""
        with parts as (select row_number, unnest(string_split(reason, '; ')) as part from {relation}),
             ranked as (select part, row_number, row_number() over (partition by part order by row_number) as k from parts)
        select part, count(*) as n, list(row_number order by row_number) filter (where k <= {int(examples)}) as sample
        from ranked group by part order by n desc, min(row_number)""").fetchall()
    return [(r[0], r[1], list(r[2] or [])) for r in rows]


def _prewarm_expectations() -> None:
    """Import Great Expectations (about 2 s of Python) on a side thread while DuckDB loads the files: the checks at
    the end of ingest then start at once. DuckDB releases the GIL while it works, so the two overlap."""
    import sys
    import threading

    if "great_expectations" not in sys.modules:
        threading.Thread(target=_import_expectations, name="gx-import", daemon=True).start()


def _import_expectations() -> None:
    try:
        from .expectations import _context

        _context()
    except Exception:  # any failure shows itself again, with its traceback, when the checks run
        pass


@dataclass(frozen=True)
class Codelists:
    """The configuration's codelists as read: `conditions` rows (condition, kind, code), `indicators` rows
    (indicator, criterion, code: criterion 1, 2, ... in the order of an outcome's `criteria`; the one codelist of
    other kinds is criterion 1), and the files read, in that order."""
    conditions: list
    indicators: list
    files: list


def read_configured_codelists(raw: Path, cfg: Config) -> Codelists:
    """Every codelist the configuration names, checked (one sentence for a missing, empty or broken file): read
    before the extract's tables, so that a codelist fault stops the run before the long part of ingest."""
    conditions, indicators, files = [], [], []
    for c in cfg.conditions:
        for kind, rel in (("diagnosis", c.codelist), ("resolved", c.resolved_codelist)):
            if rel:
                codes = read_codelist(raw, rel, c.id, cfg.input.encoding, required=kind == "diagnosis")
                files.append(raw / rel)
                conditions += [(c.id, kind, code) for code in codes]
    for ind in cfg.indicators:
        for number, crit in enumerate(ind.criteria, start=1):
            codes = read_codelist(raw, crit.codelist, ind.id, cfg.input.encoding, owner="indicator", required=True)
            files.append(raw / crit.codelist)
            indicators += [(ind.id, number, code) for code in codes]
    return Codelists(conditions, indicators, files)


def _check_header_repeats(con, s: Source, path: Path | None) -> None:
    """A data row identical to the header (files concatenated with their headers) stops the run."""
    if path is None:
        return
    a, b = s.columns[:2]
    r = con.execute(f'select min(_row_number) from raw_{s.stem} where lower(trimmed("{a}")) = ? and lower(trimmed("{b}")) = ?',
                    [a, b]).fetchone()[0]
    if r is not None:
        raise PipelineError(f"{path.name} repeats its header as data row {r}; remove the extra header line")


def load_external_rates(con, raw: Path, cfg: Config, h) -> None:
    """An external reference-rate CSV (configuration `reference.rates`), checked and loaded as `external_rates`."""
    con.execute("create or replace table external_rates (period date, condition varchar, sex varchar, "
                "age_band varchar, rate double)")
    rel = cfg.reference.rates
    if rel == "internal":
        return
    p = raw / rel
    if not p.exists():
        raise PipelineError(f"reference rates file {rel} is missing from the raw directory")
    names = _header(p, label=f"reference rates file {rel}")
    for c in ("condition", "sex", "age_band", "rate"):
        if c not in names:
            raise PipelineError(f"reference rates file {rel} is missing the required column `{c}`")
    _file_hash(p, h)
    t = read_small_csv(p, names, f"reference rates file {rel}").rename_columns(names)
    t = t.append_column("_row_number", pa.array(range(1, t.num_rows + 1), pa.int64()))
    if "period" not in names:   # rates for every date
        t = t.append_column("period", pa.array([None] * t.num_rows, pa.string()))
    con.register("external_rates_arrow", t)
    bad = query(con, "external_rates_problems").fetchone()
    if bad:
        row, problem, first = bad
        why = {"value": "sex must be F, M, I or U, age_band a band such as 40-44, and rate a proportion from 0 to 1",
               "period": "period must be an ISO date (YYYY-MM-DD), or empty for every date",
               "repeated": f"gives a second rate for the same condition, sex, age band and period as row {first}"}
        raise PipelineError(f"reference rates file {rel} row {row}: {why[problem]}")
    con.execute("""insert into external_rates
        select parse_date(period, '%Y-%m-%d'), clean(condition), upper(clean(sex)),
               age_band_text(age_band), cast(clean(rate) as double)
        from external_rates_arrow""")
    con.unregister("external_rates_arrow")


# The ONS lookup's headers (compared case-insensitively) -> the warehouse's `lsoa_lookup` columns.
LOOKUP_COLUMNS = {"lsoa11_code": ("lsoa11cd", "f_lsoa11cd", "lsoa11_code"), "lsoa21_code": ("lsoa21cd", "lsoa21_code"),
                  "change": ("chgind", "change")}
LOOKUP_PUBLICATION = ("ONS \"LSOA (2011) to LSOA (2021) to Local Authority District (2022) Lookup for England and "
                      "Wales\" (Open Geography Portal)")


def read_lsoa_lookup(raw: Path, rel: str) -> pa.Table:
    """The configured ONS LSOA 2011 -> 2021 lookup as text columns lsoa11_code, lsoa21_code, change (U unchanged,
    S split, M merged, X complex; empty when the file has no CHGIND column)."""
    p = raw / rel
    if not p.is_file():
        raise PipelineError(f"the LSOA lookup {rel} (input.lsoa_lookup) is missing from the raw directory; "
                            f"it is the {LOOKUP_PUBLICATION}")
    label = f"the LSOA lookup {Path(rel).name}"
    names = _header(p, label=label)
    cols = {}
    for want, spellings in LOOKUP_COLUMNS.items():
        hit = next((names.index(s) for s in spellings if s in names), None)
        if hit is None and want != "change":
            raise PipelineError(f"the LSOA lookup {Path(rel).name} is missing the column `{spellings[0].upper()}`")
        cols[want] = hit
    t = read_small_csv(p, names, label)
    return pa.table({k: (t.column(i) if i is not None else pa.array([None] * t.num_rows, pa.string()))
                     for k, i in cols.items()})


def load_lsoa_lookup(con, raw: Path, cfg: Config, h) -> None:
    """`lsoa_lookup` (empty unless `[input] lsoa_lookup` names a file): pairs of 2011 and 2021 LSOA codes."""
    con.execute("create or replace table lsoa_lookup (lsoa11_code varchar, lsoa21_code varchar, change varchar)")
    rel = cfg.input.lsoa_lookup
    if not rel:
        return
    t = read_lsoa_lookup(raw, rel)
    _file_hash(raw / rel, h)
    con.register("lsoa_lookup_arrow", t)
    con.execute("""insert into lsoa_lookup
        select distinct clean(lsoa11_code), clean(lsoa21_code), upper(clean(change)) from lsoa_lookup_arrow
        where clean(lsoa11_code) is not null and clean(lsoa21_code) is not null""")
    con.unregister("lsoa_lookup_arrow")
