-- The reference dates (QOF year ends) a published-data warehouse holds, in order.
select distinct period from prevalence_counts order by period
