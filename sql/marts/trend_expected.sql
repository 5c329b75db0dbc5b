-- Expected counts for the trend table on fixed reference rates: per pair of reference dates (as in
-- trend_transitions) x condition x area x group, the expected count on each date with the EARLIER date's
-- reference rates applied to both dates' populations, so that a change shared by the whole dataset shows as a
-- change instead of being absorbed by each date's own average.
with ordered_periods as (
    select period,
           row_number() over (order by period) as period_index,
           count(*) over () as period_count
    from periods
),
period_pairs as (
    select f.period as period_from, t.period as period_to
    from ordered_periods as f
    join ordered_periods as t
      on t.period_index = f.period_index + 1
      or (f.period_index = 1 and t.period_index = t.period_count and t.period_count > 2)
),
cells_on_fixed_rates as (
    select pp.period_from, pp.period_to, s.period, s.condition, s.practice_code, s.neighbourhood_code,
           s.ethnic_group, s.imd_quintile, s.sex_group, s.age_band,
           cast(s.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18)) as expected
    from period_pairs as pp
    join stratified_counts as s on s.period in (pp.period_from, pp.period_to)
    join reference_rates as rr
      on rr.period = pp.period_from and rr.condition = s.condition and rr.sex = s.sex and rr.age_band = s.age_band
     and rr.imd_stratum = case when $by_imd then s.imd_quintile else '*' end
     and rr.ethnicity_stratum = case when $by_ethnicity then s.ethnic_group else '*' end
),
cells_in_areas as (
    select c.*, 'practice' as area_type, c.practice_code as area_code from cells_on_fixed_rates as c
    union all
    select c.*, 'pcn', p.pcn_code from cells_on_fixed_rates as c join practices as p on p.practice_code = c.practice_code
    union all
    select c.*, 'icb', p.icb_code from cells_on_fixed_rates as c join practices as p on p.practice_code = c.practice_code
    union all
    select c.*, 'neighbourhood', c.neighbourhood_code from cells_on_fixed_rates as c where c.neighbourhood_code is not null
),
cells_in_groups as (
    select period_from, period_to, period, condition, area_type, area_code, 'all' as group_type, 'All' as group_value, expected
    from cells_in_areas
    union all
    select period_from, period_to, period, condition, area_type, area_code, 'ethnicity', ethnic_group, expected from cells_in_areas
    union all
    select period_from, period_to, period, condition, area_type, area_code, 'imd_quintile', imd_quintile, expected from cells_in_areas
    union all
    select period_from, period_to, period, condition, area_type, area_code, 'sex', sex_group, expected from cells_in_areas
    union all
    select period_from, period_to, period, condition, area_type, area_code, 'age_band', age_band, expected from cells_in_areas
)
select period_from, period_to, condition, area_type, area_code, group_type, group_value,
       cast(sum(expected) filter (where period = period_from) as double) as expected_from,
       cast(sum(expected) filter (where period = period_to) as double) as expected_to
from cells_in_groups
group by period_from, period_to, condition, area_type, area_code, group_type, group_value
