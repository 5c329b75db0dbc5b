-- Observed and population per reference date x condition x area x group (not by age band) x age band, summed over
-- sex: the counts the directly standardised rates (`dsr`) weight by the European Standard Population.
select period, condition, area_type, area_code, group_type, group_value, age_band,
       sum(observed) as observed, sum(population) as population
from area_group_strata
where group_type <> 'age_band'
group by all
