-- Observed, population and expected (indirect standardisation) per reference date x condition x area x group.
with cells_with_expected as (
    select s.*, s.population * rr.rate as expected
    from stratified_counts as s
    join reference_rates as rr using (period, condition, sex, age_band)
),
cells_in_areas as (
    select c.*, 'practice' as area_type, c.practice_code as area_code from cells_with_expected as c
    union all
    select c.*, 'pcn', p.pcn_code from cells_with_expected as c join practices as p using (practice_code)
    union all
    select c.*, 'icb', p.icb_code from cells_with_expected as c join practices as p using (practice_code)
    union all
    select c.*, 'neighbourhood', c.neighbourhood_code from cells_with_expected as c where c.neighbourhood_code is not null
),
cells_in_groups as (
    select period, condition, area_type, area_code, 'all' as group_type, 'All' as group_value, cases, population, expected
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'ethnicity', ethnic_group, cases, population, expected from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'imd_quintile', imd_quintile, cases, population, expected from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'sex', sex_group, cases, population, expected from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'age_band', age_band, cases, population, expected from cells_in_areas
),
area_names as (
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
       cast(sum(g.cases) as bigint) as observed,
       cast(sum(g.population) as bigint) as population,
       sum(g.expected) as expected
from cells_in_groups as g
left join area_names as n using (area_type, area_code)
group by g.period, g.condition, g.area_type, g.area_code, n.area_name, g.group_type, g.group_value
having sum(g.population) > 0
