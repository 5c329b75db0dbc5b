-- Reference rates per reference date x condition x standardisation stratum (sex as recorded x 5-year age band,
-- optionally x IMD quintile and/or ethnic group). Internal (default): cases / population over the whole dataset.
-- External: the configured file's rate for the stratum on the date (int_external_rates_on_date).
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
    select i.*, x.rate as external_rate
    from internal_rates as i
    left join int_external_rates_on_date as x
      on x.period = i.period and x.condition = i.condition and x.sex = i.sex and x.age_band = i.age_band
)
select period, condition, sex, age_band, imd_stratum, ethnicity_stratum, population, cases, internal_rate,
       external_rate,
       case when $use_external then external_rate else internal_rate end as rate
from external_match
