"""Report stage: disclosure-controlled PDF packs (typst) and CSVs under reports/.

    reports/pcn/<pcn_code>.pdf + .csv        one briefing pack per primary care network
    reports/ics/<icb_code>.pdf + .csv        one system pack per integrated care board
    reports/community/<pcn_code>.pdf + .csv  plain-language summary (the packs' own published cells)

Everything is written into a temporary sibling directory and swapped in at the end, so a killed run leaves
the previous reports as they were. Packs are rendered in parallel (2 worker processes where there are 2 cores).
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import multiprocessing as mp
import os
import pickle
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline import paths, progress
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.lock import REPORT_ENTRIES, atomic_replace_dir, check_reports_folder, folder_problem

from . import packs as P
from .data import Inputs, load_inputs

log = logging.getLogger("pipeline.report")

WORKERS = 2  # processes, where the machine has cores to spare (see default_workers)
_STATE: dict = {}


def render_reports(processed: Path, reports: Path, cfg: Config, icbs: list[str] | None = None) -> dict:
    """Render every pack from processed/warehouse.duckdb into `reports` (atomically replaced): a PCN pack for each
    network, an ICS pack for each ICB (only those in `icbs` when given), a community summary per network where the
    data have neighbourhoods, and the England summary where the warehouse has an England row (published data).
    Returns {kind: number of packs}."""
    processed, reports = Path(processed), Path(reports)
    t0 = time.perf_counter()
    inp = load_inputs(processed, cfg)
    log.debug("report inputs loaded and disclosure-controlled in %.2f s", time.perf_counter() - t0)
    check_reports_folder(reports)
    tmp = reports.parent / f".{reports.name}.tmp-{os.getpid()}"
    try:
        reports.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as e:
        raise PipelineError(f"the reports directory cannot be created or written ({folder_problem(e)})") from None
    try:
        jobs = pack_jobs(inp, icbs)
        for sub in {kind for kind, _ in jobs}:
            (tmp / sub).mkdir(parents=True)
        timings = run_jobs(inp, cfg, jobs, tmp, workers=default_workers(cfg, len(jobs)))
        _write_index(tmp, inp, timings)
        atomic_replace_dir(tmp, reports, replaced=REPORT_ENTRIES)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    per = {k: [t for (kk, _), t in timings.items() if kk == k] for k in PACK_KINDS}
    if timings:
        progress.current().update(detail=f"{len(timings)} packs: " + ", ".join(f"{len(v)} {k}" for k, v in per.items() if v))
        log.debug("rendered %d packs in %.1f s (%s)", len(timings), time.perf_counter() - t0,
                  ", ".join(f"{k}: {len(v)} at {sum(v) / len(v):.2f} s each" for k, v in per.items() if v))
    return {k: len(v) for k, v in per.items() if v}


PACK_KINDS = ("pcn", "ics", "community", "england")


def pack_jobs(inp: Inputs, icbs: list[str] | None = None) -> list[tuple[str, str]]:
    """The packs to render: (kind, area code). PCNs are those with published rows (the published data's
    'Unallocated' PCN is not a network)."""
    practices = inp.practices if icbs is None else inp.practices[inp.practices["icb_code"].isin(icbs)]
    reported = set(inp.prev.loc[inp.prev["area_type"] == "pcn", "area_code"])
    pcns = sorted(c for c in practices["pcn_code"].dropna().unique() if c in reported)
    jobs = [("pcn", c) for c in pcns]
    if inp.has_patient_groups:
        jobs += [("community", c) for c in pcns]
    jobs += [("ics", c) for c in sorted(practices["icb_code"].dropna().unique())]
    england = inp.prev.loc[inp.prev["area_type"] == "england", "area_code"].unique()
    if icbs is None and len(england):
        jobs.append(("england", england[0]))
    return jobs


def report_settings(cfg: Config) -> dict:
    """The `[report]` settings the packs read, with the reference rates' basis (what expected counts mean)."""
    return {**dict(cfg.report), "reference_rates": cfg.reference.rates,
            "true_prevalence": cfg.reference.true_prevalence, "reference_basis": cfg.reference.basis}


def default_workers(cfg: Config, n_jobs: int) -> int:
    """2 worker processes for 50 packs or more where there are 2 cores or more; otherwise this process.

    A pack's time is mostly Python building its tables and charts (one core), typst's compile a third of it, so
    a second process nearly halves a long run (published data, all of England: 0.45 CPU-s per PCN pack); starting
    the workers (imports, the inputs pickled) costs about as much as 10 to 20 packs, so short runs stay here.
    `[report] workers = N` in the configuration overrides this."""
    if "workers" in cfg.report:
        return max(1, int(cfg.report["workers"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return WORKERS if cores >= 2 and n_jobs >= 50 else 1


def run_jobs(inp: Inputs, cfg: Config, jobs: list[tuple[str, str]], out: Path, workers: int = WORKERS) -> dict:
    """Render `jobs` [(kind, code)] into `out`; returns {(kind, code): seconds}."""
    if workers <= 1 or len(jobs) <= 1:
        _STATE.update(inp=inp, report=report_settings(cfg), out=out)
        try:
            return dict(_render_job(j) for j in jobs)
        finally:
            _STATE.clear()
    # forkserver, not fork: a process that has already run typst (its Rust thread pool) must not be forked,
    # and the server starts clean with the heavy modules preloaded; each worker gets the inputs once, pickled
    # once here (all of England's: 200 MB, 10 s to pickle), and the England pack, the longest, goes first.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["pipeline.report.packs", "pipeline.report.charts", "typst", "pandas"])
    state = pickle.dumps((inp, report_settings(cfg), out), protocol=pickle.HIGHEST_PROTOCOL)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(state,)) as ex:
        return dict(ex.map(_render_job, sorted(jobs, key=lambda job: job[0] != "england")))


def _init_worker(state: bytes) -> None:
    inp, report_cfg, out = pickle.loads(state)
    _STATE.update(inp=inp, report=report_cfg, out=out)


BUILDERS = {"pcn": P.build_pcn, "ics": P.build_ics, "community": P.build_community,
            "england": functools.partial(P.build_ics, area_type="england")}


def build_pack(inp: Inputs, kind: str, code: str, report_cfg: dict) -> P.Pack:
    return BUILDERS[kind](inp, code, report_cfg)


def _render_job(job: tuple[str, str]):
    kind, code = job
    t0 = time.perf_counter()
    inp: Inputs = _STATE["inp"]
    pack = build_pack(inp, kind, code, _STATE["report"])
    out: Path = _STATE["out"]
    render_pack(pack, out / kind / f"{code}.pdf", inp.latest)
    if pack.csv is not None:
        pack.csv.to_csv(out / kind / f"{code}.csv", index=False)
    for name, table in pack.extra_csvs.items():
        table.to_csv(out / kind / f"{code}_{name}.csv", index=False)
    return job, time.perf_counter() - t0


@functools.cache
def _template(name: str) -> str:
    return (paths.TEMPLATES_DIR / name).read_text(encoding="utf-8")


def render_pack(pack: P.Pack, pdf: Path, data_date: dt.date) -> dict:
    """Draw the pack's charts, write its JSON and typst source into a scratch directory, compile to `pdf`.
    Returns the context as written (charts included)."""
    import typst

    with tempfile.TemporaryDirectory(prefix="pack-") as wd:
        wd = Path(wd)
        ctx = dict(pack.context)
        ctx["charts"] = {}
        for name, fn, args, kwargs in pack.charts:
            f = f"{name}.svg"
            alt = fn(*args, path=wd / f, **kwargs)
            ctx["charts"][name] = dict(file=f, alt=alt)
        (wd / "data.json").write_text(json.dumps(ctx, ensure_ascii=False, default=str), encoding="utf-8")
        (wd / "common.typ").write_text(_template("common.typ"), encoding="utf-8")
        (wd / "main.typ").write_text(_template(pack.template), encoding="utf-8")
        stamp = dt.datetime.combine(data_date, dt.time(12, 0), tzinfo=dt.UTC)
        try:
            typst.compile(str(wd / "main.typ"), output=str(pdf), root=str(wd), font_paths=[str(paths.font_dir())],
                          ignore_system_fonts=True, sys_inputs={"data": "data.json"}, pdf_standards=["ua-1"],
                          timestamp=int(stamp.timestamp()))
        except Exception as e:  # a template or data problem is ours, not the user's: say which pack
            raise RuntimeError(f"typst could not render the {pack.kind} pack {pack.code}: {e}") from None
    return ctx


def _write_index(out: Path, inp: Inputs, timings: dict) -> None:
    lines = ["Health-inequalities packs", "", f"Data to {inp.latest.isoformat()}; pipeline version "
             f"{inp.run_info.get('pipeline_version', 'unknown')}; input hash {inp.run_info.get('input_hash', 'unknown')}.",
             "Every number under this directory is disclosure-controlled: " + inp.policy.describe(), ""]
    lines += ["pcn/<code>.pdf, pcn/<code>.csv        briefing pack for each primary care network, and its numbers"]
    lines += _index_files_and_columns(inp)
    (out / "README.txt").write_text("\n".join(lines), encoding="utf-8")
    if not timings:
        raise PipelineError("no practices in the warehouse, so there are no packs to render")


def _index_files_and_columns(inp: Inputs) -> list[str]:
    """README.txt after the PCN packs' line: the other files and the meaning of the CSV columns, for the data the
    packs were made from: the patient path's expected (reference rates by sex and age band) and paired change, or
    the published path's (England's rate in the practice's IMD decile; the two QOF years' counts taken as
    independent)."""
    if inp.source == "published":
        return ["ics/<code>.pdf, ics/<code>.csv        comparison of the PCNs of each ICB",
                "england/<code>.pdf, england/<code>.csv  every ICB compared (with --icb all)",
                "<code>_inputs.csv                     each pack's input-row counts", "",
                "CSV columns carry the `prevalence` table's names. observed: the practices' published QOF registers; "
                "population: their list sizes for the register's ages. expected: what England's register rate "
                "among practices in the same national IMD decile of practices would give for each practice's list "
                "size, added up over the area's practices. missing = expected - observed: how many fewer are "
                "recorded than that (negative: more); a gap to England's level for similarly deprived practices, "
                "not a count of undiagnosed people. change, change_lower, change_upper, change_label (latest date, "
                "the pack's own area): the change in the ratio since change_since, both years on the earlier "
                "year's rates, with its 95% interval treating the two years' counts as independent (published "
                "counts cannot say who is on a register in both years), and whether the gap to England clearly "
                "narrowed or widened (false discovery rate controlled over the area's conditions and groups).", ""]
    return ["ics/<code>.pdf, ics/<code>.csv        comparison of PCNs and neighbourhoods for each ICB",
            "<code>_data_quality.csv, <code>_inputs.csv   each pack's data-quality and input-row counts",
            "community/<code>.pdf + .csv            plain-language summary for community partners (the same "
            "published cells as the packs)", "",
            "CSV columns carry the `prevalence` table's names. expected: what the reference rates (by default the "
            "ICB average) would give for the same people, sex by five-year age band. missing = expected - observed: "
            "how many fewer are recorded than the ICB average for people of the same age and sex would give "
            "(negative: more); a gap to the average, not a count of undiagnosed people. change, change_lower, "
            "change_upper, change_label (latest date, the pack's own area): the change in the ratio since "
            "change_since with its 95% interval allowing for cases_on_both_dates (patients recorded in the cell on "
            "both dates, rounded like a count), and whether the gap to the average clearly narrowed or widened "
            "(false discovery rate controlled over the area's conditions and groups).", ""]
