-- One row per reference date x patient who is registered and alive on it (all ages), at the practice of the
-- covering spell with the latest registered_from (then the greatest practice_code), with age and groups.
with covering_spells as (
    select d.period, r.patient_id, r.practice_code, r.registered_from
    from periods as d
    join registrations as r
      on r.registered_from <= d.period
     and (r.registered_to is null or r.registered_to >= d.period)
),
chosen_spell as (
    select period, patient_id, practice_code,
           row_number() over (partition by period, patient_id
                              order by registered_from desc, practice_code desc) as pick
    from covering_spells
),
alive_and_born as (
    select s.period, s.patient_id, s.practice_code, p.sex, p.date_of_birth, p.ethnic_group, p.lsoa_code
    from chosen_spell as s
    join patients as p on p.patient_id = s.patient_id
    where s.pick = 1
      and p.date_of_birth <= s.period
      and (p.date_of_death is null or p.date_of_death > s.period)
)
select a.period,
       a.patient_id,
       a.practice_code,
       a.sex,
       year(a.period) - year(a.date_of_birth)
         - case when month(a.period) < month(a.date_of_birth)
                  or (month(a.period) = month(a.date_of_birth) and day(a.period) < day(a.date_of_birth))
                then 1 else 0 end as age,
       a.ethnic_group,
       a.lsoa_code,
       coalesce(cast(d.imd_quintile as varchar), 'Unknown') as imd_quintile,
       n.neighbourhood_code
from alive_and_born as a
left join int_lsoa_deprivation as d on d.lsoa_code = a.lsoa_code
left join neighbourhoods as n on n.lsoa_code = a.lsoa_code
