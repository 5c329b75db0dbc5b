"""Pre-flight check of a raw directory: `python -m pipeline check --raw DIR [--config FILE]`.

It runs the same staging SQL as ingest (sql/staging/, through `ingest.load_source`) on an in-memory DuckDB, so the
reject rules exist once, and writes nothing: no warehouse, nothing under processed/ or reports/. It reports, per
file, rows, columns (found, missing, unknown), the date format the values are in, rejects by reason with counts and
example row numbers; then codelist coverage, practices without a PCN or ICB, LSOAs missing from the deprivation
file with the likely cause, and one verdict line. Never a patient identifier, a date of birth or a local path:
rows are named by number.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .config import Config, date_format_label
from .errors import PipelineError
from .ingest import (
    column_report,
    detect_date_format,
    find_file,
    load_external_rates,
    load_source,
    read_codelist,
    read_lsoa_lookup,
    reasons_by_count,
    require_raw_directory,
    run_date,
)
from .schema import SOURCES
from .warehouse import build, connect, load_macros, query

# England's LSOA codes by vintage (ONS): 2011 LSOAs are E01000001-E01033768; the 2021 LSOAs keep the unchanged
# ones and add E01033769-E01035762 for the new (split, merged, complex) areas; some 2011 codes end in 2021.
LAST_2011_CODE = "E01033768"
LAST_2021_CODE = "E01035762"


def _pct(n: float, d: float) -> str:
    return "0%" if not d else f"{100.0 * n / d:.1f}%"


def _rows(sample: list[int]) -> str:
    return ("row " if len(sample) == 1 else "rows ") + ", ".join(str(r) for r in sample)


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.problems: list[tuple[int, int, str]] = []   # would stop the run: (rank, order, text)
        self.warnings: list[str] = []   # the run goes on, but results are affected

    def add(self, text: str = "") -> None:
        self.lines.append(text)

    def problem(self, text: str, rank: int = 0) -> None:
        """`rank` orders the problems as the run meets them: 0 a file that cannot be read as the contract says
        (the run stops there), 1 dates in another format, 2 a file losing too many rows (the guard after ingest)."""
        self.problems.append((rank, len(self.problems), text))
        self.add(f"  PROBLEM: {text}")

    def warning(self, text: str) -> None:
        self.warnings.append(text)
        self.add(f"  warning: {text}")

    def verdict(self) -> str:
        if self.problems:
            more = f" ({len(self.problems)} problems in all, listed above)" if len(self.problems) > 1 else ""
            return f"verdict: NOT READY: the run would stop: {min(self.problems)[2]}{more}"
        if self.warnings:
            return f"verdict: ready to run, with {len(self.warnings)} warning{'s' * (len(self.warnings) > 1)} (above)"
        return "verdict: ready to run"


def check(raw: Path, cfg: Config) -> tuple[str, bool]:
    """The pre-flight report as text, and whether the run would go ahead (no problem found)."""
    raw = Path(raw)
    require_raw_directory(raw)
    inp = cfg.input
    rep = Report()
    rep.add(f"check of the raw directory {raw.name}/ (configuration {cfg.source}; dates read as "
            f"{inp.date_label}{'' if inp.date_format_declared else ' (the default)'}; encoding {inp.encoding}; "
            f"a file may lose at most {100 * inp.max_reject_share:g}% of its rows); nothing is written")
    con = connect(":memory:")
    logging.getLogger("pipeline.ingest").setLevel(logging.WARNING)  # the report says it all
    try:
        load_macros(con)
        today = run_date()
        _files(con, raw, cfg, today, rep)
        _codelists(con, raw, cfg, rep)
        _practices(con, rep)
        _lsoas(con, raw, cfg, rep)
    finally:
        con.close()
    rep.add("")
    rep.add(rep.verdict())
    return "\n".join(rep.lines), not rep.problems


def _files(con, raw: Path, cfg: Config, today, rep: Report) -> None:
    inp = cfg.input
    for s in SOURCES:
        rep.add("")
        try:
            path = find_file(raw, s.stem, s.optional_file)
        except PipelineError as e:
            rep.add(f"{s.stem}: not usable")
            rep.problem(str(e))
            load_source(con, s, None, cfg, today)
            continue
        if path is None:
            rep.add(f"{s.stem}: not given (optional file)")
            load_source(con, s, None, cfg, today)
            continue
        dates: dict[str, tuple | None] = {}

        def look(con, relation, s=s, dates=dates):
            for c in s.date_columns:
                dates[c] = detect_date_format(con, relation, c)

        try:
            got = load_source(con, s, path, cfg, today, lenient=True, on_raw=look)
        except PipelineError as e:
            rep.add(f"{path.name}: cannot be read")
            rep.problem(str(e))
            load_source(con, s, None, cfg, today)
            continue
        n_read, n_rej = got["rows_read"], got["rows_rejected"]
        rep.add(f"{path.name}: {n_read:,} rows; {got['rows_loaded']:,} would load, {n_rej:,} rejected ({_pct(n_rej, n_read)})")
        cols = column_report(got["columns_found"], s)
        rep.add(f"  columns found: {', '.join(cols['found']) or 'none'}")
        mapped = inp.columns.get(s.stem)
        if mapped:
            rep.add("  columns mapped by [input.columns." + s.stem + "]: "
                    + ", ".join(f"{h} -> {c}" for c, h in mapped.items()))
        if cols["unknown"]:
            rep.add(f"  columns unknown (ignored): {', '.join(cols['unknown'])}")
        for c in cols["missing"]:
            rep.problem(f"{path.name} is missing the required column `{c}`")
        wrong: dict[str, list[str]] = {}
        for c in s.date_columns:
            if c in cols["missing"]:
                continue
            found = dates.get(c)
            if found is None:
                rep.add(f"  dates in {c}: none given" if _all_empty(con, s.stem, c) else
                        f"  dates in {c}: no known format reads most of them")
                continue
            fmt, share, ambiguous = found
            words = f"{date_format_label(fmt)} ({fmt}; {100 * share:.1f}% of distinct values read)"
            if ambiguous:
                words += ", or month first: no day is above 12"
            rep.add(f"  dates in {c}: {words}")
            if fmt != inp.date_format:
                wrong.setdefault(fmt, []).append(c)
        for fmt, columns in wrong.items():
            rep.problem(f"{path.name}: dates ({', '.join(columns)}) are written {date_format_label(fmt)} but the "
                        f"configuration reads {inp.date_label}; declare date_format = \"{fmt}\" under [input]", rank=1)
        reasons = reasons_by_count(con, f"rejects_{s.stem}")
        if reasons:
            rep.add("  rejects by reason:")
            for reason, n, sample in reasons:
                rep.add(f"    {n:,} x {reason} ({_rows(sample)})")
        if n_read and n_rej > inp.max_reject_share * n_read:
            rep.problem(f"{path.name} would lose {_pct(n_rej, n_read)} of its rows, more than the "
                        f"{100 * inp.max_reject_share:g}% allowed (input.max_reject_share)", rank=2)
        elif n_rej:
            rep.warning(f"{path.name}: {n_rej:,} rows would be rejected (listed in the warehouse's `rejects` table)")


def _all_empty(con, stem: str, column: str) -> bool:
    n = con.execute(f"select count(*) from rejects_{stem} where clean(\"{column}\") is not null").fetchone()[0]
    loaded = con.execute(f"select count(*) from {stem} where \"{column}\" is not null").fetchone()[0]
    return n + loaded == 0


def _codelists(con, raw: Path, cfg: Config, rep: Report) -> None:
    rep.add("")
    rep.add("codelists (events of the events file whose code is in each):")
    for c in cfg.conditions:
        for kind, rel in (("diagnosis", c.codelist), ("resolved", c.resolved_codelist)):
            if not rel:
                continue
            try:
                codes = read_codelist(raw, rel, c.id, cfg.input.encoding, required=kind == "diagnosis")
            except PipelineError as e:
                rep.problem(str(e))
                continue
            if not codes:  # an empty resolved codelist: nothing to match
                continue
            con.register("codes_arrow", pa.table({"code": pa.array(codes, pa.string())}))
            # every event row of the file counts here, the rejected ones too (they are shown apart)
            n_events, n_loading, seen = query(con, "codelist_matches").fetchone()
            unseen = [row[0] for row in query(con, "codelist_unseen_codes").fetchall()]
            con.unregister("codes_arrow")
            never = len(codes) - seen
            line = (f"  {c.id} ({kind}, {rel}): {len(codes)} code{'s' * (len(codes) != 1)}; {n_events:,} events match ({n_loading:,} would load); "
                    f"{never} code{'s' * (never != 1)} never seen")
            rep.add(line + (f" (e.g. {', '.join(unseen)})" if never else ""))
            if kind == "diagnosis" and n_events == 0:
                rep.warning(f"no event matches the codelist {rel} (condition {c.id}): are the events' codes SNOMED CT "
                            f"concept ids, as the codelist's are?")
    for ind in cfg.indicators:   # the run reads these too, and stops on the same faults
        for crit in ind.criteria:
            try:
                read_codelist(raw, crit.codelist, ind.id, cfg.input.encoding, owner="indicator", required=True)
            except PipelineError as e:
                rep.problem(str(e))
    if cfg.reference.rates != "internal":
        try:
            load_external_rates(con, raw, cfg, hashlib.sha256())
        except PipelineError as e:
            rep.problem(str(e))


def _practices(con, rep: Report) -> None:
    rep.add("")
    rows = query(con, "practices_without_parent").fetchall()
    unknown = query(con, "unknown_practices").fetchone()
    examples = unknown[2]
    if not rows and not unknown[0]:
        rep.add("practices: every practice has a PCN and an ICB, and every registration's practice is listed")
        return
    rep.add("practices:")
    for part, n, sample in rows:
        rep.warning(f"{n:,} practices without a {'PCN' if part.startswith('pcn') else 'ICB'} "
                    f"({part}; practices file {_rows(sample)}): they and their registrations are rejected")
    if unknown[0]:
        rep.warning(f"{unknown[1]:,} registrations name {unknown[0]:,} practices that are not in the practices file "
                    f"(e.g. {', '.join(examples)})")


def _code_vintages(con, lookup: bool) -> dict[str, dict]:
    """How many codes of the deprivation file and of the patients' unmatched LSOAs belong only to the 2011 or only to
    the 2021 vintage, are in both, or are no England/Wales LSOA code at all (and the patients in the unmatched ones
    of one vintage). With a lookup the vintages are its code sets; without it, England's code ranges."""
    result = query(con, "lsoa_vintages", {"by_lookup": lookup, "last_2011": LAST_2011_CODE,
                                          "last_2021": LAST_2021_CODE}).df().set_index("lsoa_set")
    counted = {}
    for lsoa_set in ("deprivation", "unmatched"):
        values = result.loc[lsoa_set] if lsoa_set in result.index else pd.Series(0, index=result.columns)
        counted[lsoa_set] = {name: int(value) for name, value in values.items()}
        if lookup:  # the lookup says nothing of Welsh codes
            counted[lsoa_set].pop("welsh")
    return counted


def _deprivation_vintage(d: dict) -> str | None:
    """'2011' or '2021' when the deprivation file's codes say so, else None."""
    if not d["n"]:
        return None
    if d["only_2021"] > 0 and d["only_2011"] == 0:
        return "2021"
    if d["only_2011"] > 0 and d["only_2021"] == 0:
        return "2011"
    if d["only_2021"] == 0 and d["both"] > 0.5 * d["n"]:
        return "2011"  # without a lookup, codes up to the last 2011 code are read as 2011 LSOAs
    return None


def _lsoas(con, raw: Path, cfg: Config, rep: Report) -> None:
    rep.add("")
    lookup_rel = cfg.input.lsoa_lookup
    lookup = False
    if lookup_rel:
        try:
            con.register("lookup_arrow", read_lsoa_lookup(raw, lookup_rel))
            con.execute("create table lsoa_lookup as select clean(lsoa11_code) as lsoa11_code, "
                        "clean(lsoa21_code) as lsoa21_code, upper(clean(change)) as change from lookup_arrow")
            con.unregister("lookup_arrow")
            lookup = True
        except PipelineError as e:
            rep.add("LSOAs:")
            rep.problem(str(e))
    if not lookup:
        con.execute("create or replace table lsoa_lookup (lsoa11_code varchar, lsoa21_code varchar, change varchar)")
    n_pat, n_with, n_unm, codes_unm = query(con, "patient_lsoas").fetchone()
    rep.add(f"LSOAs: {n_with:,} of {n_pat:,} patients that would load have an LSOA; {n_unm:,} of them "
            f"({_pct(n_unm, n_with)}) in {codes_unm:,} LSOAs not in the deprivation file (Unknown quintile)")
    if not n_unm:
        return
    build(con, "queries/unmatched_lsoas")  # the check's in-memory database only
    vintages = _code_vintages(con, lookup)
    dep, unm = vintages["deprivation"], vintages["unmatched"]
    if not lookup:  # England codes up to the last 2011 code that a 2021-vintage file lacks are retired 2011 codes
        unm["only_2011"] = unm["both"]
    pat = {"only_2011": unm["patients_2011"], "only_2021": unm["patients_2021"]}
    vintage = _deprivation_vintage(dep)
    described = {"2011": "2011 LSOAs, as IoD 2019", "2021": "2021 LSOAs, as IoD 2025", None: "not England's LSOA codes of a single vintage (made-up or partial codes?)"}
    rep.add(f"  the deprivation file has {dep['n']:,} LSOAs: {described[vintage]}"
            + ("" if lookup else " (judged from England's code ranges; a configured lookup makes it exact)"))
    codes = {"2011": "2021", "2021": "2011"}.get(vintage)  # the patients' codes of the other vintage
    if codes and unm[f"only_{codes}"]:
        iod = {"2011": "IoD 2019", "2021": "IoD 2025"}
        text = (f"likely cause: {pat[f'only_{codes}']:,} patients in {unm[f'only_{codes}']:,} LSOAs have "
                f"{codes} LSOA codes with an {iod[vintage]} file ({vintage} LSOAs): use {iod[codes]}, or the "
                f"ONS 2011->2021 lookup (lsoa_lookup under [input])")
        if lookup:
            rep.add(f"  {text}")
        else:
            rep.warning(text)
    other = unm["n"] - (unm[f"only_{codes}"] if codes else 0)
    if other:
        welsh = unm.get("welsh", 0)
        rep.add(f"  {other:,} unmatched LSOAs are of the deprivation file's own vintage or no known LSOA code at all: "
                f"outside the area the deprivation file covers, or not LSOA codes"
                + (f" ({welsh:,} Welsh: the English IoD does not cover Wales)" if welsh else "") + "; they stay Unknown")
    if lookup:
        build(con, "intermediate/int_lsoa_deprivation")
        still, still_codes, several = query(con, "lsoas_still_unmatched").fetchone()
        rep.add(f"  with the lookup ({Path(lookup_rel).name}): {n_unm - still:,} patients bridged ({several:,} LSOAs "
                f"from several counterparts: mean decile), {still:,} patients in {still_codes:,} LSOAs still unknown "
                f"({_pct(still, n_with)} of patients with an LSOA)")
