-- The first row of an external reference-rate file (registered as `external_rates_arrow`: text columns condition,
-- sex, age_band, rate, period, and _row_number) that the rates cannot be read from: a rate that is not a
-- proportion, a sex other than F/M/I/U, no age band, a period that is not an ISO date, or a second rate for the
-- same condition x sex x age band (x period) as an earlier row, which would otherwise be chosen between silently.
-- Age bands are compared as the transform writes them (age_band_text).
with cleaned as (
    select _row_number,
           clean(condition) as condition,
           upper(clean(sex)) as sex,
           age_band_text(age_band) as age_band,
           clean(rate) as rate,
           clean(period) as period
    from external_rates_arrow
),
problems as (
    select _row_number, 'value' as problem, cast(null as bigint) as first_row
    from cleaned
    where try_cast(rate as double) is null or try_cast(rate as double) not between 0 and 1
       or coalesce(sex, '') not in ('F', 'M', 'I', 'U') or age_band is null
    union all
    select _row_number, 'period', null
    from cleaned
    where period is not null and try_strptime(period, '%Y-%m-%d') is null
    union all
    select _row_number, 'repeated',
           min(_row_number) over (partition by condition, sex, age_band, period)
    from cleaned
    qualify _row_number > min(_row_number) over (partition by condition, sex, age_band, period)
)
select _row_number, problem, first_row
from problems
order by _row_number, problem
limit 1
