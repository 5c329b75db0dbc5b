-- The check command's registrations rejected for naming a practice not in the practices file: how many practices,
-- how many registrations, and the first three (non-empty) practice codes.
with unknown as (
    select trimmed(practice_code) as practice_code
    from rejects_registrations
    where reason like '%practice_code is not in practices%'
)
select count(distinct practice_code) as practices,
       count(*) as registrations,
       coalesce(list(distinct practice_code order by practice_code) filter (where practice_code <> ''), [])[1:3]
           as examples
from unknown
