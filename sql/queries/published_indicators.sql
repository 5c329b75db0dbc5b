-- The indicator rows the packs publish, in the prevalence table's shape (`condition` = the indicator id): ICB and
-- PCN rows of every breakdown, practice and neighbourhood rows of `all` only; in key order, as published_prevalence.
select indicator as condition, kind, period, area_type, area_code, area_name, group_type, group_value, observed,
       population, rate, rate_lower, rate_upper, expected, ratio, ratio_lower, ratio_upper, missing
from indicators
where area_type in ('icb', 'pcn') or group_type = 'all'
order by period, condition, area_type, area_code, group_type, group_value
