-- The name of every area a count is placed in (practice, PCN, ICB, neighbourhood), read by prevalence_counts and
-- indicator_counts: a practice's own name; for a PCN, ICB or neighbourhood the alphabetically first name its rows give.
select distinct 'practice' as area_type, practice_code as area_code, practice_name as area_name from practices
union all
select 'pcn', pcn_code, min(pcn_name) from practices group by pcn_code
union all
select 'icb', icb_code, min(icb_name) from practices group by icb_code
union all
select 'neighbourhood', neighbourhood_code, min(neighbourhood_name) from neighbourhoods group by neighbourhood_code
