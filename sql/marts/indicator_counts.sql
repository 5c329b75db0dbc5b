-- Numerator (observed), denominator (population) and expected (indirect standardisation over the indicator's own
-- denominator) per reference date x indicator x area x group: the counts behind the `indicators` table, and for case
-- finding the register's patients in the age range (`register_in_range`: never published; it tells the publication
-- model that not-on-register + on-register = everyone registered in the range). Expected is summed as an exact
-- decimal (rate to 18 places): each rate stratum's population (an integer sum, indicator_area_group_rate_strata) is
-- multiplied by its rate once.
select g.period,
       g.indicator,
       i.kind,
       g.area_type,
       g.area_code,
       n.area_name,
       g.group_type,
       g.group_value,
       cast(sum(g.cases) as bigint) as observed,
       cast(sum(g.population) as bigint) as population,
       cast(sum(cast(g.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18))) as double) as expected,
       cast(sum(g.register_in_range) as bigint) as register_in_range
from indicator_area_group_rate_strata as g
join indicator_reference_rates as rr
  on rr.period = g.period and rr.indicator = g.indicator and rr.sex = g.sex and rr.age_band = g.age_band
 and rr.imd_stratum = g.imd_stratum and rr.ethnicity_stratum = g.ethnicity_stratum
join indicator_settings as i on i.indicator = g.indicator
left join int_area_names as n on n.area_type = g.area_type and n.area_code = g.area_code
group by g.period, g.indicator, i.kind, g.area_type, g.area_code, n.area_name, g.group_type, g.group_value
having sum(g.population) > 0
