-- One row per data row of the optional neighbourhoods file (LSOA -> neighbourhood).
with cleaned as (
    select _row_number as row_number,
           clean(lsoa_code) as lsoa_code,
           clean(neighbourhood_code) as neighbourhood_code,
           clean(neighbourhood_name) as neighbourhood_name
    from raw_neighbourhoods
),
numbered as (
    select *, min(row_number) over (partition by lsoa_code) as first_row_number
    from cleaned
)
select row_number,
       lsoa_code,
       neighbourhood_code,
       coalesce(neighbourhood_name, neighbourhood_code) as neighbourhood_name,
       nullif(concat_ws('; ',
           case when lsoa_code is null then 'lsoa_code is empty' end,
           case when lsoa_code is not null and row_number > first_row_number
                then 'lsoa_code is duplicated (first in row ' || cast(first_row_number as varchar) || ')' end,
           case when neighbourhood_code is null then 'neighbourhood_code is empty' end
       ), '') as reject_reason
from numbered
