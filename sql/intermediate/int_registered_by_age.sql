-- Registered people per reference date x practice x neighbourhood x ethnic group x deprivation quintile x sex x
-- single year of age: counted once for every condition's and indicator's denominators (stratified_counts,
-- indicator_stratified_counts).
select period, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age, count(*) as people
from int_patients_registered_on_date
group by period, practice_code, neighbourhood_code, ethnic_group, imd_quintile, sex, age
