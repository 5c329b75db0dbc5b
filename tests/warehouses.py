"""The two warehouses the report and disclosure tests run on (the conftest fixture `warehouse`, params `patient` and
`published`), each built once per test session with its packs rendered:

    patient     the demo records (30,000 patients, seed 11) through `python -m pipeline run` (every stage)
    published   NHS England's QOF files for two years, written small here in their own formats (24 practices in
                four PCNs and two ICBs), through pipeline/public.py's adapters and the same analyse and report

Neither needs ../shared/realdata, so both always run.

    published_inputs(folder)       write the published files (QOF registers, QOF mapping, Fingertips practice IMD)
    Warehouse.config()             the configuration the run used (what load_inputs and build_pack need)
    Warehouse.connect()            a read-only connection to its warehouse.duckdb
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

PUBLISHED_YEARS = ("2022-23", "2023-24")
# practice -> (PCN, ICB, IMD 2019 score); two ICBs so that England compares them
PUBLISHED_PRACTICES = {f"K{i:04d}": (f"U{i % 4:05d}", "QAA" if i % 4 < 2 else "QBB", 5.0 + 4.0 * i) for i in range(24)}
DEMO_PATIENTS, DEMO_SEED = 30_000, 11


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def published_inputs(folder: Path) -> Path:
    """NHS England's files for two QOF years: registers (depression, 18 and over; atrial fibrillation, all ages)
    more common in more deprived practices, the QOF mapping and Fingertips practice IMD 2019 scores."""
    rng = np.random.default_rng(11)
    for year in PUBLISHED_YEARS:
        yy = year[2:4] + year[5:7]
        qof, mapping = [], []
        for code, (pcn, icb, score) in PUBLISHED_PRACTICES.items():
            size = int(rng.integers(3000, 12000))
            for group, list_type, share, rate in (("DEP", "18OV", 0.8, 0.08), ("AF", "TOTAL", 1.0, 0.02)):
                listed = int(size * share)
                qof.append(dict(PRACTICE_CODE=code, GROUP_CODE=group, REGISTER=f"{rng.binomial(listed, rate * (1 + score / 100))}.0",
                                PATIENT_LIST_TYPE=list_type, PRACTICE_LIST_SIZE=listed))
            mapping.append(dict(PRACTICE_CODE=code, PRACTICE_NAME=f"Practice {code}", PCN_ODS_CODE=pcn,
                                PCN_NAME=f"Network {pcn}", SUB_ICB_ODS_CODE=f"{icb}1", ICB_ODS_CODE=icb,
                                ICB_ONS_CODE=f"E5400{icb[-1]}", ICB_NAME=f"NHS {icb} ICB", REGION_ODS_CODE="Y60",
                                REGION_NAME="Region"))
        _write(folder / "qof" / f"PREVALENCE_{yy}.csv", qof)
        _write(folder / "mapping" / f"MAPPING_NHS_GEOGRAPHIES_{yy}.csv", mapping)
    _write(folder / "practice_imd" / "IMD_raw.csv", [
        dict(IndicatorID=93553, Year=2019, AreaCode=code, AreaName=f"Practice {code}", IsAreaCurrent=1, Value=score)
        for code, (_, _, score) in PUBLISHED_PRACTICES.items()])
    return folder


@dataclass(frozen=True)
class Warehouse:
    """A built warehouse and its rendered packs. `source`: 'patient' or 'published'; `raw`: the patient path's raw
    directory and `today` the day its run took as today (PIPELINE_TODAY; None for published data)."""
    source: str
    processed: Path
    reports: Path
    raw: Path | None = None
    today: date | None = None

    def connect(self):
        import duckdb

        return duckdb.connect(str(self.processed / "warehouse.duckdb"), read_only=True)

    def config(self):
        """The configuration the run used: the default one for patient data; for published data, the one run_public
        derives from the warehouse (public.published_config)."""
        from pipeline.config import load_config
        from pipeline.public import published_config

        if self.source == "patient":
            return load_config()
        con = self.connect()
        try:
            return published_config(con)
        finally:
            con.close()


def build_patient(root: Path) -> Warehouse:
    from conftest import run_cli

    today = date.fromisoformat(os.environ["PIPELINE_TODAY"]) if os.environ.get("PIPELINE_TODAY") else date.today()
    env = {"PIPELINE_TODAY": today.isoformat()}   # dates after it are rejected: the oracle must take the same day
    code, _, err = run_cli("demo-data", "--out", root / "raw", "--patients", DEMO_PATIENTS, "--seed", DEMO_SEED,
                           env=env)
    assert code == 0, err[-3000:]
    code, _, err = run_cli("run", "--raw", root / "raw", "--processed", root / "processed", "--reports",
                           root / "reports", env=env | {"PIPELINE_LOG": "INFO"})
    assert code == 0, err[-3000:]
    (root / "run_stderr.txt").write_text(err)  # what the run logged (not a tty), for test_end_to_end
    return Warehouse("patient", root / "processed", root / "reports", root / "raw", today)


def build_published(root: Path) -> Warehouse:
    from pipeline.public import run_public

    run_public(published_inputs(root / "in"), ",".join(PUBLISHED_YEARS), root / "processed", root / "reports",
               icb="all")
    return Warehouse("published", root / "processed", root / "reports")
