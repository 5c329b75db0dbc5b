-- Each practice's PCN and ICB, and each PCN's ICB (a PCN whose practices lie in two ICBs is compared with the ICB
-- holding most of them). Read by the analyse stage (funnels and comparisons against the parent); works on both the
-- patient warehouse and the published-data one (neighbourhoods: area_parents_neighbourhoods).
with pcn_icb_practices as (
    select pcn_code, icb_code, count(*) as practice_count
    from practices
    group by pcn_code, icb_code
)
select 'practice' as area_type, practice_code as area_code, 'pcn' as parent_type, pcn_code as parent_code from practices
union all
select 'practice', practice_code, 'icb', icb_code from practices
union all
select 'pcn', pcn_code, 'icb', first(icb_code order by practice_count desc, icb_code)
from pcn_icb_practices
group by pcn_code
