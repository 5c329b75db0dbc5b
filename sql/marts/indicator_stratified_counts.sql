-- Denominator and numerator per reference date x indicator x practice x neighbourhood x group x sex x 5-year age
-- band: the indicators' counterpart of stratified_counts (`population` = denominator; `cases` = the denominator
-- patients who meet the numerator rule: int_indicator_numerators). Denominators are counted without listing their
-- patients (int_indicator_denominators lists the same people, for checks): care_process / outcome: the register's
-- patients in the age range; case_finding: everyone registered in the age range less the register's patients in
-- it. Counts are by single year of age first (each age's count is at least 0) and summed into 5-year bands last.
-- `register_in_range` (case finding only, else 0): the register's patients in the age range, so that the publication
-- model knows not-on-register + on-register = everyone registered in the range; a stratum whose people in the range
-- are all on the register is kept with population 0 for that count.
with contributions as (
    -- case finding: everyone registered in the age range ...
    select g.period, i.indicator, g.practice_code, g.neighbourhood_code, g.ethnic_group, g.imd_quintile, g.sex, g.age,
           g.people, 0 as cases, 0 as register_people
    from int_registered_by_age as g
    join indicator_settings as i on i.kind = 'case_finding'
    where g.age >= i.min_age
      and (i.max_age is null or g.age <= i.max_age)
    union all
    -- ... less the register's patients in it; care_process / outcome: the register's patients in the age range
    select g.period, i.indicator, g.practice_code, g.neighbourhood_code, g.ethnic_group, g.imd_quintile, g.sex, g.age,
           case when i.kind = 'case_finding' then -g.people else g.people end, 0,
           case when i.kind = 'case_finding' then g.people else 0 end
    from int_cases_by_age as g
    join indicator_settings as i on i.denominator = g.condition
    where g.age >= i.min_age
      and (i.max_age is null or g.age <= i.max_age)
    union all
    select period, indicator, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age, 0, count(*), 0
    from int_indicator_numerators
    group by period, indicator, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age
),
banded as (
    select *, case when age >= 90 then 90 else age // 5 * 5 end as band_start from contributions
)
select period,
       indicator,
       practice_code,
       neighbourhood_code,
       ethnic_group,
       imd_quintile,
       sex,
       sex_group(sex) as sex_group,
       age_band(band_start) as age_band,
       cast(sum(people) as bigint) as population,
       cast(sum(cases) as bigint) as cases,
       cast(sum(register_people) as bigint) as register_in_range
from banded
group by period, indicator, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, band_start
having sum(people) > 0 or sum(register_people) > 0
