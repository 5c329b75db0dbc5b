-- Patient-level transitions behind the trend table: per pair of reference dates (consecutive dates, and first to
-- last when there are more than two) x condition x area x group, the patients who are in the cell's population on
-- both dates (same area, same group value, eligible by age on both), and how many of them are a case on both
-- dates, on the earlier only, or on the later only. A patient who moves practice, neighbourhood, group (e.g. into
-- the next age band) or who joins or leaves is in the cell on one date only and is not counted here; their cases
-- are the rest of each date's observed count.
with paired_people as (
    -- each patient once per pair of dates (in the population on both, any age), with the earlier date's area and
    -- group values and whether each is the same on the later date (practices are joined once, here)
    select pp.period_from,
           pp.period_to,
           f.patient_id,
           f.age as age_from,
           t.age as age_to,
           f.practice_code,
           f.practice_code = t.practice_code as same_practice,
           pf.pcn_code = pt.pcn_code as same_pcn,
           pf.icb_code = pt.icb_code as same_icb,
           f.neighbourhood_code,
           f.neighbourhood_code = t.neighbourhood_code as same_neighbourhood,
           f.ethnic_group,
           f.ethnic_group = t.ethnic_group as same_ethnic_group,
           f.imd_quintile,
           f.imd_quintile = t.imd_quintile as same_imd_quintile,
           sex_group(f.sex) as sex_group,
           sex_group(f.sex) = sex_group(t.sex) as same_sex_group,
           age_band(f.age) as age_band,
           age_band(f.age) = age_band(t.age) as same_age_band
    from int_period_pairs as pp
    join int_patients_registered_on_date as f on f.period = pp.period_from
    join int_patients_registered_on_date as t on t.period = pp.period_to and t.patient_id = f.patient_id
    left join practices as pf on pf.practice_code = f.practice_code
    left join practices as pt on pt.practice_code = t.practice_code
),
paired_cases as (
    -- per pair of dates x condition x patient who is a case on either date: a case on each date?
    select pp.period_from, pp.period_to, k.condition, k.patient_id,
           count(*) filter (where k.period = pp.period_from) > 0 as case_from,
           count(*) filter (where k.period = pp.period_to) > 0 as case_to
    from int_period_pairs as pp
    join int_condition_cases as k on k.period = pp.period_from or k.period = pp.period_to
    group by pp.period_from, pp.period_to, k.condition, k.patient_id
),
age_classes as (
    -- the conditions' distinct minimum ages, each with the next one up: a patient whose younger age of the two
    -- falls in [class_age, next_class_age) is eligible on both dates for exactly the conditions with min_age <=
    -- class_age, so people are counted per class once, not once per condition
    select min_age as class_age, lead(min_age) over (order by min_age) as next_class_age
    from (select distinct min_age from conditions) as minimum_ages
),
paired_strata as (
    -- the patients in the population on both dates per age class (condition empty: joined to the conditions at the
    -- end) ...
    select p.period_from, p.period_to, a.class_age, cast(null as varchar) as condition,
           p.practice_code, p.same_practice, p.same_pcn, p.same_icb,
           p.neighbourhood_code, p.same_neighbourhood, p.ethnic_group, p.same_ethnic_group,
           p.imd_quintile, p.same_imd_quintile, p.sex_group, p.same_sex_group, p.age_band, p.same_age_band,
           count(*) as population_both, 0 as cases_both, 0 as cases_from_only, 0 as cases_to_only
    from paired_people as p
    join age_classes as a
      on least(p.age_from, p.age_to) >= a.class_age
     and (a.next_class_age is null or least(p.age_from, p.age_to) < a.next_class_age)
    group by p.period_from, p.period_to, a.class_age, p.practice_code, p.same_practice, p.same_pcn, p.same_icb,
             p.neighbourhood_code, p.same_neighbourhood, p.ethnic_group, p.same_ethnic_group, p.imd_quintile,
             p.same_imd_quintile, p.sex_group, p.same_sex_group, p.age_band, p.same_age_band
    union all
    -- ... and, per condition, those of them eligible by age on both dates who are a case on either date
    select p.period_from, p.period_to, cast(null as integer), c.condition,
           p.practice_code, p.same_practice, p.same_pcn, p.same_icb,
           p.neighbourhood_code, p.same_neighbourhood, p.ethnic_group, p.same_ethnic_group,
           p.imd_quintile, p.same_imd_quintile, p.sex_group, p.same_sex_group, p.age_band, p.same_age_band,
           0,
           count(*) filter (where k.case_from and k.case_to),
           count(*) filter (where k.case_from and not k.case_to),
           count(*) filter (where k.case_to and not k.case_from)
    from paired_cases as k
    join paired_people as p
      on p.period_from = k.period_from and p.period_to = k.period_to and p.patient_id = k.patient_id
    join conditions as c on c.condition = k.condition and p.age_from >= c.min_age and p.age_to >= c.min_age
    group by p.period_from, p.period_to, c.condition, p.practice_code, p.same_practice, p.same_pcn, p.same_icb,
             p.neighbourhood_code, p.same_neighbourhood, p.ethnic_group, p.same_ethnic_group, p.imd_quintile,
             p.same_imd_quintile, p.sex_group, p.same_sex_group, p.age_band, p.same_age_band
),
strata_in_areas as (
    -- the strata summed within each area first (fewer rows to spread over the five group types)
    select period_from, period_to, class_age, condition, area_type, area_code, ethnic_group, same_ethnic_group,
           imd_quintile, same_imd_quintile, sex_group, same_sex_group, age_band, same_age_band,
           sum(population_both) as population_both,
           sum(cases_both) as cases_both,
           sum(cases_from_only) as cases_from_only,
           sum(cases_to_only) as cases_to_only
    from (
        select s.*, 'practice' as area_type, s.practice_code as area_code from paired_strata as s where s.same_practice
        union all
        select s.*, 'pcn', p.pcn_code
        from paired_strata as s join practices as p on p.practice_code = s.practice_code where s.same_pcn
        union all
        select s.*, 'icb', p.icb_code
        from paired_strata as s join practices as p on p.practice_code = s.practice_code where s.same_icb
        union all
        select s.*, 'neighbourhood', s.neighbourhood_code from paired_strata as s where s.same_neighbourhood
    ) as strata_with_areas
    group by all
),
strata_in_groups as (
    select *, 'all' as group_type, 'All' as group_value from strata_in_areas
    union all
    select *, 'ethnicity', ethnic_group from strata_in_areas where same_ethnic_group
    union all
    select *, 'imd_quintile', imd_quintile from strata_in_areas where same_imd_quintile
    union all
    select *, 'sex', sex_group from strata_in_areas where same_sex_group
    union all
    select *, 'age_band', age_band from strata_in_areas where same_age_band
),
cells as (
    select period_from, period_to, class_age, condition, area_type, area_code, group_type, group_value,
           sum(population_both) as population_both,
           sum(cases_both) as cases_both,
           sum(cases_from_only) as cases_from_only,
           sum(cases_to_only) as cases_to_only
    from strata_in_groups
    group by period_from, period_to, class_age, condition, area_type, area_code, group_type, group_value
),
cells_per_condition as (
    -- the people of an age class count for every condition whose min_age the class reaches
    select n.period_from, n.period_to, c.condition, n.area_type, n.area_code, n.group_type, n.group_value,
           n.population_both, n.cases_both, n.cases_from_only, n.cases_to_only
    from cells as n
    join conditions as c on n.class_age >= c.min_age
    union all
    select period_from, period_to, condition, area_type, area_code, group_type, group_value, population_both,
           cases_both, cases_from_only, cases_to_only
    from cells
    where condition is not null
)
select period_from, period_to, condition, area_type, area_code, group_type, group_value,
       cast(sum(population_both) as bigint) as population_both,
       cast(sum(cases_both) as bigint) as cases_both,
       cast(sum(cases_from_only) as bigint) as cases_from_only,
       cast(sum(cases_to_only) as bigint) as cases_to_only
from cells_per_condition
group by period_from, period_to, condition, area_type, area_code, group_type, group_value
