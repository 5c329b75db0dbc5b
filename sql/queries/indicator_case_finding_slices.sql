-- For each case-finding indicator: the people on the register and everyone registered, in its age range, per
-- period x area x group (true counts, never published: they tell the protection that not-on-register + on-register
-- = the registered population of that age range), counted by the transform (sql/marts/indicator_counts).
select period, indicator as condition, area_type, area_code, group_type, group_value, register_in_range,
       population + register_in_range as population_in_range
from indicator_counts
where kind = 'case_finding'
