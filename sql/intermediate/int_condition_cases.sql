-- One row per reference date x condition x patient with the condition recorded on that date: a diagnosis code
-- on or before the date, later than any resolved code on or before the date.
with coded_events as (
    select d.period, c.condition, e.patient_id,
           max(case when c.kind = 'diagnosis' then e.date end) as latest_diagnosis,
           max(case when c.kind = 'resolved' then e.date end) as latest_resolved
    from events as e
    join codelists as c on c.code = e.code
    join periods as d on e.date <= d.period
    group by d.period, c.condition, e.patient_id
)
select period, condition, patient_id
from coded_events
where latest_diagnosis is not null
  and (latest_resolved is null or latest_diagnosis > latest_resolved)
