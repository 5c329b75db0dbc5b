-- Population and cases per reference date x condition x practice x neighbourhood x group x sex x 5-year age band:
-- the only patient-level step; everything after works on these counts. People are counted by single year of age
-- first (once, for every condition), cases from the register's patients; both summed into 5-year bands last.
with registered_by_age as (
    select period, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age, count(*) as people
    from int_patients_registered_on_date
    group by period, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age
),
cases_by_age as (
    select k.period, k.condition, r.practice_code, r.neighbourhood_code, r.ethnic_group, r.imd_quintile, r.sex, r.age,
           count(*) as people
    from int_condition_cases as k
    join int_patients_registered_on_date as r on r.period = k.period and r.patient_id = k.patient_id
    group by k.period, k.condition, r.practice_code, r.neighbourhood_code, r.ethnic_group, r.imd_quintile, r.sex, r.age
),
contributions as (
    select g.period, c.condition, g.practice_code, g.neighbourhood_code, g.ethnic_group, g.imd_quintile, g.sex, g.age,
           g.people as population, 0 as cases
    from registered_by_age as g
    join conditions as c on g.age >= c.min_age
    union all
    select g.period, g.condition, g.practice_code, g.neighbourhood_code, g.ethnic_group, g.imd_quintile, g.sex, g.age,
           0, g.people
    from cases_by_age as g
    join conditions as c on c.condition = g.condition and g.age >= c.min_age
)
select period,
       condition,
       practice_code,
       neighbourhood_code,
       ethnic_group,
       imd_quintile,
       sex,
       case when sex in ('F', 'M') then sex else 'Unknown' end as sex_group,
       age_band(age) as age_band,
       cast(sum(population) as bigint) as population,
       cast(sum(cases) as bigint) as cases
from contributions
group by period, condition, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age_band(age)
