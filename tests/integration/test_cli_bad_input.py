"""A newcomer's real-world mistakes, through the real command line: one sentence naming the file, column or row (or
the configuration key), never a traceback, never a local path, and nothing of the user's lost.

Each case here was found by running the CLI on a broken copy of a demo extract (the audit of 29 Nov 2026, notes in
docs/input-contract.md "When a file is wrong"); before the fix each gave a traceback, a silent wrong result, or
deleted the user's files. Cases already covered elsewhere (test_robustness.py, test_bad_rows.py,
test_input_options.py, test_check.py) are not repeated.
"""
from __future__ import annotations

import datetime as dt
import zipfile

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, run_main, small_raw


def error_line(code: int, out: str, err: str, tmp_path) -> str:
    """The one `error:` line of a stopped command; no traceback and no local path anywhere in its output."""
    assert code == 2, err
    assert "Traceback" not in err, err
    assert str(tmp_path) not in out + err and "/tmp" not in out + err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def ingest(tmp_path, raw, cfg, *more):
    return run_cli("ingest", "--raw", raw, "--processed", tmp_path / "processed", "--config", cfg, *more)


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------------------------------------------
# The output folders: a run must never remove the user's own files

@pytest.mark.parametrize("where, expected", [
    ("raw", "error: --reports is the raw directory; each run rewrites the reports folder, so give it a folder of its "
            "own (e.g. reports)"),
    ("parent", "error: --reports holds the raw directory; each run rewrites the reports folder, so give it a folder "
               "of its own (e.g. reports)"),
])
def test_reports_folder_holding_the_users_files_is_refused_before_any_work(tmp_path, where, expected):
    """The report stage swaps in a new reports folder and removed the old one whole: --reports pointing at the raw
    directory (or a folder above it) deleted it after a successful run."""
    raw, cfg = small_raw(tmp_path)
    reports = {"raw": raw, "parent": tmp_path}[where]
    before = files_under(tmp_path)
    code, out, err = run_cli("run", "--raw", raw, "--processed", tmp_path / "processed", "--reports", reports,
                             "--config", cfg)
    assert error_line(code, out, err, tmp_path) == expected
    assert files_under(tmp_path) == before     # nothing removed, nothing written (not even the processed folder)


def test_demo_data_never_overwrites_a_real_extract(tmp_path):
    """Before: `demo-data --out` pointed at a real extract replaced its patients, registrations and events files."""
    real = tmp_path / "extract"
    real.mkdir()
    (real / "events.parquet").write_bytes(b"the practice's real extract")
    code, out, err = run_cli("demo-data", "--out", real, "--patients", "200")
    assert error_line(code, out, err, tmp_path) == (
        "error: demo-data --out names a folder that already holds an extract (events.parquet) that demo-data did not "
        "write; give it an empty folder (raw data is never overwritten)")
    assert sorted(p.name for p in real.iterdir()) == ["events.parquet"]
    assert (real / "events.parquet").read_bytes() == b"the practice's real extract"
    demo = tmp_path / "demo"
    for _ in range(2):  # an earlier demo extract is replaced
        code, out, err = run_cli("demo-data", "--out", demo, "--patients", "200")
        assert code == 0, err


def test_a_folder_beside_the_reports_named_like_an_old_copy_survives_the_swap(tmp_path):
    """Before: the old reports folder was moved aside as `<reports>.old` and that name removed first, so a user's
    own `reports.old` (last year's packs, kept by hand) was deleted by the next run."""
    from pipeline.lock import atomic_replace_dir

    (tmp_path / "reports.old").mkdir()
    (tmp_path / "reports.old" / "last_year.pdf").write_text("kept by hand")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "README.txt").write_text("old run")
    for run in ("first", "second"):
        new = tmp_path / f".new-{run}"
        new.mkdir()
        (new / "README.txt").write_text(run)
        atomic_replace_dir(new, tmp_path / "reports", replaced={"README.txt"})
    assert (tmp_path / "reports" / "README.txt").read_text() == "second"
    assert (tmp_path / "reports.old" / "last_year.pdf").read_text() == "kept by hand"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports", "reports.old"]


def test_users_own_files_in_the_reports_folder_survive_the_run(tmp_path):
    """A reports folder holding the user's own files (notes, a folder of theirs): the run replaces its packs and
    README.txt and carries everything else over untouched (before: the whole folder was removed with them)."""
    raw, cfg = small_raw(tmp_path)
    reports = tmp_path / "mine"
    (reports / "drafts").mkdir(parents=True)
    (reports / "notes.txt").write_text("my notes")
    (reports / "drafts" / "letter.md").write_text("dear PCN")
    (reports / "pcn").mkdir()
    (reports / "pcn" / "stale.pdf").write_text("a previous run's pack")
    for _ in range(2):
        code, out, err = run_cli("run", "--raw", raw, "--processed", tmp_path / "processed", "--reports", reports,
                                 "--config", cfg)
        assert code == 0, err[-2000:]
    assert (reports / "notes.txt").read_text() == "my notes"
    assert (reports / "drafts" / "letter.md").read_text() == "dear PCN"
    assert not (reports / "pcn" / "stale.pdf").exists() and list((reports / "pcn").glob("*.pdf"))
    assert (reports / "README.txt").exists()


def test_processed_folder_that_is_the_raw_directory_is_refused(tmp_path):
    """Before: a traceback (shutil.SameFileError copying boundaries.geojson onto itself) with the full path, after
    a lock file had been written into the raw directory."""
    raw, cfg = small_raw(tmp_path)
    (raw / "boundaries.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    before = files_under(raw)
    code, out, err = run_cli("run", "--raw", raw, "--processed", raw, "--reports", tmp_path / "reports", "--config", cfg)
    assert error_line(code, out, err, tmp_path) == ("error: --processed is the raw directory; give the processed "
                                                    "outputs a folder of their own (e.g. data/processed)")
    assert files_under(raw) == before


@pytest.mark.parametrize("option", ["--processed", "--reports"])
def test_output_folder_under_a_file_gives_one_sentence(tmp_path, option):
    """Before: NotADirectoryError / FileExistsError tracebacks naming the full path."""
    raw, cfg = small_raw(tmp_path)
    (tmp_path / "afile").write_text("x")
    folders = {"--processed": tmp_path / "processed", "--reports": tmp_path / "reports"}
    folders[option] = tmp_path / "afile" / "out"
    stage = "ingest" if option == "--processed" else "run"   # run: the data stages, then the report stage
    code, out, err = run_cli(stage, "--raw", raw, "--processed", folders["--processed"], "--reports",
                             folders["--reports"], "--config", cfg)
    what = option.strip("-")
    assert error_line(code, out, err, tmp_path) == (f"error: the {what} directory cannot be created or written (a file "
                                                    f"is in the way: the folder or one above it is a file)")


def test_damaged_warehouse_gives_one_sentence(tmp_path):
    raw, cfg = small_raw(tmp_path)
    (tmp_path / "processed").mkdir()
    (tmp_path / "processed" / "warehouse.duckdb").write_bytes(b"not a database" * 500)
    expected = ("error: the warehouse in the processed directory cannot be opened (it is not a DuckDB database file: "
                "damaged, or written by another program); run the ingest stage again to rebuild it")
    for stage in ("transform", "report"):
        code, out, err = run_cli(stage, "--raw", raw, "--processed", tmp_path / "processed", "--reports",
                                 tmp_path / "reports", "--config", cfg)
        assert error_line(code, out, err, tmp_path) == expected
    assert files_under(tmp_path / "processed") == [".pipeline.lock", "warehouse.duckdb"]   # no stray copy left


# ---------------------------------------------------------------------------------------------------------------
# Files of the extract that are not what their names say

def _parquet_events(raw, n=3000, **columns):
    """events.csv replaced by events.parquet with `n` rows for the small extract's patients (zstd, as most writers)."""
    table = {"patient_id": [f"p{i % 60:03d}" for i in range(n)], "code": ["111"] * n, "date": ["2020-05-01"] * n}
    table.update(columns)
    (raw / "events.csv").unlink()
    pq.write_table(pa.table(table), raw / "events.parquet", compression="zstd")
    return raw / "events.parquet"


def _damage_pages(path):
    """Overwrite the compressed data of the first column chunk, leaving the footer (the schema) readable."""
    chunk = pq.read_metadata(path).row_group(0).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start + 12: start + chunk.total_compressed_size - 2] = b"\xaa" * (chunk.total_compressed_size - 14)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fault, expected", [
    ("xlsx", "error: practices.csv is an Excel workbook (or another zip archive), not CSV text; save it from Excel as "
             "\"CSV UTF-8 (Comma delimited)\""),
    ("utf16", "error: practices.csv is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8, or "
              "declare encoding = \"utf-16\" under [input] in the configuration"),
    ("folder", "error: events.parquet is a folder, not a file (a Parquet dataset, as Spark writes one, is a folder): "
               "give the table as one .csv or .parquet file"),
    ("damaged_pages", "error: events.parquet could not be read as Parquet: it is truncated or damaged; export the "
                      "table again"),
    ("zero_byte_parquet", "error: events.parquet is empty (0 bytes)"),
    ("codelist_unquoted_comma", "error: codelist codelists/dep.csv row 2 has 3 fields, expected 2; put a value that "
                                "holds a comma in double quotes"),
    ("codelist_decimal", "error: codelist codelists/dep.csv row 1: code `111.0` is written as a spreadsheet writes a "
                         "number (SNOMED CT and dm+d ids are whole numbers written in full); download the codelist "
                         "again and save it without opening it in a spreadsheet"),
    ("codelist_scientific", "error: codelist codelists/dep.csv row 1: code `3.5489E+7` is written as a spreadsheet "
                            "writes a number (SNOMED CT and dm+d ids are whole numbers written in full); download the "
                            "codelist again and save it without opening it in a spreadsheet"),
    ("codelist_zero_bytes", "error: codelist codelists/dep.csv is empty (no header row)"),
])
def test_files_that_are_not_what_their_names_say(tmp_path, fault, expected):
    """Before: the workbook and UTF-16 text were 'not UTF-8 text (line 1)'; a Parquet dataset folder, damaged
    Parquet pages and a codelist row with an unquoted comma ended in tracebacks (the first two with the full path);
    a 0-byte Parquet file 'looked like text'; codelist codes as a spreadsheet writes numbers matched no event, so
    the condition had no cases and nothing said why."""
    raw, cfg = small_raw(tmp_path)
    practices = raw / "practices.csv"
    if fault == "xlsx":
        with zipfile.ZipFile(practices, "w") as book:
            book.writestr("xl/workbook.xml", "<workbook/>")
    elif fault == "utf16":
        practices.write_bytes(practices.read_text().encode("utf-16"))
    elif fault == "folder":
        (raw / "events.csv").unlink()
        (raw / "events.parquet").mkdir()
        pq.write_table(pa.table({"patient_id": ["p001"], "code": ["111"], "date": ["2020-05-01"]}),
                       raw / "events.parquet" / "part-0000.parquet")
    elif fault == "damaged_pages":
        _damage_pages(_parquet_events(raw))
    elif fault == "zero_byte_parquet":
        (raw / "events.csv").unlink()
        (raw / "events.parquet").write_bytes(b"")
    elif fault == "codelist_unquoted_comma":
        (raw / "codelists" / "dep.csv").write_text("code,term\n111,Depression\n222,Depression, recurrent\n")
    elif fault == "codelist_decimal":
        (raw / "codelists" / "dep.csv").write_text("code,term\n111.0,Depression\n")
    elif fault == "codelist_scientific":
        (raw / "codelists" / "dep.csv").write_text("code,term\n3.5489E+7,Depression\n")
    elif fault == "codelist_zero_bytes":
        (raw / "codelists" / "dep.csv").write_bytes(b"")
    code, out, err = ingest(tmp_path, raw, cfg)
    assert error_line(code, out, err, tmp_path) == expected
    # the pre-flight check names the same problem in its verdict
    code, out, err = run_cli("check", "--raw", raw, "--config", cfg)
    assert code == 1 and "Traceback" not in err, err
    assert out.strip().splitlines()[-1].startswith("verdict: NOT READY: the run would stop: " + expected[len("error: "):])


def _loaded(tmp_path) -> tuple:
    with duckdb.connect(str(tmp_path / "processed" / "warehouse.duckdb"), read_only=True) as con:
        return (con.execute("select source, rows_read, rows_loaded, rows_rejected from load_summary where source in "
                            "('patients', 'registrations', 'events') order by source").fetchall(),
                con.execute("select count(*) from rejects").fetchone()[0])


def test_parquet_that_loads_as_it_should(tmp_path):
    """Typed Parquet a real export writes: time-zoned timestamps (every row was rejected as 'not a valid date'), a
    column name holding a double quote (a traceback) and an extra nested column the contract does not know (the run
    stopped; like any unknown column it is now ignored). All load, with the same dates as the CSV."""
    raw, cfg = small_raw(tmp_path)
    london = pa.timestamp("ms", tz="Europe/London")

    def local_midnights(day: str, n: int) -> pa.Array:   # stored as UTC: 2020-05-01 00:00 BST is 2020-04-30 23:00Z
        return pa.array([pd.Timestamp(day, tz="Europe/London")] * n, london)

    regs = pa.table({"patient_id": [f"p{i:03d}" for i in range(60)], "practice_code": [f"A{i % 3}" for i in range(60)],
                     "registered_from": local_midnights("2000-06-01", 60), "registered_to": pa.nulls(60, london),
                     'note "a"': ["x"] * 60, "flags": pa.array([[1, 2]] * 60, pa.list_(pa.int32()))})
    pq.write_table(regs, raw / "registrations.parquet")
    (raw / "registrations.csv").unlink()
    n = 3000
    _parquet_events(raw, n, date=local_midnights("2020-05-01", n))
    code, out, err = ingest(tmp_path, raw, cfg)
    assert code == 0, err
    assert _loaded(tmp_path) == ([("events", n, n, 0), ("patients", 60, 60, 0), ("registrations", 60, 60, 0)], 0)
    with duckdb.connect(str(tmp_path / "processed" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select distinct registered_from from registrations").fetchall() == [(dt.date(2000, 6, 1),)]
        assert con.execute("select distinct date from events").fetchall() == [(dt.date(2020, 5, 1),)]
    code, out, err = run_cli("check", "--raw", raw, "--config", cfg)
    assert code == 0 and out.strip().splitlines()[-1] == "verdict: ready to run", out + err


def test_check_on_a_tab_delimited_file_names_the_column(tmp_path):
    """Before: check ended in a DuckDB parser traceback (the one-column header holds double quotes)."""
    raw, cfg = small_raw(tmp_path)
    regs = raw / "registrations.csv"
    lines = regs.read_text().splitlines()
    regs.write_text("\n".join(['"' + lines[0].replace(",", '"\t"') + '"'] + [ln.replace(",", "\t") for ln in lines[1:]]))
    code, out, err = run_cli("check", "--raw", raw, "--config", cfg)
    assert code == 1 and "Traceback" not in err, err
    assert "  PROBLEM: registrations.csv is missing the required column `patient_id`" in out.splitlines()


# ---------------------------------------------------------------------------------------------------------------
# The configuration

CONDITION = '[[conditions]]\nid = "dep"\nlabel = "Depression"\ncodelist = "codelists/dep.csv"\nmin_age = 18\n'
PERIODS = 'periods = ["2024-03-31", "2025-03-31"]\n'


@pytest.mark.parametrize("text, expected", [
    (PERIODS + '[conditions]\nid = "dep"\ncodelist = "codelists/dep.csv"\n',
     "`conditions` must be written as [[conditions]] tables, one per entry"),
    (PERIODS + CONDITION + '[indicators]\nid = "x"\n', "`indicators` must be written as [[indicators]] tables, one per entry"),
    (PERIODS + CONDITION.replace("min_age", "min_agee"),
     "condition dep has an unknown key `min_agee` (known: id, label, codelist, resolved_codelist, min_age)"),
    (PERIODS + CONDITION + '[disclosre]\nthreshold = 10\n',
     "the top level has an unknown key `disclosre` (known: periods, conditions, indicators, disclosure, report, "
     "reference, input, funnel, engine)"),
    (PERIODS + CONDITION.replace("min_age = 18", "min_age = -5"), "condition dep: min_age must be from 0 to 150"),
    (PERIODS + CONDITION.replace("min_age = 18", "min_age = 18.5"), "condition dep: min_age must be a whole number"),
    (PERIODS + CONDITION + '[disclosure]\nthreshold = "seven"\n', "[disclosure]: threshold must be a whole number"),
    (PERIODS + CONDITION + '[disclosure]\nthreshold = -1\n',
     "[disclosure]: threshold and community_threshold must be 0 or more, rounding 1 or more"),
    (PERIODS + CONDITION + '[disclosure]\nrounding = 0\n',
     "[disclosure]: threshold and community_threshold must be 0 or more, rounding 1 or more"),
    (PERIODS + CONDITION + '[report]\nmax_headlines = "five"\n', "[report]: max_headlines must be a whole number"),
    (PERIODS + CONDITION + '[engine]\nmemory_limit = "lots"\n',
     "engine.memory_limit must be a memory size such as \"6GB\" or \"500MB\", not 'lots'"),
    (PERIODS + CONDITION + '[report]\nreference_groups = "White"\n',
     "[report]: reference_groups must be a table, e.g. reference_groups = { ethnicity = \"White\" }"),
    (PERIODS + CONDITION + '[report]\nreference_groups = { ethnic = "White" }\n',
     "[report]: reference_groups has `ethnic`, which is no group type (ethnicity, imd_quintile, sex, age_band, "
     "practice_imd_quintile, practice_imd_decile)"),
    (PERIODS + CONDITION + '[report]\nreference_groups = { ethnicity = "Whte" }\n',
     "[report]: reference_groups.ethnicity must be one of White, Mixed, Asian, Black, Other, Unknown, not 'Whte'"),
    (PERIODS + CONDITION + '[engine]\nthreads = 99999999999999999\n', "engine.threads must be a whole number from 1 to 4096"),
    (PERIODS + CONDITION + '[engine]\nthreads = true\n', "engine.threads must be a whole number from 1 to 4096"),
    (PERIODS + CONDITION + '[engine]\ntemp_directory = true\n',
     "engine.temp_directory must be text (a folder, path or URL in quotes), not True"),
    (PERIODS + CONDITION + '[reference]\nextra_strata = "imd_quintile"\n',
     "reference.extra_strata must be a list, e.g. [\"imd_quintile\"]"),
    (PERIODS + CONDITION + '[engine]\nmemory_limit = "6000"\n',
     "engine.memory_limit must be a memory size such as \"6GB\" or \"500MB\", not '6000'"),
    (PERIODS + CONDITION + '[input]\ncolumns = "DOB"\n',
     "input.columns must be written as tables, one per file (e.g. [input.columns.patients])"),
    ('periods = "2025-03-31"\n' + CONDITION, "`periods` must be a list of dates, e.g. [\"2024-03-31\", \"2025-03-31\"]"),
    (PERIODS + CONDITION.replace("codelists/dep.csv", "{tmp}/codelists/dep.csv"),
     "condition dep: codelist must be a path inside the raw directory, relative to it (e.g. "
     "\"codelists/depression.csv\"), not an absolute path or one that leaves it"),
    (PERIODS + CONDITION.replace("codelists/dep.csv", "../dep.csv"),
     "condition dep: codelist must be a path inside the raw directory, relative to it (e.g. "
     "\"codelists/depression.csv\"), not an absolute path or one that leaves it"),
])
def test_configuration_slips_stop_with_one_sentence(tmp_path, text, expected):
    """Before: tracebacks (a table where [[ ]] was meant, text where a number was meant, a memory size DuckDB cannot
    read), or silence: an unknown key was ignored (a misspelt min_age left the condition at age 0, a misspelt
    [disclosure] left the default threshold), a negative threshold turned suppression off, an absolute codelist path
    was read from outside the raw directory and named, with the user's folders, in errors and in check's report."""
    raw, _ = small_raw(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text.replace("{tmp}", str(raw)))
    code, out, err = ingest(tmp_path, raw, cfg)
    assert error_line(code, out, err, tmp_path) == f"error: configuration file c.toml: {expected}"


def test_report_key_the_packs_do_not_read_is_named_and_ignored(tmp_path):
    """Before: ignored in silence (the default configuration itself carried `icb_comparator`, which nothing read)."""
    raw, _ = small_raw(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(PERIODS + CONDITION + '[report]\nmax_headline = 3\n')
    code, out, err = ingest(tmp_path, raw, cfg)
    assert code == 0, err
    assert ("configuration file c.toml: [report] key `max_headline` is not one the packs read (max_headlines, "
            "max_system_gaps, workers, reference_groups); ignored") in err


def test_spill_folder_that_cannot_be_created_stops_with_one_sentence(tmp_path):
    """Before: DuckDB's IOException, as a traceback naming the folder's path, when it first had to spill."""
    raw, _ = small_raw(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    cfg = tmp_path / "c.toml"
    cfg.write_text(PERIODS + CONDITION + f'[engine]\ntemp_directory = "{tmp_path / "a_file" / "spill"}"\n')
    code, out, err = ingest(tmp_path, raw, cfg)
    assert error_line(code, out, err, tmp_path) == (
        "error: the folder DuckDB spills to ([engine] temp_directory) cannot be created (Not a directory); name a "
        "folder that can be written")
    assert not (tmp_path / "processed" / "warehouse.duckdb").exists()


def test_memory_limit_too_small_stops_with_one_sentence(tmp_path):
    """Before: DuckDB's OutOfMemoryException, as a traceback."""
    raw, _ = small_raw(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(PERIODS + CONDITION + '[engine]\nmemory_limit = "1KB"\n')
    code, out, err = ingest(tmp_path, raw, cfg)
    assert error_line(code, out, err, tmp_path) == (
        "error: DuckDB ran out of memory within its limit (1KB) even when spilling to disk; raise [engine] memory_limit "
        "in the configuration, or free space where it spills ([engine] temp_directory); the previous outputs are left "
        "as they were")
    assert not (tmp_path / "processed" / "warehouse.duckdb").exists()


@pytest.mark.parametrize("fault, expected", [
    ("folder", "error: configuration file c.toml is a folder, not a file"),
    ("cp1252", "error: configuration file c.toml is not UTF-8 text (first bad byte on line 4); save it as UTF-8"),
])
def test_configuration_file_that_cannot_be_read(tmp_path, fault, expected):
    raw, _ = small_raw(tmp_path)
    cfg = tmp_path / "c.toml"
    if fault == "folder":
        cfg.mkdir()
    else:
        cfg.write_bytes((PERIODS + CONDITION.replace("Depression", "Dépression")).encode("cp1252"))
    code, out, err = ingest(tmp_path, raw, cfg)
    assert error_line(code, out, err, tmp_path) == expected


def test_check_reads_the_indicator_codelists_and_reference_rates_the_run_reads(tmp_path):
    """Before: check said 'ready to run' and the run then stopped on the missing file."""
    raw, _ = small_raw(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(PERIODS + CONDITION + '[[indicators]]\nid = "review"\nkind = "care_process"\ndenominator = "dep"\n'
                   'codelist = "codelists/review.csv"\n[reference]\nrates = "rates.csv"\n')
    code, out, err = run_cli("check", "--raw", raw, "--config", cfg)
    assert code == 1 and "Traceback" not in err, err
    lines = out.strip().splitlines()
    assert "  PROBLEM: codelist codelists/review.csv (indicator review) is missing from the raw directory" in lines
    assert "  PROBLEM: reference rates file rates.csv is missing from the raw directory" in lines
    assert lines[-1] == ("verdict: NOT READY: the run would stop: codelist codelists/review.csv (indicator review) is "
                         "missing from the raw directory (2 problems in all, listed above)")


@pytest.mark.parametrize("change, expected", [
    (lambda text: text.replace('"2024-03-31"', '"2023-03-31"'),
     "the warehouse's counts are for the periods 2024-03-31, 2025-03-31, but the configuration gives 2023-03-31, "
     "2025-03-31"),
    (lambda text: text + '\n[[conditions]]\nid = "dep2"\ncodelist = "codelists/dep.csv"\n',
     "the warehouse's counts have no condition dep2"),
    (lambda text: text.replace("min_age = 18", "min_age = 40"),
     "the warehouse's counts for condition dep are for min_age 18, but the configuration gives 40"),
])
def test_analyse_and_report_refuse_counts_built_for_another_configuration(tmp_path, change, expected):
    """Before: analyse and report ran on the counts the transform stage had built for the old configuration and
    said nothing: the packs showed other periods (or lacked a condition) than the configuration asked for."""
    raw, cfg = small_raw(tmp_path)
    args = ["--raw", raw, "--processed", tmp_path / "processed", "--reports", tmp_path / "reports"]
    assert run_main("run", *args, "--config", cfg)[0] == 0
    changed = tmp_path / "changed.toml"
    changed.write_text(change(cfg.read_text()))
    for stage, again in (("analyse", "transform stage"), ("report", "transform and analyse stages")):
        code, out, err = run_cli(stage, *args, "--config", changed)
        assert error_line(code, out, err, tmp_path) == f"error: {expected}; run the {again} with this configuration"


def test_iso_dates_with_a_t_before_the_time_load(tmp_path):
    """ISO 8601 date-times (`2020-05-01T10:30:00`, as JSON and many exporters write them) were all rejected as 'not
    a valid date (expected YYYY-MM-DD)' while `2020-05-01 10:30:00` loaded."""
    raw, cfg = small_raw(tmp_path)
    events = raw / "events.csv"
    events.write_text(events.read_text().replace(",2020-05-01", ",2020-05-01T10:30:00"))
    assert "T10:30:00" in events.read_text()
    code, out, err = ingest(tmp_path, raw, cfg)
    assert code == 0, err
    with duckdb.connect(str(tmp_path / "processed" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select rows_read, rows_loaded from load_summary where source = 'events'").fetchone() == (20, 20)
        assert con.execute("select distinct date from events").fetchall() == [(dt.date(2020, 5, 1),)]


def test_raw_option_naming_a_file_says_so(tmp_path):
    """Before: 'the raw directory does not exist' for a file that plainly exists (a user gave one of its files)."""
    raw, cfg = small_raw(tmp_path)
    expected = ("error: --raw names the file patients.csv, not a folder; give the folder that holds the extract's "
                "files")
    code, out, err = ingest(tmp_path, raw / "patients.csv", cfg)
    assert error_line(code, out, err, tmp_path) == expected
    code, out, err = run_cli("check", "--raw", raw / "patients.csv", "--config", cfg)
    assert error_line(code, out, err, tmp_path) == expected


def test_guard_names_a_word_written_for_missing_dates(tmp_path):
    """A SQL Server export writes NULL where a date is missing: every row was rejected as 'not a valid date' and the
    sentence did not say why (the contract's missing value is an empty field)."""
    raw, cfg = small_raw(tmp_path)
    patients = raw / "patients.csv"
    lines = patients.read_text().splitlines()
    patients.write_text("\n".join(lines[:1] + [line + "NULL" for line in lines[1:]]) + "\n")
    code, out, err = ingest(tmp_path, raw, cfg)
    assert error_line(code, out, err, tmp_path) == (
        "error: patients.csv lost 100% of its rows (60 of 60), more than the 5% allowed (input.max_reject_share), so "
        "the run stopped after ingest; the commonest reason is \"date_of_death is not a valid date (expected "
        "YYYY-MM-DD)\" (60 rows, e.g. row 1); 60 of them hold the text NULL where the value is missing: write a "
        "missing value as an empty field; run `python -m pipeline check --raw <raw directory>` for the full picture "
        "(rejects and load_summary are in the warehouse)")


def test_a_period_after_the_day_of_the_run_is_named_in_the_log(tmp_path, caplog):
    """A reference date after the day of the run loaded silently on both engines (the same tables): its counts are
    today's registers aged on to that date, which a reader would take for a measurement. The run goes on (a plan may
    want them), with one warning naming the period."""
    raw, cfg = small_raw(tmp_path)
    cfg.write_text(cfg.read_text().replace('"2025-03-31"', '"2027-03-31"'))
    with caplog.at_level("WARNING", logger="pipeline"):
        code, _, err = run_main("ingest", "--raw", raw, "--processed", tmp_path / "processed", "--config", cfg,
                                env={"PIPELINE_TODAY": "2026-11-29"})
    assert code == 0, err
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "the period 2027-03-31 is after the day of the run (2026-11-29): its counts are today's registers and codes, "
        "the patients aged on to that date, not a measurement"]
