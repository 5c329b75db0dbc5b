"""Progress lines (terminal vs logs), the [engine] configuration, and the DuckDB memory settings."""
from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import pytest
from conftest import write_config

from pipeline import progress
from pipeline.config import Engine, load_config
from pipeline.errors import PipelineError


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_live_line_with_rows_and_seconds(caplog):
    out = FakeTty()
    with caplog.at_level(logging.INFO, logger="pipeline"):
        with progress.StageProgress("ingest", stream=out, interval=0.01) as p:
            p.update("events", rows=1_234_567)
            time.sleep(0.1)
    text = out.getvalue()
    assert "ingest events: 1,234,567 rows" in text and "\r" in text
    assert text.endswith("\r\033[K")  # the live line is wiped at the end
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline"]
    assert lines == [lines[0]] and lines[0].startswith("ingest: 1,234,567 rows in ")


def test_logs_get_one_line_per_stage_and_nothing_while_it_runs(caplog):
    out = io.StringIO()  # not a terminal: a log file, CI, the test suite
    with caplog.at_level(logging.INFO, logger="pipeline"):
        with progress.StageProgress("transform", stream=out, interval=0.01) as p:
            for i in range(3):
                p.update(f"model{i}", rows=10)
            time.sleep(0.05)
    assert out.getvalue() == ""
    assert [r.getMessage().split(" in ")[0] for r in caplog.records if r.name == "pipeline"] == ["transform: 30 rows"]


def test_a_failed_stage_logs_no_completion_line(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline"):
        with pytest.raises(RuntimeError):
            with progress.StageProgress("analyse", stream=io.StringIO()):
                raise RuntimeError("boom")
    assert not [r for r in caplog.records if r.name == "pipeline"]


def test_update_without_a_stage_is_harmless():
    progress.current().update("x", rows=5)


def _cfg(tmp_path, extra: str):
    p = write_config(tmp_path / "c.toml", ["2024-03-31"], [{"id": "dep", "codelist": "codelists/dep.csv"}])
    p.write_text(p.read_text() + "\n" + extra, encoding="utf-8")
    return p


def test_engine_section_defaults_and_values(tmp_path):
    assert load_config(_cfg(tmp_path, "")).engine == Engine()
    e = load_config(_cfg(tmp_path, '[engine]\nmemory_limit = "2GB"\nthreads = 2\nspark_master = "spark://head:7077"\n'
                                   'spark_storage = "hdfs:///tmp/x"\n[engine.spark_conf]\n"spark.executor.memory" = "8g"\n')).engine
    assert (e.memory_limit, e.threads, e.spark_master, e.spark_storage) == ("2GB", 2, "spark://head:7077", "hdfs:///tmp/x")
    assert e.spark_conf == (("spark.executor.memory", "8g"),)


@pytest.mark.parametrize("extra, words", [
    ('[engine]\nspark_mastr = "x"\n', "unknown key `spark_mastr`"),
    ("[engine]\nthreads = 0\n", "engine.threads"),
    ('[engine]\nspark_conf = "x"\n', "engine.spark_conf"),
])
def test_engine_section_mistakes_stop_with_one_sentence(tmp_path, extra, words):
    with pytest.raises(PipelineError, match=words.replace("`", ".").replace(".", ".")):
        load_config(_cfg(tmp_path, extra))


@pytest.mark.parametrize("text, expected", [("6GB", 6 * 10**9), ("1.5 gb", 15 * 10**8), ("500MB", 5 * 10**8),
                                            ("2GiB", 2 * 2**30), ("6G", 6 * 10**9), ("4000000000B", 4 * 10**9)])
def test_memory_limit_in_bytes_as_duckdb_reads_it(text, expected):
    from pipeline.warehouse import connect

    assert Engine(memory_limit=text).memory_bytes == expected
    con = connect(settings=Engine(memory_limit=text))  # DuckDB takes every form the configuration takes
    con.execute("set memory_limit = ?", [f"{expected}B"])
    assert con.execute("select current_setting('memory_limit')").fetchone()[0] == \
        connect(settings=Engine(memory_limit=text)).execute("select current_setting('memory_limit')").fetchone()[0]


def test_duckdb_connection_gets_the_memory_limit(tmp_path):
    from pipeline.warehouse import connect, staged

    con = connect(settings=Engine(memory_limit="1GB", threads=1))
    assert con.execute("select current_setting('memory_limit')").fetchone()[0] in ("1.0 GiB", "953.6 MiB", "1.0 GB")
    assert con.execute("select current_setting('threads')").fetchone()[0] == 1
    con.close()
    with staged(tmp_path, fresh=True, exported=(), settings=Engine(memory_limit="1GB")) as c:
        spill = c.execute("select current_setting('temp_directory')").fetchone()[0]
        assert spill.endswith(".duckdb_spill")
    assert not (tmp_path / ".duckdb_spill").exists()  # the spill folder is removed with the run


def test_configured_spill_folder_and_its_files_are_never_removed(tmp_path):
    """Before: the configured temp_directory itself was the spill folder and was removed after each stage, with
    whatever the user kept in it (temp_directory = "/scratch" would have emptied /scratch)."""
    from pipeline.warehouse import staged

    shared = tmp_path / "scratch"
    shared.mkdir()
    (shared / "thesis.txt").write_text("keep me")
    with staged(tmp_path / "processed", fresh=True, exported=(), settings=Engine(temp_directory=str(shared))) as c:
        spill = Path(c.execute("select current_setting('temp_directory')").fetchone()[0])
        assert spill.parent == shared and spill.name.startswith("pipeline-spill-")
        assert spill.is_dir()  # made when the stage starts
        (spill / "block.tmp").write_text("spilled")
    assert (shared / "thesis.txt").read_text() == "keep me"
    assert sorted(p.name for p in shared.iterdir()) == ["thesis.txt"]  # only the run's own folder is gone


def test_spark_storage_cleanup_removes_only_the_pipelines_own_stale_folders(tmp_path):
    """The Spark storage may be a shared folder: only folders named as the engine names them (`ingest-` or
    `transform-` and 12 hex digits) and not in use are removed (before: any `ingest-*` or `transform-*` folder)."""
    from pipeline.spark_engine import remove_stale_versions

    for name in ("ingest-0123456789ab", "transform-ba9876543210", "ingest-aaaaaaaaaaaa", "ingest-2024", "transform-notes"):
        (tmp_path / name).mkdir()
    remove_stale_versions(None, str(tmp_path), keep={"ingest-aaaaaaaaaaaa"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ingest-2024", "ingest-aaaaaaaaaaaa", "transform-notes"]
