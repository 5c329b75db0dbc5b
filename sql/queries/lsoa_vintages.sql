-- The check command's LSOA vintages: the codes of the deprivation file and of the patients' unmatched LSOAs
-- (unmatched_lsoas), each set counted by vintage: only 2011, only 2021, both, neither, Welsh; and the patients in
-- unmatched LSOAs of only one vintage. With a lookup (parameter by_lookup) the vintages are its code sets; without it,
-- England's code ranges (E01 codes up to the last 2011 code are 2011 LSOAs, up to the last 2021 code 2021 LSOAs).
with code_sets as (
    select 'deprivation' as lsoa_set, lsoa_code as code, 0 as patients from deprivation where lsoa_code is not null
    union all
    select 'unmatched', lsoa_code, patients from unmatched_lsoas where lsoa_code is not null
),
codes_with_vintage as (
    select c.lsoa_set, c.code, c.patients,
           case when $by_lookup then c.code in (select l.lsoa11_code from lsoa_lookup as l where l.lsoa11_code is not null)
                else regexp_full_match(c.code, 'E01[0-9]{6}') and c.code <= $last_2011 end as in_2011,
           case when $by_lookup then c.code in (select l.lsoa21_code from lsoa_lookup as l where l.lsoa21_code is not null)
                else regexp_full_match(c.code, 'E01[0-9]{6}') and c.code <= $last_2021 end as in_2021,
           not $by_lookup and regexp_full_match(c.code, 'W01[0-9]{6}') as welsh
    from code_sets as c
)
select lsoa_set,
       count(distinct code) as n,
       count(distinct code) filter (where in_2011 and not in_2021) as only_2011,
       count(distinct code) filter (where in_2021 and not in_2011) as only_2021,
       count(distinct code) filter (where in_2011 and in_2021) as both,
       count(distinct code) filter (where not in_2011 and not in_2021) as neither,
       count(distinct code) filter (where welsh) as welsh,
       coalesce(sum(patients) filter (where in_2011 and not (in_2021 and $by_lookup)), 0) as patients_2011,
       coalesce(sum(patients) filter (where in_2021 and not in_2011), 0) as patients_2021
from codes_with_vintage
group by lsoa_set
