-- Observed, population and expected (indirect standardisation) per reference date x condition x area x group.
with area_names as (
    select distinct 'practice' as area_type, practice_code as area_code, practice_name as area_name from practices
    union all
    select 'pcn', pcn_code, min(pcn_name) from practices group by pcn_code
    union all
    select 'icb', icb_code, min(icb_name) from practices group by icb_code
    union all
    select 'neighbourhood', neighbourhood_code, min(neighbourhood_name) from neighbourhoods group by neighbourhood_code
)
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
left join area_names as n using (area_type, area_code)
group by g.period, g.condition, g.area_type, g.area_code, n.area_name, g.group_type, g.group_value
having sum(g.population) > 0
