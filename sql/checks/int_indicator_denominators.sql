-- One row per reference date x indicator x patient in the indicator's denominator, with the patient's practice,
-- groups and age: care_process / outcome: on the register of the indicator's denominator condition on the date;
-- case_finding: registered and alive but not on that register. Aged min_age..max_age (inclusive) on the date;
-- indicator_settings.min_age is already the higher of the indicator's and the condition's for registers.
select r.period, i.indicator, r.patient_id, r.practice_code, r.neighbourhood_code, r.ethnic_group, r.imd_quintile,
       r.sex, r.age
from int_patients_registered_on_date as r
join int_condition_cases as k on k.period = r.period and k.patient_id = r.patient_id
join indicator_settings as i on i.denominator = k.condition and i.kind <> 'case_finding'
where r.age >= i.min_age
  and (i.max_age is null or r.age <= i.max_age)
union all
select r.period, i.indicator, r.patient_id, r.practice_code, r.neighbourhood_code, r.ethnic_group, r.imd_quintile,
       r.sex, r.age
from int_patients_registered_on_date as r
join indicator_settings as i on i.kind = 'case_finding'
where r.age >= i.min_age
  and (i.max_age is null or r.age <= i.max_age)
  and not exists (select 1 from int_condition_cases as k
                  where k.period = r.period and k.condition = i.denominator and k.patient_id = r.patient_id)
