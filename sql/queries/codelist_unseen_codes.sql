-- The check command's examples: the first five codes of the codelist (codes_arrow) that no event row uses.
with event_codes as (
    select code from events
    union all
    select clean(code) from rejects_events
)
select k.code
from codes_arrow as k
anti join event_codes as e on e.code = k.code
order by k.code
limit 5
