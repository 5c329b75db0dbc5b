"""The configuration contract: one TOML file (`--config`), with the repo's default in pipeline/default.toml."""
from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PipelineError
from .paths import DEFAULT_CONFIG


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


def _engine(raw: dict, name: str) -> Engine:
    e = raw.get("engine", {})
    if not isinstance(e, dict):
        raise PipelineError(f"configuration file {name}: [engine] must be a table")
    known = {"memory_limit", "temp_directory", "threads", "spark_master", "spark_storage", "spark_conf"}
    unknown = sorted(set(e) - known)
    if unknown:
        raise PipelineError(f"configuration file {name}: [engine] has an unknown key `{unknown[0]}`")
    threads = e.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise PipelineError(f"configuration file {name}: engine.threads must be a whole number of at least 1")
    conf = e.get("spark_conf", {})
    if not isinstance(conf, dict):
        raise PipelineError(f"configuration file {name}: engine.spark_conf must be a table of Spark settings")
    return Engine(memory_limit=str(e.get("memory_limit", Engine.memory_limit)),
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
    overdispersion: str = "none"  # funnel limits: "none", "additive" or "multiplicative" (Spiegelhalter 2005)
    source: str = "default"
    engine: Engine = field(default_factory=Engine)
    indicators: tuple[Indicator, ...] = ()

    def indicator(self, iid: str) -> Indicator:
        for i in self.indicators:
            if i.id == iid:
                return i
        raise KeyError(iid)

    def condition(self, cid: str) -> Condition:
        for c in self.conditions:
            if c.id == cid:
                return c
        raise KeyError(cid)


def load_config(path: Path | str | None = None) -> Config:
    p = Path(path) if path else DEFAULT_CONFIG
    name = p.name
    if not p.exists():
        raise PipelineError(f"configuration file {name} does not exist")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"configuration file {name} is not valid TOML: {e}") from None
    if "periods" not in raw or not raw["periods"]:
        raise PipelineError(f"configuration file {name}: `periods` is missing or empty")
    periods = []
    for v in raw["periods"]:
        try:
            periods.append(v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)))
        except ValueError:
            raise PipelineError(f"configuration file {name}: period {v!r} is not an ISO date (YYYY-MM-DD)") from None
    if len(set(periods)) != len(periods):
        raise PipelineError(f"configuration file {name}: `periods` has a repeated date")
    conds = []
    for i, c in enumerate(raw.get("conditions", []), start=1):
        for key in ("id", "codelist"):
            if not c.get(key):
                raise PipelineError(f"configuration file {name}: condition {i} has no `{key}`")
        try:
            min_age = int(c.get("min_age", 0))
        except (TypeError, ValueError):
            raise PipelineError(f"configuration file {name}: condition {c['id']}: min_age must be a whole number") from None
        conds.append(Condition(id=str(c["id"]), label=str(c.get("label", c["id"])), codelist=str(c["codelist"]),
                               resolved_codelist=c.get("resolved_codelist") or None, min_age=min_age))
    if not conds:
        raise PipelineError(f"configuration file {name}: no [[conditions]] given")
    if len({c.id for c in conds}) != len(conds):
        raise PipelineError(f"configuration file {name}: two conditions share an id")
    d = raw.get("disclosure", {})
    disc = Disclosure(threshold=int(d.get("threshold", 7)), rounding=int(d.get("rounding", 5)),
                      method=str(d.get("method", "round")), community_threshold=(int(d["community_threshold"]) if "community_threshold" in d else None))
    if disc.method not in ("round", "midpoint6"):
        raise PipelineError(f"configuration file {name}: disclosure.method must be \"round\" or \"midpoint6\"")
    r = raw.get("reference", {})
    extra = tuple(str(x) for x in r.get("extra_strata", ()))
    bad = [x for x in extra if x not in ("imd_quintile", "ethnicity")]
    if bad:
        raise PipelineError(f"configuration file {name}: reference.extra_strata may hold \"imd_quintile\" and \"ethnicity\", not {bad[0]!r}")
    ref = Reference(rates=str(r.get("rates", "internal")), extra_strata=extra)
    if ref.rates != "internal" and extra:
        raise PipelineError(f"configuration file {name}: reference.extra_strata works with internal reference rates only")
    od = str(raw.get("funnel", {}).get("overdispersion", "none"))
    if od not in ("none", "additive", "multiplicative"):
        raise PipelineError(f"configuration file {name}: funnel.overdispersion must be \"none\", \"additive\" or \"multiplicative\"")
    indicators = tuple(_indicator(name, i, v, conds) for i, v in enumerate(raw.get("indicators", []), start=1))
    ids = [c.id for c in conds] + [i.id for i in indicators]
    if len(set(ids)) != len(ids):
        raise PipelineError(f"configuration file {name}: two conditions or indicators share an id")
    return Config(periods=tuple(sorted(periods)), conditions=tuple(conds), disclosure=disc,
                  report=dict(raw.get("report", {})), reference=ref, overdispersion=od, source=name,
                  engine=_engine(raw, name), indicators=indicators)


def _number(name: str, where: str, key: str, v, whole: bool = False):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (whole and not isinstance(v, int)):
        kind = "a whole number" if whole else "a number"
        raise PipelineError(f"configuration file {name}: {where}: {key} must be {kind}")
    return v


def _indicator(name: str, i: int, v: dict, conds: list[Condition]) -> Indicator:
    """One [[indicators]] table, checked: kind, denominator (a condition id), ages, window, codelists, bounds."""
    where = f"indicator {v.get('id', i)}"
    for key in ("id", "kind", "denominator"):
        if not v.get(key):
            raise PipelineError(f"configuration file {name}: {where} has no `{key}`")
    kind = str(v["kind"])
    if kind not in INDICATOR_KINDS:
        raise PipelineError(f"configuration file {name}: {where}: kind must be \"care_process\", \"outcome\" or "
                            f"\"case_finding\", not {kind!r}")
    if str(v["denominator"]) not in {c.id for c in conds}:
        raise PipelineError(f"configuration file {name}: {where}: denominator {v['denominator']!r} is not a condition id")
    min_age = _number(name, where, "min_age", v.get("min_age", 0), whole=True)
    max_age = _number(name, where, "max_age", v.get("max_age"), whole=True)
    months = _number(name, where, "months", v.get("months", 12), whole=True)
    min_count = _number(name, where, "min_count", v.get("min_count", 1), whole=True)
    if min_age < 0 or (max_age is not None and max_age < min_age):
        raise PipelineError(f"configuration file {name}: {where}: max_age must be at least min_age (and min_age >= 0)")
    if months < 1 or min_count < 1:
        raise PipelineError(f"configuration file {name}: {where}: months and min_count must be at least 1")
    if kind == "outcome":
        raw_criteria = v.get("criteria") or []
        if not raw_criteria or not all(isinstance(c, dict) and c.get("codelist") for c in raw_criteria):
            raise PipelineError(f"configuration file {name}: {where}: an outcome needs `criteria`, each with a `codelist`")
        criteria = []
        for c in raw_criteria:
            lo = _number(name, where, "min_value", c.get("min_value"))
            hi = _number(name, where, "max_value", c.get("max_value"))
            if lo is None and hi is None:
                raise PipelineError(f"configuration file {name}: {where}: criterion {c['codelist']} has no min_value or max_value")
            criteria.append(Criterion(str(c["codelist"]), lo, hi))
        criteria = tuple(criteria)
    else:
        key = "codelist" if kind == "care_process" else "evidence_codelist"
        if not v.get(key):
            raise PipelineError(f"configuration file {name}: {where} has no `{key}`")
        criteria = (Criterion(str(v[key]), _number(name, where, "min_value", v.get("min_value")) if kind == "case_finding" else None),)
    return Indicator(id=str(v["id"]), label=str(v.get("label", v["id"])), kind=kind, denominator=str(v["denominator"]),
                     criteria=criteria, min_age=min_age, max_age=max_age, months=months, min_count=min_count,
                     met=str(v.get("met", "")))
