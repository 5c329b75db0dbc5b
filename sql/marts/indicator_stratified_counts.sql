-- Denominator and numerator per reference date x indicator x practice x neighbourhood x group x sex x 5-year age
-- band: the indicators' counterpart of stratified_counts (`population` = denominator; `cases` = the denominator
-- patients who meet the numerator rule of the indicator's kind).
with numerators as (
    select period, indicator, patient_id from int_indicator_care_process
    union all
    select period, indicator, patient_id from int_indicator_outcome
    union all
    select period, indicator, patient_id from int_indicator_case_finding
)
select d.period,
       d.indicator,
       d.practice_code,
       d.neighbourhood_code,
       d.ethnic_group,
       d.imd_quintile,
       d.sex,
       case when d.sex in ('F', 'M') then d.sex else 'Unknown' end as sex_group,
       age_band(d.age) as age_band,
       count(*) as population,
       count(n.patient_id) as cases
from int_indicator_denominators as d
left join numerators as n
  on n.period = d.period and n.indicator = d.indicator and n.patient_id = d.patient_id
group by d.period, d.indicator, d.practice_code, d.neighbourhood_code, d.ethnic_group, d.imd_quintile, d.sex,
         case when d.sex in ('F', 'M') then d.sex else 'Unknown' end, age_band(d.age)
