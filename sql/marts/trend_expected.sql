-- Expected counts for the trend table on fixed reference rates: per pair of reference dates (as in
-- trend_transitions) x condition x area x group, the expected count on each date with the EARLIER date's
-- reference rates applied to both dates' populations, so that a change shared by the whole dataset shows as a
-- change instead of being absorbed by each date's own average.
with cells_in_areas as (
    -- the cells summed within each area first (fewer rows to spread over the five group types)
    select period, condition, area_type, area_code, ethnic_group, imd_quintile, sex, sex_group, age_band,
           sum(population) as population
    from (
        select s.*, 'practice' as area_type, s.practice_code as area_code from stratified_counts as s
        union all
        select s.*, 'pcn', p.pcn_code from stratified_counts as s join practices as p on p.practice_code = s.practice_code
        union all
        select s.*, 'icb', p.icb_code from stratified_counts as s join practices as p on p.practice_code = s.practice_code
        union all
        select s.*, 'neighbourhood', s.neighbourhood_code from stratified_counts as s where s.neighbourhood_code is not null
    ) as cells_with_areas
    group by period, condition, area_type, area_code, ethnic_group, imd_quintile, sex, sex_group, age_band
),
cells_in_groups as (
    select period, condition, area_type, area_code, 'all' as group_type, 'All' as group_value, sex, age_band,
           imd_quintile, ethnic_group, population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'ethnicity', ethnic_group, sex, age_band, imd_quintile, ethnic_group,
           population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'imd_quintile', imd_quintile, sex, age_band, imd_quintile,
           ethnic_group, population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'sex', sex_group, sex, age_band, imd_quintile, ethnic_group, population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'age_band', age_band, sex, age_band, imd_quintile, ethnic_group,
           population
    from cells_in_areas
),
rate_strata_in_groups as (
    -- the cells of one reference-rate stratum share its rate: their populations are summed first (integers) and
    -- multiplied by the rate once, the same exact decimal as summing each cell's population x rate
    select period, condition, area_type, area_code, group_type, group_value, sex, age_band,
           case when $by_imd then imd_quintile else '*' end as imd_stratum,
           case when $by_ethnicity then ethnic_group else '*' end as ethnicity_stratum,
           sum(population) as population
    from cells_in_groups
    group by period, condition, area_type, area_code, group_type, group_value, sex, age_band, imd_stratum,
             ethnicity_stratum
),
groups_on_fixed_rates as (
    select pp.period_from, pp.period_to, g.period, g.condition, g.area_type, g.area_code, g.group_type, g.group_value,
           cast(g.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18)) as expected
    from int_period_pairs as pp
    join rate_strata_in_groups as g on g.period in (pp.period_from, pp.period_to)
    join reference_rates as rr
      on rr.period = pp.period_from and rr.condition = g.condition and rr.sex = g.sex and rr.age_band = g.age_band
     and rr.imd_stratum = g.imd_stratum and rr.ethnicity_stratum = g.ethnicity_stratum
)
select period_from, period_to, condition, area_type, area_code, group_type, group_value,
       cast(sum(expected) filter (where period = period_from) as double) as expected_from,
       cast(sum(expected) filter (where period = period_to) as double) as expected_to
from groups_on_fixed_rates
group by period_from, period_to, condition, area_type, area_code, group_type, group_value
