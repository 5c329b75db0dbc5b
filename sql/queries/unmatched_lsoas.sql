-- Each LSOA of the patients that the deprivation file lacks, with its number of patients (the check command).
select p.lsoa_code, count(*) as patients
from patients as p
anti join deprivation as d on d.lsoa_code = p.lsoa_code
where p.lsoa_code is not null
group by p.lsoa_code
