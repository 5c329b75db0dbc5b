-- One row per data row of the registrations file; a spell must belong to a loaded patient and a known practice.
with cleaned as (
    select _row_number as row_number,
           clean(patient_id) as patient_id,
           clean(practice_code) as practice_code,
           clean(registered_from) as registered_from_text,
           parse_date(registered_from, $date_format) as registered_from,
           clean(registered_to) as registered_to_text,
           parse_date(registered_to, $date_format) as registered_to
    from raw_registrations
)
select c.row_number,
       c.patient_id,
       c.practice_code,
       c.registered_from,
       c.registered_to,
       nullif(concat_ws('; ',
           case when c.patient_id is null then 'patient_id is empty'
                when p.patient_id is null then 'patient_id is not in patients (or its patients row was rejected)' end,
           case when c.practice_code is null then 'practice_code is empty'
                when pr.practice_code is null then 'practice_code is not in practices' end,
           case when c.registered_from_text is null then 'registered_from is empty' end,
           date_problem('registered_from', c.registered_from_text, c.registered_from, $today, $date_label),
           date_problem('registered_to', c.registered_to_text, c.registered_to, $today, $date_label),
           case when c.registered_to < c.registered_from then 'registered_to is before registered_from' end
       ), '') as reject_reason
from cleaned as c
left join patients as p on p.patient_id = c.patient_id
left join practices as pr on pr.practice_code = c.practice_code
