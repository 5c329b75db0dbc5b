-- Observed, population and expected (indirect standardisation) per reference date x condition x area x group.
select g.period,
       g.condition,
       g.area_type,
       g.area_code,
       n.area_name,
       g.group_type,
       g.group_value,
       cast(sum(g.observed) as bigint) as observed,
       cast(sum(g.population) as bigint) as population,
       cast(sum(g.expected) as double) as expected
from area_group_strata as g
left join int_area_names as n using (area_type, area_code)
group by g.period, g.condition, g.area_type, g.area_code, n.area_name, g.group_type, g.group_value
having sum(g.population) > 0
