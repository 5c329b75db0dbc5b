-- Cases, population and expected per reference date x condition x area x group x standardisation stratum
-- (sex as recorded x 5-year age band): the counts behind `prevalence` and the directly standardised rates.
-- Expected is kept as an exact decimal (rate to 18 places) so that its sums do not depend on the order in which
-- parallel threads add them up: reruns give identical marts, and an area equal to its parent gets the same value.
with cells_with_expected as (
    select s.*, cast(s.population as decimal(38, 0)) * cast(rr.rate as decimal(38, 18)) as expected
    from stratified_counts as s
    join reference_rates as rr
      on rr.period = s.period and rr.condition = s.condition and rr.sex = s.sex and rr.age_band = s.age_band
     and rr.imd_stratum = case when $by_imd then s.imd_quintile else '*' end
     and rr.ethnicity_stratum = case when $by_ethnicity then s.ethnic_group else '*' end
),
cells_in_areas as (
    select c.*, 'practice' as area_type, c.practice_code as area_code from cells_with_expected as c
    union all
    select c.*, 'pcn', p.pcn_code from cells_with_expected as c join practices as p on p.practice_code = c.practice_code
    union all
    select c.*, 'icb', p.icb_code from cells_with_expected as c join practices as p on p.practice_code = c.practice_code
    union all
    select c.*, 'neighbourhood', c.neighbourhood_code from cells_with_expected as c where c.neighbourhood_code is not null
),
cells_in_groups as (
    select period, condition, area_type, area_code, 'all' as group_type, 'All' as group_value, sex, age_band, cases, population, expected
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'ethnicity', ethnic_group, sex, age_band, cases, population, expected from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'imd_quintile', imd_quintile, sex, age_band, cases, population, expected from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'sex', sex_group, sex, age_band, cases, population, expected from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'age_band', age_band, sex, age_band, cases, population, expected from cells_in_areas
)
select period, condition, area_type, area_code, group_type, group_value, sex, age_band,
       cast(sum(cases) as bigint) as observed,
       cast(sum(population) as bigint) as population,
       cast(sum(expected) as decimal(38, 18)) as expected
from cells_in_groups
group by period, condition, area_type, area_code, group_type, group_value, sex, age_band
