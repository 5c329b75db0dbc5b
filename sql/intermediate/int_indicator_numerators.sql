-- One row per reference date x indicator x patient who meets the indicator's numerator rule (one model per kind)
-- and is in its denominator on the date, with the patient's practice, groups and age. The denominator:
-- care_process / outcome: on the register of the indicator's denominator condition; case_finding: registered and
-- alive but not on that register; aged min_age..max_age (inclusive) on the date (indicator_settings.min_age is
-- already the higher of the indicator's and the condition's for registers). Denominators are counted, not listed
-- (indicator_stratified_counts); int_indicator_denominators lists them, for checks.
with numerators as (
    select period, indicator, patient_id from int_indicator_care_process
    union all
    select period, indicator, patient_id from int_indicator_outcome
    union all
    select period, indicator, patient_id from int_indicator_case_finding
),
register_rule_met as (
    select n.period, n.indicator, n.patient_id
    from numerators as n
    join indicator_settings as i on i.indicator = n.indicator
    left join int_condition_cases as k
      on k.period = n.period and k.condition = i.denominator and k.patient_id = n.patient_id
    where (i.kind = 'case_finding' and k.patient_id is null)
       or (i.kind <> 'case_finding' and k.patient_id is not null)
)
select n.period, n.indicator, r.patient_id, r.practice_code, r.neighbourhood_code, r.ethnic_group, r.imd_quintile,
       r.sex, r.age
from register_rule_met as n
join indicator_settings as i on i.indicator = n.indicator
join int_patients_registered_on_date as r on r.period = n.period and r.patient_id = n.patient_id
where r.age >= i.min_age
  and (i.max_age is null or r.age <= i.max_age)
