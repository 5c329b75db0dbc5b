"""Benchmark (not a test): demo data + every stage at a given size, with wall time and peak memory per step.

    .venv/bin/python benchmarks/bench_pipeline.py --patients 1000000 [--bad-rows 0.01] [--keep DIR]
        [--config FILE] [--raw DIR]

--config runs the stages with another configuration (e.g. without [[indicators]], to time what they add);
--raw reuses an existing raw directory instead of writing demo data.

With --bad-rows F, a fraction F of rows in patients, registrations and events is corrupted (bad dates, unknown
sex, orphan ids, empty codes) before the run, to measure the cost of quarantine against the clean run.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def step(name: str, args: list[str], env=None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env={**os.environ, **(env or {}), "PIPELINE_LOG": "WARNING"},
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{name:<12} {dt:8.1f} s   (peak child RSS so far {peak:,.0f} MB)  exit {r.returncode}")
    if r.returncode:
        print(r.stderr[-2000:])
        sys.exit(1)
    return dt


def corrupt(raw: Path, frac: float, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    total = 0
    for stem, col, bad in [("patients", "sex", "X"), ("registrations", "registered_from", "2020-13-45"),
                           ("events", "code", None)]:
        t = pq.read_table(raw / f"{stem}.parquet")
        n = t.num_rows
        idx = rng.choice(n, size=int(n * frac), replace=False)
        c = t.column(col).cast(pa.string()).to_numpy(zero_copy_only=False).astype(object)
        c[idx] = bad
        t = t.set_column(t.column_names.index(col), col, pa.array(c, pa.string()))
        pq.write_table(t, raw / f"{stem}.parquet")
        total += len(idx)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--bad-rows", type=float, default=0.0)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--raw", type=Path, default=None)
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    raw, processed, reports = (a.raw or work / "raw"), work / "processed", work / "reports"
    for d in (processed, reports):
        shutil.rmtree(d, ignore_errors=True)
    print(f"{a.patients:,} patients, bad-row fraction {a.bad_rows}")
    if a.raw is None:
        step("demo-data", ["demo-data", "--out", str(raw), "--patients", str(a.patients)])
    if a.bad_rows:
        print(f"corrupted {corrupt(raw, a.bad_rows):,} rows")
    common = ["--raw", str(raw), "--processed", str(processed), "--reports", str(reports)] + \
        (["--config", str(a.config)] if a.config else [])
    total = 0.0
    for s in ["ingest", "transform", "analyse"] + ([] if a.skip_report else ["report"]):
        total += step(s, [s, *common])
    print(f"{'stages':<12} {total:8.1f} s")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
