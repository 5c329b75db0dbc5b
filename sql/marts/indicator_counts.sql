-- Numerator (observed), denominator (population) and expected (indirect standardisation over the indicator's own
-- denominator) per reference date x indicator x area x group: the counts behind the `indicators` table, and for case
-- finding the register's patients in the age range (`register_in_range`: never published; it tells the publication
-- model that not-on-register + on-register = everyone registered in the range). Strata are summed into groups per
-- practice x neighbourhood first, then into areas (exact decimal sums: the order is free).
with cells_with_expected as (
    select s.*, cast(s.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18)) as expected
    from indicator_stratified_counts as s
    join indicator_reference_rates as rr
      on rr.period = s.period and rr.indicator = s.indicator and rr.sex = s.sex and rr.age_band = s.age_band
     and rr.imd_stratum = case when $by_imd then s.imd_quintile else '*' end
     and rr.ethnicity_stratum = case when $by_ethnicity then s.ethnic_group else '*' end
),
cells_in_groups as (
    select period, indicator, practice_code, neighbourhood_code, 'all' as group_type, 'All' as group_value, cases,
           population, expected, register_in_range
    from cells_with_expected
    union all
    select period, indicator, practice_code, neighbourhood_code, 'ethnicity', ethnic_group, cases, population, expected,
           register_in_range
    from cells_with_expected
    union all
    select period, indicator, practice_code, neighbourhood_code, 'imd_quintile', imd_quintile, cases, population,
           expected, register_in_range
    from cells_with_expected
    union all
    select period, indicator, practice_code, neighbourhood_code, 'sex', sex_group, cases, population, expected,
           register_in_range
    from cells_with_expected
    union all
    select period, indicator, practice_code, neighbourhood_code, 'age_band', age_band, cases, population, expected,
           register_in_range
    from cells_with_expected
),
groups as (
    select period, indicator, practice_code, neighbourhood_code, group_type, group_value, sum(cases) as cases,
           sum(population) as population, sum(expected) as expected,
           sum(register_in_range) as register_in_range
    from cells_in_groups
    group by period, indicator, practice_code, neighbourhood_code, group_type, group_value
),
groups_in_areas as (
    select g.*, 'practice' as area_type, g.practice_code as area_code from groups as g
    union all
    select g.*, 'pcn', p.pcn_code from groups as g join practices as p on p.practice_code = g.practice_code
    union all
    select g.*, 'icb', p.icb_code from groups as g join practices as p on p.practice_code = g.practice_code
    union all
    select g.*, 'neighbourhood', g.neighbourhood_code from groups as g where g.neighbourhood_code is not null
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
       g.indicator,
       i.kind,
       g.area_type,
       g.area_code,
       n.area_name,
       g.group_type,
       g.group_value,
       cast(sum(g.cases) as bigint) as observed,
       cast(sum(g.population) as bigint) as population,
       cast(sum(g.expected) as double) as expected,
       cast(sum(g.register_in_range) as bigint) as register_in_range
from groups_in_areas as g
join indicator_settings as i on i.indicator = g.indicator
left join area_names as n on n.area_type = g.area_type and n.area_code = g.area_code
group by g.period, g.indicator, i.kind, g.area_type, g.area_code, n.area_name, g.group_type, g.group_value
having sum(g.population) > 0
