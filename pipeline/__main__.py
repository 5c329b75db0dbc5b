"""Command line (contract in DESIGN.md):

    python -m pipeline demo-data --out DIR [--patients N] [--seed S]
    python -m pipeline run|ingest|transform|analyse|report --raw DIR --processed DIR --reports DIR [--config FILE]
    python -m pipeline check --raw DIR [--config FILE]
    python -m pipeline public --in DIR --year 2022-23[,2024-25] --processed DIR --reports DIR [--icb CODE|all]

Exit status 0 on success; 2 with a one-sentence message on bad input; never a traceback for a user's mistake.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from . import paths
from .errors import PipelineError

log = logging.getLogger("pipeline")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description="Health-inequalities pipeline for English primary care.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo-data", help="write a synthetic raw directory (the embedded default)")
    d.add_argument("--out", type=Path, default=paths.RAW_DIR)
    d.add_argument("--patients", type=int, default=250_000)
    d.add_argument("--seed", type=int, default=20240331)
    d.add_argument("--date-format", default=None, metavar="PATTERN",
                   help="write patients, registrations and events as CSV with dates in this strftime pattern "
                        "(e.g. %%d/%%m/%%Y), as many GP exports do; default: ISO dates in Parquet")

    for name, helptext in [("run", "all stages"), ("ingest", "validate and load raw files into the warehouse"),
                           ("transform", "SQL: staging, intermediate, marts"),
                           ("analyse", "rates, expected, ratios, intervals, inequality, funnels, trends"),
                           ("report", "PDF packs with disclosure control")]:
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--raw", type=Path, default=paths.RAW_DIR)
        s.add_argument("--processed", type=Path, default=paths.PROCESSED_DIR)
        s.add_argument("--reports", type=Path, default=paths.REPORTS_DIR)
        s.add_argument("--config", type=Path, default=None)
        if name != "report":
            s.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                           help="where the SQL models run: DuckDB on this machine (default) or Apache Spark "
                                "([engine] spark_master in the configuration, or SPARK_REMOTE; default local[*])")

    c = sub.add_parser("check", help="pre-flight report on a raw directory; writes nothing")
    c.add_argument("--raw", type=Path, default=paths.RAW_DIR)
    c.add_argument("--config", type=Path, default=None)

    pub = sub.add_parser("public", help="aggregate path: England's published QOF, registrations and IMD files")
    pub.add_argument("--in", dest="in_dir", type=Path, default=None,
                     help="the directory holding the published files as downloaded (zip archives are read by member name)")
    pub.add_argument("--sources", action="store_true",
                     help="list each input's publisher, publication, file name and vintage for --year, and stop")
    pub.add_argument("--year", default="2022-23", help="QOF year, or years comma-separated for the trend (the latest is reported)")
    pub.add_argument("--processed", type=Path, default=paths.REPO_ROOT / "data" / "processed_public")
    pub.add_argument("--reports", type=Path, default=paths.REPO_ROOT / "reports_public")
    pub.add_argument("--icb", default=None, help="ICB code(s) (ODS, e.g. QHM) for the packs, or 'all' (every ICB and PCN, and "
                     "the England summary); default: the warehouse only, no packs")
    return p


def _stage(name: str, fn, *a, times: dict | None = None, **kw):
    from . import progress

    t0 = time.perf_counter()
    with progress.start(name):
        out = fn(*a, **kw)
    if times is not None:
        times[name] = time.perf_counter() - t0
    if os.environ.get("PIPELINE_KILL_AFTER") == name:  # test hook: die as a killed run would, mid-way
        os.kill(os.getpid(), signal.SIGKILL)
    return out


def run_data_stages(raw: Path, processed: Path, cfg, engine: str = "duckdb", times: dict | None = None) -> None:
    """ingest, transform and analyse on one private copy of the warehouse, swapped in only when all succeed."""
    from .analyse import analyse
    from .ingest import ingest
    from .transform import transform
    from .warehouse import staged

    # when the reject-rate guard stops the run after ingest, what ingest wrote (rejects, load_summary) is kept
    with staged(processed, fresh=True, settings=cfg.engine) as con:
        stop = _stage("ingest", ingest, raw, processed, cfg, con, engine=engine, times=times)
        if not stop:
            _stage("transform", transform, processed, cfg, con, engine=engine, times=times)
            _stage("analyse", analyse, processed, cfg, con, times=times)
    if stop:
        from .warehouse import remove_stale_exports

        remove_stale_exports(processed, keep=("load_summary", "rejects"))
        raise PipelineError(stop)


def main(argv: list[str] | None = None) -> int:
    # only the pipeline's own loggers follow PIPELINE_LOG; libraries stay at WARNING (their debug lines name local paths)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("pipeline").setLevel(os.environ.get("PIPELINE_LOG", "INFO").upper())
    args = _parser().parse_args(argv)
    cfg = None
    try:
        if args.command == "demo-data":
            from .demo import generate

            _stage("demo-data", generate, args.out, n_patients=args.patients, seed=args.seed, date_format=args.date_format)
            return 0
        if args.command == "public":
            if args.sources:
                from .public_inputs import describe_sources

                print("\n\n".join(describe_sources(y.strip()) for y in args.year.split(",")))
                return 0
            if args.in_dir is None:
                raise PipelineError("public needs --in DIR, the directory holding the published files "
                                    "(python -m pipeline public --sources lists them)")
            from .lock import check_output_folders
            from .public import run_public

            check_output_folders(args.in_dir, args.processed, args.reports)
            _stage("public", run_public, args.in_dir, args.year, args.processed, args.reports, icb=args.icb)
            return 0

        from .config import load_config
        from .lock import check_output_folders, run_lock

        cfg = load_config(args.config)
        if args.command != "check":   # before any work: a run must never remove the user's own files
            check_output_folders(args.raw, args.processed, args.reports if args.command in ("run", "report") else None,
                                 args.config)
        if args.command == "check":
            from .check import check

            report, ok = check(args.raw, cfg)
            print(report)
            return 0 if ok else 1
        with run_lock(args.processed):
            if args.command == "run":
                run_data_stages(args.raw, args.processed, cfg, args.engine)
                from .report.render import render_reports

                _stage("report", render_reports, args.processed, args.reports, cfg)
            elif args.command == "ingest":
                from .ingest import ingest

                _stage("ingest", ingest, args.raw, args.processed, cfg, engine=args.engine)
            elif args.command == "transform":
                from .transform import transform

                _stage("transform", transform, args.processed, cfg, engine=args.engine)
            elif args.command == "analyse":
                from .analyse import analyse

                _stage("analyse", analyse, args.processed, cfg)
            elif args.command == "report":
                from .report.render import render_reports

                _stage("report", render_reports, args.processed, args.reports, cfg)
        return 0
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # a folder or file of the user's that cannot be read or written: no traceback, no path
        from .lock import folder_problem

        name = f" ({Path(e.filename).name})" if getattr(e, "filename", None) else ""
        print(f"error: a file or folder could not be read or written{name}: {folder_problem(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the previous outputs are left as they were", file=sys.stderr)
        return 130
    except Exception as e:
        import duckdb

        from .config import Engine

        if not isinstance(e, duckdb.OutOfMemoryException):
            raise
        limit = (cfg.engine if cfg is not None else Engine()).memory_limit
        print(f"error: DuckDB ran out of memory within its limit ({limit}) even when spilling to disk; raise "
              f"[engine] memory_limit in the configuration, or free space where it spills ([engine] temp_directory); "
              f"the previous outputs are left as they were", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
