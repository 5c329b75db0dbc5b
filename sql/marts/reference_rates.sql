-- Internal reference rates: cases / population over the whole dataset, per reference date x condition x stratum
-- (sex as recorded x 5-year age band).
select period,
       condition,
       sex,
       age_band,
       cast(sum(population) as bigint) as population,
       cast(sum(cases) as bigint) as cases,
       cast(sum(cases) as double) / sum(population) as rate
from stratified_counts
group by period, condition, sex, age_band
