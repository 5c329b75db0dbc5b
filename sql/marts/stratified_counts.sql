-- Population and cases per reference date x condition x practice x neighbourhood x group x sex x 5-year age band:
-- the last patient-level step; everything after works on these counts. People and cases are counted by single year
-- of age first (int_registered_by_age, int_cases_by_age: once for every condition), summed into 5-year bands last.
with contributions as (
    select g.period, c.condition, g.practice_code, g.neighbourhood_code, g.ethnic_group, g.imd_quintile, g.sex, g.age,
           g.people as population, 0 as cases
    from int_registered_by_age as g
    join conditions as c on g.age >= c.min_age
    union all
    select g.period, g.condition, g.practice_code, g.neighbourhood_code, g.ethnic_group, g.imd_quintile, g.sex, g.age,
           0, g.people
    from int_cases_by_age as g
    join conditions as c on c.condition = g.condition and g.age >= c.min_age
)
select period,
       condition,
       practice_code,
       neighbourhood_code,
       ethnic_group,
       imd_quintile,
       sex,
       sex_group(sex) as sex_group,
       age_band(age) as age_band,
       cast(sum(population) as bigint) as population,
       cast(sum(cases) as bigint) as cases
from contributions
group by period, condition, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age_band(age)
