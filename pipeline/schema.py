"""Input contract metadata, in one place: drives reading, validation messages and the synthetic data's columns."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    stem: str
    columns: tuple[str, ...]          # required columns, in contract order
    optional_file: bool = False
    key: str | None = None            # unique key column
    date_columns: tuple[str, ...] = ()        # read with [input] date_format
    optional_columns: tuple[str, ...] = ()    # contract columns a file may leave out
    one_row_per: str = ""
    description: dict = field(default_factory=dict, compare=False, hash=False)  # column -> meaning (docs)


SOURCES: tuple[Source, ...] = (
    Source("practices", ("practice_code", "practice_name", "pcn_code", "pcn_name", "icb_code", "icb_name"), key="practice_code",
           one_row_per="practice", description={
               "practice_code": "ODS code of the GP practice (e.g. A81001); unique",
               "practice_name": "name (empty: the code is used)",
               "pcn_code": "ODS code of its primary care network; must not be empty",
               "pcn_name": "name (empty: the code is used)",
               "icb_code": "ODS code of its integrated care board (e.g. QHM); must not be empty",
               "icb_name": "name (empty: the code is used)"}),
    Source("deprivation", ("lsoa_code", "imd_score", "imd_rank", "imd_decile"), key="lsoa_code",
           one_row_per="LSOA", description={
               "lsoa_code": "LSOA code (2011 LSOAs for IoD 2019, 2021 LSOAs for IoD 2025); unique",
               "imd_score": "IMD score (a number; may be empty)",
               "imd_rank": "national IMD rank, 1 = most deprived (whole number; may be empty)",
               "imd_decile": "national IMD decile, 1 = most deprived (whole number 1-10)"}),
    Source("neighbourhoods", ("lsoa_code", "neighbourhood_code", "neighbourhood_name"), optional_file=True, key="lsoa_code",
           one_row_per="LSOA", description={
               "lsoa_code": "LSOA code, as the patients file records it; unique",
               "neighbourhood_code": "the local neighbourhood's code; must not be empty",
               "neighbourhood_name": "name (empty: the code is used)"}),
    Source("patients", ("patient_id", "sex", "date_of_birth", "ethnicity", "lsoa_code", "date_of_death"), key="patient_id",
           date_columns=("date_of_birth", "date_of_death"), one_row_per="patient", description={
               "patient_id": "pseudonymised identifier (text); unique, not empty",
               "sex": "F, M, I (indeterminate) or U (unknown); not empty",
               "date_of_birth": "date (first of the month); not empty",
               "ethnicity": "NHS ethnic category code A-H, J-N, P, R, S, Z or 99; may be empty",
               "lsoa_code": "LSOA of residence; may be empty",
               "date_of_death": "date; empty while alive"}),
    Source("registrations", ("patient_id", "practice_code", "registered_from", "registered_to"),
           date_columns=("registered_from", "registered_to"), one_row_per="registration spell", description={
               "patient_id": "a patient in the patients file",
               "practice_code": "a practice in the practices file",
               "registered_from": "date the spell began; not empty",
               "registered_to": "date it ended; empty while registered; not before registered_from"}),
    Source("events", ("patient_id", "code", "date"), date_columns=("date",), optional_columns=("value",),
           one_row_per="coded event", description={
               "patient_id": "a patient in the patients file",
               "code": "SNOMED CT or dm+d concept id (text); not empty",
               "date": "date of the event; not empty",
               "value": "optional column: a plain decimal number (e.g. a blood pressure reading); may be empty"}),
)
SOURCE_BY_STEM = {s.stem: s for s in SOURCES}

SEX_CODES = ("F", "M", "I", "U")
ETHNIC_GROUPS = ("White", "Mixed", "Asian", "Black", "Other", "Unknown")
IMD_QUINTILES = ("1", "2", "3", "4", "5", "Unknown")
SEX_GROUPS = ("F", "M", "Unknown")
AGE_BANDS = tuple(f"{a}-{a + 4}" for a in range(0, 90, 5)) + ("90+",)
PRACTICE_IMD_QUINTILES = IMD_QUINTILES
PRACTICE_IMD_DECILES = tuple(str(d) for d in range(1, 11)) + ("Unknown",)
# practice_imd_*: the practice's national IMD quantile (published data, where counts are per practice)
GROUP_TYPES = ("all", "ethnicity", "imd_quintile", "sex", "age_band", "practice_imd_quintile", "practice_imd_decile")
AREA_TYPES = ("england", "icb", "pcn", "practice", "neighbourhood")   # england: published data only

GROUP_ORDER = {
    "all": ("All",),
    "ethnicity": ETHNIC_GROUPS,
    "imd_quintile": IMD_QUINTILES,
    "sex": SEX_GROUPS,
    "age_band": AGE_BANDS,
    "practice_imd_quintile": PRACTICE_IMD_QUINTILES,
    "practice_imd_decile": PRACTICE_IMD_DECILES,
}


@dataclass(frozen=True)
class OutputTable:
    name: str
    one_row_per: str
    columns: tuple[tuple[str, str], ...]   # (column, meaning), in the table's order
    key: tuple[str, ...] = ()               # the columns that identify a row (unique, never empty)
    open_ended: bool = False                # more columns follow (e.g. the raw values in `rejects`)
    optional: tuple[tuple[str, str], ...] = ()  # columns that follow only with a setting (e.g. overdispersion)
    note: str = ""                          # when the optional columns are there


# the values of comparisons.comparison (each named in its declared meaning below; tests/unit/test_indicators.py)
COMPARISON_KINDS = ("group_vs_reference", "rate_vs_icb", "rate_vs_pcn", "ratio_vs_icb", "ratio_vs_pcn",
                    "rate_vs_england", "ratio_vs_england")

_AREA = (("area_type", "icb, pcn, practice or neighbourhood (and england from published data)"),
         ("area_code", "the area's code"))
_CELL = ("period", "condition", "area_type", "area_code", "group_type", "group_value")
_PAIR_CELL = ("period_from", "period_to", "condition", "area_type", "area_code", "group_type", "group_value")
_GROUP = (("group_type", "all, ethnicity, imd_quintile, sex or age_band (published data: all, practice_imd_quintile, "
                         "practice_imd_decile)"),
          ("group_value", "All; White, Mixed, Asian, Black, Other, Unknown; 1-5 or Unknown; F, M, Unknown; 0-4 ... 90+"))

# The output contract: every table written to data/processed/ (warehouse.duckdb and one Parquet file each).
# docs/outputs.md is generated from this, and the tests compare it with the tables a run writes.
OUTPUT_TABLES: tuple[OutputTable, ...] = (
    OutputTable("prevalence", "period x condition x area x group (rows with population 0 left out)", (
        ("period", "reference date (period end)"), ("condition", "the configuration's condition id"),
        *_AREA[:2], ("area_name", "the area's name"), *_GROUP,
        ("observed", "patients on the register (cases)"), ("population", "registered, alive, at or above min_age"),
        ("rate", "observed / population (a proportion, 0-1)"), ("rate_lower", "Wilson score 95% lower limit"),
        ("rate_upper", "Wilson score 95% upper limit"),
        ("expected", "sum over sex x age-band strata of population x reference rate"),
        ("ratio", "observed / expected (indirectly standardised ratio)"),
        ("ratio_lower", "95% lower limit (exact Poisson below 10 observed, Byar's otherwise)"),
        ("ratio_upper", "95% upper limit"),
        ("missing", "expected - observed: positive = fewer recorded than the dataset's average would give")),
        key=_CELL),
    OutputTable("inequality", "period x condition x area with all five IMD quintiles populated", (
        ("period", "reference date"), ("condition", "condition id"), *_AREA,
        ("dimension", "imd_quintile (published data: practice_imd_quintile, practice_imd_decile)"),
        ("measure", "crude_rate"),
        ("sii", "slope index of inequality (rate at least deprived minus most deprived end of the fitted line)"),
        ("sii_lower", "95% lower limit (100,000 simulations, as PHEindicatormethods phe_sii)"),
        ("sii_upper", "95% upper limit"), ("rii", "relative index of inequality"),
        ("rii_lower", "95% lower limit"), ("rii_upper", "95% upper limit"),
        ("sii_mad", "repeatability: mean absolute difference of the SII limits over 10 reruns (PHE reliability_stat); "
                    "only on the ICB and PCN rows of the latest date that have an interval (quintile breakdowns), empty "
                    "elsewhere"),
        ("rii_mad", "the same for the RII limits"),
        ("reliability", "poor when sii_mad >= 0.0005 or rii_mad >= 0.005 (a rerun could move a printed digit; hidden "
                        "from the packs), else good; empty where sii_mad is")),
        key=("period", "condition", "area_type", "area_code", "dimension", "measure")),
    OutputTable("funnel", "period x condition x practice/PCN/neighbourhood x statistic", (
        ("period", "reference date"), ("condition", "condition id"), *_AREA,
        ("parent_type", "icb (england for ICBs, published data)"), ("parent_code", "the area compared with"),
        ("statistic", "proportion (crude rate) or ratio (observed / expected)"), ("observed", "cases"),
        ("denominator", "population (proportion) or expected (ratio)"), ("value", "the area's rate or ratio"),
        ("parent_value", "the parent's rate (proportion) or its own ratio (ratio)"), ("lower_95", "95% funnel limit at this denominator"),
        ("upper_95", "95% funnel limit"), ("lower_998", "99.8% funnel limit"), ("upper_998", "99.8% funnel limit"),
        ("significance", "High (0.001), High (0.025), Not significant, Low (0.025) or Low (0.001); empty on a ratio "
                         "row whose expected count or parent ratio is 0 (no ratio to judge, as PHE's method gives NA)")),
        key=("period", "condition", "area_type", "area_code", "statistic"), optional=(
        ("od_method", "additive or multiplicative"),
        ("od_phi", "overdispersion factor of the row's funnel (period x condition x parent x area type x statistic): "
                   "the mean squared z-score after 10% winsorisation at each end (docs/methods.md)"),
        ("od_tau2", "between-area variance of the additive model (given with either method; sets the limits only "
                    "with additive)"),
        ("od_lower_95", "95% limit allowing for overdispersion (Spiegelhalter 2005; ratios on the square-root scale)"),
        ("od_upper_95", "95% limit"), ("od_lower_998", "99.8% limit"), ("od_upper_998", "99.8% limit"),
        ("od_significance", "the five labels of `significance`, against the overdispersed limits; empty where the "
                            "row has no value (ratio with expected 0)")),
        note="with `[funnel] overdispersion` set"),
    OutputTable("trend", "pair of periods (consecutive, and first to last) x condition x area x group", (
        ("period_from", "earlier reference date"), ("period_to", "later reference date"), ("condition", "condition id"),
        *_AREA, *_GROUP, ("observed_from", "cases on the earlier date"), ("observed_to", "cases on the later date"),
        ("expected_from", "expected on the earlier date (its own reference rates)"),
        ("expected_to", "expected on the later date on the earlier date's reference rates"),
        ("cases_both", "patients who are a case in the cell on both dates"),
        ("ratio_from", "ratio on the earlier date (first date's reference rates)"),
        ("ratio_to", "ratio on the later date (same reference rates)"), ("change", "ratio_to / ratio_from"),
        ("change_lower", "95% lower limit (allows for the same patients on both dates)"),
        ("change_upper", "95% upper limit"), ("comparator_change", "the dataset's own change on the same rates"),
        ("gap_from", "ratio over the comparator's on the earlier date"), ("gap_to", "the same on the later date"),
        ("gap_change", "gap_to / gap_from"), ("gap_change_lower", "95% lower limit"),
        ("gap_change_upper", "95% upper limit"), ("p_value", "test that the gap narrowed or widened"),
        ("q_value", "Benjamini-Hochberg adjusted over the cells of one area"),
        ("label", "narrowed, widened or no clear change")), key=_PAIR_CELL),
    OutputTable("comparisons", "period x condition x area x group compared with a reference group, or area with its parent", (
        ("period", "reference date"), ("condition", "condition id"), *_AREA,
        ("comparison", "group_vs_reference (a group against the reference group of the same area), rate_vs_icb / "
                       "rate_vs_pcn (the area's `all` row against its parent's crude rate), ratio_vs_icb / "
                       "ratio_vs_pcn (against its parent's standardised ratio); published data: also ICBs by "
                       "rate_vs_england / ratio_vs_england"),
        *_GROUP, ("reference", "the reference group as group_type and value (`ethnicity White`) or the parent as "
                               "area_type and code (`icb QHM`)"),
        ("value", "the crude rate compared (ratio_vs_*: the area's observed / expected)"),
        ("reference_value", "the reference's crude rate (ratio_vs_*: the parent's ratio)"),
        ("rate_ratio", "value / reference_value; group_vs_reference rows only (an area is part of its parent, not an "
                       "independent sample), empty when reference_value is 0"),
        ("rate_ratio_lower", "95% lower limit (log method; empty when either count is 0)"),
        ("rate_ratio_upper", "95% upper limit"),
        ("rate_difference", "value - reference_value; group_vs_reference rows only"),
        ("rate_difference_lower", "95% lower limit (Newcombe's hybrid score method)"),
        ("rate_difference_upper", "95% upper limit"),
        ("label", "higher, similar or lower: group_vs_reference from the rate difference's interval against 0; "
                  "against a parent from the area's own 95% interval (Wilson for the rate, exact/Byar for the "
                  "ratio) against the parent's value; empty on a ratio_vs_* row whose area has no ratio (expected 0), "
                  "as the funnel's significance")),
        key=("period", "condition", "area_type", "area_code", "comparison", "group_type", "group_value", "reference")),
    OutputTable("dsr", "period x condition x area x group", (
        ("period", "reference date"), ("condition", "condition id"), *_AREA, *_GROUP,
        ("observed", "cases"), ("population", "population"),
        ("dsr", "directly standardised rate per 100,000 (2013 European Standard Population)"),
        ("dsr_lower", "95% lower limit (Dobson)"), ("dsr_upper", "95% upper limit (Dobson)"),
        ("standard", "the standard population used"), ("note", "why a value is left out, when it is")), key=_CELL),
    OutputTable("data_quality", "period x area (practice, PCN, ICB)", (
        ("period", "reference date"), ("area_type", "practice, pcn or icb"), ("area_code", "the area's code"),
        ("population", "registered and alive, all ages"), ("ethnicity_not_recorded", "ethnic group Unknown"),
        ("lsoa_missing", "no LSOA recorded"),
        ("lsoa_unmatched", "an LSOA not in the deprivation file (nor bridged by the LSOA lookup)"),
        ("no_neighbourhood", "in no neighbourhood")), key=("period", "area_type", "area_code")),
    OutputTable("load_summary", "input file", (
        ("source", "the file's stem: patients, registrations, events, practices, deprivation, neighbourhoods"),
        ("file", "the file's name"), ("rows_read", "data rows read"), ("rows_loaded", "rows loaded"),
        ("rows_rejected", "rows rejected (rows_read = rows_loaded + rows_rejected)")), key=("source",)),
    OutputTable("rejects", "rejected input row", (
        ("source", "the file's stem"), ("row_number", "1-based data row in its file"),
        ("reason", "plain words: which column, what is wrong (several joined by '; ')")),
        key=("source", "row_number"), open_ended=True),
    OutputTable("trend_transitions", "pair of periods x condition x area x group (the mart behind `trend`)", (
        ("period_from", "earlier reference date"), ("period_to", "later reference date"), ("condition", "condition id"),
        *_AREA, *_GROUP, ("population_both", "patients in the cell on both dates (registered, alive, of age)"),
        ("cases_both", "of them, a case on both dates"), ("cases_from_only", "a case on the earlier date only"),
        ("cases_to_only", "a case on the later date only")), key=_PAIR_CELL),
    OutputTable("trend_expected", "pair of periods x condition x area x group (the mart behind `trend`)", (
        ("period_from", "earlier reference date"), ("period_to", "later reference date"), ("condition", "condition id"),
        *_AREA, *_GROUP, ("expected_from", "expected on the earlier date on its own reference rates"),
        ("expected_to", "expected on the later date on the earlier date's reference rates")), key=_PAIR_CELL),
)
OUTPUT_BY_NAME = {t.name: t for t in OUTPUT_TABLES}


def _by_indicator(name: str, like: str, one_row_per: str, kind: bool = False,
                  meanings: dict[str, str] | None = None) -> OutputTable:
    """An indicator table declared as the register table `like`, keyed by `indicator` (and `kind`) in place of
    `condition`; `meanings` replaces the meaning of columns that differ from the register table's."""
    swap = {"condition": ("indicator", "the configuration's indicator id")}
    swap.update({column: (column, meaning) for column, meaning in (meanings or {}).items()})
    table = OUTPUT_BY_NAME[like]
    columns = []
    for column, meaning in table.columns:
        columns.append(swap.get(column, (column, meaning)))
        if column == "condition" and kind:
            columns.append(("kind", "care_process, outcome or case_finding"))
    key = tuple("indicator" if column == "condition" else column for column in table.key)
    return OutputTable(name, one_row_per, tuple(columns), key=key, optional=table.optional, note=table.note)


OUTPUT_TABLES += (
    _by_indicator("indicators", "prevalence", "period x indicator x area x group (the `prevalence` columns)", kind=True),
    _by_indicator("indicator_funnel", "funnel", "period x indicator x practice/PCN/neighbourhood x statistic"),
    _by_indicator("indicator_trend", "trend", "pair of periods x indicator x area x group"),
    _by_indicator("indicator_inequality", "inequality", "period x indicator x ICB/PCN (latest date)", meanings={
        "sii_mad": "empty: the limits' repeatability is not assessed for indicators (no pack prints their gradient)",
        "rii_mad": "empty, as sii_mad", "reliability": "empty, as sii_mad"}),
)
OUTPUT_BY_NAME = {t.name: t for t in OUTPUT_TABLES}


def output_columns(name: str, optional: bool = False) -> list[str]:
    """The declared columns of an output table, in its order (OUTPUT_TABLES); `optional`: its optional ones too."""
    table = OUTPUT_BY_NAME[name]
    return [column for column, _ in table.columns + (table.optional if optional else ())]


def source_columns(stem: str) -> list[str]:
    """The contract columns of an input file (SOURCES), required then optional."""
    source = SOURCE_BY_STEM[stem]
    return [*source.columns, *source.optional_columns]
