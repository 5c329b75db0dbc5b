-- Internal reference rates of each indicator per reference date x standardisation stratum (sex as recorded x
-- 5-year age band, optionally x IMD quintile and/or ethnic group): numerator / denominator over the whole dataset,
-- so that expected is standardised over the indicator's own denominator (no rate where nobody is in it: a
-- case-finding stratum whose people are all on the register).
select period,
       indicator,
       sex,
       age_band,
       case when $by_imd then imd_quintile else '*' end as imd_stratum,
       case when $by_ethnicity then ethnic_group else '*' end as ethnicity_stratum,
       cast(sum(population) as bigint) as population,
       cast(sum(cases) as bigint) as cases,
       cast(sum(cases) as double) / nullif(sum(population), 0) as rate
from indicator_stratified_counts
group by period, indicator, sex, age_band,
         case when $by_imd then imd_quintile else '*' end,
         case when $by_ethnicity then ethnic_group else '*' end
