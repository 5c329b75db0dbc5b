-- Numerator rule of each care_process indicator: one row per reference date x indicator x patient with at least one
-- event from the indicator's codelist in the window (window_start, period] (values play no part). Only patients in
-- the indicator's denominator count (indicator_stratified_counts joins the two).
select distinct w.period, w.indicator, e.patient_id
from indicator_settings as i
join indicator_codelists as l on l.indicator = i.indicator
join events as e on e.code = l.code
join indicator_windows as w
  on w.indicator = i.indicator and e.date > w.window_start and e.date <= w.period
where i.kind = 'care_process'
