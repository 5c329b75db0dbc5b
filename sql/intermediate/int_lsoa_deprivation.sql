-- Deprivation for every LSOA code a patient may carry: the deprivation file's own rows (basis 'file'), plus, when
-- [input] lsoa_lookup names the ONS LSOA 2011 -> 2021 lookup, the codes of the other vintage that the file lacks,
-- bridged through it (basis 'lookup'). A bridged code takes the deprivation of its counterparts in the file: one
-- counterpart (an unchanged or split LSOA seen from its 2021 side, a merged one from its 2011 side) gives its
-- decile as it is; several (merged or complex changes from the 2021 side, splits from the 2011 side) give the mean
-- of their deciles rounded to a whole decile, halves towards the more deprived; the score is their mean.
with pairs as (
    select lsoa11_code as lsoa_code, lsoa21_code as counterpart from lsoa_lookup
    union
    select lsoa21_code, lsoa11_code from lsoa_lookup
),
bridged as (
    select p.lsoa_code,
           avg(d.imd_score) as imd_score,
           cast(ceil(avg(d.imd_decile) - 0.5) as integer) as imd_decile,
           count(*) as counterparts
    from pairs as p
    join deprivation as d on d.lsoa_code = p.counterpart
    left join deprivation as own on own.lsoa_code = p.lsoa_code
    where own.lsoa_code is null
    group by p.lsoa_code
)
select lsoa_code, imd_score, imd_decile, imd_quintile, 'file' as basis, 1 as counterparts
from deprivation
union all
select lsoa_code, imd_score, imd_decile, cast(ceil(imd_decile / 2.0) as integer) as imd_quintile, 'lookup' as basis,
       counterparts
from bridged
