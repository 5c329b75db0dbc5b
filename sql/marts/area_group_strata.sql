-- Cases, population and expected per reference date x condition x area x group x standardisation stratum
-- (sex as recorded x 5-year age band): the counts behind `prevalence` and the directly standardised rates.
-- Expected is kept as an exact decimal (rate to 18 places) so that its sums do not depend on the order in which
-- parallel threads add them up: reruns give identical marts, and an area equal to its parent gets the same value.
-- Each rate stratum's population (an integer sum, area_group_rate_strata) is multiplied by its rate once.
select g.period, g.condition, g.area_type, g.area_code, g.group_type, g.group_value, g.sex, g.age_band,
       cast(sum(g.cases) as bigint) as observed,
       cast(sum(g.population) as bigint) as population,
       cast(sum(cast(g.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18))) as decimal(38, 18)) as expected
from area_group_rate_strata as g
join reference_rates as rr
  on rr.period = g.period and rr.condition = g.condition and rr.sex = g.sex and rr.age_band = g.age_band
 and rr.imd_stratum = g.imd_stratum and rr.ethnicity_stratum = g.ethnicity_stratum
group by g.period, g.condition, g.area_type, g.area_code, g.group_type, g.group_value, g.sex, g.age_band
