-- The check command's LSOAs unmatched even through the lookup: patients and LSOAs still without a deprivation
-- decile, and how many unmatched LSOAs were bridged from several counterparts (int_lsoa_deprivation).
select coalesce(sum(u.patients) filter (where d.lsoa_code is null), 0) as patients,
       count(*) filter (where d.lsoa_code is null) as lsoas,
       count(*) filter (where d.counterparts > 1) as from_several
from unmatched_lsoas as u
left join int_lsoa_deprivation as d on d.lsoa_code = u.lsoa_code
