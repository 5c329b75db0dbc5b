-- Each PCN x group on one reference date (the latest), its recorded, registered and expected patients split into
-- those living in the most deprived national IMD quintile (Core20) and the rest; expected as in area_group_strata.
-- Read by the report stage (true values: the packs show shares of unredacted parts only).
with cells_with_expected as (
    select s.condition, p.pcn_code as area_code, s.ethnic_group, s.imd_quintile, s.sex_group, s.age_band,
           s.imd_quintile = '1' as core20, s.population, s.cases, s.population * rr.rate as expected
    from stratified_counts as s
    join practices as p on p.practice_code = s.practice_code
    join reference_rates as rr
      on rr.period = s.period and rr.condition = s.condition and rr.sex = s.sex and rr.age_band = s.age_band
     and rr.imd_stratum in ('*', s.imd_quintile) and rr.ethnicity_stratum in ('*', s.ethnic_group)
    where s.period = $latest_date
),
cells_in_groups as (
    select condition, area_code, 'all' as group_type, 'All' as group_value, core20, population, cases, expected
    from cells_with_expected
    union all
    select condition, area_code, 'ethnicity', ethnic_group, core20, population, cases, expected from cells_with_expected
    union all
    select condition, area_code, 'imd_quintile', imd_quintile, core20, population, cases, expected from cells_with_expected
    union all
    select condition, area_code, 'sex', sex_group, core20, population, cases, expected from cells_with_expected
    union all
    select condition, area_code, 'age_band', age_band, core20, population, cases, expected from cells_with_expected
)
select condition, area_code, group_type, group_value,
       cast(sum(population) as bigint) as population,
       cast(sum(cases) as bigint) as observed,
       sum(expected) as expected,
       cast(sum(case when core20 then population else 0 end) as bigint) as core20_population,
       cast(sum(case when core20 then cases else 0 end) as bigint) as core20_observed,
       coalesce(sum(case when core20 then expected end), 0) as core20_expected
from cells_in_groups
group by condition, area_code, group_type, group_value
order by condition, area_code, group_type, group_value
