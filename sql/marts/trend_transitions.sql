-- Patient-level transitions behind the trend table: per pair of reference dates (consecutive dates, and first to
-- last when there are more than two) x condition x area x group, the patients who are in the cell's population on
-- both dates (same area, same group value, eligible by age on both), and how many of them are a case on both
-- dates, on the earlier only, or on the later only. A patient who moves practice, neighbourhood, group (e.g. into
-- the next age band) or who joins or leaves is in the cell on one date only and is not counted here; their cases
-- are the rest of each date's observed count.
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
people as (
    select r.period,
           c.condition,
           r.patient_id,
           r.practice_code,
           r.neighbourhood_code,
           r.ethnic_group,
           r.imd_quintile,
           case when r.sex in ('F', 'M') then r.sex else 'Unknown' end as sex_group,
           age_band(r.age) as age_band,
           k.patient_id is not null as is_case
    from int_patients_registered_on_date as r
    join conditions as c on r.age >= c.min_age
    left join int_condition_cases as k
      on k.period = r.period and k.condition = c.condition and k.patient_id = r.patient_id
),
paired_strata as (
    select pp.period_from, pp.period_to, f.condition,
           f.practice_code as practice_from, t.practice_code as practice_to,
           f.neighbourhood_code as neighbourhood_from, t.neighbourhood_code as neighbourhood_to,
           f.ethnic_group as ethnic_from, t.ethnic_group as ethnic_to,
           f.imd_quintile as imd_from, t.imd_quintile as imd_to,
           f.sex_group as sex_from, t.sex_group as sex_to,
           f.age_band as age_from, t.age_band as age_to,
           count(*) as population_both,
           count(*) filter (where f.is_case and t.is_case) as cases_both,
           count(*) filter (where f.is_case and not t.is_case) as cases_from_only,
           count(*) filter (where t.is_case and not f.is_case) as cases_to_only
    from period_pairs as pp
    join people as f on f.period = pp.period_from
    join people as t on t.period = pp.period_to and t.patient_id = f.patient_id and t.condition = f.condition
    group by all
),
strata_in_areas as (
    select s.*, 'practice' as area_type, s.practice_from as area_code
    from paired_strata as s where s.practice_from = s.practice_to
    union all
    select s.*, 'pcn', pf.pcn_code
    from paired_strata as s
    join practices as pf on pf.practice_code = s.practice_from
    join practices as pt on pt.practice_code = s.practice_to
    where pf.pcn_code = pt.pcn_code
    union all
    select s.*, 'icb', pf.icb_code
    from paired_strata as s
    join practices as pf on pf.practice_code = s.practice_from
    join practices as pt on pt.practice_code = s.practice_to
    where pf.icb_code = pt.icb_code
    union all
    select s.*, 'neighbourhood', s.neighbourhood_from
    from paired_strata as s where s.neighbourhood_from = s.neighbourhood_to
),
strata_in_groups as (
    select *, 'all' as group_type, 'All' as group_value from strata_in_areas
    union all
    select *, 'ethnicity', ethnic_from from strata_in_areas where ethnic_from = ethnic_to
    union all
    select *, 'imd_quintile', imd_from from strata_in_areas where imd_from = imd_to
    union all
    select *, 'sex', sex_from from strata_in_areas where sex_from = sex_to
    union all
    select *, 'age_band', age_from from strata_in_areas where age_from = age_to
)
select period_from, period_to, condition, area_type, area_code, group_type, group_value,
       cast(sum(population_both) as bigint) as population_both,
       cast(sum(cases_both) as bigint) as cases_both,
       cast(sum(cases_from_only) as bigint) as cases_from_only,
       cast(sum(cases_to_only) as bigint) as cases_to_only
from strata_in_groups
group by period_from, period_to, condition, area_type, area_code, group_type, group_value
