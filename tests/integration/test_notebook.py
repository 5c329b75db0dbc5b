"""The exploration notebook runs against the marts of a fresh run (so it never rots)."""
from __future__ import annotations

import jupytext
import pytest
from conftest import REPO_ROOT
from nbclient import NotebookClient


@pytest.mark.slow
def test_explore_notebook_executes(patient_warehouse, monkeypatch):
    """On the marts of the session's demo run (conftest `patient_warehouse`; the notebook only reads them)."""
    nb = jupytext.read(REPO_ROOT / "notebooks" / "explore.py")
    monkeypatch.setenv("PIPELINE_PROCESSED", str(patient_warehouse.processed))
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "Black" in text and "depression" in text
