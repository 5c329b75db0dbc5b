-- Each practice's PCN and ICB, each PCN's ICB, and each neighbourhood's ICB (the one where most of its patients
-- are registered). Read by the analyse stage (funnels and comparisons against the parent).
with neighbourhood_icb_patients as (
    select s.neighbourhood_code, p.icb_code, sum(s.population) as population
    from stratified_counts as s
    join practices as p using (practice_code)
    where s.neighbourhood_code is not null
    group by all
)
select 'practice' as area_type, practice_code as area_code, 'pcn' as parent_type, pcn_code as parent_code from practices
union all
select 'practice', practice_code, 'icb', icb_code from practices
union all
select distinct 'pcn', pcn_code, 'icb', icb_code from practices
union all
select 'neighbourhood', neighbourhood_code, 'icb', arg_max(icb_code, population)
from neighbourhood_icb_patients
group by neighbourhood_code
