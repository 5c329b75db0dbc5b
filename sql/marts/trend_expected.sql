-- Expected counts for the trend table on fixed reference rates: per pair of reference dates (as in
-- trend_transitions) x condition x area x group, the expected count on each date with the EARLIER date's
-- reference rates applied to both dates' populations, so that a change shared by the whole dataset shows as a
-- change instead of being absorbed by each date's own average. With external rates (use_external) the file's rate
-- on the earlier date (int_external_rates_on_date) applies to every stratum of both dates, also to a stratum that
-- has nobody in it on the earlier date (reference_rates holds only the strata present on each date).
with groups_on_fixed_rates as (
    select pp.period_from, pp.period_to, g.period, g.condition, g.area_type, g.area_code, g.group_type, g.group_value,
           cast(g.population as decimal(38, 0))
           * cast(case when $use_external then x.rate else rr.rate end as decimal(38, 18)) as expected
    from int_period_pairs as pp
    join area_group_rate_strata as g on g.period in (pp.period_from, pp.period_to)
    left join reference_rates as rr
      on rr.period = pp.period_from and rr.condition = g.condition and rr.sex = g.sex and rr.age_band = g.age_band
     and rr.imd_stratum = g.imd_stratum and rr.ethnicity_stratum = g.ethnicity_stratum
    left join int_external_rates_on_date as x
      on x.period = pp.period_from and x.condition = g.condition and x.sex = g.sex and x.age_band = g.age_band
)
select period_from, period_to, condition, area_type, area_code, group_type, group_value,
       cast(sum(expected) filter (where period = period_from) as double) as expected_from,
       -- a stratum without an earlier rate (internal rates: nobody in it on the earlier date) adds nothing: a cell
       -- made only of such strata on the later date has 0, not NULL (README "Change over time")
       coalesce(cast(sum(expected) filter (where period = period_to) as double), 0) as expected_to
from groups_on_fixed_rates
group by period_from, period_to, condition, area_type, area_code, group_type, group_value
