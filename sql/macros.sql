-- Macros shared by the staging models: text is trimmed and an empty string means missing. Dates are read with
-- the strftime pattern `fmt` (bound as the parameter $date_format: ISO %Y-%m-%d unless [input] date_format says
-- otherwise), optionally followed by a time part (as Parquet timestamps give); `label` is the pattern in words.
-- date_problem takes the text and the date parse_date read from it (each value is parsed once).
create or replace macro clean(x) as nullif(trim(x), '');
create or replace macro parse_date(x, fmt) as cast(coalesce(try_strptime(trim(x), fmt),
                                                            try_strptime(trim(x), fmt || ' %H:%M:%S')) as date);
create or replace macro date_problem(col, x, parsed, today, label) as
    case when clean(x) is not null and parsed is null then col || ' is not a valid date (expected ' || label || ')'
         when parsed > today then col || ' is after the day of the run' end;
create or replace macro ethnic_group(code) as
    case when upper(clean(code)) in ('A', 'B', 'C') then 'White'
         when upper(clean(code)) in ('D', 'E', 'F', 'G') then 'Mixed'
         when upper(clean(code)) in ('H', 'J', 'K', 'L') then 'Asian'
         when upper(clean(code)) in ('M', 'N', 'P') then 'Black'
         when upper(clean(code)) in ('R', 'S') then 'Other'
         else 'Unknown' end;
create or replace macro age_band(age) as
    case when age >= 90 then '90+' else cast(age // 5 * 5 as varchar) || '-' || cast(age // 5 * 5 + 4 as varchar) end;
