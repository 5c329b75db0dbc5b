-- Macros shared by the staging models: text is trimmed and an empty string means missing. Dates are read with
-- the strftime pattern `fmt` (bound as the parameter $date_format: ISO %Y-%m-%d unless [input] date_format says
-- otherwise), optionally followed by a time part after a space (as Parquet timestamps give) or a T (ISO 8601),
-- with or without fractions of a second (1 to 6 digits: `2020-01-05 00:00:00.000`, as SQL Server exports print
-- date-times); `label` is the pattern in words.
-- date_problem takes the cleaned text (clean(x)) and the date parse_date read from it (each value is parsed once);
-- year 0, which both engines' parsers take (as 1 BC), is no date (Python and pandas refuse it too).
-- trim_whitespace(x) removes white space at either end as Python's str.strip() does (and the README says): spaces,
-- tabs, line breaks (\n, \r, \x0b, \x0c, \x1c-\x1f, \x85, U+2028, U+2029) and the Unicode space separators
-- (no-break space, thin space, ideographic space, ...); DuckDB's one-argument trim removes only the space separators.
-- The Spark dialect writes it as a regexp_replace of the same characters (pipeline/dialect.py).
-- trimmed(x) is trim_whitespace(x), called only for text that may need it: text in ASCII (8 bits a character) whose
-- first character is above ' ' (x < '!' is false) and whose last is no ASCII white space is already trimmed
-- (trimming every value was a fifth of ingest's work; these tests are the cheapest found: left()/right() cost 4x).
create or replace macro trim_whitespace(x) as
    trim(x, chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(28) || chr(29) || chr(30) ||
            chr(31) || chr(32) || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) ||
            chr(8195) || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202) ||
            chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288));
create or replace macro trimmed(x) as
    case when x < '!' or x like '% ' or bit_length(x) <> 8 * length(x)
              or x like ('%' || chr(9)) or x like ('%' || chr(10)) or x like ('%' || chr(11))
              or x like ('%' || chr(12)) or x like ('%' || chr(13)) or x like ('%' || chr(28))
              or x like ('%' || chr(29)) or x like ('%' || chr(30)) or x like ('%' || chr(31))
         then trim_whitespace(x) else x end;
create or replace macro clean(x) as nullif(trimmed(x), '');
-- an age band as the transform writes it ("40-44"): an en or em dash and spaces, as in "40 – 44", are the same band
create or replace macro age_band_text(x) as replace(replace(replace(clean(x), '–', '-'), '—', '-'), ' ', '');
create or replace macro parse_date(x, fmt) as cast(coalesce(try_strptime(trimmed(x), fmt),
                                                            try_strptime(trimmed(x), fmt || ' %H:%M:%S'),
                                                            try_strptime(trimmed(x), fmt || 'T%H:%M:%S'),
                                                            try_strptime(trimmed(x), fmt || ' %H:%M:%S.%f'),
                                                            try_strptime(trimmed(x), fmt || 'T%H:%M:%S.%f')) as date);
create or replace macro date_problem(col, x, parsed, today, label) as
    case when x is not null and (parsed is null or year(parsed) < 1) then col || ' is not a valid date (expected ' || label || ')'
         when parsed > today then col || ' is after the day of the run' end;
-- ethnic_group takes the cleaned, upper-cased code (stg_patients' `ethnicity`)
create or replace macro ethnic_group(code) as
    case when code in ('A', 'B', 'C') then 'White'
         when code in ('D', 'E', 'F', 'G') then 'Mixed'
         when code in ('H', 'J', 'K', 'L') then 'Asian'
         when code in ('M', 'N', 'P') then 'Black'
         when code in ('R', 'S') then 'Other'
         else 'Unknown' end;
-- sex as the `sex` group reports it: F, M, or Unknown for I, U and anything else
create or replace macro sex_group(sex) as case when sex in ('F', 'M') then sex else 'Unknown' end;
create or replace macro age_band(age) as
    case when age >= 90 then '90+' else cast(age // 5 * 5 as varchar) || '-' || cast(age // 5 * 5 + 4 as varchar) end;
