-- Each neighbourhood's ICB: the one where most of its patients are registered (patient warehouse only; the
-- published data have no neighbourhoods). Read with area_parents by the analyse stage.
with neighbourhood_icb_patients as (
    select s.neighbourhood_code, p.icb_code, sum(s.population) as population
    from stratified_counts as s
    join practices as p on p.practice_code = s.practice_code
    where s.neighbourhood_code is not null
    group by s.neighbourhood_code, p.icb_code
)
select 'neighbourhood' as area_type, neighbourhood_code as area_code, 'icb' as parent_type,
       arg_max(icb_code, population) as parent_code
from neighbourhood_icb_patients
group by neighbourhood_code
