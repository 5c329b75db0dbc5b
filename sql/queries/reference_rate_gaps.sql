-- The first condition x sex x age band that has people but no rate in an external reference rates file (the
-- transform stage stops naming it).
select condition, sex, age_band
from reference_rates
where rate is null and population > 0
order by condition, sex, age_band
limit 1
