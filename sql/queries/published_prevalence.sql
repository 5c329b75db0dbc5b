-- The `prevalence` rows any publication may draw on: every breakdown of England (published data), the ICB and its
-- PCNs, and the `all` rows of practices and neighbourhoods. Read by the report stage before disclosure control.
select *
from prevalence
where area_type in ('england', 'icb', 'pcn') or group_type = 'all'
