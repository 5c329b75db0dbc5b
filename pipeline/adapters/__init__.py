"""Adapters for England's official public formats. Each maps a file into the project's contracts and returns an
`Adapted` (contract rows, rejected rows with reasons, load summary); a file that is not what it claims raises
`PipelineError` with one sentence naming the file and the column."""
from ._csv import REJECT_COLUMNS, Adapted
from .imd import (
    DEPRIVATION_COLUMNS,
    combine_iod2019,
    read_fingertips_imd_2025,
    read_fingertips_practice_imd,
    read_iod2019_lsoa,
    read_lsoa11_to_lsoa21,
)
from .nhs import AGE_BANDS, read_epraccur, read_registrations_quin_age
from .other import read_opencodelist, read_practice_ethnicity
from .qof import MAPPING_COLUMNS, parse_qof_year, read_gp_reg_map, read_qof_mapping, read_qof_prevalence

__all__ = [
    "Adapted", "REJECT_COLUMNS", "DEPRIVATION_COLUMNS", "MAPPING_COLUMNS", "AGE_BANDS", "parse_qof_year",
    "read_qof_prevalence", "read_qof_mapping", "read_gp_reg_map", "read_registrations_quin_age", "read_epraccur",
    "read_fingertips_practice_imd", "read_fingertips_imd_2025", "read_iod2019_lsoa", "combine_iod2019",
    "read_lsoa11_to_lsoa21",
    "read_practice_ethnicity", "read_opencodelist",
]
