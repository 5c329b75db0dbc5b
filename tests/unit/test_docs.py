"""docs/ cannot drift from the code: generated sections are current, and every configuration key is documented."""
from __future__ import annotations

import dataclasses
import re

from conftest import REPO_ROOT

from pipeline import docs
from pipeline.config import INPUT_KEYS, Disclosure, Reference
from pipeline.schema import OUTPUT_TABLES, SOURCES


def test_generated_sections_are_current():
    assert docs.stale() == [], "run `make docs` (python -m pipeline.docs)"


def test_every_declared_column_and_key_is_documented():
    text = {p.name: p.read_text(encoding="utf-8") for p in (REPO_ROOT / "docs").glob("*.md")}
    for s in SOURCES:
        for c in s.columns + s.optional_columns:
            assert f"| `{c}` |" in text["input-contract.md"]
    for t in OUTPUT_TABLES:
        assert f"### `{t.name}`" in text["outputs.md"]
    for key, _, _ in INPUT_KEYS:
        assert f"`{key}`" in text["configuration.md"]
    for cls in (Disclosure, Reference):
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in text["configuration.md"], f.name


def test_readme_reaches_every_docs_page_and_nothing_outside():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    index = (REPO_ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    assert "docs/README.md" in readme and "../shared" not in readme
    for page in (REPO_ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


def test_readme_outputs_table_names_exactly_the_declared_tables():
    """The README's table of `data/processed/` outputs names each table of OUTPUT_TABLES once, and no other."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Outputs", 1)[1].split("\n\n`reports/`", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = [name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])]
    assert sorted(named) == sorted(t.name for t in OUTPUT_TABLES)


def test_every_output_table_has_a_key_among_its_columns():
    for t in OUTPUT_TABLES:
        columns = [c for c, _ in t.columns]
        assert t.key and set(t.key) <= set(columns), t.name
        assert len(columns) == len(set(columns)), t.name
