-- Registrations and events whose patient is not in `patients` (the ingest's referential-integrity suite expects 0).
select 'registrations' as source, count(*) as orphans
from registrations as r
anti join patients as p using (patient_id)
union all
select 'events', count(*)
from events as e
anti join patients as p using (patient_id)
