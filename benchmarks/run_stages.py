"""The data stages of `python -m pipeline run` (ingest, transform, analyse) in one process, as `run` does them, with
the seconds of each stage printed as one JSON line at the end. bench_pipeline.py runs it under /usr/bin/time -v.

    .venv/bin/python benchmarks/run_stages.py --raw DIR --processed DIR [--config FILE] [--engine duckdb|spark]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--processed", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    a = ap.parse_args()

    from pipeline.__main__ import run_data_stages
    from pipeline.config import load_config

    cfg = load_config(a.config)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    run_data_stages(a.raw, a.processed, cfg, a.engine, times)
    times["total"] = time.perf_counter() - t0
    print(json.dumps({"seconds": times}))


if __name__ == "__main__":
    main()
