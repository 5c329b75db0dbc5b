-- Numerator rule of each case_finding indicator: one row per reference date x indicator x patient with events from
-- the evidence codelist in the window (window_start, period] on at least min_count different dates, counting only
-- events whose value is >= min_value when min_value is given. Only patients in the indicator's denominator (not on
-- the register) count (indicator_stratified_counts joins the two).
with evidence as (
    select w.period, w.indicator, e.patient_id, count(distinct e.date) as evidence_dates
    from indicator_settings as i
    join indicator_codelists as l on l.indicator = i.indicator
    join indicator_criteria as c on c.indicator = l.indicator and c.criterion = l.criterion
    join events as e on e.code = l.code
    join indicator_windows as w
      on w.indicator = i.indicator and e.date > w.window_start and e.date <= w.period
    where i.kind = 'case_finding'
      and (c.min_value is null or e.value >= c.min_value)
    group by w.period, w.indicator, e.patient_id
)
select v.period, v.indicator, v.patient_id
from evidence as v
join indicator_settings as i on i.indicator = v.indicator
where v.evidence_dates >= i.min_count
