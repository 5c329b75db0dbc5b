-- Each neighbourhood's ICB: the one where most of its patients are registered, on a tie the first ICB code (so
-- every run and both engines agree; patient warehouse only: the published data have no neighbourhoods). Read with
-- area_parents by the analyse stage.
with neighbourhood_icb_patients as (
    select s.neighbourhood_code, p.icb_code, sum(s.population) as population
    from stratified_counts as s
    join practices as p on p.practice_code = s.practice_code
    where s.neighbourhood_code is not null
    group by s.neighbourhood_code, p.icb_code
)
select 'neighbourhood' as area_type, neighbourhood_code as area_code, 'icb' as parent_type,
       first(icb_code order by population desc, icb_code) as parent_code
from neighbourhood_icb_patients
group by neighbourhood_code
