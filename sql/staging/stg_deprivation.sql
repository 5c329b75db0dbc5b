-- One row per data row of the deprivation file (IMD by LSOA): typed and checked.
with cleaned as (
    select _row_number as row_number,
           clean(lsoa_code) as lsoa_code,
           clean(imd_score) as imd_score_text,
           clean(imd_rank) as imd_rank_text,
           clean(imd_decile) as imd_decile_text,
           try_cast(clean(imd_score) as double) as imd_score,
           case when try_cast(clean(imd_rank) as double) = floor(try_cast(clean(imd_rank) as double))
                then try_cast(clean(imd_rank) as bigint) end as imd_rank,
           case when try_cast(clean(imd_decile) as double) = floor(try_cast(clean(imd_decile) as double))
                then try_cast(clean(imd_decile) as integer) end as imd_decile
    from raw_deprivation
),
numbered as (
    select *, min(row_number) over (partition by lsoa_code) as first_row_number
    from cleaned
)
select row_number,
       lsoa_code,
       imd_score,
       imd_rank,
       imd_decile,
       cast(ceil(imd_decile / 2.0) as integer) as imd_quintile,
       nullif(concat_ws('; ',
           case when lsoa_code is null then 'lsoa_code is empty' end,
           case when lsoa_code is not null and row_number > first_row_number
                then 'lsoa_code is duplicated (first in row ' || cast(first_row_number as varchar) || ')' end,
           case when imd_decile_text is null then 'imd_decile is empty'
                when imd_decile is null or imd_decile not between 1 and 10 then 'imd_decile is not a whole number from 1 to 10' end,
           case when imd_score_text is not null and imd_score is null then 'imd_score is not a number' end,
           case when imd_rank_text is not null and imd_rank is null then 'imd_rank is not a whole number' end
       ), '') as reject_reason
from numbered
