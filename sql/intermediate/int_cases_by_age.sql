-- A register's patients per reference date x condition x practice x neighbourhood x ethnic group x deprivation
-- quintile x sex x single year of age (the cases of stratified_counts; the registers that are indicators'
-- denominators in indicator_stratified_counts).
select cases.period, cases.condition, registered.practice_code, registered.neighbourhood_code,
       registered.ethnic_group, registered.imd_quintile, registered.sex, registered.age, count(*) as people
from int_condition_cases as cases
join int_patients_registered_on_date as registered
  on registered.period = cases.period and registered.patient_id = cases.patient_id
group by cases.period, cases.condition, registered.practice_code, registered.neighbourhood_code,
         registered.ethnic_group, registered.imd_quintile, registered.sex, registered.age
