"""docs/ cannot drift from the code: generated sections are current, and every configuration key is documented."""
from __future__ import annotations

import dataclasses

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
