"""England's published files for the aggregate path (`python -m pipeline public`), as their publishers name them.

`PUBLIC_INPUTS` says, per input, who publishes it, the publication, where to download it, the file name (also as a
member of the zip archive it is downloaded in) and the vintage that goes with each QOF year;
`python -m pipeline public --sources --year 2022-23` prints it and docs/public-data.md is generated from it.

`find_input` looks for a file in the input directory (flat, as downloaded, or in the layout's sub-folder) and
then inside every zip archive there, by member name: a member is read by its base name only (its path in the
archive is never used), copied into a temporary folder that the caller owns, and never extracted anywhere else.
A missing required file stops the run with one sentence naming the file and where it comes from.
"""
from __future__ import annotations

import fnmatch
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import PipelineError

MAX_MEMBER_BYTES = 4 << 30          # a member larger than this (uncompressed) is refused: no zip bombs
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ ()-]{0,200}$")

QOF_URL = ("https://digital.nhs.uk/data-and-information/publications/statistical/"
           "quality-and-outcomes-framework-achievement-prevalence-and-exceptions-data")
REGISTERED_URL = ("https://digital.nhs.uk/data-and-information/publications/statistical/"
                  "patients-registered-at-a-gp-practice")


@dataclass(frozen=True)
class PublicInput:
    key: str
    what: str                     # in words, for messages
    folder: str                   # sub-folder of the input directory in the project's layout
    names: tuple[str, ...]        # file names ({yy} = the QOF year's YYZZ), matched case-insensitively
    publisher: str
    publication: str
    url: str
    archive: str                  # the download it comes in
    required: bool
    vintage: str                  # which edition goes with a QOF year ({year}, {start}, {end})


PUBLIC_INPUTS: tuple[PublicInput, ...] = (
    PublicInput("qof", "QOF prevalence file", "qof", ("PREVALENCE_{yy}.csv",), "NHS England (NHS Digital until 2023)",
                "Quality and Outcomes Framework, Achievement, prevalence and exceptions data, {year}",
                QOF_URL, "the publication's raw data zip (CSV files)", True,
                "the QOF year itself: registers and list sizes at 31 March {end}"),
    PublicInput("mapping", "practice mapping", "mapping", ("MAPPING_NHS_GEOGRAPHIES_{yy}.csv",),
                "NHS England (NHS Digital until 2023)",
                "Quality and Outcomes Framework, {year} (mapping of practices to PCN, sub-ICB, ICB, region)",
                QOF_URL, "the same raw data zip as PREVALENCE_{yy}.csv", False,
                "the QOF year's own mapping (geography of {year}); when absent, gp-reg-pat-prac-map.csv below"),
    PublicInput("mapping_gp_reg", "practice mapping (registered patients)", "mapping", ("gp-reg-pat-prac-map.csv",),
                "NHS England", "Patients Registered at a GP Practice (monthly): practice mapping",
                REGISTERED_URL, "gp-reg-pat-prac-map.zip", False,
                "used only when the QOF mapping is absent (as for 2024-25): best the month after the QOF year, April "
                "{end}; ICBs then follow that month's boundaries; a practice closed by then is placed by an earlier "
                "loaded year's QOF mapping or by epraccur"),
    PublicInput("imd", "practice deprivation file", "practice_imd", ("IMD_raw.csv", "*93553*.csv"),
                "Office for Health Improvement and Disparities (OHID)",
                "Fingertips, indicator 93553 \"Deprivation score (IMD 2019)\" for GP practices",
                "https://fingertips.phe.org.uk/search/93553", "a CSV download from Fingertips (long format)", True,
                "IMD 2019 (the rows with Year 2019) for QOF years up to 2023-24; from 2024-25 the IMD 2025 file "
                "below is used instead"),
    PublicInput("imd2025", "practice deprivation file (IMD 2025)", "practice_imd",
                ("fingertips-imd-2025-gp-practice.csv", "*94240*.csv"),
                "Office for Health Improvement and Disparities (OHID)",
                "Fingertips, indicator 94240 \"Deprivation score (IMD 2025)\" for GP practices",
                "https://fingertips.phe.org.uk/search/94240", "a CSV download from Fingertips", False,
                "required for QOF years from 2024-25 (those ending in 2025 or later); IMD 2019 before"),
    PublicInput("epraccur", "ODS practice list (epraccur)", "mapping", ("epraccur.csv",), "NHS England (ODS)",
                "Organisation Data Service: GP practices (epraccur), no header row",
                "https://digital.nhs.uk/services/organisation-data-service/export-data-files/csv-downloads/"
                "gp-and-gp-practice-related-data", "epraccur.zip", False,
                "any recent edition: places a practice that no loaded QOF mapping holds (its sub-ICB's ICB)"),
    PublicInput("registrations", "registered patients by age and sex", "registrations", ("gp-reg-pat-prac-quin-age.csv",),
                "NHS England", "Patients Registered at a GP Practice (monthly): practice x sex x 5-year age band",
                REGISTERED_URL, "gp-reg-pat-prac-quin-age.zip", False,
                "best April {end} (just after the QOF year); any month is accepted as an approximation (model "
                "covariates only)"),
    PublicInput("ethnicity", "practice ethnicity estimate", "census", ("practice_ethnicity.csv",),
                "derived from ONS and NHS England data",
                "Census 2021 TS021 (ethnic group by LSOA 2021) weighted by Patients Registered at a GP Practice by LSOA",
                "https://www.nomisweb.co.uk/sources/census_2021_bulk", "a CSV derived as the blackwellrd/"
                "practice_pcn_ethnicity method does", False,
                "Census 2021 for every QOF year (model covariate only)"),
)
PUBLIC_BY_KEY = {p.key: p for p in PUBLIC_INPUTS}


def _year_words(year: str) -> dict:
    from .adapters import parse_qof_year

    yy, period = parse_qof_year(year)
    return {"yy": yy, "year": f"{period.year - 1}-{str(period.year)[2:]}", "start": period.year - 1, "end": period.year}


def describe_sources(year: str) -> str:
    """Every input of the aggregate path for one QOF year, in words (`public --sources`)."""
    w = _year_words(year)
    out = [f"Published files for QOF {w['year']} (period end {w['end']}-03-31). Put them in the --in directory as "
           f"downloaded (zip archives are read by member name) or in the sub-folder named below."]
    for p in PUBLIC_INPUTS:
        names = " or ".join(n.format(**w) for n in p.names)
        out += ["", f"{p.what} ({'required' if p.required else 'optional'}): {names}",
                f"  publisher:   {p.publisher}",
                f"  publication: {p.publication.format(**w)}",
                f"  download:    {p.url}",
                f"  comes in:    {p.archive.format(**w)}",
                f"  folder:      {p.folder}/ (or the --in directory itself)",
                f"  vintage:     {p.vintage.format(**w)}"]
    return "\n".join(out)


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns)


def find_input(in_dir: Path, key: str, year: str, tmp: Path) -> Path | None:
    """The file for one input: in the input directory or its layout sub-folder, else a member of a zip archive there
    (copied into `tmp`, read by its base name). None when absent; the caller decides whether that stops the run."""
    spec = PUBLIC_BY_KEY[key]
    w = _year_words(year)
    patterns = [n.format(**w) for n in spec.names]
    folders = [in_dir / spec.folder, in_dir]
    for folder in folders:
        if folder.is_dir():
            hits = sorted(p for p in folder.iterdir() if p.is_file() and _matches(p.name, patterns))
            if hits:
                return hits[0]
    zips = []
    for folder in folders + [d for d in sorted(in_dir.iterdir()) if d.is_dir() and d not in folders]:
        if folder.is_dir():
            zips += sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".zip")
    for z in dict.fromkeys(zips):
        got = _from_zip(z, patterns, tmp)
        if got is not None:
            return got
    return None


def _from_zip(archive: Path, patterns: list[str], tmp: Path) -> Path | None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise PipelineError(f"{archive.name} is not a readable zip archive.") from None
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            base = PurePosixPath(info.filename.replace("\\", "/")).name   # the member's path is never used
            if not _matches(base, patterns):
                continue
            if not SAFE_NAME.match(base) or base in (".", ".."):
                raise PipelineError(f"{archive.name} holds a member with an unusable name; extract {patterns[0]} by hand.")
            if info.file_size > MAX_MEMBER_BYTES:
                raise PipelineError(f"{archive.name}: member {base} is larger than {MAX_MEMBER_BYTES >> 30} GiB; "
                                    f"extract it by hand.")
            dest = Path(tmp) / base
            try:
                with zf.open(info) as src, open(dest, "wb") as out:
                    copied = _copy_limited(src, out, MAX_MEMBER_BYTES)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
                raise PipelineError(f"{archive.name}: member {base} could not be read (damaged or encrypted).") from None
            if copied is None:
                raise PipelineError(f"{archive.name}: member {base} is larger than it says; extract it by hand.")
            return dest
    return None


def _copy_limited(src, out, limit: int) -> int | None:
    n = 0
    while True:
        block = src.read(1 << 20)
        if not block:
            return n
        n += len(block)
        if n > limit:
            return None
        out.write(block)


def missing_message(key: str, year: str) -> str:
    spec = PUBLIC_BY_KEY[key]
    w = _year_words(year)
    name = spec.names[0].format(**w)
    return (f"there is no {spec.what} {spec.folder}/{name} for {w['year']} in the input directory, nor in a zip archive "
            f"there; it comes from {spec.publisher}, \"{spec.publication.format(**w)}\" ({spec.url}), in "
            f"{spec.archive.format(**w)}.")

