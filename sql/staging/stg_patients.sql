-- One row per data row of the patients file: trimmed, codes upper-cased, dates parsed, ethnic group derived.
with cleaned as (
    select _row_number as row_number,
           clean(patient_id) as patient_id,
           upper(clean(sex)) as sex,
           clean(date_of_birth) as date_of_birth_text,
           parse_date(date_of_birth, $date_format) as date_of_birth,
           upper(clean(ethnicity)) as ethnicity,
           clean(lsoa_code) as lsoa_code,
           clean(date_of_death) as date_of_death_text,
           parse_date(date_of_death, $date_format) as date_of_death
    from raw_patients
),
repeated_ids as (
    -- each patient_id on more than one row, with its first row (an aggregate, not a window over every row: half
    -- the staging model's time at 1M patients)
    select patient_id, min(row_number) as first_row_number
    from cleaned
    group by patient_id
    having count(*) > 1
),
numbered as (
    select cleaned.*, repeated_ids.first_row_number
    from cleaned
    left join repeated_ids on repeated_ids.patient_id = cleaned.patient_id
)
select row_number,
       patient_id,
       sex,
       date_of_birth,
       ethnicity,
       ethnic_group(ethnicity) as ethnic_group,
       lsoa_code,
       date_of_death,
       nullif(concat_ws('; ',
           case when patient_id is null then 'patient_id is empty' end,
           case when patient_id is not null and row_number > first_row_number
                then 'patient_id is duplicated (first in row ' || cast(first_row_number as varchar) || ')' end,
           case when sex is null then 'sex is empty (expected F, M, I or U)'
                when sex not in ('F', 'M', 'I', 'U') then 'sex is not a known code (expected F, M, I or U)' end,
           case when date_of_birth_text is null then 'date_of_birth is empty' end,
           date_problem('date_of_birth', date_of_birth_text, date_of_birth, $today, $date_label),
           date_problem('date_of_death', date_of_death_text, date_of_death, $today, $date_label)
       ), '') as reject_reason
from numbered
