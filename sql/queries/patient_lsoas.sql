-- The check command's LSOA summary of the patients that would load: how many, how many have an LSOA, how many of
-- those are in an LSOA the deprivation file lacks, and in how many such LSOAs.
select count(*) as patients,
       count(p.lsoa_code) as with_lsoa,
       count(p.lsoa_code) filter (where d.lsoa_code is null) as unmatched,
       count(distinct p.lsoa_code) filter (where d.lsoa_code is null) as unmatched_lsoas
from patients as p
left join deprivation as d on d.lsoa_code = p.lsoa_code
