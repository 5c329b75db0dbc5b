-- Expected counts for the indicators' trend on fixed reference rates, as trend_expected for registers: per pair of
-- reference dates (as in indicator_trend_transitions) x indicator x area x group, the expected count on each date
-- with the EARLIER date's indicator reference rates applied to both dates' denominators, so that a change shared by
-- the whole dataset shows as a change. Each rate stratum's denominator (indicator_area_group_rate_strata) is
-- multiplied by its rate once, as an exact decimal.
with groups_on_fixed_rates as (
    select pp.period_from, pp.period_to, g.period, g.indicator, g.area_type, g.area_code, g.group_type, g.group_value,
           cast(g.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18)) as expected
    from int_period_pairs as pp
    join indicator_area_group_rate_strata as g on g.period in (pp.period_from, pp.period_to)
    join indicator_reference_rates as rr
      on rr.period = pp.period_from and rr.indicator = g.indicator and rr.sex = g.sex and rr.age_band = g.age_band
     and rr.imd_stratum = g.imd_stratum and rr.ethnicity_stratum = g.ethnicity_stratum
)
select period_from, period_to, indicator, area_type, area_code, group_type, group_value,
       cast(sum(expected) filter (where period = period_from) as double) as expected_from,
       -- a cell whose later-date people all sit in strata with nobody in them on the earlier date: those strata
       -- have no earlier rate and add nothing (0, not NULL; README "Change over time")
       coalesce(cast(sum(expected) filter (where period = period_to) as double), 0) as expected_to
from groups_on_fixed_rates
group by period_from, period_to, indicator, area_type, area_code, group_type, group_value
