"""The build order of the SQL models is read from the files themselves (transform.model_order)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.paths import SQL_DIR
from pipeline.transform import indicator_models, model_order, references


def test_references_skip_ctes_functions_and_extract():
    sql = """-- from commented_out
    with counted as (select * from stratified_counts join conditions using (condition)),
         extra as (select extract(year from period) as y, 'from quoted' as q from counted)
    select * from extra left join read_parquet('x.parquet') as p on true
    where exists (select 1 from practices as pr where pr.practice_code = extra.q)"""
    assert references(sql) == {"stratified_counts", "conditions", "practices"}


def test_derived_order_covers_every_model_and_is_topological():
    order = model_order()
    files = {f"{layer}/{f.stem}" for layer in ("intermediate", "marts") for f in (SQL_DIR / layer).glob("*.sql")}
    assert set(order) == files and len(order) == len(files)
    position = {Path(m).name: at for at, m in enumerate(order)}
    for at, model in enumerate(order):
        for read in references((SQL_DIR / f"{model}.sql").read_text()):
            if read in position:
                assert position[read] < at, f"{model} is built before {read}, which it reads"
    layers = [m.split("/")[0] for m in order if m not in indicator_models(order)]
    assert layers == sorted(layers, key=("intermediate", "marts").index)  # no mart before an intermediate


def test_indicator_models_are_those_reading_indicator_settings():
    order = model_order()
    assert set(indicator_models(order)) == {m for m in order if Path(m).name.startswith(("int_indicator_", "indicator_"))}


@pytest.fixture()
def sql_copy(tmp_path):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    return tmp_path / "sql"


def test_a_new_model_file_is_picked_up_in_its_place(sql_copy):
    (sql_copy / "marts" / "aaa_summary.sql").write_text("select condition, count(*) as n from prevalence_counts group by 1")
    (sql_copy / "intermediate" / "int_zzz.sql").write_text("select * from practices")
    order = model_order(sql_copy)
    assert order.index("marts/aaa_summary") > order.index("marts/prevalence_counts")
    assert "intermediate/int_zzz" in order


def test_a_circle_stops_with_one_sentence(sql_copy):
    (sql_copy / "marts" / "loop_a.sql").write_text("select * from loop_b")
    (sql_copy / "marts" / "loop_b.sql").write_text("select * from loop_a")
    with pytest.raises(PipelineError, match=r"loop_a, loop_b read one another in a circle"):
        model_order(sql_copy)


def test_an_unknown_table_stops_with_one_sentence(sql_copy):
    (sql_copy / "marts" / "orphan.sql").write_text("select * from no_such_model")
    with pytest.raises(PipelineError, match=r"sql/marts/orphan.sql reads `no_such_model`"):
        model_order(sql_copy)
