-- Expected counts for the indicators' trend on fixed reference rates, as trend_expected for registers: per pair of
-- reference dates (as in indicator_trend_transitions) x indicator x area x group, the expected count on each date
-- with the EARLIER date's indicator reference rates applied to both dates' denominators, so that a change shared by
-- the whole dataset shows as a change. Strata are summed into groups per practice x neighbourhood first, then into
-- areas (exact decimal sums: the order is free).
with cells_on_fixed_rates as (
    select pp.period_from, pp.period_to, s.period, s.indicator, s.practice_code, s.neighbourhood_code,
           s.ethnic_group, s.imd_quintile, s.sex_group, s.age_band,
           cast(s.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18)) as expected
    from int_period_pairs as pp
    join indicator_stratified_counts as s on s.period in (pp.period_from, pp.period_to)
    join indicator_reference_rates as rr
      on rr.period = pp.period_from and rr.indicator = s.indicator and rr.sex = s.sex and rr.age_band = s.age_band
     and rr.imd_stratum = case when $by_imd then s.imd_quintile else '*' end
     and rr.ethnicity_stratum = case when $by_ethnicity then s.ethnic_group else '*' end
),
cells_in_groups as (
    select period_from, period_to, period, indicator, practice_code, neighbourhood_code, 'all' as group_type,
           'All' as group_value, expected
    from cells_on_fixed_rates
    union all
    select period_from, period_to, period, indicator, practice_code, neighbourhood_code, 'ethnicity', ethnic_group,
           expected
    from cells_on_fixed_rates
    union all
    select period_from, period_to, period, indicator, practice_code, neighbourhood_code, 'imd_quintile',
           imd_quintile, expected
    from cells_on_fixed_rates
    union all
    select period_from, period_to, period, indicator, practice_code, neighbourhood_code, 'sex', sex_group, expected
    from cells_on_fixed_rates
    union all
    select period_from, period_to, period, indicator, practice_code, neighbourhood_code, 'age_band', age_band, expected
    from cells_on_fixed_rates
),
groups as (
    select period_from, period_to, period, indicator, practice_code, neighbourhood_code, group_type, group_value,
           sum(expected) as expected
    from cells_in_groups
    group by period_from, period_to, period, indicator, practice_code, neighbourhood_code, group_type, group_value
),
groups_in_areas as (
    select g.*, 'practice' as area_type, g.practice_code as area_code from groups as g
    union all
    select g.*, 'pcn', p.pcn_code from groups as g join practices as p on p.practice_code = g.practice_code
    union all
    select g.*, 'icb', p.icb_code from groups as g join practices as p on p.practice_code = g.practice_code
    union all
    select g.*, 'neighbourhood', g.neighbourhood_code from groups as g where g.neighbourhood_code is not null
)
select period_from, period_to, indicator, area_type, area_code, group_type, group_value,
       cast(sum(case when period = period_from then expected end) as double) as expected_from,
       cast(sum(case when period = period_to then expected end) as double) as expected_to
from groups_in_areas
group by period_from, period_to, indicator, area_type, area_code, group_type, group_value
