-- The external reference rate of each reference date x condition x sex x 5-year age band (configuration
-- `[reference] rates`): the file's rate for that date when it gives one, else its rate for every date (ingest
-- refuses a stratum given twice, so each join finds at most one row). Empty with internal rates (no file).
with strata_in_file as (
    select distinct condition, sex, age_band from external_rates
)
select d.period, s.condition, s.sex, s.age_band,
       coalesce(on_date.rate, any_date.rate) as rate
from periods as d
cross join strata_in_file as s
left join external_rates as on_date
  on on_date.period = d.period and on_date.condition = s.condition and on_date.sex = s.sex
 and on_date.age_band = s.age_band
left join external_rates as any_date
  on any_date.period is null and any_date.condition = s.condition and any_date.sex = s.sex
 and any_date.age_band = s.age_band
