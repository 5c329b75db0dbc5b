"""Shared fixtures and helpers for the test suite.

    write_raw(raw_dir, tables)   write a tiny raw directory (input contract) from dicts/lists as CSV files
    write_config(path, periods, conditions)   write a configuration TOML
    run_cli(*args)               run `python -m pipeline *args` from the repo root -> (returncode, stdout, stderr)
    run_main(*args)              the same in this process (no interpreter start; logs not in the returned stderr)
    run_pipeline(raw, processed, reports, config)   the data stages (ingest, transform, analyse) through the CLI's main
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # so that tests can `import oracle`
    sys.path.insert(0, str(TESTS_DIR))

# Columns of each raw table in the input contract, in the order written when a row omits some.
RAW_COLUMNS = {
    "patients": ["patient_id", "sex", "date_of_birth", "ethnicity", "lsoa_code", "date_of_death"],
    "registrations": ["patient_id", "practice_code", "registered_from", "registered_to"],
    "events": ["patient_id", "code", "date"],
    "practices": ["practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"],
    "deprivation": ["lsoa_code", "imd_score", "imd_rank", "imd_decile"],
    "neighbourhoods": ["lsoa_code", "neighbourhood_code", "neighbourhood_name"],
}


def write_csv(path: Path, rows, columns: list[str] | None = None) -> Path:
    """Write rows (list of dicts, list of lists with `columns`, or a pandas DataFrame) as CSV.

    Missing keys in a dict row are written as empty strings. `None` is written as an empty string.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(rows, "to_csv"):  # a DataFrame
        rows.to_csv(path, index=False)
        return path
    rows = list(rows)
    if columns is None:
        columns = []
        for r in rows:
            for k in (r.keys() if isinstance(r, dict) else []):
                if k not in columns:
                    columns.append(k)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            if isinstance(r, dict):
                w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
            else:
                w.writerow(["" if v is None else v for v in r])
    return path


def write_raw(raw_dir: Path, tables: dict) -> Path:
    """Write a raw directory: `tables` maps a stem ('patients', 'codelists/dep', ...) to rows.

    Rows are dicts (missing keys -> empty) or lists in the contract's column order. A known table
    is written with all its contract columns unless `columns` are given as `(columns, rows)`.
    Codelists may be given as a plain list of codes.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stem, rows in tables.items():
        columns = None
        if isinstance(rows, tuple):
            columns, rows = rows
        elif stem.startswith("codelists/"):
            rows = [r if isinstance(r, dict) else {"code": r, "term": f"term {r}"} for r in rows]
            columns = ["code", "term"]
        elif stem in RAW_COLUMNS:
            columns = list(RAW_COLUMNS[stem])
            extra = [k for r in rows if isinstance(r, dict) for k in r if k not in columns]
            columns += list(dict.fromkeys(extra))
        write_csv(raw_dir / f"{stem}.csv", rows, columns)
    return raw_dir


def write_config(path: Path, periods, conditions: list[dict], input: dict | None = None) -> Path:
    """Write a configuration TOML with the given periods (ISO strings or dates) and conditions, and an optional
    `[input]` section (e.g. {"max_reject_share": 1.0} for tests that plant many bad rows in a tiny extract)."""
    lines = ["periods = [" + ", ".join(f'"{p}"' for p in periods) + "]", ""]
    for c in conditions:
        lines.append("[[conditions]]")
        for k, v in c.items():
            if v is None:
                continue
            lines.append(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"')
        lines.append("")
    if input:
        lines.append("[input]")
        for k, v in input.items():
            lines.append(f"{k} = {v}" if isinstance(v, (int, float)) else f"{k} = {_toml_str(v)}")
        lines.append("")
    Path(path).write_text("\n".join(lines), encoding="utf-8")
    return Path(path)


def _toml_str(v: str) -> str:
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def allow_rejects(cfg: Path, share: float = 1.0) -> Path:
    """Append `[input] max_reject_share` to a configuration file: for tests that plant many bad rows in a few."""
    with open(cfg, "a", encoding="utf-8") as fh:
        fh.write(f"\n[input]\nmax_reject_share = {share}\n")
    return cfg


def run_cli(*args, timeout: float = 600, env: dict | None = None) -> tuple[int, str, str]:
    """Run `python -m pipeline *args` with cwd = repo root; returns (returncode, stdout, stderr)."""
    e = dict(os.environ)
    e.setdefault("PIPELINE_LOG", "WARNING")
    if env:
        e.update(env)
    proc = subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, env=e)
    return proc.returncode, proc.stdout, proc.stderr


def run_main(*args, env: dict | None = None) -> tuple[int, str, str]:
    """`python -m pipeline *args` in this process (pipeline.__main__.main) -> (returncode, stdout, stderr): for tests
    that run the command line many times and read only its exit status and printed lines, without an interpreter
    start per call. An exception that would print a traceback from `python -m pipeline` escapes here and fails the
    test. Log records go to pytest's log capture, not to the returned stderr (use run_cli to read the logs)."""
    import contextlib
    import io
    import logging

    from pipeline.__main__ import main

    env = {"PIPELINE_LOG": "WARNING", **(env or {})}
    saved = {k: os.environ.get(k) for k in env}
    logger = logging.getLogger("pipeline")
    level = logger.level
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as stop:   # argparse's usage errors
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        logger.setLevel(level)
    return code, out.getvalue(), err.getvalue()


DATA_STAGES = ("ingest", "transform", "analyse")


def run_pipeline(raw: Path, processed: Path, reports: Path, config: Path | None = None,
                 stages=DATA_STAGES, env: dict | None = None) -> tuple[int, str, str]:
    """Run the given CLI stages in turn (default: the three data stages, no PDF packs); stops at the first failure.
    In this process (run_main: the CLI's own main, no interpreter start per stage); the returned stderr holds the
    printed lines (`error: ...`), not the log (tests that read the log use run_cli)."""
    opts = ["--raw", raw, "--processed", processed, "--reports", reports] + (["--config", config] if config else [])
    out_all, err_all = "", ""
    for stage in stages:
        rc, out, err = run_main(stage, *opts, env=env)
        out_all, err_all = out_all + out, err_all + err
        if rc != 0:
            return rc, out_all, err_all
    return 0, out_all, err_all


SMALL_PERIODS = ["2024-03-31", "2025-03-31"]


def small_raw(tmp_path: Path, n: int = 60) -> tuple[Path, Path]:
    pats, regs, evs = [], [], []
    for i in range(n):
        pid = f"p{i:03d}"
        pats.append(dict(patient_id=pid, sex="FM"[i % 2], date_of_birth=f"{1940 + i % 60}-0{1 + i % 9}-01",
                         ethnicity="ABHMRZ"[i % 6], lsoa_code=f"L{i % 4}", date_of_death=""))
        regs.append(dict(patient_id=pid, practice_code=f"A{i % 3}", registered_from="2000-01-01", registered_to=""))
        if i % 3 == 0:
            evs.append(dict(patient_id=pid, code="111", date="2020-05-01"))
    raw = write_raw(tmp_path / "raw", {
        "patients": pats, "registrations": regs, "events": evs,
        "practices": [dict(practice_code=f"A{j}", practice_name=f"Practice {j}", pcn_code=f"P{j % 2}",
                           pcn_name=f"PCN {j % 2}", icb_code="I1", icb_name="ICB One") for j in range(3)],
        "deprivation": [dict(lsoa_code=f"L{j}", imd_score=10 * j, imd_rank=100 * j + 1, imd_decile=1 + 2 * j) for j in range(4)],
        "neighbourhoods": [dict(lsoa_code=f"L{j}", neighbourhood_code=f"N{j % 2}", neighbourhood_name=f"Hood {j % 2}") for j in range(4)],
        "codelists/dep": ["111"],
    })
    cfg = write_config(tmp_path / "config.toml", SMALL_PERIODS, [dict(id="dep", label="Depression", codelist="codelists/dep.csv", min_age=18)])
    return raw, cfg


@pytest.fixture
def raw_writer(tmp_path):
    """`raw_writer(tables, name='raw')` -> a raw directory under tmp_path."""
    def _write(tables: dict, name: str = "raw") -> Path:
        return write_raw(tmp_path / name, tables)
    return _write


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture()
def con():
    """An in-memory DuckDB with the project's macros (the SQL tests' warehouse)."""
    from pipeline.warehouse import connect, load_macros

    connection = connect()
    load_macros(connection)
    yield connection
    connection.close()


# ------------------------------------------------------------------- the two warehouses (tests/warehouses.py)

WAREHOUSE_SOURCES = ("patient", "published")


@pytest.fixture(scope="session")
def patient_warehouse(tmp_path_factory):
    """The demo records through every stage of the command line, built once per session."""
    from warehouses import build_patient

    return build_patient(tmp_path_factory.mktemp("patient_warehouse"))


@pytest.fixture(scope="session")
def published_warehouse(tmp_path_factory):
    """NHS England's published files (written small) through pipeline/public.py, built once per session."""
    from warehouses import build_published

    return build_published(tmp_path_factory.mktemp("published_warehouse"))


@pytest.fixture(scope="session", params=WAREHOUSE_SOURCES)
def warehouse(request):
    """Each warehouse in turn (a `warehouses.Warehouse`): the report and disclosure tests that apply to both sources
    take this fixture, so that they are one suite with two inputs."""
    return request.getfixturevalue(f"{request.param}_warehouse")


@pytest.fixture(scope="session")
def demo_extracts(tmp_path_factory):
    """One small demo extract (2,000 patients, seed 11) written twice, read-only for the tests: `iso/` (ISO dates in
    Parquet, the default) and `dmy/` (CSV with DD/MM/YYYY dates, as GP exports write them). Generated in this
    process (the CLI's demo-data is the walkthrough's to test)."""
    from pipeline.demo import generate

    root = tmp_path_factory.mktemp("demo_extracts")
    generate(root / "iso", n_patients=2000, seed=11)
    generate(root / "dmy", n_patients=2000, seed=11, date_format="%d/%m/%Y")
    return root
