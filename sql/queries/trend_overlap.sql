-- The registers' paired-overlap counts the packs print beside a change (patients in a cell on both dates who are a
-- case on both), for the ICB and its PCNs. Read by the report stage, then disclosure-controlled.
select period_from, period_to, condition, area_type, area_code, group_type, group_value, cases_both
from trend_transitions
where area_type in ('icb', 'pcn')
