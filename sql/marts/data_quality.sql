-- Data quality per reference date x area (practice, PCN, ICB): registered and alive patients of all ages, and how
-- many have no recorded ethnicity, no LSOA, an LSOA missing from the deprivation file, or no neighbourhood.
with people_in_areas as (
    select r.*, 'practice' as area_type, r.practice_code as area_code from int_patients_registered_on_date as r
    union all
    select r.*, 'pcn', p.pcn_code from int_patients_registered_on_date as r join practices as p on p.practice_code = r.practice_code
    union all
    select r.*, 'icb', p.icb_code from int_patients_registered_on_date as r join practices as p on p.practice_code = r.practice_code
)
select period,
       area_type,
       area_code,
       count(*) as population,
       count(*) filter (where ethnic_group = 'Unknown') as ethnicity_not_recorded,
       count(*) filter (where lsoa_code is null) as lsoa_missing,
       count(*) filter (where lsoa_code is not null and imd_quintile = 'Unknown') as lsoa_unmatched,
       count(*) filter (where neighbourhood_code is null) as no_neighbourhood
from people_in_areas
group by period, area_type, area_code
