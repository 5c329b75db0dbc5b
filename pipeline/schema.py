"""Input contract metadata, in one place: drives reading, validation messages and the synthetic data's columns."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    stem: str
    columns: tuple[str, ...]          # required columns, in contract order
    optional_file: bool = False
    key: str | None = None            # unique key column
    optional_columns: tuple[str, ...] = ()  # contract columns a file may leave out (read as empty)


SOURCES: tuple[Source, ...] = (
    Source("practices", ("practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"), key="practice_code"),
    Source("deprivation", ("lsoa_code", "imd_score", "imd_rank", "imd_decile"), key="lsoa_code"),
    Source("neighbourhoods", ("lsoa_code", "neighbourhood_code", "neighbourhood_name"), optional_file=True, key="lsoa_code"),
    Source("patients", ("patient_id", "sex", "date_of_birth", "ethnicity", "lsoa_code", "date_of_death"), key="patient_id"),
    Source("registrations", ("patient_id", "practice_code", "registered_from", "registered_to")),
    Source("events", ("patient_id", "code", "date"), optional_columns=("value",)),
)
SOURCE_BY_STEM = {s.stem: s for s in SOURCES}

SEX_CODES = ("F", "M", "I", "U")
ETHNIC_GROUPS = ("White", "Mixed", "Asian", "Black", "Other", "Unknown")
IMD_QUINTILES = ("1", "2", "3", "4", "5", "Unknown")
SEX_GROUPS = ("F", "M", "Unknown")
AGE_BANDS = tuple(f"{a}-{a + 4}" for a in range(0, 90, 5)) + ("90+",)
GROUP_TYPES = ("all", "ethnicity", "imd_quintile", "sex", "age_band")
AREA_TYPES = ("icb", "pcn", "practice", "neighbourhood")

GROUP_ORDER = {
    "all": ("All",),
    "ethnicity": ETHNIC_GROUPS,
    "imd_quintile": IMD_QUINTILES,
    "sex": SEX_GROUPS,
    "age_band": AGE_BANDS,
}
