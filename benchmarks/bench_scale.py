"""`make bench`: the data stages at several sizes on DuckDB (and on local Spark), against the hand-written baseline,
written as a table to benchmarks/results.md.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 100000,1000000,10000000] [--spark-sizes 1000000]
        [--work DIR] [--results benchmarks/results.md] [--keep-data]

For each size: the demo extract (made once, kept in --work), then in this one invocation the baseline
(baseline_prevalence.py) and the pipeline's ingest + transform + analyse in one process (run_stages.py), each under
`/usr/bin/time -v` for its peak resident memory. The machine's load average is recorded beside every timing, because
other users' work on a shared machine slows any run down.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"


def timed(cmd: list[str], env: dict | None = None) -> tuple[str, float, float, float]:
    """Run cmd under /usr/bin/time -v; returns (stdout, wall seconds, peak RSS in MB, CPU seconds)."""
    full = ([TIME, "-v"] if Path(TIME).exists() else []) + cmd
    t0 = time.perf_counter()
    r = subprocess.run(full, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PIPELINE_LOG": "WARNING", **(env or {})})
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"failed: {' '.join(cmd[:3])} ...\n{r.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", r.stderr)) or float("nan")
    return r.stdout, wall, int(m.group(1)) / 1024 if m else float("nan"), cpu


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def input_rows(raw: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(raw / f"{s}.parquet").metadata.num_rows for s in ("patients", "registrations", "events"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--spark-sizes", default="1000000")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "pipeline-bench")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results.md")
    ap.add_argument("--keep-data", action="store_true", help="keep the demo extracts in --work for the next run")
    ap.add_argument("--without-indicators", action="store_true",
                    help="also run DuckDB on a copy of the default configuration without its [[indicators]]")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",") if x]
    spark_sizes = [int(x) for x in a.spark_sizes.split(",") if x]
    if spark_sizes:
        sys.path.insert(0, str(REPO))
        from pipeline.spark_engine import spark_available

        if not spark_available() or not shutil.which("java"):
            print("Spark engine not available (the spark extra and Java 17+): skipping the Spark rows")
            spark_sizes = []
    a.work.mkdir(parents=True, exist_ok=True)
    no_indicators = a.work / "config_without_indicators.toml"
    no_indicators.write_text(without_indicators((REPO / "pipeline" / "default.toml").read_text()), encoding="utf-8")
    rows = []
    for n in sorted(set(sizes) | set(spark_sizes)):
        raw = a.work / f"raw_{n}"
        if not (raw / "events.parquet").exists():
            subprocess.run([sys.executable, "-m", "pipeline", "demo-data", "--out", str(raw), "--patients", str(n)],
                           cwd=REPO, check=True, capture_output=True)
        n_in = input_rows(raw)
        before = load()
        out, base_wall, base_peak, base_cpu = timed([sys.executable, "benchmarks/baseline_prevalence.py", str(raw)])
        base_secs = float(re.search(r"in ([\d.]+) s", out).group(1))
        print(f"{n:>10,} baseline {base_secs:6.1f} s  peak {base_peak:,.0f} MB  (load {before})", flush=True)
        runs = (["duckdb"] if n in sizes else []) + (["duckdb, no indicators"] if n in sizes and a.without_indicators
                                                      else []) + (["spark"] if n in spark_sizes else [])
        for label in runs:
            engine = label.split(",")[0]
            processed = a.work / f"processed_{engine}_{n}"
            shutil.rmtree(processed, ignore_errors=True)
            before = load()
            config = ["--config", str(no_indicators)] if "no indicators" in label else []
            out, wall, peak, cpu = timed([sys.executable, "benchmarks/run_stages.py", "--raw", str(raw), "--processed",
                                     str(processed), "--engine", engine, *config])
            secs = json.loads(out.strip().splitlines()[-1])["seconds"]
            after = load()
            row = dict(patients=n, engine=label, input_rows=n_in, ingest=secs["ingest"], transform=secs["transform"],
                       analyse=secs["analyse"], stages=secs["ingest"] + secs["transform"] + secs["analyse"], wall=wall,
                       peak_mb=peak, cpu=cpu, baseline_cpu=base_cpu, baseline=base_secs, baseline_peak_mb=base_peak, load=f"{before} → {after}")
            row["ratio"] = row["stages"] / base_secs
            row["rows_per_s"] = n_in / row["stages"]
            rows.append(row)
            print(f"{n:>10,} {label:<6} ingest {row['ingest']:6.1f}  transform {row['transform']:6.1f}  analyse "
                  f"{row['analyse']:5.1f}  = {row['stages']:6.1f} s  peak {peak:,.0f} MB  x{row['ratio']:.2f} baseline  "
                  f"{row['rows_per_s']:,.0f} rows/s  CPU {cpu:.0f} s vs {base_cpu:.0f} s  (load {row['load']})", flush=True)
            shutil.rmtree(processed, ignore_errors=True)
        if not a.keep_data:
            shutil.rmtree(raw, ignore_errors=True)
    write_results(a.results, rows)
    print(f"written: {a.results.name}")


def without_indicators(toml_text: str) -> str:
    """The configuration's text without its [[indicators]] tables (each runs to the next table header)."""
    kept, inside = [], False
    for line in toml_text.splitlines(keepends=True):
        if line.strip() == "[[indicators]]":
            inside = True
        elif line.startswith("[") and not line.startswith("[[indicators"):
            inside = False
        if not inside:
            kept.append(line)
    return "".join(kept)


def write_results(path: Path, rows: list[dict]) -> None:
    lines = [
        "# Benchmark results (`make bench`)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
        f"{_mem_gb():.0f} GB, Python {platform.python_version()}. Demo extracts (`python -m pipeline demo-data`); "
        "stages = ingest + transform + analyse in one process (`benchmarks/run_stages.py`, as `run` does them, "
        "without the packs); baseline = `benchmarks/baseline_prevalence.py` (one hand-written DuckDB query for the "
        "`prevalence` contract) run in the same invocation; peak = maximum resident memory from `/usr/bin/time -v` "
        "(for Spark, the Python driver only: the JVM that pyspark starts is not waited for, so its memory, capped by "
        "`spark.driver.memory`, default 1 GB of heap, is not in the figure); rows/s = input rows (patients + registrations + "
        "events) / stage seconds; CPU s = user + system seconds of the whole process (less sensitive to load than wall "
        "time); CPU ratio = CPU s / baseline CPU s; `duckdb, no indicators` = the default configuration without its "
        "`[[indicators]]` (`--without-indicators`); load = the machine's 1/5/15-minute load average before → after "
        "(others' work on a shared machine slows a run down).",
        "",
        "| patients | engine | input rows | ingest s | transform s | analyse s | stages s | CPU s | peak MB | baseline s "
        "| baseline CPU s | ratio to baseline | CPU ratio | rows/s | load |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['patients']:,} | {r['engine']} | {r['input_rows']:,} | {r['ingest']:.1f} | {r['transform']:.1f} "
                     f"| {r['analyse']:.1f} | {r['stages']:.1f} | {r['cpu']:.0f} | {r['peak_mb']:,.0f} | {r['baseline']:.1f} "
                     f"| {r['baseline_cpu']:.0f} "
                     f"| {r['ratio']:.2f} | {r['cpu'] / r['baseline_cpu']:.2f} | {r['rows_per_s']:,.0f} | {r['load']} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _mem_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return float("nan")


if __name__ == "__main__":
    main()
