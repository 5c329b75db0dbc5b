"""Baseline (not the pipeline): what an analyst would write by hand for the `prevalence` contract.

One DuckDB query straight from the raw files (no validation, no rejects, no warehouse, no other tables) gives
observed, population and expected per period x condition x area x group; numpy adds the rate, Wilson interval,
ratio and its exact/Byar interval. `bench_pipeline.py` times it beside the pipeline in the same invocation.

    .venv/bin/python benchmarks/baseline_prevalence.py RAW_DIR [--config FILE] [--out FILE.parquet]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUERY = """
with pats as (
    select trim(patient_id) as patient_id, upper(trim(sex)) as sex, cast(date_of_birth as date) as dob,
           cast(nullif(trim(cast(date_of_death as varchar)), '') as date) as dod,
           case when upper(trim(ethnicity)) in ('A','B','C') then 'White' when upper(trim(ethnicity)) in ('D','E','F','G') then 'Mixed'
                when upper(trim(ethnicity)) in ('H','J','K','L') then 'Asian' when upper(trim(ethnicity)) in ('M','N','P') then 'Black'
                when upper(trim(ethnicity)) in ('R','S') then 'Other' else 'Unknown' end as eth,
           nullif(trim(lsoa_code), '') as lsoa
    from read_parquet($patients)
),
spells as (
    select d.period, trim(r.patient_id) as patient_id, trim(r.practice_code) as practice_code
    from read_parquet($registrations) r join periods d
      on cast(r.registered_from as date) <= d.period
     and (nullif(trim(cast(r.registered_to as varchar)), '') is null or cast(r.registered_to as date) >= d.period)
    qualify row_number() over (partition by d.period, trim(r.patient_id)
                               order by cast(r.registered_from as date) desc, trim(r.practice_code) desc) = 1
),
people as (
    select s.period, s.practice_code, p.patient_id, p.sex, p.eth,
           date_diff('year', p.dob, s.period) - case when strftime(s.period, '%m%d') < strftime(p.dob, '%m%d') then 1 else 0 end as age,
           coalesce(cast((dep.imd_decile + 1) // 2 as varchar), 'Unknown') as imd, nb.neighbourhood_code as nb,
           pr.pcn_code, pr.icb_code
    from spells s join pats p using (patient_id) join practices pr on pr.practice_code = s.practice_code
    left join deprivation dep on dep.lsoa_code = p.lsoa left join neighbourhoods nb on nb.lsoa_code = p.lsoa
    where p.dob <= s.period and (p.dod is null or p.dod > s.period)
),
cases as (
    select d.period, c.condition, trim(e.patient_id) as patient_id
    from read_parquet($events) e join codes c on c.code = trim(e.code) join periods d on cast(e.date as date) <= d.period
    group by all
    having max(case when c.kind = 'diagnosis' then cast(e.date as date) end)
           > coalesce(max(case when c.kind = 'resolved' then cast(e.date as date) end), date '0001-01-01')
),
cells as (
    select p.*, c.condition, case when p.age >= 90 then '90+' else (p.age // 5 * 5)::varchar || '-' || (p.age // 5 * 5 + 4)::varchar end as band,
           (k.patient_id is not null)::int as case_flag
    from people p join conditions c on p.age >= c.min_age
    left join cases k on k.period = p.period and k.condition = c.condition and k.patient_id = p.patient_id
),
strata as (
    select period, condition, practice_code, pcn_code, icb_code, nb, eth, imd, sex, band,
           count(*) as population, sum(case_flag) as observed
    from cells group by all
),
rates as (
    select period, condition, sex, band, sum(observed) / sum(population) as rate from strata group by all
),
long as (
    select s.*, s.population * r.rate as expected from strata s join rates r using (period, condition, sex, band)
),
areas as (
    select *, 'practice' as area_type, practice_code as area_code from long
    union all select *, 'pcn', pcn_code from long
    union all select *, 'icb', icb_code from long
    union all select *, 'neighbourhood', nb from long where nb is not null
),
grouped as (
    select period, condition, area_type, area_code, 'all' as group_type, 'All' as group_value, observed, population, expected from areas
    union all select period, condition, area_type, area_code, 'ethnicity', eth, observed, population, expected from areas
    union all select period, condition, area_type, area_code, 'imd_quintile', imd, observed, population, expected from areas
    union all select period, condition, area_type, area_code, 'sex', case when sex in ('F','M') then sex else 'Unknown' end,
                     observed, population, expected from areas
    union all select period, condition, area_type, area_code, 'age_band', band, observed, population, expected from areas
)
select period, condition, area_type, area_code, group_type, group_value,
       sum(observed)::bigint as observed, sum(population)::bigint as population, sum(expected) as expected
from grouped group by all
"""


def baseline(raw: Path, config: Path | None = None, memory_limit: str = "6GB", out: Path | None = None) -> tuple[int, float]:
    """Run the hand-written baseline on a raw directory; returns (prevalence rows, seconds). `out`: also write its
    table as Parquet (after the timing), to check it against the pipeline's `prevalence`."""
    import numpy as np

    from pipeline.config import load_config
    from pipeline.stats import isr, wilson_ci

    t0 = time.perf_counter()
    cfg = load_config(config)
    con = duckdb.connect()
    con.execute("set memory_limit = ?", [memory_limit])
    con.execute("create table periods as select unnest(?::date[]) as period", [list(cfg.periods)])
    con.execute("create table conditions (condition varchar, min_age int)")
    con.executemany("insert into conditions values (?, ?)", [(c.id, c.min_age) for c in cfg.conditions])
    con.execute("create table codes (condition varchar, kind varchar, code varchar)")
    for c in cfg.conditions:
        for kind, rel in (("diagnosis", c.codelist), ("resolved", c.resolved_codelist)):
            if rel:
                con.execute("insert into codes select distinct ?, ?, trim(code) from read_csv(?, all_varchar = true)",
                            [c.id, kind, str(raw / rel)])
    con.execute("create table practices as select * from read_csv(?, all_varchar = true)", [str(raw / "practices.csv")])
    con.execute("create table deprivation as select lsoa_code, cast(imd_decile as int) as imd_decile "
                "from read_csv(?, all_varchar = true)", [str(raw / "deprivation.csv")])
    con.execute("create table neighbourhoods as select * from read_csv(?, all_varchar = true)", [str(raw / "neighbourhoods.csv")])
    df = con.execute(QUERY, {s: str(raw / f"{s}.parquet") for s in ("patients", "registrations", "events")}).df()
    df = df[df["population"] > 0]
    obs, pop, exp = (df[c].to_numpy(float) for c in ("observed", "population", "expected"))
    df["rate"] = obs / pop
    df["rate_lower"], df["rate_upper"] = wilson_ci(obs, pop, 0.95)
    df["ratio"], df["ratio_lower"], df["ratio_upper"] = isr(obs, exp, 0.95)
    df["missing"] = exp - obs
    assert np.isfinite(df["rate"]).all()
    seconds = time.perf_counter() - t0
    if out is not None:
        df.to_parquet(out, index=False)
    return len(df), seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", type=Path)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--memory-limit", default="6GB")
    ap.add_argument("--out", type=Path, default=None, help="write the table as Parquet (not timed)")
    a = ap.parse_args()
    n, secs = baseline(a.raw, a.config, a.memory_limit, a.out)
    print(f"baseline: {n:,} prevalence rows in {secs:.1f} s")


if __name__ == "__main__":
    main()
