-- Paired counts behind the indicators' trend, as trend_transitions for registers: per pair of reference dates
-- (consecutive dates, and first to last when there are more than two) x indicator x area x group, the patients who
-- meet the indicator's rule (numerator, within its denominator) on both dates in the same cell (same area, same
-- group value). Only `cases_both` is kept: it is what the paired interval of the change needs (the patients whose
-- status differs give the variance); the denominators are counted, not listed, so the other overlaps are not formed.
with people as (
    select period, indicator, patient_id, practice_code, neighbourhood_code, ethnic_group, imd_quintile,
           sex_group(sex) as sex_group,
           case when age >= 90 then 90 else age // 5 * 5 end as band_start
    from int_indicator_numerators
),
paired_strata as (
    select pp.period_from, pp.period_to, f.indicator,
           f.practice_code as practice_from, t.practice_code as practice_to,
           f.neighbourhood_code as neighbourhood_from, t.neighbourhood_code as neighbourhood_to,
           f.ethnic_group as ethnic_from, t.ethnic_group as ethnic_to,
           f.imd_quintile as imd_from, t.imd_quintile as imd_to,
           f.sex_group as sex_from, t.sex_group as sex_to,
           f.band_start as band_from, t.band_start as band_to,
           count(*) as cases_both
    from int_period_pairs as pp
    join people as f on f.period = pp.period_from
    join people as t on t.period = pp.period_to and t.patient_id = f.patient_id and t.indicator = f.indicator
    group by pp.period_from, pp.period_to, f.indicator, f.practice_code, t.practice_code, f.neighbourhood_code,
             t.neighbourhood_code, f.ethnic_group, t.ethnic_group, f.imd_quintile, t.imd_quintile, f.sex_group,
             t.sex_group, f.band_start, t.band_start
),
strata_in_areas as (
    select s.*, 'practice' as area_type, s.practice_from as area_code
    from paired_strata as s where s.practice_from = s.practice_to
    union all
    select s.*, 'pcn', pf.pcn_code
    from paired_strata as s
    join practices as pf on pf.practice_code = s.practice_from
    join practices as pt on pt.practice_code = s.practice_to
    where pf.pcn_code = pt.pcn_code
    union all
    select s.*, 'icb', pf.icb_code
    from paired_strata as s
    join practices as pf on pf.practice_code = s.practice_from
    join practices as pt on pt.practice_code = s.practice_to
    where pf.icb_code = pt.icb_code
    union all
    select s.*, 'neighbourhood', s.neighbourhood_from
    from paired_strata as s where s.neighbourhood_from = s.neighbourhood_to
),
strata_in_groups as (
    select period_from, period_to, indicator, area_type, area_code, 'all' as group_type, 'All' as group_value,
           cases_both
    from strata_in_areas
    union all
    select period_from, period_to, indicator, area_type, area_code, 'ethnicity', ethnic_from, cases_both
    from strata_in_areas where ethnic_from = ethnic_to
    union all
    select period_from, period_to, indicator, area_type, area_code, 'imd_quintile', imd_from, cases_both
    from strata_in_areas where imd_from = imd_to
    union all
    select period_from, period_to, indicator, area_type, area_code, 'sex', sex_from, cases_both
    from strata_in_areas where sex_from = sex_to
    union all
    select period_from, period_to, indicator, area_type, area_code, 'age_band', age_band(band_from), cases_both
    from strata_in_areas where band_from = band_to
)
select period_from, period_to, indicator, area_type, area_code, group_type, group_value,
       cast(sum(cases_both) as bigint) as cases_both
from strata_in_groups
group by period_from, period_to, indicator, area_type, area_code, group_type, group_value
