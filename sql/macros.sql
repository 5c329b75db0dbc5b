-- Macros shared by the staging models: text is trimmed and an empty string means missing. Dates are read with
-- the strftime pattern `fmt` (bound as the parameter $date_format: ISO %Y-%m-%d unless [input] date_format says
-- otherwise), optionally followed by a time part (as Parquet timestamps give); `label` is the pattern in words.
-- date_problem takes the cleaned text (clean(x)) and the date parse_date read from it (each value is parsed once).
-- trimmed(x) is trim(x): trim removes Unicode spaces and so decodes every character of every value, which made it
-- a fifth of ingest's work; text in ASCII (8 bits a character) that neither starts nor ends with a space is
-- already trimmed, so trim is called only for the other values.
create or replace macro trimmed(x) as
    case when x like ' %' or x like '% ' or bit_length(x) <> 8 * length(x) then trim(x) else x end;
create or replace macro clean(x) as nullif(trimmed(x), '');
create or replace macro parse_date(x, fmt) as cast(coalesce(try_strptime(trimmed(x), fmt),
                                                            try_strptime(trimmed(x), fmt || ' %H:%M:%S')) as date);
create or replace macro date_problem(col, x, parsed, today, label) as
    case when x is not null and parsed is null then col || ' is not a valid date (expected ' || label || ')'
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
