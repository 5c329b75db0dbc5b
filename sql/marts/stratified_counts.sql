-- Population and cases per reference date x condition x practice x neighbourhood x group x sex x 5-year age band:
-- the only patient-level step; everything after works on these counts.
select r.period,
       c.condition,
       r.practice_code,
       r.neighbourhood_code,
       r.ethnic_group,
       r.imd_quintile,
       r.sex,
       case when r.sex in ('F', 'M') then r.sex else 'Unknown' end as sex_group,
       age_band(r.age) as age_band,
       count(*) as population,
       count(k.patient_id) as cases
from int_patients_registered_on_date as r
join conditions as c on r.age >= c.min_age
left join int_condition_cases as k
  on k.period = r.period and k.condition = c.condition and k.patient_id = r.patient_id
group by all
