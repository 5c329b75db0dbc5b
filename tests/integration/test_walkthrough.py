"""The README and docs/walkthrough.md, run as a new user would: from a fresh copy of the repository with nothing
beside it (no ../shared), command by command, checking the output the page shows.

Rules read from docs/walkthrough.md: every line of a ```bash block is a command (a trailing `# exit N` is the exit
status it must give; otherwise 0); a ```text block right after a ```bash block holds lines its last command must
print (`…` skips). `.venv/bin/python` is this interpreter. README's ```bash blocks run after it (on the walkthrough's
data/raw, with my.toml a fresh copy of pipeline/default.toml as the README says), except `make` lines (CI runs
`make test` itself; `make all` builds 250,000 patients) and README's full `run` (the walkthrough's step 3 again).
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from conftest import REPO_ROOT

BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def fresh_copy(dest: Path) -> Path:
    """The working tree as a clone would have it: tracked and untracked-but-not-ignored files, nothing else."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO_ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            (dest / f).write_bytes(src.read_bytes())
    return dest


def steps(markdown: str) -> list[tuple[str, int, list[str]]]:
    """(command, expected exit status, expected output lines) in page order."""
    out: list[tuple[str, int, list[str]]] = []
    blocks = list(BLOCK.finditer(markdown))
    for i, m in enumerate(blocks):
        if m.group(1) != "bash":
            continue
        text = re.sub(r"\\\n\s*", " ", m.group(2))  # a command continued over lines with a backslash is one step
        cmds = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        for ln in cmds:
            status = re.search(r"#\s*exit (\d+)\s*$", ln)
            out.append((ln, int(status.group(1)) if status else 0, []))
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if nxt is not None and nxt.group(1) == "text" and not markdown[m.end():nxt.start()].strip() and out:
            expect = [ln.rstrip() for ln in nxt.group(2).splitlines() if ln.strip() and ln.strip() != "…"]
            out[-1] = (out[-1][0], out[-1][1], expect)
    return out


def run_step(cmd: str, cwd: Path) -> tuple[int, str]:
    cmd = re.sub(r"(^|\s)\.venv/bin/python(?=\s)", lambda m: m.group(1) + shlex.quote(sys.executable), cmd)
    p = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "PIPELINE_LOG": "WARNING", "HOME": str(cwd)})
    return p.returncode, p.stdout + p.stderr


def test_readme_and_walkthrough_from_a_fresh_copy(tmp_path):
    repo = fresh_copy(tmp_path / "repo")
    assert not (tmp_path / "shared").exists()
    # nothing a user must read lies outside the repository
    for page in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        assert "../shared" not in page.read_text(encoding="utf-8"), page.name
    assert subprocess.run([sys.executable, "-m", "pipeline.docs", "--check"], cwd=repo, capture_output=True,
                          text=True).returncode == 0, "docs/ generated sections are stale: run make docs"

    walkthrough = steps((repo / "docs" / "walkthrough.md").read_text(encoding="utf-8"))
    # README: every command but `make` (CI runs make test itself; make all builds 250,000 patients) and its full
    # `run`, which is the walkthrough's step 3 again with my.toml = the default configuration (time: ~15 s)
    readme = [s for s in steps((repo / "README.md").read_text(encoding="utf-8"))
              if not s[0].startswith("make ") and " -m pipeline run " not in s[0]]
    assert len(walkthrough) >= 9 and any("check" in c for c, _, _ in walkthrough)
    assert any(" check " in c for c, _, _ in readme)
    # README: "copy pipeline/default.toml" to my.toml (the walkthrough left a DD/MM/YYYY one there)
    readme = [("cp pipeline/default.toml my.toml", 0, [])] + readme
    t0 = time.perf_counter()
    for cmd, status, expect in walkthrough + readme:
        code, out = run_step(cmd, repo)
        assert "Traceback" not in out, f"{cmd}\n{out[-3000:]}"
        assert code == status, f"{cmd} exited {code}, expected {status}\n{out[-3000:]}"
        printed = {ln.rstrip() for ln in out.splitlines()}
        missing = [ln for ln in expect if ln not in printed]
        assert not missing, f"{cmd}: the page shows lines it did not print: {missing}\n--- printed:\n{out[-4000:]}"
    elapsed = time.perf_counter() - t0

    # the output tables are what docs/outputs.md says (generated from pipeline/schema.py OUTPUT_TABLES)
    sys.path.insert(0, str(repo))
    try:
        from pipeline.schema import OUTPUT_TABLES
    finally:
        sys.path.remove(str(repo))
    docs = (repo / "docs" / "outputs.md").read_text(encoding="utf-8")
    for t in OUTPUT_TABLES:
        cols = list(pd.read_parquet(repo / "data" / "processed" / f"{t.name}.parquet").columns)
        declared = [c for c, _ in t.columns]
        assert (cols[: len(declared)] if t.open_ended else cols) == declared, t.name
        for c in declared:
            assert f"| `{c}` |" in docs
    assert any((repo / "reports" / "pcn").glob("*.pdf"))
    print(f"\nwalkthrough + README commands: {len(walkthrough) + len(readme)} commands in {elapsed:.1f} s")
