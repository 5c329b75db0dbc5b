-- One row per data row of the events file; an event must belong to a loaded patient and carry a code and a date.
-- `value` (optional column; empty = no value) must be a plain decimal number such as 140, 140.0 or -1.5.
with cleaned as (
    select _row_number as row_number,
           clean(patient_id) as patient_id,
           clean(code) as code,
           clean(date) as date_text,
           parse_date(date, $date_format) as date,
           clean(value) as value_text
    from raw_events
)
select c.row_number,
       c.patient_id,
       c.code,
       c.date,
       case when regexp_extract(c.value_text, '^-?[0-9]+([.][0-9]+)?', 0) = c.value_text
            then cast(c.value_text as double) end as value,
       nullif(concat_ws('; ',
           case when c.patient_id is null then 'patient_id is empty'
                when p.patient_id is null then 'patient_id is not in patients (or its patients row was rejected)' end,
           case when c.code is null then 'code is empty' end,
           case when c.date_text is null then 'date is empty' end,
           date_problem('date', c.date_text, c.date, $today, $date_label),
           case when c.value_text is not null and regexp_extract(c.value_text, '^-?[0-9]+([.][0-9]+)?', 0) <> c.value_text
                then 'value is not a plain decimal number (such as 140 or 7.5)' end
       ), '') as reject_reason
from cleaned as c
left join patients as p on p.patient_id = c.patient_id
