"""The configuration contract: one TOML file (`--config`), with the repo's default in pipeline/default.toml."""
from __future__ import annotations

import codecs
import datetime as dt
import logging
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PipelineError
from .paths import DEFAULT_CONFIG
from .schema import GROUP_ORDER

log = logging.getLogger("pipeline.config")


@dataclass(frozen=True)
class Condition:
    id: str
    label: str
    codelist: str
    resolved_codelist: str | None = None
    min_age: int = 0


@dataclass(frozen=True)
class Criterion:
    """One codelist of an indicator: `outcome` criteria carry value bounds (inclusive); the single criterion of a
    `care_process` or `case_finding` indicator is its `codelist` / `evidence_codelist`."""
    codelist: str
    min_value: float | None = None
    max_value: float | None = None


INDICATOR_KINDS = ("care_process", "outcome", "case_finding")


@dataclass(frozen=True)
class Indicator:
    """A care, outcome or case-finding indicator (DESIGN.md, Definitions: Indicators)."""
    id: str
    label: str
    kind: str
    denominator: str                 # a condition id
    criteria: tuple[Criterion, ...]
    min_age: int = 0
    max_age: int | None = None
    months: int = 12
    min_count: int = 1               # case_finding: distinct dates with evidence
    met: str = ""                    # optional plain words for the numerator, e.g. "blood pressure at or below 140/90"


@dataclass(frozen=True)
class Disclosure:
    threshold: int = 7
    rounding: int = 5
    method: str = "round"  # or "midpoint6"
    community_threshold: int | None = None  # raises the threshold of every publication (one set of rules)


@dataclass(frozen=True)
class Reference:
    """Reference rates for indirect standardisation. `rates` is "internal" (the contract's default: the whole
    dataset's rates per period, condition and stratum) or a CSV path relative to the raw directory with columns
    `condition`, `sex`, `age_band`, `rate` (and optionally `period`). `extra_strata` adds standardisation strata
    beyond sex x age band: "imd_quintile" and/or "ethnicity" (internal rates only)."""
    rates: str = "internal"
    extra_strata: tuple[str, ...] = ()
    true_prevalence: bool = False  # the external rates are true prevalence: packs may speak of possibly undiagnosed
    basis: str = ""                # what the external rates are, in words (e.g. "national modelled prevalence")


ISO_DATE = "%Y-%m-%d"
_DATE_WORDS = {"%Y": "YYYY", "%y": "YY", "%m": "MM", "%d": "DD", "%b": "Mon", "%B": "Month", "%H": "HH", "%M": "MM",
               "%S": "SS", "%-m": "M", "%-d": "D"}
DEFAULT_MAX_REJECT_SHARE = 0.05
# Plausible ranges: a value outside them is a slip (an age of 300, a window of 100,000 months, a period in the year
# 9999) that would otherwise end in a traceback from a date or integer overflow, or in silently empty tables.
MAX_AGE = 150
MAX_MONTHS = 1200            # a 100-year look-back window
MAX_MIN_COUNT = 10_000
FIRST_PERIOD, LAST_PERIOD = dt.date(1900, 1, 1), dt.date(2200, 12, 31)
# The indicator keys that only one kind reads: on another kind they would be silently ignored.
KIND_ONLY_KEYS = {"criteria": "outcome", "codelist": "care_process", "evidence_codelist": "case_finding",
                  "min_count": "case_finding", "min_value": "case_finding"}

# The `[input]` section's keys: (key, default, meaning). docs/configuration.md is generated from this.
INPUT_KEYS = (
    ("date_format", '"%Y-%m-%d"', "strftime pattern of the extract's dates, e.g. \"%d/%m/%Y\" for 31/03/1980; a time part "
     "after the date (\" %H:%M:%S\" or \"T%H:%M:%S\", with or without fractions of a second) is accepted. Undeclared, a file whose dates fail gets the format detected and named "
     "in the error and by `check`"),
    ("encoding", '"utf-8"', "text encoding of every CSV file, e.g. \"cp1252\" for files saved from Excel on Windows"),
    ("columns.<file>", "none", "a table per file (`[input.columns.patients]`): contract column = the export's header, "
     "e.g. `date_of_birth = \"DOB\"`; headers are compared ignoring case and surrounding spaces"),
    ("lsoa_lookup", "none", "the ONS LSOA (2011) to LSOA (2021) lookup CSV, relative to the raw directory: patients' LSOA "
     "codes of the other vintage than the deprivation file's are bridged through it (see definitions.md)"),
    ("max_reject_share", "0.05", "a file losing more than this share of its rows to `rejects` stops the run after ingest "
     "(rejects and load_summary are still written); 1 turns the guard off"),
)


def date_format_label(fmt: str) -> str:
    """A strftime pattern in words: "%d/%m/%Y" -> "DD/MM/YYYY"."""
    return re.sub(r"%.", lambda m: _DATE_WORDS.get(m.group(0), m.group(0)), fmt, flags=re.S)


def is_date_pattern(fmt: str) -> bool:
    """True for a strftime pattern with a day, month and year: it reads back the date it writes."""
    sample = dt.date(2024, 3, 31)
    try:
        return "%" in fmt and dt.datetime.strptime(sample.strftime(fmt), fmt).date() == sample
    except ValueError:
        return False


@dataclass(frozen=True)
class Input:
    """How an extract differs from the input contract (`[input]`; every key optional).

    `date_format`: strftime pattern of the extract's dates (default ISO `%Y-%m-%d`; a time part after it is
    accepted). `encoding`: the text encoding of the CSV files (e.g. "cp1252"). `columns`: per file stem, contract
    column -> the export's own header. `lsoa_lookup`: an ONS LSOA 2011 -> 2021 lookup CSV (relative to the raw
    directory) bridging patients' LSOA codes to the deprivation file's vintage. `max_reject_share`: the share of a
    file's rows that may be rejected before the run stops after ingest."""
    date_format: str = ISO_DATE
    date_format_declared: bool = False
    encoding: str = "utf-8"
    columns: dict = field(default_factory=dict)
    lsoa_lookup: str | None = None
    max_reject_share: float = DEFAULT_MAX_REJECT_SHARE

    @property
    def date_label(self) -> str:
        return date_format_label(self.date_format)

    def header_map(self, stem: str) -> dict[str, str]:
        """The export's header (lower case) -> the contract's column, for one file."""
        return {v.strip().lower(): k for k, v in self.columns.get(stem, {}).items()}


@dataclass(frozen=True)
class Engine:
    """`[engine]`: where the SQL models run. DuckDB (the default) on this machine, within `memory_limit`, spilling to
    `temp_directory` (default: a folder in the processed directory); Spark (`--engine spark`) on `spark_master`
    (default `local[*]`; the environment's SPARK_REMOTE, a Spark Connect URL, wins), keeping its tables under
    `spark_storage` (default: a folder in the processed directory; on a cluster, a path every node can reach)."""
    memory_limit: str = "6GB"
    temp_directory: str | None = None
    threads: int | None = None
    spark_master: str = "local[*]"
    spark_storage: str | None = None
    spark_conf: tuple[tuple[str, str], ...] = ()

    @property
    def memory_bytes(self) -> int:
        """`memory_limit` in bytes, read as DuckDB reads it (KB, MB, GB, TB and K, M, G, T are powers of 1000;
        KiB, MiB, GiB, TiB powers of 1024)."""
        number, unit = _MEMORY.match(self.memory_limit).groups()
        return int(float(number) * _MEMORY_UNITS[unit.upper()])


def _error(name: str, text: str) -> PipelineError:
    return PipelineError(f"configuration file {name}: {text}")


# The keys each part of the configuration knows: any other key is a typo that would be silently ignored (a
# misspelt `min_age` left every condition at age 0), so it stops the run. [engine.spark_conf] takes open-ended
# settings; a [report] key outside REPORT_KEYS is named in a warning.
TOP_LEVEL_KEYS = ("periods", "conditions", "indicators", "disclosure", "report", "reference", "input", "funnel", "engine")
CONDITION_KEYS = ("id", "label", "codelist", "resolved_codelist", "min_age")
INDICATOR_KEYS = ("id", "label", "met", "kind", "denominator", "min_age", "max_age", "months", "min_count", "criteria",
                  "codelist", "evidence_codelist", "min_value")
CRITERION_KEYS = ("codelist", "min_value", "max_value")
DISCLOSURE_KEYS = ("threshold", "rounding", "method", "community_threshold")
REFERENCE_KEYS = ("rates", "extra_strata", "true_prevalence", "basis")
FUNNEL_KEYS = ("overdispersion",)
ENGINE_KEYS = ("memory_limit", "temp_directory", "threads", "spark_master", "spark_storage", "spark_conf")
# [report] settings the packs read (another key is named in a warning, not refused), and those that must be whole
# numbers (at least 1)
REPORT_KEYS = ("max_headlines", "max_system_gaps", "workers", "reference_groups")
REPORT_WHOLE_NUMBERS = ("max_headlines", "max_system_gaps", "workers")
# a memory size as DuckDB takes it: a number and a unit (it refuses a bare number)
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB|K|M|G|T)\s*$", re.I)
_MEMORY_UNITS = {"B": 1, "K": 1000, "KB": 1000, "M": 1000**2, "MB": 1000**2, "G": 1000**3, "GB": 1000**3, "T": 1000**4,
                 "TB": 1000**4, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _known_keys(name: str, where: str, table, known: tuple[str, ...] | None) -> dict:
    """`table` as a dict whose keys are all in `known` (None: any key); otherwise one sentence naming the first
    stranger."""
    if not isinstance(table, dict):
        raise _error(name, f"{where} must be a table of settings")
    unknown = [k for k in table if known is not None and k not in known]
    if unknown:
        raise _error(name, f"{where} has an unknown key `{unknown[0]}` (known: {', '.join(known)})")
    return table


def _reference_groups(name: str, groups) -> None:
    """`[report] reference_groups`: a table of group type = the group every other is compared with."""
    if not isinstance(groups, dict):
        raise _error(name, "[report]: reference_groups must be a table, e.g. reference_groups = { ethnicity = \"White\" }")
    for group_type, value in groups.items():
        if group_type not in GROUP_ORDER or group_type == "all":
            known = ", ".join(g for g in GROUP_ORDER if g != "all")
            raise _error(name, f"[report]: reference_groups has `{group_type}`, which is no group type ({known})")
        if str(value) not in GROUP_ORDER[group_type]:
            raise _error(name, f"[report]: reference_groups.{group_type} must be one of "
                         f"{', '.join(GROUP_ORDER[group_type])}, not {value!r}")


def _table_list(name: str, raw: dict, key: str) -> list:
    """`[[key]]` entries: a list of tables (a single `[key]` table is the usual slip)."""
    v = raw.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise _error(name, f"`{key}` must be written as [[{key}]] tables, one per entry")
    return v


def raw_relative(name: str, where: str, rel) -> str:
    """A path the configuration gives relative to the raw directory: text, not absolute, not leaving the raw
    directory. (An absolute path would also end up in error messages and logs: a local path.)"""
    if not isinstance(rel, str) or not rel.strip():
        raise _error(name, f"{where} must be a file name relative to the raw directory")
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or "~" in rel[:1]:
        raise _error(name, f"{where} must be a path inside the raw directory, relative to it "
                     f"(e.g. \"codelists/depression.csv\"), not an absolute path or one that leaves it")
    return rel


def _engine(raw: dict, name: str) -> Engine:
    e = _known_keys(name, "[engine]", raw.get("engine", {}), ENGINE_KEYS)
    memory = e.get("memory_limit", Engine.memory_limit)
    if not isinstance(memory, str) or not _MEMORY.match(memory):
        raise _error(name, f"engine.memory_limit must be a memory size such as \"6GB\" or \"500MB\", not {memory!r}")
    threads = e.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 4096):
        raise _error(name, "engine.threads must be a whole number from 1 to 4096")
    for key in ("temp_directory", "spark_master", "spark_storage"):
        if key in e and not isinstance(e[key], str):
            raise _error(name, f"engine.{key} must be text (a folder, path or URL in quotes), not {e[key]!r}")
    conf = e.get("spark_conf", {})
    if not isinstance(conf, dict):
        raise _error(name, "engine.spark_conf must be a table of Spark settings")
    return Engine(memory_limit=memory,
                  temp_directory=str(e["temp_directory"]) if e.get("temp_directory") else None, threads=threads,
                  spark_master=str(e.get("spark_master") or Engine.spark_master),
                  spark_storage=str(e["spark_storage"]) if e.get("spark_storage") else None,
                  spark_conf=tuple((str(k), str(v)) for k, v in conf.items()))


@dataclass(frozen=True)
class Config:
    periods: tuple[dt.date, ...]
    conditions: tuple[Condition, ...]
    disclosure: Disclosure = field(default_factory=Disclosure)
    report: dict = field(default_factory=dict)
    reference: Reference = field(default_factory=Reference)
    input: Input = field(default_factory=Input)
    overdispersion: str = "none"  # funnel limits: "none", "additive" or "multiplicative" (Spiegelhalter 2005)
    source: str = "default"
    engine: Engine = field(default_factory=Engine)
    indicators: tuple[Indicator, ...] = ()

    def indicator(self, iid: str) -> Indicator:
        return {i.id: i for i in self.indicators}[iid]  # ids are unique (load_config checks)

    def condition(self, cid: str) -> Condition:
        return {c.id: c for c in self.conditions}[cid]


def load_config(path: Path | str | None = None) -> Config:
    p = Path(path) if path else DEFAULT_CONFIG
    name = p.name
    if not p.exists():
        raise PipelineError(f"configuration file {name} does not exist")
    if not p.is_file():
        raise PipelineError(f"configuration file {name} is a folder, not a file")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PipelineError(f"configuration file {name} is not UTF-8 text (first bad byte on line {line}); "
                            f"save it as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"configuration file {name} is not valid TOML: {e}") from None
    _known_keys(name, "the top level", raw, TOP_LEVEL_KEYS)
    if "periods" not in raw or not raw["periods"]:
        raise _error(name, "`periods` is missing or empty")
    if not isinstance(raw["periods"], list):
        raise _error(name, "`periods` must be a list of dates, e.g. [\"2024-03-31\", \"2025-03-31\"]")
    periods = []
    for v in raw["periods"]:
        try:
            if isinstance(v, dt.datetime):   # a TOML date-time: its date
                v = v.date()
            periods.append(v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)))
        except ValueError:
            raise _error(name, f"period {v!r} is not an ISO date (YYYY-MM-DD)") from None
    if len(set(periods)) != len(periods):
        raise _error(name, "`periods` has a repeated date")
    for period in periods:
        if not FIRST_PERIOD <= period <= LAST_PERIOD:
            raise _error(name, f"period {period.isoformat()} is outside the years {FIRST_PERIOD.year} to "
                         f"{LAST_PERIOD.year}")
    conds = []
    for i, c in enumerate(_table_list(name, raw, "conditions"), start=1):
        for key in ("id", "codelist"):
            if not c.get(key):
                raise _error(name, f"condition {i} has no `{key}`")
        where = f"condition {c['id']}"
        _known_keys(name, where, c, CONDITION_KEYS)
        min_age = _number(name, where, "min_age", c.get("min_age", 0), whole=True)
        if not 0 <= min_age <= MAX_AGE:
            raise _error(name, f"{where}: min_age must be from 0 to {MAX_AGE}")
        resolved = c.get("resolved_codelist") or None
        conds.append(Condition(id=str(c["id"]), label=str(c.get("label", c["id"])),
                               codelist=raw_relative(name, f"{where}: codelist", c["codelist"]),
                               resolved_codelist=resolved and raw_relative(name, f"{where}: resolved_codelist", resolved),
                               min_age=min_age))
    if not conds:
        raise _error(name, "no [[conditions]] given")
    if len({c.id for c in conds}) != len(conds):
        raise _error(name, "two conditions share an id")
    d = _known_keys(name, "[disclosure]", raw.get("disclosure", {}), DISCLOSURE_KEYS)
    whole = {key: _number(name, "[disclosure]", key, d.get(key), whole=True)
             for key in ("threshold", "rounding", "community_threshold")}
    if any(v is not None and v < 0 for v in whole.values()) or whole["rounding"] == 0:
        raise _error(name, "[disclosure]: threshold and community_threshold must be 0 or more, rounding 1 or more")
    disc = Disclosure(threshold=7 if whole["threshold"] is None else whole["threshold"],
                      rounding=whole["rounding"] or 5, method=str(d.get("method", "round")),
                      community_threshold=whole["community_threshold"])
    if disc.method not in ("round", "midpoint6"):
        raise _error(name, "disclosure.method must be \"round\" or \"midpoint6\"")
    r = _known_keys(name, "[reference]", raw.get("reference", {}), REFERENCE_KEYS)
    if r.get("rates", "internal") != "internal":
        raw_relative(name, "reference.rates", r["rates"])
    extra = r.get("extra_strata", [])
    if not isinstance(extra, list):
        raise _error(name, "reference.extra_strata must be a list, e.g. [\"imd_quintile\"]")
    extra = tuple(str(x) for x in extra)
    bad = [x for x in extra if x not in ("imd_quintile", "ethnicity")]
    if bad:
        raise _error(name, f"reference.extra_strata may hold \"imd_quintile\" and \"ethnicity\", not {bad[0]!r}")
    true_prev = r.get("true_prevalence", False)
    if not isinstance(true_prev, bool):
        raise _error(name, "reference.true_prevalence must be true or false")
    ref = Reference(rates=str(r.get("rates", "internal")), extra_strata=extra, true_prevalence=true_prev,
                    basis=str(r.get("basis", "")))
    if ref.rates == "internal" and ref.true_prevalence:
        raise _error(name, "reference.true_prevalence needs external reference rates "
                     "(internal rates are the dataset's own average, not true prevalence)")
    if ref.rates != "internal" and extra:
        raise _error(name, "reference.extra_strata works with internal reference rates only")
    od = str(_known_keys(name, "[funnel]", raw.get("funnel", {}), FUNNEL_KEYS).get("overdispersion", "none"))
    report = _known_keys(name, "[report]", raw.get("report", {}), None)
    _reference_groups(name, report.get("reference_groups", {}))
    for key in sorted(set(report) - set(REPORT_KEYS)):  # kept (other tools may share the file) but named
        log.warning("configuration file %s: [report] key `%s` is not one the packs read (%s); ignored", name, key,
                    ", ".join(REPORT_KEYS))
    for key in REPORT_WHOLE_NUMBERS:
        if key in report and _number(name, "[report]", key, report[key], whole=True) < 1:
            raise _error(name, f"[report]: {key} must be 1 or more")
    if od not in ("none", "additive", "multiplicative"):
        raise _error(name, "funnel.overdispersion must be \"none\", \"additive\" or \"multiplicative\"")
    indicators = tuple(_indicator(name, i, v, conds) for i, v in enumerate(_table_list(name, raw, "indicators"), start=1))
    ids = [c.id for c in conds] + [i.id for i in indicators]
    if len(set(ids)) != len(ids):
        raise _error(name, "two conditions or indicators share an id")
    return Config(periods=tuple(sorted(periods)), conditions=tuple(conds), disclosure=disc,
                  report=dict(report), reference=ref, input=parse_input(raw.get("input", {}), name),
                  overdispersion=od, source=name, engine=_engine(raw, name), indicators=indicators)


def parse_input(d: dict, name: str) -> Input:
    """The `[input]` section, checked: one sentence naming the key when a value is wrong."""
    from .schema import SOURCE_BY_STEM

    if not isinstance(d, dict):
        raise _error(name, "[input] must be a table")
    known = {k.split(".")[0] for k, _, _ in INPUT_KEYS}
    extra = sorted(set(d) - known)
    if extra:
        raise _error(name, f"[input] has an unknown key `{extra[0]}` (known: {', '.join(sorted(known))})")
    fmt = None if d.get("date_format") is None else str(d["date_format"])
    if fmt is not None and not is_date_pattern(fmt):
        raise _error(name, f"input.date_format {fmt!r} is not a strftime pattern with a day, month and year "
                     f"(e.g. \"%d/%m/%Y\")")
    enc = str(d.get("encoding", "utf-8"))
    try:
        codecs.lookup(enc)
    except LookupError:
        raise _error(name, f"input.encoding {enc!r} is not a known text encoding (e.g. \"utf-8\", "
                     f"\"cp1252\")") from None
    columns = {}
    if not isinstance(d.get("columns") or {}, dict):
        raise _error(name, "input.columns must be written as tables, one per file (e.g. [input.columns.patients])")
    for stem, mapping in (d.get("columns") or {}).items():
        src = SOURCE_BY_STEM.get(stem)
        if src is None:
            raise _error(name, f"[input.columns.{stem}] names no input file "
                         f"(files: {', '.join(SOURCE_BY_STEM)})")
        if not isinstance(mapping, dict):
            raise _error(name, f"[input.columns.{stem}] must map contract columns to headers")
        for col, header in mapping.items():
            if col not in src.columns:
                raise _error(name, f"[input.columns.{stem}] maps `{col}`, which is not a column of {stem} "
                             f"(columns: {', '.join(src.columns)})")
            if not isinstance(header, str) or not header.strip():
                raise _error(name, f"[input.columns.{stem}] `{col}` must name a header")
        headers = [h.strip().lower() for h in mapping.values()]
        if len(set(headers)) != len(headers):
            raise _error(name, f"[input.columns.{stem}] maps one header to two columns")
        columns[stem] = {str(k): str(v).strip() for k, v in mapping.items()}
    share = d.get("max_reject_share", DEFAULT_MAX_REJECT_SHARE)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise _error(name, "input.max_reject_share must be a share from 0 to 1 (e.g. 0.05)")
    lookup = d.get("lsoa_lookup")
    if lookup:
        raw_relative(name, "input.lsoa_lookup", lookup)
    return Input(date_format=fmt or ISO_DATE, date_format_declared=fmt is not None, encoding=enc, columns=columns,
                 lsoa_lookup=str(lookup) if lookup else None, max_reject_share=float(share))


def _number(name: str, where: str, key: str, v, whole: bool = False):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (whole and not isinstance(v, int)):
        kind = "a whole number" if whole else "a number"
        raise _error(name, f"{where}: {key} must be {kind}")
    if not math.isfinite(v):   # TOML's nan and inf: every comparison with nan is false, a silent empty numerator
        raise _error(name, f"{where}: {key} must be a finite number, not {v}")
    return v


def _indicator(name: str, i: int, v: dict, conds: list[Condition]) -> Indicator:
    """One [[indicators]] table, checked: kind, denominator (a condition id), ages, window, codelists, bounds."""
    where = f"indicator {v.get('id', i)}"
    for key in ("id", "kind", "denominator"):
        if not v.get(key):
            raise _error(name, f"{where} has no `{key}`")
    _known_keys(name, where, v, INDICATOR_KEYS)
    kind = str(v["kind"])
    if kind not in INDICATOR_KINDS:
        raise _error(name, f"{where}: kind must be \"care_process\", \"outcome\" or \"case_finding\", "
                     f"not {kind!r}")
    if str(v["denominator"]) not in {c.id for c in conds}:
        raise _error(name, f"{where}: denominator {v['denominator']!r} is not a condition id")
    min_age = _number(name, where, "min_age", v.get("min_age", 0), whole=True)
    max_age = _number(name, where, "max_age", v.get("max_age"), whole=True)
    months = _number(name, where, "months", v.get("months", 12), whole=True)
    min_count = _number(name, where, "min_count", v.get("min_count", 1), whole=True)
    if min_age < 0 or (max_age is not None and max_age < min_age):
        raise _error(name, f"{where}: max_age must be at least min_age (and min_age >= 0)")
    if max(min_age, max_age or 0) > MAX_AGE:
        raise _error(name, f"{where}: min_age and max_age must be from 0 to {MAX_AGE}")
    if months < 1 or min_count < 1:
        raise _error(name, f"{where}: months and min_count must be at least 1")
    if months > MAX_MONTHS or min_count > MAX_MIN_COUNT:
        raise _error(name, f"{where}: months must be at most {MAX_MONTHS} and min_count at most {MAX_MIN_COUNT}")
    for key, only in KIND_ONLY_KEYS.items():
        if key in v and kind != only:
            raise _error(name, f"{where}: `{key}` applies to {only} indicators only, not to {kind} (it would be "
                         f"ignored)")
    register = next(c for c in conds if c.id == str(v["denominator"]))
    if kind != "case_finding" and max_age is not None and max_age < register.min_age:
        raise _error(name, f"{where}: max_age {max_age} is below the min_age {register.min_age} of its denominator "
                     f"{register.id}, so its denominator would always be empty")
    if kind == "outcome":
        raw_criteria = v.get("criteria") or []
        if not raw_criteria or not all(isinstance(c, dict) and c.get("codelist") for c in raw_criteria):
            raise _error(name, f"{where}: an outcome needs `criteria`, each with a `codelist`")
        criteria = []
        for c in raw_criteria:
            _known_keys(name, f"{where}: a criterion", c, CRITERION_KEYS)
            raw_relative(name, f"{where}: codelist", c["codelist"])
            lo = _number(name, where, "min_value", c.get("min_value"))
            hi = _number(name, where, "max_value", c.get("max_value"))
            if lo is None and hi is None:
                raise _error(name, f"{where}: criterion {c['codelist']} has no min_value or max_value")
            if lo is not None and hi is not None and lo > hi:
                raise _error(name, f"{where}: criterion {c['codelist']} has min_value {lo} above max_value {hi}, "
                             f"so no reading could meet it")
            criteria.append(Criterion(str(c["codelist"]), lo, hi))
        criteria = tuple(criteria)
    else:
        key = "codelist" if kind == "care_process" else "evidence_codelist"
        if not v.get(key):
            raise _error(name, f"{where} has no `{key}`")
        raw_relative(name, f"{where}: {key}", v[key])
        criteria = (Criterion(str(v[key]), _number(name, where, "min_value", v.get("min_value")) if kind == "case_finding" else None),)
    return Indicator(id=str(v["id"]), label=str(v.get("label", v["id"])), kind=kind, denominator=str(v["denominator"]),
                     criteria=criteria, min_age=min_age, max_age=max_age, months=months, min_count=min_count,
                     met=str(v.get("met", "")))
