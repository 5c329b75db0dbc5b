-- The distinct practices the loaded registrations name (ingest's suite: each must be in `practices`).
select distinct practice_code
from registrations
