-- The `prevalence` rows any publication may draw on: every breakdown of England (published data), the ICB and its
-- PCNs, and the `all` rows of practices and neighbourhoods. Read by the report stage before disclosure control, in key
-- order: secondary suppression breaks ties by position, so the same counts must always arrive in the same order (the
-- warehouse's row order is not fixed).
select *
from prevalence
where area_type in ('england', 'icb', 'pcn') or group_type = 'all'
order by period, condition, area_type, area_code, group_type, group_value
