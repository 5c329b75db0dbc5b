-- As trend_overlap, for the indicators (`indicator` read as `condition`, as the packs' change tables key them).
select period_from, period_to, indicator as condition, area_type, area_code, group_type, group_value, cases_both
from indicator_trend_transitions
where area_type in ('icb', 'pcn')
