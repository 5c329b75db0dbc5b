"""Every path the project uses, in one place (Cookiecutter Data Science habit).

Stages take explicit directories from the command line; these are only the defaults.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
# the SQL models: inside the installed package (the wheel maps the checkout's top-level sql/ to pipeline/sql/), or
# at the top of a checkout
SQL_DIR = PACKAGE_DIR / "sql" if (PACKAGE_DIR / "sql").is_dir() else REPO_ROOT / "sql"
DEFAULT_CONFIG = PACKAGE_DIR / "default.toml"
TEMPLATES_DIR = PACKAGE_DIR / "report" / "templates"

RAW_DIR = REPO_ROOT / "data" / "raw"
PROCESSED_DIR = REPO_ROOT / "data" / "processed"
REPORTS_DIR = REPO_ROOT / "reports"

WAREHOUSE_NAME = "warehouse.duckdb"
LOCK_NAME = ".pipeline.lock"


def warehouse(processed: Path) -> Path:
    return Path(processed) / WAREHOUSE_NAME


def font_dir() -> Path:
    """An open font (DejaVu Sans, shipped inside matplotlib) for charts and PDFs alike."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"
