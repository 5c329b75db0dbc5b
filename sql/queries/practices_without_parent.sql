-- The check command's practices rejected for an empty PCN or ICB code: per reason, how many, and the first three
-- row numbers.
with reasons as (
    select row_number, unnest(string_split(reason, '; ')) as reason_part
    from rejects_practices
)
select reason_part, count(*) as practices, list(row_number order by row_number)[1:3] as first_rows
from reasons
where reason_part in ('pcn_code is empty', 'icb_code is empty')
group by reason_part
order by reason_part
