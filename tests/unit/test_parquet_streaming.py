"""Raw Parquet files are streamed by DuckDB (never read whole into memory) and give the same text as the in-memory
reader, float columns included (readings' `value` written as double by many extract tools)."""
from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.ingest import read_table, scan_parquet
from pipeline.schema import SOURCE_BY_STEM


def test_a_parquet_file_with_a_float_value_column_is_streamed_with_the_in_memory_readers_text(tmp_path):
    rng = np.random.default_rng(7)
    values = [round(float(x), int(k)) for x, k in zip(rng.uniform(-300, 300, 2000), rng.integers(0, 4, 2000))]
    # the last four: outside 0.0001 <= |x| < 10^10 the two readers wrote different text (one loaded what the other
    # rejected), and a negative zero
    values += [140.0, 48.0, 7.5, 0.30000000000000004, 123456789.0, 0.0001, None, float("nan"),
               1e-05, 1.5e12, 1e20, -0.0]
    n = len(values)
    events = pa.table({
        "patient_id": pa.array([f"P{i:05d}" for i in range(n)]),
        "code": pa.array(["271649006"] * n),
        "date": pa.array([dt.date(2023, 1, 2)] * n, pa.date32()),
        "value": pa.array(values, pa.float64()),
    })
    path = tmp_path / "events.parquet"
    pq.write_table(events, path)
    source = SOURCE_BY_STEM["events"]
    con = duckdb.connect()
    streamed = scan_parquet(con, path, source)
    assert streamed is not None, "a float column must not force the whole file into memory"
    got = con.sql("select * from raw_events_arrow order by _row_number").arrow().read_all()
    want, _, _ = read_table(path, source)
    for column in ("patient_id", "code", "date", "value", "_row_number"):
        assert got.column(column).to_pylist() == want.column(column).to_pylist(), column
    assert got.column("value").to_pylist()[n - 12:n - 6] == ["140", "48", "7.5", "0.30000000000000004", "123456789",
                                                             "0.0001"]
    # as DuckDB and Spark (spark_engine._float_text) write a double: 1e-05 is rejected as not a plain number
    assert got.column("value").to_pylist()[n - 4:] == ["1e-05", "1500000000000.0", "1e+20", "0"]


def test_a_csv_held_in_memory_is_counted_in_the_memory_budget_while_it_loads(tmp_path):
    """A CSV is read whole by Arrow, outside DuckDB's limit: while it loads, DuckDB's limit is the budget less the
    text's size, and the configured limit is back afterwards (before: DuckDB kept the whole budget beside the text,
    and a 10M-patient CSV extract peaked at 8.6 GB with a 6 GB limit)."""
    import dataclasses

    from pipeline.config import Engine, load_config
    from pipeline.ingest import load_source
    from pipeline.warehouse import connect, load_macros

    rows = "\n".join(f"P{i:06d},F,1980-01-{1 + i % 28:02d},A,E01000001," for i in range(40_000))
    path = tmp_path / "patients.csv"
    path.write_text("patient_id,sex,date_of_birth,ethnicity,lsoa_code,date_of_death\n" + rows + "\n")
    cfg = dataclasses.replace(load_config(None), engine=Engine(memory_limit="1GB"))
    con = connect(settings=cfg.engine)
    load_macros(con)
    limit = lambda: con.execute("select current_setting('memory_limit')").fetchone()[0]  # noqa: E731
    configured = limit()
    text_bytes = read_table(path, SOURCE_BY_STEM["patients"])[0].nbytes
    assert text_bytes > 2_000_000
    con.execute("set memory_limit = ?", [f"{10**9 - text_bytes}B"])
    budget_less_text = limit()
    con.execute("set memory_limit = '1GB'")
    assert budget_less_text != configured
    during = []
    got = load_source(con, SOURCE_BY_STEM["patients"], path, cfg, dt.date(2025, 3, 31),
                      on_raw=lambda c, relation: during.append(limit()))
    assert got["rows_loaded"] == 40_000
    assert during == [budget_less_text]
    assert limit() == configured
