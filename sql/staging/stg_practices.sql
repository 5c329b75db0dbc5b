-- One row per data row of the practices file: trimmed, checked; reject_reason is null for rows that load.
with cleaned as (
    select _row_number as row_number,
           clean(practice_code) as practice_code,
           clean(practice_name) as practice_name,
           clean(pcn_code) as pcn_code,
           clean(pcn_name) as pcn_name,
           clean(icb_code) as icb_code,
           clean(icb_name) as icb_name
    from raw_practices
),
numbered as (
    select *, min(row_number) over (partition by practice_code) as first_row_number
    from cleaned
)
select row_number,
       practice_code,
       coalesce(practice_name, practice_code) as practice_name,
       pcn_code,
       coalesce(pcn_name, pcn_code) as pcn_name,
       icb_code,
       coalesce(icb_name, icb_code) as icb_name,
       nullif(concat_ws('; ',
           case when practice_code is null then 'practice_code is empty' end,
           case when practice_code is not null and row_number > first_row_number
                then 'practice_code is duplicated (first in row ' || cast(first_row_number as varchar) || ')' end,
           case when pcn_code is null then 'pcn_code is empty' end,
           case when icb_code is null then 'icb_code is empty' end
       ), '') as reject_reason
from numbered
