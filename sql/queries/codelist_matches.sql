-- The check command's codelist coverage: of every event row of the file (loaded or rejected), how many have a code
-- in the codelist (codes_arrow), how many of those would load, and how many of the codelist's codes occur at all.
with event_codes as (
    select code, true as loads from events
    union all
    select clean(code) as code, false from rejects_events
)
select count(*) as events,
       count(*) filter (where e.loads) as loading,
       count(distinct e.code) as codes_seen
from event_codes as e
join codes_arrow as k on k.code = e.code
