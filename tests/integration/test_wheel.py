"""The wheel carries everything an installed pipeline needs: every module (adapters included), every SQL file of
the top-level sql/ (as pipeline/sql/), every report template and the default configuration. Builds the wheel with
uv (as `make install` gets it); installs nothing."""
from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest
from conftest import REPO_ROOT


def _uv() -> str:
    found = shutil.which("uv") or (REPO_ROOT / ".tools" / "bin" / "uv")
    if not found or not shutil.which(str(found)):
        pytest.skip("uv is not installed (make install puts it in .tools/)")
    return str(found)


def test_wheel_ships_every_module_sql_file_and_template(tmp_path):
    uv = _uv()
    source = tmp_path / "source"  # a clean copy: setuptools would reuse a stale build/ folder of the checkout
    source.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / part, source / part)
    for part in ("pipeline", "sql"):
        shutil.copytree(REPO_ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    build = [uv, "build", "--wheel", "--quiet", "--out-dir", str(tmp_path)]
    done = subprocess.run([*build, "--offline"], cwd=source, capture_output=True, text=True)
    if done.returncode != 0:  # setuptools not in uv's cache yet: fetch it
        done = subprocess.run(build, cwd=source, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("pipeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO_ROOT / "pipeline"
    modules = {f"pipeline/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")
               if "__pycache__" not in p.parts}
    sql = {f"pipeline/sql/{p.relative_to(REPO_ROOT / 'sql').as_posix()}" for p in (REPO_ROOT / "sql").rglob("*.sql")}
    templates = {f"pipeline/report/templates/{p.name}" for p in (package / "report" / "templates").iterdir()}
    assert any(name.startswith("pipeline/adapters/") for name in modules)
    assert len(sql) > 30 and templates
    missing = sorted((modules | sql | templates | {"pipeline/default.toml"}) - names)
    assert not missing, f"the wheel lacks {missing[:5]}"
