"""Messy input: planted bad rows all land in `rejects`, every file reconciles, and `prevalence` equals the run on the
same data without them; corrupted files (fuzzed) give either a reconciled load or one clear sentence, never a traceback."""
from __future__ import annotations

import io
import random
import shutil

import duckdb
import pandas as pd
from conftest import allow_rejects, run_main, run_pipeline, small_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _run(tmp_path, raw, cfg, name):
    code, _, err = run_pipeline(raw, tmp_path / name, tmp_path / "reports", cfg)   # the data stages, in this process
    assert code == 0, err
    return pd.read_parquet(tmp_path / name / "prevalence.parquet")


def test_planted_bad_rows_are_all_rejected_and_change_nothing(tmp_path):
    raw, cfg = small_raw(tmp_path, n=120)
    allow_rejects(cfg)  # a few planted rows are a large share of a tiny file
    clean = _run(tmp_path, raw, cfg, "clean")
    bad_patients = ["p000,F,1980-01-01,A,L1,",        # duplicated id (first row kept)
                    ",F,1980-01-01,A,L1,",            # empty id
                    "q1,X,1980-01-01,A,L1,",          # unknown sex
                    "q2,F,1980-02-31,A,L1,",          # impossible date
                    "q3,F,2999-01-01,A,L1,",          # after the day of the run
                    "q4,F,,A,L1,"]                    # empty date of birth
    bad_regs = ["q1,A0,2000-01-01,",                  # patient rejected
                "zz,A0,2000-01-01,",                  # unknown patient
                "p001,NOPE,2000-01-01,",              # unknown practice
                "p001,A1,2010-01-01,2009-01-01",      # ends before it starts
                "p001,A1,yesterday,"]                 # unparseable
    bad_events = ["p000,,2020-01-01",                 # empty code
                  "zz,111,2020-01-01",                # unknown patient
                  "p000,111,2020-1x-01",              # bad date
                  "p000,111,2999-01-01"]              # future
    for stem, rows in (("patients", bad_patients), ("registrations", bad_regs), ("events", bad_events)):
        with open(raw / f"{stem}.csv", "a") as fh:
            fh.write("\n".join(rows) + "\n")
    dirty = _run(tmp_path, raw, cfg, "dirty")
    pd.testing.assert_frame_equal(clean, dirty)
    con = duckdb.connect(str(tmp_path / "dirty" / "warehouse.duckdb"), read_only=True)
    got = dict(con.execute("select source, count(*) from rejects group by 1").fetchall())
    assert got == {"patients": 6, "registrations": 5, "events": 4}
    assert con.execute("select count(*) from load_summary where rows_read <> rows_loaded + rows_rejected").fetchone()[0] == 0
    assert con.execute("select count(*) from rejects where reason is null or reason = ''").fetchone()[0] == 0


def _mutate(data: bytes, rnd: random.Random, kind: str) -> bytes:
    b = bytearray(data)
    if kind == "flip":
        for _ in range(rnd.randint(1, 8)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
    elif kind == "truncate":
        b = b[: rnd.randrange(len(b))]
    elif kind == "delete_line":
        lines = bytes(b).split(b"\n")
        del lines[rnd.randrange(len(lines))]
        b = bytearray(b"\n".join(lines))
    elif kind == "insert":
        pos = rnd.randrange(len(b))
        b[pos:pos] = rnd.choice([b",", b"\"", b"\n", b"\r\n", b"\x00", b"\xff\xfe", b";;", b",,,,"])
    return bytes(b)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                    HealthCheck.function_scoped_fixture])
@given(stem=st.sampled_from(["patients", "registrations", "events", "practices", "deprivation", "neighbourhoods"]),
       kind=st.sampled_from(["flip", "truncate", "delete_line", "insert"]), seed=st.integers(0, 10_000))
def test_fuzzed_files_never_give_a_traceback(tmp_path_factory, stem, kind, seed):
    tmp = tmp_path_factory.mktemp("fuzz")
    raw, cfg = small_raw(tmp, n=30)
    allow_rejects(cfg)  # the reject-rate guard has its own tests (test_input_options.py)
    p = raw / f"{stem}.csv"
    p.write_bytes(_mutate(p.read_bytes(), random.Random(seed), kind))
    # in this process (the CLI's own main): 25 interpreter starts were most of this test's time
    code, _, err = run_main("ingest", "--raw", raw, "--processed", tmp / "p", "--config", cfg)
    assert "Traceback" not in err, err
    if code == 0:
        con = duckdb.connect(str(tmp / "p" / "warehouse.duckdb"), read_only=True)
        assert con.execute("select count(*) from load_summary where rows_read <> rows_loaded + rows_rejected").fetchone()[0] == 0
        n_lines = sum(1 for ln in io.BytesIO(p.read_bytes()).read().splitlines()[1:] if ln.strip())
        read = con.execute("select rows_read from load_summary where source = ?", [stem]).fetchone()[0]
        assert read <= n_lines
        con.close()
    else:
        assert code == 2, err
        msgs = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(msgs) == 1 and f"{stem}.csv" in msgs[0], err
    shutil.rmtree(tmp, ignore_errors=True)
