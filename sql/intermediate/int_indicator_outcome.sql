-- Numerator rule of each outcome indicator: one row per reference date x indicator x patient for whom every
-- criterion's latest valued reading in the window (window_start, period] meets its bounds (inclusive). Of several
-- readings on that latest date the lowest counts; each criterion is judged on its own latest date. Only patients in
-- the indicator's denominator count (indicator_stratified_counts joins the two).
with readings as (
    select w.period, w.indicator, l.criterion, e.patient_id, e.date, e.value
    from indicator_settings as i
    join indicator_codelists as l on l.indicator = i.indicator
    join events as e on e.code = l.code
    join indicator_windows as w
      on w.indicator = i.indicator and e.date > w.window_start and e.date <= w.period
    where i.kind = 'outcome' and e.value is not null
),
latest_values as (
    -- the value of the latest reading, the lowest of several on that date: the greatest (date, -value)
    select period, indicator, criterion, patient_id,
           arg_max(value, struct_pack(reading_date := date, lower_value := -value)) as value
    from readings
    group by period, indicator, criterion, patient_id
),
criteria_met as (
    select v.period, v.indicator, v.patient_id, count(*) as met
    from latest_values as v
    join indicator_criteria as c on c.indicator = v.indicator and c.criterion = v.criterion
    where (c.min_value is null or v.value >= c.min_value)
      and (c.max_value is null or v.value <= c.max_value)
    group by v.period, v.indicator, v.patient_id
),
criteria_count as (
    select indicator, count(*) as criteria from indicator_criteria group by indicator
)
select m.period, m.indicator, m.patient_id
from criteria_met as m
join criteria_count as n on n.indicator = m.indicator
where m.met = n.criteria
