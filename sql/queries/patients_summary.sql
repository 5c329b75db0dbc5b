-- Rows, distinct patient ids and sex codes outside the contract in the loaded `patients` table (ingest's suite).
select count(*) as n,
       count(distinct patient_id) as n_distinct,
       count(*) filter (where sex not in ('F', 'M', 'I', 'U')) as bad_sex
from patients
