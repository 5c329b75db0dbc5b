-- Cases and population per reference date x condition x area x group x reference-rate stratum (sex as recorded x
-- 5-year age band, and deprivation quintile or ethnic group when the configuration stratifies by them, '*'
-- otherwise): the cells of `stratified_counts` placed in each of their areas and groups once, for
-- `area_group_strata` (each date's own reference rates) and `trend_expected` (an earlier date's rates).
-- The cells of one rate stratum share its rate, so the marts multiply these integer sums by the rate once: the
-- same exact decimal as summing each cell's population x rate.
-- The sums are kept as bigint (as in the cells): DuckDB reads a 128-bit sum column several times slower.
with cells_in_areas as (
    -- the cells summed within each area first (fewer rows to spread over the five group types)
    select period, condition, area_type, area_code, ethnic_group, imd_quintile, sex, sex_group, age_band,
           cast(sum(cases) as bigint) as cases,
           cast(sum(population) as bigint) as population
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
           imd_quintile, ethnic_group, cases, population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'ethnicity', ethnic_group, sex, age_band, imd_quintile, ethnic_group,
           cases, population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'imd_quintile', imd_quintile, sex, age_band, imd_quintile,
           ethnic_group, cases, population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'sex', sex_group, sex, age_band, imd_quintile, ethnic_group, cases,
           population
    from cells_in_areas
    union all
    select period, condition, area_type, area_code, 'age_band', age_band, sex, age_band, imd_quintile, ethnic_group,
           cases, population
    from cells_in_areas
)
select period, condition, area_type, area_code, group_type, group_value, sex, age_band,
       case when $by_imd then imd_quintile else '*' end as imd_stratum,
       case when $by_ethnicity then ethnic_group else '*' end as ethnicity_stratum,
       cast(sum(cases) as bigint) as cases,
       cast(sum(population) as bigint) as population
from cells_in_groups
group by period, condition, area_type, area_code, group_type, group_value, sex, age_band, imd_stratum,
         ethnicity_stratum
