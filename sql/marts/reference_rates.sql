-- Reference rates per reference date x condition x standardisation stratum (sex as recorded x 5-year age band,
-- optionally x IMD quintile and/or ethnic group). Internal (default): cases / population over the whole dataset.
-- External: the configured file's rate for the stratum (for its period when it gives one, else its rate for every date).
with internal_rates as (
    select period,
           condition,
           sex,
           age_band,
           case when $by_imd then imd_quintile else '*' end as imd_stratum,
           case when $by_ethnicity then ethnic_group else '*' end as ethnicity_stratum,
           cast(sum(population) as bigint) as population,
           cast(sum(cases) as bigint) as cases,
           cast(sum(cases) as double) / sum(population) as internal_rate
    from stratified_counts
    group by all
),
external_match as (
    -- the file's rate for this date when it gives one, else its rate for every date (ingest refuses a stratum given
    -- twice, so each join finds at most one row)
    select i.*,
           coalesce(on_date.rate, any_date.rate) as external_rate
    from internal_rates as i
    left join external_rates as on_date
        on on_date.period = i.period and on_date.condition = i.condition and on_date.sex = i.sex
       and on_date.age_band = i.age_band
    left join external_rates as any_date
        on any_date.period is null and any_date.condition = i.condition and any_date.sex = i.sex
       and any_date.age_band = i.age_band
)
select period, condition, sex, age_band, imd_stratum, ethnicity_stratum, population, cases, internal_rate,
       external_rate,
       case when $use_external then external_rate else internal_rate end as rate
from external_match
