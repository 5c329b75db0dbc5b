"""Published files as published: found flat, in the layout's folders or inside zip archives by member name; member
paths never trusted; a missing file named with where it comes from. The realdata case compares a zip download with
the unpacked layout (skips when ../shared/realdata is absent)."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pandas as pd
import pytest
from conftest import REPO_ROOT

from pipeline.errors import PipelineError
from pipeline.public_inputs import PUBLIC_INPUTS, describe_sources, find_input, missing_message

REAL = REPO_ROOT.parent / "shared" / "realdata"


def test_a_member_is_read_by_its_name_never_its_path(tmp_path):
    dl, tmp = tmp_path / "downloads", tmp_path / "tmp"
    dl.mkdir()
    tmp.mkdir()
    with zipfile.ZipFile(dl / "QOF_2223_raw_data.zip", "w") as z:
        z.writestr("../../escape/PREVALENCE_2223.csv", "PRACTICE_CODE\nA1\n")   # a hostile path
        z.writestr("qof-2223/MAPPING_NHS_GEOGRAPHIES_2223.csv", "PRACTICE_CODE\nA1\n")
        z.writestr("readme.txt", "x")
    got = find_input(dl, "qof", "2022-23", tmp)
    assert got == tmp / "PREVALENCE_2223.csv" and got.read_text() == "PRACTICE_CODE\nA1\n"
    assert not (tmp_path / "escape").exists() and not (dl / "escape").exists()
    assert sorted(p.name for p in tmp.iterdir()) == ["PREVALENCE_2223.csv"]   # nothing else extracted
    assert find_input(dl, "mapping", "2022-23", tmp).name == "MAPPING_NHS_GEOGRAPHIES_2223.csv"
    assert find_input(dl, "imd", "2022-23", tmp) is None


def test_a_plain_file_wins_over_a_zip_and_names_match_case_insensitively(tmp_path):
    (tmp_path / "qof").mkdir()
    (tmp_path / "qof" / "prevalence_2223.CSV").write_text("plain")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("PREVALENCE_2223.csv", "zipped")
    assert find_input(tmp_path, "qof", "2022-23", tmp_path).read_text() == "plain"
    (tmp_path / "fingertips-93553-gp.csv").write_text("x")
    assert find_input(tmp_path, "imd", "2022-23", tmp_path).name == "fingertips-93553-gp.csv"


def test_a_damaged_zip_is_one_sentence(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04not really")
    with pytest.raises(PipelineError, match=r"^broken.zip is not a readable zip archive.$"):
        find_input(tmp_path, "qof", "2022-23", tmp_path)


def test_missing_file_names_publisher_and_publication(tmp_path):
    assert missing_message("qof", "2021-22") == (
        "there is no QOF prevalence file qof/PREVALENCE_2122.csv for 2021-22 in the input directory, nor in a zip "
        "archive there; it comes from NHS England (NHS Digital until 2023), \"Quality and Outcomes Framework, "
        "Achievement, prevalence and exceptions data, 2021-22\" (https://digital.nhs.uk/data-and-information/"
        "publications/statistical/quality-and-outcomes-framework-achievement-prevalence-and-exceptions-data), in the "
        "publication's raw data zip (CSV files).")
    r = subprocess.run([sys.executable, "-m", "pipeline", "public", "--in", str(tmp_path), "--year", "2021-22",
                        "--processed", str(tmp_path / "p"), "--reports", str(tmp_path / "r")],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: " + missing_message("qof", "2021-22")


def test_sources_list_every_input_with_its_vintage():
    text = describe_sources("2024-25")
    for p in PUBLIC_INPUTS:
        assert p.publisher in text and p.url in text
    assert "PREVALENCE_2425.csv" in text and "April 2025" in text
    r = subprocess.run([sys.executable, "-m", "pipeline", "public", "--sources", "--year", "2024-25"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == text


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/realdata is not available")
def test_real_files_zipped_as_downloaded_read_the_same_as_unpacked(tmp_path):
    from pipeline.public import load_inputs

    dl = tmp_path / "downloads"
    dl.mkdir()
    with zipfile.ZipFile(dl / "QOF_2022-23_raw_data_csv.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(REAL / "qof" / "PREVALENCE_2223.csv", "QOF_2223/PREVALENCE_2223.csv")
        z.write(REAL / "mapping" / "MAPPING_NHS_GEOGRAPHIES_2223.csv", "QOF_2223/MAPPING_NHS_GEOGRAPHIES_2223.csv")
    (dl / "IMD_raw.csv").write_bytes((REAL / "practice_imd" / "IMD_raw.csv").read_bytes())
    zipped = load_inputs(dl, "2022-23")
    assert zipped["files"]["registrations"] is None
    layout = tmp_path / "layout"
    for sub, name in (("qof", "PREVALENCE_2223.csv"), ("mapping", "MAPPING_NHS_GEOGRAPHIES_2223.csv"),
                      ("practice_imd", "IMD_raw.csv")):
        (layout / sub).mkdir(parents=True, exist_ok=True)
        (layout / sub / name).write_bytes((REAL / sub / name).read_bytes())
    unpacked = load_inputs(layout, "2022-23")
    for k in ("qof", "mapping", "imd"):
        pd.testing.assert_frame_equal(zipped["adapted"][k].data, unpacked["adapted"][k].data)
    assert not any(p.name.startswith("public-inputs-") for p in tmp_path.iterdir())
