"""One run at a time per processed directory, and atomic swaps of finished outputs."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from .errors import PipelineError
from .paths import LOCK_NAME


@contextlib.contextmanager
def run_lock(processed: Path):
    processed = Path(processed)
    processed.mkdir(parents=True, exist_ok=True)
    fh = open(processed / LOCK_NAME, "w")
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


def atomic_replace_dir(tmp: Path, final: Path) -> None:
    """Swap a finished directory into place: the old one is renamed away, then removed."""
    final = Path(final)
    if (final / ".gitkeep").exists():  # the repository's placeholder for an empty reports/ survives the swap
        (Path(tmp) / ".gitkeep").touch()
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
