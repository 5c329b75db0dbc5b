"""One run at a time per processed directory, and atomic swaps of finished outputs."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .errors import PipelineError
from .paths import LOCK_NAME


@contextlib.contextmanager
def run_lock(processed: Path):
    processed = Path(processed)
    try:
        processed.mkdir(parents=True, exist_ok=True)
        fh = open(processed / LOCK_NAME, "w")
    except OSError as e:
        raise PipelineError(f"the processed directory cannot be created or written ({folder_problem(e)})") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise PipelineError("another pipeline run is already using this processed directory; wait for it to finish") from None
    try:
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def folder_problem(e: OSError) -> str:
    """What an OSError says about a folder, in words, without its path (a user's folder names are local paths)."""
    if isinstance(e, (NotADirectoryError, FileExistsError)):
        return "a file is in the way: the folder or one above it is a file"
    return e.strerror or type(e).__name__


# What the report stage writes in a reports folder: each run replaces these; anything else found there (a user's
# notes, the repository's .gitkeep) is carried over into the new folder untouched.
REPORT_ENTRIES = {"README.txt", "pcn", "ics", "community", "england"}


def check_output_folders(raw: Path | None, processed: Path | None, reports: Path | None,
                         config: Path | None = None) -> None:
    """Stop before any work when the processed folder is the raw one, or when the reports folder (replaced whole
    by each run) is or holds the raw or processed folder or the configuration: a run must never remove the user's
    own files."""
    def resolved(p):
        return None if p is None else Path(p).expanduser().resolve()

    raw, processed, reports, config = map(resolved, (raw, processed, reports, config))
    if raw is not None and processed is not None and raw == processed:
        raise PipelineError("--processed is the raw directory; give the processed outputs a folder of their own "
                            "(e.g. data/processed)")
    if reports is None:
        return
    for other, what in ((raw, "the raw directory"), (processed, "the processed directory"),
                        (config, "the configuration file")):
        if other is not None and (reports == other or reports in other.parents):
            where = "is" if reports == other else "holds"
            raise PipelineError(f"--reports {where} {what}; each run rewrites the reports folder, so give it a folder "
                                f"of its own (e.g. reports)")
    check_reports_folder(reports)


def check_reports_folder(reports: Path) -> None:
    """One sentence when `reports` names a file rather than a folder."""
    reports = Path(reports)
    if reports.exists() and not reports.is_dir():
        raise PipelineError("--reports names a file, not a folder; give the reports a folder of their own")


def atomic_replace_dir(tmp: Path, final: Path, replaced: set[str] | None = None) -> None:
    """Swap a finished directory into place: the old one is renamed away, then removed. With `replaced` (names),
    only those entries of the old directory are replaced: the others are moved into the new one first, so they
    survive the swap (the user's own files in a reports folder, the repository's .gitkeep)."""
    final, tmp = Path(final), Path(tmp)
    if replaced is not None and final.is_dir():
        for entry in final.iterdir():
            if entry.name not in replaced and not (tmp / entry.name).exists():
                os.replace(entry, tmp / entry.name)
    # the old folder is moved aside onto a fresh empty folder of its own (a user's own `reports.old` was once removed)
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.replaced-", dir=final.parent))
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
