-- Each configured indicator with its denominator condition's label and minimum age (the packs' indicator pages).
select indicators.indicator, indicators.label, indicators.kind, indicators.denominator, indicators.min_age,
       indicators.max_age, indicators.months, conditions.label as denominator_label,
       conditions.min_age as condition_min_age
from indicator_settings as indicators
join conditions on conditions.condition = indicators.denominator
