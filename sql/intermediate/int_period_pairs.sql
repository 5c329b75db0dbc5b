-- The pairs of reference dates a trend compares: each date with the next, and the first with the last when there
-- are more than two. Read by the trend marts of registers and indicators.
with ordered_periods as (
    select period,
           row_number() over (order by period) as period_index,
           count(*) over () as period_count
    from periods
)
select f.period as period_from, t.period as period_to
from ordered_periods as f
join ordered_periods as t
  on t.period_index = f.period_index + 1
  or (f.period_index = 1 and t.period_index = t.period_count and t.period_count > 2)
