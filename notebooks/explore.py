# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring the marts: where is a condition recorded less often than the ICB average would give?
#
# "Expected" is what the reference rates (by default the dataset's own average, per sex and five-year age band)
# would give for a group's people; `missing` = expected − recorded: how many fewer are recorded than the ICB
# average for people of the same age and sex would give (negative: more). With the default internal rates it
# adds up to 0 over the dataset: it is a gap to the average, not a count of undiagnosed people.
#
# This notebook reads the analyst tables the pipeline writes to `data/processed/` (true, unsuppressed values:
# keep it inside the secure environment). It computes nothing the package does not: it only queries the marts.
# Set `PIPELINE_PROCESSED` to read another processed directory.

# %%
import os
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

processed = Path(os.environ.get("PIPELINE_PROCESSED", "../data/processed"))
con = duckdb.connect(str(processed / "warehouse.duckdb"), read_only=True)
con.sql("select * from load_summary").df()

# %% [markdown]
# ## The latest period, ICB level: recorded versus the ICB average for the same ages and sexes, by ethnic group and
# ## deprivation quintile

# %%
latest = con.sql("select max(period) from prevalence").fetchone()[0]
icb_groups = con.execute(
    """select condition, group_type, group_value, observed, round(expected, 1) as expected,
              round(ratio, 2) as ratio, round(ratio_lower, 2) as lower, round(ratio_upper, 2) as upper,
              round(missing) as fewer_than_icb_average_would_give
       from prevalence
       where period = ? and area_type = 'icb' and group_type in ('ethnicity', 'imd_quintile')
       order by condition, group_type, group_value""",
    [latest],
).df()
icb_groups

# %% [markdown]
# ## The largest clear gaps in PCNs against the ICB average: ratio interval entirely below 1, ranked by how many
# ## fewer are recorded than the ICB average for people of the same age and sex would give

# %%
gaps = con.execute(
    """select condition, area_code as pcn, area_name, group_type, group_value, observed,
              round(expected) as expected, round(ratio, 2) as ratio, round(ratio_lower, 2) as lower,
              round(ratio_upper, 2) as upper, round(missing) as fewer_than_icb_average_would_give
       from prevalence
       where period = ? and area_type = 'pcn' and group_type <> 'all' and ratio_upper < 1
       order by missing desc limit 15""",
    [latest],
).df()
gaps

# %% [markdown]
# ## Change over time: the `trend` table
# Paired intervals (the same patients on both dates, from `trend_transitions`), on the earlier date's reference
# rates; `label` says whether the gap to the comparator (the dataset's own change removed: `gap_change`) narrowed
# or widened, after Benjamini-Hochberg control over every condition and group of the area (`q_value`).

# %%
con.execute(
    """select period_from, period_to, condition, area_code, group_value, round(ratio_from, 2) as ratio_from,
              round(ratio_to, 2) as ratio_to, round(change, 2) as change, round(change_lower, 2) as lower,
              round(change_upper, 2) as upper, round(gap_from, 2) as gap_from, round(gap_to, 2) as gap_to,
              q_value, label
       from trend where area_type = 'pcn' and label in ('narrowed', 'widened')
       order by q_value limit 15"""
).df()

# %% [markdown]
# ## Is the gap closing? Depression in Black patients, each PCN, across the periods

# %%
trend = con.execute(
    """select period, area_code, ratio, ratio_lower, ratio_upper
       from prevalence
       where area_type = 'pcn' and group_type = 'ethnicity' and group_value = 'Black'
         and condition = (select min(condition) from prevalence)
       order by area_code, period"""
).df()
fig, ax = plt.subplots(figsize=(7, 3.5))
for code, g in trend.groupby("area_code"):
    ax.errorbar(g["period"].astype(str), g["ratio"], yerr=[g["ratio"] - g["ratio_lower"], g["ratio_upper"] - g["ratio"]],
                marker="o", capsize=3, label=code)
ax.axhline(1, color="grey", lw=1, ls="--")
ax.set_ylabel("recorded / expected")
ax.legend(fontsize=7, ncol=3)
fig.tight_layout()
trend.groupby("area_code")["ratio"].agg(["first", "last"])

# %%
con.close()
